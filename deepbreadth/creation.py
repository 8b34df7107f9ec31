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
    otherwise; integers stay integers (labels, indices). The values are copied,
    so later changes to `data` do not reach the tensor.
    """
    if isinstance(data, Tensor):
        data = data.data
    copied = data.copy() if backend.is_gpu_array(data) else np.array(data)
    result = Tensor(copied, dtype=dtype, requires_grad=requires_grad)
    result.data = _on_device(result.data, device)
    return result


# Each maker passes its dtype on to `tensor`: without it, `tensor` would turn a
# float64 array back into the default float dtype.
def zeros(*shape, dtype=None, requires_grad=False, device=None):
    dtype = _float_dtype(dtype)
    return tensor(np.zeros(_shape(shape), dtype=dtype), dtype=dtype,
                  requires_grad=requires_grad, device=device)


def ones(*shape, dtype=None, requires_grad=False, device=None):
    dtype = _float_dtype(dtype)
    return tensor(np.ones(_shape(shape), dtype=dtype), dtype=dtype,
                  requires_grad=requires_grad, device=device)


def full(shape, fill_value, dtype=None, requires_grad=False, device=None):
    dtype = _float_dtype(dtype)
    return tensor(np.full(_shape((shape,)), fill_value, dtype=dtype), dtype=dtype,
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
    dtype = _float_dtype(dtype)
    values = backend.rng().standard_normal(_shape(shape)).astype(dtype)
    return tensor(values, dtype=dtype, requires_grad=requires_grad, device=device)


def rand(*shape, dtype=None, requires_grad=False, device=None):
    """Uniform samples in [0, 1)."""
    dtype = _float_dtype(dtype)
    values = backend.rng().random(_shape(shape)).astype(dtype)
    return tensor(values, dtype=dtype, requires_grad=requires_grad, device=device)


def _shape(shape):
    """Accept both zeros(2, 3) and zeros((2, 3))."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        return tuple(shape[0])
    return tuple(int(n) for n in shape)
