"""Activation layers with parameters: Softmax(axis), ReLU, LeakyReLU, ELU.

`Activation('relu')` covers the plain cases; these are the Keras classes for
when the activation has an argument or is wanted as a layer of its own.
"""
from .. import functional as F
from .base import Layer


class Softmax(Layer):
    replays_exactly = True  # its call is ops only: see deepbreadth/replay.py

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        self.axis = axis

    def call(self, inputs):
        return F.softmax(inputs, axis=self.axis)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}


class ReLU(Layer):
    """max(x, 0), optionally capped at max_value (ReLU(6.0) is ReLU6)."""
    replays_exactly = True  # its call is ops only: see deepbreadth/replay.py

    def __init__(self, max_value=None, negative_slope=0.0, **kwargs):
        super().__init__(**kwargs)
        self.max_value = max_value
        self.negative_slope = negative_slope

    def call(self, inputs):
        out = F.leaky_relu(inputs, self.negative_slope) if self.negative_slope else F.relu(inputs)
        return F.minimum(out, self.max_value) if self.max_value is not None else out

    def get_config(self):
        return {**super().get_config(), "max_value": self.max_value,
                "negative_slope": self.negative_slope}


class LeakyReLU(Layer):
    """x for x > 0, negative_slope * x otherwise (Keras's default slope 0.3)."""
    replays_exactly = True  # its call is ops only: see deepbreadth/replay.py

    def __init__(self, negative_slope=0.3, alpha=None, **kwargs):
        super().__init__(**kwargs)
        # `alpha` is the older Keras name of the same argument.
        self.negative_slope = alpha if alpha is not None else negative_slope

    def call(self, inputs):
        return F.leaky_relu(inputs, self.negative_slope)

    def get_config(self):
        return {**super().get_config(), "negative_slope": self.negative_slope}


class ELU(Layer):
    replays_exactly = True  # its call is ops only: see deepbreadth/replay.py

    def __init__(self, alpha=1.0, **kwargs):
        super().__init__(**kwargs)
        self.alpha = alpha

    def call(self, inputs):
        return F.elu(inputs, self.alpha)

    def get_config(self):
        return {**super().get_config(), "alpha": self.alpha}
