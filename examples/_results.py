"""Bookkeeping shared by the examples: timing epochs, where the numbers were
measured, and writing them safely. Not a lesson; the examples import it to stay short."""
import json
import os
import platform
import tempfile
import time

import numpy as np

import deepbreadth as tf


class Stopwatch(tf.keras.callbacks.Callback):
    """Times every epoch, and keeps the loss of the very first (untrained) batch."""

    def on_train_begin(self, logs=None):
        self.seconds_per_epoch = []
        self.cpu_seconds_per_epoch = []
        self.first_batch_loss = None

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()
        self.cpu_started = time.process_time()

    def on_train_batch_end(self, batch, logs=None):
        if self.first_batch_loss is None:
            self.first_batch_loss = logs["loss"]

    def on_epoch_end(self, epoch, logs=None):
        self.seconds_per_epoch.append(time.perf_counter() - self.started)
        # CPU time too: on a shared machine the wall clock also counts the
        # time spent waiting for a free core; the CPU time does not.
        self.cpu_seconds_per_epoch.append(time.process_time() - self.cpu_started)


def machine():
    """What the timings depend on: backend, cores, thread settings, load."""
    info = {"backend": tf.get_backend(), "cpu_count": os.cpu_count(),
            "python": platform.python_version(), "numpy": np.__version__,
            "load_average_1min": round(os.getloadavg()[0], 2)}
    for variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "NUMBA_NUM_THREADS"):
        info[variable] = os.environ.get(variable)
    return info


def write_atomically(path, content):
    """Write bytes to a temporary file, then os.replace it into place, so a
    reader never sees half a file, even if this run is killed mid-write."""
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=directory, suffix=".tmp")
    os.chmod(temporary, 0o644)  # mkstemp makes a private file; results are for reading
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(content)
        os.replace(temporary, path)
    except BaseException:
        os.remove(temporary)
        raise


def write_results(out_dir, name, results):
    """Save an example's results, with the machine they were measured on, as JSON."""
    results = {"example": name, **results, "machine": machine()}
    path = os.path.join(out_dir, f"{name}.json")
    write_atomically(path, json.dumps(results, indent=2).encode())
    print(f"results written to {path}")
