"""GradientMonitor: per-layer gradient statistics during `fit`, epoch by epoch.

    monitor = GradientMonitor(plot_path="gradients.png")
    history = model.fit(x, y, epochs=5, callbacks=[monitor])
    history.history["grad_norm/dense"]      # one number per epoch

For every layer with trainable weights it records, at the end of each epoch:

- `grad_norm/<layer>`: the L2 norm of the gradient of all the layer's
  weights together, averaged over the epoch's training steps. Vanishing
  gradients show up here as norms that shrink layer by layer towards the
  input; exploding ones as norms that grow.
- `weight_norm/<layer>`: the L2 norm of the layer's weights.
- `update_ratio/<layer>`: how far the weights moved during the epoch,
  |w_end - w_start| / |w_end|. Around 1e-3 per step is the usual rule of
  thumb; much smaller and the layer barely learns, much larger and it is
  unstable.
- `dead_relu/<layer>`, for Dense and Conv layers with a relu activation: the
  fraction of units (Dense units, Conv channels) whose output was zero for
  every sample of the epoch's last training batch. Such a unit passes no
  gradient back, so it may never recover.

The numbers go into the epoch's `logs`, so `History` (and any callback that
reads logs, such as CSVLogger) keeps them.

How the gradients are caught: the training loop sets every `.grad` back to
None after each step, so by the end of an epoch none is left to read.
Instead a tensor hook on each trainable weight (`register_hook`) sees each
gradient as backward produces it. A forward hook on each relu layer sees its
outputs. All hooks are removed when training ends.
"""
import importlib.util
import json
import math
import os

import numpy as np

from . import backend
from .callbacks import Callback
from .datasets.atomic import atomic_output
from .functional import relu
from .tracer import l2_norm

STATISTICS = ("grad_norm", "weight_norm", "update_ratio", "dead_relu")


def uses_relu(layer):
    """True for a layer whose `activation` is relu (Dense, Conv1D, Conv2D, ...)."""
    activation = getattr(layer, "activation", None)
    return activation is relu or getattr(activation, "__name__", None) == "relu"


def dead_unit_fraction(outputs):
    """Fraction of units (last axis) that are zero for every sample and position."""
    values = backend.to_device(outputs.data, "cpu")
    alive = (values != 0).reshape(-1, values.shape[-1]).any(axis=0)
    return float(1.0 - alive.mean())


class GradientMonitor(Callback):
    """Logs per-layer gradient norms, weight norms, update ratios and dead relus.

    log_dir: if given, the statistics of every epoch so far are written there
    as `gradient_monitor.json` after each epoch.
    plot_path: if given, a PNG of the statistics over the epochs is written
    there when training ends (needs matplotlib).
    """

    def __init__(self, log_dir=None, plot_path=None):
        super().__init__()
        if plot_path is not None and importlib.util.find_spec("matplotlib") is None:
            raise ImportError(
                "GradientMonitor(plot_path=...) needs matplotlib: pip install matplotlib")
        self.log_dir = log_dir
        self.plot_path = plot_path
        self.history = {}   # statistic key -> one value per epoch, as in History
        self._handles = []

    # -- setting up and taking down the hooks -------------------------------------------
    def _watched_layers(self):
        return [layer for layer in self.model.layers if layer.trainable_weights]

    def on_train_begin(self, logs=None):
        self._layers = self._watched_layers()
        self._step_squares = {layer.name: 0.0 for layer in self._layers}
        self._in_training_step = False
        self._dead_fractions = {}
        for layer in self._layers:
            for weight in layer.trainable_weights:
                hook = self._gradient_hook(layer.name)
                self._handles.append(weight.register_hook(hook))
            if uses_relu(layer):
                self._handles.append(layer.register_forward_hook(self._record_dead_units))

    def on_train_end(self, logs=None):
        for handle in self._handles:
            handle.remove()
        self._handles = []
        if self.plot_path is not None and self.history:
            self.plot(self.plot_path)

    # -- what the hooks record -------------------------------------------------------
    def _gradient_hook(self, layer_name):
        def add_squared_norm(grad):
            self._step_squares[layer_name] += l2_norm([grad.data]) ** 2
        return add_squared_norm

    def _record_dead_units(self, layer, inputs, outputs):
        # Only training batches count: evaluation runs the same layers.
        if self._in_training_step:
            self._dead_fractions[layer.name] = dead_unit_fraction(outputs)

    # -- steps and epochs ------------------------------------------------------------------
    def on_epoch_begin(self, epoch, logs=None):
        self._grad_norm_sums = {layer.name: 0.0 for layer in self._layers}
        self._steps = 0
        self._weights_at_start = {layer.name: [backend.to_device(w.data, "cpu").copy()
                                               for w in layer.trainable_weights]
                                  for layer in self._layers}

    def on_train_batch_begin(self, batch, logs=None):
        self._in_training_step = True

    def on_train_batch_end(self, batch, logs=None):
        self._in_training_step = False
        self._steps += 1
        for name, squares in self._step_squares.items():
            self._grad_norm_sums[name] += math.sqrt(squares)
            self._step_squares[name] = 0.0

    def on_epoch_end(self, epoch, logs=None):
        statistics = self._epoch_statistics()
        for key, value in statistics.items():
            self.history.setdefault(key, []).append(value)
        if logs is not None:
            logs.update(statistics)  # History runs after this callback and keeps them
        if self.log_dir is not None:
            self._write_log()

    def _epoch_statistics(self):
        statistics = {}
        for layer in self._layers:
            weights = [backend.to_device(w.data, "cpu") for w in layer.trainable_weights]
            weight_norm = l2_norm(weights)
            moved = l2_norm([now - before for now, before
                             in zip(weights, self._weights_at_start[layer.name])])
            statistics[f"grad_norm/{layer.name}"] = (
                self._grad_norm_sums[layer.name] / self._steps if self._steps else 0.0)
            statistics[f"weight_norm/{layer.name}"] = weight_norm
            statistics[f"update_ratio/{layer.name}"] = moved / weight_norm if weight_norm else 0.0
            if layer.name in self._dead_fractions:
                statistics[f"dead_relu/{layer.name}"] = self._dead_fractions[layer.name]
        return statistics

    # -- output files ---------------------------------------------------------------------
    def _write_log(self):
        os.makedirs(self.log_dir, exist_ok=True)
        with atomic_output(os.path.join(self.log_dir, "gradient_monitor.json")) as file:
            file.write(json.dumps(self.history, indent=2).encode())

    def plot(self, path):
        """Write a PNG with one panel per statistic, one line per layer, over the epochs."""
        # A bare Figure draws to a file without pyplot, so the user's own
        # matplotlib backend (a notebook's, a window's) is left alone.
        from matplotlib.figure import Figure
        from matplotlib.ticker import MaxNLocator

        present = [s for s in STATISTICS if any(k.startswith(s + "/") for k in self.history)]
        figure = Figure(figsize=(4.5 * len(present), 3.5))
        axes = figure.subplots(1, len(present), squeeze=False)[0]
        for axis, statistic in zip(axes, present):
            for key, values in self.history.items():
                if key.startswith(statistic + "/"):
                    epochs = np.arange(1, len(values) + 1)
                    axis.plot(epochs, values, marker="o", label=key.split("/", 1)[1])
            # Norms span orders of magnitude across layers: a log scale shows them all.
            if statistic != "dead_relu" and all(v > 0 for k, values in self.history.items()
                                                if k.startswith(statistic + "/") for v in values):
                axis.set_yscale("log")
            if statistic == "dead_relu":
                axis.set_ylim(-0.05, 1.05)  # a fraction
            axis.set_title(statistic)
            axis.set_xlabel("epoch")
            axis.xaxis.set_major_locator(MaxNLocator(integer=True))
            axis.legend(fontsize=7)
        figure.tight_layout()
        with atomic_output(path) as file:
            figure.savefig(file, format="png", dpi=100)
