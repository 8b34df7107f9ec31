"""GradientMonitor: per-layer gradient statistics written into History."""
import json
import math

import numpy as np
import pytest

import deepbreadth as db
from deepbreadth.callbacks import Callback
from deepbreadth.initializers import Constant
from deepbreadth.layers import Dense
from deepbreadth.models import Sequential
from deepbreadth.monitor import GradientMonitor, dead_unit_fraction

SAMPLES, FEATURES = 48, 5
RNG = np.random.default_rng(0)
X = RNG.normal(size=(SAMPLES, FEATURES)).astype("float32")
Y = RNG.integers(0, 3, size=SAMPLES)


def model_with(*layers):
    db.set_seed(0)
    model = Sequential(list(layers))
    model.compile(optimizer=db.optimizers.SGD(learning_rate=0.1),
                  loss=db.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def test_the_monitor_is_a_keras_callback_and_adds_keys_to_history():
    model = model_with(Dense(8, activation="relu", name="hidden", input_shape=(FEATURES,)),
                       Dense(3, name="output"))
    monitor = GradientMonitor()
    assert isinstance(monitor, Callback)
    history = model.fit(X, Y, batch_size=16, epochs=2, verbose=0, callbacks=[monitor])
    expected = {f"{statistic}/{layer}" for statistic in ("grad_norm", "weight_norm", "update_ratio")
                for layer in ("hidden", "output")} | {"dead_relu/hidden"}
    assert expected <= set(history.history)
    assert "dead_relu/output" not in history.history  # a linear layer has no relus
    for key in expected:
        values = history.history[key]
        assert len(values) == 2 and all(math.isfinite(v) for v in values)
    for layer in ("hidden", "output"):
        assert history.history[f"grad_norm/{layer}"][0] > 0
        assert history.history[f"update_ratio/{layer}"][0] > 0
    assert monitor.history["grad_norm/output"] == history.history["grad_norm/output"]


def test_a_relu_layer_with_a_large_negative_bias_is_all_dead_and_gets_no_gradient():
    model = model_with(Dense(6, activation="relu", name="dead", input_shape=(FEATURES,),
                             bias_initializer=Constant(-100.0)),
                       Dense(6, activation="relu", name="alive", bias_initializer=Constant(1.0)),
                       Dense(3, name="output"))
    history = model.fit(X, Y, batch_size=16, epochs=1, verbose=0,
                        callbacks=[GradientMonitor()]).history
    assert history["dead_relu/dead"] == [1.0]
    assert history["grad_norm/dead"] == [0.0]
    assert history["update_ratio/dead"] == [0.0]
    # The next layer sees only zeros, but its bias of 1 keeps every unit positive.
    assert history["dead_relu/alive"] == [0.0]


def test_dead_unit_fraction_counts_units_zero_for_every_sample():
    outputs = db.tensor([[0.0, 1.0, 0.0, 0.0],
                         [0.0, 0.0, 2.0, 0.0]])
    assert dead_unit_fraction(outputs) == 0.5
    channels = db.tensor(np.zeros((2, 3, 3, 4), dtype="float32"))
    channels.data[1, 2, 0, 3] = 5.0
    assert dead_unit_fraction(channels) == 0.75


def test_grad_norm_is_the_norm_of_the_step_gradient_and_update_ratio_the_relative_change():
    # One batch per epoch: the epoch's mean gradient norm is that one step's.
    model = model_with(Dense(3, name="only", input_shape=(FEATURES,)))
    model(X[:1])
    layer = model.layers[0]
    loss = model.loss(Y, model(X))
    loss.backward()
    expected_grad_norm = math.sqrt(sum(float((w.grad.numpy() ** 2).sum())
                                       for w in layer.trainable_weights))
    before = [w.numpy().copy() for w in layer.trainable_weights]
    for weight in layer.trainable_weights:
        weight.grad = None
    history = model.fit(X, Y, batch_size=SAMPLES, epochs=1, shuffle=False, verbose=0,
                        callbacks=[GradientMonitor()]).history
    assert history["grad_norm/only"][0] == pytest.approx(expected_grad_norm, rel=1e-5)
    after = [w.numpy() for w in layer.trainable_weights]
    moved = math.sqrt(sum(float(((a - b) ** 2).sum()) for a, b in zip(after, before)))
    weight_norm = math.sqrt(sum(float((a ** 2).sum()) for a in after))
    assert history["weight_norm/only"][0] == pytest.approx(weight_norm, rel=1e-5)
    assert history["update_ratio/only"][0] == pytest.approx(moved / weight_norm, rel=1e-4)
    # SGD moved the weights by learning_rate x gradient.
    assert moved == pytest.approx(0.1 * expected_grad_norm, rel=1e-4)


def test_hooks_are_removed_when_training_ends():
    model = model_with(Dense(4, activation="relu", name="hidden", input_shape=(FEATURES,)),
                       Dense(3))
    model.fit(X, Y, epochs=1, verbose=0, callbacks=[GradientMonitor()])
    hidden = model.layers[0]
    assert not hidden._forward_hooks
    assert all(not weight._hooks for weight in model.trainable_weights)


def test_log_file_and_plot(tmp_path):
    pytest.importorskip("matplotlib")
    model = model_with(Dense(4, activation="relu", name="hidden", input_shape=(FEATURES,)),
                       Dense(3, name="output"))
    monitor = GradientMonitor(log_dir=tmp_path / "logs", plot_path=tmp_path / "gradients.png")
    model.fit(X, Y, epochs=2, verbose=0, callbacks=[monitor])
    logged = json.loads((tmp_path / "logs" / "gradient_monitor.json").read_text())
    assert logged == monitor.history and len(logged["grad_norm/hidden"]) == 2
    assert (tmp_path / "gradients.png").read_bytes()[:4] == b"\x89PNG"
