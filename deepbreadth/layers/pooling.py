"""Pooling layers, channels last: max and average over windows, and global pools.

Pooling has no weights: each layer checks its input and calls one pooling op
of deepbreadth.functional.
"""
from .. import functional as F
from ..functional.conv import normalize_padding, normalize_tuple
from .base import Layer
from .core import errors_named_after


def _check_data_format(kind, data_format):
    if data_format not in (None, "channels_last"):
        raise ValueError(
            f"{kind}: only data_format='channels_last' is supported, got {data_format!r}"
        )


def _check_rank(layer, shape):
    rank = layer.spatial_dims + 2
    if len(shape) != rank:
        raise ValueError(
            f"{type(layer).__name__} layer '{layer.name}' expects input of rank {rank}, "
            f"{layer.input_layout}, got shape {tuple(shape)}"
        )


class Pooling(Layer):
    """Windows of pool_size, moved by strides (default: pool_size, side by side)."""

    spatial_dims = None
    input_layout = None
    pool = None  # the functional op: F.max_pool2d, F.avg_pool1d, ...

    def __init__(self, pool_size=2, strides=None, padding="valid", data_format=None, **kwargs):
        super().__init__(**kwargs)
        kind = type(self).__name__
        _check_data_format(kind, data_format)
        self.pool_size = normalize_tuple(pool_size, self.spatial_dims, f"{kind}: pool_size")
        self.strides = (self.pool_size if strides is None
                        else normalize_tuple(strides, self.spatial_dims, f"{kind}: strides"))
        self.padding = normalize_padding(padding)
        self.data_format = "channels_last"

    def call(self, inputs):
        _check_rank(self, inputs.shape)
        with errors_named_after(self):
            return self.pool(inputs, self.pool_size, self.strides, self.padding)

    def get_config(self):
        return {**super().get_config(), "pool_size": self.pool_size, "strides": self.strides,
                "padding": self.padding, "data_format": self.data_format}


class MaxPooling1D(Pooling):
    replays_exactly = True  # its call is ops only: see deepbreadth/replay.py

    spatial_dims = 1
    input_layout = "(batch, steps, channels)"
    pool = staticmethod(F.max_pool1d)


class AveragePooling1D(Pooling):
    replays_exactly = True  # its call is ops only: see deepbreadth/replay.py

    spatial_dims = 1
    input_layout = "(batch, steps, channels)"
    pool = staticmethod(F.avg_pool1d)


class MaxPooling2D(Pooling):
    replays_exactly = True  # its call is ops only: see deepbreadth/replay.py

    spatial_dims = 2
    input_layout = "(batch, height, width, channels)"
    pool = staticmethod(F.max_pool2d)

    def __init__(self, pool_size=(2, 2), strides=None, padding="valid", data_format=None,
                 **kwargs):
        super().__init__(pool_size, strides, padding, data_format, **kwargs)


class AveragePooling2D(Pooling):
    replays_exactly = True  # its call is ops only: see deepbreadth/replay.py

    spatial_dims = 2
    input_layout = "(batch, height, width, channels)"
    pool = staticmethod(F.avg_pool2d)

    def __init__(self, pool_size=(2, 2), strides=None, padding="valid", data_format=None,
                 **kwargs):
        super().__init__(pool_size, strides, padding, data_format, **kwargs)


class GlobalPooling(Layer):
    """One window over every axis between batch and channels: (batch, ..., C) -> (batch, C)."""

    spatial_dims = None
    input_layout = None
    pool = None  # F.global_max_pool or F.global_avg_pool

    def __init__(self, data_format=None, keepdims=False, **kwargs):
        super().__init__(**kwargs)
        _check_data_format(type(self).__name__, data_format)
        self.data_format = "channels_last"
        self.keepdims = keepdims

    def call(self, inputs):
        _check_rank(self, inputs.shape)
        with errors_named_after(self):
            outputs = self.pool(inputs)
        if self.keepdims:
            # Keras keeps the pooled axes with size 1: (batch, 1, 1, C).
            outputs = F.reshape(outputs, (outputs.shape[0],) + (1,) * self.spatial_dims
                                + (outputs.shape[1],))
        return outputs

    def get_config(self):
        return {**super().get_config(), "data_format": self.data_format,
                "keepdims": self.keepdims}


class GlobalMaxPooling1D(GlobalPooling):
    replays_exactly = True  # its call is ops only: see deepbreadth/replay.py

    spatial_dims = 1
    input_layout = "(batch, steps, channels)"
    pool = staticmethod(F.global_max_pool)


class GlobalAveragePooling1D(GlobalPooling):
    replays_exactly = True  # its call is ops only: see deepbreadth/replay.py

    spatial_dims = 1
    input_layout = "(batch, steps, channels)"
    pool = staticmethod(F.global_avg_pool)


class GlobalMaxPooling2D(GlobalPooling):
    replays_exactly = True  # its call is ops only: see deepbreadth/replay.py

    spatial_dims = 2
    input_layout = "(batch, height, width, channels)"
    pool = staticmethod(F.global_max_pool)


class GlobalAveragePooling2D(GlobalPooling):
    replays_exactly = True  # its call is ops only: see deepbreadth/replay.py

    spatial_dims = 2
    input_layout = "(batch, height, width, channels)"
    pool = staticmethod(F.global_avg_pool)


# Keras's short names.
MaxPool1D = MaxPooling1D
MaxPool2D = MaxPooling2D
AvgPool1D = AveragePooling1D
AvgPool2D = AveragePooling2D
GlobalMaxPool1D = GlobalMaxPooling1D
GlobalMaxPool2D = GlobalMaxPooling2D
GlobalAvgPool1D = GlobalAveragePooling1D
GlobalAvgPool2D = GlobalAveragePooling2D
