"""deepbreadth through its Keras API (models), and its raw kernel sets (kernels).

Models: `Sequential([...])`, `compile(optimizer=Adam(), loss=
SparseCategoricalCrossentropy(from_logits=True))`, then `train_on_batch(x, y)` and
`predict_on_batch(x)`: exactly what a user writes, Python overhead included.
Kernels: `deepbreadth.kernels.<set>.<name>` called directly (reference for the
'numpy' backend, cpu for 'numba', cuda for 'cupy'); the GEMM is the array
module's matmul (BLAS / cuBLAS), which is what deepbreadth calls for it.
"""
import importlib

import numpy as np

from . import Unsupported

_KERNEL_SETS = {"numpy": "reference", "numba": "cpu", "cupy": "cuda"}


def make(backend, device, threads):
    return DeepbreadthAdapter(backend, device, threads)


def _keras_namespace(db):
    """deepbreadth's `keras` namespace if its models API is there, else None."""
    try:
        keras = importlib.import_module("deepbreadth.keras")
        keras.models.Sequential  # noqa: B018 (presence check)
        keras.layers.Dense  # noqa: B018
        keras.optimizers.Adam  # noqa: B018
        keras.losses.SparseCategoricalCrossentropy  # noqa: B018
        return keras
    except (ImportError, AttributeError):
        return None


class DeepbreadthAdapter:
    memory_kind = "tracemalloc"

    def __init__(self, backend, device, threads):
        if backend is None:
            backend = "cupy" if device == "cuda" else "numba"
        if (backend == "cupy") != (device == "cuda"):
            raise Unsupported(f"backend {backend!r} does not run on device {device!r}")
        import deepbreadth as db
        try:
            db.set_backend(backend)
        except ImportError as error:
            raise Unsupported(str(error)) from error
        self.db = db
        self.backend = backend
        self.device = device
        self.threads = threads
        self.name = f"deepbreadth-{backend}"
        self.kernels = importlib.import_module(f"deepbreadth.kernels.{_KERNEL_SETS[backend]}")
        if backend == "cupy":
            import cupy
            self.xp = cupy
            self.memory_kind = "cuda"
            self._device = cupy.cuda.Device()
        else:
            self.xp = np
        if backend == "numba":
            import numba
            numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
        self.keras = _keras_namespace(db)
        self.notes = []

    # -- facts ------------------------------------------------------------------
    def info(self):
        info = {"framework": "deepbreadth", "version": self.db.__version__,
                "backend": self.backend, "device": self.device,
                "api": "keras Sequential: compile, train_on_batch, predict_on_batch",
                "execution": "define-by-run autograd; the training step recorded once, "
                             "then replayed op by op (deepbreadth/replay.py); inference "
                             "eager"}
        if self.backend == "numba":
            import numba
            info["numba"] = numba.__version__
            info["numba_threads"] = numba.get_num_threads()
            info["numba_threading_layer"] = _numba_threading_layer(numba)
        if self.backend == "cupy":
            import cupy
            info["cupy"] = cupy.__version__
            props = cupy.cuda.runtime.getDeviceProperties(self._device.id)
            name = props["name"]
            info["device_name"] = name.decode() if isinstance(name, bytes) else name
        info["numpy"] = np.__version__
        info["notes"] = list(self.notes)
        return info

    def sync(self):
        if self.backend == "cupy":
            self._device.synchronize()

    def gpu_memory(self):
        pool = self.xp.get_default_memory_pool()
        return {"gpu_pool_total_mb": pool.total_bytes() / 2 ** 20,
                "gpu_pool_used_mb": pool.used_bytes() / 2 ** 20}

    def _to_device(self, array):
        return self.xp.asarray(array) if self.backend == "cupy" else array

    # -- models -----------------------------------------------------------------
    def model(self, workload, xs, ys):
        if self.keras is None:
            raise RuntimeError("deepbreadth.keras (Sequential, compile, train_on_batch) is "
                               "not importable: the models suite needs it")
        return _KerasRunner(self, workload, xs, ys)

    def layers_of(self, workload, layers):
        if workload == "W1":
            return [layers.Flatten(), layers.Dense(128, activation="relu"), layers.Dropout(0.2),
                    layers.Dense(10)]
        if workload == "W2":
            return [layers.Conv2D(32, 3, activation="relu"), layers.MaxPooling2D(2),
                    layers.Conv2D(64, 3, activation="relu"), layers.MaxPooling2D(2),
                    layers.Flatten(), layers.Dense(128, activation="relu"), layers.Dense(10)]
        if workload == "W3":
            return [layers.LSTM(128), layers.Dense(10)]
        if workload == "W4":
            return [layers.LSTM(512, return_sequences=True), layers.Dropout(0.2),
                    layers.LSTM(512), layers.Dropout(0.2), layers.Dense(10)]
        raise KeyError(workload)

    # -- kernels ----------------------------------------------------------------
    def kernel(self, name, phase, inputs):
        k = self.kernels
        xp = self.xp
        dev = self._to_device

        def rotating(key):
            return [dev(a) for a in inputs[key]]

        if name == "matmul":
            a, b = rotating("a"), dev(inputs["b"])
            return lambda i: xp.matmul(a[i % len(a)], b)
        if name == "conv2d":
            x, g, w = rotating("x"), rotating("g"), dev(inputs["w"])
            args = ((1, 1), ((0, 0), (0, 0)), (1, 1))
            if phase == "fwd":
                return lambda i: k.conv2d_forward(x[i % len(x)], w, *args)

            def conv_step(i):
                xi = x[i % len(x)]
                k.conv2d_forward(xi, w, *args)
                gi = g[i % len(g)]
                k.conv2d_backward_input(gi, w, xi.shape, *args)
                k.conv2d_backward_kernel(xi, gi, w.shape, *args)
            return conv_step
        if name == "conv_pool":
            x, g = rotating("x"), rotating("g")
            w, b = dev(inputs["w"]), dev(inputs["b"])
            conv = ((1, 1), ((0, 0), (0, 0)), (1, 1), "relu")
            pool = ((2, 2), (2, 2), ((0, 0), (0, 0)))
            forward = k.conv2d_bias_activation_max_pool2d_forward
            if phase == "fwd":
                return lambda i: forward(x[i % len(x)], w, b, *conv, *pool)

            def conv_pool_step(i):
                xi = x[i % len(x)]
                y, argmax = forward(xi, w, b, *conv, *pool)
                k.conv2d_bias_activation_max_pool2d_backward(g[i % len(g)], y, argmax, xi, w,
                                                            *conv, *pool, False, True)
            return conv_pool_step
        if name == "maxpool":
            x, g = rotating("x"), rotating("g")
            args = ((2, 2), (2, 2), ((0, 0), (0, 0)))
            if phase == "fwd":
                return lambda i: k.max_pool2d_forward(x[i % len(x)], *args)

            def pool_step(i):
                xi = x[i % len(x)]
                _, argmax = k.max_pool2d_forward(xi, *args)
                k.max_pool2d_backward(g[i % len(g)], argmax, xi.shape, *args)
            return pool_step
        if name == "lstm":
            x, g = rotating("x"), rotating("g")
            kernel, recurrent, bias = (dev(inputs[key]) for key in
                                       ("kernel", "recurrent_kernel", "bias"))
            units = inputs["units"]
            zeros = xp.zeros((x[0].shape[0], units), dtype=xp.float32)
            if phase == "fwd":
                return lambda i: k.lstm_forward(x[i % len(x)], zeros, zeros, kernel, recurrent,
                                                bias, "tanh", "sigmoid")

            def lstm_step(i):
                xi = x[i % len(x)]
                h_seq, c_seq, gates = k.lstm_forward(xi, zeros, zeros, kernel, recurrent, bias,
                                                     "tanh", "sigmoid")
                k.lstm_backward(xi, zeros, zeros, kernel, recurrent, h_seq, c_seq, gates,
                                g[i % len(g)], zeros, "tanh", "sigmoid")
            return lstm_step
        if name == "softmax_ce":
            logits, labels = rotating("logits"), rotating("labels")
            grad = xp.full(logits[0].shape[0], 1.0 / logits[0].shape[0], dtype=xp.float32)

            def ce_step(i):
                lab = labels[i % len(labels)]
                _, probs = k.softmax_cross_entropy_forward(logits[i % len(logits)], lab)
                k.softmax_cross_entropy_backward(probs, lab, grad)
            return ce_step
        raise KeyError(name)


def _numba_threading_layer(numba):
    try:
        return numba.threading_layer()
    except ValueError:  # no parallel kernel has run yet
        return "not initialized yet"


class _KerasRunner:
    """Keras's single-batch API. On the GPU the batches are put on the device once,
    before timing, as the other frameworks' are: train_on_batch and predict_on_batch
    keep a device batch where it is. predict_on_batch returns NumPy, as in Keras, so
    each inference step ends with a copy of the (128, 10) output to the host."""

    def __init__(self, adapter, workload, xs, ys):
        keras = adapter.keras
        self.model = keras.models.Sequential(adapter.layers_of(workload, keras.layers))
        self.model.compile(optimizer=keras.optimizers.Adam(),
                           loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        if adapter.backend == "cupy":
            note = ("batches sit on the GPU before timing, as the other frameworks' do; "
                    "predict_on_batch copies its output to the host (Keras returns NumPy)")
            if note not in adapter.notes:
                adapter.notes.append(note)
            xs = [adapter._to_device(x) for x in xs]
            ys = [adapter._to_device(y) for y in ys]
        self.xs, self.ys = xs, ys
        self._loss = None
        self.sync = adapter.sync

    def train(self, i):
        j = i % len(self.xs)
        self._loss = self.model.train_on_batch(self.xs[j], self.ys[j])

    def infer(self, i):
        return self.model.predict_on_batch(self.xs[i % len(self.xs)])

    def last_loss(self):
        loss = self._loss
        if isinstance(loss, (list, tuple)):
            loss = loss[0]
        if isinstance(loss, dict):
            loss = loss.get("loss", next(iter(loss.values())))
        return float(loss)
