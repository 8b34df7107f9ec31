"""tf.keras.losses: the loss classes and functions of deepbreadth.losses."""
from ..losses import *  # noqa: F401,F403
from ..losses import Loss, deserialize, get, serialize  # noqa: F401
