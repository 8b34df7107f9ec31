"""tf.keras.utils: to_categorical, normalize, set_random_seed."""
from ..utils import normalize, set_random_seed, to_categorical  # noqa: F401
