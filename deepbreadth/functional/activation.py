"""Activations: tanh, sigmoid, relu, leaky_relu, elu, gelu, softplus,
softmax, log_softmax.

Where the derivative is a simple function of the output (tanh, sigmoid), the
forward saves its output and the backward reuses it instead of recomputing.
"""
import math

import numpy as np

from ..autograd import Function
from .math import exp, where
from .reduce import _normalize_axes


class Tanh(Function):
    @staticmethod
    def forward(ctx, a):
        out = np.tanh(a)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad):
        (out,) = ctx.saved_tensors
        return grad * (1 - out * out)


def _stable_sigmoid(a):
    # 1 / (1 + exp(-a)) overflows for very negative a; exp(-|a|) never does.
    e = np.exp(-np.abs(a))
    return np.where(a >= 0, 1 / (1 + e), e / (1 + e))


class Sigmoid(Function):
    @staticmethod
    def forward(ctx, a):
        out = _stable_sigmoid(a).astype(a.dtype, copy=False)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad):
        (out,) = ctx.saved_tensors
        return grad * out * (1 - out)


class ReLU(Function):
    @staticmethod
    def forward(ctx, a):
        ctx.positive = a > 0
        return np.maximum(a, 0)

    @staticmethod
    def backward(ctx, grad):
        return where(ctx.positive, grad, 0.0)


class LeakyReLU(Function):
    @staticmethod
    def forward(ctx, a, negative_slope):
        ctx.positive = a > 0
        ctx.negative_slope = negative_slope
        return np.where(ctx.positive, a, a * negative_slope)

    @staticmethod
    def backward(ctx, grad):
        return where(ctx.positive, grad, grad * ctx.negative_slope)


class ELU(Function):
    @staticmethod
    def forward(ctx, a, alpha):
        ctx.alpha = alpha
        out = np.where(a > 0, a, alpha * np.expm1(np.minimum(a, 0)))
        ctx.save_for_backward(a, out)
        return out

    @staticmethod
    def backward(ctx, grad):
        a, out = ctx.saved_tensors
        # For a <= 0: d/da alpha*(exp(a) - 1) = alpha*exp(a) = out + alpha.
        return where(a.data > 0, grad, grad * (out + ctx.alpha))


class Softplus(Function):
    """log(1 + exp(a)), written as max(a, 0) + log1p(exp(-|a|)) so it never overflows."""

    @staticmethod
    def forward(ctx, a):
        ctx.save_for_backward(a)
        return np.maximum(a, 0) + np.log1p(np.exp(-np.abs(a)))

    @staticmethod
    def backward(ctx, grad):
        (a,) = ctx.saved_tensors
        return grad * sigmoid(a)


def _erf_array(a):
    """The error function, elementwise (NumPy has none of its own)."""
    try:
        from scipy.special import erf
    except ImportError:
        erf = np.vectorize(math.erf, otypes=[a.dtype])
    if type(a).__module__.startswith("cupy"):
        import cupyx.scipy.special

        erf = cupyx.scipy.special.erf
    return erf(a).astype(a.dtype, copy=False)


class Erf(Function):
    @staticmethod
    def forward(ctx, a):
        ctx.save_for_backward(a)
        return _erf_array(a)

    @staticmethod
    def backward(ctx, grad):
        (a,) = ctx.saved_tensors
        return grad * (2 / math.sqrt(math.pi)) * exp(-(a * a))


class Softmax(Function):
    @staticmethod
    def forward(ctx, a, axis):
        ctx.axis = axis
        shifted = a - np.max(a, axis=axis, keepdims=True)
        e = np.exp(shifted)
        out = e / e.sum(axis=axis, keepdims=True)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad):
        (out,) = ctx.saved_tensors
        # Jacobian-vector product of softmax: y * (g - sum(g * y)).
        return out * (grad - (grad * out).sum(axis=ctx.axis, keepdims=True))


class LogSoftmax(Function):
    @staticmethod
    def forward(ctx, a, axis):
        ctx.axis = axis
        shifted = a - np.max(a, axis=axis, keepdims=True)
        out = shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad):
        (out,) = ctx.saved_tensors
        return grad - exp(out) * grad.sum(axis=ctx.axis, keepdims=True)


# ----------------------------------------------------------------------------
# Public functions
# ----------------------------------------------------------------------------
def tanh(a):
    return Tanh.apply(a)


def sigmoid(a):
    return Sigmoid.apply(a)


def relu(a):
    return ReLU.apply(a)


def leaky_relu(a, negative_slope=0.2):
    """max(a, 0) + negative_slope * min(a, 0); 0.2 is Keras's default slope."""
    return LeakyReLU.apply(a, negative_slope=negative_slope)


def elu(a, alpha=1.0):
    return ELU.apply(a, alpha=alpha)


def softplus(a):
    return Softplus.apply(a)


def erf(a):
    return Erf.apply(a)


def gelu(a, approximate=False):
    """x * Phi(x), Phi the standard normal CDF (exact by default, as Keras).

    Built from differentiable ops, so its gradient and second derivative come
    for free from those of erf and tanh.
    """
    if approximate:
        inner = math.sqrt(2 / math.pi) * (a + 0.044715 * a * a * a)
        return 0.5 * a * (1 + tanh(inner))
    return 0.5 * a * (1 + erf(a * (1 / math.sqrt(2))))


def softmax(a, axis=-1):
    return Softmax.apply(a, axis=_single_axis(a, axis))


def log_softmax(a, axis=-1):
    return LogSoftmax.apply(a, axis=_single_axis(a, axis))


def _single_axis(a, axis):
    if a.ndim == 0:
        return None  # a scalar is its own (one-element) distribution
    if axis is None or not isinstance(axis, (int, np.integer)):
        raise ValueError(f"softmax works over one axis, got axis={axis!r}")
    (axis,) = _normalize_axes(axis, a.ndim)
    return axis


def linear(a):
    """The identity, for Keras's activation=None / 'linear'."""
    return a


_ACTIVATIONS = {
    "linear": linear, "relu": relu, "tanh": tanh, "sigmoid": sigmoid,
    "softmax": softmax, "log_softmax": log_softmax, "leaky_relu": leaky_relu,
    "elu": elu, "gelu": gelu, "softplus": softplus,
}


def get_activation(identifier):
    """An activation function from a Keras name, a callable, or None (linear)."""
    if identifier is None:
        return linear
    if callable(identifier):
        return identifier
    if identifier in _ACTIVATIONS:
        return _ACTIVATIONS[identifier]
    raise ValueError(
        f"unknown activation {identifier!r}; use one of {sorted(_ACTIVATIONS)} or a callable"
    )
