"""Metrics: values against hand-computed ones, accumulation over batches, reset,
sample weights, 'accuracy' chosen from the loss, lookup by name, errors."""
import numpy as np
import pytest

import deepbreadth as db
from deepbreadth import losses, metrics

PROBS = np.array([[0.1, 0.7, 0.2],    # predicts 1
                  [0.5, 0.3, 0.2],    # predicts 0
                  [0.2, 0.2, 0.6],    # predicts 2
                  [0.3, 0.4, 0.3]])   # predicts 1
LABELS = np.array([1, 2, 2, 0])       # right, wrong, right, wrong


@pytest.fixture(autouse=True)
def on_each_device(device):
    """Every test here runs on each device chosen with --backend (see conftest.py)."""


def test_sparse_categorical_accuracy_by_hand():
    metric = metrics.SparseCategoricalAccuracy()
    assert metric.name == "sparse_categorical_accuracy"
    metric.update_state(LABELS, PROBS)
    assert metric.result() == pytest.approx(0.5)
    metric.update_state(LABELS[:, None].astype(float), db.tensor(PROBS))  # (N, 1) float labels
    assert metric.result() == pytest.approx(0.5)
    metric.update_state(np.array([1]), PROBS[:1])
    assert metric.result() == pytest.approx(5 / 9)


def test_categorical_accuracy_by_hand():
    metric = metrics.CategoricalAccuracy()
    metric.update_state(np.eye(3)[LABELS], PROBS)
    assert metric.result() == pytest.approx(0.5)


def test_binary_accuracy_threshold_and_shapes():
    y_true = np.array([1, 0, 1, 0])
    y_pred = np.array([[0.9], [0.6], [0.4], [0.1]])
    assert metrics.BinaryAccuracy()(y_true, y_pred) == pytest.approx(0.5)
    assert metrics.BinaryAccuracy(threshold=0.3)(y_true, y_pred) == pytest.approx(0.75)
    assert metrics.BinaryAccuracy(threshold=0.7)(y_true, y_pred) == pytest.approx(0.75)
    assert metrics.BinaryAccuracy(threshold=0.5)(y_true, y_pred[:, 0]) == pytest.approx(0.5)
    # Several outputs per sample: the per-sample value is the fraction right.
    per_sample = metrics.binary_accuracy(np.array([[1, 1], [0, 0]]), np.array([[0.8, 0.2], [0.1, 0.3]]))
    np.testing.assert_allclose(per_sample, [0.5, 1.0])


def test_top_k_accuracies_count_ties_as_in_the_top_k():
    scores = np.array([[0.1, 0.5, 0.2, 0.2],
                       [0.4, 0.3, 0.2, 0.1],
                       [0.1, 0.1, 0.1, 0.7]])
    labels = np.array([2, 2, 0])  # tied for 2nd; 3rd; tied for 2nd with two others
    np.testing.assert_array_equal(
        metrics.sparse_top_k_categorical_accuracy(labels, scores, k=2), [1, 0, 1])
    np.testing.assert_array_equal(
        metrics.sparse_top_k_categorical_accuracy(labels, scores, k=1), [0, 0, 0])
    metric = metrics.TopKCategoricalAccuracy(k=2)
    assert metric.name == "top_k_categorical_accuracy"
    assert metric(np.eye(4)[labels], scores) == pytest.approx(2 / 3)
    assert metrics.SparseTopKCategoricalAccuracy(k=3)(labels, scores) == pytest.approx(1.0)


def test_regression_metrics_by_hand():
    y_true = np.array([[1.0, 2.0], [3.0, 4.0]])
    y_pred = np.array([[1.0, 4.0], [2.0, 4.0]])
    assert metrics.MeanAbsoluteError()(y_true, y_pred) == pytest.approx(0.75)
    assert metrics.MeanSquaredError()(y_true, y_pred) == pytest.approx(1.25)


def test_mean_accumulates_weighted_values_and_resets():
    mean = metrics.Mean(name="loss")
    assert mean.result() == 0.0  # nothing seen yet
    mean.update_state(2.0)
    mean.update_state(db.tensor([4.0, 6.0]))
    assert mean.result() == pytest.approx(4.0)
    mean.update_state(np.array([10.0, 100.0]), sample_weight=np.array([2.0, 0.0]))
    assert mean.result() == pytest.approx((2 + 4 + 6 + 20) / 5)
    mean.reset_state()
    assert mean.result() == 0.0
    mean.update_state(np.array([1.0, 3.0]))
    assert mean.result() == pytest.approx(2.0)


def test_accuracy_accumulates_over_batches_with_sample_weights_and_resets():
    metric = metrics.SparseCategoricalAccuracy()
    metric.update_state(LABELS[:2], PROBS[:2], sample_weight=np.array([1.0, 3.0]))
    assert metric.result() == pytest.approx(0.25)
    metric.update_state(LABELS[2:], PROBS[2:])
    assert metric.result() == pytest.approx((1 + 1) / 6)
    metric.reset_state()
    metric.update_state(LABELS[:1], PROBS[:1])
    assert metric.result() == pytest.approx(1.0)


def test_sequence_accuracy_weights_each_sample_over_its_steps():
    scores = np.zeros((2, 3, 4))
    scores[..., 1] = 1.0  # always predicts class 1
    labels = np.array([[1, 1, 0], [0, 0, 0]])
    metric = metrics.SparseCategoricalAccuracy()
    metric.update_state(labels, scores, sample_weight=np.array([1.0, 0.0]))
    assert metric.result() == pytest.approx(2 / 3)


def test_metrics_take_tensors_that_require_grad():
    y_pred = db.tensor(PROBS, requires_grad=True) * 1.0
    assert metrics.SparseCategoricalAccuracy()(db.tensor(LABELS), y_pred) == pytest.approx(0.5)


# ----------------------------------------------------------------------------
# 'accuracy' chosen from the loss, names, lookup
# ----------------------------------------------------------------------------
@pytest.mark.parametrize("loss, cls", [
    ("sparse_categorical_crossentropy", metrics.SparseCategoricalAccuracy),
    (losses.SparseCategoricalCrossentropy(from_logits=True), metrics.SparseCategoricalAccuracy),
    (losses.sparse_categorical_crossentropy, metrics.SparseCategoricalAccuracy),
    ("categorical_crossentropy", metrics.CategoricalAccuracy),
    ("binary_crossentropy", metrics.BinaryAccuracy),
])
@pytest.mark.parametrize("name", ["accuracy", "acc"])
def test_accuracy_follows_the_loss_and_keeps_its_name(loss, cls, name):
    metric = metrics.get(name, loss=loss)
    assert type(metric) is cls
    assert metric.name == name


def test_binary_accuracy_for_logits_thresholds_at_zero():
    metric = metrics.get("accuracy", loss=losses.BinaryCrossentropy(from_logits=True))
    assert metric(np.array([1, 0, 1]), np.array([[0.3], [-0.2], [-1.0]])) == pytest.approx(2 / 3)
    assert metrics.get("accuracy", loss="binary_crossentropy").get_config()["threshold"] == 0.5


@pytest.mark.parametrize("loss", ["mse", "mae", None, losses.Huber()])
def test_accuracy_for_other_losses_is_chosen_from_the_shapes(loss):
    one_hot = np.eye(3)[LABELS]
    assert metrics.get("accuracy", loss=loss)(one_hot, PROBS) == pytest.approx(0.5)  # categorical
    assert metrics.get("accuracy", loss=loss)(LABELS, PROBS) == pytest.approx(0.5)   # sparse
    binary = metrics.get("accuracy", loss=loss)
    assert binary(np.array([1, 0]), np.array([[0.9], [0.8]])) == pytest.approx(0.5)
    assert binary.name == "accuracy"


@pytest.mark.parametrize("identifier, cls", [
    ("mae", metrics.MeanAbsoluteError), ("mse", metrics.MeanSquaredError),
    ("mean_absolute_error", metrics.MeanAbsoluteError),
    ("top_k_categorical_accuracy", metrics.TopKCategoricalAccuracy),
    ("sparse_top_k_categorical_accuracy", metrics.SparseTopKCategoricalAccuracy),
    ("sparse_categorical_accuracy", metrics.SparseCategoricalAccuracy),
    ("binary_accuracy", metrics.BinaryAccuracy), ("CategoricalAccuracy", metrics.CategoricalAccuracy),
])
def test_get_by_name_keeps_the_name_given(identifier, cls):
    metric = metrics.get(identifier)
    assert type(metric) is cls
    assert metric.name == identifier


def test_get_passes_metrics_through_and_wraps_functions_and_loss_names():
    metric = metrics.BinaryAccuracy(threshold=0.2)
    assert metrics.get(metric) is metric

    def max_error(y_true, y_pred):
        return (y_pred - y_true).abs().max(axis=-1)  # written with Tensor ops, as in Keras

    wrapped = metrics.get(max_error)
    assert wrapped.name == "max_error"
    assert wrapped(np.array([[0.0, 1.0]]), np.array([[2.0, 1.5]])) == pytest.approx(2.0)
    crossentropy = metrics.get("binary_crossentropy")
    assert crossentropy.name == "binary_crossentropy"
    assert crossentropy(np.array([[1.0]]), np.array([[0.5]])) == pytest.approx(np.log(2), rel=1e-5)


def test_unknown_metric_names_are_refused():
    with pytest.raises(ValueError, match="unknown metric 'precision_at_7'"):
        metrics.get("precision_at_7")
    with pytest.raises(TypeError, match="cannot interpret"):
        metrics.get(7)


def test_label_shape_errors_name_the_other_accuracy():
    with pytest.raises(ValueError, match="one-hot labels: use categorical accuracy"):
        metrics.SparseCategoricalAccuracy().update_state(np.eye(3)[LABELS], PROBS)
    with pytest.raises(ValueError, match="integer labels: use sparse categorical accuracy"):
        metrics.CategoricalAccuracy().update_state(LABELS, PROBS)
    with pytest.raises(ValueError, match="sample_weight of shape"):
        metrics.SparseCategoricalAccuracy().update_state(LABELS, PROBS, sample_weight=np.ones(3))


def test_serialize_round_trip():
    for metric in (metrics.BinaryAccuracy(threshold=0.3), metrics.TopKCategoricalAccuracy(k=2),
                   metrics.MeanSquaredError(name="mse"), metrics.Mean(name="loss")):
        rebuilt = metrics.deserialize(metrics.serialize(metric))
        assert type(rebuilt) is type(metric) and rebuilt.get_config() == metric.get_config()


def test_a_subclass_keeps_its_own_state():
    class CountPositives(metrics.Metric):
        def __init__(self, name=None):
            super().__init__(name=name)
            self.count = 0

        def update_state(self, y_true, y_pred, sample_weight=None):
            self.count += int((np.asarray(y_pred) > 0).sum())

        def result(self):
            return float(self.count)

        def reset_state(self):
            self.count = 0

    metric = CountPositives()
    assert metric.name == "count_positives"
    assert metric(None, np.array([1.0, -1.0, 2.0])) == 2.0
    metric.reset_state()
    assert metric.result() == 0.0
