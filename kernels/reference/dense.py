"""A Dense layer's forward and backward as one call each: y = act(x @ w + bias).

This set composes the product with the bias + activation kernels of
elementwise.py; the Numba set (cpu/dense.py) applies the bias and activation in
place on the product's output, and runs large products on BLAS's threads.
"""
from .elementwise import bias_activation_backward, bias_activation_forward


def check_dense_shapes(x, w, bias=None):
    """ValueError naming the shapes unless x (rows, features), w (features, units), bias (units,)."""
    if x.ndim != 2 or w.ndim != 2 or x.shape[1] != w.shape[0]:
        raise ValueError(
            f"dense: x {x.shape} and w {w.shape} must be (rows, features) and "
            "(features, units)"
        )
    if bias is not None and bias.shape != (w.shape[1],):
        raise ValueError(f"dense: bias has shape {bias.shape}, expected ({w.shape[1]},)")


def dense_bias_activation_forward(x, w, bias, activation):
    """act(x @ w + bias): x (N, features), w (features, units), bias (units,) -> y (N, units)."""
    check_dense_shapes(x, w, bias)
    return bias_activation_forward(x @ w.astype(x.dtype, copy=False), bias, activation)


def dense_bias_activation_backward(grad_y, y, x, w, activation, need_grad_x, need_grad_w):
    """(grad_x, grad_w, grad_bias) of y = act(x @ w + bias), act' read from y;
    grad_x (grad_w) is None unless need_grad_x (need_grad_w)."""
    g, grad_bias = bias_activation_backward(grad_y, y, activation)
    grad_x = g @ w.astype(g.dtype, copy=False).T if need_grad_x else None
    grad_w = x.astype(g.dtype, copy=False).T @ g if need_grad_w else None
    return grad_x, grad_w, grad_bias
