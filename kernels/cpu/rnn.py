"""Recurrent kernels for the CPU: SimpleRNN, LSTM and GRU with Numba.

Same contract and same numbers as kernels/reference/rnn.py; read that file
first for the mathematics.  Here the work is arranged for speed:

* The input projection `x_t @ kernel` does not depend on the recurrence, so it
  is done for all time steps at once, as one large matrix product (BLAS).
* Each step then needs one matrix product for the recurrent part
  `h_{t-1} @ recurrent_kernel` (BLAS through NumPy), followed by ONE fused
  Numba kernel doing all the elementwise gate arithmetic of that step, in a
  single pass over memory instead of a dozen NumPy temporaries.
* Backward, each step's fused kernel turns the incoming gradient into the
  gradient of the gate pre-activations, `grad_z`, kept for every step in an
  (N, T, G*U) array.  The weight gradients are sums over time of products with
  `grad_z`, so they are computed at the end with one matrix product each.

The fused step kernels take whole (N, T, ...) arrays plus the step index `t`
rather than slices: every array Numba sees is then C-contiguous, so each
kernel compiles once per dtype only.
"""
import numpy as np
from numba import njit, prange

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


@njit(cache=True)
def activate(code, z):
    if code == TANH:
        return np.tanh(z)
    if code == SIGMOID:
        # Same overflow-free form as the reference: 1 / (1 + exp(-z)).
        return 0.5 * (1.0 + np.tanh(0.5 * z))
    if code == RELU:
        return max(z, 0.0)
    if code == HARD_SIGMOID:
        return min(max(z / 6.0 + 0.5, 0.0), 1.0)
    return z + 0.0  # linear; "+ 0.0" gives every branch the same type


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


def as_contiguous(dtype, *arrays):
    """Every array C-contiguous in one dtype: one compiled variant per dtype."""
    return [np.ascontiguousarray(array, dtype=dtype) for array in arrays]


def check_shape(cell, name, array, wanted):
    if np.shape(array) != wanted:
        raise ValueError(f"{cell}: {name} has shape {np.shape(array)}, expected {wanted}")


def check_shapes(cell, gate_count, x, h0, kernel, recurrent_kernel):
    """Clear errors here, because the Numba kernels do not check their indices."""
    if np.ndim(x) != 3:
        raise ValueError(
            f"{cell} expects x of shape (batch, time, features), got {np.shape(x)}; "
            "a recurrent layer fed by another one needs return_sequences=True there"
        )
    batch, _, features = x.shape
    units = np.shape(recurrent_kernel)[0]
    check_shape(cell, "h0", h0, (batch, units))
    check_shape(cell, "kernel", kernel, (features, gate_count * units))
    check_shape(cell, "recurrent_kernel", recurrent_kernel, (units, gate_count * units))


def project_inputs(x, kernel):
    """x_t @ kernel for every step at once: (N, T, D) -> (N, T, G*U)."""
    batch, steps, features = x.shape
    return (x.reshape(batch * steps, features) @ kernel).reshape(batch, steps, -1)


def previous_states(h_seq, h0):
    """h_{t-1} for every t, (N, T, U): h0 followed by all but the last output."""
    h_prev = np.empty_like(h_seq)
    h_prev[:, 0] = h0
    h_prev[:, 1:] = h_seq[:, :-1]
    return h_prev


def weight_gradients(x, h_prev, grad_input_side, grad_recurrent_side, kernel):
    """The sums over time, each as one matrix product over all N*T rows.

    Returns grad_x, grad_kernel, grad_recurrent_kernel and the two bias sums.
    """
    batch, steps, features = x.shape
    rows = batch * steps
    grad_in = grad_input_side.reshape(rows, -1)
    grad_rec = grad_recurrent_side.reshape(rows, -1)
    grad_x = (grad_in @ kernel.T).reshape(batch, steps, features)
    grad_kernel = x.reshape(rows, features).T @ grad_in
    grad_recurrent_kernel = h_prev.reshape(rows, -1).T @ grad_rec
    return grad_x, grad_kernel, grad_recurrent_kernel, grad_in.sum(axis=0), grad_rec.sum(axis=0)


def state_before(t, h_seq, h0):
    """The (N, U) state entering step t, as a view (no copy)."""
    return h0 if t == 0 else h_seq[:, t - 1]


# --------------------------------------------------------------------------
# SimpleRNN
# --------------------------------------------------------------------------


@njit(cache=True, parallel=True)
def simple_rnn_step_forward(t, x_projection, h_projection, h_seq, act):
    batch, units = h_projection.shape
    for n in prange(batch):
        for j in range(units):
            h_seq[n, t, j] = activate(act, x_projection[n, t, j] + h_projection[n, j])


@njit(cache=True, parallel=True)
def simple_rnn_step_backward(t, grad_h_seq, grad_h_from_later, h_seq, grad_z, act):
    batch, units = grad_h_from_later.shape
    for n in prange(batch):
        for j in range(units):
            grad_h = grad_h_seq[n, t, j] + grad_h_from_later[n, j]
            grad_z[n, t, j] = grad_h * activation_derivative(act, h_seq[n, t, j])


def simple_rnn_forward(x, h0, kernel, recurrent_kernel, bias, activation):
    act = activation_code(activation)
    check_shapes("simple_rnn", 1, x, h0, kernel, recurrent_kernel)
    check_shape("simple_rnn", "bias", bias, (kernel.shape[1],))
    x, h0, kernel, recurrent_kernel, bias = as_contiguous(
        x.dtype, x, h0, kernel, recurrent_kernel, bias
    )
    batch, steps, _ = x.shape
    units = recurrent_kernel.shape[0]
    x_projection = project_inputs(x, kernel) + bias
    h_projection = np.empty((batch, units), dtype=x.dtype)
    h_seq = np.empty((batch, steps, units), dtype=x.dtype)
    for t in range(steps):
        np.matmul(state_before(t, h_seq, h0), recurrent_kernel, out=h_projection)
        simple_rnn_step_forward(t, x_projection, h_projection, h_seq, act)
    return h_seq


def simple_rnn_backward(x, h0, kernel, recurrent_kernel, h_seq, grad_h_seq, activation):
    act = activation_code(activation)
    check_shapes("simple_rnn", 1, x, h0, kernel, recurrent_kernel)
    x, h0, kernel, recurrent_kernel, h_seq, grad_h_seq = as_contiguous(
        x.dtype, x, h0, kernel, recurrent_kernel, h_seq, grad_h_seq
    )
    grad_z = np.empty_like(h_seq)
    grad_h_from_later = np.zeros_like(h0)
    for t in reversed(range(x.shape[1])):
        simple_rnn_step_backward(t, grad_h_seq, grad_h_from_later, h_seq, grad_z, act)
        np.matmul(grad_z[:, t], recurrent_kernel.T, out=grad_h_from_later)
    grad_x, grad_kernel, grad_recurrent_kernel, grad_bias, _ = weight_gradients(
        x, previous_states(h_seq, h0), grad_z, grad_z, kernel
    )
    return grad_x, grad_h_from_later, grad_kernel, grad_recurrent_kernel, grad_bias


# --------------------------------------------------------------------------
# LSTM, Keras gate order i, f, c, o
# --------------------------------------------------------------------------


@njit(cache=True, parallel=True)
def lstm_step_forward(t, x_projection, h_projection, c0, h_seq, c_seq, gates, act, rec_act):
    batch, units = c0.shape
    for n in prange(batch):
        for j in range(units):
            c_prev = c0[n, j] if t == 0 else c_seq[n, t - 1, j]
            i = activate(rec_act, x_projection[n, t, j] + h_projection[n, j])
            f = activate(rec_act, x_projection[n, t, units + j] + h_projection[n, units + j])
            g = activate(act, x_projection[n, t, 2 * units + j] + h_projection[n, 2 * units + j])
            o = activate(rec_act, x_projection[n, t, 3 * units + j] + h_projection[n, 3 * units + j])
            c = f * c_prev + i * g
            c_seq[n, t, j] = c
            h_seq[n, t, j] = o * activate(act, c)
            gates[n, t, j] = i
            gates[n, t, units + j] = f
            gates[n, t, 2 * units + j] = g
            gates[n, t, 3 * units + j] = o


@njit(cache=True, parallel=True)
def lstm_step_backward(
    t, grad_h_seq, grad_h_from_later, grad_c, c0, c_seq, gates, grad_z, act, rec_act
):
    """grad_c holds the cell gradient from step t+1 and leaves with step t-1's."""
    batch, units = c0.shape
    for n in prange(batch):
        for j in range(units):
            i = gates[n, t, j]
            f = gates[n, t, units + j]
            g = gates[n, t, 2 * units + j]
            o = gates[n, t, 3 * units + j]
            c_prev = c0[n, j] if t == 0 else c_seq[n, t - 1, j]
            act_c = activate(act, c_seq[n, t, j])
            grad_h = grad_h_seq[n, t, j] + grad_h_from_later[n, j]
            grad_cell = grad_c[n, j] + grad_h * o * activation_derivative(act, act_c)
            grad_z[n, t, j] = grad_cell * g * activation_derivative(rec_act, i)
            grad_z[n, t, units + j] = grad_cell * c_prev * activation_derivative(rec_act, f)
            grad_z[n, t, 2 * units + j] = grad_cell * i * activation_derivative(act, g)
            grad_z[n, t, 3 * units + j] = grad_h * act_c * activation_derivative(rec_act, o)
            grad_c[n, j] = grad_cell * f


def lstm_forward(x, h0, c0, kernel, recurrent_kernel, bias, activation, recurrent_activation):
    act = activation_code(activation)
    rec_act = activation_code(recurrent_activation)
    check_shapes("lstm", 4, x, h0, kernel, recurrent_kernel)
    check_shape("lstm", "bias", bias, (kernel.shape[1],))
    x, h0, c0, kernel, recurrent_kernel, bias = as_contiguous(
        x.dtype, x, h0, c0, kernel, recurrent_kernel, bias
    )
    batch, steps, _ = x.shape
    units = recurrent_kernel.shape[0]
    x_projection = project_inputs(x, kernel) + bias
    h_projection = np.empty((batch, 4 * units), dtype=x.dtype)
    h_seq = np.empty((batch, steps, units), dtype=x.dtype)
    c_seq = np.empty((batch, steps, units), dtype=x.dtype)
    gates = np.empty((batch, steps, 4 * units), dtype=x.dtype)
    for t in range(steps):
        np.matmul(state_before(t, h_seq, h0), recurrent_kernel, out=h_projection)
        lstm_step_forward(t, x_projection, h_projection, c0, h_seq, c_seq, gates, act, rec_act)
    return h_seq, c_seq, gates


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
):
    act = activation_code(activation)
    rec_act = activation_code(recurrent_activation)
    check_shapes("lstm", 4, x, h0, kernel, recurrent_kernel)
    x, h0, c0, kernel, recurrent_kernel, h_seq, c_seq, gates, grad_h_seq = as_contiguous(
        x.dtype, x, h0, c0, kernel, recurrent_kernel, h_seq, c_seq, gates, grad_h_seq
    )
    grad_c = np.array(grad_c_last, dtype=x.dtype)  # a private copy, updated in place
    grad_z = np.empty_like(gates)
    grad_h_from_later = np.zeros_like(h0)
    for t in reversed(range(x.shape[1])):
        lstm_step_backward(
            t, grad_h_seq, grad_h_from_later, grad_c, c0, c_seq, gates, grad_z, act, rec_act
        )
        np.matmul(grad_z[:, t], recurrent_kernel.T, out=grad_h_from_later)
    grad_x, grad_kernel, grad_recurrent_kernel, grad_bias, _ = weight_gradients(
        x, previous_states(h_seq, h0), grad_z, grad_z, kernel
    )
    return grad_x, grad_h_from_later, grad_c, grad_kernel, grad_recurrent_kernel, grad_bias


# --------------------------------------------------------------------------
# GRU, Keras reset_after=True, gate order z, r, h
# --------------------------------------------------------------------------


@njit(cache=True, parallel=True)
def gru_step_forward(t, x_projection, h_projection, recurrent_bias, h0, h_seq, gates, act, rec_act):
    batch, units = h0.shape
    for n in prange(batch):
        for j in range(units):
            h_prev = h0[n, j] if t == 0 else h_seq[n, t - 1, j]
            z = activate(
                rec_act, x_projection[n, t, j] + h_projection[n, j] + recurrent_bias[j]
            )
            r = activate(
                rec_act,
                x_projection[n, t, units + j]
                + h_projection[n, units + j]
                + recurrent_bias[units + j],
            )
            hz_h = h_projection[n, 2 * units + j] + recurrent_bias[2 * units + j]
            hh = activate(act, x_projection[n, t, 2 * units + j] + r * hz_h)
            h_seq[n, t, j] = z * h_prev + (1.0 - z) * hh
            gates[n, t, j] = z
            gates[n, t, units + j] = r
            gates[n, t, 2 * units + j] = hh
            gates[n, t, 3 * units + j] = hz_h


@njit(cache=True, parallel=True)
def gru_step_backward(
    t, grad_h_seq, grad_h_from_later, grad_h_direct, h0, h_seq, gates, grad_xz, grad_hz, act, rec_act
):
    """h_{t-1} reaches h_t twice: through hz (grad_h_from_later, a matrix
    product done outside) and directly through z * h_{t-1} (grad_h_direct,
    which enters with step t+1's share and leaves with step t's)."""
    batch, units = h0.shape
    for n in prange(batch):
        for j in range(units):
            z = gates[n, t, j]
            r = gates[n, t, units + j]
            hh = gates[n, t, 2 * units + j]
            hz_h = gates[n, t, 3 * units + j]
            h_prev = h0[n, j] if t == 0 else h_seq[n, t - 1, j]
            grad_h = grad_h_seq[n, t, j] + grad_h_from_later[n, j] + grad_h_direct[n, j]
            grad_candidate = grad_h * (1.0 - z) * activation_derivative(act, hh)
            grad_z_pre = grad_h * (h_prev - hh) * activation_derivative(rec_act, z)
            grad_r_pre = grad_candidate * hz_h * activation_derivative(rec_act, r)
            grad_xz[n, t, j] = grad_z_pre
            grad_xz[n, t, units + j] = grad_r_pre
            grad_xz[n, t, 2 * units + j] = grad_candidate
            grad_hz[n, t, j] = grad_z_pre
            grad_hz[n, t, units + j] = grad_r_pre
            grad_hz[n, t, 2 * units + j] = grad_candidate * r
            grad_h_direct[n, j] = grad_h * z


def gru_forward(x, h0, kernel, recurrent_kernel, bias, activation, recurrent_activation):
    act = activation_code(activation)
    rec_act = activation_code(recurrent_activation)
    check_shapes("gru", 3, x, h0, kernel, recurrent_kernel)
    # Keras reset_after=True: one bias row for each of the two projections.
    check_shape("gru", "bias", bias, (2, kernel.shape[1]))
    x, h0, kernel, recurrent_kernel, bias = as_contiguous(
        x.dtype, x, h0, kernel, recurrent_kernel, bias
    )
    batch, steps, _ = x.shape
    units = recurrent_kernel.shape[0]
    x_projection = project_inputs(x, kernel) + bias[0]
    recurrent_bias = bias[1]
    h_projection = np.empty((batch, 3 * units), dtype=x.dtype)
    h_seq = np.empty((batch, steps, units), dtype=x.dtype)
    gates = np.empty((batch, steps, 4 * units), dtype=x.dtype)
    for t in range(steps):
        np.matmul(state_before(t, h_seq, h0), recurrent_kernel, out=h_projection)
        gru_step_forward(
            t, x_projection, h_projection, recurrent_bias, h0, h_seq, gates, act, rec_act
        )
    return h_seq, gates


def gru_backward(
    x, h0, kernel, recurrent_kernel, h_seq, gates, grad_h_seq, activation, recurrent_activation
):
    act = activation_code(activation)
    rec_act = activation_code(recurrent_activation)
    check_shapes("gru", 3, x, h0, kernel, recurrent_kernel)
    x, h0, kernel, recurrent_kernel, h_seq, gates, grad_h_seq = as_contiguous(
        x.dtype, x, h0, kernel, recurrent_kernel, h_seq, gates, grad_h_seq
    )
    batch, steps, _ = x.shape
    units = recurrent_kernel.shape[0]
    grad_xz = np.empty((batch, steps, 3 * units), dtype=x.dtype)
    grad_hz = np.empty((batch, steps, 3 * units), dtype=x.dtype)
    grad_h_from_later = np.zeros_like(h0)
    grad_h_direct = np.zeros_like(h0)
    for t in reversed(range(steps)):
        gru_step_backward(
            t,
            grad_h_seq,
            grad_h_from_later,
            grad_h_direct,
            h0,
            h_seq,
            gates,
            grad_xz,
            grad_hz,
            act,
            rec_act,
        )
        np.matmul(grad_hz[:, t], recurrent_kernel.T, out=grad_h_from_later)
    grad_x, grad_kernel, grad_recurrent_kernel, grad_input_bias, grad_recurrent_bias = (
        weight_gradients(x, previous_states(h_seq, h0), grad_xz, grad_hz, kernel)
    )
    grad_h0 = grad_h_from_later + grad_h_direct
    grad_bias = np.stack([grad_input_bias, grad_recurrent_bias])
    return grad_x, grad_h0, grad_kernel, grad_recurrent_kernel, grad_bias
