"""deepbreadth: a small deep-learning engine you can read end to end.

    import deepbreadth as db
    x = db.tensor([1.0, 2.0, 3.0], requires_grad=True)
    (x * x).sum().backward()
    x.grad        # tensor([2., 4., 6.])

Layers of the package, each importing only those above it: backend,
autograd, functional, layers, optimizers/losses/metrics, models, keras.
See docs/ARCHITECTURE.md.
"""
from . import functional
from .autograd import (BackendError, Function, ShapeError, Tensor, backward, enable_grad, grad,
                       is_grad_enabled, no_grad)
from .backend import floatx, get_backend, kernel_threads, set_backend, set_floatx, set_seed
from .creation import arange, full, ones, ones_like, rand, randn, tensor, zeros, zeros_like
from .functional import (abs, argmax, argmin, clip, concatenate, elu, exp, expand_dims, flatten,
                         gelu, leaky_relu, log, log_softmax, logsumexp, matmul, max, maximum,
                         mean, min, minimum, pad, relu, reshape, sigmoid, softmax, softplus,
                         split, sqrt, squeeze, stack, sum, tanh, transpose, var, where)
from .gradcheck import GradcheckError, gradcheck, gradgradcheck

__version__ = "0.1.0"

# The higher layers (layers, models, keras, ...) are imported on first use
# (PEP 562), so `import deepbreadth` stays fast: `deepbreadth.keras` works
# without an explicit `import deepbreadth.keras`.
_LAZY_SUBMODULES = ("keras", "layers", "models", "optimizers", "losses", "metrics", "callbacks",
                    "datasets", "initializers", "viz", "tracer", "profiler", "monitor")
# Functions offered at the top, from lazy submodules: deepbreadth.trace(), deepbreadth.profile().
_LAZY_FUNCTIONS = {"trace": "tracer", "profile": "profiler"}
# TensorFlow keeps tf.nn and tf.random at the top, beside tf.keras.
_TENSORFLOW_NAMESPACES = {"nn": "keras.nn", "random": "keras.random"}


def __getattr__(name):
    if name in _LAZY_SUBMODULES:
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    if name in _LAZY_FUNCTIONS:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{_LAZY_FUNCTIONS[name]}"), name)
    if name in _TENSORFLOW_NAMESPACES:
        import importlib

        return importlib.import_module(f"{__name__}.{_TENSORFLOW_NAMESPACES[name]}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
