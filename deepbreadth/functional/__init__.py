"""Differentiable ops, as functions: `import deepbreadth.functional as F`.

Every function here takes and returns Tensors. The same ops are bound to
Tensor as operators and methods at the bottom of this file, so `a * b`,
`a.sum()` and `F.mul(a, b)`, `F.sum(a)` are one and the same code.
"""
from ..autograd import Tensor
from .activation import (elu, erf, gelu, get_activation, leaky_relu, linear, log_softmax,
                         relu, sigmoid, softmax, softplus, tanh)
from .math import (abs, add, clip, div, exp, log, matmul, maximum, minimum, mul, neg, pow,
                   pow_scalar, sign, sqrt, sub, where)
from .reduce import (argmax, argmin, broadcast_to, logsumexp, max, mean, min, sum,
                     sum_to_shape, var)
from .shape import (astype, concatenate, expand_dims, flatten, getitem, pad, reshape, split,
                    squeeze, stack, swapaxes, to_device, transpose)


def _reflected(function):
    """For `2 - t`: the tensor is on the right, so swap the operands back."""
    return lambda self, other: function(other, self)


def _compare(name):
    """Comparisons give boolean tensors, which carry no gradient."""
    def compare(self, other):
        other = other.data if isinstance(other, Tensor) else other
        return Tensor._wrap(getattr(self.data, name)(other))
    compare.__name__ = name
    return compare


_TENSOR_METHODS = {
    # operators
    "__add__": add, "__radd__": _reflected(add),
    "__sub__": sub, "__rsub__": _reflected(sub),
    "__mul__": mul, "__rmul__": _reflected(mul),
    "__truediv__": div, "__rtruediv__": _reflected(div),
    "__pow__": pow, "__rpow__": _reflected(pow),
    "__matmul__": matmul, "__rmatmul__": _reflected(matmul),
    "__neg__": neg, "__getitem__": getitem,
    "__lt__": _compare("__lt__"), "__le__": _compare("__le__"),
    "__gt__": _compare("__gt__"), "__ge__": _compare("__ge__"),
    "__eq__": _compare("__eq__"), "__ne__": _compare("__ne__"),
    # methods
    "exp": exp, "log": log, "sqrt": sqrt, "abs": abs, "clip": clip,
    "tanh": tanh, "sigmoid": sigmoid, "relu": relu,
    "softmax": softmax, "log_softmax": log_softmax, "logsumexp": logsumexp,
    "sum": sum, "mean": mean, "var": var, "max": max, "min": min,
    "argmax": argmax, "argmin": argmin,
    "reshape": reshape, "transpose": transpose, "swapaxes": swapaxes,
    "expand_dims": expand_dims, "squeeze": squeeze, "flatten": flatten,
    "pad": pad, "astype": astype, "sum_to_shape": sum_to_shape, "broadcast_to": broadcast_to,
}
for _name, _function in _TENSOR_METHODS.items():
    setattr(Tensor, _name, _function)
Tensor.T = property(transpose)
Tensor.__hash__ = object.__hash__  # __eq__ is elementwise; hash stays by identity
from .nn import bias_activation, dense, dropout, embedding
from .conv import conv1d, conv2d
from .pool import (avg_pool1d, avg_pool2d, conv1d_max_pool1d, conv2d_max_pool2d,
                   convolution_max_pool, global_avg_pool, global_max_pool, max_pool1d, max_pool2d)
from .rnn import gru, lstm, simple_rnn
from .loss import softmax_cross_entropy
