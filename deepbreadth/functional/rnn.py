"""Recurrent ops over a whole sequence: SimpleRNN, LSTM and GRU.

Each op runs the complete recurrence (every time step) in one kernel call and
backpropagates through time in one kernel call, instead of recording a graph
node per step: a 100-step LSTM is one node, not a thousand. The price is that
the backward is a raw kernel, so these ops are only once differentiable.

Shapes and gate orders are Keras's, as in docs/KERNELS.md:

    x (batch, time, features)        h0, c0 (batch, units)
    SimpleRNN  kernel (features, units)    recurrent_kernel (units, units)    bias (units,)
    LSTM       kernel (features, 4 units)  recurrent_kernel (units, 4 units)  bias (4 units,)
               gates i, f, c, o
    GRU        kernel (features, 3 units)  recurrent_kernel (units, 3 units)  bias (2, 3 units)
               gates z, r, h, reset_after=True

Every array input is differentiable: x, the initial states and the weights.
"""
from .. import backend
from ..autograd import Function, ShapeError, Tensor, as_tensor

# The activations the recurrent kernels implement (their derivative is a
# function of their output, which is what lets BPTT avoid recomputation).
RECURRENT_ACTIVATIONS = ("linear", "relu", "tanh", "sigmoid", "hard_sigmoid")


# ----------------------------------------------------------------------------
# SimpleRNN:  h_t = act(x_t @ kernel + h_{t-1} @ recurrent_kernel + bias)
# ----------------------------------------------------------------------------
class SimpleRNNSequence(Function):
    """x, h0, kernel, recurrent_kernel, bias -> h_seq (every step's output)."""

    once_differentiable = True

    @staticmethod
    def forward(ctx, x, h0, kernel, recurrent_kernel, bias, activation="tanh"):
        h_seq = backend.kernel("simple_rnn_forward", x)(
            x, h0, kernel, recurrent_kernel, bias, activation)
        ctx.activation = activation
        ctx.save_for_backward(x, h0, kernel, recurrent_kernel, h_seq)
        return h_seq

    @staticmethod
    def backward(ctx, grad_h_seq):
        x, h0, kernel, recurrent_kernel, h_seq = (t.data for t in ctx.saved_tensors)
        grads = backend.kernel("simple_rnn_backward", x)(
            x, h0, kernel, recurrent_kernel, h_seq, grad_h_seq.data, ctx.activation,
            need_grad_x=ctx.needs_input_grad[0])
        # grads: x, h0, kernel, recurrent_kernel, bias, in the order of the inputs;
        # the gradient of x is None when x needs none (data into a first layer),
        # which saves a product as large as the input projection.
        return grads


# ----------------------------------------------------------------------------
# LSTM: two outputs, because a model may use the final cell state (return_state)
# ----------------------------------------------------------------------------
class LSTMSequence(Function):
    """x, h0, c0, kernel, recurrent_kernel, bias -> (h_seq, c_last).

    c_last, the cell state after the last step, is an output of its own so
    that a loss depending on it (return_state=True) sends back grad_c_last.
    The final h needs no such output: it is h_seq[:, -1].
    """

    once_differentiable = True

    @staticmethod
    def forward(ctx, x, h0, c0, kernel, recurrent_kernel, bias,
                activation="tanh", recurrent_activation="sigmoid"):
        h_seq, c_seq, gates = backend.kernel("lstm_forward", x)(
            x, h0, c0, kernel, recurrent_kernel, bias, activation, recurrent_activation)
        ctx.activations = (activation, recurrent_activation)
        ctx.save_for_backward(x, h0, c0, kernel, recurrent_kernel, h_seq, c_seq, gates)
        c_last = c_seq[:, -1].copy()
        return h_seq, c_last

    @staticmethod
    def backward(ctx, grad_h_seq, grad_c_last):
        x, h0, c0, kernel, recurrent_kernel, h_seq, c_seq, gates = (
            t.data for t in ctx.saved_tensors)
        grads = backend.kernel("lstm_backward", x)(
            x, h0, c0, kernel, recurrent_kernel, h_seq, c_seq, gates,
            grad_h_seq.data, grad_c_last.data, *ctx.activations,
            need_grad_x=ctx.needs_input_grad[0])
        # grads: x (None when x needs no gradient), h0, c0, kernel, recurrent_kernel, bias.
        return grads


# ----------------------------------------------------------------------------
# GRU (Keras reset_after=True)
# ----------------------------------------------------------------------------
class GRUSequence(Function):
    """x, h0, kernel, recurrent_kernel, bias (2, 3 units) -> h_seq."""

    once_differentiable = True

    @staticmethod
    def forward(ctx, x, h0, kernel, recurrent_kernel, bias,
                activation="tanh", recurrent_activation="sigmoid"):
        h_seq, gates = backend.kernel("gru_forward", x)(
            x, h0, kernel, recurrent_kernel, bias, activation, recurrent_activation)
        ctx.activations = (activation, recurrent_activation)
        ctx.save_for_backward(x, h0, kernel, recurrent_kernel, h_seq, gates)
        return h_seq

    @staticmethod
    def backward(ctx, grad_h_seq):
        x, h0, kernel, recurrent_kernel, h_seq, gates = (t.data for t in ctx.saved_tensors)
        grads = backend.kernel("gru_backward", x)(
            x, h0, kernel, recurrent_kernel, h_seq, gates, grad_h_seq.data, *ctx.activations,
            need_grad_x=ctx.needs_input_grad[0])
        # grads: x (None when x needs no gradient), h0, kernel, recurrent_kernel, bias.
        return grads


# ----------------------------------------------------------------------------
# Public functions: check the shapes here, so a mistake is reported in terms of
# the op's arguments rather than as an index error deep inside a kernel.
# ----------------------------------------------------------------------------
class ZeroState(Function):
    """Zeros of shape (batch, units), the batch taken from x: a recurrent layer's
    initial state when none is given.

    An op rather than an array the layer makes, so that a recorded training
    step makes it again for each batch (deepbreadth/replay.py); a constant, so
    never linked into the graph (`differentiable = False`).
    """
    differentiable = False

    @staticmethod
    def forward(ctx, x, units):
        return backend.array_module(x).zeros((x.shape[0], units), dtype=x.dtype)


def zero_state(x, units):
    """A (batch, units) state of zeros for the sequences x (batch, steps, features)."""
    return ZeroState.apply(x, units=units)


def simple_rnn(x, h0, kernel, recurrent_kernel, bias=None, activation="tanh"):
    """Run a SimpleRNN over the sequence x; returns every step's output h_seq."""
    x, h0, kernel, recurrent_kernel = _as_tensors(x, h0, kernel, recurrent_kernel)
    bias = _bias_or_zeros(bias, kernel, (kernel.shape[-1],))
    _check_shapes("simple_rnn", 1, x, {"h0": h0}, kernel, recurrent_kernel, bias,
                  bias_rows=None)
    check_activation("simple_rnn", "activation", activation)
    return SimpleRNNSequence.apply(x, h0, kernel, recurrent_kernel, bias, activation=activation)


def lstm(x, h0, c0, kernel, recurrent_kernel, bias=None, activation="tanh",
         recurrent_activation="sigmoid"):
    """Run an LSTM over x; returns (h_seq, c_last): every step's h and the final cell state."""
    x, h0, c0, kernel, recurrent_kernel = _as_tensors(x, h0, c0, kernel, recurrent_kernel)
    bias = _bias_or_zeros(bias, kernel, (kernel.shape[-1],))
    _check_shapes("lstm", 4, x, {"h0": h0, "c0": c0}, kernel, recurrent_kernel, bias,
                  bias_rows=None)
    check_activation("lstm", "activation", activation)
    check_activation("lstm", "recurrent_activation", recurrent_activation)
    return LSTMSequence.apply(x, h0, c0, kernel, recurrent_kernel, bias, activation=activation,
                              recurrent_activation=recurrent_activation)


def gru(x, h0, kernel, recurrent_kernel, bias=None, activation="tanh",
        recurrent_activation="sigmoid"):
    """Run a GRU (reset_after=True) over x; returns every step's output h_seq."""
    x, h0, kernel, recurrent_kernel = _as_tensors(x, h0, kernel, recurrent_kernel)
    bias = _bias_or_zeros(bias, kernel, (2, kernel.shape[-1]))
    _check_shapes("gru", 3, x, {"h0": h0}, kernel, recurrent_kernel, bias, bias_rows=2)
    check_activation("gru", "activation", activation)
    check_activation("gru", "recurrent_activation", recurrent_activation)
    return GRUSequence.apply(x, h0, kernel, recurrent_kernel, bias, activation=activation,
                             recurrent_activation=recurrent_activation)


def check_activation(owner, argument, name):
    """Only the activations the recurrent kernels implement are accepted."""
    if name not in RECURRENT_ACTIVATIONS:
        raise ValueError(
            f"{owner}: {argument}={name!r} is not supported by the recurrent kernels; "
            f"use one of {', '.join(repr(n) for n in RECURRENT_ACTIVATIONS)}"
        )


def _as_tensors(*values):
    return tuple(as_tensor(v) for v in values)


def _bias_or_zeros(bias, kernel, shape):
    """No bias (use_bias=False) runs as a zero bias that no gradient reaches."""
    if bias is not None:
        return as_tensor(bias)
    xp = backend.array_module(kernel.data)
    return Tensor._wrap(xp.zeros(shape, dtype=kernel.dtype))


def _check_shapes(op, gate_count, x, states, kernel, recurrent_kernel, bias, bias_rows):
    if x.ndim != 3 or x.shape[1] == 0:
        raise ShapeError(
            f"{op}: x must have shape (batch, timesteps, features) with at least one step, "
            f"got {x.shape}"
        )
    batch, _, features = x.shape
    units = recurrent_kernel.shape[0] if recurrent_kernel.ndim == 2 else None
    width = None if units is None else gate_count * units
    expected = {"kernel": (kernel, (features, width)),
                "recurrent_kernel": (recurrent_kernel, (units, width)),
                "bias": (bias, (width,) if bias_rows is None else (bias_rows, width))}
    for name, state in states.items():
        expected[name] = (state, (batch, units))
    for name, (tensor, shape) in expected.items():
        if tensor.shape != shape:
            raise ShapeError(
                f"{op}: {name} has shape {tensor.shape} but x of shape {x.shape} and "
                f"recurrent_kernel of shape {recurrent_kernel.shape} need {shape}"
            )
