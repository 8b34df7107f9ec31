"""Layers without weights that reshape or gate their input: Activation, Flatten,
Reshape, Dropout; and the small helpers the weighted layers share (activation
and initializer serialization, error messages that name the layer).
"""
import contextlib
import math

import numpy as np

from .. import functional as F
from .. import initializers
from ..functional.nn import dropout
from .base import Layer


# ----------------------------------------------------------------------------
# Helpers shared by the layers
# ----------------------------------------------------------------------------
@contextlib.contextmanager
def errors_named_after(layer):
    """Prefix the ValueErrors and TypeErrors raised inside with the layer's class
    and name, so a message from deep inside an op says which layer failed."""
    try:
        yield
    except (ValueError, TypeError) as error:
        raise type(error)(f"{type(layer).__name__} layer '{layer.name}': {error}") from None


def serialize_activation(activation):
    """The name of an activation function, for get_config (Keras stores names)."""
    return getattr(activation, "__name__", str(activation))


# Keras's short names for two initializers.
_INITIALIZER_ALIASES = {"uniform": "random_uniform", "normal": "random_normal"}


def resolve_initializer(identifier):
    """An initializer from a name, a config dict (from get_config) or an instance."""
    if isinstance(identifier, dict):
        return initializers.deserialize(identifier)
    if isinstance(identifier, str):
        return initializers.get(_INITIALIZER_ALIASES.get(identifier.lower(), identifier))
    return initializers.get(identifier)


def serialize_initializer(initializer):
    """A JSON-able description of an initializer that resolve_initializer reads back."""
    try:
        return initializers.serialize(initializer)
    except ValueError:
        raise ValueError(
            f"cannot save the initializer {initializer!r} in a config: use one of the "
            "initializers of deepbreadth.initializers"
        ) from None


# ----------------------------------------------------------------------------
# Layers
# ----------------------------------------------------------------------------
class Activation(Layer):
    """Apply an activation function by name: Activation('relu')."""
    replays_exactly = True  # its call is ops only: see deepbreadth/replay.py

    def __init__(self, activation, **kwargs):
        super().__init__(**kwargs)
        self.activation = F.get_activation(activation)

    def call(self, inputs):
        return self.activation(inputs)

    def get_config(self):
        return {**super().get_config(), "activation": serialize_activation(self.activation)}


class Flatten(Layer):
    """(batch, d1, d2, ...) -> (batch, d1 * d2 * ...): the batch axis stays."""
    replays_exactly = True  # its call is ops only: see deepbreadth/replay.py

    def __init__(self, data_format=None, **kwargs):
        super().__init__(**kwargs)
        if data_format not in (None, "channels_last"):
            raise ValueError(
                f"Flatten: only data_format='channels_last' is supported, got {data_format!r}"
            )
        self.data_format = data_format

    def call(self, inputs):
        if inputs.ndim < 1:
            raise ValueError(f"Flatten layer '{self.name}' needs a batch axis; got a scalar")
        # The product is written out (not -1) so that an empty batch still works.
        return F.reshape(inputs, (inputs.shape[0], math.prod(inputs.shape[1:])))

    def get_config(self):
        return {**super().get_config(), "data_format": self.data_format}


class Reshape(Layer):
    """Reshape every sample to `target_shape` (batch axis excluded; one -1 allowed)."""
    replays_exactly = True  # its call is ops only: see deepbreadth/replay.py

    def __init__(self, target_shape, **kwargs):
        super().__init__(**kwargs)
        target_shape = tuple(int(n) for n in target_shape)
        if target_shape.count(-1) > 1 or any(n < -1 or n == 0 for n in target_shape):
            raise ValueError(
                f"Reshape: target_shape must hold positive sizes and at most one -1, "
                f"got {target_shape}"
            )
        self.target_shape = target_shape

    def _sample_shape(self, input_shape):
        """target_shape with its -1 worked out, checked against the input's size."""
        size = math.prod(input_shape[1:])
        known = math.prod(n for n in self.target_shape if n != -1)
        fits = size % known == 0 if -1 in self.target_shape else size == known
        if not fits:
            raise ValueError(
                f"Reshape layer '{self.name}': cannot reshape input of shape "
                f"{tuple(input_shape)} ({size} values per sample) to target_shape "
                f"{self.target_shape}; the target must hold the same number of values"
            )
        return tuple(size // known if n == -1 else n for n in self.target_shape)

    def call(self, inputs):
        return F.reshape(inputs, (inputs.shape[0],) + self._sample_shape(inputs.shape))

    def get_config(self):
        return {**super().get_config(), "target_shape": list(self.target_shape)}


class Dropout(Layer):
    """During training, zero a fraction `rate` of the inputs and scale the rest
    by 1 / (1 - rate); at inference, pass the input through unchanged."""
    replays_exactly = True  # its call is ops only: see deepbreadth/replay.py

    def __init__(self, rate, noise_shape=None, seed=None, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"Dropout: rate must be in [0, 1), got {rate!r}")
        if noise_shape is not None:
            raise NotImplementedError("Dropout: noise_shape is not supported; leave it None")
        self.rate = float(rate)
        self.noise_shape = noise_shape
        self.seed = seed
        # A seeded layer draws from its own generator: its masks repeat from run
        # to run whatever else uses the package-wide generator.
        self._generator = None if seed is None else np.random.default_rng(seed)

    def call(self, inputs, training=None):
        return dropout(inputs, self.rate, training=bool(training), generator=self._generator)

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "noise_shape": self.noise_shape,
                "seed": self.seed}
