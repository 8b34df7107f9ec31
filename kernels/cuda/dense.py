"""A Dense layer's forward and backward as one call each, on the GPU: y = act(x @ w + bias).

Composed of cuBLAS products (`@` on CuPy arrays) and the bias + activation kernels of
elementwise.py, as the convolution's fused kernels are: on the GPU the extra
pass over y costs little next to the product.  What one call saves here is the
op above making two.
"""
from .. import composed
from .elementwise import bias_activation_backward, bias_activation_forward


def dense_bias_activation_forward(x, w, bias, activation):
    """act(x @ w + bias): x (N, features), w (features, units), bias (units,) -> y (N, units)."""
    return composed.dense_bias_activation_forward(bias_activation_forward, x, w, bias, activation)


def dense_bias_activation_backward(grad_y, y, x, w, activation, need_grad_x, need_grad_w):
    """(grad_x, grad_w, grad_bias) of y = act(x @ w + bias), act' read from y;
    grad_x (grad_w) is None unless need_grad_x (need_grad_w)."""
    return composed.dense_bias_activation_backward(bias_activation_backward, grad_y, y, x, w,
                                                   activation, need_grad_x, need_grad_w)
