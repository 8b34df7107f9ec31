"""The Layer base class, and the symbolic tensors of Keras's functional API.

A layer owns weights (Tensors with requires_grad=True) and a `call` that
computes its output from its input with differentiable ops. As in Keras:

- weights are created lazily by `build(input_shape)` on the first call, when
  the input's shape is known (so `Dense(10)` needs no input size);
- `input_shape` given to the constructor excludes the batch axis;
- `get_weights()` / `set_weights()` exchange NumPy arrays in Keras's shapes
  and order, so weights move between deepbreadth and Keras exactly.

Calling a layer on a `SymbolicTensor` (what `Input()` returns) does not
compute anything: it records the call and works out the output shape, which
is how `Model(inputs, outputs)` learns its graph.
"""
import inspect
import re

import numpy as np

from .. import backend
from ..autograd import BackendError, RemovableHandle, Tensor, no_grad
from .. import initializers

_layer_name_counts = {}

# A counter that moves whenever a layer tree may have changed: any attribute
# of a layer assigned (a sublayer, a list of them, an activation, a dropout
# rate), a weight created, `trainable` or the device changed, a layer added to
# or popped from a Sequential. What a training step reads every time (the
# trainable weights, their device) is kept with the count it was computed at,
# and recomputed when the count has moved: walking every layer's attributes
# each step took 16 us of the MNIST MLP's 1 ms step. A recorded training step
# (deepbreadth/replay.py) is keyed by the count too, so that it is recorded
# again once a layer's options change. (A list of layers changed in place, by
# append or item assignment, is not seen; assign the list again, or add
# layers before training.)
_structure = {"version": 0}


def structure_changed():
    """Tell the caches of trainable weights and devices to compute them again."""
    _structure["version"] += 1


def structure_version():
    """A number that changes whenever a layer, a weight or trainability changes."""
    return _structure["version"]


def _snake_case(name):
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def unique_layer_name(base):
    """'dense', then 'dense_1', 'dense_2', ... as Keras names them."""
    count = _layer_name_counts.get(base, 0)
    _layer_name_counts[base] = count + 1
    return base if count == 0 else f"{base}_{count}"


# ----------------------------------------------------------------------------
# Symbolic tensors (the functional API)
# ----------------------------------------------------------------------------
class LayerCall:
    """One call of a layer on symbolic inputs: the edge of a functional model's graph."""

    def __init__(self, layer, args, kwargs):
        self.layer = layer
        self.args = args
        self.kwargs = kwargs
        self.outputs = []

    def symbolic_inputs(self):
        return [t for t in _flatten((self.args, self.kwargs)) if isinstance(t, SymbolicTensor)]


class SymbolicTensor:
    """A placeholder with a shape (batch axis None) but no values (Keras's KerasTensor)."""

    def __init__(self, shape, dtype, call=None, index=0, name=None):
        self.shape = tuple(shape)
        self.dtype = np.dtype(dtype)
        self.call = call
        self.index = index
        self.name = name

    @property
    def ndim(self):
        return len(self.shape)

    def __repr__(self):
        return f"<SymbolicTensor shape={self.shape} dtype={self.dtype.name} name={self.name}>"


def Input(shape=None, batch_size=None, dtype=None, name=None, batch_shape=None):
    """The entry point of a functional model: `x = Input(shape=(28, 28))`."""
    if batch_shape is None:
        if shape is None:
            raise ValueError("Input needs shape=(...) (without the batch axis)")
        batch_shape = (batch_size,) + tuple(shape)
    return SymbolicTensor(batch_shape, dtype or backend.floatx(),
                          name=name or unique_layer_name("input_layer"))


def _flatten(structure):
    """Every leaf of nested lists, tuples and dicts, in order."""
    if isinstance(structure, (list, tuple)):
        return [leaf for item in structure for leaf in _flatten(item)]
    if isinstance(structure, dict):
        return [leaf for item in structure.values() for leaf in _flatten(item)]
    return [structure]


def map_structure(function, structure):
    if isinstance(structure, (list, tuple)):
        return type(structure)(map_structure(function, item) for item in structure)
    if isinstance(structure, dict):
        return {key: map_structure(function, value) for key, value in structure.items()}
    return function(structure)


def _contains_symbolic(structure):
    return any(isinstance(leaf, SymbolicTensor) for leaf in _flatten(structure))


def _is_symbolic_call(inputs, args, kwargs):
    """True when a layer is called on symbolic tensors (building a functional model)."""
    if type(inputs) is Tensor and not args:
        # The eager common case, one tensor and options such as training=True:
        # only options that are (or hold) symbolic tensors count.
        return any(isinstance(value, (SymbolicTensor, list, tuple, dict)) and _contains_symbolic(value)
                   for value in kwargs.values())
    return _contains_symbolic((inputs, args, kwargs))


# ----------------------------------------------------------------------------
# Layer
# ----------------------------------------------------------------------------
class Layer:
    """Base class of every layer: weights, lazy build, call, Keras weight exchange."""

    def __init__(self, trainable=True, name=None, dtype=None, input_shape=None,
                 batch_input_shape=None, input_dim=None, batch_size=None, **unknown):
        if unknown:
            raise TypeError(f"{type(self).__name__} got unexpected arguments: {sorted(unknown)}")
        self.name = name or unique_layer_name(_snake_case(type(self).__name__))
        self._dtype = np.dtype(dtype) if dtype is not None else None
        self._trainable = trainable
        self._weights = []
        self.built = False
        self.input_spec_shape = None  # the input shape (with batch axis) seen at build
        if input_dim is not None and input_shape is None:
            input_shape = (input_dim,)
        if batch_input_shape is None and input_shape is not None:
            batch_input_shape = (batch_size,) + tuple(input_shape)
        self.batch_input_shape = tuple(batch_input_shape) if batch_input_shape else None
        self._forward_hooks = {}
        self._backward_hooks = {}

    # -- dtype and trainability ------------------------------------------------
    @property
    def dtype(self):
        return self._dtype or backend.floatx()

    @property
    def trainable(self):
        return self._trainable

    @trainable.setter
    def trainable(self, value):
        structure_changed()
        self._trainable = bool(value)
        for weight in self._own_weights(trainable=True):
            weight.requires_grad = self._trainable
        for layer in self._sublayers():
            layer.trainable = value

    # -- weights -----------------------------------------------------------------
    def add_weight(self, name, shape, initializer="zeros", trainable=True, dtype=None):
        """Create a weight Tensor, initialized on the current device, and track it."""
        init = initializers.get(initializer)
        values = init(tuple(shape), dtype or self.dtype)
        data = backend.to_device(values, backend.default_device())
        weight = Tensor._wrap(data, requires_grad=trainable and self._trainable)
        weight.name = f"{self.name}/{name}"
        self._weights.append((weight, trainable))
        structure_changed()
        return weight

    def __setattr__(self, name, value):
        # A layer (or a list of layers) assigned as an attribute becomes a
        # sublayer, and its weights become this layer's; any other attribute
        # (an activation, a rate) may change the ops a call runs: see _structure.
        # No layer assigns attributes in a training step, so this costs nothing there.
        structure_changed()
        object.__setattr__(self, name, value)

    def _cached(self, key, compute):
        """compute(), kept until the layer structure changes (see _structure)."""
        version = _structure["version"]
        cached = self.__dict__.get(key)
        if cached is None or cached[0] != version:
            cached = (version, compute())
            self.__dict__[key] = cached  # not through __setattr__: that would count a change
        return cached[1]

    def _own_weights(self, trainable=None):
        return [w for w, is_trainable in self._weights if trainable is None or is_trainable == trainable]

    def _sublayers(self):
        """Layers held as attributes (or in lists), in the order they were assigned."""
        found = []
        for value in vars(self).values():
            candidates = value if isinstance(value, (list, tuple)) else [value]
            for candidate in candidates:
                if isinstance(candidate, Layer) and candidate is not self and candidate not in found:
                    found.append(candidate)
        return found

    @property
    def weights(self):
        """All weights, trainable first, own before those of sublayers (Keras's order)."""
        return self.trainable_weights + self.non_trainable_weights

    @property
    def trainable_weights(self):
        # A copy: callers may extend the list they get.
        return list(self._cached("_trainable_weights_cache", self._collect_trainable_weights))

    def _collect_trainable_weights(self):
        if not self._trainable:
            return []
        weights = self._own_weights(trainable=True)
        for layer in self._sublayers():
            weights += layer.trainable_weights
        return weights

    @property
    def non_trainable_weights(self):
        weights = self._own_weights(trainable=False)
        if not self._trainable:
            weights = self._own_weights(trainable=True) + weights
        for layer in self._sublayers():
            weights += layer.non_trainable_weights
        return weights

    @property
    def variables(self):
        return self.weights

    def _weights_in_creation_order(self):
        weights = [w for w, _ in self._weights]
        for layer in self._sublayers():
            weights += layer._weights_in_creation_order()
        return weights

    def get_weights(self):
        """The weights as NumPy arrays, in Keras's order (creation order)."""
        return [w.numpy().copy() for w in self._weights_in_creation_order()]

    def set_weights(self, arrays):
        """Load NumPy arrays into the weights; counts and shapes must match exactly."""
        weights = self._weights_in_creation_order()
        if len(arrays) != len(weights):
            raise ValueError(
                f"layer '{self.name}' has {len(weights)} weights "
                f"({', '.join(w.name for w in weights) or 'none: is it built yet?'}) "
                f"but {len(arrays)} arrays were given"
            )
        for weight, array in zip(weights, arrays):
            array = np.asarray(array)
            if array.shape != weight.shape:
                raise ValueError(
                    f"layer '{self.name}': weight '{weight.name}' has shape {weight.shape}, "
                    f"the array given has shape {array.shape}"
                )
        for weight, array in zip(weights, arrays):
            weight.data[...] = backend.to_device(np.asarray(array, dtype=weight.dtype), weight.device)

    def count_params(self):
        if not self.built:
            raise ValueError(
                f"layer '{self.name}' is not built yet, so its weights do not exist; call it "
                "on data or give input_shape=... first"
            )
        return int(sum(w.size for w in self._weights_in_creation_order()))

    def to(self, device):
        """Move every weight to 'cpu' or 'cuda' (in place); returns the layer."""
        structure_changed()
        for weight in self._weights_in_creation_order():
            weight.data = backend.to_device(weight.data, device)
            weight.grad = None
        return self

    # -- building and calling ---------------------------------------------------
    def build(self, input_shape):
        """Create the weights, knowing the input shape (batch axis included)."""
        self.built = True

    def call(self, inputs, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} must define call()")

    def fuses_with(self, next_layer):
        """True when this layer and `next_layer`, applied one after the other, can
        run as one op: then `self(inputs, followed_by=next_layer)` returns what
        `next_layer(self(inputs))` would.  Sequential models ask it of each pair
        of neighbours (Conv2D answers for a MaxPooling2D after it); no layer
        fuses by default."""
        return False

    def _has_hooks(self):
        return bool(self._forward_hooks or self._backward_hooks)

    def _build_once(self, inputs):
        if self.built:
            return
        shapes = map_structure(lambda t: tuple(t.shape), inputs)
        self.input_spec_shape = shapes
        self.build(shapes)
        self.built = True

    def _accepts(self, argument):
        cls = type(self)
        cache = cls.__dict__.get("_call_arguments_cache")
        if cache is None:
            cache = set(inspect.signature(self.call).parameters)
            cls._call_arguments_cache = cache
        return argument in cache

    def _device_of_weights(self):
        """The device of this layer's weights (or its sublayers'); None while it has none."""
        return self._cached("_device_cache", self._find_device_of_weights)

    def _find_device_of_weights(self):
        if self._weights:
            return self._weights[0][0].device
        for layer in self._sublayers():
            device = layer._find_device_of_weights()
            if device is not None:
                return device
        return None

    def _as_input_tensor(self, value):
        """Inputs become Tensors; floating ones take this layer's dtype (Keras autocast).

        Arrays (NumPy, as Keras users pass them, or CuPy) are copied to the device
        of the layer's weights, or to the backend's default device while the layer
        has no weights. A Tensor is never moved behind the user's back: one on
        another device than the weights raises BackendError.
        """
        if value is None or isinstance(value, (bool, str)):
            return value
        device = self._device_of_weights()
        if isinstance(value, Tensor):
            if device is not None and value.device != device:
                raise BackendError(
                    f"layer '{self.name}' has its weights on {device} but got a Tensor on "
                    f"{value.device}; move it first with .to('{device}') (NumPy arrays are "
                    f"moved for you), or move the layer or model with .to('{value.device}')"
                )
            if value.dtype.kind == "f" and value.dtype != self.dtype:
                return value.astype(self.dtype)
            return value
        array = value if backend.is_gpu_array(value) else np.asarray(value)
        array = backend.to_device(array, device or backend.default_device())
        dtype = self.dtype if array.dtype.kind == "f" else None
        return Tensor(array, dtype=dtype)

    def __call__(self, inputs, *args, **kwargs):
        if _is_symbolic_call(inputs, args, kwargs):
            return self._call_symbolic(inputs, args, kwargs)
        if type(inputs) is Tensor:  # the common case, without walking a structure
            inputs = self._as_input_tensor(inputs)
        else:
            inputs = map_structure(self._as_input_tensor, inputs)
        self._build_once(inputs)
        if "training" in kwargs and not self._accepts("training"):
            kwargs.pop("training")
        if "mask" in kwargs and not self._accepts("mask"):
            kwargs.pop("mask")
        outputs = self.call(inputs, *args, **kwargs)
        if self._forward_hooks:
            for hook in list(self._forward_hooks.values()):
                replaced = hook(self, inputs, outputs)
                if replaced is not None:
                    outputs = replaced
        if self._backward_hooks:
            self._attach_backward_hooks(outputs)
        return outputs

    def _call_symbolic(self, inputs, args, kwargs):
        """Record the call and infer output shapes by a dry run on a batch of one."""
        device = self._device_of_weights() or backend.default_device()

        def placeholder(value):
            if isinstance(value, SymbolicTensor):
                shape = tuple(1 if n is None else n for n in value.shape)
                return Tensor(backend.to_device(np.zeros(shape, dtype=value.dtype), device))
            return value

        concrete = map_structure(placeholder, (inputs, args, kwargs))
        dry_kwargs = dict(concrete[2])
        if self._accepts("training"):
            dry_kwargs["training"] = False
        with no_grad():
            outputs = self(concrete[0], *concrete[1], **dry_kwargs)
        call = LayerCall(self, (inputs,) + tuple(args), kwargs)
        leaves = _flatten(outputs)
        symbolic = []
        for index, leaf in enumerate(leaves):
            shape = (None,) + tuple(leaf.shape[1:])
            symbolic.append(SymbolicTensor(shape, leaf.dtype, call=call, index=index,
                                           name=f"{self.name}/output_{index}"))
        call.outputs = symbolic
        iterator = iter(symbolic)
        return map_structure(lambda _: next(iterator), outputs)

    def compute_output_shape(self, input_shape):
        """Output shape (batch axis None) for an input shape, by a dry run."""
        symbolic = self(SymbolicTensor(input_shape, self.dtype))
        return map_structure(lambda t: t.shape, symbolic)

    # -- hooks ---------------------------------------------------------------------
    def register_forward_hook(self, hook):
        """Call `hook(layer, inputs, outputs)` after every forward call.

        A hook may return a replacement output. Returns a handle with `.remove()`.
        """
        handle = RemovableHandle(self._forward_hooks)
        self._forward_hooks[handle.id] = hook
        return handle

    def register_backward_hook(self, hook):
        """Call `hook(layer, grad_output)` when the gradient of this layer's output
        is computed during backward. A hook may return a replacement gradient."""
        handle = RemovableHandle(self._backward_hooks)
        self._backward_hooks[handle.id] = hook
        return handle

    def _attach_backward_hooks(self, outputs):
        for output in _flatten(outputs):
            if isinstance(output, Tensor) and output.requires_grad:
                for hook in list(self._backward_hooks.values()):
                    output.register_hook(lambda grad, hook=hook: hook(self, grad))

    # -- configuration (for model.save / load_model) ----------------------------
    def get_config(self):
        config = {"name": self.name, "trainable": self._trainable}
        if self._dtype is not None:
            config["dtype"] = self._dtype.name
        if self.batch_input_shape is not None:
            config["batch_input_shape"] = list(self.batch_input_shape)
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name!r} built={self.built}>"
