"""Keras's namespace, for code written for `tf.keras`:

    import deepbreadth as tf
    model = tf.keras.models.Sequential([tf.keras.layers.Dense(10)])

Each submodule re-exports deepbreadth's own: `tf.keras.layers` is
deepbreadth.layers, `tf.keras.optimizers` deepbreadth.optimizers, and so on.
They are imported on first use, so `import deepbreadth` stays fast.
"""
import importlib

_SUBMODULES = ("models", "layers", "optimizers", "losses", "metrics", "callbacks", "datasets",
               "initializers", "activations", "utils", "backend", "nn", "random")

# tf.keras.Sequential, tf.keras.Model, tf.keras.Input: the names Keras puts at the top.
_NAMES = {"Sequential": "models", "Model": "models", "Input": "layers", "InputLayer": "layers"}

__all__ = [*_SUBMODULES, *_NAMES]


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    if name in _NAMES:
        return getattr(importlib.import_module(f"{__name__}.{_NAMES[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
