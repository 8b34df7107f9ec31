"""tf.random: seeding, and normal/uniform tensors."""
from ..backend import set_seed  # noqa: F401
from ..creation import rand, randn


def normal(shape, mean=0.0, stddev=1.0, dtype=None):
    return randn(*shape, dtype=dtype) * stddev + mean


def uniform(shape, minval=0.0, maxval=1.0, dtype=None):
    return rand(*shape, dtype=dtype) * (maxval - minval) + minval
