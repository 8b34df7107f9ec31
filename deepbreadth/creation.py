"""Ways to make a tensor: from data, filled with a value, a range, random."""
import numpy as np

from . import backend
from .autograd import Tensor


def _float_dtype(dtype):
    return backend.floatx() if dtype is None else np.dtype(dtype)


def _on_device(array, device):
    return backend.to_device(array, device or backend.default_device())


def tensor(data, dtype=None, requires_grad=False, device=None):
    """A tensor from a number, a (nested) list or an array.

    Floating data becomes float32 (the default float dtype) unless `dtype` says
    otherwise; integers stay integers (labels, indices).
    """
    result = Tensor(data, dtype=dtype)
    result.data = _on_device(result.data, device)
    return result.requires_grad_(requires_grad) if requires_grad else result


def zeros(*shape, dtype=None, requires_grad=False, device=None):
    return tensor(np.zeros(_shape(shape), dtype=_float_dtype(dtype)), requires_grad=requires_grad, device=device)


def ones(*shape, dtype=None, requires_grad=False, device=None):
    return tensor(np.ones(_shape(shape), dtype=_float_dtype(dtype)), requires_grad=requires_grad, device=device)


def full(shape, fill_value, dtype=None, requires_grad=False, device=None):
    return tensor(np.full(_shape((shape,)), fill_value, dtype=_float_dtype(dtype)),
                  requires_grad=requires_grad, device=device)


def zeros_like(other, dtype=None, requires_grad=False):
    other = other if isinstance(other, Tensor) else Tensor(other)
    xp = backend.array_module(other.data)
    return Tensor(xp.zeros_like(other.data, dtype=dtype), requires_grad=requires_grad, dtype=dtype or other.dtype)


def ones_like(other, dtype=None, requires_grad=False):
    other = other if isinstance(other, Tensor) else Tensor(other)
    xp = backend.array_module(other.data)
    return Tensor(xp.ones_like(other.data, dtype=dtype), requires_grad=requires_grad, dtype=dtype or other.dtype)


def arange(start, stop=None, step=1, dtype=None, requires_grad=False, device=None):
    """Like numpy.arange; integer arguments give an int64 tensor, floats the float dtype."""
    values = np.arange(start, stop, step) if stop is not None else np.arange(start)
    if dtype is None and values.dtype.kind == "i":
        dtype = np.int64
    return tensor(values, dtype=dtype, requires_grad=requires_grad, device=device)


def randn(*shape, dtype=None, requires_grad=False, device=None):
    """Standard normal samples, from the generator that set_seed seeds."""
    values = backend.rng().standard_normal(_shape(shape)).astype(_float_dtype(dtype))
    return tensor(values, requires_grad=requires_grad, device=device)


def rand(*shape, dtype=None, requires_grad=False, device=None):
    """Uniform samples in [0, 1)."""
    values = backend.rng().random(_shape(shape)).astype(_float_dtype(dtype))
    return tensor(values, requires_grad=requires_grad, device=device)


def _shape(shape):
    """Accept both zeros(2, 3) and zeros((2, 3))."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        return tuple(shape[0])
    return tuple(int(n) for n in shape)
