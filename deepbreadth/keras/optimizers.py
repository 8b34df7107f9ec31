"""tf.keras.optimizers: SGD, Adam, AdamW, RMSprop, Adagrad, get, and `schedules`."""
import sys

from .. import schedules
from ..optimizers import *  # noqa: F401,F403
from ..optimizers import Optimizer, deserialize, get, serialize  # noqa: F401

# `from deepbreadth.keras.optimizers.schedules import ExponentialDecay` works as in Keras.
sys.modules[__name__ + ".schedules"] = schedules
