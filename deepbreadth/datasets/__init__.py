"""Data sets and mini-batching, Keras style.

    from deepbreadth.datasets import mnist, DataLoader
    (x_train, y_train), (x_test, y_test) = mnist.load_data()

Submodules: ``mnist`` and ``shakespeare`` (shipped with the package),
``fashion_mnist`` (downloaded on request), ``idx`` (the IDX file format).

The names here are resolved on first use (PEP 562 module ``__getattr__``), so
``import deepbreadth.datasets`` imports no submodule, not even NumPy, and loads
no data.  This package uses only NumPy and the standard library.
"""
import importlib

_SUBMODULES = ("idx", "mnist", "fashion_mnist", "shakespeare", "download", "loader")

# Public name -> the submodule that defines it.
_NAMES = {
    "DataLoader": "loader",
    "ArrayDataset": "loader",
    "load_idx_dataset": "download",
    "read_idx": "idx",
    "write_idx": "idx",
    "IDXFormatError": "idx",
}

__all__ = ["idx", "mnist", "fashion_mnist", "shakespeare", *_NAMES]


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    if name in _NAMES:
        module = importlib.import_module(f"{__name__}.{_NAMES[name]}")
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_SUBMODULES) | set(_NAMES))
