"""Softmax cross-entropy kernels: candidate vs reference, stability, gradients."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import KernelSet, assert_close

DTYPES = [np.float32, np.float64]

# The kernel-set fixtures hold no state, so one instance may serve every example.
stateless_fixtures = settings(
    suppress_health_check=[*settings.default.suppress_health_check, HealthCheck.function_scoped_fixture]
)


@pytest.fixture
def reference_set(reference):
    """The reference kernels behind the same interface as `candidate`."""
    return KernelSet("reference", reference, np)


@st.composite
def logits_and_labels(draw):
    rows = draw(st.integers(1, 4))
    classes = draw(st.integers(1, 6))
    dtype = draw(st.sampled_from(DTYPES))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    logits = (3 * rng.standard_normal((rows, classes))).astype(dtype)
    labels = rng.integers(0, classes, size=rows)
    return logits, labels, dtype


@stateless_fixtures
@given(logits_and_labels())
def test_forward_matches_reference(candidate, reference, case):
    logits, labels, dtype = case
    loss, probs = candidate.to_numpy(
        candidate.softmax_cross_entropy_forward(candidate.asarray(logits), candidate.asarray(labels))
    )
    expected_loss, expected_probs = reference.softmax_cross_entropy_forward(logits, labels)
    assert loss.dtype == dtype and probs.dtype == dtype
    assert_close(loss, expected_loss, dtype, "loss")
    assert_close(probs, expected_probs, dtype, "probs")


@stateless_fixtures
@given(logits_and_labels())
def test_backward_matches_reference(candidate, reference, case):
    logits, labels, dtype = case
    _, probs = reference.softmax_cross_entropy_forward(logits, labels)
    grad_loss = np.linspace(-1.5, 2.0, len(labels)).astype(dtype)
    grad = candidate.to_numpy(
        candidate.softmax_cross_entropy_backward(
            candidate.asarray(probs), candidate.asarray(labels), candidate.asarray(grad_loss)
        )
    )
    expected = reference.softmax_cross_entropy_backward(probs, labels, grad_loss)
    assert grad.dtype == dtype
    assert_close(grad, expected, dtype, "grad_logits")


def test_reference_forward_matches_torch(reference):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((5, 4))
    labels = np.array([0, 3, 1, 1, 2])
    loss, probs = reference.softmax_cross_entropy_forward(logits, labels)
    torch_logits = torch.from_numpy(logits)
    expected_loss = torch.nn.functional.cross_entropy(
        torch_logits, torch.from_numpy(labels), reduction="none"
    )
    assert_close(loss, expected_loss.numpy(), np.float64, "loss vs torch")
    assert_close(probs, torch.softmax(torch_logits, dim=1).numpy(), np.float64, "probs vs torch")


def check_stable_for_huge_logits(kernels, dtype):
    logits = np.array(
        [
            [1e4, -1e4, 0.0],  # label on the huge logit: probability 1, loss 0
            [1e4, -1e4, 0.0],  # label on the tiny logit: loss is the gap, 2e4
            [-1e4, -1e4, -1e4],  # all equal: uniform softmax
            [1e4, 1e4, -1e4],  # two-way tie at the top
        ],
        dtype=dtype,
    )
    labels = np.array([0, 1, 2, 1])
    loss, probs = kernels.to_numpy(
        kernels.softmax_cross_entropy_forward(kernels.asarray(logits), kernels.asarray(labels))
    )
    assert np.all(np.isfinite(loss)) and np.all(np.isfinite(probs))
    assert_close(loss, np.array([0.0, 2e4, np.log(3), np.log(2)]), dtype, "loss")
    expected_probs = np.array([[1, 0, 0], [1, 0, 0], [1 / 3, 1 / 3, 1 / 3], [0.5, 0.5, 0]])
    assert_close(probs, expected_probs, dtype, "probs")


@pytest.mark.parametrize("dtype", DTYPES)
def test_candidate_is_stable_for_huge_logits(candidate, dtype):
    check_stable_for_huge_logits(candidate, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_reference_is_stable_for_huge_logits(reference_set, dtype):
    check_stable_for_huge_logits(reference_set, dtype)


def _finite_difference_gradient(reference, logits, labels, grad_loss, step=1e-6):
    """Central differences of sum(grad_loss * loss) w.r.t. each logit, in float64."""
    gradient = np.zeros_like(logits)
    for index in np.ndindex(logits.shape):
        shifted = logits.copy()
        shifted[index] += step
        loss_plus, _ = reference.softmax_cross_entropy_forward(shifted, labels)
        shifted[index] -= 2 * step
        loss_minus, _ = reference.softmax_cross_entropy_forward(shifted, labels)
        gradient[index] = np.dot(grad_loss, loss_plus - loss_minus) / (2 * step)
    return gradient


def check_backward_against_finite_differences(kernels, reference):
    rng = np.random.default_rng(1)
    logits = 2 * rng.standard_normal((3, 5))
    labels = np.array([4, 0, 2])
    grad_loss = np.array([0.5, -1.0, 2.0])
    _, probs = reference.softmax_cross_entropy_forward(logits, labels)
    grad = kernels.to_numpy(
        kernels.softmax_cross_entropy_backward(
            kernels.asarray(probs), kernels.asarray(labels), kernels.asarray(grad_loss)
        )
    )
    expected = _finite_difference_gradient(reference, logits, labels, grad_loss)
    np.testing.assert_allclose(grad, expected, rtol=1e-6, atol=1e-8)


def test_candidate_backward_matches_finite_differences(candidate, reference):
    check_backward_against_finite_differences(candidate, reference)


def test_reference_backward_matches_finite_differences(reference_set, reference):
    check_backward_against_finite_differences(reference_set, reference)


def test_accepts_any_integer_label_dtype(candidate):
    logits = np.array([[0.0, 1.0, 2.0], [2.0, 1.0, 0.0]])
    loss_int64, _ = candidate.to_numpy(
        candidate.softmax_cross_entropy_forward(candidate.asarray(logits), candidate.asarray(np.array([2, 0])))
    )
    loss_int32, _ = candidate.to_numpy(
        candidate.softmax_cross_entropy_forward(
            candidate.asarray(logits), candidate.asarray(np.array([2, 0], dtype=np.int32))
        )
    )
    assert_close(loss_int32, loss_int64, np.float64, "int32 labels")


@pytest.mark.parametrize("which", ["candidate", "reference"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_a_label_outside_the_classes_gives_its_row_a_nan_loss(candidate, reference_set, which, dtype):
    """Labels already on a GPU are not read back to be checked, so every kernel set
    marks a label outside [0, K) itself: NaN loss for its row, no one-hot term in
    its gradient, the other rows untouched (and no read outside the row)."""
    kernel_set = candidate if which == "candidate" else reference_set
    logits = np.array([[0.0, 1.0, 2.0], [2.0, 1.0, 0.0], [1.0, 1.0, 1.0], [0.5, 0.0, 0.0]],
                      dtype=dtype)
    labels = np.array([2, 3, 0, -1])
    loss, probs = kernel_set.to_numpy(
        kernel_set.softmax_cross_entropy_forward(kernel_set.asarray(logits),
                                                 kernel_set.asarray(labels))
    )
    assert np.isnan(loss[1]) and np.isnan(loss[3])
    good_loss, good_probs = reference_set.module.softmax_cross_entropy_forward(
        logits, np.array([2, 0, 0, 0]))
    assert_close(loss[[0, 2]], good_loss[[0, 2]], dtype, "rows with valid labels")
    assert_close(probs, good_probs, dtype, "probs do not depend on the label")

    grad_loss = np.ones(4, dtype=dtype)
    grad = kernel_set.to_numpy(
        kernel_set.softmax_cross_entropy_backward(
            kernel_set.asarray(probs), kernel_set.asarray(labels), kernel_set.asarray(grad_loss))
    )
    assert_close(grad[[1, 3]], probs[[1, 3]], dtype, "no one-hot term for a bad label")
    expected_valid = probs[[0, 2]].copy()
    expected_valid[0, 2] -= 1
    expected_valid[1, 0] -= 1
    assert_close(grad[[0, 2]], expected_valid, dtype, "rows with valid labels")
