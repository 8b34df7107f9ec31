"""Callbacks: the order fit calls them in, History, the progress display,
EarlyStopping, ModelCheckpoint, the learning-rate callbacks, CSVLogger,
TerminateOnNaN and LambdaCallback."""
import csv
import math
import os

import numpy as np
import pytest

import deepbreadth as db
from deepbreadth import callbacks, losses, optimizers
from deepbreadth.callbacks import (Callback, CSVLogger, EarlyStopping, LambdaCallback,
                                   LearningRateScheduler, ModelCheckpoint, ProgressBar,
                                   ReduceLROnPlateau, TerminateOnNaN)
from deepbreadth.layers import Dense
from deepbreadth.models import Sequential, load_model


@pytest.fixture(autouse=True)
def seeded():
    db.set_seed(0)


def data(count=32):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(count, 3)).astype(np.float32)
    return x, (x.sum(axis=1) > 0).astype(np.int64)


def model_for_test(learning_rate=0.01):
    model = Sequential([Dense(4, activation="relu", input_shape=(3,)), Dense(2)])
    model.compile(optimizer=optimizers.SGD(learning_rate=learning_rate),
                  loss=losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    return model


def scripted(name, values):
    """A callback that overwrites logs[name] at each epoch's end with the next value,
    so the callbacks after it see a chosen sequence."""
    return LambdaCallback(on_epoch_end=lambda epoch, logs: logs.update({name: values[epoch]}))


class Recorder(Callback):
    """Writes down every hook call, in order."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def __getattribute__(self, name):
        attribute = super().__getattribute__(name)
        if name.startswith("on_") and callable(attribute):
            def recorded(*args):
                self.calls.append(name)
                return attribute(*args)
            return recorded
        return attribute


# ----------------------------------------------------------------------------
# The hooks
# ----------------------------------------------------------------------------
def test_fit_calls_the_hooks_in_keras_order():
    recorder = Recorder()
    model = model_for_test()
    x, y = data(8)
    model.fit(x, y, batch_size=4, epochs=1, validation_data=(x[:4], y[:4]), verbose=0,
              callbacks=[recorder])
    calls = [call for call in recorder.calls if call not in ("on_batch_begin", "on_batch_end")]
    assert calls == [
        "on_train_begin", "on_epoch_begin",
        "on_train_batch_begin", "on_train_batch_end", "on_train_batch_begin", "on_train_batch_end",
        "on_test_begin", "on_test_batch_begin", "on_test_batch_end", "on_test_end",
        "on_epoch_end", "on_train_end",
    ]
    assert recorder.model is model
    assert recorder.params == {"epochs": 1, "steps": 2, "verbose": 0}


def test_evaluate_and_predict_call_their_hooks():
    recorder = Recorder()
    model = model_for_test()
    x, y = data(8)
    model.evaluate(x, y, verbose=0, callbacks=[recorder])
    model.predict(x, callbacks=[recorder])
    assert recorder.calls == [
        "on_test_begin", "on_test_batch_begin", "on_test_batch_end", "on_test_end",
        "on_predict_begin", "on_predict_batch_begin", "on_predict_batch_end", "on_predict_end",
    ]


def test_batch_logs_are_running_means_and_old_batch_hook_names_work():
    seen = []
    model = model_for_test()
    x, y = data(8)
    keep = LambdaCallback(on_batch_end=lambda batch, logs: seen.append((batch, dict(logs))))
    model.fit(x, y, batch_size=4, verbose=0, callbacks=[keep])
    assert [batch for batch, _ in seen] == [0, 1]
    assert set(seen[0][1]) == {"loss", "accuracy"}


def test_stop_training_ends_the_epoch_after_the_current_batch():
    model = model_for_test()
    steps = []

    def stop_at_second(batch, logs):
        steps.append(batch)
        if batch == 1:
            model.stop_training = True

    history = model.fit(*data(16), batch_size=4, epochs=3, verbose=0,
                        callbacks=[LambdaCallback(on_train_batch_end=stop_at_second)])
    assert steps == [0, 1] and len(history.epoch) == 1


def test_callbacks_must_be_callbacks():
    with pytest.raises(TypeError, match="Callback objects"):
        model_for_test().fit(*data(), callbacks=[print], verbose=0)
    with pytest.raises(TypeError, match="unknown hook"):
        LambdaCallback(on_epoch_finish=print)


# ----------------------------------------------------------------------------
# The progress display
# ----------------------------------------------------------------------------
def test_progress_outside_a_terminal_is_one_line_per_epoch(capsys):
    model = model_for_test()
    x, y = data(16)
    model.fit(x, y, batch_size=4, epochs=2, validation_data=(x, y))
    out = capsys.readouterr().out
    assert "\r" not in out
    lines = out.strip().splitlines()
    assert lines[0] == "Epoch 1/2" and lines[2] == "Epoch 2/2" and len(lines) == 4
    assert lines[1].startswith("4/4 [==============================] - ")
    for name in ("loss", "accuracy", "val_loss", "val_accuracy"):
        assert f" - {name}: " in lines[1]
    assert lines[1].index(" - loss: ") < lines[1].index(" - val_loss: ")


def test_progress_verbose_2_and_0(capsys):
    model = model_for_test()
    model.fit(*data(16), batch_size=4, epochs=1, verbose=2)
    line = capsys.readouterr().out.strip().splitlines()[1]
    assert line.startswith("4/4 - ") and "[" not in line and "/step - loss: " in line
    model.fit(*data(16), verbose=0)
    model.evaluate(*data(16), verbose=0)
    model.predict(data(16)[0], verbose=0)
    assert capsys.readouterr().out == ""


def test_evaluate_prints_its_own_line(capsys):
    model_for_test().evaluate(*data(16), batch_size=8)
    out = capsys.readouterr().out
    assert out.startswith("2/2 [====") and " - loss: " in out and out.endswith("\n")


def test_progress_in_a_terminal_redraws_in_place_with_an_eta(capsys, monkeypatch):
    monkeypatch.setattr(ProgressBar, "REDRAW_INTERVAL", 0.0)
    bar = ProgressBar(verbose=1, interactive=True)
    bar.set_params({"epochs": 3, "steps": 10})
    bar.on_train_begin()
    bar.on_epoch_begin(0)
    for step in range(10):
        bar.on_train_batch_end(step, {"loss": 1.0 / (step + 1)})
    bar.on_epoch_end(0, {"loss": 0.1, "val_loss": 0.2})
    out = capsys.readouterr().out
    assert out.startswith("Epoch 1/3\n")
    frames = out[len("Epoch 1/3\n"):].split("\r")[1:]
    assert frames[0].startswith(" 1/10 [==>...........................] - ETA: ")
    assert "loss: 1.0000" in frames[0]
    assert frames[-1].startswith("10/10 [==============================] - ")
    assert "ms/step" in frames[-1] or "us/step" in frames[-1]
    assert frames[-1].rstrip().endswith("loss: 0.1000 - val_loss: 0.2000")
    assert out.endswith("\n")


def test_progress_formats_small_values_in_scientific_notation(capsys):
    bar = ProgressBar(verbose=2)
    bar.set_params({"epochs": 1, "steps": 1})
    bar.on_epoch_begin(0)
    bar.on_train_batch_end(0, {"loss": 0.00001234})
    bar.on_epoch_end(0, {"loss": 0.00001234})
    assert "loss: 1.2340e-05" in capsys.readouterr().out


# ----------------------------------------------------------------------------
# History
# ----------------------------------------------------------------------------
def test_history_holds_one_value_per_epoch():
    model = model_for_test()
    history = model.fit(*data(), epochs=3, verbose=0)
    assert history.epoch == [0, 1, 2]
    assert all(len(values) == 3 for values in history.history.values())
    assert all(isinstance(value, float) for value in history.history["loss"])


# ----------------------------------------------------------------------------
# EarlyStopping
# ----------------------------------------------------------------------------
def test_early_stopping_waits_patience_epochs_after_the_best():
    stopper = EarlyStopping(monitor="val_loss", patience=2)
    values = [1.0, 0.8, 0.9, 0.85, 0.7, 0.6]
    history = model_for_test().fit(*data(), epochs=6, verbose=0,
                                   callbacks=[scripted("val_loss", values), stopper])
    # best at epoch 1; epochs 2 and 3 do not improve -> stop after epoch 3
    assert history.epoch == [0, 1, 2, 3]
    assert stopper.stopped_epoch == 3 and stopper.best == 0.8


def test_early_stopping_min_delta_and_mode():
    stopper = EarlyStopping(monitor="val_accuracy", min_delta=0.05, patience=1)
    values = [0.5, 0.52, 0.9]  # +0.02 is not an improvement of more than 0.05
    history = model_for_test().fit(*data(), epochs=3, verbose=0,
                                   callbacks=[scripted("val_accuracy", values), stopper])
    assert stopper.higher_is_better and history.epoch == [0, 1]
    with pytest.raises(ValueError, match="mode must be"):
        EarlyStopping(mode="lowest")


def test_early_stopping_baseline_must_be_beaten():
    # As in Keras: improving on the best so far without beating the baseline
    # does not reset the wait, so the first epoch without improvement stops.
    values = [0.9, 0.8, 0.85, 0.86, 0.3]
    for baseline, epochs_run in ((0.5, [0, 1, 2]), (None, [0, 1, 2, 3])):
        stopper = EarlyStopping(monitor="val_loss", patience=2, baseline=baseline)
        history = model_for_test().fit(*data(), epochs=5, verbose=0,
                                       callbacks=[scripted("val_loss", values), stopper])
        assert history.epoch == epochs_run


def test_early_stopping_restores_the_best_weights():
    saved = []
    model = model_for_test(learning_rate=0.1)
    keep = LambdaCallback(on_epoch_end=lambda epoch, logs: saved.append(model.get_weights()))
    stopper = EarlyStopping(monitor="val_loss", patience=1, restore_best_weights=True)
    model.fit(*data(), epochs=5, verbose=0,
              callbacks=[scripted("val_loss", [0.9, 0.5, 0.7, 0.8, 0.9]), keep, stopper])
    assert len(saved) == 3
    for got, best in zip(model.get_weights(), saved[1]):
        np.testing.assert_array_equal(got, best)
    assert not np.array_equal(saved[1][0], saved[2][0])


def test_early_stopping_warns_when_the_value_is_missing():
    with pytest.warns(RuntimeWarning, match="val_loss.*validation_data"):
        model_for_test().fit(*data(), epochs=1, verbose=0, callbacks=[EarlyStopping()])


# ----------------------------------------------------------------------------
# ModelCheckpoint
# ----------------------------------------------------------------------------
def test_checkpoint_path_is_formatted_from_epoch_and_logs(tmp_path):
    x, y = data()
    path = str(tmp_path / "weights.{epoch:02d}-{val_loss:.2f}.npz")
    model = model_for_test()
    model.fit(x, y, epochs=2, verbose=0, validation_data=(x, y),
              callbacks=[scripted("val_loss", [0.512, 0.25]),
                         ModelCheckpoint(path, save_weights_only=True)])
    assert sorted(os.listdir(tmp_path)) == ["weights.01-0.51.npz", "weights.02-0.25.npz"]
    twin = model_for_test()
    twin.load_weights(str(tmp_path / "weights.02-0.25.npz"))
    np.testing.assert_array_equal(twin.predict(x), model.predict(x))


def test_checkpoint_save_best_only_writes_on_improvement(tmp_path):
    path = str(tmp_path / "best.keras")
    written = []
    checkpoint = ModelCheckpoint(path, monitor="val_loss", save_best_only=True)
    model = model_for_test()
    record = LambdaCallback(on_epoch_end=lambda epoch, logs: written.append(
        os.path.getmtime(path) if os.path.exists(path) else None))
    model.fit(*data(), epochs=4, verbose=0,
              callbacks=[scripted("val_loss", [0.9, 0.95, 0.5, 0.6]), checkpoint, record])
    assert checkpoint.best == 0.5
    assert written[0] is not None and written[1] == written[0] and written[3] == written[2]
    assert isinstance(load_model(path), Sequential)


def test_checkpoint_names_a_missing_format_field(tmp_path):
    with pytest.raises(KeyError, match="val_accuracy"):
        model_for_test().fit(*data(), epochs=1, verbose=0, callbacks=[
            ModelCheckpoint(str(tmp_path / "{val_accuracy:.2f}.npz"))])


# ----------------------------------------------------------------------------
# Learning rate
# ----------------------------------------------------------------------------
def test_learning_rate_scheduler_sets_the_rate_each_epoch():
    model = model_for_test(learning_rate=0.1)
    scheduler = LearningRateScheduler(lambda epoch, lr: lr * 0.5 if epoch > 0 else lr)
    history = model.fit(*data(), epochs=3, verbose=0, callbacks=[scheduler])
    assert history.history["lr"] == pytest.approx([0.1, 0.05, 0.025])
    assert model.optimizer.learning_rate == pytest.approx(0.025)


def test_learning_rate_scheduler_takes_a_schedule_of_the_epoch_alone():
    model = model_for_test()
    model.fit(*data(), epochs=2, verbose=0,
              callbacks=[LearningRateScheduler(lambda epoch: 0.001 * (epoch + 1))])
    assert model.optimizer.learning_rate == pytest.approx(0.002)
    with pytest.raises(ValueError, match="finite number"):
        model.fit(*data(), verbose=0, callbacks=[LearningRateScheduler(lambda epoch: math.nan)])


def test_reduce_lr_on_plateau_with_patience_cooldown_and_floor():
    model = model_for_test(learning_rate=1.0)
    reducer = ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=2, cooldown=1, min_lr=0.2)
    rates = []
    record = LambdaCallback(
        on_epoch_end=lambda epoch, logs: rates.append(model.optimizer.learning_rate))
    model.fit(*data(), epochs=8, verbose=0,
              callbacks=[scripted("val_loss", [1.0] * 8), reducer, record])
    # No improvement after epoch 0: two epochs of waiting, then a reduction.
    # As in Keras, the epoch that ends a cooldown already counts as waiting;
    # the third reduction (to 0.125) stops at min_lr.
    assert rates == pytest.approx([1.0, 1.0, 0.5, 0.5, 0.25, 0.25, 0.2, 0.2])
    model.fit(*data(), epochs=4, verbose=0,
              callbacks=[scripted("val_loss", [1.0] * 4), reducer, record])
    assert model.optimizer.learning_rate == pytest.approx(0.2)  # min_lr
    with pytest.raises(ValueError, match="factor"):
        ReduceLROnPlateau(factor=1.5)


# ----------------------------------------------------------------------------
# CSVLogger, TerminateOnNaN
# ----------------------------------------------------------------------------
def test_csv_logger_writes_a_header_and_a_row_per_epoch(tmp_path):
    path = tmp_path / "log.csv"
    model = model_for_test()
    model.fit(*data(), epochs=2, verbose=0, callbacks=[CSVLogger(str(path))])
    model.fit(*data(), epochs=1, verbose=0, callbacks=[CSVLogger(str(path), append=True)])
    with open(path, newline="") as file:
        rows = list(csv.reader(file))
    assert rows[0] == ["epoch", "accuracy", "loss"]
    assert [row[0] for row in rows[1:]] == ["0", "1", "0"]
    assert float(rows[1][2]) > 0


def test_terminate_on_nan_stops_quietly(capsys):
    x = np.ones((8, 3), np.float32) * 1e30
    y = np.zeros((8, 2), np.float32)
    model = Sequential([Dense(2, input_shape=(3,))])
    model.compile("sgd", "mse")
    with np.errstate(over="ignore", invalid="ignore"):
        history = model.fit(x, y, batch_size=4, epochs=3, verbose=0, callbacks=[TerminateOnNaN()])
    assert history.epoch == [0]
    assert "invalid loss, terminating training" in capsys.readouterr().out
    assert all(np.isfinite(w).all() for w in model.get_weights())


def test_keras_namespace_has_the_callbacks():
    keras_callbacks = db.keras.callbacks
    for name in ("Callback", "History", "EarlyStopping", "ModelCheckpoint", "LearningRateScheduler",
                 "ReduceLROnPlateau", "CSVLogger", "TerminateOnNaN", "LambdaCallback"):
        assert getattr(keras_callbacks, name) is getattr(callbacks, name)
