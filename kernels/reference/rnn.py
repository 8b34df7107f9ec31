"""Recurrent kernels in plain NumPy: SimpleRNN, LSTM and GRU.

This file is the readable specification of the recurrences and of
backpropagation through time (BPTT).  Each function runs one plain loop over
time and spells out the gate arithmetic; the Numba set (kernels/cpu/rnn.py)
must give the same numbers, only faster.

Shapes and gate orders follow Keras, so weights move between frameworks as is:

    x (N, T, D)          a batch of N sequences of T steps of D features
    kernel (D, G*U)      input weights, G gates side by side
    recurrent_kernel (U, G*U)
    LSTM gates i, f, c, o (G = 4);  GRU gates z, r, h (G = 3, reset_after=True)

Backward functions receive `grad_h_seq` (N, T, U): the gradient reaching the
output of every step.  Walking time backwards, the gradient of h_t is that
incoming gradient plus what flows back from step t+1 through the recurrence.

Activation derivatives are computed from the activation's *output*, which the
forward pass already stored, so nothing has to be recomputed from the inputs.
"""
import numpy as np

ACTIVATION_NAMES = ("linear", "relu", "tanh", "sigmoid", "hard_sigmoid")


def check_activation_name(name):
    if name not in ACTIVATION_NAMES:
        raise ValueError(
            f"unknown activation {name!r} for a recurrent kernel; "
            f"expected one of {', '.join(ACTIVATION_NAMES)}"
        )


def activate(name, z):
    """Apply the activation called `name` to the pre-activation `z`."""
    if name == "linear":
        return z.copy()
    if name == "relu":
        return np.maximum(z, 0)
    if name == "tanh":
        return np.tanh(z)
    if name == "sigmoid":
        # 1 / (1 + exp(-z)) written through tanh: equal in exact arithmetic,
        # but exp(-z) would overflow (and warn) for very negative z.
        return 0.5 * (1 + np.tanh(0.5 * z))
    if name == "hard_sigmoid":
        return np.clip(z / 6 + 0.5, 0, 1)
    check_activation_name(name)


def activation_derivative(name, y):
    """d act(z) / dz, written in terms of the output y = act(z)."""
    if name == "linear":
        return np.ones_like(y)
    if name == "relu":
        return (y > 0).astype(y.dtype)
    if name == "tanh":
        return 1 - y * y
    if name == "sigmoid":
        return y * (1 - y)
    if name == "hard_sigmoid":
        # Flat (zero slope) where the clip is active, 1/6 in between.
        return np.where((y > 0) & (y < 1), 1 / 6, 0).astype(y.dtype)
    check_activation_name(name)


def previous_step(sequence, initial, t):
    """The state before step t: the initial state for t == 0."""
    return initial if t == 0 else sequence[:, t - 1]


# --------------------------------------------------------------------------
# SimpleRNN:  h_t = act(x_t @ kernel + h_{t-1} @ recurrent_kernel + bias)
# --------------------------------------------------------------------------


def simple_rnn_forward(x, h0, kernel, recurrent_kernel, bias, activation):
    check_activation_name(activation)
    batch, steps, _ = x.shape
    units = kernel.shape[1]
    h_seq = np.empty((batch, steps, units), dtype=x.dtype)
    h = h0
    for t in range(steps):
        z = x[:, t] @ kernel + h @ recurrent_kernel + bias
        h = activate(activation, z)
        h_seq[:, t] = h
    return h_seq


def simple_rnn_backward(
    x, h0, kernel, recurrent_kernel, h_seq, grad_h_seq, activation, need_grad_x=True
):
    check_activation_name(activation)
    steps = x.shape[1]
    # grad_x is skipped (returned as None) when the caller says x needs no
    # gradient: the first layer of a model reads data.
    grad_x = np.zeros_like(x) if need_grad_x else None
    grad_kernel = np.zeros(kernel.shape, dtype=x.dtype)
    grad_recurrent_kernel = np.zeros(recurrent_kernel.shape, dtype=x.dtype)
    grad_bias = np.zeros(kernel.shape[1], dtype=x.dtype)
    # Gradient flowing into h_t from step t+1; nothing comes after the last step.
    grad_h_from_later = np.zeros(h0.shape, dtype=x.dtype)
    for t in reversed(range(steps)):
        h_prev = previous_step(h_seq, h0, t)
        grad_h = grad_h_seq[:, t] + grad_h_from_later
        grad_z = grad_h * activation_derivative(activation, h_seq[:, t])
        if need_grad_x:
            grad_x[:, t] = grad_z @ kernel.T
        grad_kernel += x[:, t].T @ grad_z
        grad_recurrent_kernel += h_prev.T @ grad_z
        grad_bias += grad_z.sum(axis=0)
        grad_h_from_later = grad_z @ recurrent_kernel.T
    grad_h0 = grad_h_from_later
    return grad_x, grad_h0, grad_kernel, grad_recurrent_kernel, grad_bias


# --------------------------------------------------------------------------
# LSTM, Keras gate order i, f, c, o
# --------------------------------------------------------------------------


def split_gates(array, count):
    """Split the last axis into `count` equal gate blocks."""
    return np.split(array, count, axis=-1)


def lstm_forward(x, h0, c0, kernel, recurrent_kernel, bias, activation, recurrent_activation):
    check_activation_name(activation)
    check_activation_name(recurrent_activation)
    batch, steps, _ = x.shape
    units = recurrent_kernel.shape[0]
    h_seq = np.empty((batch, steps, units), dtype=x.dtype)
    c_seq = np.empty((batch, steps, units), dtype=x.dtype)
    gates = np.empty((batch, steps, 4 * units), dtype=x.dtype)
    h, c = h0, c0
    for t in range(steps):
        z = x[:, t] @ kernel + h @ recurrent_kernel + bias
        z_i, z_f, z_c, z_o = split_gates(z, 4)
        i = activate(recurrent_activation, z_i)  # input gate: how much new to write
        f = activate(recurrent_activation, z_f)  # forget gate: how much old to keep
        g = activate(activation, z_c)  # candidate cell content
        o = activate(recurrent_activation, z_o)  # output gate: how much to show
        c = f * c + i * g
        h = o * activate(activation, c)
        h_seq[:, t] = h
        c_seq[:, t] = c
        gates[:, t] = np.concatenate([i, f, g, o], axis=-1)
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
    need_grad_x=True,
):
    check_activation_name(activation)
    check_activation_name(recurrent_activation)
    steps = x.shape[1]
    # grad_x is skipped (returned as None) when the caller says x needs no
    # gradient: the first layer of a model reads data.
    grad_x = np.zeros_like(x) if need_grad_x else None
    grad_kernel = np.zeros(kernel.shape, dtype=x.dtype)
    grad_recurrent_kernel = np.zeros(recurrent_kernel.shape, dtype=x.dtype)
    grad_bias = np.zeros(kernel.shape[1], dtype=x.dtype)
    grad_h_from_later = np.zeros(h0.shape, dtype=x.dtype)
    # The cell state reaches the next step directly (c_{t+1} = f * c_t + ...),
    # so its gradient is carried along on its own, starting from grad_c_last.
    grad_c = grad_c_last.astype(x.dtype)
    for t in reversed(range(steps)):
        c_prev = previous_step(c_seq, c0, t)
        h_prev = previous_step(h_seq, h0, t)
        i, f, g, o = split_gates(gates[:, t], 4)
        act_c = activate(activation, c_seq[:, t])

        grad_h = grad_h_seq[:, t] + grad_h_from_later
        # h_t = o * act(c_t)
        grad_o = grad_h * act_c
        grad_c = grad_c + grad_h * o * activation_derivative(activation, act_c)
        # c_t = f * c_{t-1} + i * g
        grad_i = grad_c * g
        grad_f = grad_c * c_prev
        grad_g = grad_c * i
        # Through the gate activations to the pre-activations z.
        grad_z = np.concatenate(
            [
                grad_i * activation_derivative(recurrent_activation, i),
                grad_f * activation_derivative(recurrent_activation, f),
                grad_g * activation_derivative(activation, g),
                grad_o * activation_derivative(recurrent_activation, o),
            ],
            axis=-1,
        )
        # z = x_t @ kernel + h_{t-1} @ recurrent_kernel + bias
        if need_grad_x:
            grad_x[:, t] = grad_z @ kernel.T
        grad_kernel += x[:, t].T @ grad_z
        grad_recurrent_kernel += h_prev.T @ grad_z
        grad_bias += grad_z.sum(axis=0)
        grad_h_from_later = grad_z @ recurrent_kernel.T
        grad_c = grad_c * f
    grad_h0 = grad_h_from_later
    grad_c0 = grad_c
    return grad_x, grad_h0, grad_c0, grad_kernel, grad_recurrent_kernel, grad_bias


# --------------------------------------------------------------------------
# GRU, Keras reset_after=True, gate order z, r, h
# --------------------------------------------------------------------------


def gru_forward(x, h0, kernel, recurrent_kernel, bias, activation, recurrent_activation):
    check_activation_name(activation)
    check_activation_name(recurrent_activation)
    batch, steps, _ = x.shape
    units = recurrent_kernel.shape[0]
    h_seq = np.empty((batch, steps, units), dtype=x.dtype)
    gates = np.empty((batch, steps, 4 * units), dtype=x.dtype)
    h = h0
    for t in range(steps):
        xz = x[:, t] @ kernel + bias[0]
        hz = h @ recurrent_kernel + bias[1]
        xz_z, xz_r, xz_h = split_gates(xz, 3)
        hz_z, hz_r, hz_h = split_gates(hz, 3)
        z = activate(recurrent_activation, xz_z + hz_z)  # update gate: keep old h
        r = activate(recurrent_activation, xz_r + hz_r)  # reset gate
        # reset_after=True: r scales the recurrent part after its matmul.
        hh = activate(activation, xz_h + r * hz_h)  # candidate state
        h = z * h + (1 - z) * hh
        h_seq[:, t] = h
        gates[:, t] = np.concatenate([z, r, hh, hz_h], axis=-1)
    return h_seq, gates


def gru_backward(
    x, h0, kernel, recurrent_kernel, h_seq, gates, grad_h_seq, activation, recurrent_activation,
    need_grad_x=True,
):
    check_activation_name(activation)
    check_activation_name(recurrent_activation)
    steps = x.shape[1]
    # grad_x is skipped (returned as None) when the caller says x needs no
    # gradient: the first layer of a model reads data.
    grad_x = np.zeros_like(x) if need_grad_x else None
    grad_kernel = np.zeros(kernel.shape, dtype=x.dtype)
    grad_recurrent_kernel = np.zeros(recurrent_kernel.shape, dtype=x.dtype)
    grad_bias = np.zeros((2, kernel.shape[1]), dtype=x.dtype)
    grad_h_from_later = np.zeros(h0.shape, dtype=x.dtype)
    for t in reversed(range(steps)):
        h_prev = previous_step(h_seq, h0, t)
        z, r, hh, hz_h = split_gates(gates[:, t], 4)

        grad_h = grad_h_seq[:, t] + grad_h_from_later
        # h_t = z * h_{t-1} + (1 - z) * hh
        grad_z = grad_h * (h_prev - hh)
        grad_hh = grad_h * (1 - z)
        # hh = act(xz_h + r * hz_h)
        grad_candidate = grad_hh * activation_derivative(activation, hh)
        grad_r = grad_candidate * hz_h
        grad_z_pre = grad_z * activation_derivative(recurrent_activation, z)
        grad_r_pre = grad_r * activation_derivative(recurrent_activation, r)
        # Gradients of the two projections xz (input side) and hz (recurrent
        # side): they share the z and r parts, only the candidate part differs.
        grad_xz = np.concatenate([grad_z_pre, grad_r_pre, grad_candidate], axis=-1)
        grad_hz = np.concatenate([grad_z_pre, grad_r_pre, grad_candidate * r], axis=-1)

        if need_grad_x:
            grad_x[:, t] = grad_xz @ kernel.T
        grad_kernel += x[:, t].T @ grad_xz
        grad_bias[0] += grad_xz.sum(axis=0)
        grad_recurrent_kernel += h_prev.T @ grad_hz
        grad_bias[1] += grad_hz.sum(axis=0)
        # h_{t-1} reaches h_t twice: directly through z * h_{t-1}, and through hz.
        grad_h_from_later = grad_h * z + grad_hz @ recurrent_kernel.T
    grad_h0 = grad_h_from_later
    return grad_x, grad_h0, grad_kernel, grad_recurrent_kernel, grad_bias
