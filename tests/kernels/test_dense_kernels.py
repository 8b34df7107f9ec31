"""Dense kernels (a layer's product, bias and activation in one call): candidate vs reference."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import assert_close

DTYPES = [np.float32, np.float64]
ACTIVATIONS = ["linear", "relu", "tanh", "sigmoid", "hard_sigmoid"]

stateless_fixtures = settings(
    suppress_health_check=[*settings.default.suppress_health_check,
                           HealthCheck.function_scoped_fixture]
)


@st.composite
def dense_cases(draw):
    """x (rows, features), w (features, units), bias (units,) and a gradient for y."""
    rows, features, units = (draw(st.integers(1, 7)) for _ in range(3))
    dtype = draw(st.sampled_from(DTYPES))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))

    def normal(*shape):
        return rng.standard_normal(shape).astype(dtype)

    return normal(rows, features), normal(features, units), normal(units), normal(rows, units), dtype


@stateless_fixtures
@given(dense_cases(), st.sampled_from(ACTIVATIONS), st.booleans(), st.booleans())
def test_dense_matches_reference(candidate, reference, case, activation, need_x, need_w):
    x, w, bias, grad_y, dtype = case
    on = candidate.asarray
    y = candidate.dense_bias_activation_forward(on(x), on(w), on(bias), activation)
    expected_y = reference.dense_bias_activation_forward(x, w, bias, activation)
    assert candidate.to_numpy(y).dtype == dtype
    assert_close(candidate.to_numpy(y), expected_y, dtype, "dense y")

    found = candidate.dense_bias_activation_backward(
        on(grad_y), y, on(x), on(w), activation, need_x, need_w)
    expected = reference.dense_bias_activation_backward(
        grad_y, expected_y, x, w, activation, need_x, need_w)
    for name, got, want in zip(("grad_x", "grad_w", "grad_bias"), found, expected):
        if want is None:
            assert got is None, f"{name} was not asked for"
        else:
            assert_close(candidate.to_numpy(got), want, dtype, f"dense {name}")


def test_the_reference_is_the_layer_formula(reference):
    rng = np.random.default_rng(3)
    x, w, bias = rng.standard_normal((5, 4)), rng.standard_normal((4, 3)), rng.standard_normal(3)
    y = reference.dense_bias_activation_forward(x, w, bias, "relu")
    np.testing.assert_allclose(y, np.maximum(x @ w + bias, 0.0), rtol=1e-12)
    grad_y = rng.standard_normal((5, 3))
    grad_x, grad_w, grad_bias = reference.dense_bias_activation_backward(
        grad_y, y, x, w, "relu", True, True)
    g = grad_y * (x @ w + bias > 0)
    np.testing.assert_allclose(grad_x, g @ w.T, rtol=1e-12)
    np.testing.assert_allclose(grad_w, x.T @ g, rtol=1e-12)
    np.testing.assert_allclose(grad_bias, g.sum(axis=0), rtol=1e-12)


def test_mismatched_shapes_name_the_shapes(candidate):
    on = candidate.asarray
    x, w = on(np.ones((3, 4), np.float32)), on(np.ones((5, 2), np.float32))
    with pytest.raises(ValueError, match=r"\(3, 4\).*\(5, 2\)|4.*5"):
        candidate.dense_bias_activation_forward(x, w, on(np.ones(2, np.float32)), "relu")


def test_an_unknown_activation_is_refused(candidate):
    on = candidate.asarray
    x, w, bias = (on(np.ones(shape, np.float32)) for shape in ((2, 3), (3, 4), (4,)))
    with pytest.raises(ValueError, match="softplus"):
        candidate.dense_bias_activation_forward(x, w, bias, "softplus")
