"""Losses: values and gradients against NumPy formulas and PyTorch, gradcheck,
the fused softmax cross-entropy on every tested backend, label errors, the logits
warning, reductions and sample weights, lookup and serialization."""
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

try:
    import torch
except ImportError:  # PyTorch is an optional oracle: its comparisons are skipped without it
    torch = None
requires_torch = pytest.mark.skipif(torch is None, reason="PyTorch is not installed")

import deepbreadth as db
from deepbreadth import losses
from deepbreadth.functional.loss import SoftmaxCrossEntropy, softmax_cross_entropy
from deepbreadth.gradcheck import gradcheck
from deepbreadth.losses import LogitsWarning


def rng(seed=0):
    return np.random.default_rng(seed)


def softmax_rows(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def value_and_grad(loss_fn, y_true, y_pred_array):
    """The loss (a float) and its gradient w.r.t. y_pred, in float64."""
    y_pred = db.tensor(y_pred_array, dtype="float64", requires_grad=True)
    loss = loss_fn(y_true, y_pred)
    loss.backward()
    return loss.item(), y_pred.grad.numpy()


def torch_value_and_grad(torch_loss, y_true, y_pred_array):
    y_pred = torch.tensor(y_pred_array, dtype=torch.float64, requires_grad=True)
    loss = torch_loss(y_pred, y_true)
    loss.backward()
    return loss.item(), y_pred.grad.numpy()


def assert_matches(actual, expected, rtol=1e-10):
    np.testing.assert_allclose(actual[0], expected[0], rtol=rtol, atol=1e-12)
    np.testing.assert_allclose(actual[1], expected[1], rtol=rtol, atol=1e-12)


# ----------------------------------------------------------------------------
# Values and gradients against PyTorch (where the formulas are the same)
# ----------------------------------------------------------------------------
@requires_torch
def test_sparse_categorical_from_logits_matches_torch_cross_entropy(backend_name):
    logits = 2 * rng().standard_normal((5, 4))
    labels = np.array([0, 3, 1, 1, 2])
    ours = value_and_grad(losses.SparseCategoricalCrossentropy(from_logits=True), labels, logits)
    theirs = torch_value_and_grad(torch.nn.CrossEntropyLoss(), torch.tensor(labels), logits)
    assert_matches(ours, theirs)


@requires_torch
@pytest.mark.parametrize("label_smoothing", [0.0, 0.2])
def test_categorical_from_logits_matches_torch_cross_entropy(label_smoothing):
    logits = 2 * rng(1).standard_normal((4, 3))
    one_hot = np.eye(3)[[2, 0, 1, 1]]
    ours = value_and_grad(
        losses.CategoricalCrossentropy(from_logits=True, label_smoothing=label_smoothing),
        one_hot, logits)
    theirs = torch_value_and_grad(torch.nn.CrossEntropyLoss(label_smoothing=label_smoothing),
                                  torch.tensor(one_hot), logits)
    assert_matches(ours, theirs)


@requires_torch
def test_binary_from_logits_matches_torch_bce_with_logits():
    logits = 3 * rng(2).standard_normal((6, 2))
    targets = (rng(3).random((6, 2)) > 0.5).astype(float)
    ours = value_and_grad(losses.BinaryCrossentropy(from_logits=True), targets, logits)
    theirs = torch_value_and_grad(torch.nn.BCEWithLogitsLoss(), torch.tensor(targets), logits)
    assert_matches(ours, theirs)


@requires_torch
def test_binary_from_probabilities_matches_torch_bce_away_from_the_clip():
    probs = rng(4).uniform(0.05, 0.95, (5, 3))
    targets = rng(5).random((5, 3))  # soft targets are allowed
    ours = value_and_grad(losses.BinaryCrossentropy(), targets, probs)
    theirs = torch_value_and_grad(torch.nn.BCELoss(), torch.tensor(targets), probs)
    assert_matches(ours, theirs)


@requires_torch
@pytest.mark.parametrize("ours, theirs", [
    (losses.MeanSquaredError(), lambda: torch.nn.MSELoss()),
    (losses.MeanAbsoluteError(), lambda: torch.nn.L1Loss()),
    (losses.Huber(), lambda: torch.nn.HuberLoss()),
    (losses.Huber(delta=0.3), lambda: torch.nn.HuberLoss(delta=0.3)),
])
def test_regression_losses_match_torch(ours, theirs):
    y_pred = rng(6).standard_normal((4, 3))
    y_true = rng(7).standard_normal((4, 3))
    assert_matches(value_and_grad(ours, y_true, y_pred),
                   torch_value_and_grad(theirs(), torch.tensor(y_true), y_pred))


# ----------------------------------------------------------------------------
# Values against NumPy formulas (the paths torch has no twin for)
# ----------------------------------------------------------------------------
def test_sparse_categorical_from_probabilities_is_log_of_clipped_probabilities():
    probs = softmax_rows(rng(8).standard_normal((4, 3)))
    probs[0] = [1.0, 0.0, 0.0]  # the label's probability is 0: clipped to 1e-7
    labels = np.array([2, 0, 1, 2])
    per_sample = losses.sparse_categorical_crossentropy(labels, db.tensor(probs, dtype="float64"))
    clipped = np.clip(probs, 1e-7, 1 - 1e-7)
    expected = -np.log(clipped[np.arange(4), labels])
    np.testing.assert_allclose(per_sample.numpy(), expected, rtol=1e-12)
    assert per_sample.numpy()[0] == pytest.approx(-np.log(1e-7))


def test_categorical_from_probabilities_matches_numpy_formula_and_gradient():
    probs = softmax_rows(rng(9).standard_normal((3, 4)))
    targets = softmax_rows(rng(10).standard_normal((3, 4)))  # soft targets
    value, grad = value_and_grad(losses.CategoricalCrossentropy(), targets, probs)
    # -sum(t log(p / sum p)): the derivative is -t/p + sum(t)/sum(p), per row.
    expected_value = np.mean(-np.sum(targets * np.log(probs), axis=-1))
    expected_grad = (-targets / probs + targets.sum(-1, keepdims=True)
                     / probs.sum(-1, keepdims=True)) / 3
    np.testing.assert_allclose(value, expected_value, rtol=1e-10)
    np.testing.assert_allclose(grad, expected_grad, rtol=1e-8)


def test_regression_losses_match_numpy_formulas():
    y_true = rng(11).standard_normal((5, 2))
    y_pred = rng(12).standard_normal((5, 2)) * 2
    error = y_pred - y_true
    expected_huber = np.where(np.abs(error) <= 1, 0.5 * error**2, np.abs(error) - 0.5).mean(-1)
    pred = db.tensor(y_pred, dtype="float64")
    np.testing.assert_allclose(losses.mse(y_true, pred).numpy(), (error**2).mean(-1))
    np.testing.assert_allclose(losses.mae(y_true, pred).numpy(), np.abs(error).mean(-1))
    np.testing.assert_allclose(losses.huber(y_true, pred).numpy(), expected_huber)


def test_per_sample_functions_return_one_value_per_sample():
    pred = db.tensor(rng(13).random((6, 4)))
    labels = np.array([0, 1, 2, 3, 0, 1])
    assert losses.sparse_categorical_crossentropy(labels, pred.softmax()).shape == (6,)
    assert losses.categorical_crossentropy(np.eye(4)[labels], pred.softmax()).shape == (6,)
    assert losses.binary_crossentropy(np.ones((6, 4)), pred).shape == (6,)
    assert losses.mean_squared_error(np.ones(6), pred[:, :1]).shape == (6,)


def test_targets_of_shape_n_meet_predictions_of_shape_n_1_without_broadcasting():
    y_true = np.array([1.0, 2.0, 3.0])
    y_pred = db.tensor([[1.0], [2.0], [5.0]])
    assert losses.MeanSquaredError()(y_true, y_pred).item() == pytest.approx(4 / 3)
    assert losses.MeanSquaredError()(y_true[:, None], y_pred[:, 0]).item() == pytest.approx(4 / 3)


# ----------------------------------------------------------------------------
# gradcheck of every loss with respect to y_pred (float64)
# ----------------------------------------------------------------------------
LOGITS = rng(20).standard_normal((3, 4))
PROBS = softmax_rows(LOGITS)
SPARSE = np.array([3, 0, 2])
ONE_HOT = np.eye(4)[SPARSE]
BINARY = (rng(21).random((3, 4)) > 0.5).astype(float)


@pytest.mark.parametrize("name, loss, y_true, y_pred", [
    ("sparse from logits", losses.SparseCategoricalCrossentropy(from_logits=True), SPARSE, LOGITS),
    ("sparse from probs", losses.SparseCategoricalCrossentropy(), SPARSE, PROBS),
    ("categorical from logits", losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1),
     ONE_HOT, LOGITS),
    ("categorical from probs", losses.CategoricalCrossentropy(), ONE_HOT, PROBS),
    ("binary from logits", losses.BinaryCrossentropy(from_logits=True), BINARY, LOGITS),
    ("binary from probs", losses.BinaryCrossentropy(label_smoothing=0.1), BINARY, PROBS),
    ("mse", losses.MeanSquaredError(), LOGITS, PROBS),
    ("mae", losses.MeanAbsoluteError(), BINARY, LOGITS),
    ("huber", losses.Huber(delta=0.5), BINARY, LOGITS),
])
def test_gradcheck_of_every_loss(name, loss, y_true, y_pred):
    weights = np.array([0.5, 2.0, 1.0])
    assert gradcheck(lambda p: loss(y_true, p, sample_weight=weights), [y_pred])


# ----------------------------------------------------------------------------
# The fused softmax cross-entropy, on every backend tested
# ----------------------------------------------------------------------------
@given(rows=st.integers(1, 5), classes=st.integers(1, 6), seed=st.integers(0, 2**31))
def test_fused_softmax_cross_entropy_matches_log_softmax(backend_name, rows, classes, seed):
    generator = rng(seed)
    logits = 3 * generator.standard_normal((rows, classes))
    labels = generator.integers(0, classes, rows)
    loss = softmax_cross_entropy(db.tensor(logits, dtype="float64"), labels)
    expected = -np.log(softmax_rows(logits))[np.arange(rows), labels]
    np.testing.assert_allclose(loss.numpy(), expected, rtol=1e-10, atol=1e-12)


def test_fused_softmax_cross_entropy_gradcheck(backend_name):
    logits = 2 * rng(22).standard_normal((4, 5))
    labels = np.array([4, 0, 0, 2])
    assert gradcheck(lambda x: softmax_cross_entropy(x, labels), [logits])


def test_fused_softmax_cross_entropy_takes_sequences(backend_name):
    logits = rng(23).standard_normal((2, 3, 4))
    labels = np.array([[0, 1, 3], [2, 2, 0]])
    loss = softmax_cross_entropy(db.tensor(logits, dtype="float64"), labels)
    assert loss.shape == (2, 3)
    expected = -np.log(np.take_along_axis(softmax_rows(logits), labels[..., None], -1))[..., 0]
    np.testing.assert_allclose(loss.numpy(), expected, rtol=1e-10)
    assert gradcheck(lambda x: softmax_cross_entropy(x, labels), [logits])


def test_fused_softmax_cross_entropy_refuses_second_derivatives(backend_name):
    assert SoftmaxCrossEntropy.once_differentiable
    x = db.tensor(LOGITS, requires_grad=True)
    loss = softmax_cross_entropy(x, SPARSE).sum()
    with pytest.raises(RuntimeError, match="only once differentiable"):
        db.grad(loss, x, create_graph=True)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_crossentropies_are_stable_for_huge_logits(backend_name, dtype):
    logits = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 1e4]])
    labels = np.array([1, 0])
    checks = [
        (losses.SparseCategoricalCrossentropy(from_logits=True), labels, [2e4, 2e4 + np.log(2)]),
        (losses.CategoricalCrossentropy(from_logits=True), np.eye(3)[labels], [2e4, 2e4 + np.log(2)]),
        # softplus of 1e4, -1e4 and 0 is 1e4, 0 and log(2)
        (losses.BinaryCrossentropy(from_logits=True), np.zeros((2, 3)),
         [(1e4 + np.log(2)) / 3, 2e4 / 3]),
    ]
    for loss, y_true, expected in checks:
        y_pred = db.tensor(logits, dtype=dtype, requires_grad=True)
        per_sample = loss(y_true, y_pred, sample_weight=None)
        assert np.isfinite(per_sample.item())
        np.testing.assert_allclose(loss.call(y_true, y_pred).numpy(), expected, rtol=1e-6)
        per_sample.backward()
        assert np.all(np.isfinite(y_pred.grad.numpy())), loss.name


# ----------------------------------------------------------------------------
# Label checks
# ----------------------------------------------------------------------------
@pytest.mark.parametrize("from_logits", [True, False])
def test_label_outside_the_classes_names_value_position_and_class_count(from_logits):
    y_pred = db.tensor(PROBS)
    with pytest.raises(ValueError, match=r"label 7 at position 1 is outside \[0, 4\)"):
        losses.sparse_categorical_crossentropy(np.array([0, 7, 1]), y_pred, from_logits=from_logits)
    with pytest.raises(ValueError, match=r"label -1 at position 2"):
        losses.sparse_categorical_crossentropy(np.array([0, 1, -1]), y_pred, from_logits=from_logits)


def test_non_integer_sparse_labels_are_refused_but_whole_floats_accepted():
    y_pred = db.tensor(LOGITS)
    with pytest.raises(ValueError, match=r"whole numbers.*label 1.5 at position 2"):
        losses.sparse_categorical_crossentropy(np.array([0.0, 1.0, 1.5]), y_pred, from_logits=True)
    as_floats = losses.sparse_categorical_crossentropy(SPARSE.astype(np.float32), y_pred,
                                                       from_logits=True)
    as_ints = losses.sparse_categorical_crossentropy(SPARSE, y_pred, from_logits=True)
    np.testing.assert_array_equal(as_floats.numpy(), as_ints.numpy())


def test_sparse_labels_of_shape_n_1_are_accepted():
    y_pred = db.tensor(LOGITS)
    column = losses.sparse_categorical_crossentropy(SPARSE[:, None], y_pred, from_logits=True)
    flat = losses.sparse_categorical_crossentropy(SPARSE, y_pred, from_logits=True)
    np.testing.assert_array_equal(column.numpy(), flat.numpy())


def test_one_hot_labels_given_to_the_sparse_loss_point_to_categorical():
    with pytest.raises(ValueError, match="one-hot.*categorical_crossentropy"):
        losses.SparseCategoricalCrossentropy()(ONE_HOT, db.tensor(PROBS))


def test_integer_labels_given_to_the_categorical_loss_point_to_sparse():
    with pytest.raises(ValueError, match="integer class labels.*sparse_categorical_crossentropy"):
        losses.CategoricalCrossentropy()(SPARSE, db.tensor(PROBS))


@pytest.mark.parametrize("loss, y_true", [
    (losses.SparseCategoricalCrossentropy(), np.array([0, 1])),
    (losses.CategoricalCrossentropy(), np.eye(4)[:2]),
    (losses.BinaryCrossentropy(), np.ones((2, 4))),
    (losses.MeanSquaredError(), np.ones((2, 4))),
])
def test_batch_mismatch_is_named(loss, y_true):
    with pytest.raises(ValueError, match="y_true has 2 samples but y_pred has 3"):
        loss(y_true, db.tensor(PROBS))


def test_regression_shape_mismatch_is_refused_rather_than_broadcast():
    with pytest.raises(ValueError, match=r"y_true has shape \(3, 2\) but y_pred has shape \(3, 4\)"):
        losses.mse(np.ones((3, 2)), db.tensor(PROBS))


def test_binary_targets_outside_zero_one_point_to_sparse():
    with pytest.raises(ValueError, match="targets in \\[0, 1\\].*sparse_categorical_crossentropy"):
        losses.binary_crossentropy(np.array([[0.0], [3.0]]), db.tensor([[0.2], [0.7]]))


# ----------------------------------------------------------------------------
# Logits given where probabilities were expected
# ----------------------------------------------------------------------------
@pytest.mark.parametrize("loss, y_true, logits_loss", [
    (losses.SparseCategoricalCrossentropy(), SPARSE,
     losses.SparseCategoricalCrossentropy(from_logits=True)),
    (losses.CategoricalCrossentropy(), ONE_HOT, losses.CategoricalCrossentropy(from_logits=True)),
    (losses.BinaryCrossentropy(), BINARY, losses.BinaryCrossentropy(from_logits=True)),
])
def test_logits_warning_fires_once_per_loss_object_and_reads_logits(loss, y_true, logits_loss):
    y_pred = db.tensor(LOGITS, dtype="float64")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        values = [loss(y_true, y_pred).item() for _ in range(3)]
    logits_warnings = [w for w in caught if issubclass(w.category, LogitsWarning)]
    assert len(logits_warnings) == 1
    message = str(logits_warnings[0].message)
    assert "from_logits=True" in message and "activation=" in message and "as logits" in message
    assert values == pytest.approx([logits_loss(y_true, y_pred).item()] * 3)


def test_probabilities_raise_no_logits_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error", LogitsWarning)
        losses.SparseCategoricalCrossentropy()(SPARSE, db.tensor(PROBS))
        losses.CategoricalCrossentropy()(ONE_HOT, db.tensor(PROBS))
        losses.BinaryCrossentropy()(BINARY, db.tensor(PROBS))


def test_training_on_logits_with_a_probability_loss_still_reduces_the_loss():
    generator = rng(30)
    x = generator.standard_normal((32, 5)).astype(np.float32)
    labels = (x[:, 0] > 0).astype(int) + (x[:, 1] > 0)  # three classes
    kernel = db.tensor(0.1 * generator.standard_normal((5, 3)), requires_grad=True)
    bias = db.tensor(np.zeros(3), requires_grad=True)
    loss_fn = losses.SparseCategoricalCrossentropy()  # but the model outputs logits
    history = []
    with pytest.warns(LogitsWarning):
        for _ in range(30):
            loss = loss_fn(labels, db.tensor(x) @ kernel + bias)
            history.append(loss.item())
            loss.backward()
            for weight in (kernel, bias):
                weight.data -= 0.5 * weight.grad.data
                weight.grad = None
    assert history[-1] < 0.6 * history[0]


# ----------------------------------------------------------------------------
# Reductions, sample weights, sequences
# ----------------------------------------------------------------------------
def test_sample_weight_and_reductions():
    y_true, y_pred = np.array([1.0, 2.0, 4.0]), db.tensor([[0.0], [0.0], [0.0]])
    weights = np.array([1.0, 0.5, 0.0])
    squared = np.array([1.0, 4.0, 16.0])
    assert losses.MeanSquaredError()(y_true, y_pred).item() == pytest.approx(7.0)
    assert losses.MeanSquaredError()(y_true, y_pred, sample_weight=weights).item() == \
        pytest.approx((1 + 2) / 3)  # divided by the number of samples, as Keras
    assert losses.MeanSquaredError(reduction="sum")(y_true, y_pred, weights).item() == \
        pytest.approx(3.0)
    assert losses.MeanSquaredError(reduction="mean_with_sample_weight")(
        y_true, y_pred, weights).item() == pytest.approx(3.0 / 1.5)
    np.testing.assert_allclose(
        losses.MeanSquaredError(reduction="none")(y_true, y_pred).numpy(), squared)
    np.testing.assert_allclose(
        losses.MeanSquaredError(reduction=None)(y_true, y_pred, weights[:, None]).numpy(),
        squared * weights)


def test_bad_reduction_and_bad_sample_weight_are_refused():
    with pytest.raises(ValueError, match="unknown reduction"):
        losses.MeanSquaredError(reduction="average")
    with pytest.raises(ValueError, match="sample_weight of shape"):
        losses.MeanSquaredError()(np.ones(3), db.tensor(np.ones((3, 1))), np.ones(4))


def test_sequence_labels_with_per_sample_weights():
    logits = rng(31).standard_normal((2, 3, 4))
    labels = np.array([[0, 1, 3], [2, 2, 0]])
    per_step = softmax_cross_entropy(db.tensor(logits), labels).numpy()
    loss = losses.SparseCategoricalCrossentropy(from_logits=True)(
        labels, db.tensor(logits), sample_weight=np.array([1.0, 0.0]))
    assert loss.item() == pytest.approx(per_step[0].sum() / 6, rel=1e-6)


def test_a_subclass_defines_call():
    class DoubledError(losses.Loss):
        def call(self, y_true, y_pred):
            return 2 * losses.mean_absolute_error(y_true, y_pred)

    loss = DoubledError()
    assert loss.name == "doubled_error"
    assert loss(np.zeros((2, 1)), db.tensor([[1.0], [3.0]])).item() == pytest.approx(4.0)


# ----------------------------------------------------------------------------
# get, serialize, deserialize
# ----------------------------------------------------------------------------
@pytest.mark.parametrize("identifier, cls", [
    ("sparse_categorical_crossentropy", losses.SparseCategoricalCrossentropy),
    ("categorical_crossentropy", losses.CategoricalCrossentropy),
    ("binary_crossentropy", losses.BinaryCrossentropy),
    ("mse", losses.MeanSquaredError), ("MSE", losses.MeanSquaredError),
    ("mean_absolute_error", losses.MeanAbsoluteError), ("mae", losses.MeanAbsoluteError),
    ("huber", losses.Huber), ("MeanSquaredError", losses.MeanSquaredError),
    (losses.sparse_categorical_crossentropy, losses.SparseCategoricalCrossentropy),
    (losses.mse, losses.MeanSquaredError),
])
def test_get_by_name_or_function(identifier, cls):
    assert type(losses.get(identifier)) is cls


def test_get_passes_instances_through_and_wraps_custom_functions():
    loss = losses.Huber(delta=2.0)
    assert losses.get(loss) is loss

    def squared_sum(y_true, y_pred):
        return ((y_pred - y_true) ** 2).sum(axis=-1)

    wrapped = losses.get(squared_sum)
    assert wrapped.name == "squared_sum"
    assert wrapped(np.ones((2, 2)), db.tensor(np.zeros((2, 2)))).item() == pytest.approx(2.0)
    with pytest.raises(ValueError, match="unknown loss 'crossentropy'"):
        losses.get("crossentropy")
    with pytest.raises(TypeError, match="cannot interpret"):
        losses.get(3)


@pytest.mark.parametrize("loss", [
    losses.SparseCategoricalCrossentropy(from_logits=True),
    losses.CategoricalCrossentropy(label_smoothing=0.1, reduction="sum"),
    losses.BinaryCrossentropy(from_logits=True, name="bce"),
    losses.Huber(delta=0.25), losses.MeanSquaredError(), losses.MeanAbsoluteError(),
])
def test_serialize_round_trip(loss):
    rebuilt = losses.deserialize(losses.serialize(loss))
    assert type(rebuilt) is type(loss)
    assert rebuilt.get_config() == loss.get_config()


def test_custom_function_serialization_needs_custom_objects():
    def my_loss(y_true, y_pred):
        return losses.mae(y_true, y_pred)

    config = losses.serialize(losses.get(my_loss))
    with pytest.raises(ValueError, match="custom_objects"):
        losses.deserialize(config)
    assert losses.deserialize(config, custom_objects={"my_loss": my_loss}).fn is my_loss


@pytest.mark.parametrize("logits_shape", [(6, 4), (3, 5, 4)])
def test_the_default_mean_taken_inside_the_fused_op_equals_the_mean_of_the_losses(logits_shape):
    rng = np.random.default_rng(2)
    logits_values = rng.normal(size=logits_shape)
    labels = rng.integers(0, 4, logits_shape[:-1])
    fused_logits = db.tensor(logits_values, requires_grad=True)
    fused = losses.SparseCategoricalCrossentropy(from_logits=True)(labels, fused_logits)
    fused.backward()
    plain_logits = db.tensor(logits_values, requires_grad=True)
    per_sample = losses.SparseCategoricalCrossentropy(from_logits=True, reduction="none")(
        labels, plain_logits)
    plain = per_sample.mean()
    plain.backward()
    np.testing.assert_allclose(fused.item(), plain.item(), rtol=1e-12)
    np.testing.assert_allclose(fused_logits.grad.numpy(), plain_logits.grad.numpy(), rtol=1e-12)


def test_a_subclass_with_its_own_call_keeps_it():
    class Halved(losses.SparseCategoricalCrossentropy):
        def call(self, y_true, y_pred):
            return super().call(y_true, y_pred) * 0.5

    logits = db.tensor(np.random.default_rng(3).normal(size=(5, 3)))
    labels = np.array([0, 1, 2, 1, 0])
    whole = losses.SparseCategoricalCrossentropy(from_logits=True)(labels, logits).item()
    assert Halved(from_logits=True)(labels, logits).item() == pytest.approx(whole / 2)
