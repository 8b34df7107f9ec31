"""Layers that merge several inputs into one: Concatenate, Add, Subtract,
Multiply, Average, Maximum, Minimum (the functional API's joins).

Each takes a list of tensors of one shape (Concatenate: equal except along
its axis) and combines them with ordinary differentiable ops, so gradients
flow back to every input.
"""
from functools import reduce

from .. import functional as F
from .base import Layer


class _Merge(Layer):
    """Base: check the inputs are a list of at least two tensors, then combine."""

    minimum_inputs = 2

    def _check_inputs(self, inputs):
        if not isinstance(inputs, (list, tuple)) or len(inputs) < self.minimum_inputs:
            count = len(inputs) if isinstance(inputs, (list, tuple)) else 1
            raise ValueError(
                f"{type(self).__name__} layer '{self.name}' merges a list of at least "
                f"{self.minimum_inputs} tensors; it got {count}. Call it as "
                f"{type(self).__name__}()([a, b])."
            )

    def call(self, inputs):
        self._check_inputs(inputs)
        shapes = {tuple(t.shape) for t in inputs}
        if len(shapes) > 1:
            raise ValueError(
                f"{type(self).__name__} layer '{self.name}' needs inputs of one shape, got "
                f"{[tuple(t.shape) for t in inputs]}"
            )
        return self.merge(list(inputs))


class Add(_Merge):
    replays_exactly = True  # its call is ops only: see deepbreadth/replay.py

    def merge(self, inputs):
        return reduce(F.add, inputs)


class Subtract(_Merge):
    replays_exactly = True  # its call is ops only: see deepbreadth/replay.py

    def merge(self, inputs):
        if len(inputs) != 2:
            raise ValueError(f"Subtract layer '{self.name}' takes exactly two tensors, got {len(inputs)}")
        return inputs[0] - inputs[1]


class Multiply(_Merge):
    replays_exactly = True  # its call is ops only: see deepbreadth/replay.py

    def merge(self, inputs):
        return reduce(F.mul, inputs)


class Average(_Merge):
    # Not replays_exactly: dividing by len(inputs) makes a constant outside the ops.

    def merge(self, inputs):
        return reduce(F.add, inputs) / len(inputs)


class Maximum(_Merge):
    replays_exactly = True  # its call is ops only: see deepbreadth/replay.py

    def merge(self, inputs):
        return reduce(F.maximum, inputs)


class Minimum(_Merge):
    replays_exactly = True  # its call is ops only: see deepbreadth/replay.py

    def merge(self, inputs):
        return reduce(F.minimum, inputs)


class Concatenate(_Merge):
    """Join tensors along `axis` (default the last, the feature axis)."""
    replays_exactly = True  # its call is ops only: see deepbreadth/replay.py

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        self.axis = axis

    def call(self, inputs):
        self._check_inputs(inputs)
        return F.concatenate(list(inputs), axis=self.axis)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}
