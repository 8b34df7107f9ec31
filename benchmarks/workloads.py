"""What is measured: the four model workloads, the kernels, and their FLOP counts.

Every framework builds the same model from these specs, on the same shapes.
FLOP counts are analytic and count only the multiply-adds of the GEMM, convolution
and recurrent parts (one multiply-add = 2 FLOP); element-wise work (activations,
pooling, dropout, the loss, the optimizer) is left out, so for pooling-only kernels
the count is zero and no GFLOP/s is reported.

Formulas, with N the batch:
- Dense(in -> out):                   MAC = N * in * out
- Conv2D, k x k, C -> F, output OH x OW: MAC = N * OH * OW * k * k * C * F
- LSTM, D inputs, U units, T steps:   MAC = T * N * (D + U) * 4U
  (each step: the four gates from x_t @ kernel (D, 4U) and h_{t-1} @ recurrent (U, 4U))
- forward FLOP = 2 * MAC
- training step ~ 3 * forward FLOP: the backward pass does two GEMMs per forward GEMM
  (gradient of the input and of the weight). The first layer's input gradient is not
  needed, and frameworks may skip it; it is counted anyway, so the figure is a round
  upper bound, the same for everyone.
"""

BATCH = 128
CLASSES = 10
IMAGE = (28, 28)          # MNIST-shaped synthetic data
SEQUENCE = (28, 28)       # (time, features): an MNIST image read row by row


def dense_mac(n, fan_in, fan_out):
    return n * fan_in * fan_out


def conv2d_mac(n, out_h, out_w, k_h, k_w, channels, filters):
    return n * out_h * out_w * k_h * k_w * channels * filters


def lstm_mac(n, steps, inputs, units):
    return steps * n * (inputs + units) * 4 * units


def _w1_mac(n):
    return dense_mac(n, 28 * 28, 128) + dense_mac(n, 128, CLASSES)


def _w2_mac(n):
    conv1 = conv2d_mac(n, 26, 26, 3, 3, 1, 32)     # 28x28x1 -> 26x26x32, pool -> 13x13
    conv2 = conv2d_mac(n, 11, 11, 3, 3, 32, 64)    # 13x13x32 -> 11x11x64, pool -> 5x5
    return conv1 + conv2 + dense_mac(n, 5 * 5 * 64, 128) + dense_mac(n, 128, CLASSES)


def _w3_mac(n):
    return lstm_mac(n, 28, 28, 128) + dense_mac(n, 128, CLASSES)


def _w4_mac(n):
    return lstm_mac(n, 28, 28, 512) + lstm_mac(n, 28, 512, 512) + dense_mac(n, 512, CLASSES)


# Each model: its layers in words (every adapter builds exactly this), the input
# shape without the batch axis, and the multiply-adds of one forward pass.
MODELS = {
    "W1": {
        "title": "MLP: Flatten -> Dense(128, relu) -> Dropout(0.2) -> Dense(10)",
        "input_shape": (28, 28),
        "forward_mac": _w1_mac(BATCH),
    },
    "W2": {
        "title": "CNN: Conv2D(32,3,relu) -> MaxPool(2) -> Conv2D(64,3,relu) -> MaxPool(2) "
                 "-> Flatten -> Dense(128, relu) -> Dense(10)",
        "input_shape": (28, 28, 1),
        "forward_mac": _w2_mac(BATCH),
    },
    "W3": {
        "title": "LSTM(128) -> Dense(10)",
        "input_shape": (28, 28),
        "forward_mac": _w3_mac(BATCH),
    },
    "W4": {
        "title": "LSTM(512, seq) -> Dropout(0.2) -> LSTM(512) -> Dropout(0.2) -> Dense(10)",
        "input_shape": (28, 28),
        "forward_mac": _w4_mac(BATCH),
    },
}

MODEL_PHASES = ("train", "infer")


def model_flop(workload, phase):
    """FLOP of one training step (forward + backward) or one inference batch."""
    forward = 2 * MODELS[workload]["forward_mac"]
    return 3 * forward if phase == "train" else forward


# The kernels: shapes, and the phases measured. "fwd" is the forward kernel alone;
# "fwd+bwd" is the forward kernel followed by the backward kernels (gradients of
# the input and of the weights), which is how every framework's autograd runs them.
KERNELS = {
    "matmul": {
        "title": "matmul (128x784) @ (784x128)",
        "phases": ("fwd",),
        "forward_mac": 128 * 784 * 128,
    },
    "conv2d": {
        "title": "conv2d 3x3, 32->64, valid, on 128x13x13x32 (NHWC)",
        "phases": ("fwd", "fwd+bwd"),
        "forward_mac": conv2d_mac(128, 11, 11, 3, 3, 32, 64),
    },
    "conv_pool": {
        # What a Conv2D(relu) -> MaxPooling2D pair costs as one step: the kernel
        # ops each framework runs for the MNIST CNN's first block. As a first
        # layer, only the kernel and bias gradients are taken (the FLOP count
        # still says 3 x forward, as for every training figure here).
        "title": "conv2d 3x3 1->32 + bias + relu + max pool 2x2 on 128x28x28x1 (NHWC), "
                 "no input gradient",
        "phases": ("fwd", "fwd+bwd"),
        "forward_mac": conv2d_mac(128, 26, 26, 3, 3, 1, 32),
    },
    "maxpool": {
        "title": "max pool 2x2 stride 2 on 128x26x26x32",
        "phases": ("fwd", "fwd+bwd"),
        "forward_mac": 0,
    },
    "lstm": {
        "title": "LSTM 128 units, 28 steps, 28 inputs, batch 128, full sequence out",
        "phases": ("fwd", "fwd+bwd"),
        "forward_mac": lstm_mac(128, 28, 28, 128),
    },
    "softmax_ce": {
        "title": "softmax cross-entropy, logits 128x10, integer labels",
        "phases": ("fwd+bwd",),
        "forward_mac": 0,
    },
}


def kernel_flop(name, phase):
    forward = 2 * KERNELS[name]["forward_mac"]
    return 3 * forward if phase == "fwd+bwd" else forward


STARTUP_WORKLOADS = ("W1", "W2")
