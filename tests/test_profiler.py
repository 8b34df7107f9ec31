"""deepbreadth.profile(): per-layer time, FLOPs and kernels of a training step."""
import numpy as np
import pytest

import deepbreadth as db
from deepbreadth.layers import Dense
from deepbreadth.models import Sequential

BATCH, FEATURES, HIDDEN, CLASSES = 32, 6, 16, 4
LOGITS_LOSS = db.losses.SparseCategoricalCrossentropy(from_logits=True)


@pytest.fixture
def model_and_data():
    db.set_seed(0)
    model = Sequential([Dense(HIDDEN, activation="relu", name="hidden", input_shape=(FEATURES,)),
                        Dense(CLASSES, name="output")])
    rng = np.random.default_rng(0)
    x = rng.normal(size=(BATCH, FEATURES)).astype("float32")
    y = rng.integers(0, CLASSES, size=BATCH)
    return model, x, y


def test_one_row_per_layer_and_one_for_the_loss(model_and_data):
    model, x, y = model_and_data
    report = db.profile(model, x, y, loss=LOGITS_LOSS, repeats=2)
    assert [row.layer for row in report.rows] == ["hidden", "output", "(loss)"]
    assert [row.layer_type for row in report.rows] == ["Dense", "Dense",
                                                       "SparseCategoricalCrossentropy"]
    for row in report.rows:
        assert row.forward_seconds > 0 and row.backward_seconds > 0
        assert row.forward_flops > 0 and row.backward_flops > 0
        assert row.forward_gflops_per_second > 0
    assert report.rows[0].ops == ["DenseBiasActivation"]  # product, bias, relu: one op


def test_dense_flops_match_the_analytic_count(model_and_data):
    model, x, y = model_and_data
    rows = db.profile(model, x, y, loss=LOGITS_LOSS, repeats=1).as_dict()
    hidden, output = rows["hidden"], rows["output"]
    # Forward: x @ kernel is 2·B·in·out; bias + relu one FLOP each per output.
    assert hidden["forward_flops"] == 2 * BATCH * FEATURES * HIDDEN + 2 * BATCH * HIDDEN
    assert output["forward_flops"] == 2 * BATCH * HIDDEN * CLASSES + BATCH * CLASSES
    # Backward: the first layer's input wants no gradient, so one product (for
    # the kernel); the second layer computes two (kernel and input).
    assert hidden["backward_flops"] == 2 * BATCH * FEATURES * HIDDEN + 2 * BATCH * HIDDEN
    assert output["backward_flops"] == 2 * (2 * BATCH * HIDDEN * CLASSES) + BATCH * CLASSES
    assert hidden["forward_gflops_per_second"] == pytest.approx(
        hidden["forward_flops"] / hidden["forward_seconds"] / 1e9)


def test_kernel_names_and_table(model_and_data):
    model, x, y = model_and_data
    report = db.profile(model, x, y, loss=LOGITS_LOSS, repeats=1)
    kernel_set = db.backend.kernels_for(x).__name__.rsplit(".", 1)[-1]
    assert report.rows[0].kernels == [f"{kernel_set}.dense_bias_activation_forward",
                                      f"{kernel_set}.dense_bias_activation_backward"]
    table = report.table()
    assert table.splitlines()[0].split()[:3] == ["layer", "type", "fwd"]
    assert "hidden" in table and f"{kernel_set}.softmax_cross_entropy_forward" in table


def test_profile_changes_neither_weights_nor_gradients(model_and_data):
    model, x, y = model_and_data
    model(x)
    before = model.get_weights()
    db.profile(model, x, y, loss=LOGITS_LOSS, repeats=1)
    for old, new in zip(before, model.get_weights()):
        np.testing.assert_array_equal(old, new)
    assert all(weight.grad is None for weight in model.weights)


def test_the_compiled_loss_is_the_default_and_a_missing_loss_is_explained(model_and_data):
    model, x, y = model_and_data
    with pytest.raises(ValueError, match="loss="):
        db.profile(model, x, y)
    model.compile(optimizer="sgd", loss=db.losses.SparseCategoricalCrossentropy(from_logits=True))
    assert db.profile(model, x, y, repeats=1).rows[-1].layer == "(loss)"
    with pytest.raises(ValueError, match="repeats"):
        db.profile(model, x, y, repeats=0)
