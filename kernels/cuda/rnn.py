"""SimpleRNN, LSTM and GRU on the GPU.

An LSTM forward whose shape fits runs all its steps in one launch
(rnn_sequence.py).  Otherwise, and for every backward pass and SimpleRNN and
GRU, each recurrence is split the way the GPU likes it:
- the input projection of all T steps, x @ kernel, is ONE big GEMM up front;
- every step is one small GEMM, h_{t-1} @ recurrent_kernel, then ONE fused
  kernel (rnn.cu) doing all of the step's gate arithmetic;
- backward walks time in reverse with one fused gate-gradient kernel and one
  GEMM per step, storing the gate gradients of every step, so that the weight
  gradients are again ONE GEMM each over all steps at the end.
GEMMs are cuBLAS calls through ``@``.  Shapes and gate orders are Keras's; see
docs/KERNELS.md and the reference set for the equations.
"""
import cupy

from . import rnn_sequence
from .loader import (
    activation_code,
    check_shape,
    contiguous,
    float_dtype,
    get_kernel,
    index,
    launch_over_elements,
)

CUDA_FILE = "rnn.cu"


# ----------------------------------------------------------------------------
# Shared pieces
# ----------------------------------------------------------------------------
def recurrent_sizes(layer, x, kernel, recurrent_kernel, gate_count):
    """(batch, steps, features, units) once the weights are checked against x."""
    if x.ndim != 3:
        raise ValueError(
            f"{layer}: input must be (batch, steps, features), got shape {tuple(x.shape)}; "
            f"if it comes from another recurrent layer, give that one return_sequences=True"
        )
    batch, steps, features = x.shape
    units = recurrent_kernel.shape[0]
    check_shape(f"{layer} kernel", kernel, (features, gate_count * units))
    check_shape(f"{layer} recurrent_kernel", recurrent_kernel, (units, gate_count * units))
    return batch, steps, features, units


def fresh_copy(array, dtype):
    """A contiguous copy that a kernel may overwrite without touching the caller's array."""
    return cupy.array(array, dtype=dtype, order="C", copy=True)


def step_arguments(batch, steps, units, t):
    return (index(batch), index(steps), index(units), index(t))


def previous_states(h0, h_seq):
    """(batch, steps, units) holding h_{t-1} at step t: h0, h_0, ..., h_{T-2}."""
    steps = h_seq.shape[1]
    # The slice keeps zero steps at zero (h0 alone would make one).
    return cupy.concatenate([h0[:, None, :], h_seq[:, :-1, :]], axis=1)[:, :steps]


def input_projection(x, kernel):
    """x @ kernel for all steps at once: (batch, steps, gate_count * units)."""
    batch, steps, features = x.shape
    return (x.reshape(-1, features) @ kernel).reshape(batch, steps, kernel.shape[1])


def weight_gradients(x, h0, h_seq, kernel, grad_input_side, grad_recurrent_side, need_grad_x):
    """grad_x, grad_kernel, grad_recurrent_kernel from the stored gate gradients.

    z_t = x_t @ kernel + h_{t-1} @ recurrent_kernel, so with all steps stacked
    as rows each gradient is one GEMM.  The GRU's input and recurrent sides
    differ (reset_after); for SimpleRNN and LSTM both are grad_z.  grad_x is
    None when need_grad_x is False (a first layer, reading data).
    """
    batch, steps, features = x.shape
    width = kernel.shape[1]
    grad_input_2d = grad_input_side.reshape(-1, width)
    grad_recurrent_2d = grad_recurrent_side.reshape(-1, width)
    grad_x = None
    if need_grad_x:
        grad_x = (grad_input_2d @ kernel.T).reshape(batch, steps, features)
    grad_kernel = x.reshape(-1, features).T @ grad_input_2d
    h_prev_2d = previous_states(h0, h_seq).reshape(-1, h0.shape[1])
    grad_recurrent_kernel = h_prev_2d.T @ grad_recurrent_2d
    return grad_x, grad_kernel, grad_recurrent_kernel


def column_sums(sequence):
    """Sum over batch and time of a (batch, steps, width) array: a bias gradient."""
    return sequence.reshape(-1, sequence.shape[-1]).sum(axis=0)


# ----------------------------------------------------------------------------
# SimpleRNN
# ----------------------------------------------------------------------------
def simple_rnn_forward(x, h0, kernel, recurrent_kernel, bias, activation):
    """h_t = act(x_t @ kernel + h_{t-1} @ recurrent_kernel + bias) -> h_seq (N, T, U)."""
    code = activation_code(activation)
    dtype = float_dtype(x)
    x = contiguous(x)
    kernel = contiguous(kernel, dtype)
    recurrent_kernel = contiguous(recurrent_kernel, dtype)
    bias = contiguous(bias, dtype)
    batch, steps, _, units = recurrent_sizes("SimpleRNN", x, kernel, recurrent_kernel, 1)
    check_shape("SimpleRNN bias", bias, (units,))
    check_shape("SimpleRNN initial state", h0, (batch, units))

    projection = input_projection(x, kernel)
    h_state = fresh_copy(h0, dtype)
    h_seq = cupy.empty((batch, steps, units), dtype=dtype)
    step = get_kernel(CUDA_FILE, "simple_rnn_forward_step", dtype)
    for t in range(steps):
        recurrent_projection = h_state @ recurrent_kernel
        launch_over_elements(
            step, batch * units,
            (projection, recurrent_projection, bias, h_state, h_seq)
            + step_arguments(batch, steps, units, t) + (code,),
        )
    return h_seq


def simple_rnn_backward(
    x, h0, kernel, recurrent_kernel, h_seq, grad_h_seq, activation, need_grad_x=True
):
    """-> (grad_x, grad_h0, grad_kernel, grad_recurrent_kernel, grad_bias)."""
    code = activation_code(activation)
    dtype = float_dtype(x)
    x = contiguous(x)
    h0 = contiguous(h0, dtype)
    kernel = contiguous(kernel, dtype)
    recurrent_kernel = contiguous(recurrent_kernel, dtype)
    h_seq = contiguous(h_seq, dtype)
    grad_h_seq = contiguous(grad_h_seq, dtype)
    batch, steps, _, units = recurrent_sizes("SimpleRNN", x, kernel, recurrent_kernel, 1)
    check_shape("SimpleRNN initial state", h0, (batch, units))
    check_shape("SimpleRNN h_seq", h_seq, (batch, steps, units))
    check_shape("SimpleRNN grad_h_seq", grad_h_seq, (batch, steps, units))

    grad_z_seq = cupy.empty((batch, steps, units), dtype=dtype)
    grad_z_step = cupy.empty((batch, units), dtype=dtype)
    # Gradient flowing into h_t from step t + 1; nothing comes after the last step.
    grad_h_from_later = cupy.zeros((batch, units), dtype=dtype)
    step = get_kernel(CUDA_FILE, "simple_rnn_backward_step", dtype)
    for t in reversed(range(steps)):
        launch_over_elements(
            step, batch * units,
            (grad_h_seq, h_seq, grad_h_from_later, grad_z_seq, grad_z_step)
            + step_arguments(batch, steps, units, t) + (code,),
        )
        grad_h_from_later = grad_z_step @ recurrent_kernel.T

    grad_x, grad_kernel, grad_recurrent_kernel = weight_gradients(
        x, h0, h_seq, kernel, grad_z_seq, grad_z_seq, need_grad_x
    )
    return grad_x, grad_h_from_later, grad_kernel, grad_recurrent_kernel, column_sums(grad_z_seq)


# ----------------------------------------------------------------------------
# LSTM
# ----------------------------------------------------------------------------
def lstm_forward(x, h0, c0, kernel, recurrent_kernel, bias, activation, recurrent_activation):
    """-> (h_seq, c_seq, gates); gates (N, T, 4U) holds the activated i, f, g, o."""
    code = activation_code(activation)
    recurrent_code = activation_code(recurrent_activation)
    dtype = float_dtype(x)
    x = contiguous(x)
    kernel = contiguous(kernel, dtype)
    recurrent_kernel = contiguous(recurrent_kernel, dtype)
    bias = contiguous(bias, dtype)
    batch, steps, _, units = recurrent_sizes("LSTM", x, kernel, recurrent_kernel, 4)
    check_shape("LSTM bias", bias, (4 * units,))
    check_shape("LSTM initial h state", h0, (batch, units))
    check_shape("LSTM initial c state", c0, (batch, units))

    projection = input_projection(x, kernel)
    h_seq = cupy.empty((batch, steps, units), dtype=dtype)
    c_seq = cupy.empty((batch, steps, units), dtype=dtype)
    gates = cupy.empty((batch, steps, 4 * units), dtype=dtype)
    plan = rnn_sequence.launch_plan(batch, units, dtype)
    if plan is not None:  # all steps in one launch
        rnn_sequence.lstm_forward_sequence(
            plan, projection, recurrent_kernel, bias, contiguous(h0, dtype),
            contiguous(c0, dtype), h_seq, c_seq, gates, code, recurrent_code)
    else:
        lstm_forward_steps(projection, recurrent_kernel, bias, h0, c0, h_seq, c_seq, gates,
                           code, recurrent_code)
    return h_seq, c_seq, gates


def lstm_forward_steps(projection, recurrent_kernel, bias, h0, c0, h_seq, c_seq, gates,
                       code, recurrent_code):
    """The forward one step per launch (one GEMM and one gate kernel per step)."""
    batch, steps, units = h_seq.shape
    dtype = h_seq.dtype
    h_state = fresh_copy(h0, dtype)
    c_state = fresh_copy(c0, dtype)
    step = get_kernel(CUDA_FILE, "lstm_forward_step", dtype)
    for t in range(steps):
        recurrent_projection = h_state @ recurrent_kernel
        launch_over_elements(
            step, batch * units,
            (projection, recurrent_projection, bias, h_state, c_state, h_seq, c_seq, gates)
            + step_arguments(batch, steps, units, t) + (code, recurrent_code),
        )


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
    """-> (grad_x, grad_h0, grad_c0, grad_kernel, grad_recurrent_kernel, grad_bias)."""
    code = activation_code(activation)
    recurrent_code = activation_code(recurrent_activation)
    dtype = float_dtype(x)
    x = contiguous(x)
    h0 = contiguous(h0, dtype)
    c0 = contiguous(c0, dtype)
    kernel = contiguous(kernel, dtype)
    recurrent_kernel = contiguous(recurrent_kernel, dtype)
    h_seq = contiguous(h_seq, dtype)
    c_seq = contiguous(c_seq, dtype)
    gates = contiguous(gates, dtype)
    grad_h_seq = contiguous(grad_h_seq, dtype)
    batch, steps, _, units = recurrent_sizes("LSTM", x, kernel, recurrent_kernel, 4)
    check_shape("LSTM initial h state", h0, (batch, units))
    check_shape("LSTM initial c state", c0, (batch, units))
    check_shape("LSTM h_seq", h_seq, (batch, steps, units))
    check_shape("LSTM c_seq", c_seq, (batch, steps, units))
    check_shape("LSTM gates", gates, (batch, steps, 4 * units))
    check_shape("LSTM grad_h_seq", grad_h_seq, (batch, steps, units))
    check_shape("LSTM grad_c_last", grad_c_last, (batch, units))

    grad_z_seq = cupy.empty((batch, steps, 4 * units), dtype=dtype)
    grad_z_step = cupy.empty((batch, 4 * units), dtype=dtype)
    grad_h_from_later = cupy.zeros((batch, units), dtype=dtype)
    # The cell state reaches the next step directly (c_{t+1} = f * c_t + ...),
    # so its gradient is carried on its own; the kernel updates it in place.
    grad_c = fresh_copy(grad_c_last, dtype)
    step = get_kernel(CUDA_FILE, "lstm_backward_step", dtype)
    for t in reversed(range(steps)):
        launch_over_elements(
            step, batch * units,
            (grad_h_seq, c_seq, c0, gates, grad_h_from_later, grad_c, grad_z_seq, grad_z_step)
            + step_arguments(batch, steps, units, t) + (code, recurrent_code),
        )
        grad_h_from_later = grad_z_step @ recurrent_kernel.T

    grad_x, grad_kernel, grad_recurrent_kernel = weight_gradients(
        x, h0, h_seq, kernel, grad_z_seq, grad_z_seq, need_grad_x
    )
    return (
        grad_x, grad_h_from_later, grad_c,
        grad_kernel, grad_recurrent_kernel, column_sums(grad_z_seq),
    )


# ----------------------------------------------------------------------------
# GRU (reset_after=True)
# ----------------------------------------------------------------------------
def gru_forward(x, h0, kernel, recurrent_kernel, bias, activation, recurrent_activation):
    """-> (h_seq, gates); gates (N, T, 4U) holds z, r, hh and hz_h."""
    code = activation_code(activation)
    recurrent_code = activation_code(recurrent_activation)
    dtype = float_dtype(x)
    x = contiguous(x)
    kernel = contiguous(kernel, dtype)
    recurrent_kernel = contiguous(recurrent_kernel, dtype)
    bias = contiguous(bias, dtype)
    batch, steps, _, units = recurrent_sizes("GRU", x, kernel, recurrent_kernel, 3)
    check_shape("GRU bias (input row, recurrent row)", bias, (2, 3 * units))
    check_shape("GRU initial state", h0, (batch, units))

    projection = input_projection(x, kernel)
    input_bias, recurrent_bias = bias[0], bias[1]  # rows of a C-contiguous array
    h_state = fresh_copy(h0, dtype)
    h_seq = cupy.empty((batch, steps, units), dtype=dtype)
    gates = cupy.empty((batch, steps, 4 * units), dtype=dtype)
    step = get_kernel(CUDA_FILE, "gru_forward_step", dtype)
    for t in range(steps):
        recurrent_projection = h_state @ recurrent_kernel
        launch_over_elements(
            step, batch * units,
            (projection, recurrent_projection, input_bias, recurrent_bias, h_state, h_seq, gates)
            + step_arguments(batch, steps, units, t) + (code, recurrent_code),
        )
    return h_seq, gates


def gru_backward(
    x, h0, kernel, recurrent_kernel, h_seq, gates, grad_h_seq, activation, recurrent_activation,
    need_grad_x=True,
):
    """-> (grad_x, grad_h0, grad_kernel, grad_recurrent_kernel, grad_bias (2, 3U))."""
    code = activation_code(activation)
    recurrent_code = activation_code(recurrent_activation)
    dtype = float_dtype(x)
    x = contiguous(x)
    h0 = contiguous(h0, dtype)
    kernel = contiguous(kernel, dtype)
    recurrent_kernel = contiguous(recurrent_kernel, dtype)
    h_seq = contiguous(h_seq, dtype)
    gates = contiguous(gates, dtype)
    grad_h_seq = contiguous(grad_h_seq, dtype)
    batch, steps, _, units = recurrent_sizes("GRU", x, kernel, recurrent_kernel, 3)
    check_shape("GRU initial state", h0, (batch, units))
    check_shape("GRU h_seq", h_seq, (batch, steps, units))
    check_shape("GRU gates", gates, (batch, steps, 4 * units))
    check_shape("GRU grad_h_seq", grad_h_seq, (batch, steps, units))

    grad_xz_seq = cupy.empty((batch, steps, 3 * units), dtype=dtype)
    grad_hz_seq = cupy.empty((batch, steps, 3 * units), dtype=dtype)
    grad_hz_step = cupy.empty((batch, 3 * units), dtype=dtype)
    # h_{t-1} reaches h_t directly and through the recurrent GEMM; the two
    # parts of its gradient are kept apart so each step needs one kernel only.
    grad_h_direct = cupy.zeros((batch, units), dtype=dtype)
    grad_h_from_gemm = cupy.zeros((batch, units), dtype=dtype)
    step = get_kernel(CUDA_FILE, "gru_backward_step", dtype)
    for t in reversed(range(steps)):
        launch_over_elements(
            step, batch * units,
            (grad_h_seq, h_seq, h0, gates, grad_h_from_gemm, grad_h_direct,
             grad_xz_seq, grad_hz_seq, grad_hz_step)
            + step_arguments(batch, steps, units, t) + (code, recurrent_code),
        )
        grad_h_from_gemm = grad_hz_step @ recurrent_kernel.T

    grad_x, grad_kernel, grad_recurrent_kernel = weight_gradients(
        x, h0, h_seq, kernel, grad_xz_seq, grad_hz_seq, need_grad_x
    )
    grad_bias = cupy.stack([column_sums(grad_xz_seq), column_sums(grad_hz_seq)])
    grad_h0 = grad_h_direct + grad_h_from_gemm
    return grad_x, grad_h0, grad_kernel, grad_recurrent_kernel, grad_bias
