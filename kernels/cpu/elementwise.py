"""Dropout, bias + activation and embedding lookup, compiled with Numba.

Each public function is a small Python wrapper: it validates its arguments,
makes the arrays contiguous, allocates the outputs and calls a compiled core.
Every core makes a single pass over its data, fusing what NumPy would do in
several passes (for example the bias add, the activation and, in backward,
the bias-gradient sum).

Multi-dimensional inputs are handed to the cores as flat or 2-D *views* of
contiguous arrays, so one compiled loop serves every rank.

The loops are serial: these kernels stream memory with little arithmetic per
element, and on a two-core machine ``parallel=True`` measured slower than the
serial loop even for a (128, 26, 26, 32) convolution output.
"""
import math

import numpy as np
from numba import njit

# The random bits of dropout are defined once, in the reference kernels.
from ..reference.elementwise import DROPOUT_BITS, check_seed, dropout_threshold

# Cores that divide use Numba's error_model="numpy": the default ("python")
# tests every divisor for zero so as to raise ZeroDivisionError, and that test
# stops the loop from being vectorized (Adam ran 4x slower with it). NumPy's
# rule, inf or nan, is also what the reference kernels do.

# --- activations -----------------------------------------------------------
# Compiled code cannot take a Python function as an argument cheaply, so the
# activation travels into the cores as a small integer code.

LINEAR = 0
RELU = 1
TANH = 2
SIGMOID = 3
HARD_SIGMOID = 4

ACTIVATION_CODES = {
    "linear": LINEAR,
    "relu": RELU,
    "tanh": TANH,
    "sigmoid": SIGMOID,
    "hard_sigmoid": HARD_SIGMOID,
}


def activation_code(name):
    """Map an activation name to the integer code the compiled cores understand."""
    if name not in ACTIVATION_CODES:
        allowed = ", ".join(repr(known) for known in ACTIVATION_CODES)
        raise ValueError(f"unknown activation {name!r}; allowed names are {allowed}")
    return ACTIVATION_CODES[name]


@njit(cache=True, error_model="numpy")
def apply_activation(z, code):
    """The activation with this code, at one pre-activation value z."""
    if code == RELU:
        # Written so that NaN passes through instead of being hidden as 0.
        return 0.0 if z < 0.0 else z
    if code == TANH:
        return math.tanh(z)
    if code == SIGMOID:
        # exp(-|z|) never overflows; each branch divides by a number >= 1.
        e = math.exp(-abs(z))
        return 1.0 / (1.0 + e) if z >= 0.0 else e / (1.0 + e)
    if code == HARD_SIGMOID:
        ramp = z / 6.0 + 0.5
        if ramp < 0.0:
            return 0.0
        if ramp > 1.0:
            return 1.0
        return ramp
    return z + 0.0  # linear; "+ 0.0" gives every branch the same float type


@njit(cache=True)
def activation_derivative_from_output(y, code):
    """The activation's slope, computed from its output y (what forward keeps)."""
    if code == RELU:
        return 1.0 if y > 0.0 else 0.0
    if code == TANH:
        return 1.0 - y * y
    if code == SIGMOID:
        return y * (1.0 - y)
    if code == HARD_SIGMOID:
        return 1.0 / 6.0 if 0.0 < y < 1.0 else 0.0
    return 1.0  # linear


# --- dropout ---------------------------------------------------------------


def _check_dropout_rate(rate):
    # rate == 1 would divide by zero and silently turn every value into nan/inf.
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"dropout rate must be in [0, 1), got {rate!r}")


# splitmix64's constants and shifts as uint64: Numba turns uint64 mixed with a
# plain (int64) number into float64, which would break the hash.
_GOLDEN_GAMMA = np.uint64(0x9E3779B97F4A7C15)
_MIX_1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX_2 = np.uint64(0x94D049BB133111EB)
_SHIFT_30, _SHIFT_27, _SHIFT_31 = np.uint64(30), np.uint64(27), np.uint64(31)
_SHIFT_TO_24_BITS = np.uint64(64 - DROPOUT_BITS)


@njit(cache=True, error_model="numpy")
def _dropout_forward_core(x, seed, keep_from, keep_probability, y, mask):
    for i in range(x.size):
        # The element's random bits: splitmix64(seed, i), as in the reference.
        z = seed + np.uint64(i + 1) * _GOLDEN_GAMMA
        z = (z ^ (z >> _SHIFT_30)) * _MIX_1
        z = (z ^ (z >> _SHIFT_27)) * _MIX_2
        z = z ^ (z >> _SHIFT_31)
        keep = (z >> _SHIFT_TO_24_BITS) >= keep_from
        mask[i] = keep
        y[i] = x[i] / keep_probability if keep else 0.0


def dropout_forward(x, seed, rate):
    """Zero each element whose random draw (from ``seed``) is below ``rate``; scale the rest
    by 1/(1-rate). The draws are drawn in the loop: no array of uniform numbers (a 128 x 128
    mask: 6 us, against 30 us for NumPy's generator to fill the array alone)."""
    _check_dropout_rate(rate)
    seed = check_seed(seed)
    x = np.ascontiguousarray(x)
    y = np.empty_like(x)
    mask = np.empty(x.shape, dtype=np.bool_)
    # 1 - rate in x's dtype, as NumPy divides a float32 array by a Python float:
    # float32 divisions vectorize twice as wide (the core: 9.9 -> 6 us).
    _dropout_forward_core(
        x.reshape(-1), seed, np.uint64(dropout_threshold(rate)), x.dtype.type(1.0 - rate),
        y.reshape(-1), mask.reshape(-1),
    )
    return y, mask


@njit(cache=True, error_model="numpy")
def _dropout_backward_core(grad_y, mask, keep_probability, grad_x):
    for i in range(grad_y.size):
        grad_x[i] = grad_y[i] / keep_probability if mask[i] else 0.0


def dropout_backward(grad_y, mask, rate):
    """The forward pass is linear in x, so the gradient takes the same mask and scale."""
    _check_dropout_rate(rate)
    grad_y = np.ascontiguousarray(grad_y)
    mask = np.ascontiguousarray(mask, dtype=np.bool_)
    grad_x = np.empty_like(grad_y)
    # 1 - rate in the gradient's dtype, as in the forward.
    _dropout_backward_core(grad_y.reshape(-1), mask.reshape(-1), grad_y.dtype.type(1.0 - rate),
                           grad_x.reshape(-1))
    return grad_x


# --- bias + activation -----------------------------------------------------


def _as_rows(array):
    """A contiguous 2-D (rows, last axis) view: bias and activation see every rank alike."""
    return np.ascontiguousarray(array).reshape(-1, array.shape[-1])


# nogil: the convolutions run it on chunks from several lanes (threads) at once.
@njit(cache=True, nogil=True, error_model="numpy")
def _bias_activation_forward_core(x, bias, code, y):
    rows, channels = x.shape
    for row in range(rows):
        for channel in range(channels):
            y[row, channel] = apply_activation(x[row, channel] + bias[channel], code)


@njit(cache=True, nogil=True, error_model="numpy")
def _bias_activation_in_place_core(y, bias, code):
    rows, channels = y.shape
    for row in range(rows):
        for channel in range(channels):
            y[row, channel] = apply_activation(y[row, channel] + bias[channel], code)


def bias_and_activation(x_rows, bias, code, y_rows):
    """y_rows (P, C) <- act(x_rows + bias); y_rows may be x_rows (in place).
    The epilogue of Dense and the convolutions, and bias_activation_forward's
    work.

    tanh goes through NumPy's ufunc: in a compiled loop each element is a
    scalar call of the C library's tanh, which the loop cannot vectorize
    (128 x 128 float32: 182 us against 12 us with np.tanh).  The others are
    one compiled pass.  (sigmoid, 42 us there, stays compiled: NumPy's exp
    with the overflow-safe branches took 167 us.)
    """
    if code == TANH:
        np.add(x_rows, bias, out=y_rows)
        np.tanh(y_rows, out=y_rows)
    elif x_rows is y_rows:
        # One array argument: given two, the compiled loop checks whether they
        # overlap and, as they do, runs unvectorized (6084 x 32: 63 against 21 us).
        _bias_activation_in_place_core(y_rows, bias, code)
    else:
        _bias_activation_forward_core(x_rows, bias, code, y_rows)


def bias_activation_forward(x, bias, activation):
    """``act(x + bias)``, the bias broadcast along the last axis of x (any rank)."""
    code = activation_code(activation)
    if x.ndim == 0:
        raise ValueError("bias_activation needs an input with at least one axis, got a scalar")
    if bias.shape != x.shape[-1:]:
        raise ValueError(
            f"bias_activation: bias has shape {bias.shape}, expected ({x.shape[-1]},) "
            f"to match the last axis of x {x.shape}"
        )
    bias = np.ascontiguousarray(bias, dtype=x.dtype)
    y = np.empty(x.shape, dtype=x.dtype)
    bias_and_activation(_as_rows(x), bias, code, y.reshape(-1, x.shape[-1]))
    return y


@njit(cache=True)
def _bias_activation_backward_core(grad_y, y, code, grad_x, grad_bias):
    rows, channels = grad_y.shape
    # Sum in float64 so that float32 bias gradients over many rows stay accurate.
    bias_sums = np.zeros(channels)
    for row in range(rows):
        for channel in range(channels):
            slope = activation_derivative_from_output(y[row, channel], code)
            g = grad_y[row, channel] * slope
            grad_x[row, channel] = g
            bias_sums[channel] += g
    for channel in range(channels):
        grad_bias[channel] = bias_sums[channel]


def bias_activation_backward(grad_y, y, activation):
    """Gradients w.r.t. x and bias, computed from the forward output y in one pass."""
    code = activation_code(activation)
    if grad_y.ndim == 0 or grad_y.shape != y.shape:
        raise ValueError(f"bias_activation: grad_y has shape {grad_y.shape}, y has {y.shape}")
    grad_x = np.empty(grad_y.shape, dtype=grad_y.dtype)
    grad_bias = np.empty(grad_y.shape[-1:], dtype=grad_y.dtype)
    _bias_activation_backward_core(
        _as_rows(grad_y), _as_rows(y.astype(grad_y.dtype, copy=False)), code,
        grad_x.reshape(-1, grad_y.shape[-1]), grad_bias,
    )
    return grad_x, grad_bias


# --- embedding -------------------------------------------------------------


def _flat_ids(ids):
    # One integer type for the cores, whatever integer type the caller used.
    return np.ascontiguousarray(ids, dtype=np.int64).reshape(-1)


@njit(cache=True)
def _embedding_forward_core(table, ids, out):
    # Element loops rather than row slices: slicing builds a view object per
    # row, which measured several times slower for short rows.
    embedding_dim = table.shape[1]
    for i in range(ids.size):
        row = ids[i]
        for e in range(embedding_dim):
            out[i, e] = table[row, e]


def embedding_forward(table, ids):
    """Look up one row of ``table`` per id: out has shape ``ids.shape + (E,)``."""
    table = np.ascontiguousarray(table)
    ids = np.asarray(ids)
    embedding_dim = table.shape[1]
    out = np.empty(ids.shape + (embedding_dim,), dtype=table.dtype)
    _embedding_forward_core(table, _flat_ids(ids), out.reshape(-1, embedding_dim))
    return out


@njit(cache=True)
def _embedding_backward_core(grad_out, ids, grad_table):
    # Serial on purpose: two positions holding the same id add into the same
    # row, and a parallel loop over positions would let those additions race.
    embedding_dim = grad_out.shape[1]
    for i in range(ids.size):
        row = ids[i]
        for e in range(embedding_dim):
            grad_table[row, e] += grad_out[i, e]


def embedding_backward(grad_out, ids, vocab_size):
    """Scatter-add each output row's gradient into its id's row; repeated ids accumulate."""
    embedding_dim = grad_out.shape[-1]
    grad_table = np.zeros((vocab_size, embedding_dim), dtype=grad_out.dtype)
    rows = np.ascontiguousarray(grad_out).reshape(-1, embedding_dim)
    _embedding_backward_core(rows, _flat_ids(ids), grad_table)
    return grad_table
