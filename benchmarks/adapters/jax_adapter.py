"""JAX: the same models written with jax.numpy and jax.lax, one `jax.jit` train step.

JAX has no layer library of its own, so the models are written out here: Dense as
a matmul, Conv2D as `lax.conv_general_dilated` (NHWC, HWIO), max pooling as
`lax.reduce_window`, the LSTM as `lax.scan` over time with the input projection
of all steps done first (one GEMM), Keras's gate order. Adam is optax's where
optax is installed, else written out below with Keras's formula. The whole
step (forward, backward, update) is one XLA computation, compiled before timing
(compile time is reported by the startup suite); parameters and optimizer state
are donated, so XLA may update them in place as the other frameworks do.
"""
import functools
import warnings

import numpy as np

from . import Unsupported


def make(backend, device, threads):
    return JaxAdapter(device, threads)


class JaxAdapter:
    def __init__(self, device, threads):
        try:
            import jax
            import jax.numpy as jnp
        except ImportError as error:
            raise Unsupported("jax is not installed") from error
        platform = jax.devices()[0].platform
        if device == "cuda" and platform != "gpu":
            raise Unsupported(f"JAX runs on {platform}, not on a GPU")
        warnings.filterwarnings("ignore", message=".*donated buffers were not usable.*")
        self.jax, self.jnp = jax, jnp
        try:
            import optax
        except ImportError:
            optax = None
        self.optax = optax
        self.device = device
        self.name = "jax" if device == "cpu" else "jax-cuda"
        self.memory_kind = None
        self._device = jax.devices()[0]

    def info(self):
        import jaxlib
        info = {"framework": "jax", "version": self.jax.__version__,
                "jaxlib": jaxlib.__version__, "device": self.device,
                "execution": "jax.jit (XLA), whole train step compiled, buffers donated",
                "adam": f"optax {self.optax.__version__}" if self.optax else "hand-written"}
        if self.device == "cuda":
            info["device_name"] = self._device.device_kind
        return info

    def sync(self):
        pass   # steps block on their own outputs (runners' and kernels' sync)

    def _put(self, array):
        return self.jax.device_put(np.asarray(array), self._device)

    # -- models -----------------------------------------------------------------
    def model(self, workload, xs, ys):
        return _JaxModelRunner(self, workload, xs, ys)

    # -- kernels ----------------------------------------------------------------
    def kernel(self, name, phase, inputs):
        jax, jnp, lax = self.jax, self.jnp, self.jax.lax
        put = self._put

        def rotating(key):
            return [put(a) for a in inputs[key]]

        def blocking(function):
            def step(*args):
                return jax.block_until_ready(function(*args))
            return step

        def vjp_all(function):
            def forward_backward(*args_and_grad):
                *args, g = args_and_grad
                y, pullback = jax.vjp(function, *args)
                # y is returned too: otherwise XLA drops the forward wherever
                # the gradients do not need it (a convolution's never do), and
                # "fwd+bwd" would time the backward alone.
                return y, pullback(g)
            return blocking(jax.jit(forward_backward))

        if name == "matmul":
            a, b = rotating("a"), put(inputs["b"])
            matmul = blocking(jax.jit(jnp.matmul))
            return lambda i: matmul(a[i % len(a)], b)
        if name == "conv2d":
            x, g, w = rotating("x"), rotating("g"), put(inputs["w"])
            if phase == "fwd":
                conv = blocking(jax.jit(_conv2d))
                return lambda i: conv(x[i % len(x)], w)
            step = vjp_all(_conv2d)
            return lambda i: step(x[i % len(x)], w, g[i % len(g)])
        if name == "conv_pool":
            x, g = rotating("x"), rotating("g")
            w, b = put(inputs["w"]), put(inputs["b"])

            def conv_pool(x, w, b):
                return _max_pool(jax.nn.relu(_conv2d(x, w) + b))
            if phase == "fwd":
                forward = blocking(jax.jit(conv_pool))
                return lambda i: forward(x[i % len(x)], w, b)

            def conv_pool_step(x, w, b, g):
                # Gradients of the kernel and bias only: the first layer's input needs none.
                y, pullback = jax.vjp(lambda w, b: conv_pool(x, w, b), w, b)
                return y, pullback(g)  # y: see vjp_all
            step = blocking(jax.jit(conv_pool_step))
            return lambda i: step(x[i % len(x)], w, b, g[i % len(g)])
        if name == "maxpool":
            x, g = rotating("x"), rotating("g")
            if phase == "fwd":
                pool = blocking(jax.jit(_max_pool))
                return lambda i: pool(x[i % len(x)])
            step = vjp_all(_max_pool)
            return lambda i: step(x[i % len(x)], g[i % len(g)])
        if name == "lstm":
            x, g = rotating("x"), rotating("g")
            weights = [put(inputs[key]) for key in ("kernel", "recurrent_kernel", "bias")]

            def lstm_sequence(x, kernel, recurrent, bias):
                return _lstm(jnp, lax, {"kernel": kernel, "recurrent": recurrent, "bias": bias},
                             x, return_sequences=True)
            if phase == "fwd":
                forward = blocking(jax.jit(lstm_sequence))
                return lambda i: forward(x[i % len(x)], *weights)
            step = vjp_all(lstm_sequence)
            return lambda i: step(x[i % len(x)], *weights, g[i % len(g)])
        if name == "softmax_ce":
            logits, labels = rotating("logits"), rotating("labels")
            step = blocking(jax.jit(jax.value_and_grad(_cross_entropy)))
            return lambda i: step(logits[i % len(logits)], labels[i % len(labels)])
        raise KeyError(name)


# ----------------------------------------------------------------------------
# The layers, as functions
# ----------------------------------------------------------------------------
def _conv2d(x, w):
    from jax import lax
    return lax.conv_general_dilated(x, w, (1, 1), "VALID",
                                    dimension_numbers=("NHWC", "HWIO", "NHWC"))


def _max_pool(x):
    import jax.numpy as jnp
    from jax import lax
    return lax.reduce_window(x, -jnp.inf, lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")


def _lstm(jnp, lax, p, x, return_sequences):
    """Keras's LSTM (gates i, f, c, o; tanh and sigmoid), zero initial state."""
    import jax
    n = x.shape[0]
    units = p["recurrent"].shape[0]
    projected = jnp.einsum("ntd,dg->tng", x, p["kernel"]) + p["bias"]   # (T, N, 4U)

    def cell(carry, z_x):
        h, c = carry
        z = z_x + h @ p["recurrent"]
        i, f, g, o = jnp.split(z, 4, axis=-1)
        c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
        h = jax.nn.sigmoid(o) * jnp.tanh(c)
        return (h, c), h

    zeros = jnp.zeros((n, units), x.dtype)
    (h, _), hs = lax.scan(cell, (zeros, zeros), projected)
    return jnp.transpose(hs, (1, 0, 2)) if return_sequences else h


def _cross_entropy(logits, labels):
    import jax
    import jax.numpy as jnp
    log_probs = jax.nn.log_softmax(logits)
    return -jnp.mean(jnp.take_along_axis(log_probs, labels[:, None], axis=1))


def _glorot(rng, shape, fan_in, fan_out):
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, shape).astype(np.float32)


def _init(workload, seed=0):
    """Parameters in Keras shapes (glorot-uniform kernels, zero biases, forget bias 1)."""
    rng = np.random.default_rng(seed)

    def dense(fan_in, fan_out):
        return {"w": _glorot(rng, (fan_in, fan_out), fan_in, fan_out),
                "b": np.zeros(fan_out, np.float32)}

    def conv(channels, filters):
        return {"w": _glorot(rng, (3, 3, channels, filters), 9 * channels, 9 * filters),
                "b": np.zeros(filters, np.float32)}

    def lstm(inputs, units):
        bias = np.zeros(4 * units, np.float32)
        bias[units:2 * units] = 1.0
        return {"kernel": _glorot(rng, (inputs, 4 * units), inputs, 4 * units),
                "recurrent": _glorot(rng, (units, 4 * units), units, 4 * units), "bias": bias}

    if workload == "W1":
        return {"d1": dense(784, 128), "d2": dense(128, 10)}
    if workload == "W2":
        return {"c1": conv(1, 32), "c2": conv(32, 64), "d1": dense(1600, 128),
                "d2": dense(128, 10)}
    if workload == "W3":
        return {"l1": lstm(28, 128), "d1": dense(128, 10)}
    if workload == "W4":
        return {"l1": lstm(28, 512), "l2": lstm(512, 512), "d1": dense(512, 10)}
    raise KeyError(workload)


def _forward(workload, params, x, key, training):
    import jax
    import jax.numpy as jnp
    from jax import lax

    def dropout(x, rate, index):
        if not training:
            return x
        keep = jax.random.bernoulli(jax.random.fold_in(key, index), 1.0 - rate, x.shape)
        return jnp.where(keep, x / (1.0 - rate), 0.0)

    def dense(p, x):
        return x @ p["w"] + p["b"]

    if workload == "W1":
        h = jax.nn.relu(dense(params["d1"], x.reshape(x.shape[0], -1)))
        return dense(params["d2"], dropout(h, 0.2, 0))
    if workload == "W2":
        h = _max_pool(jax.nn.relu(_conv2d(x, params["c1"]["w"]) + params["c1"]["b"]))
        h = _max_pool(jax.nn.relu(_conv2d(h, params["c2"]["w"]) + params["c2"]["b"]))
        h = jax.nn.relu(dense(params["d1"], h.reshape(h.shape[0], -1)))
        return dense(params["d2"], h)
    if workload == "W3":
        return dense(params["d1"], _lstm(jnp, lax, params["l1"], x, return_sequences=False))
    if workload == "W4":
        h = dropout(_lstm(jnp, lax, params["l1"], x, return_sequences=True), 0.2, 0)
        h = dropout(_lstm(jnp, lax, params["l2"], h, return_sequences=False), 0.2, 1)
        return dense(params["d1"], h)
    raise KeyError(workload)


class _HandAdam:
    """Keras's Adam: alpha = lr * sqrt(1 - b2^t) / (1 - b1^t); p -= alpha * m / (sqrt(v) + eps)."""

    def __init__(self, jax, learning_rate=1e-3, beta_1=0.9, beta_2=0.999, epsilon=1e-7):
        self.jax = jax
        self.lr, self.b1, self.b2, self.eps = learning_rate, beta_1, beta_2, epsilon

    def init(self, params):
        zeros = self.jax.tree_util.tree_map(lambda p: p * 0, params)
        return {"m": zeros, "v": zeros, "t": 0}

    def step(self, params, grads, state):
        import jax.numpy as jnp
        tree_map = self.jax.tree_util.tree_map
        t = state["t"] + 1
        m = tree_map(lambda m, g: self.b1 * m + (1 - self.b1) * g, state["m"], grads)
        v = tree_map(lambda v, g: self.b2 * v + (1 - self.b2) * g * g, state["v"], grads)
        alpha = self.lr * jnp.sqrt(1 - self.b2 ** t) / (1 - self.b1 ** t)
        params = tree_map(lambda p, m, v: p - alpha * m / (jnp.sqrt(v) + self.eps), params, m, v)
        return params, {"m": m, "v": v, "t": t}


class _JaxModelRunner:
    def __init__(self, adapter, workload, xs, ys):
        jax = adapter.jax
        self.jax = jax
        self.params = jax.tree_util.tree_map(adapter._put, _init(workload))
        optax = adapter.optax
        if optax is not None:
            optimizer = optax.adam(1e-3, eps=1e-7)
            self.opt_state = optimizer.init(self.params)

            def update(params, grads, state):
                updates, state = optimizer.update(grads, state, params)
                return optax.apply_updates(params, updates), state
        else:
            optimizer = _HandAdam(jax)
            self.opt_state = optimizer.init(self.params)
            update = optimizer.step

        def loss_of(params, x, y, key):
            return _cross_entropy(_forward(workload, params, x, key, True), y)

        base_key = jax.random.PRNGKey(0)

        @functools.partial(jax.jit, donate_argnums=(0, 1))
        def train_step(params, opt_state, x, y, step):
            key = jax.random.fold_in(base_key, step)
            loss, grads = jax.value_and_grad(loss_of)(params, x, y, key)
            params, opt_state = update(params, grads, opt_state)
            return params, opt_state, loss

        @jax.jit
        def infer_step(params, x):
            return _forward(workload, params, x, None, False)

        self._train_step, self._infer_step = train_step, infer_step
        # Everything on the device, committed, before the first call: otherwise the
        # second call sees differently placed state and XLA compiles a second time.
        self.params = jax.device_put(self.params, adapter._device)
        self.opt_state = jax.device_put(self.opt_state, adapter._device)
        self.xs = [adapter._put(x) for x in xs]
        self.ys = [adapter._put(y) for y in ys]
        self._pending = None
        self._loss = None
        self._step = 0

    def train(self, i):
        j = i % len(self.xs)
        self._step += 1
        self.params, self.opt_state, self._loss = self._train_step(
            self.params, self.opt_state, self.xs[j], self.ys[j], self._step)
        self._pending = (self.params, self._loss)

    def infer(self, i):
        self._pending = self._infer_step(self.params, self.xs[i % len(self.xs)])

    def sync(self):
        if self._pending is not None:
            self.jax.block_until_ready(self._pending)
            self._pending = None

    def last_loss(self):
        return float(self._loss)
