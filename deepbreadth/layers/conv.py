"""Conv1D and Conv2D: activation(convolution(inputs, kernel) + bias), channels last.

Both share one class, `Conv`, that knows the number of spatial axes; the
kernel has Keras's shape (kernel_size..., input channels, filters).
"""
from .. import functional as F
from ..functional.conv import convolution, normalize_padding, normalize_tuple
from ..functional.nn import fused_activation_name
from .base import Layer
from .core import (errors_named_after, resolve_initializer, serialize_activation,
                   serialize_initializer)
from .pooling import MaxPooling1D, MaxPooling2D, Pooling


class Conv(Layer):
    spatial_dims = None
    input_layout = None
    paddings = ("valid", "same")

    def __init__(self, filters, kernel_size, strides=1, padding="valid", data_format=None,
                 dilation_rate=1, activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros", **kwargs):
        super().__init__(**kwargs)
        kind = type(self).__name__
        if data_format not in (None, "channels_last"):
            raise ValueError(
                f"{kind}: only data_format='channels_last' (inputs {self.input_layout}) is "
                f"supported, got {data_format!r}; move the channels last with "
                "transpose before the layer"
            )
        if not isinstance(filters, int) or filters < 1:
            raise ValueError(f"{kind}: filters must be a positive int, got {filters!r}")
        self.filters = filters
        self.kernel_size = normalize_tuple(kernel_size, self.spatial_dims, f"{kind}: kernel_size")
        self.strides = normalize_tuple(strides, self.spatial_dims, f"{kind}: strides")
        self.padding = normalize_padding(padding, self.paddings)
        self.data_format = "channels_last"
        self.dilation_rate = normalize_tuple(dilation_rate, self.spatial_dims,
                                             f"{kind}: dilation_rate")
        self.activation = F.get_activation(activation)
        self.use_bias = use_bias
        self.kernel_initializer = resolve_initializer(kernel_initializer)
        self.bias_initializer = resolve_initializer(bias_initializer)
        self.kernel = None
        self.bias = None

    def _check_rank(self, shape):
        rank = self.spatial_dims + 2
        if len(shape) != rank:
            hint = ""
            if len(shape) == rank - 1:
                hint = "; for single-channel data add a channel axis: x[..., None]"
            raise ValueError(
                f"{type(self).__name__} layer '{self.name}' expects input of rank {rank}, "
                f"{self.input_layout}, got shape {tuple(shape)}{hint}"
            )

    def build(self, input_shape):
        self._check_rank(input_shape)
        channels = input_shape[-1]
        if channels is None:
            raise ValueError(
                f"{type(self).__name__} layer '{self.name}': the channel axis (last) must be "
                f"known, got input shape {tuple(input_shape)}"
            )
        self.kernel = self.add_weight("kernel", self.kernel_size + (channels, self.filters),
                                      self.kernel_initializer)
        if self.use_bias:
            self.bias = self.add_weight("bias", (self.filters,), self.bias_initializer)

    def call(self, inputs, followed_by=None):
        """The layer's output; given `followed_by` (a max pooling layer for which
        fuses_with is True), that layer's output, in one op."""
        self._check_rank(inputs.shape)
        channels = self.kernel.shape[-2]
        if inputs.shape[-1] != channels:
            raise ValueError(
                f"{type(self).__name__} layer '{self.name}' was built for {channels} input "
                f"channels, got input of shape {tuple(inputs.shape)} with {inputs.shape[-1]}; "
                "a layer's channel count cannot change after its first call"
            )
        with errors_named_after(self):
            if followed_by is not None:
                return F.convolution_max_pool(
                    inputs, self.kernel, self.bias, self.strides, self.padding,
                    self.dilation_rate, self.activation, followed_by.pool_size,
                    followed_by.strides, followed_by.padding)
            outputs = convolution(inputs, self.kernel, self.strides, self.padding,
                                  self.dilation_rate, bias=self.bias, activation=self.activation)
        return outputs

    def fuses_with(self, next_layer):
        """A convolution with a bias and an activation the kernels fuse, and a max
        pool of as many spatial axes after it (Conv2D then MaxPooling2D, Conv1D
        then MaxPooling1D), run as one op (F.convolution_max_pool): the
        convolution's output, the largest array of a CNN, is then never
        written out whole.  A hook on either layer wants to see that output,
        so a hook turns fusion off; so does a subclass with a call() of its
        own, which the one op would skip."""
        return (isinstance(next_layer, (MaxPooling1D, MaxPooling2D))
                and type(self).call is Conv.call and type(next_layer).call is Pooling.call
                and next_layer.spatial_dims == self.spatial_dims and self.use_bias
                and fused_activation_name(self.activation) is not None
                and next_layer.dtype == self.dtype
                and not self._has_hooks() and not next_layer._has_hooks())

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "strides": self.strides,
            "padding": self.padding,
            "data_format": self.data_format,
            "dilation_rate": self.dilation_rate,
            "activation": serialize_activation(self.activation),
            "use_bias": self.use_bias,
            "kernel_initializer": serialize_initializer(self.kernel_initializer),
            "bias_initializer": serialize_initializer(self.bias_initializer),
        }


class Conv1D(Conv):
    """1-D convolution over (batch, steps, channels); padding 'valid', 'same' or 'causal'."""
    replays_exactly = True  # its call is ops only: see deepbreadth/replay.py

    spatial_dims = 1
    input_layout = "(batch, steps, channels)"
    paddings = ("valid", "same", "causal")


class Conv2D(Conv):
    """2-D convolution over (batch, height, width, channels); padding 'valid' or 'same'."""
    replays_exactly = True  # its call is ops only: see deepbreadth/replay.py

    spatial_dims = 2
    input_layout = "(batch, height, width, channels)"

    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid", data_format=None,
                 dilation_rate=(1, 1), **kwargs):
        super().__init__(filters, kernel_size, strides=strides, padding=padding,
                         data_format=data_format, dilation_rate=dilation_rate, **kwargs)


# Keras's short names.
Convolution1D = Conv1D
Convolution2D = Conv2D
