"""Optimizers: how the weights move, given their gradients (Keras semantics).

    optimizer = optimizers.Adam(learning_rate=1e-3)
    loss.backward()
    optimizer.step(model.trainable_weights)       # or apply_gradients(zip(grads, weights))
    optimizer.zero_grad(model.trainable_weights)

Each optimizer keeps some arrays per weight, its *slots* (Adam: the running
means of the gradient and of its square), created lazily on the weight's
device the first time the weight is updated. The update itself is one fused
in-place kernel per weight (`sgd_update`, `adam_update`, ...; Adam updates all
the weights in one call, `adam_update_flat` on flat views of its arrays that it
keeps between steps), chosen by the backend for the weight's array: the
formulas are in docs/KERNELS.md.

Before the update, gradients can be clipped, as in Keras: `clipvalue` limits
each element, `clipnorm` each gradient's norm, `global_clipnorm` the norm of
all gradients taken together.

`get_state()` / `set_state(state, weights)` save and restore the slots and
the step count, so that a saved model resumes training exactly where it was.

The first update of a weight on the CPU also asks the C allocator to keep
freed memory for the next step (`keep_freed_memory`): see its docstring.
"""
import ctypes
import operator
import os
import platform
import sys

import numpy as np

from . import backend, schedules
from .autograd import BackendError, Tensor
from .schedules import LearningRateSchedule

# `from deepbreadth.optimizers.schedules import CosineDecay` works as in Keras.
sys.modules[__name__ + ".schedules"] = schedules


class Optimizer:
    """Base class. Subclasses name their slots and call their kernel in `_update`."""

    slot_names = ()

    def __init__(self, learning_rate, clipnorm=None, clipvalue=None, global_clipnorm=None,
                 name=None):
        clipping = {"clipnorm": clipnorm, "clipvalue": clipvalue,
                    "global_clipnorm": global_clipnorm}
        given = {option: value for option, value in clipping.items() if value is not None}
        if len(given) > 1:
            raise ValueError("give at most one of clipnorm, clipvalue and global_clipnorm, "
                             f"got {' and '.join(given)}")
        for option, value in given.items():
            if value <= 0:
                raise ValueError(f"{option} must be > 0, got {value}")
        self.learning_rate = learning_rate
        self.clipnorm = clipnorm
        self.clipvalue = clipvalue
        self.global_clipnorm = global_clipnorm
        self.name = name or type(self).__name__.lower()
        self.iterations = 0
        # Weights in the order first seen: a weight's place here is its index
        # in get_state(). Slots are kept by id(weight); the list keeps each
        # weight alive, so its id is never reused by another object.
        self._weights = []
        self._slots = {}

    # -- the learning rate ------------------------------------------------------
    @property
    def learning_rate(self):
        """The rate of the next update: a schedule is evaluated at `iterations`."""
        if isinstance(self._learning_rate, LearningRateSchedule):
            return float(self._learning_rate(self.iterations))
        if callable(self._learning_rate):
            return float(self._learning_rate())
        return self._learning_rate

    @learning_rate.setter
    def learning_rate(self, value):
        if isinstance(value, (np.ndarray, np.generic)) and np.size(value) == 1:
            value = value.item()
        if not (isinstance(value, (int, float)) or callable(value)) or isinstance(value, bool):
            raise TypeError(
                f"learning_rate must be a number, a LearningRateSchedule or a function of no "
                f"arguments, got {value!r}"
            )
        self._learning_rate = float(value) if isinstance(value, (int, float)) else value

    # -- updating weights ---------------------------------------------------------
    def build(self, weights):
        """Register `weights` in this order (their indices in get_state) and make their slots."""
        for weight in weights:
            self._register(weight)
            self._slots_of(weight)

    def apply_gradients(self, grads_and_vars):
        """One update of every weight from (gradient, weight) pairs; None gradients are skipped."""
        pairs = list(grads_and_vars)
        for grad, weight in pairs:
            self._register(weight)
        pairs = [(_as_array(grad, weight), weight) for grad, weight in pairs if grad is not None]
        if not _allocator["asked"] and pairs and not backend.is_gpu_array(pairs[0][0]):
            keep_freed_memory()
        grads = self._clipped([grad for grad, _ in pairs])
        weights = [weight for _, weight in pairs]
        self._update_all([weight.data for weight in weights], grads,
                         [self._slots_of(weight) for weight in weights], self.learning_rate)
        self.iterations += 1

    def step(self, weights):
        """Update `weights` from their `.grad` (left in place: call zero_grad to clear it)."""
        self.apply_gradients([(weight.grad, weight) for weight in weights])

    def zero_grad(self, weights):
        """Forget the gradients of `weights`, so the next backward starts from zero."""
        for weight in weights:
            weight.grad = None

    def _update(self, param, grad, slots, learning_rate):
        raise NotImplementedError(f"{type(self).__name__} must define _update")

    def _update_all(self, params, grads, slots, learning_rate):
        """One step for every weight: `_update` on each, unless the optimizer has a
        kernel that takes them all at once (Adam)."""
        for param, grad, weight_slots in zip(params, grads, slots):
            self._update(param, grad, weight_slots, learning_rate)

    def _register(self, weight):
        if not isinstance(weight, Tensor):
            raise TypeError(
                f"{type(self).__name__} updates Tensors, got {type(weight).__name__}; "
                "apply_gradients takes (gradient, weight) pairs, gradient first"
            )
        if id(weight) not in self._slots:
            self._weights.append(weight)
            self._slots[id(weight)] = {}

    def _slots_of(self, weight):
        """The weight's slot arrays, each made on first use (same shape, dtype, device)."""
        slots = self._slots[id(weight)]
        for slot_name in self.slot_names:
            if slot_name not in slots:
                slots[slot_name] = self._initial_slot(weight.data)
        return slots

    def _initial_slot(self, param):
        return backend.array_module(param).zeros_like(param)

    # -- clipping -------------------------------------------------------------------
    def _clipped(self, grads):
        """The gradients after Keras's clipping (new arrays: the caller's are untouched)."""
        if self.clipnorm is not None:
            return [g * _shrink_factor(_squared_norm(g), self.clipnorm) for g in grads]
        if self.global_clipnorm is not None and grads:
            total = sum(_squared_norm(g) for g in grads)
            factor = _shrink_factor(total, self.global_clipnorm)
            return [g * factor for g in grads]
        if self.clipvalue is not None:
            return [backend.array_module(g).clip(g, -self.clipvalue, self.clipvalue) for g in grads]
        return grads

    # -- saving and resuming ------------------------------------------------------
    def get_state(self):
        """The step count and every slot array (NumPy), keyed 'slots.<weight index>.<slot>'.

        A plain-number learning rate is included too, since callbacks may have
        changed it since the optimizer was made.
        """
        state = {"iterations": self.iterations}
        if isinstance(self._learning_rate, float):
            state["learning_rate"] = self._learning_rate
        for index, weight in enumerate(self._weights):
            for slot_name, array in self._slots[id(weight)].items():
                state[f"slots.{index}.{slot_name}"] = np.array(backend.to_device(array, "cpu"))
        return state

    def set_state(self, state, weights):
        """Restore `get_state()`'s dict; `weights` in the same order as when it was saved."""
        weights = list(weights)
        self._weights, self._slots = [], {}
        for weight in weights:
            self._register(weight)
        for key, value in state.items():
            if key == "iterations":
                self.iterations = int(value)
            elif key == "learning_rate":
                self.learning_rate = float(value)
            elif key.startswith("slots."):
                self._restore_slot(key, value, weights)
            else:
                raise ValueError(f"unknown key {key!r} in the optimizer state")

    def _restore_slot(self, key, value, weights):
        _, index, slot_name = key.split(".", 2)
        index = int(index)
        if index >= len(weights):
            raise ValueError(
                f"the optimizer state has slots for weight {index}, but only {len(weights)} "
                "weights were given: was it saved from another model?"
            )
        if slot_name not in self.slot_names:
            raise ValueError(
                f"the optimizer state has slot {slot_name!r}, which {type(self).__name__} does "
                f"not use (its slots: {list(self.slot_names)}): was it saved from another optimizer?"
            )
        weight = weights[index]
        value = np.asarray(value)
        if value.shape != weight.shape:
            raise ValueError(
                f"slot {slot_name!r} of weight {index} has shape {value.shape} in the saved "
                f"state but the weight has shape {weight.shape}: was it saved from another model?"
            )
        # A fresh contiguous array: the kernels update it in place.
        array = np.array(value, dtype=weight.dtype, order="C")
        self._slots[id(weight)][slot_name] = backend.to_device(array, weight.device)

    # -- configuration -------------------------------------------------------------
    def get_config(self):
        learning_rate = self._learning_rate
        if isinstance(learning_rate, LearningRateSchedule):
            learning_rate = schedules.serialize(learning_rate)
        else:
            learning_rate = self.learning_rate  # a function's current value
        return {"name": self.name, "learning_rate": learning_rate, "clipnorm": self.clipnorm,
                "clipvalue": self.clipvalue, "global_clipnorm": self.global_clipnorm}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        if isinstance(config.get("learning_rate"), dict):
            config["learning_rate"] = schedules.deserialize(config["learning_rate"],
                                                            custom_objects)
        return cls(**config)

    def __repr__(self):
        return f"<{type(self).__name__} learning_rate={self.learning_rate!r} iterations={self.iterations}>"


def _as_array(grad, weight):
    """The gradient as an array in the weight's dtype, checked against the weight.

    A plain array (NumPy, or CuPy) is data and goes to the weight's device, as a
    layer's input does; a Tensor on another device than its weight is an error.
    """
    if isinstance(grad, Tensor):
        array = grad.data
        # Arrays of one type live on one device: the device names (two
        # look-ups a weight, every step) are only needed when the types differ.
        if type(array) is not type(weight.data) and grad.device != weight.device:
            raise BackendError(
                f"a gradient on {grad.device} was given for a weight on {weight.device}; "
                "move it with .to() first"
            )
    else:
        array = grad if backend.is_gpu_array(grad) else np.asarray(grad)
        array = backend.to_device(array, weight.device)
    if array.shape != weight.shape:
        raise ValueError(
            f"a gradient of shape {array.shape} was given for a weight of shape {weight.shape}"
            + (f" ({weight.name})" if weight.name else "")
        )
    # Compared first: astype(copy=False) is a CuPy call even when it has nothing to do.
    return array if array.dtype == weight.dtype else array.astype(weight.dtype)


# ----------------------------------------------------------------------------
# Memory between training steps on the CPU
# ----------------------------------------------------------------------------
_allocator = {"asked": False, "kept": False}


def keep_freed_memory():
    """Ask glibc's malloc to keep freed memory for reuse; True if it now does.

    Every training step allocates and frees the same large arrays (a conv
    layer's output and column matrix are megabytes each). By default glibc
    gives such memory back to the operating system as soon as it is freed, and
    gets it back at the next step one 4 KiB page at a time: each page is a
    fault that the kernel fills with zeros. On the MNIST CNN (batch 128) that
    was 2,500 to 4,900 faults and 12 of 52 ms per step (benchmarks/NOTES.md,
    "training step W1/W2"). Two settings keep the memory in the process, as the
    caching allocators of other deep-learning frameworks do: blocks up to
    32 MiB come from the heap rather than from fresh mappings
    (M_MMAP_THRESHOLD), and up to 1 GiB of free heap is kept rather than
    returned (M_TRIM_THRESHOLD). The price: the process keeps its peak memory
    between steps instead of shrinking after each one.

    Called once, by the first update of a weight on the CPU (so only a process
    that trains is affected); it changes nothing off glibc (macOS, Windows,
    musl), or when the environment variable DEEPBREADTH_KEEP_FREED_MEMORY is 0.
    """
    _allocator["asked"] = True
    if os.environ.get("DEEPBREADTH_KEEP_FREED_MEMORY", "1") == "0" or platform.system() != "Linux":
        return _allocator["kept"]
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018 -- glibc only: musl ignores these settings
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return _allocator["kept"]
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    m_trim_threshold, m_mmap_threshold = -1, -3  # from glibc's malloc.h
    kept = mallopt(m_mmap_threshold, 32 * 2**20) == 1
    kept = mallopt(m_trim_threshold, 2**30) == 1 and kept
    _allocator["kept"] = kept
    return kept


def _flattens_in_place_like(array, first):
    """True when `array` is of the type and dtype of `first`, and its flat view
    (reshape(-1)) writes through to it: C-contiguous and writeable (CuPy arrays
    have no writeable flag: they always are)."""
    flags = array.flags
    return (type(array) is type(first) and array.dtype == first.dtype and flags.c_contiguous
            and getattr(flags, "writeable", True))


def _squared_norm(array):
    return (array * array).sum()


def _shrink_factor(squared_norm, max_norm):
    """max_norm / norm when the norm is larger, else 1: the direction is kept, the length capped."""
    norm = backend.array_module(squared_norm).sqrt(squared_norm)
    return max_norm / backend.array_module(norm).maximum(norm, max_norm)


# ----------------------------------------------------------------------------
# The optimizers
# ----------------------------------------------------------------------------
class SGD(Optimizer):
    """Gradient descent, with momentum (a velocity that keeps moving) and Nesterov if asked."""

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, clipnorm=None,
                 clipvalue=None, global_clipnorm=None, name="SGD"):
        if not 0 <= momentum <= 1:
            raise ValueError(f"momentum must be in [0, 1], got {momentum}")
        super().__init__(learning_rate, clipnorm, clipvalue, global_clipnorm, name)
        self.momentum = momentum
        self.nesterov = nesterov
        # Plain SGD needs no velocity: Keras keeps none, and neither do we.
        self.slot_names = ("velocity",) if momentum else ()

    def _update(self, param, grad, slots, learning_rate):
        backend.kernel("sgd_update", param)(param, grad, slots.get("velocity"), learning_rate,
                                            self.momentum, self.nesterov)

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov}


class Adam(Optimizer):
    """Adaptive moments: each weight's step is its mean gradient over the root of its
    mean squared gradient, so every weight moves at a similar pace."""

    slot_names = ("m", "v")

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                 amsgrad=False, weight_decay=None, clipnorm=None, clipvalue=None,
                 global_clipnorm=None, name="adam"):
        if amsgrad:
            raise ValueError("amsgrad=True is not supported; use Adam with amsgrad=False")
        super().__init__(learning_rate, clipnorm, clipvalue, global_clipnorm, name)
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.weight_decay = weight_decay
        # The arrays whose flat views were made last, and those views (_flat_views).
        self._flat_views_kept = ((), None)

    def _update(self, param, grad, slots, learning_rate):
        # Adam's bias correction counts steps from 1.
        backend.kernel("adam_update", param)(
            param, grad, slots["m"], slots["v"], learning_rate, self.beta_1, self.beta_2,
            self.epsilon, self.iterations + 1, self.weight_decay or 0.0)

    def _update_all(self, params, grads, slots, learning_rate):
        # One kernel call for all the weights: on the CPU each call costs a few
        # microseconds to start, a tenth of a small model's update.
        ms = [weight_slots["m"] for weight_slots in slots]
        vs = [weight_slots["v"] for weight_slots in slots]
        hyper_parameters = (learning_rate, self.beta_1, self.beta_2, self.epsilon,
                            self.iterations + 1, self.weight_decay or 0.0)
        flat = self._flat_views(params, ms, vs)
        if flat is not None:
            flat_params, flat_ms, flat_vs = flat
            flat_grads = tuple([grad.reshape(-1) for grad in grads])  # read only: a copy is fine
            backend.kernel("adam_update_flat", params[0])(flat_params, flat_grads, flat_ms,
                                                          flat_vs, *hyper_parameters)
        elif params and len({backend.device_of(param) for param in params}) == 1:
            backend.kernel("adam_update_many", params[0])(params, grads, ms, vs,
                                                          *hyper_parameters)
        else:
            super()._update_all(params, grads, slots, learning_rate)

    def _flat_views(self, params, ms, vs):
        """(params, ms, vs) as tuples of flat views, for adam_update_flat; None when
        the arrays are not all C-contiguous arrays of one type and dtype.

        Made once and kept while the arrays stay the same objects (a model's
        weights and slots do, step after step; set_state or a weight given a
        new array makes them again): checking a dozen arrays at every step
        costs more than the rest of the optimizer's Python.
        """
        arrays = params + ms + vs
        kept_arrays, views = self._flat_views_kept
        if len(arrays) == len(kept_arrays) and all(map(operator.is_, arrays, kept_arrays)):
            return views
        first = arrays[0] if arrays else None
        if first is None or not all(_flattens_in_place_like(array, first) for array in arrays):
            views = None  # adam_update_many checks them, and says what is wrong
        else:
            # On a C-contiguous array, reshape(-1) is a view: writes reach the array.
            flat = tuple([array.reshape(-1) for array in arrays])
            count = len(params)
            views = (flat[:count], flat[count:2 * count], flat[2 * count:])
        self._flat_views_kept = (arrays, views)
        return views

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2,
                "epsilon": self.epsilon, "weight_decay": self.weight_decay}


class AdamW(Adam):
    """Adam with decoupled weight decay: weights shrink by lr * weight_decay each step."""

    def __init__(self, learning_rate=0.001, weight_decay=0.004, beta_1=0.9, beta_2=0.999,
                 epsilon=1e-7, amsgrad=False, clipnorm=None, clipvalue=None,
                 global_clipnorm=None, name="adamw"):
        if weight_decay is None:
            raise ValueError("AdamW needs a weight_decay (a number); for none, use Adam")
        super().__init__(learning_rate, beta_1, beta_2, epsilon, amsgrad, weight_decay,
                         clipnorm, clipvalue, global_clipnorm, name)


class RMSprop(Optimizer):
    """Divides each step by the root of a running mean of squared gradients."""

    slot_names = ("mean_square",)

    def __init__(self, learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7,
                 centered=False, clipnorm=None, clipvalue=None, global_clipnorm=None,
                 name="rmsprop"):
        if momentum or centered:
            raise ValueError("RMSprop with momentum or centered=True is not supported; "
                             "use momentum=0.0 and centered=False")
        super().__init__(learning_rate, clipnorm, clipvalue, global_clipnorm, name)
        self.rho = rho
        self.epsilon = epsilon

    def _update(self, param, grad, slots, learning_rate):
        backend.kernel("rmsprop_update", param)(param, grad, slots["mean_square"],
                                                learning_rate, self.rho, self.epsilon)

    def get_config(self):
        return {**super().get_config(), "rho": self.rho, "epsilon": self.epsilon}


class Adagrad(Optimizer):
    """Divides each step by the root of the sum of all past squared gradients."""

    slot_names = ("accumulator",)

    def __init__(self, learning_rate=0.001, initial_accumulator_value=0.1, epsilon=1e-7,
                 clipnorm=None, clipvalue=None, global_clipnorm=None, name="adagrad"):
        super().__init__(learning_rate, clipnorm, clipvalue, global_clipnorm, name)
        self.initial_accumulator_value = initial_accumulator_value
        self.epsilon = epsilon

    def _initial_slot(self, param):
        # Starting above zero keeps the first steps from being huge.
        return backend.array_module(param).full_like(param, self.initial_accumulator_value)

    def _update(self, param, grad, slots, learning_rate):
        backend.kernel("adagrad_update", param)(param, grad, slots["accumulator"],
                                                learning_rate, self.epsilon)

    def get_config(self):
        return {**super().get_config(),
                "initial_accumulator_value": self.initial_accumulator_value,
                "epsilon": self.epsilon}


# ----------------------------------------------------------------------------
# Looking optimizers up by name, and saving them
# ----------------------------------------------------------------------------
_OPTIMIZERS = {cls.__name__.lower(): cls for cls in (SGD, Adam, AdamW, RMSprop, Adagrad)}


def get(identifier):
    """An Optimizer from a name ('adam', 'sgd', 'rmsprop', 'adagrad', 'adamw'),
    an Optimizer (returned as it is) or a serialized dict."""
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, str):
        cls = _OPTIMIZERS.get(identifier.lower())
        if cls is None:
            raise ValueError(f"unknown optimizer {identifier!r}; use one of {sorted(_OPTIMIZERS)}")
        return cls()
    raise TypeError(
        f"cannot interpret {identifier!r} as an optimizer; give a name such as 'adam' or an "
        "Optimizer object"
    )


def serialize(optimizer):
    """A dict {'class_name', 'config'} from which `deserialize` rebuilds the optimizer."""
    return {"class_name": type(optimizer).__name__, "config": optimizer.get_config()}


def deserialize(config, custom_objects=None):
    """The optimizer described by `serialize`'s dict; `custom_objects` maps the names
    of your own Optimizer subclasses or schedules to them."""
    custom_objects = custom_objects or {}
    class_name = config["class_name"]
    cls = custom_objects.get(class_name) or _OPTIMIZERS.get(class_name.lower())
    if cls is None:
        raise ValueError(
            f"unknown optimizer {class_name!r}; pass custom_objects={{{class_name!r}: {class_name}}}"
        )
    return cls.from_config(config["config"], custom_objects)
