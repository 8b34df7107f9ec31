"""A Dense layer's forward and backward as one call each, on the GPU: y = act(x @ w + bias).

Composed of cuBLAS products (cupy.matmul) and the bias + activation kernels of
elementwise.py, as the convolution's fused kernels are: on the GPU the extra
pass over y costs little next to the product.  What one call saves here is the
op above making two.
"""
import cupy

from ..reference.dense import check_dense_shapes
from .elementwise import bias_activation_backward, bias_activation_forward
from .loader import float_dtype


def dense_bias_activation_forward(x, w, bias, activation):
    """act(x @ w + bias): x (N, features), w (features, units), bias (units,) -> y (N, units)."""
    check_dense_shapes(x, w, bias)
    dtype = float_dtype(x)
    return bias_activation_forward(cupy.matmul(x, w.astype(dtype, copy=False)), bias, activation)


def dense_bias_activation_backward(grad_y, y, x, w, activation, need_grad_x, need_grad_w):
    """(grad_x, grad_w, grad_bias) of y = act(x @ w + bias), act' read from y;
    grad_x (grad_w) is None unless need_grad_x (need_grad_w)."""
    g, grad_bias = bias_activation_backward(grad_y, y, activation)
    dtype = g.dtype
    grad_x = cupy.matmul(g, w.astype(dtype, copy=False).T) if need_grad_x else None
    grad_w = cupy.matmul(x.astype(dtype, copy=False).T, g) if need_grad_w else None
    return grad_x, grad_w, grad_bias
