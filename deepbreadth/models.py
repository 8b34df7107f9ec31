"""Models: layers put together, with Keras's compile / fit / evaluate / predict.

Three ways to make one, as in Keras:

    model = Sequential([Flatten(input_shape=(28, 28)), Dense(128, activation="relu"), Dense(10)])

    inputs = Input(shape=(28, 28))                       # the functional API
    outputs = Dense(10)(Flatten()(inputs))
    model = Model(inputs, outputs)

    class MyModel(Model):                                # subclassing
        def __init__(self):
            super().__init__()
            self.flatten = Flatten()
            self.dense = Dense(10)
        def call(self, inputs):
            return self.dense(self.flatten(inputs))

A Model is itself a Layer: its weights are its layers' weights, and
`get_weights`, `set_weights`, `count_params`, `to(device)` work on it.

Training is the loop every lesson writes by hand, done once here:

    for each epoch, for each batch of (x, y):
        outputs = model(x, training=True)
        loss = loss_fn(y, outputs)
        loss.backward()
        optimizer.step(model.trainable_weights)
        optimizer.zero_grad(model.trainable_weights)

Callbacks (deepbreadth.callbacks) are called around it; the progress bar is
one of them. Data comes in as NumPy arrays; each batch becomes a Tensor of the
model's dtype on the device of its weights, so the same call trains on the CPU
and on the GPU.
"""
import contextlib
import json
import math
import numbers
import os

import numpy as np

from . import autograd, backend, replay, saving
from . import callbacks as callbacks_module
from . import losses as losses_module
from . import metrics as metrics_module
from . import optimizers as optimizers_module
from .autograd import Tensor, no_grad
from .functional.loss import label_checks_deferred
from .layers.base import (Input, Layer, SymbolicTensor, _flatten, map_structure,
                          structure_changed, structure_version)
from .layers.recurrent import SequenceInputError

DEFAULT_BATCH_SIZE = 32
# Recorded training steps kept per model (one per batch shape, say); more are
# forgotten all at once.
MAX_RECORDED_STEPS = 8


class NaNLossError(FloatingPointError):
    """The loss became NaN or infinite during training (the model diverged)."""


# ----------------------------------------------------------------------------
# InputLayer: marks where a model's input comes in
# ----------------------------------------------------------------------------
class InputLayer(Layer):
    """The input of a model, with its shape: Sequential([InputLayer(input_shape=(28, 28)), ...]).

    It computes nothing. In a Sequential model it only fixes the input shape
    (and is not listed in `model.layers`, as in Keras); a functional model
    lists one per input first.
    """
    replays_exactly = True  # its call is ops only: see deepbreadth/replay.py

    def __init__(self, input_shape=None, batch_size=None, dtype=None, name=None, shape=None,
                 batch_shape=None, **kwargs):
        batch_shape = batch_shape or kwargs.pop("batch_input_shape", None)
        shape = shape if shape is not None else input_shape
        if batch_shape is None:
            if shape is None:
                raise ValueError("InputLayer needs input_shape=(...) (without the batch axis)")
            batch_shape = (batch_size,) + tuple(shape)
        super().__init__(name=name, dtype=dtype, batch_input_shape=batch_shape, **kwargs)
        self.built = True

    def call(self, inputs):
        return inputs


# ----------------------------------------------------------------------------
# Turning user data into arrays, and checking it
# ----------------------------------------------------------------------------
def _numpy_of(data):
    if isinstance(data, Tensor):
        return data.numpy()
    if backend.is_gpu_array(data):
        return backend.to_device(data, "cpu")
    return np.asarray(data)


def _kernel_threads(device):
    """Who runs the threads during a step: with the Numba kernels on the CPU, BLAS
    is held to one thread and the kernels share the batch out themselves.

    BLAS splits every matrix product between its threads and makes them meet at
    the end; between products its idle threads spin. A step of an eager engine
    is a chain of small products and Numba loops, so on a busy machine the
    spinning threads take the cores from the next loop, and each product waits
    for a thread that is not running: two BLAS threads made the MNIST MLP step
    15x slower (median) than one. See kernels/cpu/threads.py and
    benchmarks/NOTES.md ("training step W1/W2").
    """
    if device != "cpu":
        return contextlib.nullcontext()
    return backend.kernel_threads()


def _array_of(data, keep_device):
    """A GPU array as it is when `keep_device`, else `data` as a NumPy array."""
    if keep_device and backend.is_gpu_array(data):
        return data
    return _numpy_of(data)


def _as_array_list(data, name, expected_count, keep_device=False):
    """`data` as a list of arrays, one per model input (or output).

    NumPy arrays, except that with `keep_device` a batch already on the GPU stays
    there: the single-batch methods then feed it to the model without a round
    trip through the host (fit copies the whole dataset to the host once and
    hands out batches from there).
    """
    if isinstance(data, (list, tuple)) and expected_count > 1:
        if len(data) != expected_count:
            raise ValueError(f"the model has {expected_count} inputs but {name} holds "
                             f"{len(data)} arrays; give one array per input, in order")
        arrays = [_array_of(item, keep_device) for item in data]
    else:
        arrays = [_array_of(data, keep_device)]
    for array in arrays:
        if array.dtype == object:
            raise TypeError(
                f"{name} must be a NumPy array (or a list of arrays, one per input), got "
                f"{type(data).__name__} that does not convert to numbers; a DataLoader's "
                "arrays are in loader.dataset.arrays"
            )
        if array.ndim == 0:
            raise ValueError(f"{name} is a single number; it needs a first axis of samples")
    return arrays


def _sample_count(arrays, name):
    counts = {len(array) for array in arrays}
    if len(counts) > 1:
        raise ValueError(f"the arrays of {name} hold different numbers of samples: "
                         f"{[len(array) for array in arrays]}")
    return counts.pop()


def _check_same_sample_count(x_arrays, y_arrays, x_name="x", y_name="y"):
    x_count, y_count = _sample_count(x_arrays, x_name), _sample_count(y_arrays, y_name)
    if x_count != y_count:
        raise ValueError(
            f"{x_name} has {x_count} samples but {y_name} has {y_count}; they must match "
            "(one label per sample)"
        )
    if x_count == 0:
        raise ValueError(f"{x_name} and {y_name} are empty: there are no samples to use")
    return x_count


def _check_finite(arrays, name):
    """Raise a ValueError at the first NaN or infinite value, naming the array and index."""
    for position, array in enumerate(arrays):
        if array.dtype.kind not in "fc" or np.isfinite(array).all():
            continue
        index = tuple(int(i) for i in np.argwhere(~np.isfinite(array))[0])
        what = "NaN" if np.isnan(array[index]) else "an infinite value"
        label = name if len(arrays) == 1 else f"{name}[{position}]"
        raise ValueError(
            f"{label} contains {what} at index {index} (sample {index[0]}); training on it "
            "would make the loss NaN. Remove those samples or replace the values first, "
            "e.g. with np.nan_to_num"
        )


def _checked_batch_size(batch_size):
    if batch_size is None:
        return DEFAULT_BATCH_SIZE
    is_integer = isinstance(batch_size, numbers.Integral) and not isinstance(batch_size, bool)
    if not is_integer or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    return int(batch_size)


def _batch_bounds(count, batch_size):
    """(start, stop) of each batch; the last is smaller when batch_size does not divide count."""
    return [(start, min(start + batch_size, count)) for start in range(0, count, batch_size)]


def _take(arrays, rows):
    return [array[rows] for array in arrays]


def _without_batch(shape):
    """A shape with its batch axis as None, as Keras shows shapes."""
    return (None,) + tuple(shape[1:])


def _verbosity(verbose):
    return 1 if verbose == "auto" else int(verbose)


def _progress_bar(verbose):
    return callbacks_module.ProgressBar(verbose) if verbose else None


def _class_of_each_sample(labels):
    """Class indices from sparse labels (N,) or (N, 1), or from one-hot rows (N, K)."""
    if labels.ndim > 1 and labels.shape[-1] > 1:
        return labels.argmax(-1)
    return labels.reshape(len(labels), -1)[:, 0]


def _input_specs_from_shape(input_shape, dtype):
    """[(shape with batch axis None, dtype), ...] and whether the model takes a list."""
    def is_one_shape(shape):
        return all(n is None or isinstance(n, numbers.Integral) for n in shape)

    shapes = [input_shape] if is_one_shape(input_shape) else list(input_shape)
    specs = [((None,) + tuple(shape)[1:], np.dtype(dtype)) for shape in shapes]
    return specs, not is_one_shape(input_shape)


# ----------------------------------------------------------------------------
# The functional graph
# ----------------------------------------------------------------------------
def _fusable_calls(calls, outputs):
    """Positions i in `calls` where call i could run with call i + 1 as one op
    (Layer.fuses_with decides when the model runs): call i has one output, it
    is call i + 1's only argument, nothing else reads it, and the model does
    not return it."""
    readers = {}
    for call in calls:
        for tensor in call.symbolic_inputs():
            readers[id(tensor)] = readers.get(id(tensor), 0) + 1
    returned = {id(tensor) for tensor in outputs}
    fusable = set()
    for position, (call, following) in enumerate(zip(calls, calls[1:])):
        if (len(call.outputs) == 1 and following.args == (call.outputs[0],)
                and not following.kwargs and readers[id(call.outputs[0])] == 1
                and id(call.outputs[0]) not in returned):
            fusable.add(position)
    return fusable


def _calls_in_order(inputs, outputs):
    """The layer calls leading from `inputs` to `outputs`, each after those it needs.

    A depth-first walk back from the outputs, with an explicit stack (a deep
    model must not hit the recursion limit).
    """
    input_ids = {id(tensor) for tensor in inputs}
    ordered, done = [], set()
    stack = [(tensor.call, False) for tensor in reversed(outputs) if id(tensor) not in input_ids]
    for tensor in outputs:
        if id(tensor) not in input_ids and tensor.call is None:
            raise ValueError(f"output {tensor} is an Input that is not among the model's inputs")
    while stack:
        call, inputs_done = stack.pop()
        if id(call) in done:
            continue
        if inputs_done:
            done.add(id(call))
            ordered.append(call)
            continue
        stack.append((call, True))
        for tensor in call.symbolic_inputs():
            if id(tensor) in input_ids:
                continue
            if tensor.call is None:
                raise ValueError(
                    f"the outputs depend on {tensor}, which is not among the model's inputs; "
                    "pass every Input the outputs were computed from: Model(inputs=[...], ...)"
                )
            if id(tensor.call) not in done:
                stack.append((tensor.call, False))
    return ordered


def _symbolic_leaves(structure, argument):
    leaves = _flatten(structure)
    for leaf in leaves:
        if not isinstance(leaf, SymbolicTensor):
            raise TypeError(
                f"Model({argument}=...) needs the symbolic tensors of the functional API "
                f"(from Input(...) and layers called on it), got {type(leaf).__name__}; call "
                "the layers on Input(shape=...) rather than on data"
            )
    return leaves


# ----------------------------------------------------------------------------
# Model
# ----------------------------------------------------------------------------
class Model(Layer):
    """A trainable model: functional (`Model(inputs, outputs)`) or subclassed (define `call`)."""

    def __init__(self, inputs=None, outputs=None, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.optimizer = None
        self.loss = None
        self.compiled_metrics = []
        self.stop_training = False
        self.history = None
        self._compile_arguments = None
        self._loss_tracker = metrics_module.Mean(name="loss")
        # Each input as (shape with batch axis None, dtype), known once built;
        # save/load and summary rebuild the model from them.
        self._input_specs = None
        self._takes_list = False
        # Keras's switch: True runs every training step eagerly; otherwise a
        # step may be replayed from a recording of an earlier one (replay.py).
        self.run_eagerly = False
        self._recorded_steps = {}  # the key of a step's kind -> RecordedStep or None
        self._is_functional = inputs is not None or outputs is not None
        if self._is_functional:
            self._init_graph(inputs, outputs)

    # -- the functional graph -------------------------------------------------------
    def _init_graph(self, inputs, outputs):
        if inputs is None or outputs is None:
            raise ValueError("a functional model needs both: Model(inputs=..., outputs=...)")
        self.inputs = _symbolic_leaves(inputs, "inputs")
        self.outputs = _symbolic_leaves(outputs, "outputs")
        self._nested_outputs = outputs
        self._calls = _calls_in_order(self.inputs, self.outputs)
        input_layers = [InputLayer(batch_shape=tensor.shape, dtype=tensor.dtype, name=tensor.name)
                        for tensor in self.inputs]
        layers = []
        for call in self._calls:
            if call.layer not in layers:
                layers.append(call.layer)
        self._layers = input_layers + layers
        self._set_input_specs([(tensor.shape, tensor.dtype) for tensor in self.inputs],
                              isinstance(inputs, (list, tuple)))
        self._fusable = _fusable_calls(self._calls, self.outputs)
        self.built = True

    def _run_graph(self, inputs, training):
        given = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
        if len(given) != len(self.inputs):
            raise ValueError(
                f"model '{self.name}' takes {len(self.inputs)} inputs, got {len(given)}")
        values = {id(symbolic): value for symbolic, value in zip(self.inputs, given)}

        def value_of(item):
            return values[id(item)] if isinstance(item, SymbolicTensor) else item

        position = 0
        while position < len(self._calls):
            call = self._calls[position]
            args = map_structure(value_of, call.args)
            kwargs = map_structure(value_of, call.kwargs)
            following = self._calls[position + 1] if position in self._fusable else None
            if following is not None and call.layer.fuses_with(following.layer):
                # Two layers as one op, as in Sequential.call.
                outputs = call.layer(*args, **kwargs, followed_by=following.layer)
                call = following
                position += 2
            else:
                kwargs.setdefault("training", training)
                outputs = call.layer(*args, **kwargs)
                position += 1
            for symbolic, value in zip(call.outputs, _flatten(outputs)):
                values[id(symbolic)] = value
        return map_structure(value_of, self._nested_outputs)

    # -- calling and building ---------------------------------------------------------
    def call(self, inputs, training=None):
        if self._is_functional:
            return self._run_graph(inputs, training)
        raise NotImplementedError(
            f"{type(self).__name__} has no call(): subclass Model and define "
            "call(self, inputs), or make a functional model with Model(inputs, outputs)"
        )

    def _set_input_specs(self, specs, takes_list):
        self._input_specs = [(_without_batch(shape), np.dtype(dtype)) for shape, dtype in specs]
        self._takes_list = takes_list

    def _build_once(self, inputs):
        # A subclassed model is built by its first call: its layers build
        # themselves; only the input's shape is remembered (for save and summary).
        if self.built:
            return
        leaves = _flatten(inputs)
        self._set_input_specs([(leaf.shape, leaf.dtype) for leaf in leaves],
                              isinstance(inputs, (list, tuple)))
        self.built = True

    def build(self, input_shape=None):
        """Create the weights for inputs of `input_shape` (batch axis included, may be None)."""
        if self._is_functional:
            return
        if input_shape is None:
            raise ValueError("build() needs the input shape, e.g. model.build((None, 28, 28))")
        self._build_from_specs(*_input_specs_from_shape(input_shape, self.dtype))

    def _build_from_specs(self, specs, takes_list):
        """Build by a dry run on one sample of zeros per input, of the given shapes and dtypes."""
        self._set_input_specs(specs, takes_list)
        with no_grad():
            self._call_without_building(self._example_inputs(), training=False)
        self.built = True

    def _call_without_building(self, inputs, training):
        """self.call(inputs), passing `training` only if call accepts it."""
        if self._accepts("training"):
            return self.call(inputs, training=training)
        return self.call(inputs)

    def _example_inputs(self):
        """A batch of one sample of zeros per input: for dry runs that build or trace."""
        device = self._weights_device()
        examples = [
            Tensor._wrap(backend.to_device(
                np.zeros(tuple(1 if n is None else n for n in shape), dtype=dtype), device))
            for shape, dtype in self._input_specs
        ]
        return examples if self._takes_list else examples[0]

    def _weights_device(self):
        weights = self._weights_in_creation_order()
        return weights[0].device if weights else backend.default_device()

    # -- layers -------------------------------------------------------------------------
    @property
    def layers(self):
        if self._is_functional:
            return list(self._layers)
        return self._sublayers()

    def get_layer(self, name=None, index=None):
        """A layer by name or by its position in `model.layers`."""
        if index is not None:
            return self.layers[index]
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise ValueError(f"model '{self.name}' has no layer named {name!r}; its layers: "
                         f"{[layer.name for layer in self.layers]}")

    @property
    def input_shape(self):
        if self._input_specs is None:
            raise AttributeError(
                f"model '{self.name}' is not built yet, so its input shape is unknown")
        shapes = [shape for shape, _ in self._input_specs]
        return shapes if self._takes_list else shapes[0]

    @property
    def output_shape(self):
        if self._is_functional:
            shapes = [tensor.shape for tensor in self.outputs]
            return shapes if len(shapes) > 1 else shapes[0]
        raise AttributeError("a subclassed model has no fixed output shape; call it on data")

    def to(self, device):
        """Move the weights (and the optimizer's state) to 'cpu' or 'cuda'."""
        state = self.optimizer.get_state() if self.optimizer is not None else None
        super().to(device)
        if state is not None:
            # The optimizer's slot arrays must live where the weights are.
            self.optimizer.set_state(state, self.trainable_weights)
        return self

    # -- compile ----------------------------------------------------------------------
    def compile(self, optimizer="rmsprop", loss=None, metrics=None, loss_weights=None,
                weighted_metrics=None, run_eagerly=None, steps_per_execution=None,
                jit_compile=None, **kwargs):
        """Choose the optimizer, the loss and the metrics (Keras names or objects).

        run_eagerly=True makes every training step run eagerly: layer by layer,
        op by op.  By default a step is recorded once and replayed (see
        deepbreadth/replay.py), as Keras with TensorFlow traces it into a graph.
        steps_per_execution and jit_compile are accepted so that Keras code
        runs; they tune TensorFlow's graph compilation, which does not exist here.
        """
        if kwargs:
            raise TypeError(f"compile() got unexpected arguments: {sorted(kwargs)}")
        if loss_weights is not None or weighted_metrics is not None:
            raise NotImplementedError("compile(): loss_weights and weighted_metrics are not "
                                      "supported; leave them None")
        if self._is_functional and len(self.outputs) > 1:
            raise NotImplementedError(
                f"model '{self.name}' has {len(self.outputs)} outputs; training a model with "
                "several outputs is not supported (predict works). Train one output per model, "
                "or concatenate the outputs into one"
            )
        metric_identifiers = [metrics] if isinstance(metrics, str) else list(metrics or [])
        self.optimizer = optimizers_module.get(optimizer)
        self.loss = losses_module.get(loss)
        self.compiled_metrics = [metrics_module.get(metric, loss=self.loss)
                                 for metric in metric_identifiers]
        self._compile_arguments = {"metrics": metric_identifiers}
        if run_eagerly is not None:
            self.run_eagerly = bool(run_eagerly)
        self._recorded_steps = {}  # recorded with the loss compiled before

    @property
    def metrics_names(self):
        return ["loss"] + [metric.name for metric in self.compiled_metrics]

    @property
    def metrics(self):
        return [self._loss_tracker] + list(self.compiled_metrics)

    def _require_compiled(self, action):
        if self.optimizer is None:
            raise RuntimeError(
                f"model '{self.name}' must be compiled before {action}: call "
                "model.compile(optimizer='adam', loss='sparse_categorical_crossentropy', "
                "metrics=['accuracy']) (with the loss that fits your labels) first"
            )
        if self.loss is None:
            raise ValueError(
                f"model '{self.name}' was compiled without a loss, so there is nothing to "
                f"minimise or report for {action}: pass loss=... to compile()"
            )

    def reset_metrics(self):
        for metric in self.metrics:
            metric.reset_state()

    def _logs(self):
        return {metric.name: float(metric.result()) for metric in self.metrics}

    # -- one batch ----------------------------------------------------------------------
    def _tensor_from(self, array, device):
        """A batch as a Tensor on `device`; floats take the model's dtype, integers stay."""
        if array.dtype.kind == "f" and array.dtype != self.dtype:
            array = array.astype(self.dtype)
        array = backend.array_module(array).ascontiguousarray(array)
        return Tensor._wrap(backend.to_device(array, device))

    def _model_input(self, x_arrays, device):
        tensors = [self._tensor_from(array, device) for array in x_arrays]
        return tensors if len(tensors) > 1 else tensors[0]

    def _targets(self, y_arrays, device):
        """The targets as a Tensor on `device`. Integer labels become int64, the
        dtype the sparse losses index with (MNIST's come as uint8): the loss
        then reads this very array, and a recorded step can trace it (replay.py)."""
        array = y_arrays[0]
        if array.dtype.kind in "iu" and array.dtype != np.int64:
            array = array.astype(np.int64)
        return self._tensor_from(array, device)

    def _ensure_built(self, x_arrays):
        """Build a model that waits for data, by a dry run on the first sample,
        so that its weights exist before the training loop collects them."""
        if not self.built:
            with no_grad():
                self(self._model_input(_take(x_arrays, slice(0, 1)), self._weights_device()),
                     training=False)

    def _weights_to_update(self, x_arrays):
        """The trainable weights and their device, the model built first if it waits for data.

        Each weight gets a C-contiguous array: the fused optimizer kernels update
        weights in place and refuse other layouts (an initializer may return a
        transposed view, e.g. Orthogonal for a wide recurrent kernel).
        """
        self._ensure_built(x_arrays)
        weights = self.trainable_weights
        for weight in weights:
            if not weight.data.flags["C_CONTIGUOUS"]:
                weight.data = backend.array_module(weight.data).ascontiguousarray(weight.data)
        device = weights[0].device if weights else self._weights_device()
        return weights, device

    def _train_step(self, x_arrays, y_arrays, sample_weight, weights, device):
        """Forward, loss, backward, update of `weights`; returns the loss as a float.

        A NaN or infinite loss is returned without updating the weights, so
        they keep their last finite values.
        """
        with _kernel_threads(device):
            return self._train_step_body(x_arrays, y_arrays, sample_weight, weights, device)

    def _train_step_body(self, x_arrays, y_arrays, sample_weight, weights, device):
        inputs = self._model_input(x_arrays, device)
        targets = self._targets(y_arrays, device)
        outputs, loss = self._forward_and_backward(inputs, targets, sample_weight)
        # Read the loss only now: on a GPU, reading it waits for the device, and
        # the backward pass has been queued behind the forward in the meantime.
        loss_value = float(loss.item())
        if not math.isfinite(loss_value):
            self.optimizer.zero_grad(weights)
            self._explain_non_finite_loss(y_arrays, outputs, device)
            return loss_value
        self.optimizer.step(weights)
        self.optimizer.zero_grad(weights)
        self._update_metrics(loss_value, y_arrays, outputs)
        return loss_value

    def _forward_and_backward(self, inputs, targets, sample_weight):
        """(outputs, loss) of a training step, with every weight's gradient in .grad.

        Replayed from a recording of an earlier step of the same kind when
        there is one (deepbreadth/replay.py); else run eagerly, and recorded
        when the model may be replayed.
        """
        input_list = _flatten(inputs)  # one Tensor or a list of them, as a list
        key = self._replay_key(input_list, targets, sample_weight)
        recording = self._recorded_steps.get(key) if key is not None else None
        if recording is not None and recording.still_fits():
            return self._replayed_step(key, recording, input_list, targets, sample_weight)
        if key is None or key in self._recorded_steps:  # cannot replay, or not as recorded
            return self._loss_and_backward(targets, self(inputs, training=True), sample_weight)
        return self._recorded_step(key, inputs, input_list, targets, sample_weight)

    def _replayed_step(self, key, recording, input_list, targets, sample_weight):
        outputs, loss = recording.run(input_list, [targets])
        if loss is not None:
            return outputs, loss
        # The loss now reads the output another way (it found logits): finish
        # this step eagerly on the replayed output, and record the next one.
        del self._recorded_steps[key]
        return self._loss_and_backward(targets, outputs, sample_weight)

    def _recorded_step(self, key, inputs, input_list, targets, sample_weight):
        """An eager step, watched by a StepRecorder; its recording (or None, when
        it cannot be replayed) is kept under `key`."""
        with replay.StepRecorder(input_list, [targets], self.weights) as recorder:
            outputs = self(inputs, training=True)
            recorder.model_done()
            loss = self._loss_of(targets, outputs, sample_weight)
        layers = self._layers_for_replay()
        if layers is None and recorder.why_not is None:
            recorder.why_not = "a layer or the loss does not declare replays_exactly"
        if len(self._recorded_steps) >= MAX_RECORDED_STEPS:
            self._recorded_steps.clear()  # e.g. a new batch size every step
        check = self.loss.replay_check() if hasattr(self.loss, "replay_check") else None
        self._recorded_steps[key] = recorder.recording(outputs, loss, layers or [], check)
        loss.backward()
        return outputs, loss

    def _loss_of(self, targets, outputs, sample_weight):
        with label_checks_deferred():  # the loss is read later; no wait before that
            return self.loss(targets, outputs, sample_weight=sample_weight)

    def _loss_and_backward(self, targets, outputs, sample_weight):
        loss = self._loss_of(targets, outputs, sample_weight)
        loss.backward()
        return outputs, loss

    def _replay_key(self, input_list, targets, sample_weight):
        """What a recorded step depends on, beyond its ops: the layers and weights
        (their version), the loss, and the batch's shapes, dtypes and devices.
        None when this step must run eagerly."""
        if (self.run_eagerly or sample_weight is not None or autograd._op_observers
                or self._has_hooks()):
            return None
        batch = tuple((type(t.data), t.shape, t.dtype) for t in input_list + [targets])
        return (structure_version(), id(self.loss), batch)

    def _layers_for_replay(self):
        """Every layer, if each one and the loss replay exactly; else None."""
        if type(self).call not in (Model.call, Sequential.call):
            return None  # a subclassed model's call may do more than its layers
        layers = self.layers
        if not replay.replays_exactly(self.loss) or not all(map(replay.replays_exactly, layers)):
            return None
        return layers

    def _test_step(self, x_arrays, y_arrays, sample_weight):
        device = self._weights_device()
        with no_grad(), _kernel_threads(device):
            outputs = self(self._model_input(x_arrays, device), training=False)
            loss = self._loss_of(self._targets(y_arrays, device), outputs, sample_weight)
        loss_value = float(loss.item())
        if not math.isfinite(loss_value):
            self._explain_non_finite_loss(y_arrays, outputs, device)
        self._update_metrics(loss_value, y_arrays, outputs)
        return loss_value

    def _explain_non_finite_loss(self, y_arrays, outputs, device):
        """A clearer error than 'the loss became nan' where the loss can tell the
        cause from the targets (a label outside the classes, on the GPU)."""
        explain = getattr(self.loss, "explain_non_finite", None)
        if explain is not None:
            explain(self._targets(y_arrays, device), outputs)

    def _update_metrics(self, loss_value, y_arrays, outputs):
        # The epoch's loss is the mean over samples, so a short last batch counts less.
        self._loss_tracker.update_state(loss_value, sample_weight=len(y_arrays[0]))
        if not self.compiled_metrics:
            return
        predictions = outputs.numpy()  # metrics measure; they need no graph
        labels = _numpy_of(y_arrays[0])
        for metric in self.compiled_metrics:
            metric.update_state(labels, predictions)

    def _predict_step(self, x_arrays):
        device = self._weights_device()
        with no_grad(), _kernel_threads(device):
            outputs = self(self._model_input(x_arrays, device), training=False)
        return [output.numpy() for output in _flatten(outputs)]

    # -- preparing data ---------------------------------------------------------------
    def _input_count(self):
        return len(self.inputs) if self._is_functional else 1

    def _x_arrays(self, x, name="x", keep_device=False):
        return _as_array_list(x, name, self._input_count(), keep_device)

    def _x_y_arrays(self, x, y, x_name="x", y_name="y", check_values=True, keep_device=False):
        if y is None:
            raise ValueError(f"{y_name} is missing: this needs labels (targets) for every sample")
        x_arrays = self._x_arrays(x, x_name, keep_device)
        y_arrays = _as_array_list(y, y_name, 1, keep_device)
        count = _check_same_sample_count(x_arrays, y_arrays, x_name, y_name)
        if check_values:
            _check_finite(x_arrays, x_name)
            _check_finite(y_arrays, y_name)
        return x_arrays, y_arrays, count

    @staticmethod
    def _sample_weights(sample_weight, class_weight, y_arrays, count):
        """Per-sample loss weights from sample_weight and/or class_weight, or None."""
        weights = None
        if sample_weight is not None:
            weights = np.asarray(_numpy_of(sample_weight), dtype=np.float64)
            if len(weights) != count:
                raise ValueError(f"sample_weight has {len(weights)} entries but there are "
                                 f"{count} samples; give one weight per sample")
        if class_weight is not None:
            classes = _class_of_each_sample(_numpy_of(y_arrays[0]))
            try:
                per_class = np.array([class_weight[int(label)] for label in classes],
                                     dtype=np.float64)
            except KeyError as error:
                raise ValueError(f"class_weight has no weight for class {error.args[0]}, which "
                                 "appears in y; give a weight for every class") from None
            weights = per_class if weights is None else weights * per_class
        return weights

    # -- fit -----------------------------------------------------------------------------
    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None,
            validation_split=0.0, validation_data=None, shuffle=True, class_weight=None,
            sample_weight=None, initial_epoch=0, validation_batch_size=None, validation_freq=1):
        """Train for `epochs` passes over (x, y); returns a History of the logs per epoch."""
        self._require_compiled("fit")
        chosen_batch_size = batch_size
        batch_size = _checked_batch_size(batch_size)
        verbose = _verbosity(verbose)
        x_arrays, y_arrays, count = self._x_y_arrays(x, y)
        weights = self._sample_weights(sample_weight, class_weight, y_arrays, count)

        validation = None
        if validation_data is not None:
            validation = self._validation_arrays(validation_data)
        elif validation_split:
            (x_arrays, y_arrays, weights, count), validation = self._split_off_validation(
                x_arrays, y_arrays, weights, count, validation_split)
        if batch_size > count and chosen_batch_size is None:
            # The default of 32 simply shrinks: tutorials fit XOR's 4 samples without a batch size.
            batch_size = count
        if batch_size > count:
            raise ValueError(
                f"batch_size={batch_size} is larger than the {count} training samples, so not "
                f"even one full batch fits; use a batch size of at most {count} "
                f"(e.g. batch_size={min(count, DEFAULT_BATCH_SIZE)})"
            )

        trainable_weights, device = self._weights_to_update(x_arrays)
        bounds = _batch_bounds(count, batch_size)
        history = callbacks_module.History()
        callback_list = callbacks_module.CallbackList(
            callbacks, model=self,
            params={"epochs": epochs, "steps": len(bounds), "verbose": verbose},
            history=history, progress=_progress_bar(verbose))
        # With TerminateOnNaN the user asked for a quiet stop instead of an error.
        raise_on_nan = not callback_list.contains(callbacks_module.TerminateOnNaN)
        self.history = history
        self.stop_training = False
        self.optimizer.zero_grad(self.trainable_weights)  # forget gradients of any earlier backward

        callback_list.call("on_train_begin", None)
        for epoch in range(initial_epoch, epochs):
            self.reset_metrics()
            callback_list.call("on_epoch_begin", epoch, None)
            logs = self._train_epoch(epoch, x_arrays, y_arrays, weights, bounds, shuffle,
                                     (trainable_weights, device), callback_list, raise_on_nan)
            if validation is not None and (epoch + 1) % validation_freq == 0:
                val_logs = self._test_loop(*validation, validation_batch_size or batch_size,
                                           callback_list)
                logs.update({"val_" + name: value for name, value in val_logs.items()})
            callback_list.call("on_epoch_end", epoch, logs)
            if self.stop_training:
                break
        callback_list.call("on_train_end", None)
        return history

    def _train_epoch(self, epoch, x_arrays, y_arrays, weights, bounds, shuffle, updated,
                     callback_list, raise_on_nan):
        # `updated` = (trainable weights, device): looked up once per fit, not per
        # step, since walking the layers costs time.
        trainable_weights, device = updated
        order = backend.rng().permutation(len(y_arrays[0])) if shuffle else None
        logs = {}
        for step, (start, stop) in enumerate(bounds):
            rows = order[start:stop] if order is not None else slice(start, stop)
            callback_list.call("on_train_batch_begin", step, None)
            loss_value = self._train_step(_take(x_arrays, rows), _take(y_arrays, rows),
                                          None if weights is None else weights[rows],
                                          trainable_weights, device)
            if not math.isfinite(loss_value):
                if raise_on_nan:
                    raise NaNLossError(
                        f"the loss became {loss_value} at epoch {epoch + 1}, step {step + 1} of "
                        f"{len(bounds)}: training diverged. Lower the learning rate (e.g. "
                        "optimizer=Adam(learning_rate=1e-4)), scale the inputs (e.g. pixels to "
                        "[0, 1]), or pass callbacks=[TerminateOnNaN()] to stop without an error. "
                        "The weights keep their values from before this step."
                    )
                logs = {**self._logs(), "loss": loss_value}
            else:
                logs = self._logs()
            callback_list.call("on_train_batch_end", step, logs)
            if self.stop_training:
                break
        return dict(logs)

    def _validation_arrays(self, validation_data):
        is_sequence = isinstance(validation_data, (list, tuple))
        if not is_sequence or len(validation_data) not in (2, 3):
            length = f" of length {len(validation_data)}" if is_sequence else ""
            raise ValueError(
                "validation_data must be a tuple (x_val, y_val) or (x_val, y_val, "
                f"sample_weight_val), got {type(validation_data).__name__}{length}"
            )
        x_arrays, y_arrays, count = self._x_y_arrays(validation_data[0], validation_data[1],
                                                     "validation x", "validation y")
        weights = None
        if len(validation_data) == 3 and validation_data[2] is not None:
            weights = self._sample_weights(validation_data[2], None, y_arrays, count)
        return x_arrays, y_arrays, weights

    @staticmethod
    def _split_off_validation(x_arrays, y_arrays, weights, count, validation_split):
        """Keras takes the validation samples from the end of the data, before shuffling."""
        if not 0 < validation_split < 1:
            raise ValueError(f"validation_split must be between 0 and 1, got {validation_split}")
        train_count = int(count * (1 - validation_split))
        if train_count == 0 or train_count == count:
            raise ValueError(
                f"validation_split={validation_split} of {count} samples leaves "
                f"{'no training' if train_count == 0 else 'no validation'} samples; use more data "
                "or another split"
            )
        head, tail = slice(0, train_count), slice(train_count, count)
        no_weights = weights is None
        train = (_take(x_arrays, head), _take(y_arrays, head),
                 None if no_weights else weights[head], train_count)
        validation = (_take(x_arrays, tail), _take(y_arrays, tail),
                      None if no_weights else weights[tail])
        return train, validation

    # -- evaluate ------------------------------------------------------------------------
    def _test_loop(self, x_arrays, y_arrays, weights, batch_size, callback_list):
        self.reset_metrics()
        callback_list.call("on_test_begin", None)
        logs = {}
        count = len(y_arrays[0])
        for step, (start, stop) in enumerate(_batch_bounds(count, batch_size)):
            rows = slice(start, stop)
            callback_list.call("on_test_batch_begin", step, None)
            self._test_step(_take(x_arrays, rows), _take(y_arrays, rows),
                            None if weights is None else weights[rows])
            logs = self._logs()
            callback_list.call("on_test_batch_end", step, logs)
        callback_list.call("on_test_end", logs)
        return logs

    def _results(self, logs, return_dict):
        """What evaluate and *_on_batch return: the loss, [loss, metrics...], or a dict."""
        if return_dict:
            return dict(logs)
        values = [logs[name] for name in self.metrics_names]
        return values[0] if len(values) == 1 else values

    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", sample_weight=None,
                 callbacks=None, return_dict=False):
        """The loss (and metrics) on (x, y): a float, or [loss, metric, ...] with metrics."""
        self._require_compiled("evaluate")
        batch_size = _checked_batch_size(batch_size)
        verbose = _verbosity(verbose)
        x_arrays, y_arrays, count = self._x_y_arrays(x, y)
        weights = self._sample_weights(sample_weight, None, y_arrays, count)
        steps = len(_batch_bounds(count, batch_size))
        callback_list = callbacks_module.CallbackList(
            callbacks, model=self, params={"steps": steps, "verbose": verbose},
            progress=_progress_bar(verbose))
        logs = self._test_loop(x_arrays, y_arrays, weights, batch_size, callback_list)
        return self._results(logs, return_dict)

    # -- predict ---------------------------------------------------------------------------
    def predict(self, x, batch_size=None, verbose=0, callbacks=None):
        """The model's outputs for x, as NumPy arrays (a list of them for several outputs)."""
        batch_size = _checked_batch_size(batch_size)
        x_arrays = self._x_arrays(x)
        count = _sample_count(x_arrays, "x")
        bounds = _batch_bounds(count, batch_size)
        verbose = _verbosity(verbose)
        callback_list = callbacks_module.CallbackList(
            callbacks, model=self, params={"steps": len(bounds), "verbose": verbose},
            progress=_progress_bar(verbose))
        callback_list.call("on_predict_begin", None)
        batches = []
        for step, (start, stop) in enumerate(bounds):
            callback_list.call("on_predict_batch_begin", step, None)
            batches.append(self._predict_step(_take(x_arrays, slice(start, stop))))
            callback_list.call("on_predict_batch_end", step, None)
        callback_list.call("on_predict_end", None)
        if not batches:
            raise ValueError("x is empty: there are no samples to predict")
        outputs = [np.concatenate(parts) for parts in zip(*batches)]
        return outputs[0] if len(outputs) == 1 else outputs

    # -- single batches --------------------------------------------------------------------
    def train_on_batch(self, x, y=None, sample_weight=None, class_weight=None, reset_metrics=True,
                       return_dict=False):
        """One update on one batch; returns the loss (and metrics) of that batch.

        Made to be called in a loop, so the data is not scanned for NaN here
        (fit does that once); a NaN loss still stops with an error.
        """
        self._require_compiled("train_on_batch")
        x_arrays, y_arrays, count = self._x_y_arrays(x, y, check_values=False, keep_device=True)
        if reset_metrics:
            self.reset_metrics()
        weights = self._sample_weights(sample_weight, class_weight, y_arrays, count)
        trainable_weights, device = self._weights_to_update(x_arrays)
        loss_value = self._train_step(x_arrays, y_arrays, weights, trainable_weights, device)
        if not math.isfinite(loss_value):
            raise NaNLossError(f"the loss became {loss_value} on this batch; the weights were not "
                               "updated. Lower the learning rate or check the data")
        return self._results(self._logs(), return_dict)

    def test_on_batch(self, x, y=None, sample_weight=None, reset_metrics=True, return_dict=False):
        """The loss (and metrics) on one batch, without updating the weights."""
        self._require_compiled("test_on_batch")
        x_arrays, y_arrays, count = self._x_y_arrays(x, y, check_values=False, keep_device=True)
        if reset_metrics:
            self.reset_metrics()
        weights = self._sample_weights(sample_weight, None, y_arrays, count)
        self._test_step(x_arrays, y_arrays, weights)
        return self._results(self._logs(), return_dict)

    def predict_on_batch(self, x):
        outputs = self._predict_step(self._x_arrays(x, keep_device=True))
        return outputs[0] if len(outputs) == 1 else outputs

    # -- summary -------------------------------------------------------------------------
    def _layer_output_shapes(self):
        """{id(layer): output shape} from a dry run on one sample; 'multiple' if called twice."""
        shapes = {}

        def record(layer, inputs, outputs):
            shape = [_without_batch(t.shape) for t in _flatten(outputs) if isinstance(t, Tensor)]
            shapes.setdefault(id(layer), []).append(shape[0] if len(shape) == 1 else shape)

        handles = [layer.register_forward_hook(record) for layer in self.layers]
        try:
            with no_grad():
                self(self._example_inputs(), training=False)
        finally:
            for handle in handles:
                handle.remove()
        return {key: found[0] if len(found) == 1 else "multiple" for key, found in shapes.items()}

    def summary(self, line_length=None, positions=None, print_fn=None, expand_nested=False,
                show_trainable=False, layer_range=None):
        """Print a table of the layers: name (type), output shape, number of parameters."""
        if not self.built or self._input_specs is None:
            raise ValueError(
                f"model '{self.name}' has not been built yet, so its layers have no shapes or "
                "weights: give the first layer input_shape=..., call model.build(input_shape), "
                "or call the model on a batch of data first"
            )
        print_fn = print_fn or print
        shapes = self._layer_output_shapes()
        rows = [("Layer (type)", "Output Shape", "Param #")]
        for layer in self.layers:
            if isinstance(layer, InputLayer):
                shape = _without_batch(layer.batch_input_shape)
            else:
                shape = shapes.get(id(layer), "?")
            params = layer.count_params() if layer.built else 0
            rows.append((f"{layer.name} ({type(layer).__name__})", str(shape), str(params)))
        line_length = line_length or 65
        widths = [max(int(line_length * 0.45), max(len(row[0]) for row in rows) + 2),
                  max(int(line_length * 0.40), max(len(row[1]) for row in rows) + 2),
                  max(line_length - int(line_length * 0.85), max(len(row[2]) for row in rows) + 1)]
        total_width = sum(widths) + 1

        def format_row(row):
            return " " + "".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip()

        trainable = sum(w.size for w in self.trainable_weights)
        frozen = sum(w.size for w in self.non_trainable_weights)
        print_fn(f'Model: "{self.name}"')
        print_fn("_" * total_width)
        print_fn(format_row(rows[0]))
        print_fn("=" * total_width)
        for row in rows[1:]:
            print_fn(format_row(row))
        print_fn("=" * total_width)
        print_fn(f"Total params: {trainable + frozen:,}")
        print_fn(f"Trainable params: {trainable:,}")
        print_fn(f"Non-trainable params: {frozen:,}")
        print_fn("_" * total_width)

    # -- configuration ---------------------------------------------------------------
    def _graph_config(self):
        """The functional graph as JSON-able data: layers, the calls between them,
        the inputs and the outputs."""
        refs = {id(tensor): {"input": index} for index, tensor in enumerate(self.inputs)}
        for node_index, call in enumerate(self._calls):
            for output_index, tensor in enumerate(call.outputs):
                refs[id(tensor)] = {"node": [node_index, output_index]}
        layers = [layer for layer in self._layers if not isinstance(layer, InputLayer)]

        def encode(value):
            if isinstance(value, SymbolicTensor):
                return refs[id(value)]
            if isinstance(value, (list, tuple)):
                return {"list" if isinstance(value, list) else "tuple": [encode(v) for v in value]}
            if isinstance(value, dict):
                return {"dict": [[key, encode(item)] for key, item in value.items()]}
            return {"value": value}

        return {
            "name": self.name,
            "trainable": self.trainable,
            "layers": [saving.serialize_layer(layer) for layer in layers],
            "inputs": [{"shape": list(tensor.shape), "dtype": tensor.dtype.name,
                        "name": tensor.name} for tensor in self.inputs],
            "inputs_are_list": self._takes_list,
            "nodes": [{"layer": layers.index(call.layer), "args": encode(call.args),
                       "kwargs": encode(call.kwargs)} for call in self._calls],
            "outputs": encode(self._nested_outputs),
        }

    @staticmethod
    def _graph_from_config(config, custom_objects):
        inputs = [Input(batch_shape=tuple(spec["shape"]), dtype=spec["dtype"], name=spec["name"])
                  for spec in config["inputs"]]
        layers = [saving.deserialize_layer(description, custom_objects)
                  for description in config["layers"]]
        node_outputs = []

        def decode(encoded):
            if "input" in encoded:
                return inputs[encoded["input"]]
            if "node" in encoded:
                node_index, output_index = encoded["node"]
                return node_outputs[node_index][output_index]
            if "list" in encoded:
                return [decode(item) for item in encoded["list"]]
            if "tuple" in encoded:
                return tuple(decode(item) for item in encoded["tuple"])
            if "dict" in encoded:
                return {key: decode(item) for key, item in encoded["dict"]}
            return encoded["value"]

        for node in config["nodes"]:
            outputs = layers[node["layer"]](*decode(node["args"]), **decode(node["kwargs"]))
            node_outputs.append(_flatten(outputs))
        model_inputs = inputs if config["inputs_are_list"] else inputs[0]
        return Model(model_inputs, decode(config["outputs"]), name=config["name"],
                     trainable=config.get("trainable", True))

    def get_config(self):
        if self._is_functional:
            return self._graph_config()
        return super().get_config()

    @classmethod
    def from_config(cls, config, custom_objects=None):
        if "nodes" in config:
            return cls._graph_from_config(config, custom_objects)
        try:
            return cls(**config)
        except TypeError:
            if set(config) - {"name", "trainable", "dtype"}:
                raise
        # A subclass whose __init__ takes no name: Keras's usual `super().__init__()`.
        model = cls()
        model.name = config.get("name", model.name)
        return model

    def to_json(self):
        """The architecture as a JSON string (no weights); `model_from_json` reads it back."""
        return saving.to_json(saving.serialize_layer(self))

    # -- saving ---------------------------------------------------------------------
    def _require_built(self, action):
        if not self.built:
            raise ValueError(
                f"model '{self.name}' is not built yet, so its weights do not exist to {action}: "
                "give the first layer input_shape=..., call model.build(input_shape), or call "
                "the model on a batch of data first"
            )

    def save_weights(self, filepath, overwrite=True):
        """Write the weights to `filepath` as an .npz file (see deepbreadth.saving)."""
        self._require_built("save")
        _refuse_overwrite(filepath, overwrite)
        saving.save_arrays(filepath, saving.weights_to_arrays(self._weights_in_creation_order()))

    def load_weights(self, filepath):
        """Load weights saved by save_weights (or the weights of a save() file)."""
        self._require_built("load into")
        arrays = saving.load_arrays(filepath)
        prefix = "weights/" if saving.ARCHITECTURE_KEY in arrays else ""
        _load_saved_weights(self, saving.arrays_in_order(arrays, prefix), f"'{filepath}'")

    def save(self, filepath, overwrite=True, include_optimizer=True, save_format=None):
        """Write the whole model (architecture, weights, compile settings, optimizer
        state) to one file; `load_model(filepath)` gives it back ready to train on."""
        self._require_built("save")
        _refuse_overwrite(filepath, overwrite)
        arrays = saving.weights_to_arrays(self._weights_in_creation_order(), prefix="weights/")
        document = {
            "format": saving.FORMAT_NAME,
            "version": saving.FORMAT_VERSION,
            "model": saving.serialize_layer(self),
            "inputs": [{"shape": list(shape), "dtype": dtype.name}
                       for shape, dtype in self._input_specs],
            "inputs_are_list": self._takes_list,
            "compile": self._compile_config(),
            "optimizer_state": None,
        }
        if include_optimizer and self.optimizer is not None:
            document["optimizer_state"] = saving.pack_structure(self.optimizer.get_state(), arrays,
                                                                "optimizer/")
        arrays[saving.ARCHITECTURE_KEY] = saving.json_array(document)
        saving.save_arrays(filepath, arrays)

    def _compile_config(self):
        if self.optimizer is None:
            return None
        metrics = [identifier if isinstance(identifier, str) else metrics_module.serialize(metric)
                   for identifier, metric in zip(self._compile_arguments["metrics"],
                                                 self.compiled_metrics)]
        return {"optimizer": optimizers_module.serialize(self.optimizer),
                "loss": losses_module.serialize(self.loss) if self.loss is not None else None,
                "metrics": metrics}


def _refuse_overwrite(filepath, overwrite):
    if not overwrite and os.path.exists(filepath):
        raise FileExistsError(
            f"'{filepath}' exists and overwrite=False; remove it or pass overwrite=True")


def _load_saved_weights(model, saved, source):
    weights = model._weights_in_creation_order()
    saving.check_weights_fit(weights, saved, source)
    model.set_weights([array for _, array in saved])


# ----------------------------------------------------------------------------
# Sequential
# ----------------------------------------------------------------------------
def _declared_input(layer):
    """The (input shape, dtype) a layer was given before seeing data, or (None, None):
    input_shape=... on a layer, or the known input of a single-input model."""
    if layer.batch_input_shape is not None:
        return layer.batch_input_shape, layer.dtype
    if isinstance(layer, Model) and layer._input_specs is not None and not layer._takes_list:
        return layer._input_specs[0]
    return None, None


class Sequential(Model):
    """A plain stack of layers, each feeding the next.

    Built as soon as the input shape is known: from `input_shape=` on the first
    layer, or an `Input`/`InputLayer` put first; otherwise on the first data.
    Building runs the layers, in order, on one sample of zeros (a dry run that
    creates their weights and finds every output shape), so a layer that cannot
    take what the previous one gives fails here, with both layers named.
    """

    def __init__(self, layers=None, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self._layers = []
        self._traced_shapes = []  # (input shape, output shape) of each layer, once built
        self._last_output = None  # the last layer's output in the dry run, once built
        for layer in layers or []:
            self.add(layer)

    @property
    def layers(self):
        return list(self._layers)

    def add(self, layer):
        """Append a layer (or, first of all, an Input / InputLayer fixing the input shape)."""
        is_input_tensor = isinstance(layer, SymbolicTensor) and layer.call is None
        if isinstance(layer, InputLayer) or is_input_tensor:
            if self._layers or self._input_specs is not None:
                raise ValueError(f"Sequential model '{self.name}': an Input or InputLayer can only "
                                 "come first")
            shape = layer.batch_input_shape if isinstance(layer, InputLayer) else layer.shape
            self._start_trace(shape, layer.dtype)
            return
        if not isinstance(layer, Layer):
            raise TypeError(f"Sequential model '{self.name}' can only add layers, got "
                            f"{type(layer).__name__} {layer!r}")
        if not self._layers and self._input_specs is None:
            shape, dtype = _declared_input(layer)
            if shape is not None:
                self._start_trace(shape, dtype)
        self._layers.append(layer)
        structure_changed()  # the list changed in place: no attribute assignment saw it
        if self._last_output is not None:
            self._trace(len(self._layers) - 1)

    def pop(self):
        """Remove the last layer."""
        if not self._layers:
            raise TypeError(f"Sequential model '{self.name}' has no layers to pop")
        layer = self._layers.pop()
        structure_changed()
        if self._input_specs is not None:
            self._build_for(*self._input_specs[0])  # trace again, to end at the new last layer
        return layer

    # -- building: a dry run through the layers ----------------------------------------
    def _start_trace(self, shape, dtype):
        self._set_input_specs([(tuple(shape), dtype)], takes_list=False)
        # Real zeros on the weights' device (not symbolic placeholders), so the
        # dry run works on the GPU as it does on the CPU.
        self._last_output = self._example_inputs()
        self._traced_shapes = []
        self.built = True

    def _trace(self, position):
        """Run layer `position` on the dry-run output of the one before it."""
        layer = self._layers[position]
        example = self._last_output
        try:
            with no_grad():
                output = layer(example, training=False)
        except SequenceInputError as error:
            raise error.with_previous_layer(self._layer_that_dropped_time_axis(position)) from None
        if not isinstance(output, Tensor):
            raise ValueError(
                f"layer '{layer.name}' returns several tensors; every layer of a Sequential model "
                "must return one (for return_state=True use the functional API)"
            )
        self._traced_shapes.append((_without_batch(example.shape), _without_batch(output.shape)))
        self._last_output = output

    def _layer_that_dropped_time_axis(self, position):
        """The nearest layer before `position` that output 2-D data: a recurrent layer
        without return_sequences, or one that reshaped (layers such as Dropout that
        keep the shape are looked through)."""
        for earlier in reversed(range(position)):
            layer = self._layers[earlier]
            shape_in, shape_out = self._traced_shapes[earlier]
            if hasattr(layer, "return_sequences") or shape_in != shape_out:
                return layer
        return None

    def _build_for(self, shape, dtype):
        self._start_trace(shape, dtype)
        try:
            for position in range(len(self._layers)):
                self._trace(position)
        except Exception:
            self._input_specs, self._last_output, self.built = None, None, False
            raise

    def _build_once(self, inputs):
        if self.built:
            return
        if not isinstance(inputs, Tensor):
            raise TypeError(f"Sequential model '{self.name}' takes one input array, got "
                            f"{type(inputs).__name__}")
        self._build_for(inputs.shape, inputs.dtype)

    def build(self, input_shape=None):
        if input_shape is None:
            if self.built:
                return
            raise ValueError("build() needs the input shape, e.g. model.build((None, 28, 28))")
        self._build_for(tuple(input_shape), self.dtype)

    @property
    def output_shape(self):
        if self._last_output is None:
            raise AttributeError(
                f"model '{self.name}' is not built yet, so its output shape is unknown")
        return _without_batch(self._last_output.shape)

    def call(self, inputs, training=None):
        if not self._layers:
            raise ValueError(
                f"Sequential model '{self.name}' has no layers; add some with .add(layer)")
        layers = self._layers
        position = 0
        while position < len(layers):
            layer = layers[position]
            following = layers[position + 1] if position + 1 < len(layers) else None
            if following is not None and layer.fuses_with(following):
                # Two layers as one op, e.g. Conv2D + MaxPooling2D (Layer.fuses_with).
                inputs = layer(inputs, followed_by=following)
                position += 2
            else:
                inputs = layer(inputs, training=training)
                position += 1
        return inputs

    def get_config(self):
        config = {"name": self.name, "trainable": self.trainable,
                  "layers": [saving.serialize_layer(layer) for layer in self._layers],
                  "input": None}
        if self._input_specs is not None:
            shape, dtype = self._input_specs[0]
            config["input"] = {"shape": list(shape), "dtype": dtype.name}
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        model = cls(name=config.get("name"), trainable=config.get("trainable", True))
        if config.get("input") is not None:
            model.add(InputLayer(batch_shape=tuple(config["input"]["shape"]),
                                 dtype=config["input"]["dtype"]))
        for description in config["layers"]:
            model.add(saving.deserialize_layer(description, custom_objects))
        return model


# ----------------------------------------------------------------------------
# Loading
# ----------------------------------------------------------------------------
def model_from_json(json_string, custom_objects=None):
    """A new model (fresh weights) from `model.to_json()`."""
    return saving.deserialize_layer(json.loads(json_string), custom_objects)


def load_model(filepath, custom_objects=None, compile=True):
    """The model saved by `model.save(filepath)`: architecture, weights and, with
    compile=True, the optimizer (with its state), loss and metrics, so `fit`
    continues exactly where the saved model stopped."""
    arrays = saving.load_arrays(filepath)
    if saving.ARCHITECTURE_KEY not in arrays:
        raise ValueError(
            f"'{filepath}' holds only weights (written by save_weights), not a model; build "
            "the model in code and call model.load_weights(path)"
        )
    document = saving.read_json_array(arrays[saving.ARCHITECTURE_KEY])
    format_name, version = document.get("format"), document.get("version", 0)
    if format_name != saving.FORMAT_NAME or version > saving.FORMAT_VERSION:
        raise ValueError(f"'{filepath}' is not a model file this version of deepbreadth can read "
                         f"(format {format_name!r}, version {version!r})")
    model = saving.deserialize_layer(document["model"], custom_objects)
    if not model.built:  # a subclassed model: its weights appear on its first call
        specs = [(tuple(spec["shape"]), spec["dtype"]) for spec in document["inputs"]]
        model._build_from_specs(specs, document["inputs_are_list"])
    _load_saved_weights(model, saving.arrays_in_order(arrays, "weights/"), f"'{filepath}'")
    if compile and document.get("compile"):
        _restore_compile(model, document, arrays, custom_objects, filepath)
    return model


def _restore_compile(model, document, arrays, custom_objects, filepath):
    settings = document["compile"]
    try:
        optimizer = optimizers_module.deserialize(settings["optimizer"], custom_objects)
        loss = (losses_module.deserialize(settings["loss"], custom_objects)
                if settings["loss"] is not None else None)
        metrics = [metric if isinstance(metric, str)
                   else metrics_module.deserialize(metric, custom_objects)
                   for metric in settings["metrics"]]
    except (ValueError, TypeError, KeyError) as error:
        raise ValueError(
            f"cannot restore the compile settings saved in '{filepath}': {error}. Pass "
            "custom_objects={...} for your own losses, metrics or optimizers, or "
            "load_model(path, compile=False) and compile again"
        ) from None
    model.compile(optimizer=optimizer, loss=loss, metrics=metrics)
    if document.get("optimizer_state") is not None:
        state = saving.unpack_structure(document["optimizer_state"], arrays)
        model.optimizer.set_state(state, model.trainable_weights)


__all__ = ["Model", "Sequential", "InputLayer", "Input", "NaNLossError", "load_model",
           "model_from_json"]
