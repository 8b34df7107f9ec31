"""Fixtures for comparing a kernel set against the NumPy reference.

`candidate` is the kernel set under test: the Numba set always, the CUDA set when
CuPy and a GPU are present (otherwise its tests are skipped with the reason).
Kernels under test take and return arrays of their own device; `candidate.asarray`
moves inputs there and `candidate.to_numpy` brings results back.
"""
import contextlib

import numpy as np
import pytest
from gpu_support import gpu_unavailable_reason


class KernelSet:
    def __init__(self, name, module, xp):
        self.name = name
        self.module = module
        self.xp = xp

    def __getattr__(self, kernel_name):
        return getattr(self.module, kernel_name)

    def asarray(self, array):
        return self.xp.asarray(array)

    def to_numpy(self, value):
        if isinstance(value, tuple):
            return tuple(self.to_numpy(v) for v in value)
        if hasattr(value, "get"):
            return value.get()
        return np.asarray(value)


@pytest.fixture(params=["cpu", "cuda"])
def candidate(request):
    if request.param == "cpu":
        from deepbreadth.kernels import cpu

        return KernelSet("cpu", cpu, np)
    reason = gpu_unavailable_reason()
    if reason:
        pytest.skip(f"CUDA kernels not tested: {reason}")
    import cupy
    from deepbreadth.kernels import cuda

    return KernelSet("cuda", cuda, cupy)


@pytest.fixture
def reference():
    from deepbreadth.kernels import reference

    return reference


def assert_close(actual, expected, dtype, what=""):
    """float64 within 1e-10, float32 within 1e-5, relative to the largest magnitude."""
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    rtol = 1e-10 if np.dtype(dtype) == np.float64 else 1e-5
    scale = max(1.0, float(np.max(np.abs(expected))) if expected.size else 1.0)
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * scale, err_msg=what)


@contextlib.contextmanager
def lanes(count):
    """Numba's thread count (the CPU kernels' lanes) set to `count`, at most what
    Numba started with, inside the block; the previous count after it."""
    import numba

    previous = numba.get_num_threads()
    numba.set_num_threads(min(count, numba.config.NUMBA_NUM_THREADS))
    try:
        yield
    finally:
        numba.set_num_threads(previous)
