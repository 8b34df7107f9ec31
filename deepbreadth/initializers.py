"""Weight initializers with Keras's names and formulas.

Each initializer is a callable `init(shape, dtype) -> NumPy array`, drawing
from the generator that `deepbreadth.set_seed` seeds. Layers move the array
to the device afterwards.

Why the scaling: a layer's output variance is (fan_in * weight variance)
times its input variance. Glorot picks the weight variance 2 / (fan_in +
fan_out) so signals keep their size both forward and backward; He picks
2 / fan_in for ReLU, which zeroes half of its inputs.
"""
import math

import numpy as np

from . import backend


def compute_fans(shape):
    """(fan_in, fan_out) as Keras computes them; for conv kernels (kh, kw, in, out)
    each input and output channel counts once per kernel position."""
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive_field = math.prod(shape[:-2]) if len(shape) > 2 else 1
    return shape[-2] * receptive_field, shape[-1] * receptive_field


class Initializer:
    def __call__(self, shape, dtype=None):
        dtype = np.dtype(dtype or backend.floatx())
        # C order always: the fused optimizer kernels update weights in place
        # through flat views, which a transposed (Fortran-order) array lacks.
        return np.ascontiguousarray(self.sample(tuple(shape)), dtype=dtype)

    def sample(self, shape):
        raise NotImplementedError

    def get_config(self):
        return {}


class Zeros(Initializer):
    def sample(self, shape):
        return np.zeros(shape)


class Ones(Initializer):
    def sample(self, shape):
        return np.ones(shape)


class Constant(Initializer):
    def __init__(self, value=0.0):
        self.value = value

    def sample(self, shape):
        return np.full(shape, self.value)

    def get_config(self):
        return {"value": self.value}


class RandomNormal(Initializer):
    def __init__(self, mean=0.0, stddev=0.05):
        self.mean, self.stddev = mean, stddev

    def sample(self, shape):
        return backend.rng().normal(self.mean, self.stddev, shape)

    def get_config(self):
        return {"mean": self.mean, "stddev": self.stddev}


class RandomUniform(Initializer):
    def __init__(self, minval=-0.05, maxval=0.05):
        self.minval, self.maxval = minval, maxval

    def sample(self, shape):
        return backend.rng().uniform(self.minval, self.maxval, shape)

    def get_config(self):
        return {"minval": self.minval, "maxval": self.maxval}


def _truncated_normal(shape, stddev):
    """Normal samples redrawn until within two standard deviations (Keras's rule)."""
    values = backend.rng().normal(0.0, 1.0, shape)
    outside = np.abs(values) > 2
    while outside.any():
        values[outside] = backend.rng().normal(0.0, 1.0, int(outside.sum()))
        outside = np.abs(values) > 2
    return values * stddev


class TruncatedNormal(Initializer):
    def __init__(self, mean=0.0, stddev=0.05):
        self.mean, self.stddev = mean, stddev

    def sample(self, shape):
        return self.mean + _truncated_normal(shape, self.stddev)

    def get_config(self):
        return {"mean": self.mean, "stddev": self.stddev}


class VarianceScaling(Initializer):
    """Variance `scale / n`, n the fan_in, fan_out or their average (Keras's family)."""

    def __init__(self, scale=1.0, mode="fan_in", distribution="truncated_normal"):
        self.scale, self.mode, self.distribution = scale, mode, distribution

    def sample(self, shape):
        fan_in, fan_out = compute_fans(shape)
        n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[self.mode]
        variance = self.scale / max(1.0, n)
        if self.distribution == "uniform":
            limit = math.sqrt(3 * variance)  # a uniform on [-l, l] has variance l^2 / 3
            return backend.rng().uniform(-limit, limit, shape)
        if self.distribution == "untruncated_normal":
            return backend.rng().normal(0.0, math.sqrt(variance), shape)
        # 0.8796... is the standard deviation of a unit normal truncated at +-2.
        return _truncated_normal(shape, math.sqrt(variance) / 0.87962566103423978)

    def get_config(self):
        return {"scale": self.scale, "mode": self.mode, "distribution": self.distribution}


class GlorotUniform(VarianceScaling):
    def __init__(self):
        super().__init__(1.0, "fan_avg", "uniform")


class GlorotNormal(VarianceScaling):
    def __init__(self):
        super().__init__(1.0, "fan_avg", "truncated_normal")


class HeNormal(VarianceScaling):
    def __init__(self):
        super().__init__(2.0, "fan_in", "truncated_normal")


class HeUniform(VarianceScaling):
    def __init__(self):
        super().__init__(2.0, "fan_in", "uniform")


class LecunNormal(VarianceScaling):
    def __init__(self):
        super().__init__(1.0, "fan_in", "truncated_normal")


class LecunUniform(VarianceScaling):
    def __init__(self):
        super().__init__(1.0, "fan_in", "uniform")


class Orthogonal(Initializer):
    """A random orthogonal matrix (rows or columns orthonormal), from a QR factorisation.

    Recurrent kernels start orthogonal so that repeated multiplication by them
    over many time steps neither blows up nor shrinks the state.
    """

    def __init__(self, gain=1.0):
        self.gain = gain

    def sample(self, shape):
        rows = math.prod(shape[:-1]) if len(shape) > 1 else 1
        cols = shape[-1]
        normal = backend.rng().normal(0.0, 1.0, (max(rows, cols), min(rows, cols)))
        q, r = np.linalg.qr(normal)
        q *= np.sign(np.diag(r))  # makes the result uniformly distributed
        if rows < cols:
            q = q.T
        return self.gain * q.reshape(shape)

    def get_config(self):
        return {"gain": self.gain}


_BY_NAME = {
    "zeros": Zeros, "ones": Ones, "constant": Constant,
    "random_normal": RandomNormal, "random_uniform": RandomUniform,
    "normal": RandomNormal, "uniform": RandomUniform,
    "truncated_normal": TruncatedNormal, "variance_scaling": VarianceScaling,
    "glorot_uniform": GlorotUniform, "glorot_normal": GlorotNormal,
    "he_normal": HeNormal, "he_uniform": HeUniform,
    "lecun_normal": LecunNormal, "lecun_uniform": LecunUniform, "orthogonal": Orthogonal,
}


def get(identifier):
    """An initializer from a Keras name ('glorot_uniform'), an instance or a callable."""
    if isinstance(identifier, str):
        key = identifier.lower()
        if key not in _BY_NAME:
            raise ValueError(f"unknown initializer {identifier!r}; use one of {sorted(_BY_NAME)}")
        return _BY_NAME[key]()
    if callable(identifier):
        return identifier
    raise ValueError(f"an initializer must be a name or a callable, got {identifier!r}")


def serialize(initializer):
    """A JSON-able description: the Keras name and the arguments."""
    for name, cls in _BY_NAME.items():
        if type(initializer) is cls:
            return {"class_name": name, "config": initializer.get_config()}
    raise ValueError(f"cannot serialize initializer {initializer!r}")


def deserialize(config):
    if isinstance(config, str):
        return get(config)
    cls = _BY_NAME[config["class_name"]]
    if issubclass(cls, VarianceScaling) and cls is not VarianceScaling:
        return cls()  # the named presets (glorot_uniform, ...) take no arguments
    return cls(**config.get("config", {}))
