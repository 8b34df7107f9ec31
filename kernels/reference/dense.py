"""A Dense layer's forward and backward as one call each: y = act(x @ w + bias).

This set composes the product with the bias + activation kernels of
elementwise.py; the Numba set (cpu/dense.py) applies the bias and activation in
place on the product's output, and runs large products on BLAS's threads.
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
