"""BatchNormalization: normalize each channel to zero mean and unit variance.

Training (training=True) normalizes with the statistics of the batch at hand
and keeps exponential moving averages of them; inference (training=False, the
default) normalizes with those moving averages, so a prediction does not
depend on the other samples of its batch.

The layer is written with generic differentiable ops (mean, var, sqrt), not a
fused kernel: the formula stays readable, and it can be differentiated twice.
"""
from .. import functional as F
from .base import Layer
from .core import resolve_initializer, serialize_initializer


class BatchNormalization(Layer):
    """gamma * (x - mean) / sqrt(variance + epsilon) + beta, per channel on `axis`.

    Weights, in Keras's order: gamma (if scale), beta (if center), then the
    non-trainable moving_mean and moving_variance.
    """

    def __init__(self, axis=-1, momentum=0.99, epsilon=1e-3, center=True, scale=True,
                 beta_initializer="zeros", gamma_initializer="ones",
                 moving_mean_initializer="zeros", moving_variance_initializer="ones", **kwargs):
        super().__init__(**kwargs)
        if not isinstance(axis, int):
            raise ValueError(f"BatchNormalization: axis must be an int, got {axis!r}")
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"BatchNormalization: momentum must be in [0, 1], got {momentum!r}")
        if epsilon <= 0:
            raise ValueError(f"BatchNormalization: epsilon must be positive, got {epsilon!r}")
        self.axis = axis
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)
        self.center = center
        self.scale = scale
        self.beta_initializer = resolve_initializer(beta_initializer)
        self.gamma_initializer = resolve_initializer(gamma_initializer)
        self.moving_mean_initializer = resolve_initializer(moving_mean_initializer)
        self.moving_variance_initializer = resolve_initializer(moving_variance_initializer)
        self.gamma = self.beta = self.moving_mean = self.moving_variance = None

    def _channel_axis(self, shape):
        """`axis` as a non-negative index into `shape`; raises if out of range."""
        if not -len(shape) <= self.axis < len(shape):
            raise ValueError(
                f"BatchNormalization layer '{self.name}': axis {self.axis} is out of range "
                f"for input of shape {tuple(shape)}"
            )
        return self.axis % len(shape)

    def build(self, input_shape):
        channels = input_shape[self._channel_axis(input_shape)]
        if channels is None:
            raise ValueError(
                f"BatchNormalization layer '{self.name}': the size of axis {self.axis} must "
                f"be known, got input shape {tuple(input_shape)}"
            )
        shape = (channels,)
        if self.scale:
            self.gamma = self.add_weight("gamma", shape, self.gamma_initializer)
        if self.center:
            self.beta = self.add_weight("beta", shape, self.beta_initializer)
        self.moving_mean = self.add_weight("moving_mean", shape, self.moving_mean_initializer,
                                           trainable=False)
        self.moving_variance = self.add_weight("moving_variance", shape,
                                               self.moving_variance_initializer, trainable=False)

    def _check_input(self, shape):
        axis = self._channel_axis(shape)
        channels = self.moving_mean.shape[0]
        if shape[axis] != channels:
            raise ValueError(
                f"BatchNormalization layer '{self.name}' was built for {channels} channels on "
                f"axis {self.axis}, got input of shape {tuple(shape)}; a layer's channel count "
                "cannot change after its first call"
            )
        return axis

    def call(self, inputs, training=None):
        axis = self._check_input(inputs.shape)
        # Every axis but the channel axis is averaged over; the per-channel
        # weights are reshaped to broadcast along those axes.
        reduced_axes = tuple(i for i in range(inputs.ndim) if i != axis)
        channel_shape = tuple(n if i == axis else 1 for i, n in enumerate(inputs.shape))
        # A frozen layer (trainable=False) runs in inference mode, as in Keras,
        # so fine-tuning a model does not disturb its statistics.
        if training and self.trainable:
            mean = F.mean(inputs, axis=reduced_axes, keepdims=True)
            variance = F.var(inputs, axis=reduced_axes, keepdims=True)
            self._update_moving_statistics(mean, variance)
        else:
            mean = F.reshape(self.moving_mean, channel_shape)
            variance = F.reshape(self.moving_variance, channel_shape)
        outputs = (inputs - mean) / F.sqrt(variance + self.epsilon)
        if self.scale:
            outputs = outputs * F.reshape(self.gamma, channel_shape)
        if self.center:
            outputs = outputs + F.reshape(self.beta, channel_shape)
        return outputs

    def _update_moving_statistics(self, batch_mean, batch_variance):
        """moving = momentum * moving + (1 - momentum) * batch, in place.

        Like Keras, the batch variance is the biased one (divided by the number
        of values, not that minus one); PyTorch's running_var uses the unbiased one.
        """
        # On the raw arrays: the moving averages are bookkeeping, not part of the graph.
        for moving, batch in ((self.moving_mean, batch_mean),
                              (self.moving_variance, batch_variance)):
            batch_values = batch.data.reshape(moving.shape)
            moving.data[...] = self.momentum * moving.data + (1 - self.momentum) * batch_values

    def get_config(self):
        return {
            **super().get_config(),
            "axis": self.axis,
            "momentum": self.momentum,
            "epsilon": self.epsilon,
            "center": self.center,
            "scale": self.scale,
            "beta_initializer": serialize_initializer(self.beta_initializer),
            "gamma_initializer": serialize_initializer(self.gamma_initializer),
            "moving_mean_initializer": serialize_initializer(self.moving_mean_initializer),
            "moving_variance_initializer": serialize_initializer(self.moving_variance_initializer),
        }
