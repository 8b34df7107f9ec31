"""Recurrent layers: SimpleRNN, LSTM, GRU, and the Bidirectional wrapper.

A recurrent layer reads a sequence `(batch, timesteps, features)` one step at
a time, carrying a state from step to step. The whole loop over time runs in
one op from `functional/rnn.py` (one kernel call forward, one backward), so
these classes only hold the weights and do Keras's bookkeeping around it:

- `return_sequences`: every step's output `(batch, timesteps, units)`, or only
  the last one `(batch, units)` (the default);
- `return_state`: also return the final states, `[output, h]` (`[output, h, c]`
  for an LSTM);
- `go_backwards`: read the sequence from the last step to the first; with
  `return_sequences` the outputs stay in that reversed order, as in Keras;
- `initial_state=` in the call: the states to start from (zeros otherwise);
  gradients flow into them;
- `dropout`: drops input features in training, one mask for all time steps.

Weights have Keras's shapes, names and gate order (see docs/KERNELS.md), so
`get_weights()` / `set_weights()` exchange them with Keras unchanged.
"""
import numpy as np

from .. import backend, initializers
from ..autograd import Tensor
from ..functional import concatenate
from ..functional.rnn import RECURRENT_ACTIVATIONS, gru, lstm, simple_rnn, zero_state
from .base import Layer


class SequenceInputError(ValueError):
    """A recurrent layer was given input that is not `(batch, timesteps, features)`.

    It carries the `layer` and the `shape` seen. The layer cannot know what
    fed it; a model that does can call `with_previous_layer(previous)` to get
    the same error naming the culprit.
    """

    def __init__(self, layer, shape, previous_layer=None):
        self.layer = layer
        self.shape = tuple(shape)
        self.previous_layer = previous_layer
        super().__init__(self._message())

    def with_previous_layer(self, previous_layer):
        """The same error, naming the layer (a Layer or its name) that produced the input."""
        return SequenceInputError(self.layer, self.shape, previous_layer)

    def _message(self):
        # The batch size does not matter here; show it as None, as Keras does.
        shape = (None,) + self.shape[1:] if self.shape else self.shape
        start = (f"{type(self.layer).__name__} layer '{self.layer.name}' expects 3-D input "
                 f"(batch, timesteps, features) but got shape {shape}")
        if len(shape) != 2:
            return start + ": give it one sequence of feature vectors per sample."
        previous = self.previous_layer
        if previous is None:
            return (start + ". If the layer before it is a recurrent layer (LSTM, GRU, "
                    "SimpleRNN), it returns only its last output: pass return_sequences=True "
                    "to that layer. Data without a time axis needs reshaping to "
                    "(batch, timesteps, features).")
        name = previous if isinstance(previous, str) else previous.name
        if isinstance(previous, str) or hasattr(previous, "return_sequences"):
            return (start + f": the previous layer '{name}' returns only its last output; "
                    "pass return_sequences=True to it")
        return (start + f": the previous layer '{name}' outputs no time axis; reshape its "
                "output to (batch, timesteps, features)")


def activation_name(layer_name, argument, identifier):
    """The kernel's name for a Keras activation argument: a name, None or a known function."""
    if identifier is None:
        return "linear"
    name = getattr(identifier, "__name__", None) if callable(identifier) else identifier
    if name not in RECURRENT_ACTIVATIONS:
        raise ValueError(
            f"layer '{layer_name}': {argument}={identifier!r} is not supported by the recurrent "
            f"layers; use one of {', '.join(repr(n) for n in RECURRENT_ACTIVATIONS)}"
        )
    return name


def _as_list(value):
    """Keras takes one state as a tensor or as a list of one."""
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _serialize_initializer(initializer):
    return initializer if isinstance(initializer, str) else initializers.serialize(initializer)


class RecurrentLayer(Layer):
    """What SimpleRNN, LSTM and GRU share: arguments, checks, states and outputs.

    A subclass sets `gate_count` (blocks of `units` columns in its kernels) and
    `state_names`, and defines `bias_shape()` and `run(x, states)`.
    """
    # A subclass's call is ops only, so it may declare replays_exactly (see
    # deepbreadth/replay.py): the zero initial states are an op too. With
    # dropout=, whose mask is drawn outside the ops, or use_bias=False, the
    # recorder finds an untraced input and the step stays eager.

    gate_count = 1
    state_names = ("h",)

    def __init__(self, units, activation="tanh", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal",
                 bias_initializer="zeros", kernel_regularizer=None, recurrent_regularizer=None,
                 bias_regularizer=None, activity_regularizer=None, kernel_constraint=None,
                 recurrent_constraint=None, bias_constraint=None, dropout=0.0,
                 recurrent_dropout=0.0, seed=None, return_sequences=False, return_state=False,
                 go_backwards=False, stateful=False, unroll=False, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(units, (int, np.integer)) or units <= 0:
            raise ValueError(f"{type(self).__name__} layer '{self.name}': units must be a "
                             f"positive integer, got {units!r}")
        self.units = int(units)
        self.activation = activation_name(self.name, "activation", activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = kernel_initializer
        self.recurrent_initializer = recurrent_initializer
        self.bias_initializer = bias_initializer
        self._refuse_unsupported(
            kernel_regularizer=kernel_regularizer, recurrent_regularizer=recurrent_regularizer,
            bias_regularizer=bias_regularizer, activity_regularizer=activity_regularizer,
            kernel_constraint=kernel_constraint, recurrent_constraint=recurrent_constraint,
            bias_constraint=bias_constraint)
        if recurrent_dropout:
            raise NotImplementedError(
                f"{type(self).__name__} layer '{self.name}': recurrent_dropout="
                f"{recurrent_dropout} is not supported (the recurrence runs in one fused "
                "kernel); use dropout= on the inputs, or a Dropout layer after this one"
            )
        if stateful:
            raise NotImplementedError(
                f"{type(self).__name__} layer '{self.name}': stateful=True is not supported; "
                "carry states across batches with return_state=True and initial_state="
            )
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"{type(self).__name__} layer '{self.name}': dropout must be in "
                             f"[0, 1), got {dropout}")
        self.dropout = float(dropout)
        self.recurrent_dropout = 0.0
        self.seed = seed
        self._dropout_rng = np.random.default_rng(seed) if seed is not None else None
        self.return_sequences = bool(return_sequences)
        self.return_state = bool(return_state)
        self.go_backwards = bool(go_backwards)
        self.stateful = False
        # unroll only changes how Keras compiles the loop, never the numbers.
        self.unroll = bool(unroll)
        self.features = None

    def _refuse_unsupported(self, **arguments):
        for argument, value in arguments.items():
            if value is not None:
                raise NotImplementedError(
                    f"{type(self).__name__} layer '{self.name}': {argument} is not supported "
                    "yet; leave it None"
                )

    # -- weights -------------------------------------------------------------------
    def build(self, input_shape):
        self.check_sequence_shape(input_shape)
        features = input_shape[-1]
        width = self.gate_count * self.units
        self.kernel = self.add_weight("kernel", (features, width), self.kernel_initializer)
        self.recurrent_kernel = self.add_weight("recurrent_kernel", (self.units, width),
                                                self.recurrent_initializer)
        self.bias = (self.add_weight("bias", self.bias_shape(), self.initial_bias())
                     if self.use_bias else None)
        self.features = features
        self.built = True

    def bias_shape(self):
        return (self.gate_count * self.units,)

    def initial_bias(self):
        return self.bias_initializer

    # -- checks ----------------------------------------------------------------------
    def check_sequence_shape(self, shape):
        """The input must be (batch, timesteps, features), with the features built for."""
        if len(shape) != 3:
            raise SequenceInputError(self, shape)
        if shape[-1] is None:
            raise ValueError(
                f"{type(self).__name__} layer '{self.name}': the feature axis of its input "
                f"must be known to create the weights, got shape {tuple(shape)}"
            )
        if shape[1] == 0:
            raise ValueError(
                f"{type(self).__name__} layer '{self.name}' got a sequence with no time steps, "
                f"shape {tuple(shape)}; it needs at least one"
            )
        if self.features is not None and shape[-1] != self.features:
            raise ValueError(
                f"{type(self).__name__} layer '{self.name}' was built for {self.features} "
                f"features per step but got input of shape {tuple(shape)} with {shape[-1]}; "
                "a layer's input size cannot change after its first call (create a new layer)"
            )

    # -- the forward pass -------------------------------------------------------------
    def call(self, inputs, initial_state=None, training=None, mask=None):
        if mask is not None:
            raise NotImplementedError(
                f"{type(self).__name__} layer '{self.name}': masking (mask_zero=True or a "
                "Masking layer) is not supported; pad sequences and train without a mask"
            )
        self.check_sequence_shape(inputs.shape)
        x = inputs[:, ::-1] if self.go_backwards else inputs
        if training and self.dropout > 0:
            x = self.drop_input_features(x)
        states = self.initial_states(inputs, initial_state)
        h_seq, final_states = self.run(x, states)
        output = h_seq if self.return_sequences else h_seq[:, -1]
        if self.return_state:
            return [output] + final_states
        return output

    def drop_input_features(self, x):
        """Keras's input dropout: one mask per sequence, the same at every step."""
        batch, _, features = x.shape
        generator = self._dropout_rng or backend.rng()
        keep = generator.uniform(size=(batch, 1, features)) >= self.dropout
        mask = (keep / (1.0 - self.dropout)).astype(x.dtype)
        return x * Tensor._wrap(backend.to_device(mask, x.device))

    def initial_states(self, inputs, initial_state):
        """The states the recurrence starts from: zeros unless initial_state is given."""
        batch = inputs.shape[0]
        expected = (batch, self.units)
        if initial_state is None:
            return [zero_state(inputs, self.units) for _ in self.state_names]
        states = _as_list(initial_state)
        states = [self._as_input_tensor(state) for state in states]
        shapes = [tuple(getattr(state, "shape", ())) for state in states]
        if len(states) != len(self.state_names) or any(s != expected for s in shapes):
            names = ", ".join(self.state_names)
            raise ValueError(
                f"{type(self).__name__} layer '{self.name}': initial_state must be "
                f"{len(self.state_names)} tensor(s) [{names}] of shape (batch, units) = "
                f"{expected}, got {len(states)} of shape(s) {shapes}"
            )
        return states

    def run(self, x, states):
        """(h_seq, final states) for the time-ordered input x."""
        raise NotImplementedError

    # -- configuration ----------------------------------------------------------------
    def get_config(self):
        config = super().get_config()
        config.update({
            "units": self.units,
            "activation": self.activation,
            "use_bias": self.use_bias,
            "kernel_initializer": _serialize_initializer(self.kernel_initializer),
            "recurrent_initializer": _serialize_initializer(self.recurrent_initializer),
            "bias_initializer": _serialize_initializer(self.bias_initializer),
            "dropout": self.dropout,
            "recurrent_dropout": self.recurrent_dropout,
            "seed": self.seed,
            "return_sequences": self.return_sequences,
            "return_state": self.return_state,
            "go_backwards": self.go_backwards,
            "stateful": self.stateful,
            "unroll": self.unroll,
        })
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("kernel_initializer", "recurrent_initializer", "bias_initializer"):
            if isinstance(config.get(key), dict):
                config[key] = initializers.deserialize(config[key])
        return cls(**config)


class SimpleRNN(RecurrentLayer):
    """h_t = activation(x_t @ kernel + h_{t-1} @ recurrent_kernel + bias)."""
    replays_exactly = True  # see RecurrentLayer

    def run(self, x, states):
        h_seq = simple_rnn(x, states[0], self.kernel, self.recurrent_kernel, self.bias,
                           activation=self.activation)
        return h_seq, [h_seq[:, -1]]


class LSTM(RecurrentLayer):
    """Long short-term memory: a cell state c, written and read through gates.

    Gates i (input), f (forget), c (candidate), o (output), in that order
    along the last axis of kernel (features, 4 units), recurrent_kernel
    (units, 4 units) and bias (4 units,).
    """
    replays_exactly = True  # see RecurrentLayer

    gate_count = 4
    state_names = ("h", "c")

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid",
                 unit_forget_bias=True, use_cudnn="auto", **kwargs):
        super().__init__(units, activation=activation, **kwargs)
        self.recurrent_activation = activation_name(self.name, "recurrent_activation",
                                                    recurrent_activation)
        self.unit_forget_bias = bool(unit_forget_bias)
        self.use_cudnn = use_cudnn  # accepted for Keras compatibility; no effect

    def initial_bias(self):
        if not self.unit_forget_bias:
            return self.bias_initializer
        # A forget-gate bias of 1 keeps the cell's memory open at the start of
        # training, so gradients reach early time steps (Jozefowicz et al., 2015).
        units = self.units
        bias_init = initializers.get(self.bias_initializer)

        def forget_bias_one(shape, dtype=None):
            return np.concatenate([np.asarray(bias_init((units,), dtype)),
                                   np.ones(units, dtype=dtype),
                                   np.asarray(bias_init((2 * units,), dtype))])

        return forget_bias_one

    def run(self, x, states):
        h_seq, c_last = lstm(x, states[0], states[1], self.kernel, self.recurrent_kernel,
                             self.bias, activation=self.activation,
                             recurrent_activation=self.recurrent_activation)
        return h_seq, [h_seq[:, -1], c_last]

    def get_config(self):
        config = super().get_config()
        config.update({"recurrent_activation": self.recurrent_activation,
                       "unit_forget_bias": self.unit_forget_bias})
        return config


class GRU(RecurrentLayer):
    """Gated recurrent unit, Keras's reset_after=True form.

    Gates z (update), r (reset), h (candidate) along the last axis of kernel
    (features, 3 units) and recurrent_kernel (units, 3 units); bias (2, 3 units)
    holds the input-side bias in row 0 and the recurrent-side bias in row 1.
    """
    replays_exactly = True  # see RecurrentLayer

    gate_count = 3

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid",
                 reset_after=True, use_cudnn="auto", **kwargs):
        super().__init__(units, activation=activation, **kwargs)
        if not reset_after:
            raise NotImplementedError(
                f"GRU layer '{self.name}': only reset_after=True (Keras's default, the "
                "cuDNN-compatible form) is supported; drop reset_after=False"
            )
        self.recurrent_activation = activation_name(self.name, "recurrent_activation",
                                                    recurrent_activation)
        self.reset_after = True
        self.use_cudnn = use_cudnn  # accepted for Keras compatibility; no effect

    def bias_shape(self):
        return (2, self.gate_count * self.units)

    def run(self, x, states):
        h_seq = gru(x, states[0], self.kernel, self.recurrent_kernel, self.bias,
                    activation=self.activation, recurrent_activation=self.recurrent_activation)
        return h_seq, [h_seq[:, -1]]

    def get_config(self):
        config = super().get_config()
        config.update({"recurrent_activation": self.recurrent_activation,
                       "reset_after": self.reset_after})
        return config


# ----------------------------------------------------------------------------
# Bidirectional
# ----------------------------------------------------------------------------
MERGE_MODES = ("concat", "sum", "mul", "ave", None)


def _serialize_layer(layer):
    return {"class_name": type(layer).__name__, "config": layer.get_config()}


def _deserialize_layer(description):
    from .. import layers  # the package namespace, complete by the time this runs

    class_name = description["class_name"]
    cls = getattr(layers, class_name, None) or globals().get(class_name)
    if cls is None:
        raise ValueError(f"Bidirectional: unknown layer class {class_name!r} in the config")
    return cls.from_config(description["config"])


def _without_prefix(name, prefix):
    return name[len(prefix):] if name.startswith(prefix) else name


class Bidirectional(Layer):
    """Run a recurrent layer over the sequence forwards and a copy of it backwards.

    The backward copy is made from the layer's config with go_backwards
    flipped (or given as `backward_layer`). Its outputs come out in reversed
    time, so with return_sequences they are reversed back before merging:
    step t of the result then sees the past (forward) and the future (backward).
    merge_mode joins the two: 'concat' (default), 'sum', 'mul', 'ave', or None
    for the list [forward, backward]. Weights: the forward layer's, then the
    backward layer's.
    """

    def __init__(self, layer, merge_mode="concat", weights=None, backward_layer=None, **kwargs):
        if merge_mode not in MERGE_MODES:
            raise ValueError(
                f"Bidirectional: merge_mode={merge_mode!r} is not one of {MERGE_MODES}")
        _check_wrappable(layer, "layer")
        if backward_layer is not None:
            _check_wrappable(backward_layer, "backward_layer")
            _check_matching_directions(layer, backward_layer)
        # Computing in the wrapped layer's dtype avoids a lossy cast at the entry.
        if kwargs.get("dtype") is None and layer._dtype is not None:
            kwargs["dtype"] = layer._dtype.name
        # Keras lets the input shape sit on the wrapped layer of a Sequential's first layer.
        if (layer.batch_input_shape is not None and "input_shape" not in kwargs
                and "batch_input_shape" not in kwargs):
            kwargs["batch_input_shape"] = layer.batch_input_shape
        super().__init__(**kwargs)
        self.merge_mode = merge_mode
        # Copies from the config: the layer passed in is a template, never
        # called itself (Keras does the same), so its weights are not shared.
        base_name = _without_prefix(layer.name, "forward_")
        self.forward_layer = self._copy_of(layer, go_backwards=layer.go_backwards,
                                           name="forward_" + base_name)
        if backward_layer is None:
            backward_layer = self._copy_of(layer, go_backwards=not layer.go_backwards,
                                           name="backward_" + base_name)
        self.backward_layer = backward_layer
        self.return_sequences = layer.return_sequences
        self.return_state = layer.return_state
        self._initial_weights = weights

    @staticmethod
    def _copy_of(layer, **changes):
        config = layer.get_config()
        config.update(changes)
        return type(layer).from_config(config)

    def build(self, input_shape):
        if len(input_shape) != 3:
            raise SequenceInputError(self, input_shape)
        for layer in (self.forward_layer, self.backward_layer):
            if not layer.built:
                layer.input_spec_shape = tuple(input_shape)
                layer.build(tuple(input_shape))
                layer.built = True
        self.built = True
        if self._initial_weights is not None:
            self.set_weights(self._initial_weights)
            self._initial_weights = None

    def call(self, inputs, initial_state=None, training=None, mask=None):
        if len(inputs.shape) != 3:
            raise SequenceInputError(self, inputs.shape)
        forward_state, backward_state = self._split_initial_state(initial_state)
        forward = self.forward_layer(inputs, initial_state=forward_state, training=training,
                                     mask=mask)
        backward = self.backward_layer(inputs, initial_state=backward_state, training=training,
                                       mask=mask)
        states = []
        if self.return_state:
            forward, forward_states = forward[0], forward[1:]
            backward, backward_states = backward[0], backward[1:]
            states = forward_states + backward_states
        if self.return_sequences:
            backward = backward[:, ::-1]  # back into forward time order
        merged = self._merge(forward, backward)
        if self.return_state:
            return (merged if self.merge_mode is None else [merged]) + states
        return merged

    def _split_initial_state(self, initial_state):
        """Keras's convention: the forward layer's states, then the backward layer's."""
        if initial_state is None:
            return None, None
        states = _as_list(initial_state)
        forward_count = len(self.forward_layer.state_names)
        wanted = forward_count + len(self.backward_layer.state_names)
        if len(states) != wanted:
            raise ValueError(
                f"Bidirectional layer '{self.name}': initial_state needs {wanted} tensors (the "
                f"forward layer's {forward_count} states, then the backward layer's), "
                f"got {len(states)}"
            )
        return states[:forward_count], states[forward_count:]

    def _merge(self, forward, backward):
        if self.merge_mode == "concat":
            return concatenate([forward, backward], axis=-1)
        if self.merge_mode == "sum":
            return forward + backward
        if self.merge_mode == "mul":
            return forward * backward
        if self.merge_mode == "ave":
            return (forward + backward) * 0.5
        return [forward, backward]

    def get_config(self):
        config = super().get_config()
        config.update({"merge_mode": self.merge_mode,
                       "layer": _serialize_layer(self.forward_layer),
                       "backward_layer": _serialize_layer(self.backward_layer)})
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        layer = _deserialize_layer(config.pop("layer"))
        backward = config.pop("backward_layer", None)
        backward_layer = _deserialize_layer(backward) if backward is not None else None
        return cls(layer, backward_layer=backward_layer, **config)


def _check_wrappable(layer, argument):
    if not isinstance(layer, Layer) or not hasattr(layer, "go_backwards"):
        raise ValueError(
            f"Bidirectional: {argument} must be a recurrent layer (SimpleRNN, LSTM, GRU), "
            f"got {layer!r}"
        )


def _check_matching_directions(layer, backward_layer):
    if layer.go_backwards == backward_layer.go_backwards:
        raise ValueError(
            f"Bidirectional: layer '{layer.name}' and backward_layer '{backward_layer.name}' "
            f"both have go_backwards={layer.go_backwards}; the backward layer must read the "
            "sequence in the other direction"
        )
    for attribute in ("return_sequences", "return_state"):
        if getattr(layer, attribute) != getattr(backward_layer, attribute):
            raise ValueError(
                f"Bidirectional: layer '{layer.name}' and backward_layer "
                f"'{backward_layer.name}' must agree on {attribute}, got "
                f"{getattr(layer, attribute)} and {getattr(backward_layer, attribute)}"
            )
