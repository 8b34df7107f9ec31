"""A Dense layer's forward and backward, each in one call: the matrix products
on BLAS, the bias and activation in a Numba loop around them.

Why one kernel and not a product followed by `bias_activation_forward`: the
product's output is fresh in the cache when the bias and activation are
applied in place, no second array is allocated, and the op above makes one
call instead of two (in a small model such as W1, the Python between the
kernels costs as much as some of the kernels).  Large products run on BLAS's
own threads when more than one lane is allowed (`threads.matmul_on_every_lane`).
"""
import numpy as np

from ..shapes import check_dense_shapes
from .elementwise import _bias_activation_backward_core, activation_code, bias_and_activation
from .threads import matmul_on_every_lane


def dense_bias_activation_forward(x, w, bias, activation):
    """act(x @ w + bias): x (N, features), w (features, units), bias (units,) -> y (N, units)."""
    code = activation_code(activation)
    check_dense_shapes(x, w, bias)
    dtype = x.dtype  # the contract: outputs take the first float input's dtype
    y = matmul_on_every_lane(x, w.astype(dtype, copy=False))
    if not y.flags.c_contiguous:  # BLAS writes a fresh C array; this is for odd inputs
        y = np.ascontiguousarray(y)
    bias_and_activation(y, np.ascontiguousarray(bias, dtype=dtype), code, y)  # in place
    return y


def dense_bias_activation_backward(grad_y, y, x, w, activation, need_grad_x, need_grad_w):
    """(grad_x, grad_w, grad_bias) of y = act(x @ w + bias), with act' read from y.

    g = grad_y * act'(y) and its column sums (the bias gradient) come from one
    Numba pass; then grad_x = g @ w.T and grad_w = x.T @ g, each only if asked.
    """
    code = activation_code(activation)
    check_dense_shapes(x, w)
    if grad_y.shape != y.shape or grad_y.shape != (x.shape[0], w.shape[1]):
        raise ValueError(
            f"dense: grad_y {grad_y.shape} and y {y.shape} must both be "
            f"{(x.shape[0], w.shape[1])}"
        )
    grad_y = np.ascontiguousarray(grad_y)
    dtype = grad_y.dtype
    g = np.empty(grad_y.shape, dtype=dtype)
    grad_bias = np.empty(grad_y.shape[-1:], dtype=dtype)
    _bias_activation_backward_core(grad_y, np.ascontiguousarray(y, dtype=dtype), code, g,
                                   grad_bias)
    grad_x = matmul_on_every_lane(g, w.astype(dtype, copy=False).T) if need_grad_x else None
    grad_w = matmul_on_every_lane(x.astype(dtype, copy=False).T, g) if need_grad_w else None
    return grad_x, grad_w, grad_bias
