"""tf.keras.layers: every layer of deepbreadth.layers, plus Input and InputLayer."""
from ..layers import *  # noqa: F401,F403
from ..layers import Input, Layer  # noqa: F401
from ..models import InputLayer  # noqa: F401
