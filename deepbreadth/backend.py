"""Which array module and which kernel set to use, the default dtype, the RNG.

The rest of the package never asks "am I on the GPU?": it asks this module for
the kernel set that matches an array (`kernels_for`) or for a kernel by name
(`kernel`). NumPy arrays go to the NumPy reference kernels or to the Numba
kernels (the user's choice), CuPy arrays always to the CUDA kernels.

Importing this module imports neither Numba nor CuPy: both are loaded on the
first kernel call that needs them, so ``import deepbreadth`` stays fast.
"""
import contextlib
import importlib
import importlib.util
import os
import random

import numpy as np

BACKENDS = ("numpy", "numba", "cupy")
_KERNEL_SET_OF_BACKEND = {"numpy": "reference", "numba": "cpu", "cupy": "cuda"}


def _default_backend():
    requested = os.environ.get("DEEPBREADTH_BACKEND")
    if requested:
        if requested not in BACKENDS:
            raise ValueError(
                f"DEEPBREADTH_BACKEND={requested!r} is not a backend; use one of {BACKENDS}"
            )
        return requested
    # Numba is the default on the CPU where it is installed; finding the module
    # spec does not import it.
    return "numba" if importlib.util.find_spec("numba") is not None else "numpy"


_state = {"backend": _default_backend(), "floatx": np.dtype("float32")}
_loaded_kernel_sets = {}


# ----------------------------------------------------------------------------
# Backend choice
# ----------------------------------------------------------------------------
def set_backend(name):
    """Choose the kernel set: 'numpy' (reference), 'numba' (CPU) or 'cupy' (GPU).

    With 'cupy', new tensors and layer weights are created on the GPU.
    """
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; choose one of {BACKENDS}")
    if name == "numba" and importlib.util.find_spec("numba") is None:
        raise ImportError("backend 'numba' needs Numba: pip install numba")
    if name == "cupy":
        _import_cupy()
    _state["backend"] = name


def get_backend():
    """The name of the current backend: 'numpy', 'numba' or 'cupy'."""
    return _state["backend"]


def default_device():
    return "cuda" if _state["backend"] == "cupy" else "cpu"


def kernel_threads():
    """A context manager for a training loop of your own: the thread setup
    that `fit`, `evaluate` and `predict` use.

    With the Numba backend, BLAS is held to one thread inside the block and
    the kernels share the batch out over Numba's threads themselves
    (`numba.set_num_threads` sets how many). A step is a chain of small
    matrix products and Numba loops; BLAS's own threads meet at the end of
    every product and spin between them, taking the cores from the loop that
    comes next (kernels/cpu/threads.py says more). The one exception is a
    Dense layer's large product, which may take BLAS's threads for its own
    call (`threads.matmul_on_every_lane`). With the other backends it does
    nothing.

        with deepbreadth.kernel_threads():
            for x, y in loader:
                ...
    """
    if _state["backend"] != "numba":
        return contextlib.nullcontext()
    # The cpu set is imported once (kernel_set keeps it); an import statement
    # here would look it up again at every training step.
    return kernel_set("cpu").threads.blas_on_one_thread()


# ----------------------------------------------------------------------------
# Default float dtype (Keras calls it floatx)
# ----------------------------------------------------------------------------
def set_floatx(dtype):
    """Set the default float dtype for new tensors and weights ('float32' or 'float64')."""
    dtype = np.dtype(dtype)
    if dtype not in (np.float16, np.float32, np.float64):
        raise ValueError(f"floatx must be float16, float32 or float64, got {dtype}")
    _state["floatx"] = dtype


def floatx():
    """The default float dtype (float32 unless set_floatx changed it)."""
    return _state["floatx"]


# ----------------------------------------------------------------------------
# Arrays and devices
# ----------------------------------------------------------------------------
def _import_cupy():
    try:
        import cupy
    except ImportError as error:
        raise ImportError(
            "the 'cupy' backend needs CuPy and a CUDA GPU: pip install -e \".[cuda]\""
        ) from error
    return cupy


def is_gpu_array(array):
    array_type = type(array)
    # NumPy arrays first: this runs some thirty times in every training step.
    return array_type is not np.ndarray and array_type.__module__.startswith("cupy")


def array_module(array):
    """numpy for NumPy arrays, cupy for CuPy arrays."""
    if is_gpu_array(array):
        return _import_cupy()
    return np


def device_of(array):
    return "cuda" if is_gpu_array(array) else "cpu"


def to_device(array, device):
    """Copy an array to 'cpu' (NumPy) or 'cuda' (CuPy); no copy if already there."""
    if device == "cpu":
        return array.get() if is_gpu_array(array) else array
    if device in ("cuda", "gpu"):
        return _import_cupy().asarray(array)
    raise ValueError(f"unknown device {device!r}; use 'cpu' or 'cuda'")


def scatter_add(target, index, values):
    """target[index] += values, adding repeated indices (np.add.at on the CPU)."""
    if is_gpu_array(target):
        cupy = _import_cupy()
        if hasattr(cupy.add, "at"):  # CuPy 13 and later; cupyx.scatter_add is deprecated there
            cupy.add.at(target, index, values)
        else:
            import cupyx

            cupyx.scatter_add(target, index, values)
    else:
        np.add.at(target, index, values)


# ----------------------------------------------------------------------------
# Kernels
# ----------------------------------------------------------------------------
def kernel_set(name):
    """The kernel module 'reference', 'cpu' or 'cuda', imported on first use."""
    module = _loaded_kernel_sets.get(name)
    if module is None:
        module = importlib.import_module(f"deepbreadth.kernels.{name}")
        _loaded_kernel_sets[name] = module
    return module


def kernels_for(array):
    """The kernel set that works on `array` under the current backend choice."""
    if is_gpu_array(array):
        return kernel_set("cuda")
    backend = _state["backend"]
    return kernel_set("reference" if backend in ("numpy", "cupy") else "cpu")


def kernel(name, array):
    """The kernel called `name` from the set that fits `array`."""
    return getattr(kernels_for(array), name)


# ----------------------------------------------------------------------------
# Random numbers
# ----------------------------------------------------------------------------
_rng = {"generator": np.random.default_rng()}


def set_seed(seed):
    """Seed every random source deepbreadth uses (weights, dropout, shuffling)."""
    _rng["generator"] = np.random.default_rng(seed)
    random.seed(seed)
    np.random.seed(seed % (2**32))
    if _state["backend"] == "cupy":
        _import_cupy().random.seed(seed)


def rng():
    """The NumPy random Generator behind initializers, dropout and shuffling."""
    return _rng["generator"]
