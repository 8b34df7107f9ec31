"""PyTorch, eager mode (no torch.compile): the same models in torch.nn, Adam from torch.optim.

Layouts are PyTorch's own (NCHW images; the LSTM with batch_first=True), so its
kernels see the data the way a PyTorch user would give it. Adam uses
eps=1e-7 to match Keras. On a GPU, inputs are moved to the device once, before
timing, and `torch.cuda.synchronize()` runs before every timer read.
"""
import re

import numpy as np

from . import Unsupported


def make(backend, device, threads):
    return TorchAdapter(device, threads)


class TorchAdapter:
    def __init__(self, device, threads):
        try:
            import torch
        except ImportError as error:
            raise Unsupported("torch is not installed") from error
        if device == "cuda" and not torch.cuda.is_available():
            raise Unsupported("torch.cuda.is_available() is False")
        self.torch = torch
        torch.set_num_threads(threads)
        try:
            torch.set_num_interop_threads(1)
        except RuntimeError:  # already set, or parallel work already started
            pass
        self.device = device
        self.dev = torch.device(device)
        self.name = "torch" if device == "cpu" else "torch-cuda"
        self.memory_kind = "cuda" if device == "cuda" else None
        torch.manual_seed(0)

    def info(self):
        torch = self.torch
        info = {"framework": "torch", "version": torch.__version__, "device": self.device,
                "execution": "eager (no torch.compile)",
                "intra_op_threads": torch.get_num_threads(),
                "interop_threads": torch.get_num_interop_threads(),
                "mkldnn": bool(torch.backends.mkldnn.is_available()),
                "blas": _torch_blas(torch)}
        if self.device == "cuda":
            info["device_name"] = torch.cuda.get_device_name(0)
            info["cudnn"] = torch.backends.cudnn.version()
            info["tf32_matmul"] = bool(torch.backends.cuda.matmul.allow_tf32)
        return info

    def sync(self):
        if self.device == "cuda":
            self.torch.cuda.synchronize()

    def gpu_memory(self):
        torch = self.torch
        return {"gpu_peak_allocated_mb": torch.cuda.max_memory_allocated() / 2 ** 20}

    def reset_gpu_peak(self):
        self.torch.cuda.reset_peak_memory_stats()

    def _tensor(self, array):
        return self.torch.from_numpy(np.ascontiguousarray(array)).to(self.dev)

    # -- models -----------------------------------------------------------------
    def model(self, workload, xs, ys):
        return _TorchModelRunner(self, workload, xs, ys)

    # -- kernels ----------------------------------------------------------------
    def kernel(self, name, phase, inputs):
        torch = self.torch
        F = torch.nn.functional
        t = self._tensor

        def rotating(key, transform=None, grad=False):
            arrays = inputs[key]
            tensors = [t(transform(a) if transform else a) for a in arrays]
            if grad:
                for tensor in tensors:
                    tensor.requires_grad_(True)
            return tensors

        nchw = lambda a: a.transpose(0, 3, 1, 2)  # noqa: E731
        if name == "matmul":
            a, b = rotating("a"), t(inputs["b"])

            def matmul_step(i):
                with torch.no_grad():
                    return torch.matmul(a[i % len(a)], b)
            return matmul_step
        if name == "conv2d":
            w = t(inputs["w"].transpose(3, 2, 0, 1)).requires_grad_(phase != "fwd")
            x = rotating("x", nchw, grad=phase != "fwd")
            g = rotating("g", nchw)
            if phase == "fwd":
                def conv_fwd(i):
                    with torch.no_grad():
                        return F.conv2d(x[i % len(x)], w)
                return conv_fwd

            def conv_step(i):
                xi = x[i % len(x)]
                y = F.conv2d(xi, w)
                return torch.autograd.grad(y, (xi, w), g[i % len(g)])
            return conv_step
        if name == "conv_pool":
            w = t(inputs["w"].transpose(3, 2, 0, 1)).requires_grad_(phase != "fwd")
            b = t(inputs["b"]).requires_grad_(phase != "fwd")
            x, g = rotating("x", nchw), rotating("g", nchw)

            def conv_pool(xi):
                return F.max_pool2d(F.relu(F.conv2d(xi, w, b)), 2)
            if phase == "fwd":
                def conv_pool_fwd(i):
                    with torch.no_grad():
                        return conv_pool(x[i % len(x)])
                return conv_pool_fwd

            def conv_pool_step(i):
                y = conv_pool(x[i % len(x)])
                return torch.autograd.grad(y, (w, b), g[i % len(g)])
            return conv_pool_step
        if name == "maxpool":
            x = rotating("x", nchw, grad=phase != "fwd")
            g = rotating("g", nchw)
            if phase == "fwd":
                def pool_fwd(i):
                    with torch.no_grad():
                        return F.max_pool2d(x[i % len(x)], 2)
                return pool_fwd

            def pool_step(i):
                xi = x[i % len(x)]
                y = F.max_pool2d(xi, 2)
                return torch.autograd.grad(y, (xi,), g[i % len(g)])
            return pool_step
        if name == "lstm":
            units = inputs["units"]
            lstm = torch.nn.LSTM(inputs["kernel"].shape[0], units, batch_first=True).to(self.dev)
            _load_keras_lstm(torch, lstm, inputs["kernel"], inputs["recurrent_kernel"],
                             inputs["bias"])
            x = rotating("x", grad=phase != "fwd")
            g = rotating("g")
            if phase == "fwd":
                def lstm_fwd(i):
                    with torch.no_grad():
                        return lstm(x[i % len(x)])[0]
                return lstm_fwd
            params = tuple(lstm.parameters())

            def lstm_step(i):
                xi = x[i % len(x)]
                y = lstm(xi)[0]
                return torch.autograd.grad(y, (xi,) + params, g[i % len(g)])
            return lstm_step
        if name == "softmax_ce":
            logits = rotating("logits", grad=True)
            labels = rotating("labels")

            def ce_step(i):
                li = logits[i % len(logits)]
                loss = F.cross_entropy(li, labels[i % len(labels)])
                return torch.autograd.grad(loss, (li,))
            return ce_step
        raise KeyError(name)


def _torch_blas(torch):
    try:
        config = torch.__config__.show()
    except Exception:  # noqa: BLE001
        return None
    found = re.search(r"BLAS_INFO=([^,\s]+)", config)
    return found.group(1) if found else None


def _load_keras_lstm(torch, lstm, kernel, recurrent_kernel, bias):
    """Keras LSTM weights (gates i, f, c, o) into torch's (gates i, f, g, o, transposed)."""
    with torch.no_grad():
        lstm.weight_ih_l0.copy_(torch.from_numpy(np.ascontiguousarray(kernel.T)))
        lstm.weight_hh_l0.copy_(torch.from_numpy(np.ascontiguousarray(recurrent_kernel.T)))
        lstm.bias_ih_l0.copy_(torch.from_numpy(bias))
        lstm.bias_hh_l0.zero_()




def _build(torch, workload):
    nn = torch.nn

    class LSTMStack(nn.Module):
        """LSTM layers as Keras stacks them: dropout between, the last step of the last out."""

        def __init__(self, sizes, dropout):
            super().__init__()
            self.lstms = nn.ModuleList(nn.LSTM(a, b, batch_first=True)
                                       for a, b in zip(sizes[:-1], sizes[1:]))
            self.dropout = nn.Dropout(dropout) if dropout else None
            self.head = nn.Linear(sizes[-1], 10)

        def forward(self, x):
            for index, lstm in enumerate(self.lstms):
                x = lstm(x)[0]
                if index == len(self.lstms) - 1:
                    x = x[:, -1]   # the last LSTM returns only its last step
                if self.dropout is not None:
                    x = self.dropout(x)
            return self.head(x)

    if workload == "W1":
        return nn.Sequential(nn.Flatten(), nn.Linear(784, 128), nn.ReLU(), nn.Dropout(0.2),
                             nn.Linear(128, 10))
    if workload == "W2":
        return nn.Sequential(nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                             nn.Linear(1600, 128), nn.ReLU(), nn.Linear(128, 10))
    if workload == "W3":
        return LSTMStack((28, 128), 0.0)
    if workload == "W4":
        # Dropout after each LSTM: on the first's whole sequence, on the second's last step.
        return LSTMStack((28, 512, 512), 0.2)
    raise KeyError(workload)


class _TorchModelRunner:
    def __init__(self, adapter, workload, xs, ys):
        torch = adapter.torch
        self.torch = torch
        self.model = _build(torch, workload).to(adapter.dev)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=1e-3, eps=1e-7)
        if workload == "W2":
            xs = [x.transpose(0, 3, 1, 2) for x in xs]   # NHWC -> NCHW, PyTorch's layout
        self.xs = [adapter._tensor(x) for x in xs]
        self.ys = [adapter._tensor(y) for y in ys]
        self.sync = adapter.sync
        self._loss = None
        self._mode = None

    def _set_mode(self, training):
        if self._mode != training:
            self.model.train(training)
            self._mode = training

    def train(self, i):
        self._set_mode(True)
        j = i % len(self.xs)
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.torch.nn.functional.cross_entropy(self.model(self.xs[j]), self.ys[j])
        loss.backward()
        self.optimizer.step()
        self._loss = loss

    def infer(self, i):
        self._set_mode(False)
        with self.torch.inference_mode():
            return self.model(self.xs[i % len(self.xs)])

    def last_loss(self):
        return float(self._loss.detach().cpu())
