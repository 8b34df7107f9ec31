"""Dropout, bias + activation and embedding lookup in plain NumPy.

These are the readable specification of the element-wise kernels; the Numba
and CUDA sets must agree with them.
"""
import numpy as np


def _check_dropout_rate(rate):
    # rate == 1 would divide by zero and silently turn every value into nan/inf.
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"dropout rate must be in [0, 1), got {rate!r}")


def dropout_forward(x, uniform, rate):
    """Zero each element whose uniform draw is below ``rate``; scale the rest.

    Scaling the kept elements by ``1 / (1 - rate)`` keeps the expected value of
    every element unchanged, so nothing needs rescaling at inference time.
    """
    _check_dropout_rate(rate)
    mask = uniform >= rate
    y = x * mask / (1.0 - rate)
    return y.astype(x.dtype, copy=False), mask


def dropout_backward(grad_y, mask, rate):
    """The forward pass is linear in x, so the gradient takes the same mask and scale."""
    _check_dropout_rate(rate)
    grad_x = grad_y * mask / (1.0 - rate)
    return grad_x.astype(grad_y.dtype, copy=False)


# --- activations -----------------------------------------------------------


def _linear(z):
    return z


def _relu(z):
    return np.maximum(z, 0)


def _tanh(z):
    return np.tanh(z)


def _sigmoid(z):
    # exp(-|z|) never overflows; the two branches are the same function
    # written so that each one divides by a number >= 1.
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1 / (1 + e), e / (1 + e))


def _hard_sigmoid(z):
    # Keras 3 definition (Keras 2 used z * 0.2 + 0.5).
    return np.clip(z / 6 + 0.5, 0, 1)


# Each derivative is written in terms of the activation's *output* y, which is
# what the forward pass keeps: no need to store the pre-activation as well.


def _linear_derivative(y):
    return np.ones_like(y)


def _relu_derivative(y):
    return (y > 0).astype(y.dtype)


def _tanh_derivative(y):
    return 1 - y * y


def _sigmoid_derivative(y):
    return y * (1 - y)


def _hard_sigmoid_derivative(y):
    # The slope is 1/6 on the ramp and 0 where the output is clipped to 0 or 1.
    return np.where((y > 0) & (y < 1), 1 / 6, 0).astype(y.dtype)


ACTIVATIONS = {
    "linear": (_linear, _linear_derivative),
    "relu": (_relu, _relu_derivative),
    "tanh": (_tanh, _tanh_derivative),
    "sigmoid": (_sigmoid, _sigmoid_derivative),
    "hard_sigmoid": (_hard_sigmoid, _hard_sigmoid_derivative),
}


def activation_functions(name):
    """Return ``(activation, derivative_from_output)`` for an activation name."""
    if name not in ACTIVATIONS:
        allowed = ", ".join(repr(known) for known in ACTIVATIONS)
        raise ValueError(f"unknown activation {name!r}; allowed names are {allowed}")
    return ACTIVATIONS[name]


def bias_activation_forward(x, bias, activation):
    """``act(x + bias)``, the bias broadcast along the last axis of x."""
    activate, _ = activation_functions(activation)
    return activate(x + bias.astype(x.dtype, copy=False))


def bias_activation_backward(grad_y, y, activation):
    """Gradients w.r.t. the pre-bias input and the bias, from the forward output y."""
    _, derivative = activation_functions(activation)
    grad_x = (grad_y * derivative(y)).astype(grad_y.dtype, copy=False)
    # The bias was broadcast over every axis but the last, so its gradient is
    # the sum over those axes.
    grad_bias = grad_x.reshape(-1, grad_x.shape[-1]).sum(axis=0)
    return grad_x, grad_bias


# --- embedding -------------------------------------------------------------


def embedding_forward(table, ids):
    """Look up one row of ``table`` per id: out has shape ``ids.shape + (E,)``."""
    return table[ids]


def embedding_backward(grad_out, ids, vocab_size):
    """Scatter-add each output row's gradient into the row of its id.

    ``np.add.at`` is used rather than ``grad_table[ids] += ...`` because the
    latter keeps only one of several updates to a repeated id.
    """
    embedding_dim = grad_out.shape[-1]
    grad_table = np.zeros((vocab_size, embedding_dim), dtype=grad_out.dtype)
    np.add.at(grad_table, ids.reshape(-1), grad_out.reshape(-1, embedding_dim))
    return grad_table
