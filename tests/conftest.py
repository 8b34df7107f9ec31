"""Shared test configuration: hypothesis settings and the backends to test.

Tests that take the `backend_name` fixture run once per chosen backend, with
that backend set (and the previous one restored afterwards):

    pytest                          numpy and numba (the default)
    pytest --backend numba          one backend, or a list: --backend numpy,numba
    pytest --backend cupy           the GPU: new tensors and layer weights on CuPy arrays
    pytest --backend fake-cupy      the GPU code paths on the CPU (tests/fake_cupy.py)

DEEPBREADTH_TEST_BACKEND=cupy does the same as --backend cupy. Where CuPy or a
GPU is missing, the cupy tests are skipped with the reason, never passed.

Tests of ops whose code is the same for every CPU backend take the `device`
fixture instead: they run once per chosen device, 'cpu' under the first CPU
backend chosen (numpy by default) and 'cuda' under cupy or fake-cupy.
The `gpu` fixture is for tests of the GPU backend itself: whatever --backend
says, they run on a real GPU (or are skipped, with the reason) and on the fake.
Tests with none of these fixtures run as they always do, on the CPU.
"""
import contextlib
import importlib.util
import os

import pytest
from hypothesis import HealthCheck, settings

import deepbreadth as db
from gpu_support import gpu_unavailable_reason

# Numba compiles a kernel on its first call, so the first example of a test can
# take seconds: no per-example deadline. Keep the example count modest so the
# whole suite stays within CI's time on two cores.
settings.register_profile(
    "deepbreadth",
    deadline=None,
    max_examples=int(os.environ.get("DEEPBREADTH_HYPOTHESIS_EXAMPLES", "25")),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                           HealthCheck.function_scoped_fixture],
)
settings.load_profile("deepbreadth")

TEST_BACKENDS = ("numpy", "numba", "cupy", "fake-cupy")
DEVICE_OF_BACKEND = {"numpy": "cpu", "numba": "cpu", "cupy": "cuda", "fake-cupy": "cuda"}
DEFAULT_TEST_BACKENDS = "numpy,numba"


def pytest_addoption(parser):
    parser.addoption(
        "--backend",
        action="store",
        default=os.environ.get("DEEPBREADTH_TEST_BACKEND", DEFAULT_TEST_BACKENDS),
        help="backend(s) the backend_name tests run on, comma-separated: numpy, numba, "
             f"cupy, fake-cupy (default {DEFAULT_TEST_BACKENDS})",
    )


def chosen_backends(config):
    names = [name.strip() for name in config.getoption("backend").split(",") if name.strip()]
    unknown = [name for name in names if name not in TEST_BACKENDS]
    if unknown or not names:
        raise pytest.UsageError(
            f"--backend {config.getoption('backend')!r}: choose from {', '.join(TEST_BACKENDS)}")
    return names


def device_backends(config):
    """One backend per chosen device: the first CPU backend, and cupy or fake-cupy."""
    names = []
    for name in chosen_backends(config):
        if DEVICE_OF_BACKEND[name] not in (DEVICE_OF_BACKEND[n] for n in names):
            names.append(name)
    return names


def pytest_generate_tests(metafunc):
    if "backend_name" in metafunc.fixturenames:
        metafunc.parametrize("backend_name", chosen_backends(metafunc.config), indirect=True)
    if "device" in metafunc.fixturenames:
        names = device_backends(metafunc.config)
        metafunc.parametrize("device", names, indirect=True,
                             ids=[DEVICE_OF_BACKEND[n] + ("-fake" if "fake" in n else "")
                                  for n in names])


@contextlib.contextmanager
def backend_in_use(name):
    """Set the test backend `name` for the block; skips the test if it cannot run here."""
    if name == "cupy":
        reason = gpu_unavailable_reason()
        if reason:
            pytest.skip(f"cupy backend not tested: {reason}")
    if name == "numba" and importlib.util.find_spec("numba") is None:
        pytest.skip("numba backend not tested: Numba is not installed")
    previous = db.get_backend()
    with contextlib.ExitStack() as stack:
        if name == "fake-cupy":
            import fake_cupy

            stack.enter_context(fake_cupy.installed())
            name = "cupy"
        db.set_backend(name)
        try:
            yield name
        finally:
            db.set_backend(previous)


@pytest.fixture
def backend_name(request):
    """The backend this test runs on ('numpy', 'numba' or 'cupy'), set for its duration."""
    with backend_in_use(request.param) as name:
        yield name


@pytest.fixture
def device(request):
    """The device this test runs on ('cpu' or 'cuda'), its backend set for its duration."""
    with backend_in_use(request.param) as name:
        yield "cuda" if name == "cupy" else "cpu"


@pytest.fixture(params=["cuda", "fake"])
def gpu(request):
    """The 'cupy' backend for tests of the GPU itself (tests/test_gpu_backend.py),
    whatever --backend says: on a real GPU ('cuda', skipped with the reason where
    there is none) and on the fake CuPy of tests/fake_cupy.py ('fake')."""
    with backend_in_use("cupy" if request.param == "cuda" else "fake-cupy"):
        db.set_seed(0)
        yield request.param
