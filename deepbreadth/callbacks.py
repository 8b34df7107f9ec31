"""Callbacks: code that `fit`, `evaluate` and `predict` call at fixed moments.

    early_stop = EarlyStopping(monitor="val_loss", patience=3, restore_best_weights=True)
    model.fit(x, y, validation_split=0.1, epochs=50, callbacks=[early_stop])

A callback subclasses `Callback` and overrides the hooks it needs, with
Keras's names and arguments: `on_train_begin(logs)`, `on_epoch_end(epoch, logs)`,
`on_train_batch_end(batch, logs)`, ... `logs` is a dict of the numbers so far
(`{'loss': 0.31, 'accuracy': 0.91}`; at the end of an epoch also `val_loss`, ...).
The model is in `self.model`; setting `self.model.stop_training = True` ends
`fit` after the current batch.

The progress display is a callback too (`ProgressBar`), as in Keras, so the
training loop itself never prints.
"""
import csv
import math
import os
import sys
import time
import warnings

import numpy as np


# ----------------------------------------------------------------------------
# The base class, and the list that calls every callback in turn
# ----------------------------------------------------------------------------
class Callback:
    """Base class: every hook does nothing until a subclass overrides it."""

    def __init__(self):
        self.model = None
        self.params = {}

    def set_model(self, model):
        self.model = model

    def set_params(self, params):
        """What the loop will do: {'epochs': ..., 'steps': ..., 'verbose': ...}."""
        self.params = params

    # Keras's older names for the training-batch hooks; the new names call them,
    # so a callback may override either.
    def on_batch_begin(self, batch, logs=None):
        pass

    def on_batch_end(self, batch, logs=None):
        pass

    def on_train_batch_begin(self, batch, logs=None):
        self.on_batch_begin(batch, logs)

    def on_train_batch_end(self, batch, logs=None):
        self.on_batch_end(batch, logs)

    def on_train_begin(self, logs=None):
        pass

    def on_train_end(self, logs=None):
        pass

    def on_epoch_begin(self, epoch, logs=None):
        pass

    def on_epoch_end(self, epoch, logs=None):
        pass

    def on_test_begin(self, logs=None):
        pass

    def on_test_end(self, logs=None):
        pass

    def on_test_batch_begin(self, batch, logs=None):
        pass

    def on_test_batch_end(self, batch, logs=None):
        pass

    def on_predict_begin(self, logs=None):
        pass

    def on_predict_end(self, logs=None):
        pass

    def on_predict_batch_begin(self, batch, logs=None):
        pass

    def on_predict_batch_end(self, batch, logs=None):
        pass


class CallbackList:
    """The callbacks of one fit/evaluate/predict call, called in order.

    The progress bar goes first and History last, as in Keras: History then
    records the logs after every other callback has added to them (the 'lr'
    that LearningRateScheduler writes, for one).
    """

    def __init__(self, callbacks=None, model=None, params=None, history=None, progress=None):
        self.callbacks = list(callbacks or [])
        for callback in self.callbacks:
            if not isinstance(callback, Callback):
                raise TypeError(
                    f"callbacks must be Callback objects, got {callback!r}; subclass "
                    "deepbreadth.callbacks.Callback or use LambdaCallback(on_epoch_end=...)"
                )
        if progress is not None:
            self.callbacks.insert(0, progress)
        if history is not None:
            self.callbacks.append(history)
        for callback in self.callbacks:
            callback.set_model(model)
            callback.set_params(dict(params or {}))

    def call(self, hook, *args):
        """Call `hook` (a method name such as 'on_epoch_end') on every callback."""
        for callback in self.callbacks:
            getattr(callback, hook)(*args)

    def contains(self, callback_class):
        return any(isinstance(callback, callback_class) for callback in self.callbacks)


# ----------------------------------------------------------------------------
# History and the progress bar (fit adds both by itself)
# ----------------------------------------------------------------------------
class History(Callback):
    """Records the logs of every epoch: `history.history['val_loss'][-1]`.

    `fit` returns it and keeps it as `model.history`.
    """

    def __init__(self):
        super().__init__()
        self.history = {}
        self.epoch = []

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for name, value in (logs or {}).items():
            self.history.setdefault(name, []).append(value)


def _format_value(value):
    """Four decimals as Keras shows them; tiny values in scientific notation."""
    if value != 0 and abs(value) < 1e-3:
        return f"{value:.4e}"
    return f"{value:.4f}"


def _format_duration(seconds):
    """'7s', '1:05' or '1:02:03' for an estimated time left."""
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
    if seconds >= 60:
        return f"{seconds // 60}:{seconds % 60:02d}"
    return f"{seconds}s"


def _format_time_per_step(seconds):
    if seconds >= 1:
        return f"{seconds:.0f}s/step"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.0f}ms/step"
    return f"{seconds * 1e6:.0f}us/step"


class ProgressBar(Callback):
    """Keras's progress display for fit, evaluate and predict.

    verbose=1 in a terminal redraws one line in place while an epoch runs:
        1875/1875 [==============================] - 3s 1ms/step - loss: 0.2900 - accuracy: 0.9100
    verbose=1 elsewhere (a pipe, a log file, CI) prints only that final line,
    since a line redrawn with carriage returns makes unreadable logs.
    verbose=2 prints one short line per epoch, without the bar.
    """

    # Redrawing the line more often than this costs time and shows nothing new.
    REDRAW_INTERVAL = 0.05

    def __init__(self, verbose=1, interactive=None, width=30):
        super().__init__()
        self.verbose = verbose
        self.interactive = interactive  # None: ask whether stdout is a terminal
        self.width = width
        self._inside_fit = False
        self._target = 0
        self._start_time = 0.0
        self._last_draw_time = 0.0
        self._last_line_length = 0

    def _draws_in_place(self):
        if self.verbose != 1:
            return False
        if self.interactive is not None:
            return self.interactive
        return hasattr(sys.stdout, "isatty") and sys.stdout.isatty()

    # -- fit -------------------------------------------------------------------
    def on_train_begin(self, logs=None):
        self._inside_fit = True

    def on_train_end(self, logs=None):
        self._inside_fit = False

    def on_epoch_begin(self, epoch, logs=None):
        print(f"Epoch {epoch + 1}/{self.params.get('epochs', '?')}", flush=True)
        self._start(self.params.get("steps"))

    def on_train_batch_end(self, batch, logs=None):
        self._update(batch + 1, logs)

    def on_epoch_end(self, epoch, logs=None):
        self._finish(logs)

    # -- evaluate and predict (the validation pass inside fit stays quiet) -------
    def on_test_begin(self, logs=None):
        if not self._inside_fit:
            self._start(self.params.get("steps"))

    def on_test_batch_end(self, batch, logs=None):
        if not self._inside_fit:
            self._update(batch + 1, logs)

    def on_test_end(self, logs=None):
        if not self._inside_fit:
            self._finish(logs)

    def on_predict_begin(self, logs=None):
        self._start(self.params.get("steps"))

    def on_predict_batch_end(self, batch, logs=None):
        self._update(batch + 1, None)

    def on_predict_end(self, logs=None):
        self._finish(None)

    # -- drawing -------------------------------------------------------------------
    def _start(self, target):
        self._target = target or 0
        self._current = 0
        self._start_time = time.perf_counter()
        self._last_draw_time = 0.0
        self._last_line_length = 0

    def _update(self, current, logs):
        self._current = current
        if not self._draws_in_place():
            return
        now = time.perf_counter()
        if now - self._last_draw_time < self.REDRAW_INTERVAL and current < self._target:
            return
        self._last_draw_time = now
        elapsed = now - self._start_time
        time_left = elapsed / current * (self._target - current) if current else 0.0
        line = f"{self._counter(current)} {self._bar(current)} - ETA: {_format_duration(time_left)}"
        self._draw(line + self._format_logs(logs))

    def _finish(self, logs):
        elapsed = time.perf_counter() - self._start_time
        steps = max(self._current, 1)
        timing = f"{elapsed:.0f}s {_format_time_per_step(elapsed / steps)}"
        if self.verbose == 2:
            line = f"{self._counter(self._current)} - {elapsed:.0f}s - " \
                   f"{_format_time_per_step(elapsed / steps)}"
        else:
            line = f"{self._counter(self._current)} {self._bar(self._current)} - {timing}"
        self._draw(line + self._format_logs(logs))
        print(flush=True)

    def _counter(self, current):
        digits = len(str(self._target))
        return f"{current:>{digits}}/{self._target}"

    def _bar(self, current):
        done = self.width * current // self._target if self._target else self.width
        if done >= self.width:
            return "[" + "=" * self.width + "]"
        filled = "=" * (done - 1) + ">" if done > 0 else ""
        return "[" + filled + "." * (self.width - len(filled)) + "]"

    @staticmethod
    def _format_logs(logs):
        return "".join(f" - {name}: {_format_value(value)}" for name, value in (logs or {}).items()
                       if isinstance(value, (int, float, np.floating)))

    def _draw(self, line):
        """Overwrite the current line in a terminal; elsewhere only the final one is drawn."""
        if self._draws_in_place():
            padding = " " * max(self._last_line_length - len(line), 0)
            print("\r" + line + padding, end="", flush=True)
            self._last_line_length = len(line)
        else:
            print(line, end="")


# ----------------------------------------------------------------------------
# Watching a monitored value: shared by EarlyStopping, ModelCheckpoint, ReduceLROnPlateau
# ----------------------------------------------------------------------------
def _higher_is_better(monitor, mode, callback_name):
    """'max' for accuracies, 'min' for losses and errors, or what `mode` says."""
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"{callback_name}: mode must be 'auto', 'min' or 'max', got {mode!r}")
    if mode == "auto":
        return "acc" in monitor or monitor.startswith("fmeasure") or "auc" in monitor
    return mode == "max"


def _monitored_value(logs, monitor, callback_name):
    """logs[monitor], or None with a warning that lists what could be monitored."""
    value = (logs or {}).get(monitor)
    if value is None:
        warnings.warn(
            f"{callback_name} monitors '{monitor}', which is not in the logs (available: "
            f"{', '.join(sorted(logs or {})) or 'none'}); for 'val_...' values pass "
            "validation_data or validation_split to fit",
            RuntimeWarning, stacklevel=3,
        )
    return value


# ----------------------------------------------------------------------------
# Built-in callbacks
# ----------------------------------------------------------------------------
class EarlyStopping(Callback):
    """Stop training when `monitor` has not improved for `patience` epochs.

    An improvement must beat the best value so far by more than `min_delta`.
    With `baseline`, training also stops if the value never beats it within
    `patience` epochs. With `restore_best_weights=True`, the weights of the best
    epoch are put back when training stops early.
    """

    def __init__(self, monitor="val_loss", min_delta=0, patience=0, verbose=0, mode="auto",
                 baseline=None, restore_best_weights=False, start_from_epoch=0):
        super().__init__()
        self.monitor = monitor
        self.min_delta = abs(min_delta)
        self.patience = patience
        self.verbose = verbose
        self.baseline = baseline
        self.restore_best_weights = restore_best_weights
        self.start_from_epoch = start_from_epoch
        self.higher_is_better = _higher_is_better(monitor, mode, "EarlyStopping")

    def _improves_on(self, value, reference):
        if reference is None:
            return True
        if self.higher_is_better:
            return value - self.min_delta > reference
        return value + self.min_delta < reference

    def on_train_begin(self, logs=None):
        self.wait = 0
        self.stopped_epoch = 0
        self.best = None
        self.best_epoch = 0
        self.best_weights = None

    def on_epoch_end(self, epoch, logs=None):
        value = _monitored_value(logs, self.monitor, "EarlyStopping")
        if value is None or epoch < self.start_from_epoch:
            return
        self.wait += 1
        if self._improves_on(value, self.best):
            self.best = value
            self.best_epoch = epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            # Beating the best so far only counts once the baseline is beaten too.
            if self.baseline is None or self._improves_on(value, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True
            if self.restore_best_weights and self.best_weights is not None:
                if self.verbose:
                    print(f"Restoring model weights from the end of the best epoch: "
                          f"{self.best_epoch + 1}.")
                self.model.set_weights(self.best_weights)

    def on_train_end(self, logs=None):
        if self.stopped_epoch > 0 and self.verbose:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping")


class ModelCheckpoint(Callback):
    """Save the model (or only its weights) at the end of every epoch.

    `filepath` may hold format fields filled from the epoch (counted from 1)
    and the logs: 'weights.{epoch:02d}-{val_loss:.2f}.npz'. With
    `save_best_only=True` a file is written only when `monitor` improved.
    Files are written atomically, so an interrupted run never leaves a
    half-written checkpoint.
    """

    def __init__(self, filepath, monitor="val_loss", verbose=0, save_best_only=False,
                 save_weights_only=False, mode="auto", save_freq="epoch",
                 initial_value_threshold=None):
        super().__init__()
        if save_freq != "epoch":
            raise ValueError(
                f"ModelCheckpoint: only save_freq='epoch' is supported, got {save_freq!r}")
        self.filepath = os.fspath(filepath)
        self.monitor = monitor
        self.verbose = verbose
        self.save_best_only = save_best_only
        self.save_weights_only = save_weights_only
        self.higher_is_better = _higher_is_better(monitor, mode, "ModelCheckpoint")
        self.best = initial_value_threshold

    def _path_for(self, epoch, logs):
        try:
            return self.filepath.format(epoch=epoch + 1, **(logs or {}))
        except KeyError as error:
            raise KeyError(
                f"ModelCheckpoint: filepath {self.filepath!r} uses {{{error.args[0]}}}, which is "
                f"not in the logs (available: epoch, {', '.join(sorted(logs or {}))})"
            ) from None

    def _improved(self, value):
        if self.best is None:
            return True
        return value > self.best if self.higher_is_better else value < self.best

    def on_epoch_end(self, epoch, logs=None):
        path = self._path_for(epoch, logs)
        if self.save_best_only:
            value = _monitored_value(logs, self.monitor, "ModelCheckpoint")
            if value is None or not self._improved(value):
                return
            if self.verbose:
                print(f"Epoch {epoch + 1}: {self.monitor} improved from {self.best} to "
                      f"{value:.5f}, saving model to {path}")
            self.best = value
        elif self.verbose:
            print(f"Epoch {epoch + 1}: saving model to {path}")
        if self.save_weights_only:
            self.model.save_weights(path)
        else:
            self.model.save(path)


class LearningRateScheduler(Callback):
    """Set the learning rate at the start of every epoch to `schedule(epoch, lr)`.

    `epoch` counts from 0; `lr` is the current rate. A schedule taking only
    the epoch works too. The rate used is recorded in the logs as 'lr'.
    """

    def __init__(self, schedule, verbose=0):
        super().__init__()
        self.schedule = schedule
        self.verbose = verbose

    def on_epoch_begin(self, epoch, logs=None):
        optimizer = self.model.optimizer
        try:
            rate = self.schedule(epoch, float(optimizer.learning_rate))
        except TypeError:
            rate = self.schedule(epoch)  # a schedule of the epoch alone, as Keras allows
        if not isinstance(rate, (int, float, np.floating)) or not math.isfinite(rate):
            raise ValueError(
                f"LearningRateScheduler: the schedule returned {rate!r} for epoch {epoch}; "
                "it must return a finite number"
            )
        optimizer.learning_rate = float(rate)
        if self.verbose:
            print(f"\nEpoch {epoch + 1}: LearningRateScheduler setting learning rate to {rate}.")

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["lr"] = float(self.model.optimizer.learning_rate)


class ReduceLROnPlateau(Callback):
    """Multiply the learning rate by `factor` when `monitor` stops improving.

    After `patience` epochs without an improvement larger than `min_delta`
    the rate drops (never below `min_lr`); then `cooldown` epochs pass before
    the waiting starts again.
    """

    def __init__(self, monitor="val_loss", factor=0.1, patience=10, verbose=0, mode="auto",
                 min_delta=1e-4, cooldown=0, min_lr=0.0):
        super().__init__()
        if not 0 < factor < 1:
            raise ValueError(f"ReduceLROnPlateau: factor must be between 0 and 1, got {factor}")
        self.monitor = monitor
        self.factor = factor
        self.patience = patience
        self.verbose = verbose
        self.min_delta = min_delta
        self.cooldown = cooldown
        self.min_lr = min_lr
        self.higher_is_better = _higher_is_better(monitor, mode, "ReduceLROnPlateau")

    def on_train_begin(self, logs=None):
        self.best = None
        self.wait = 0
        self.cooldown_counter = 0

    def _improves_on_best(self, value):
        if self.best is None:
            return True
        if self.higher_is_better:
            return value > self.best + self.min_delta
        return value < self.best - self.min_delta

    def on_epoch_end(self, epoch, logs=None):
        optimizer = self.model.optimizer
        if logs is not None:
            logs["lr"] = float(optimizer.learning_rate)
        value = _monitored_value(logs, self.monitor, "ReduceLROnPlateau")
        if value is None:
            return
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        if self._improves_on_best(value):
            self.best = value
            self.wait = 0
            return
        if self.cooldown_counter > 0:
            return
        self.wait += 1
        if self.wait >= self.patience:
            old_rate = float(optimizer.learning_rate)
            if old_rate > self.min_lr:
                new_rate = max(old_rate * self.factor, self.min_lr)
                optimizer.learning_rate = new_rate
                if self.verbose:
                    print(f"\nEpoch {epoch + 1}: ReduceLROnPlateau reducing learning rate "
                          f"to {new_rate}.")
                self.cooldown_counter = self.cooldown
                self.wait = 0


class CSVLogger(Callback):
    """Append one row per epoch (epoch, then the logs in name order) to a CSV file."""

    def __init__(self, filename, separator=",", append=False):
        super().__init__()
        self.filename = os.fspath(filename)
        self.separator = separator
        self.append = append
        self._file = None
        self._writer = None
        self._columns = None

    def on_train_begin(self, logs=None):
        appending = self.append and os.path.exists(self.filename)
        # An appended file already has its header, so the columns are read from it.
        self._columns = self._existing_columns() if appending else None
        self._file = open(self.filename, "a" if appending else "w", newline="", encoding="utf-8")

    def _existing_columns(self):
        with open(self.filename, newline="", encoding="utf-8") as file:
            header = next(csv.reader(file, delimiter=self.separator), None)
        return header[1:] if header else None

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self._columns is None:
            self._columns = sorted(logs)
            self._write_row(["epoch"] + self._columns)
        self._write_row([epoch] + [logs.get(column, "NA") for column in self._columns])

    def _write_row(self, row):
        if self._writer is None:
            self._writer = csv.writer(self._file, delimiter=self.separator)
        self._writer.writerow(row)
        self._file.flush()  # a crash later in training keeps the rows written so far

    def on_train_end(self, logs=None):
        if self._file is not None:
            self._file.close()
        self._file = None
        self._writer = None


class TerminateOnNaN(Callback):
    """Stop training quietly when the loss becomes NaN or infinite.

    Without it, fit raises an error at the first such batch; with it, fit
    ends normally and the weights keep their last finite values.
    """

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(loss):
            print(f"Batch {batch}: invalid loss, terminating training")
            self.model.stop_training = True


class LambdaCallback(Callback):
    """A callback from plain functions: LambdaCallback(on_epoch_end=lambda epoch, logs: ...).

    Accepted: on_epoch_begin/end(epoch, logs), on_batch_begin/end(batch, logs),
    on_train_begin/end(logs), and any other hook name of Callback.
    """

    def __init__(self, **hooks):
        super().__init__()
        for name, function in hooks.items():
            if not (name.startswith("on_") and hasattr(Callback, name)):
                raise TypeError(f"LambdaCallback: unknown hook {name!r}; use the names of "
                                "Callback's methods, such as on_epoch_end")
            if function is not None:
                setattr(self, name, function)
