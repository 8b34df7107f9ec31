"""TensorFlow with Keras 3: the same models from keras.layers, one `tf.function` train step.

The train step is what `Model.fit` compiles (without XLA): a `tf.function` that runs
the model under a GradientTape, computes the loss, and applies Adam. It is traced
once before timing; the trace is counted in the startup suite, not in the
steady-state times. Inference is a `tf.function` of `model(x, training=False)`.
Kernels are single `tf.function`s too. oneDNN (TF_ENABLE_ONEDNN_OPTS) is left at
TensorFlow's default and reported.
"""
import os

import numpy as np

from . import Unsupported


def make(backend, device, threads):
    return TensorflowAdapter(device, threads)


def _onednn_state(tf):
    setting = os.environ.get("TF_ENABLE_ONEDNN_OPTS")
    if setting is not None:
        return f"TF_ENABLE_ONEDNN_OPTS={setting}"
    try:
        from tensorflow.python.util import _pywrap_util_port
        for probe in ("IsMklEnabled", "IsBuiltWithOneDnn"):
            if hasattr(_pywrap_util_port, probe):
                enabled = getattr(_pywrap_util_port, probe)()
                return f"{'on' if enabled else 'off'} ({probe}, TensorFlow's default)"
    except ImportError:
        pass
    return "TensorFlow's default (on for x86 Linux builds since 2.9)"


class TensorflowAdapter:
    def __init__(self, device, threads):
        os.environ.setdefault("KERAS_BACKEND", "tensorflow")
        try:
            import tensorflow as tf
        except ImportError as error:
            raise Unsupported("tensorflow is not installed") from error
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
        gpus = tf.config.list_physical_devices("GPU")
        if device == "cuda" and not gpus:
            raise Unsupported("TensorFlow sees no GPU")
        self.tf = tf
        self.keras = tf.keras
        self.device = device
        self.name = "tensorflow" if device == "cpu" else "tensorflow-cuda"
        self.memory_kind = None
        self.keras.utils.set_random_seed(0)
        self.tf_device = "/GPU:0" if device == "cuda" else "/CPU:0"

    def info(self):
        tf = self.tf
        info = {"framework": "tensorflow", "version": tf.__version__,
                "keras": self.keras.__version__ if hasattr(self.keras, "__version__") else None,
                "device": self.device, "execution": "tf.function train step (graph, no XLA)",
                "onednn": _onednn_state(tf),
                "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
                "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads()}
        if self.device == "cuda":
            details = tf.config.experimental.get_device_details(
                tf.config.list_physical_devices("GPU")[0])
            info["device_name"] = details.get("device_name")
        return info

    def sync(self):
        if self.device == "cuda":
            sync_devices = getattr(self.tf.test.experimental, "sync_devices", None)
            if sync_devices is not None:
                sync_devices()

    def _constant(self, array):
        with self.tf.device(self.tf_device):
            return self.tf.constant(array)

    # -- models -----------------------------------------------------------------
    def model(self, workload, xs, ys):
        return _TensorflowModelRunner(self, workload, xs, ys)

    # -- kernels ----------------------------------------------------------------
    def kernel(self, name, phase, inputs):
        tf = self.tf
        c = self._constant

        def rotating(key):
            return [c(a) for a in inputs[key]]

        if name == "matmul":
            a, b = rotating("a"), c(inputs["b"])
            matmul = tf.function(tf.matmul)
            return lambda i: matmul(a[i % len(a)], b)
        if name == "conv2d":
            x, g, w = rotating("x"), rotating("g"), c(inputs["w"])

            @tf.function
            def conv_fwd(x, w):
                return tf.nn.conv2d(x, w, 1, "VALID")

            @tf.function
            def conv_step(x, w, g):
                with tf.GradientTape() as tape:
                    tape.watch([x, w])
                    y = tf.nn.conv2d(x, w, 1, "VALID")
                # y is returned too: otherwise the graph optimizer prunes the
                # forward convolution, which neither gradient needs, and
                # "fwd+bwd" would time the backward alone.
                return y, tape.gradient(y, [x, w], output_gradients=g)
            if phase == "fwd":
                return lambda i: conv_fwd(x[i % len(x)], w)
            return lambda i: conv_step(x[i % len(x)], w, g[i % len(g)])
        if name == "conv_pool":
            x, g = rotating("x"), rotating("g")
            w, b = tf.Variable(inputs["w"]), tf.Variable(inputs["b"])

            def conv_pool(x):
                y = tf.nn.relu(tf.nn.bias_add(tf.nn.conv2d(x, w, 1, "VALID"), b))
                return tf.nn.max_pool2d(y, 2, 2, "VALID")

            @tf.function
            def conv_pool_step(x, g):
                with tf.GradientTape() as tape:
                    y = conv_pool(x)
                return y, tape.gradient(y, [w, b], output_gradients=g)  # y: see conv_step
            if phase == "fwd":
                forward = tf.function(conv_pool)
                return lambda i: forward(x[i % len(x)])
            return lambda i: conv_pool_step(x[i % len(x)], g[i % len(g)])
        if name == "maxpool":
            x, g = rotating("x"), rotating("g")

            @tf.function
            def pool_fwd(x):
                return tf.nn.max_pool2d(x, 2, 2, "VALID")

            @tf.function
            def pool_step(x, g):
                with tf.GradientTape() as tape:
                    tape.watch(x)
                    y = tf.nn.max_pool2d(x, 2, 2, "VALID")
                return y, tape.gradient(y, x, output_gradients=g)  # y: see conv_step
            if phase == "fwd":
                return lambda i: pool_fwd(x[i % len(x)])
            return lambda i: pool_step(x[i % len(x)], g[i % len(g)])
        if name == "lstm":
            x, g = rotating("x"), rotating("g")
            with tf.device(self.tf_device):
                layer = self.keras.layers.LSTM(inputs["units"], return_sequences=True)
                layer.build((None,) + tuple(inputs["x"][0].shape[1:]))
                layer.set_weights([inputs["kernel"], inputs["recurrent_kernel"], inputs["bias"]])

            @tf.function
            def lstm_fwd(x):
                return layer(x)

            @tf.function
            def lstm_step(x, g):
                with tf.GradientTape() as tape:
                    tape.watch(x)
                    y = layer(x)
                return y, tape.gradient(y, [x] + list(layer.trainable_variables),
                                        output_gradients=g)  # y: see conv_step
            if phase == "fwd":
                return lambda i: lstm_fwd(x[i % len(x)])
            return lambda i: lstm_step(x[i % len(x)], g[i % len(g)])
        if name == "softmax_ce":
            logits, labels = rotating("logits"), rotating("labels")

            @tf.function
            def ce_step(logits, labels):
                with tf.GradientTape() as tape:
                    tape.watch(logits)
                    loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
                        labels=labels, logits=logits))
                return tape.gradient(loss, logits)
            return lambda i: ce_step(logits[i % len(logits)], labels[i % len(labels)])
        raise KeyError(name)


def _build(keras, workload):
    layers = keras.layers
    if workload == "W1":
        return keras.Sequential([keras.Input((28, 28)), layers.Flatten(),
                                 layers.Dense(128, activation="relu"), layers.Dropout(0.2),
                                 layers.Dense(10)])
    if workload == "W2":
        return keras.Sequential([keras.Input((28, 28, 1)),
                                 layers.Conv2D(32, 3, activation="relu"), layers.MaxPooling2D(2),
                                 layers.Conv2D(64, 3, activation="relu"), layers.MaxPooling2D(2),
                                 layers.Flatten(), layers.Dense(128, activation="relu"),
                                 layers.Dense(10)])
    if workload == "W3":
        return keras.Sequential([keras.Input((28, 28)), layers.LSTM(128), layers.Dense(10)])
    if workload == "W4":
        return keras.Sequential([keras.Input((28, 28)), layers.LSTM(512, return_sequences=True),
                                 layers.Dropout(0.2), layers.LSTM(512), layers.Dropout(0.2),
                                 layers.Dense(10)])
    raise KeyError(workload)


class _TensorflowModelRunner:
    def __init__(self, adapter, workload, xs, ys):
        tf, keras = adapter.tf, adapter.keras
        with tf.device(adapter.tf_device):
            self.model = _build(keras, workload)
            self.optimizer = keras.optimizers.Adam()
            self.optimizer.build(self.model.trainable_variables)
        self.loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        self.xs = [adapter._constant(x) for x in xs]
        self.ys = [adapter._constant(y) for y in ys]
        model, optimizer, loss_fn = self.model, self.optimizer, self.loss_fn

        @tf.function
        def train_step(x, y):
            with tf.GradientTape() as tape:
                loss = loss_fn(y, model(x, training=True))
            variables = model.trainable_variables
            optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
            return loss

        @tf.function
        def infer_step(x):
            return model(x, training=False)

        self._train_step, self._infer_step = train_step, infer_step
        self._pending = None
        self._loss = None
        self._adapter_sync = adapter.sync

    def train(self, i):
        j = i % len(self.xs)
        self._loss = self._pending = self._train_step(self.xs[j], self.ys[j])

    def infer(self, i):
        self._pending = self._infer_step(self.xs[i % len(self.xs)])

    def sync(self):
        if self._pending is not None:
            self._pending.numpy()
            self._pending = None
        self._adapter_sync()

    def last_loss(self):
        return float(np.asarray(self._loss))
