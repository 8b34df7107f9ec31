"""Watch every op of a forward and backward pass: `with deepbreadth.trace() as t:`.

    with deepbreadth.trace() as t:
        loss = loss_function(y, model(x))
        loss.backward()
    print(t.table())

Each op that runs inside the block becomes one `OpRecord` in `t.ops`, in the
order the ops ran: the forward ops first, then, from `backward()`, the same
ops again in reverse order, in the backward phase. A record says which op ran
(the Function's name), in which layer, on which shapes, how long it took, how
many floating-point operations (FLOPs) and bytes it cost, which backend
kernels it called, and, in the backward phase, how large the gradient
arriving at it was.

How the trace sees all this, one mechanism each:

- ops: `Function.apply` and the backward engine tell every observer in
  `autograd._op_observers` when an op starts and ends. A trace is such an
  observer while its `with` block runs.
- layers: the layer running an op is the one whose `Layer.__call__` is on
  the Python call stack at that moment. The trace writes the layers it finds
  onto the op's graph node (`node.layer_path`), so the backward pass, the
  profiler and `viz.draw_graph` know them later.
- kernels: while a trace is active, `backend.kernel` is replaced by a version
  that also reports each lookup, e.g. 'cpu.conv2d_forward' (the kernel set,
  then the kernel). Ops written with array calls (matmul, add, exp, ...)
  look up no kernel and list none.
- FLOPs: a formula per kind of op, from the shapes (see `forward_flops`).

The backward pass of an op may itself run ops (a MatMul's backward is two
matrix products). Those are part of that op's backward record, not records
of their own: their time, kernels and cost belong to it.
"""
import json
import math
import sys
from dataclasses import asdict, dataclass, field

import numpy as np

from . import autograd, backend
from .kernels.shapes import conv_output_shape
from .layers.base import Layer

# ----------------------------------------------------------------------------
# What one op cost: the record
# ----------------------------------------------------------------------------


@dataclass
class OpRecord:
    """One op in one phase. Shapes are the op's own (forward) shapes in both phases."""

    index: int
    phase: str                  # "forward" or "backward"
    op: str                     # the Function's name, e.g. "MatMul"
    layer: str = None           # the innermost layer running the op; None outside layers
    layer_type: str = None      # that layer's class name, e.g. "Dense"
    input_shapes: list = field(default_factory=list)
    output_shapes: list = field(default_factory=list)
    dtype: str = None
    seconds: float = 0.0
    flops: int = 0
    bytes: int = 0              # bytes read and written: inputs + outputs (backward: gradients)
    grad_norm: float = None     # backward only: L2 norm of the gradient arriving at the op
    kernels: list = field(default_factory=list)


# ----------------------------------------------------------------------------
# FLOP formulas. A multiply-add counts as 2 FLOPs. Element-wise ops count one
# FLOP per output element (an exp or a tanh too: their true cost depends on
# the math library). These are estimates meant for comparing ops and layers.
# ----------------------------------------------------------------------------
def _size(shape):
    return int(math.prod(shape))


def _matmul_flops(node, input_shapes, output_shapes):
    """Each output element is a dot product of length K (the contracted axis)."""
    return 2 * _size(output_shapes[0]) * input_shapes[0][-1]


def _convolution_flops(node, input_shapes, output_shapes):
    """Each output element is a dot product over the window and input channels:
    kernel (window..., in, out) -> window size x in; a bias and activation
    fused into the op (inputs x, kernel, bias) add what BiasActivation would."""
    kernel_shape = input_shapes[1]
    flops = 2 * _size(output_shapes[0]) * _size(kernel_shape[:-1])
    if len(input_shapes) > 2:
        flops += _bias_activation_flops(node, input_shapes, output_shapes)
    return flops


def _convolution_max_pool_flops(node, input_shapes, output_shapes):
    """A convolution and its max pool in one op: the convolution with its bias and
    activation over its whole output (which the op computes but does not
    return), plus the pool's one FLOP per element it reads; as the two ops."""
    conv_shape = [_convolution_output_shape(node, input_shapes)]
    return (_convolution_flops(node, input_shapes, conv_shape)
            + _reduction_flops(node, conv_shape, output_shapes))


def _convolution_output_shape(node, input_shapes):
    """(N, ..., F) of the convolution inside a ConvolutionMaxPool node."""
    strides, padding, dilation = node.options[:3]
    return conv_output_shape(input_shapes[0], input_shapes[1], strides, padding, dilation)


def _dense_flops(node, input_shapes, output_shapes):
    """A Dense layer in one op (inputs x, kernel, bias): the product, then what
    BiasActivation would add."""
    return (_matmul_flops(node, input_shapes, output_shapes)
            + _bias_activation_flops(node, input_shapes, output_shapes))


def _recurrent_flops(node, input_shapes, output_shapes):
    """Per step and sample: x_t @ kernel and h @ recurrent_kernel (2 FLOPs per
    multiply-add), plus about 4 FLOPs per gate value for the gate activations
    and the state update. Inputs end with kernel, recurrent_kernel, bias."""
    batch, steps, features = input_shapes[0]
    units, gate_width = input_shapes[-2]
    per_step = 2 * (features + units) * gate_width + 4 * gate_width
    return batch * steps * per_step


def _reduction_flops(node, input_shapes, output_shapes):
    """One FLOP per element read (sums, maxima, pooling windows)."""
    return _size(input_shapes[0])


def _bias_activation_flops(node, input_shapes, output_shapes):
    """The bias add, plus the activation unless it is linear."""
    per_element = 1 if getattr(node, "activation", "linear") == "linear" else 2
    return per_element * _size(output_shapes[0])


def _softmax_flops(node, input_shapes, output_shapes):
    """max, subtract, exp, sum, divide: about 5 FLOPs per element."""
    return 5 * _size(input_shapes[0])


# Products: their backward computes one product per input that wants a gradient.
PRODUCT_OPS = {
    "MatMul": _matmul_flops,
    "DenseBiasActivation": _dense_flops,
    "Convolution": _convolution_flops,
    "ConvolutionMaxPool": _convolution_max_pool_flops,
    "SimpleRNNSequence": _recurrent_flops,
    "LSTMSequence": _recurrent_flops,
    "GRUSequence": _recurrent_flops,
}
OTHER_OPS = {
    "Sum": _reduction_flops, "Mean": _reduction_flops, "SumToShape": _reduction_flops,
    "MaxMin": _reduction_flops,
    "LogSumExp": _reduction_flops, "MaxPool": _reduction_flops, "AvgPool": _reduction_flops,
    "GlobalMaxPool": _reduction_flops, "GlobalAvgPool": _reduction_flops,
    "BiasActivation": _bias_activation_flops,
    "Softmax": _softmax_flops, "LogSoftmax": _softmax_flops, "SoftmaxCrossEntropy": _softmax_flops,
}
# Ops that only move or copy data: no arithmetic.
DATA_MOVEMENT_OPS = {"Reshape", "Transpose", "Concatenate", "Pad", "GetItem", "ScatterAdd",
                     "AsType", "ToDevice", "BroadcastTo", "Embedding"}


def forward_flops(op, node, input_shapes, output_shapes):
    """FLOPs of the forward of `op` (a Function name) on these shapes."""
    if op in DATA_MOVEMENT_OPS:
        return 0
    rule = PRODUCT_OPS.get(op) or OTHER_OPS.get(op)
    if rule is not None:
        return rule(node, input_shapes, output_shapes)
    # Any other op: element-wise, one FLOP per output element.
    return sum(_size(shape) for shape in output_shapes)


def backward_flops(op, node, input_shapes, output_shapes):
    """FLOPs of the backward of `op`.

    A product computes one product per gradient it returns: a MatMul (or a
    Dense or convolution op) whose two inputs both want a gradient costs
    twice its forward, a first layer (whose input wants none) once; a fused
    bias and activation count once. A recurrence always backpropagates through time
    and into its weights: twice its forward. Every other op costs about as
    much backward as forward.
    """
    forward = forward_flops(op, node, input_shapes, output_shapes)
    if op in ("MatMul", "DenseBiasActivation", "Convolution", "ConvolutionMaxPool"):
        # A bias and activation fused in (a third input), and a fused pool, are
        # differentiated once.
        epilogue = 0
        if op == "ConvolutionMaxPool":
            conv_shape = [_convolution_output_shape(node, input_shapes)]
            epilogue = (_bias_activation_flops(node, input_shapes, conv_shape)
                        + _reduction_flops(node, conv_shape, output_shapes))
        elif len(input_shapes) > 2:
            epilogue = _bias_activation_flops(node, input_shapes, output_shapes)
        return (forward - epilogue) * sum(node.needs_input_grad[:2]) + epilogue
    if op in PRODUCT_OPS:
        return 2 * forward
    return forward


# ----------------------------------------------------------------------------
# Which layer is running? Read it from the Python call stack.
# ----------------------------------------------------------------------------
_LAYER_CALL_CODE = Layer.__call__.__code__


def running_layers():
    """(name, class name) of every layer whose call is running now, outermost first.

    A model is a layer too, so inside `model(x)` this is, for example,
    (('sequential', 'Sequential'), ('dense', 'Dense')). The frames are found
    by their code object, `Layer.__call__`'s, so a subclass that overrides
    `__call__` (none in deepbreadth does) would not be seen.
    """
    found = []
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code is _LAYER_CALL_CODE:
            layer = frame.f_locals["self"]
            entry = (layer.name, type(layer).__name__)
            # A call on symbolic inputs calls the layer again: keep it once.
            if not found or found[-1] != entry:
                found.append(entry)
        frame = frame.f_back
    found.reverse()
    return tuple(found)


def layer_of(node):
    """(name, class name) of the layer an op belongs to, or None outside layers.

    Exact when the op's forward ran inside a trace (the trace wrote the
    running layers onto the node). Otherwise a guess from the weights the op
    reads: weights are named 'layer_name/weight_name', which gives the layer's
    name but not its class (None).
    """
    path = getattr(node, "layer_path", None)
    if path is not None:
        return path[-1] if path else None
    for tensor in node.inputs:
        if tensor.name and "/" in tensor.name:
            return (tensor.name.rsplit("/", 1)[0], None)
    return None


# ----------------------------------------------------------------------------
# Reporting kernel lookups
# ----------------------------------------------------------------------------
_real_kernel_lookup = backend.kernel
_active_traces = []


def _kernel_lookup_that_reports(name, array):
    """backend.kernel, telling every active trace which kernel was looked up."""
    found = _real_kernel_lookup(name, array)
    kernel_set = backend.kernels_for(array).__name__.rsplit(".", 1)[-1]
    for active in _active_traces:
        active.kernel_called(f"{kernel_set}.{name}")
    return found


# ----------------------------------------------------------------------------
# The trace
# ----------------------------------------------------------------------------
def _shape_list(arrays):
    return [tuple(int(n) for n in array.shape) for array in arrays]


def _arrays_of(values):
    """The arrays behind a Tensor, a tuple of Tensors/arrays, skipping None."""
    if not isinstance(values, tuple):
        values = (values,)
    arrays = []
    for value in values:
        if value is None:
            continue
        arrays.append(value.data if isinstance(value, autograd.Tensor) else value)
    return arrays


def l2_norm(arrays):
    """The L2 norm of all the arrays together (one long vector), summed in float64."""
    squares = 0.0
    for array in arrays:
        host = backend.to_device(array, "cpu")
        squares += float(np.square(host, dtype=np.float64).sum())
    return math.sqrt(squares)


def _float_dtype(arrays):
    for array in arrays:
        if array.dtype.kind == "f":
            return str(array.dtype)
    return str(arrays[0].dtype) if arrays else None


class Trace:
    """Records every op run inside `with trace:`; see the module docstring."""

    def __init__(self):
        self.ops = []
        self._kernels = []          # kernels looked up since the current op started
        self._backward_depth = 0    # > 0 while some op's backward is running

    # -- start and stop -----------------------------------------------------------
    def __enter__(self):
        if not _active_traces:
            backend.kernel = _kernel_lookup_that_reports
        _active_traces.append(self)
        autograd._op_observers.append(self)
        return self

    def __exit__(self, *exc_info):
        autograd._op_observers.remove(self)
        _active_traces.remove(self)
        if not _active_traces:
            backend.kernel = _real_kernel_lookup
        return False

    # -- the observer interface (called by autograd) --------------------------------
    def op_started(self, phase, node):
        if self._backward_depth == 0:
            self._kernels = []
        if phase == "backward":
            self._backward_depth += 1

    def op_finished(self, phase, node, received, produced, seconds):
        if phase == "backward":
            self._backward_depth -= 1
        if self._backward_depth > 0:
            return  # an op run by some op's backward: part of that record
        if phase == "forward":
            node.layer_path = running_layers()
            record = self._forward_record(node, received, produced, seconds)
        else:
            record = self._backward_record(node, received, produced, seconds)
        self.ops.append(record)

    def kernel_called(self, name):
        if name not in self._kernels:
            self._kernels.append(name)

    # -- building records -----------------------------------------------------------
    def _new_record(self, phase, node, input_shapes, output_shapes, seconds):
        op = node.function.__name__
        layer = layer_of(node) or (None, None)
        flops_rule = forward_flops if phase == "forward" else backward_flops
        return OpRecord(
            index=len(self.ops), phase=phase, op=op, layer=layer[0], layer_type=layer[1],
            input_shapes=input_shapes, output_shapes=output_shapes, seconds=seconds,
            flops=flops_rule(op, node, input_shapes, output_shapes), kernels=list(self._kernels))

    def _forward_record(self, node, inputs, outputs, seconds):
        input_arrays, output_arrays = _arrays_of(tuple(inputs)), _arrays_of(outputs)
        record = self._new_record("forward", node, _shape_list(input_arrays),
                                  _shape_list(output_arrays), seconds)
        record.dtype = _float_dtype(output_arrays)
        record.bytes = sum(int(array.nbytes) for array in input_arrays + output_arrays)
        return record

    def _backward_record(self, node, output_grads, input_grads, seconds):
        # Shapes of the op itself (its forward inputs and outputs), so a backward
        # record reads as "the backward of this op".
        input_shapes = _shape_list(_arrays_of(tuple(node.inputs)))
        output_shapes = _shape_list(node.output_arrays)
        record = self._new_record("backward", node, input_shapes, output_shapes, seconds)
        arriving, leaving = _arrays_of(tuple(output_grads)), _arrays_of(tuple(input_grads))
        record.dtype = _float_dtype(arriving)
        record.bytes = sum(int(array.nbytes) for array in arriving + leaving)
        record.grad_norm = l2_norm(arriving)
        return record

    # -- reading the trace ----------------------------------------------------------
    def phase(self, name):
        """The records of one phase, 'forward' or 'backward', in order."""
        return [record for record in self.ops if record.phase == name]

    def to_json(self, indent=2):
        """The records as JSON: {"ops": [{"index": 0, "phase": "forward", ...}, ...]}."""
        return json.dumps({"ops": [asdict(record) for record in self.ops]}, indent=indent)

    def table(self):
        """The records as a text table, with totals per phase; print() it."""
        header = ("#", "phase", "op", "layer", "inputs", "outputs", "time",
                  "FLOPs", "bytes", "grad norm", "kernels")
        rows = [header] + [_table_row(record) for record in self.ops]
        lines = _aligned(rows)
        for phase in ("forward", "backward"):
            records = self.phase(phase)
            if records:
                seconds = sum(r.seconds for r in records)
                flops = sum(r.flops for r in records)
                lines.append(f"{phase}: {len(records)} ops, {format_seconds(seconds)}, "
                             f"{format_count(flops)}FLOPs, "
                             f"{format_count(sum(r.bytes for r in records))}B")
        return "\n".join(lines)

    def __repr__(self):
        return f"<Trace of {len(self.ops)} ops>"


def trace():
    """A context manager that records every op run inside it: see `Trace`."""
    return Trace()


# ----------------------------------------------------------------------------
# Text formatting, shared with the profiler
# ----------------------------------------------------------------------------
def format_count(number):
    """1234567 -> '1.23M', with k, M, G, T suffixes."""
    for limit, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(number) >= limit:
            return f"{number / limit:.3g}{suffix}"
    return f"{number:.3g}" if isinstance(number, float) else str(number)


def format_seconds(seconds):
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds * 1e6:.1f} us"


def format_shapes(shapes):
    return " ".join("x".join(str(n) for n in shape) or "scalar" for shape in shapes)


def _table_row(record):
    grad = "" if record.grad_norm is None else f"{record.grad_norm:.3g}"
    return (str(record.index), record.phase, record.op, record.layer or "",
            format_shapes(record.input_shapes), format_shapes(record.output_shapes),
            format_seconds(record.seconds), format_count(record.flops),
            format_count(record.bytes), grad, " ".join(record.kernels))


def _aligned(rows):
    """Rows of strings as lines with left-aligned columns."""
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip()
             for row in rows]
    lines.insert(1, "-" * len(max(lines, key=len)))
    return lines
