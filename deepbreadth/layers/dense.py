"""Dense: the fully connected layer, activation(inputs @ kernel + bias)."""
from .. import functional as F
from ..functional.nn import dense
from .base import Layer
from .core import resolve_initializer, serialize_activation, serialize_initializer


class Dense(Layer):
    """activation(inputs @ kernel + bias), on the last axis of inputs of any rank >= 2.

    kernel has shape (input features, units), bias (units,), as in Keras.
    """
    replays_exactly = True  # its call is ops only: see deepbreadth/replay.py

    def __init__(self, units, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", **kwargs):
        super().__init__(**kwargs)
        if not isinstance(units, int) or isinstance(units, bool) or units < 1:
            raise ValueError(f"Dense: units must be a positive int, got {units!r}")
        self.units = units
        self.activation = F.get_activation(activation)
        self.use_bias = use_bias
        self.kernel_initializer = resolve_initializer(kernel_initializer)
        self.bias_initializer = resolve_initializer(bias_initializer)
        self.kernel = None
        self.bias = None

    def _check_rank(self, shape):
        if len(shape) < 2:
            raise ValueError(
                f"Dense layer '{self.name}' expects input of rank >= 2, (batch, ..., features), "
                f"got shape {tuple(shape)}; give a single sample a batch axis: x[None]"
            )

    def build(self, input_shape):
        self._check_rank(input_shape)
        features = input_shape[-1]
        if features is None:
            raise ValueError(
                f"Dense layer '{self.name}': the last axis of the input must be known, "
                f"got input shape {tuple(input_shape)}"
            )
        self.kernel = self.add_weight("kernel", (features, self.units), self.kernel_initializer)
        if self.use_bias:
            self.bias = self.add_weight("bias", (self.units,), self.bias_initializer)

    def call(self, inputs):
        self._check_rank(inputs.shape)
        features = self.kernel.shape[0]
        if inputs.shape[-1] != features:
            raise ValueError(
                f"Dense layer '{self.name}' was built for inputs with {features} features on "
                f"the last axis, got shape {tuple(inputs.shape)}; a layer's input size cannot "
                "change after its first call (make a new layer)"
            )
        if inputs.ndim == 2:
            return dense(inputs, self.kernel, self.bias, self.activation)
        # Higher-rank inputs go through as one (samples, features) matrix: one
        # matrix product, and a kernel gradient without a batch of outer products.
        rows = F.reshape(inputs, (-1, features))
        outputs = dense(rows, self.kernel, self.bias, self.activation)
        return F.reshape(outputs, inputs.shape[:-1] + (self.units,))

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units,
            "activation": serialize_activation(self.activation),
            "use_bias": self.use_bias,
            "kernel_initializer": serialize_initializer(self.kernel_initializer),
            "bias_initializer": serialize_initializer(self.bias_initializer),
        }
