"""Dropout, bias + activation and embedding lookup in plain NumPy.

These are the readable specification of the element-wise kernels; the Numba
and CUDA sets must agree with them.
"""
import numpy as np


def _check_dropout_rate(rate):
    # rate == 1 would divide by zero and silently turn every value into nan/inf.
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"dropout rate must be in [0, 1), got {rate!r}")


# Dropout draws its own random bits from a seed: each element's bits are a
# hash of (seed, its flat index), splitmix64's output function (Steele, Lea
# and Flood 2014; the generator behind Java's SplittableRandom). A hash of the
# index, not a stream, so every kernel set, on any number of threads, draws
# the same mask for the same seed, and a compiled loop draws as it goes
# without a separate array of uniform numbers.
_GOLDEN_GAMMA = np.uint64(0x9E3779B97F4A7C15)
_MIX_1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX_2 = np.uint64(0x94D049BB133111EB)
DROPOUT_BITS = 24  # random bits per element: exactly a float32 in [0, 1) at 2**-24 steps


def dropout_threshold(rate):
    """The smallest 24-bit draw that is kept: draw / 2**24 >= rate."""
    return int(np.ceil(rate * 2**DROPOUT_BITS))


def check_seed(seed):
    if not 0 <= int(seed) < 2**64:
        raise ValueError(f"dropout seed must be an int in [0, 2**64), got {seed!r}")
    return np.uint64(seed)


def dropout_bits(seed, count):
    """24 random bits (as uint64) for each flat index 0 .. count-1: splitmix64(seed, index)."""
    # uint64 arithmetic wraps around modulo 2**64, as the hash means it to.
    z = check_seed(seed) + np.arange(1, count + 1, dtype=np.uint64) * _GOLDEN_GAMMA
    z = (z ^ (z >> np.uint64(30))) * _MIX_1
    z = (z ^ (z >> np.uint64(27))) * _MIX_2
    z = z ^ (z >> np.uint64(31))
    return z >> np.uint64(64 - DROPOUT_BITS)


def dropout_forward(x, seed, rate):
    """Zero each element whose random draw is below ``rate``; scale the rest.

    The draw of element i (flat, C order) is dropout_bits(seed, x.size)[i] / 2**24,
    uniform in [0, 1). Scaling the kept elements by ``1 / (1 - rate)`` keeps the
    expected value of every element unchanged, so nothing needs rescaling at
    inference time.
    """
    _check_dropout_rate(rate)
    mask = (dropout_bits(seed, x.size) >= dropout_threshold(rate)).reshape(x.shape)
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
