"""Shared test configuration.

`pytest --backend cupy` (or DEEPBREADTH_TEST_BACKEND=cupy) runs the backend-
parametrized tests on the GPU; without a GPU those tests are skipped with a reason.
"""
import os

from hypothesis import HealthCheck, settings

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


def pytest_addoption(parser):
    parser.addoption(
        "--backend",
        action="store",
        default=os.environ.get("DEEPBREADTH_TEST_BACKEND", "numba"),
        help="kernel backend the backend-parametrized tests run on: numpy, numba or cupy",
    )
