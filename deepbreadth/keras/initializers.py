"""tf.keras.initializers: the initializers of deepbreadth.initializers."""
from ..initializers import *  # noqa: F401,F403
