"""Dropout, bias + activation and embedding kernels: candidate vs reference and semantics."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import KernelSet, assert_close

DTYPES = [np.float32, np.float64]
ACTIVATIONS = ["linear", "relu", "tanh", "sigmoid", "hard_sigmoid"]

# The kernel-set fixtures hold no state, so one instance may serve every example.
stateless_fixtures = settings(
    suppress_health_check=[*settings.default.suppress_health_check, HealthCheck.function_scoped_fixture]
)


@pytest.fixture
def reference_set(reference):
    """The reference kernels behind the same interface as `candidate`."""
    return KernelSet("reference", reference, np)


@st.composite
def arrays(draw, max_rank=3):
    """A small random array of any rank >= 1, its dtype and a generator for more data."""
    shape = tuple(draw(st.lists(st.integers(1, 4), min_size=1, max_size=max_rank)))
    dtype = draw(st.sampled_from(DTYPES))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    return (2 * rng.standard_normal(shape)).astype(dtype), dtype, rng


# --- dropout ---------------------------------------------------------------


@stateless_fixtures
@given(arrays(), st.sampled_from([0.0, 0.25, 0.5, 0.9]), st.integers(0, 2**64 - 1))
def test_dropout_matches_reference(candidate, reference, case, rate, seed):
    x, dtype, rng = case
    y, mask = candidate.to_numpy(candidate.dropout_forward(candidate.asarray(x), seed, rate))
    expected_y, expected_mask = reference.dropout_forward(x, seed, rate)
    assert y.dtype == dtype and mask.dtype == np.bool_
    np.testing.assert_array_equal(mask, expected_mask)
    assert_close(y, expected_y, dtype, "dropout y")

    grad_y = rng.standard_normal(x.shape).astype(dtype)
    grad_x = candidate.to_numpy(
        candidate.dropout_backward(candidate.asarray(grad_y), candidate.asarray(mask), rate)
    )
    assert grad_x.dtype == dtype
    assert_close(grad_x, reference.dropout_backward(grad_y, mask, rate), dtype, "dropout grad_x")


def test_dropout_bits_are_splitmix64(reference):
    # splitmix64 seeded with 0 starts with 0xE220A8397B1DCDAF, 0x6E789E6AA1B965F4
    # (its published first outputs); the draws are their top 24 bits.
    bits = reference.elementwise.dropout_bits(0, 2)
    np.testing.assert_array_equal(bits, [0xE220A8397B1DCDAF >> 40, 0x6E789E6AA1B965F4 >> 40])


def check_dropout_semantics(kernels):
    x = np.arange(1.0, 4001.0).reshape(40, 100)
    y, mask = kernels.to_numpy(kernels.dropout_forward(kernels.asarray(x), 12345, 0.5))
    # Kept values doubled, dropped ones zero; about half kept.
    np.testing.assert_array_equal(y, np.where(mask, 2 * x, 0.0))
    assert 0.45 < mask.mean() < 0.55
    grad_x = kernels.to_numpy(
        kernels.dropout_backward(kernels.asarray(np.ones_like(x)), kernels.asarray(mask), 0.5)
    )
    np.testing.assert_array_equal(grad_x, np.where(mask, 2.0, 0.0))
    # The same seed draws the same mask; another seed another one.
    _, again = kernels.to_numpy(kernels.dropout_forward(kernels.asarray(x), 12345, 0.5))
    _, other = kernels.to_numpy(kernels.dropout_forward(kernels.asarray(x), 12346, 0.5))
    np.testing.assert_array_equal(again, mask)
    assert 0.4 < (other == mask).mean() < 0.6
    # rate 0 keeps everything unchanged; rate 0.9 keeps about a tenth.
    y, mask = kernels.to_numpy(kernels.dropout_forward(kernels.asarray(x), 7, 0.0))
    assert mask.all()
    np.testing.assert_array_equal(y, x)
    _, mask = kernels.to_numpy(kernels.dropout_forward(kernels.asarray(x), 7, 0.9))
    assert 0.08 < mask.mean() < 0.12


def test_candidate_dropout_semantics(candidate):
    check_dropout_semantics(candidate)


def test_reference_dropout_semantics(reference_set):
    check_dropout_semantics(reference_set)


def test_dropout_rejects_rate_one_and_bad_seeds(candidate, reference):
    x = np.ones(3)
    for kernels, move in ((candidate, candidate.asarray), (reference, np.asarray)):
        with pytest.raises(ValueError, match="rate"):
            kernels.dropout_forward(move(x), 1, 1.0)
        for seed in (-1, 2**64):
            with pytest.raises(ValueError, match="seed"):
                kernels.dropout_forward(move(x), seed, 0.5)


# --- bias + activation -----------------------------------------------------


@stateless_fixtures
@given(arrays(), st.sampled_from(ACTIVATIONS))
def test_bias_activation_matches_reference(candidate, reference, case, activation):
    x, dtype, rng = case
    bias = rng.standard_normal(x.shape[-1]).astype(dtype)
    y = candidate.to_numpy(
        candidate.bias_activation_forward(candidate.asarray(x), candidate.asarray(bias), activation)
    )
    expected_y = reference.bias_activation_forward(x, bias, activation)
    assert y.dtype == dtype
    assert_close(y, expected_y, dtype, f"{activation} forward")

    grad_y = rng.standard_normal(x.shape).astype(dtype)
    grad_x, grad_bias = candidate.to_numpy(
        candidate.bias_activation_backward(candidate.asarray(grad_y), candidate.asarray(expected_y), activation)
    )
    expected_grad_x, expected_grad_bias = reference.bias_activation_backward(grad_y, expected_y, activation)
    assert grad_x.dtype == dtype and grad_bias.dtype == dtype
    assert_close(grad_x, expected_grad_x, dtype, f"{activation} grad_x")
    assert_close(grad_bias, expected_grad_bias, dtype, f"{activation} grad_bias")


# Shapes the small random arrays above never reach: more than one tile of 32
# columns (70, 300), many rows per thread (8 * 26 * 26 rows of a convolution's
# output), a single column, and no rows at all.
LARGE_BIAS_SHAPES = [(3000, 70), (8, 26, 26, 32), (5, 300), (4097, 1), (0, 5), (2, 0, 3)]


@pytest.mark.parametrize("shape", LARGE_BIAS_SHAPES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_bias_activation_backward_matches_reference_on_large_shapes(candidate, reference,
                                                                    shape, dtype):
    rng = np.random.default_rng(3)
    grad_y = rng.standard_normal(shape).astype(dtype)
    y = reference.bias_activation_forward(rng.standard_normal(shape).astype(dtype),
                                          np.zeros(shape[-1], dtype), "relu")
    grad_x, grad_bias = candidate.to_numpy(
        candidate.bias_activation_backward(candidate.asarray(grad_y), candidate.asarray(y), "relu")
    )
    expected_grad_x, expected_grad_bias = reference.bias_activation_backward(grad_y, y, "relu")
    assert grad_x.dtype == dtype and grad_bias.dtype == dtype
    assert_close(grad_x, expected_grad_x, dtype, f"{shape} grad_x")
    assert_close(grad_bias, expected_grad_bias, dtype, f"{shape} grad_bias")


def check_activation_values(kernels):
    """Each activation at hand-picked points, from its textbook definition."""
    z = np.array([-1000.0, -3.0, -1.5, 0.0, 0.3, 3.0, 1000.0])
    expected = {
        "linear": z,
        "relu": np.maximum(z, 0.0),
        "tanh": np.tanh(z),
        "sigmoid": np.array([0.0, *(1 / (1 + np.exp(-z[1:-1]))), 1.0]),
        "hard_sigmoid": np.array([0.0, 0.0, 0.25, 0.5, 0.55, 1.0, 1.0]),
    }
    with np.errstate(over="raise", invalid="raise"):  # sigmoid(+-1000) must not overflow
        for activation, values in expected.items():
            y = kernels.to_numpy(
                kernels.bias_activation_forward(
                    kernels.asarray(z[:, None]), kernels.asarray(np.zeros(1)), activation
                )
            )
            assert_close(y[:, 0], values, np.float64, activation)


def test_candidate_activation_values(candidate):
    check_activation_values(candidate)


def test_reference_activation_values(reference_set):
    check_activation_values(reference_set)


def _finite_difference_gradients(reference, x, bias, grad_y, activation, step=1e-6):
    """Central differences of sum(grad_y * act(x + bias)) w.r.t. x and bias, in float64."""

    def objective(x_value, bias_value):
        return np.sum(grad_y * reference.bias_activation_forward(x_value, bias_value, activation))

    grad_x = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        plus, minus = x.copy(), x.copy()
        plus[index] += step
        minus[index] -= step
        grad_x[index] = (objective(plus, bias) - objective(minus, bias)) / (2 * step)
    grad_bias = np.zeros_like(bias)
    for index in np.ndindex(bias.shape):
        plus, minus = bias.copy(), bias.copy()
        plus[index] += step
        minus[index] -= step
        grad_bias[index] = (objective(x, plus) - objective(x, minus)) / (2 * step)
    return grad_x, grad_bias


def check_bias_activation_backward_against_finite_differences(kernels, reference, activation):
    rng = np.random.default_rng(2)
    # Pre-activations spread over [-4, 4] so that hard_sigmoid is seen on its
    # ramp and on both clipped sides; none lies within a step of a kink.
    x = rng.uniform(-4, 4, size=(2, 3, 4))
    bias = np.array([0.25, -0.5, 0.75, 0.1])
    z = x + bias
    assert np.min(np.abs(z)) > 1e-3 and np.min(np.abs(np.abs(z) - 3)) > 1e-3
    grad_y = rng.standard_normal(x.shape)
    y = reference.bias_activation_forward(x, bias, activation)
    grad_x, grad_bias = kernels.to_numpy(
        kernels.bias_activation_backward(kernels.asarray(grad_y), kernels.asarray(y), activation)
    )
    expected_grad_x, expected_grad_bias = _finite_difference_gradients(reference, x, bias, grad_y, activation)
    np.testing.assert_allclose(grad_x, expected_grad_x, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(grad_bias, expected_grad_bias, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_candidate_bias_activation_backward_matches_finite_differences(candidate, reference, activation):
    check_bias_activation_backward_against_finite_differences(candidate, reference, activation)


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_reference_bias_activation_backward_matches_finite_differences(reference_set, reference, activation):
    check_bias_activation_backward_against_finite_differences(reference_set, reference, activation)


def test_unknown_activation_names_the_allowed_ones(candidate, reference):
    x = np.ones((2, 3))
    bias = np.zeros(3)
    for kernels, move in ((candidate, candidate.asarray), (reference, np.asarray)):
        with pytest.raises(ValueError, match="'softmax'.*'hard_sigmoid'"):
            kernels.bias_activation_forward(move(x), move(bias), "softmax")
        with pytest.raises(ValueError, match="'elu'.*'relu'"):
            kernels.bias_activation_backward(move(x), move(x), "elu")


# --- embedding -------------------------------------------------------------


@st.composite
def embedding_cases(draw):
    vocab_size = draw(st.integers(1, 5))
    embedding_dim = draw(st.integers(1, 4))
    ids_shape = tuple(draw(st.lists(st.integers(1, 4), min_size=1, max_size=2)))
    dtype = draw(st.sampled_from(DTYPES))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    table = rng.standard_normal((vocab_size, embedding_dim)).astype(dtype)
    # Ids drawn from a small vocabulary, so repeats are common.
    ids = rng.integers(0, vocab_size, size=ids_shape)
    return table, ids, dtype, rng


@stateless_fixtures
@given(embedding_cases())
def test_embedding_matches_reference(candidate, reference, case):
    table, ids, dtype, rng = case
    out = candidate.to_numpy(candidate.embedding_forward(candidate.asarray(table), candidate.asarray(ids)))
    assert out.dtype == dtype and out.shape == ids.shape + (table.shape[1],)
    assert_close(out, reference.embedding_forward(table, ids), dtype, "embedding forward")

    grad_out = rng.standard_normal(out.shape).astype(dtype)
    grad_table = candidate.to_numpy(
        candidate.embedding_backward(candidate.asarray(grad_out), candidate.asarray(ids), table.shape[0])
    )
    assert grad_table.dtype == dtype
    assert_close(grad_table, reference.embedding_backward(grad_out, ids, table.shape[0]), dtype, "embedding grad")


def check_embedding_with_repeated_ids(kernels):
    table = np.arange(12.0).reshape(4, 3)
    ids = np.array([[1, 1], [3, 1]], dtype=np.int32)  # id 1 three times, ids 0 and 2 never
    out = kernels.to_numpy(kernels.embedding_forward(kernels.asarray(table), kernels.asarray(ids)))
    for position in np.ndindex(ids.shape):
        np.testing.assert_array_equal(out[position], table[ids[position]])

    grad_out = np.arange(1.0, 13.0).reshape(2, 2, 3)
    grad_table = kernels.to_numpy(kernels.embedding_backward(kernels.asarray(grad_out), kernels.asarray(ids), 4))
    expected = np.zeros((4, 3))
    expected[1] = grad_out[0, 0] + grad_out[0, 1] + grad_out[1, 1]
    expected[3] = grad_out[1, 0]
    np.testing.assert_array_equal(grad_table, expected)


def test_candidate_embedding_with_repeated_ids(candidate):
    check_embedding_with_repeated_ids(candidate)


def test_reference_embedding_with_repeated_ids(reference_set):
    check_embedding_with_repeated_ids(reference_set)
