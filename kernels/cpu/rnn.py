"""Recurrent kernels for the CPU: SimpleRNN, LSTM and GRU.

Same contract and same numbers as kernels/reference/rnn.py; read that file
first for the mathematics.  Here the work is arranged for speed, and each kind
of work goes to the tool that does it fastest:

* Matrix products go to BLAS (through NumPy).  The input projection
  `x_t @ kernel` does not depend on the recurrence, so it is done for all
  time steps at once, as one large product.  Each step then needs one product
  for the recurrent part `h_{t-1} @ recurrent_kernel`.
* tanh and sigmoid go to NumPy's ufuncs, which use SIMD instructions: on an
  AVX-512 machine they cost under a nanosecond per float32 element, while the
  scalar `exp` or `tanh` that Numba calls from the C maths library costs 5 to
  45 ns.  (Measured; see benchmarks/NOTES.md, "recurrent kernels".)
* The rest of the elementwise arithmetic goes to fused Numba kernels that read
  and write each element once instead of making NumPy temporaries: backward,
  one kernel per step does the whole gate derivative (act(c_t) is computed
  beforehand for all steps at once); forward, small kernels do the arithmetic
  around the activation passes (LSTM: the cell update; GRU: the gate inputs,
  the candidate input and the state update, three because r must be
  activated before the candidate can be formed).  These kernels are
  plain loops (no `parallel=True`): a Numba thread pool next to OpenBLAS's
  made every step several times slower on two cores, because each pool's
  idle threads spin while the other one works.
* float32 LSTM and GRU steps with the default activations are one fused
  kernel each, with a tanh of its own (`tanh_float32`, a rational function
  that vectorizes), 1.5-2x faster than the NumPy passes; float64 keeps
  NumPy's exact tanh.
* Threads: each sample's recurrence is independent of the others', so every
  cell runs the time loop on one slice of the batch per lane
  (`run_batch_chunks`), and the large products outside the loop are cut
  into blocks shared over the lanes too (`threads.matmul_over_lanes`).
* Backward, each step turns the incoming gradient into the gradient of the
  gate pre-activations, `grad_z`, kept for every step.  The weight gradients
  are sums over time of products with `grad_z`, so each is computed at the end
  with one matrix product over all N*T rows.

Memory layout: inside, sequences are stored time-major, (T, N, ...), so that
each step reads and writes contiguous blocks; a batch-major (N, T, ...) layout
scatters every step over T times more memory and was measurably slower.  The
forward functions return (N, T, ...) *views* of their time-major arrays
(`a.transpose(1, 0, 2)`, no copy), and the backward functions turn such views
back into time-major arrays without a copy.  Any other (N, T, ...) array is
accepted as well; it is copied into time-major order once.
"""
import contextlib
import functools

import numpy as np
from numba import njit

from .threads import (
    blas_on_one_thread, can_share_out, for_each_chunk, lane_count, matmul_over_lanes,
)

# Activation names become integer codes: Numba kernels branch on an int cheaply.
LINEAR, RELU, TANH, SIGMOID, HARD_SIGMOID = 0, 1, 2, 3, 4
ACTIVATION_CODES = {
    "linear": LINEAR,
    "relu": RELU,
    "tanh": TANH,
    "sigmoid": SIGMOID,
    "hard_sigmoid": HARD_SIGMOID,
}


def activation_code(name):
    if name not in ACTIVATION_CODES:
        raise ValueError(
            f"unknown activation {name!r} for a recurrent kernel; "
            f"expected one of {', '.join(ACTIVATION_CODES)}"
        )
    return ACTIVATION_CODES[name]


def apply_activation(name, z, out):
    """out = act(z) with NumPy ufuncs (SIMD), writing into `out` (may be z itself)."""
    if name == "tanh":
        np.tanh(z, out=out)
    elif name == "sigmoid":
        # sigmoid(z) = (1 + tanh(z / 2)) / 2: no exp(-z) to overflow.
        np.multiply(z, 0.5, out=out)
        np.tanh(out, out=out)
        out *= 0.5
        out += 0.5
    elif name == "relu":
        np.maximum(z, 0, out=out)
    elif name == "hard_sigmoid":
        np.divide(z, 6, out=out)
        out += 0.5
        np.clip(out, 0, 1, out=out)
    elif out is not z:  # linear
        np.copyto(out, z)


@njit(cache=True)
def activation_derivative(code, y):
    """d act(z) / dz from the output y = act(z)."""
    if code == TANH:
        return 1.0 - y * y
    if code == SIGMOID:
        return y * (1.0 - y)
    if code == RELU:
        return 1.0 if y > 0.0 else 0.0
    if code == HARD_SIGMOID:
        return 1.0 / 6.0 if 0.0 < y < 1.0 else 0.0
    return 1.0  # linear


# --------------------------------------------------------------------------
# Helpers shared by the three cells
# --------------------------------------------------------------------------


def check_shape(cell, name, array, wanted):
    """Clear errors here, because the Numba kernels do not check their indices."""
    if np.shape(array) != wanted:
        raise ValueError(f"{cell}: {name} has shape {np.shape(array)}, expected {wanted}")


def check_shapes(cell, gate_count, x, h0, kernel, recurrent_kernel):
    if np.ndim(x) != 3:
        raise ValueError(
            f"{cell} expects x of shape (batch, time, features), got {np.shape(x)}; "
            "a recurrent layer fed by another one needs return_sequences=True there"
        )
    batch, steps, features = x.shape
    if steps == 0:
        raise ValueError(f"{cell}: x {x.shape} has no time steps; sequences need at least one")
    units = np.shape(recurrent_kernel)[0]
    check_shape(cell, "h0", h0, (batch, units))
    check_shape(cell, "kernel", kernel, (features, gate_count * units))
    check_shape(cell, "recurrent_kernel", recurrent_kernel, (units, gate_count * units))


def check_sequences(cell, x, units, **arrays_and_blocks):
    """Each named array is (N, T, blocks * units), N and T those of x."""
    batch, steps, _ = x.shape
    for name, (array, blocks) in arrays_and_blocks.items():
        check_shape(cell, name, array, (batch, steps, blocks * units))


def as_contiguous(dtype, *arrays):
    """Every array C-contiguous in one dtype: one compiled variant per dtype."""
    return [np.ascontiguousarray(array, dtype=dtype) for array in arrays]


def time_major(sequence, dtype):
    """(N, T, ...) -> contiguous (T, N, ...); free for our own forward outputs."""
    return np.ascontiguousarray(sequence.transpose(1, 0, 2), dtype=dtype)


def batch_major(sequence):
    """(T, N, ...) -> an (N, T, ...) view, as the contract's shapes have it."""
    return sequence.transpose(1, 0, 2)


def project_inputs(x, kernel, bias):
    """x_t @ kernel + bias for every step at once: (N, T, D) -> time-major (T, N, G*U).

    When x is not already a time-major array in disguise (our own forward's
    output is), it has to be copied into time-major order anyway; the copy
    then gets one more feature, fixed at 1, whose weight row is the bias, so
    the product adds the bias instead of a separate pass over the whole
    (T*N, G*U) result.  Measured at batch 128, 28 steps of 28 features: 1.68
    -> 1.37 ms (128 units), 12.5 -> 9.5 ms (512 units).
    """
    batch, steps, features = x.shape
    dtype = kernel.dtype
    rows = steps * batch
    x_time_major = x.transpose(1, 0, 2)
    if x_time_major.flags.c_contiguous and x.dtype == dtype:
        projection = matmul_over_lanes(x_time_major.reshape(rows, features), kernel)
        projection += bias
    else:
        x_and_one = np.empty((steps, batch, features + 1), dtype=dtype)
        x_and_one[:, :, :features] = x_time_major
        x_and_one[:, :, features] = 1
        kernel_and_bias = np.concatenate([kernel, bias[np.newaxis]])
        projection = matmul_over_lanes(x_and_one.reshape(rows, features + 1), kernel_and_bias)
    return projection.reshape(steps, batch, -1)


def weight_gradients(x, h, h0, grad_input_side, grad_recurrent_side, kernel, need_grad_x=True):
    """The sums over time, each as one matrix product over all T*N rows.

    All sequences are time-major; h holds the states after each step, so the
    state entering step t is h0 for t = 0 and h[t-1] after.  Returns grad_x
    (batch-major view, or None when need_grad_x is False: the first layer of
    a model reads data, which needs no gradient), grad_kernel,
    grad_recurrent_kernel and the two bias gradients.  The large products
    are shared out over the lanes (kernels/cpu/threads.py).
    """
    steps, batch, features = x.shape
    units = h.shape[2]
    rows = steps * batch
    grad_in = grad_input_side.reshape(rows, -1)
    grad_rec = grad_recurrent_side.reshape(rows, -1)
    grad_x = None
    if need_grad_x:
        grad_x = batch_major(matmul_over_lanes(grad_in, kernel.T).reshape(steps, batch, features))
    grad_kernel = matmul_over_lanes(x.reshape(rows, features).T, grad_in)
    # Steps 1..T-1 see h[0..T-2]: a contiguous block of h, so no array of
    # previous states has to be built; step 0's share, from h0, is added
    # apart, and skipped when h0 is zero (the usual case) as it adds nothing.
    grad_recurrent_kernel = matmul_over_lanes(h[:-1].reshape(-1, units).T, grad_rec[batch:])
    if h0.any():
        grad_recurrent_kernel += h0.T @ grad_rec[:batch]
    # The bias gradients are column sums; as a product with a ones vector
    # they go to BLAS, 1.5 to 2x faster than ndarray.sum(axis=0) here.
    ones = np.ones(rows, dtype=grad_in.dtype)
    grad_bias_in = ones @ grad_in
    grad_bias_rec = (
        grad_bias_in if grad_recurrent_side is grad_input_side else ones @ grad_rec
    )
    return grad_x, grad_kernel, grad_recurrent_kernel, grad_bias_in, grad_bias_rec


def transposed_copy(matrix):
    """matrix.T as a C-contiguous array.  The backward's per-step product
    grad_z @ recurrent_kernel.T ran 5 to 10% faster in OpenBLAS with the
    transpose made once per call than with the transposed view."""
    return np.ascontiguousarray(matrix.T)


def run_batch_chunks(batch, recurrence):
    """Run recurrence(rows) over the whole batch, in one slice per lane.

    Each sample's recurrence is independent of the others', so the batch is
    cut into one slice per lane (kernels/cpu/threads.py) and every lane runs
    all the time steps of its slice, with BLAS held to one thread: the lanes
    never wait for each other between steps.  Letting BLAS split every
    step's product instead makes its threads meet twice per step; on the
    shared 2-core development machine that was 3 to 4x slower (median wall
    time) than one thread (benchmarks/NOTES.md, "training step W3/W4").
    Where BLAS cannot be held to one thread, one slice, BLAS's threads.
    """
    lanes = min(lane_count(), batch) if can_share_out() else 1
    bounds = [batch * lane // lanes for lane in range(lanes + 1)]
    slices = [slice(start, stop) for start, stop in zip(bounds, bounds[1:])]
    for_each_chunk(lanes, lambda index, lane: recurrence(slices[index]), lanes)


def blas_held_if_shared_out(kernel):
    """Decorator: the recurrent kernel runs with BLAS on one thread where the
    batch is shared out.  BLAS's own threads on the few large products outside
    the time loop lost more to thread meetings on the shared machine than they
    gained (LSTM(128) fwd + bwd, 2 threads, median wall 387 -> 104 ms); those
    products are shared out over the lanes instead (matmul_over_lanes)."""

    @functools.wraps(kernel)
    def with_blas_held(*args, **kwargs):
        with blas_on_one_thread() if can_share_out() else contextlib.nullcontext():
            return kernel(*args, **kwargs)

    return with_blas_held


def state_before(t, sequence, initial):
    """The (N, U) state entering step t (time-major sequence), without a copy."""
    return initial if t == 0 else sequence[t - 1]


# --------------------------------------------------------------------------
# SimpleRNN
# --------------------------------------------------------------------------


@njit(cache=True, nogil=True)
def simple_rnn_step_backward(grad_h_seq, grad_h_from_later, h, grad_z, act):
    """grad_z = (gradient reaching h_t) * act'(z_t), all (N, U) of step t."""
    batch, units = h.shape
    for n in range(batch):
        for j in range(units):
            grad_h = grad_h_seq[n, j] + grad_h_from_later[n, j]
            grad_z[n, j] = grad_h * activation_derivative(act, h[n, j])


@blas_held_if_shared_out
def simple_rnn_forward(x, h0, kernel, recurrent_kernel, bias, activation):
    activation_code(activation)  # raises ValueError for an unknown name
    check_shapes("simple_rnn", 1, x, h0, kernel, recurrent_kernel)
    check_shape("simple_rnn", "bias", bias, (kernel.shape[1],))
    dtype = x.dtype
    h0, kernel, recurrent_kernel, bias = as_contiguous(dtype, h0, kernel, recurrent_kernel, bias)
    # The input projection is the first term of every step's sum: h is built on it.
    h = project_inputs(x, kernel, bias)

    def recurrence(rows):
        """All steps for the batch rows `rows` (see run_batch_chunks)."""
        h_projection = np.empty((rows.stop - rows.start, h.shape[2]), dtype=dtype)
        for t in range(h.shape[0]):
            np.matmul(state_before(t, h, h0)[rows], recurrent_kernel, out=h_projection)
            h_t = h[t, rows]
            h_t += h_projection
            apply_activation(activation, h_t, out=h_t)

    run_batch_chunks(h.shape[1], recurrence)
    return batch_major(h)


@blas_held_if_shared_out
def simple_rnn_backward(
    x, h0, kernel, recurrent_kernel, h_seq, grad_h_seq, activation, need_grad_x=True
):
    act = activation_code(activation)
    check_shapes("simple_rnn", 1, x, h0, kernel, recurrent_kernel)
    units = recurrent_kernel.shape[0]
    check_sequences("simple_rnn", x, units, h_seq=(h_seq, 1), grad_h_seq=(grad_h_seq, 1))
    dtype = x.dtype
    h0, kernel, recurrent_kernel = as_contiguous(dtype, h0, kernel, recurrent_kernel)
    x, h, grad_h_seq = (time_major(a, dtype) for a in (x, h_seq, grad_h_seq))
    recurrent_kernel_t = transposed_copy(recurrent_kernel)

    grad_z = np.empty_like(h)
    grad_h0 = np.empty_like(h0)

    def recurrence(rows):
        """All steps, last to first, for the batch rows `rows`."""
        grad_h_from_later = np.zeros((rows.stop - rows.start, units), dtype=dtype)
        for t in reversed(range(h.shape[0])):
            simple_rnn_step_backward(
                grad_h_seq[t, rows], grad_h_from_later, h[t, rows], grad_z[t, rows], act
            )
            np.matmul(grad_z[t, rows], recurrent_kernel_t, out=grad_h_from_later)
        grad_h0[rows] = grad_h_from_later

    run_batch_chunks(h0.shape[0], recurrence)
    grad_x, grad_kernel, grad_recurrent_kernel, grad_bias, _ = weight_gradients(
        x, h, h0, grad_z, grad_z, kernel, need_grad_x
    )
    return grad_x, grad_h0, grad_kernel, grad_recurrent_kernel, grad_bias


# --------------------------------------------------------------------------
# LSTM, Keras gate order i, f, c, o
# --------------------------------------------------------------------------


@njit(cache=True, nogil=True)
def lstm_cell_update(gates, c_prev, c):
    """c_t = f * c_{t-1} + i * g, from the activated gates of step t."""
    batch, units = c.shape
    for n in range(batch):
        for j in range(units):
            i = gates[n, j]
            f = gates[n, units + j]
            g = gates[n, 2 * units + j]
            c[n, j] = f * c_prev[n, j] + i * g


# float32 constants for the default-activation kernels: a Python float is a
# float64 to Numba and would turn float32 arithmetic into float64.
HALF = np.float32(0.5)
ONE = np.float32(1.0)


# tanh(x) = x * P(x^2) / Q(x^2) on [-9, 9], +-1 outside: coefficients and
# error bound from kernels/cpu/fit_tanh.py (under 4e-7 relative in float32,
# about 3 units in the last place; NumPy's float32 tanh is within 1).
TANH_LIMIT = np.float32(9.0)
P0, P1, P2, P3, P4 = (np.float32(c) for c in (
    1.0, 0.133774533867836, 0.003491395153105259, 2.0542369384202175e-05,
    1.3267113629922278e-08))
Q0, Q1, Q2, Q3, Q4 = (np.float32(c) for c in (
    1.0, 0.4671076834201813, 0.025860900059342384, 0.00032788721728138626,
    7.73966064571141e-07))


# error_model="numpy": a division by zero gives inf as in NumPy instead of
# raising, which spares each division a check; with the check, LLVM did not
# vectorize any loop that divides (about 7x slower here).
@njit(cache=True, nogil=True, inline="always", error_model="numpy")
def tanh_float32(x):
    """tanh with multiplications, additions and one division only, so that a
    loop calling it vectorizes (Numba's own tanh is a scalar C call)."""
    # Comparisons rather than min/max, so that NaN stays NaN (a diverged
    # model must show NaN, not a clamped, finite value).
    if x > TANH_LIMIT:
        x = TANH_LIMIT
    elif x < -TANH_LIMIT:
        x = -TANH_LIMIT
    s = x * x
    numerator = P0 + s * (P1 + s * (P2 + s * (P3 + s * P4)))
    denominator = Q0 + s * (Q1 + s * (Q2 + s * (Q3 + s * Q4)))
    return x * numerator / denominator


@njit(cache=True, nogil=True, error_model="numpy")
def lstm_step_float32(z, h_projection, c_prev, c, h):
    """One whole forward step for float32 and the default activations.

    z enters as the step's input projection (i, f, o columns halved, see
    lstm_forward) and leaves as the activated gates; c and h receive c_t and
    h_t.  Per sample: z + h_projection through tanh_float32 for all four gate
    blocks, then sigmoid = 0.5 + 0.5 tanh(z / 2) for i, f, o, the cell update
    and h_t = o * tanh(c_t), in two passes over data that stays in cache.
    Against the float64 path's sequence of NumPy passes (add, tanh, cell
    update, tanh, multiply): 2x faster per step (63 -> 33 us at 128 units,
    233 -> 106 us at 512, batch 128).
    """
    batch, units = c.shape
    for n in range(batch):
        z_row = z[n]
        projection_row = h_projection[n]
        for k in range(4 * units):
            z_row[k] = tanh_float32(z_row[k] + projection_row[k])
        i_row = z_row[:units]
        f_row = z_row[units : 2 * units]
        g_row = z_row[2 * units : 3 * units]
        o_row = z_row[3 * units :]
        c_prev_row = c_prev[n]
        c_row = c[n]
        h_row = h[n]
        for j in range(units):
            i = HALF + HALF * i_row[j]
            f = HALF + HALF * f_row[j]
            o = HALF + HALF * o_row[j]
            i_row[j] = i
            f_row[j] = f
            o_row[j] = o
            c_new = f * c_prev_row[j] + i * g_row[j]
            c_row[j] = c_new
            h_row[j] = o * tanh_float32(c_new)


@njit(cache=True, nogil=True)
def lstm_cell_update_from_tanh(gates, c_prev, c):
    """The default activations' cell update.  gates holds tanh(z_i / 2),
    tanh(z_f / 2), tanh(z_c), tanh(z_o / 2) (see lstm_forward); turn the
    three sigmoid gates into sigmoid(z) = 0.5 + 0.5 * tanh(z / 2) in place and
    form c_t = f * c_{t-1} + i * g, all in one pass over the step's gates.
    The row slices taken per sample let LLVM vectorize the inner loop (about
    1.4x faster than indexing gates[n, k * units + j])."""
    batch, units = c.shape
    for n in range(batch):
        i_row = gates[n, :units]
        f_row = gates[n, units : 2 * units]
        g_row = gates[n, 2 * units : 3 * units]
        o_row = gates[n, 3 * units :]
        c_prev_row = c_prev[n]
        c_row = c[n]
        for j in range(units):
            i = HALF + HALF * i_row[j]
            f = HALF + HALF * f_row[j]
            i_row[j] = i
            f_row[j] = f
            o_row[j] = HALF + HALF * o_row[j]
            c_row[j] = f * c_prev_row[j] + i * g_row[j]


@njit(cache=True, nogil=True)
def lstm_step_backward_tanh_sigmoid(
    grad_h_seq, grad_h_from_later, grad_c, gates, act_c, c_prev, grad_z
):
    """lstm_step_backward for the default activations, with tanh' = 1 - y^2
    and sigmoid' = y (1 - y) written out: the general kernel's branches on
    the activation codes kept its loop from vectorizing (1.7 to 2x slower)."""
    batch, units = grad_c.shape
    for n in range(batch):
        i_row = gates[n, :units]
        f_row = gates[n, units : 2 * units]
        g_row = gates[n, 2 * units : 3 * units]
        o_row = gates[n, 3 * units :]
        grad_i = grad_z[n, :units]
        grad_f = grad_z[n, units : 2 * units]
        grad_g = grad_z[n, 2 * units : 3 * units]
        grad_o = grad_z[n, 3 * units :]
        grad_h_row = grad_h_seq[n]
        grad_later_row = grad_h_from_later[n]
        grad_c_row = grad_c[n]
        act_c_row = act_c[n]
        c_prev_row = c_prev[n]
        for j in range(units):
            i = i_row[j]
            f = f_row[j]
            g = g_row[j]
            o = o_row[j]
            a = act_c_row[j]
            grad_h = grad_h_row[j] + grad_later_row[j]
            grad_cell = grad_c_row[j] + grad_h * o * (ONE - a * a)
            grad_i[j] = grad_cell * g * (i * (ONE - i))
            grad_f[j] = grad_cell * c_prev_row[j] * (f * (ONE - f))
            grad_g[j] = grad_cell * i * (ONE - g * g)
            grad_o[j] = grad_h * a * (o * (ONE - o))
            grad_c_row[j] = grad_cell * f


@njit(cache=True, nogil=True)
def lstm_step_backward(
    grad_h_seq, grad_h_from_later, grad_c, gates, act_c, c_prev, grad_z, act, rec_act
):
    """All (N, ...) arrays of step t.  grad_c enters with the cell gradient
    from step t+1 and leaves with the one for step t-1."""
    batch, units = grad_c.shape
    for n in range(batch):
        for j in range(units):
            i = gates[n, j]
            f = gates[n, units + j]
            g = gates[n, 2 * units + j]
            o = gates[n, 3 * units + j]
            grad_h = grad_h_seq[n, j] + grad_h_from_later[n, j]
            # h_t = o * act(c_t);  c_t = f * c_{t-1} + i * g
            grad_cell = grad_c[n, j] + grad_h * o * activation_derivative(act, act_c[n, j])
            grad_z[n, j] = grad_cell * g * activation_derivative(rec_act, i)
            grad_z[n, units + j] = grad_cell * c_prev[n, j] * activation_derivative(rec_act, f)
            grad_z[n, 2 * units + j] = grad_cell * i * activation_derivative(act, g)
            grad_z[n, 3 * units + j] = grad_h * act_c[n, j] * activation_derivative(rec_act, o)
            grad_c[n, j] = grad_cell * f


def activate_lstm_gates(z, units, activation, recurrent_activation):
    """In place: i, f, o through the recurrent activation, the candidate through act."""
    apply_activation(recurrent_activation, z[:, : 2 * units], out=z[:, : 2 * units])
    apply_activation(activation, z[:, 2 * units : 3 * units], out=z[:, 2 * units : 3 * units])
    apply_activation(recurrent_activation, z[:, 3 * units :], out=z[:, 3 * units :])


def lstm_step_numpy(
    z, h_projection, c_prev, c, h, default_activations, activation, recurrent_activation
):
    """One forward step as NumPy passes and small kernels, for any activations
    and for float64: z (the step's input projection) becomes the activated
    gates, c and h receive c_t and h_t."""
    units = c.shape[1]
    z += h_projection
    if default_activations:
        np.tanh(z, out=z)
        lstm_cell_update_from_tanh(z, c_prev, c)
    else:
        activate_lstm_gates(z, units, activation, recurrent_activation)
        lstm_cell_update(z, c_prev, c)
    apply_activation(activation, c, out=h)
    h *= z[:, 3 * units :]  # h_t = o * act(c_t)


@blas_held_if_shared_out
def lstm_forward(
    x, h0, c0, kernel, recurrent_kernel, bias, activation, recurrent_activation
):
    activation_code(activation)  # raises ValueError for an unknown name
    activation_code(recurrent_activation)
    check_shapes("lstm", 4, x, h0, kernel, recurrent_kernel)
    check_shape("lstm", "c0", c0, h0.shape)
    check_shape("lstm", "bias", bias, (kernel.shape[1],))
    dtype = x.dtype
    h0, c0, kernel, recurrent_kernel, bias = as_contiguous(
        dtype, h0, c0, kernel, recurrent_kernel, bias
    )
    units = recurrent_kernel.shape[0]
    # The default activations (tanh, sigmoid) take a shortcut: sigmoid(z) =
    # 0.5 + 0.5 * tanh(z / 2), and halving the i, f, o columns of the weights
    # and bias makes every product deliver z / 2 for those gates.  Then one
    # NumPy tanh pass activates all four gates of a step at once (instead of
    # four passes per sigmoid block), and the cell-update kernel finishes the
    # sigmoids on its way.  Halving is exact in floating point, so the values
    # are those of the general path.
    default_activations = activation == "tanh" and recurrent_activation == "sigmoid"
    if default_activations:
        halve_sigmoid_gates = np.full(4 * units, 0.5, dtype=dtype)
        halve_sigmoid_gates[2 * units : 3 * units] = 1.0
        kernel = kernel * halve_sigmoid_gates
        recurrent_kernel = recurrent_kernel * halve_sigmoid_gates
        bias = bias * halve_sigmoid_gates
    # Each step's slot starts as its input projection and becomes its gates.
    gates = project_inputs(x, kernel, bias)
    steps, batch, _ = gates.shape
    h = np.empty((steps, batch, units), dtype=dtype)
    c = np.empty((steps, batch, units), dtype=dtype)
    # float32 runs each step in one fused kernel with its own tanh; float64
    # keeps NumPy's tanh, accurate to the last bit, which the tests compare
    # against the reference at 1e-10.
    fused_float32_step = default_activations and dtype == np.float32

    def recurrence(rows):
        """All steps for the batch rows `rows`: they depend on no other row."""
        h_projection = np.empty((rows.stop - rows.start, 4 * units), dtype=dtype)
        for t in range(steps):
            h_prev = state_before(t, h, h0)[rows]
            np.matmul(h_prev, recurrent_kernel, out=h_projection)
            z = gates[t, rows]
            c_prev = state_before(t, c, c0)[rows]
            if fused_float32_step:
                lstm_step_float32(z, h_projection, c_prev, c[t, rows], h[t, rows])
            else:
                lstm_step_numpy(
                    z, h_projection, c_prev, c[t, rows], h[t, rows],
                    default_activations, activation, recurrent_activation,
                )

    run_batch_chunks(batch, recurrence)
    return batch_major(h), batch_major(c), batch_major(gates)


@blas_held_if_shared_out
def lstm_backward(
    x,
    h0,
    c0,
    kernel,
    recurrent_kernel,
    h_seq,
    c_seq,
    gates,
    grad_h_seq,
    grad_c_last,
    activation,
    recurrent_activation,
    need_grad_x=True,
):
    act = activation_code(activation)
    rec_act = activation_code(recurrent_activation)
    check_shapes("lstm", 4, x, h0, kernel, recurrent_kernel)
    units = recurrent_kernel.shape[0]
    check_shape("lstm", "c0", c0, h0.shape)
    check_shape("lstm", "grad_c_last", grad_c_last, h0.shape)
    check_sequences(
        "lstm", x, units,
        h_seq=(h_seq, 1), c_seq=(c_seq, 1), gates=(gates, 4), grad_h_seq=(grad_h_seq, 1),
    )
    dtype = x.dtype
    h0, c0, kernel, recurrent_kernel = as_contiguous(dtype, h0, c0, kernel, recurrent_kernel)
    x, h, c, gates, grad_h_seq = (
        time_major(a, dtype) for a in (x, h_seq, c_seq, gates, grad_h_seq)
    )
    recurrent_kernel_t = transposed_copy(recurrent_kernel)
    # act(c_t) for every step in one vectorized pass, outside the time loop.
    act_c = np.empty_like(c)
    apply_activation(activation, c, out=act_c)

    grad_c = np.array(grad_c_last, dtype=dtype, order="C")  # a private copy, updated in place
    grad_z = np.empty_like(gates)
    grad_h0 = np.empty_like(h0)
    default_activations = act == TANH and rec_act == SIGMOID

    def recurrence(rows):
        """All steps, last to first, for the batch rows `rows`."""
        grad_h_from_later = np.zeros((rows.stop - rows.start, units), dtype=dtype)
        for t in reversed(range(gates.shape[0])):
            step_arrays = (
                grad_h_seq[t, rows], grad_h_from_later, grad_c[rows], gates[t, rows],
                act_c[t, rows], state_before(t, c, c0)[rows], grad_z[t, rows],
            )
            if default_activations:
                lstm_step_backward_tanh_sigmoid(*step_arrays)
            else:
                lstm_step_backward(*step_arrays, act, rec_act)
            np.matmul(grad_z[t, rows], recurrent_kernel_t, out=grad_h_from_later)
        grad_h0[rows] = grad_h_from_later

    run_batch_chunks(h0.shape[0], recurrence)
    grad_x, grad_kernel, grad_recurrent_kernel, grad_bias, _ = weight_gradients(
        x, h, h0, grad_z, grad_z, kernel, need_grad_x
    )
    return grad_x, grad_h0, grad_c, grad_kernel, grad_recurrent_kernel, grad_bias


# --------------------------------------------------------------------------
# GRU, Keras reset_after=True, gate order z, r, h
# --------------------------------------------------------------------------


@njit(cache=True, nogil=True, error_model="numpy")
def gru_step_float32(x_projection, h_projection, recurrent_bias, h_prev, gates, h):
    """One whole forward step for float32 and the default activations (tanh,
    sigmoid), with the LSTM's tanh_float32 and sigmoid(v) = 0.5 + 0.5 tanh(v / 2).
    Per sample and unit: the z and r gates, the candidate hh = tanh(xz_h + r *
    hz_h) and h_t = z h_{t-1} + (1 - z) hh, in one pass; gates receives z, r,
    hh and hz_h as in the general path, which needs five passes and six
    NumPy calls for the same step."""
    batch, units = h.shape
    for n in range(batch):
        x_row = x_projection[n]
        projection_row = h_projection[n]
        gate_row = gates[n]
        # z and r side by side: sigmoid of the two projections and the bias.
        for k in range(2 * units):
            gate_row[k] = HALF + HALF * tanh_float32(
                HALF * (x_row[k] + projection_row[k] + recurrent_bias[k]))
        z_row = gate_row[:units]
        r_row = gate_row[units : 2 * units]
        candidate_row = gate_row[2 * units : 3 * units]
        hz_h_row = gate_row[3 * units :]
        x_h_row = x_row[2 * units :]
        projection_h_row = projection_row[2 * units :]
        bias_h = recurrent_bias[2 * units :]
        h_prev_row = h_prev[n]
        h_row = h[n]
        for j in range(units):
            hz_h = projection_h_row[j] + bias_h[j]
            hh = tanh_float32(x_h_row[j] + r_row[j] * hz_h)
            hz_h_row[j] = hz_h
            candidate_row[j] = hh
            z = z_row[j]
            h_row[j] = z * h_prev_row[j] + (ONE - z) * hh


@njit(cache=True, nogil=True)
def gru_gate_inputs(x_projection, h_projection, recurrent_bias, gates):
    """Pre-activations of z and r, and hz_h (the recurrent candidate part)."""
    batch, three_units = h_projection.shape
    units = three_units // 3
    for n in range(batch):
        for j in range(2 * units):  # z and r side by side
            gates[n, j] = x_projection[n, j] + h_projection[n, j] + recurrent_bias[j]
        for j in range(2 * units, 3 * units):
            gates[n, units + j] = h_projection[n, j] + recurrent_bias[j]


@njit(cache=True, nogil=True)
def gru_candidate_input(x_projection, gates):
    """Pre-activation of the candidate: xz_h + r * hz_h (reset after the product)."""
    batch, four_units = gates.shape
    units = four_units // 4
    for n in range(batch):
        for j in range(units):
            r = gates[n, units + j]
            hz_h = gates[n, 3 * units + j]
            gates[n, 2 * units + j] = x_projection[n, 2 * units + j] + r * hz_h


@njit(cache=True, nogil=True)
def gru_state_update(gates, h_prev, h):
    """h_t = z * h_{t-1} + (1 - z) * hh."""
    batch, units = h.shape
    for n in range(batch):
        for j in range(units):
            z = gates[n, j]
            hh = gates[n, 2 * units + j]
            h[n, j] = z * h_prev[n, j] + (1.0 - z) * hh


@njit(cache=True, nogil=True)
def gru_step_backward(
    grad_h_seq, grad_h_from_later, grad_h_direct, gates, h_prev, grad_xz, grad_hz, act, rec_act
):
    """All (N, ...) arrays of step t.  h_{t-1} reaches h_t twice: through hz
    (grad_h_from_later, a matrix product done outside) and directly through
    z * h_{t-1} (grad_h_direct, which enters with step t+1's share and leaves
    with step t's)."""
    batch, units = h_prev.shape
    for n in range(batch):
        for j in range(units):
            z = gates[n, j]
            r = gates[n, units + j]
            hh = gates[n, 2 * units + j]
            hz_h = gates[n, 3 * units + j]
            grad_h = grad_h_seq[n, j] + grad_h_from_later[n, j] + grad_h_direct[n, j]
            grad_candidate = grad_h * (1.0 - z) * activation_derivative(act, hh)
            grad_z_pre = grad_h * (h_prev[n, j] - hh) * activation_derivative(rec_act, z)
            grad_r_pre = grad_candidate * hz_h * activation_derivative(rec_act, r)
            grad_xz[n, j] = grad_z_pre
            grad_xz[n, units + j] = grad_r_pre
            grad_xz[n, 2 * units + j] = grad_candidate
            grad_hz[n, j] = grad_z_pre
            grad_hz[n, units + j] = grad_r_pre
            grad_hz[n, 2 * units + j] = grad_candidate * r
            grad_h_direct[n, j] = grad_h * z


def gru_step_numpy(
    x_projection, h_projection, recurrent_bias, h_prev, gates, h, activation, recurrent_activation
):
    """One forward step as small kernels and NumPy activation passes, for any
    activations and for float64 (r must be activated before the candidate's
    input can be formed, hence the order)."""
    units = h.shape[1]
    gru_gate_inputs(x_projection, h_projection, recurrent_bias, gates)
    z_and_r = gates[:, : 2 * units]
    apply_activation(recurrent_activation, z_and_r, out=z_and_r)
    gru_candidate_input(x_projection, gates)
    candidate = gates[:, 2 * units : 3 * units]
    apply_activation(activation, candidate, out=candidate)
    gru_state_update(gates, h_prev, h)


@blas_held_if_shared_out
def gru_forward(x, h0, kernel, recurrent_kernel, bias, activation, recurrent_activation):
    activation_code(activation)  # raises ValueError for an unknown name
    activation_code(recurrent_activation)
    check_shapes("gru", 3, x, h0, kernel, recurrent_kernel)
    # Keras reset_after=True: one bias row for each of the two projections.
    check_shape("gru", "bias", bias, (2, kernel.shape[1]))
    dtype = x.dtype
    h0, kernel, recurrent_kernel, bias = as_contiguous(dtype, h0, kernel, recurrent_kernel, bias)
    units = recurrent_kernel.shape[0]
    x_projection = project_inputs(x, kernel, bias[0])
    steps, batch, _ = x_projection.shape
    h = np.empty((steps, batch, units), dtype=dtype)
    gates = np.empty((steps, batch, 4 * units), dtype=dtype)

    # float32 with the default activations: one fused kernel per step (see
    # lstm_forward); otherwise NumPy passes and small kernels.
    fused_float32_step = (
        dtype == np.float32 and activation == "tanh" and recurrent_activation == "sigmoid"
    )

    def recurrence(rows):
        """All steps for the batch rows `rows` (see run_batch_chunks)."""
        h_projection = np.empty((rows.stop - rows.start, 3 * units), dtype=dtype)
        for t in range(steps):
            h_prev = state_before(t, h, h0)[rows]
            step_gates = gates[t, rows]
            np.matmul(h_prev, recurrent_kernel, out=h_projection)
            step_arrays = (x_projection[t, rows], h_projection, bias[1], h_prev, step_gates,
                           h[t, rows])
            if fused_float32_step:
                gru_step_float32(*step_arrays)
            else:
                gru_step_numpy(*step_arrays, activation, recurrent_activation)

    run_batch_chunks(batch, recurrence)
    return batch_major(h), batch_major(gates)


@blas_held_if_shared_out
def gru_backward(
    x, h0, kernel, recurrent_kernel, h_seq, gates, grad_h_seq, activation, recurrent_activation,
    need_grad_x=True,
):
    act = activation_code(activation)
    rec_act = activation_code(recurrent_activation)
    check_shapes("gru", 3, x, h0, kernel, recurrent_kernel)
    units = recurrent_kernel.shape[0]
    check_sequences(
        "gru", x, units, h_seq=(h_seq, 1), gates=(gates, 4), grad_h_seq=(grad_h_seq, 1)
    )
    dtype = x.dtype
    h0, kernel, recurrent_kernel = as_contiguous(dtype, h0, kernel, recurrent_kernel)
    x, h, gates, grad_h_seq = (time_major(a, dtype) for a in (x, h_seq, gates, grad_h_seq))
    recurrent_kernel_t = transposed_copy(recurrent_kernel)

    steps, batch, _ = h.shape
    grad_xz = np.empty((steps, batch, 3 * units), dtype=dtype)
    grad_hz = np.empty((steps, batch, 3 * units), dtype=dtype)
    grad_h0 = np.empty_like(h0)

    def recurrence(rows):
        """All steps, last to first, for the batch rows `rows`."""
        grad_h_from_later = np.zeros((rows.stop - rows.start, units), dtype=dtype)
        grad_h_direct = np.zeros((rows.stop - rows.start, units), dtype=dtype)
        for t in reversed(range(steps)):
            gru_step_backward(
                grad_h_seq[t, rows], grad_h_from_later, grad_h_direct, gates[t, rows],
                state_before(t, h, h0)[rows], grad_xz[t, rows], grad_hz[t, rows], act, rec_act,
            )
            np.matmul(grad_hz[t, rows], recurrent_kernel_t, out=grad_h_from_later)
        grad_h0[rows] = grad_h_from_later + grad_h_direct

    run_batch_chunks(batch, recurrence)
    grad_x, grad_kernel, grad_recurrent_kernel, grad_input_bias, grad_recurrent_bias = (
        weight_gradients(x, h, h0, grad_xz, grad_hz, kernel, need_grad_x)
    )
    grad_bias = np.stack([grad_input_bias, grad_recurrent_bias])
    return grad_x, grad_h0, grad_kernel, grad_recurrent_kernel, grad_bias
