"""Conv1D, Conv2D, the pooling layers, and the conv / pool ops under them."""
import json

import numpy as np
import pytest

import deepbreadth as db
import deepbreadth.functional as F
from deepbreadth.layers import (AveragePooling1D, AveragePooling2D, AvgPool2D, Conv1D, Conv2D,
                                GlobalAveragePooling1D, GlobalAveragePooling2D,
                                GlobalMaxPooling1D, GlobalMaxPooling2D, Input, MaxPool2D,
                                MaxPooling1D, MaxPooling2D)


def random(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def check_layer_gradients(layer, x):
    """gradcheck of a float64 layer with respect to its input and every weight.

    gradcheck differentiates with respect to its own copies of the inputs, so
    the layer's weight attributes are pointed at those copies for the check.
    """
    layer(x)  # build
    weights = layer.weights  # read once: reading it may cache it among the attributes
    names = [name for name, value in list(vars(layer).items())
             if any(value is weight for weight in weights)]
    originals = [getattr(layer, name) for name in names]

    def run(inputs, *weights):
        for name, weight in zip(names, weights):
            setattr(layer, name, weight)
        return layer(inputs)

    try:
        assert db.gradcheck(run, [x] + originals)
    finally:
        for name, weight in zip(names, originals):
            setattr(layer, name, weight)
    return names


def round_trip(layer):
    config = json.loads(json.dumps(layer.get_config()))
    config.pop("name")
    return type(layer).from_config(config)


# ----------------------------------------------------------------------------
# conv ops
# ----------------------------------------------------------------------------
# (input shape, kernel shape, strides, padding, dilation): strides, 'same' with
# even kernels (asymmetric padding), dilation.
CONV2D_CASES = [
    ((2, 5, 6, 2), (3, 3, 2, 3), 1, "valid", 1),
    ((1, 5, 5, 2), (3, 2, 2, 2), (2, 1), "valid", 1),
    ((2, 4, 5, 1), (2, 2, 1, 2), 1, "same", 1),
    ((1, 5, 6, 2), (2, 3, 2, 2), (2, 2), "same", 1),
    ((1, 6, 6, 1), (2, 2, 1, 2), 1, "valid", (2, 1)),
    ((1, 5, 5, 2), (3, 2, 2, 1), 1, "same", 2),
]


@pytest.mark.parametrize("x_shape, w_shape, strides, padding, dilation", CONV2D_CASES)
def test_conv2d_op_gradients(backend_name, x_shape, w_shape, strides, padding, dilation):
    def fn(x, w):
        return F.conv2d(x, w, strides, padding, dilation)

    assert db.gradcheck(fn, [random(*x_shape), random(*w_shape, seed=1)])


CONV1D_CASES = [
    ((2, 7, 2), (3, 2, 3), 1, "valid", 1),
    ((1, 8, 2), (2, 2, 2), 3, "same", 1),
    ((2, 6, 1), (2, 1, 2), 1, "causal", 2),
    ((1, 7, 2), (3, 2, 1), 2, "same", 1),
]


@pytest.mark.parametrize("x_shape, w_shape, strides, padding, dilation", CONV1D_CASES)
def test_conv1d_op_gradients(backend_name, x_shape, w_shape, strides, padding, dilation):
    def fn(x, w):
        return F.conv1d(x, w, strides, padding, dilation)

    assert db.gradcheck(fn, [random(*x_shape), random(*w_shape, seed=1)])


# ----------------------------------------------------------------------------
# Conv layers
# ----------------------------------------------------------------------------
@pytest.mark.parametrize("options", [
    dict(filters=2, kernel_size=3),
    dict(filters=3, kernel_size=(2, 2), padding="same", activation="tanh"),
    dict(filters=2, kernel_size=2, strides=(2, 1), padding="same", activation="sigmoid"),
    dict(filters=2, kernel_size=(2, 3), dilation_rate=(2, 1), use_bias=False),
    dict(filters=2, kernel_size=2, activation="relu"),
    dict(filters=2, kernel_size=2, activation="elu"),  # not fusable: its own op after the conv
])
def test_conv2d_layer_gradients(backend_name, options):
    layer = Conv2D(**options, dtype="float64")
    names = check_layer_gradients(layer, random(2, 5, 5, 2))
    assert names == (["kernel", "bias"] if layer.use_bias else ["kernel"])


def test_conv2d_relu_then_max_pool_gradients(backend_name):
    """A conv whose output pixels partly get no gradient (the pool never reads
    the last row and column of a 5x5 output), with enough channels that the
    Numba kernels leave those pixels out of their backward GEMMs."""
    conv = Conv2D(3, 2, activation="relu", dtype="float64")
    x = random(2, 6, 6, 6)

    def conv_then_pool(inputs, kernel, bias):
        conv.kernel, conv.bias = kernel, bias
        return F.max_pool2d(conv(inputs), 2)

    conv(x)  # build
    kernel, bias = conv.kernel, conv.bias
    try:
        assert db.gradcheck(conv_then_pool, [x, kernel, bias])
    finally:
        conv.kernel, conv.bias = kernel, bias


@pytest.mark.parametrize("options, ops", [
    (dict(activation="relu"), [("Convolution", 3)]),
    (dict(activation=None), [("Convolution", 3)]),
    (dict(activation="relu", use_bias=False), [("Convolution", 2), ("ReLU", 1)]),
    (dict(activation="elu"), [("Convolution", 2), ("Add", 2), ("ELU", 1)]),
])
def test_conv2d_bias_and_activation_fuse_into_the_convolution(options, ops):
    """Bias and a kernel-known activation are the convolution's epilogue: one op."""
    from deepbreadth.tracer import trace

    layer = Conv2D(2, 2, **options)
    x = np.ones((1, 4, 4, 1), dtype="float32")
    layer(x)
    with trace() as recorded:
        layer(x)
    assert [(record.op, len(record.input_shapes)) for record in recorded.ops] == ops


# ----------------------------------------------------------------------------
# Conv2D followed by MaxPooling2D: one op in a Sequential model
# ----------------------------------------------------------------------------
@pytest.mark.parametrize("pool_options, conv_options", [
    (dict(pool_size=2), dict(activation="relu")),
    (dict(pool_size=2), dict(activation="relu", padding="same")),
    (dict(pool_size=3, strides=2, padding="same"), dict(activation="tanh")),
    (dict(pool_size=(2, 3), strides=1), dict(activation=None, strides=2)),
])
def test_conv2d_max_pool2d_op_gradients(backend_name, pool_options, conv_options):
    conv = Conv2D(3, 2, **conv_options, dtype="float64")
    x = random(2, 7, 6, 2)
    conv(x)  # build

    def fused(inputs, kernel, bias):
        return F.conv2d_max_pool2d(
            inputs, kernel, bias, conv.strides, conv.padding, activation=conv.activation,
            pool_size=pool_options["pool_size"], pool_strides=pool_options.get("strides"),
            pool_padding=pool_options.get("padding", "valid"))

    assert db.gradcheck(fused, [x, conv.kernel, conv.bias])


def conv_pool_model(activation="relu", seed=0):
    db.keras.utils.set_random_seed(seed)
    return db.keras.models.Sequential([
        db.keras.layers.Input((9, 8, 2), dtype="float64"),
        Conv2D(4, 3, activation=activation, dtype="float64"), MaxPooling2D(2, dtype="float64"),
        Conv2D(3, 2, activation=activation, dtype="float64"), MaxPooling2D(2, dtype="float64"),
        db.keras.layers.Flatten(dtype="float64"), db.keras.layers.Dense(2, dtype="float64"),
    ])


def output_and_gradients(model, x, one_layer_at_a_time):
    """The model's output and the gradients of its weights, the layers run as the
    model runs them or, with fusion out of the way, one call per layer."""
    for weight in model.weights:
        weight.grad = None
    if one_layer_at_a_time:
        y = x  # an array: the first layer moves it to its weights' device
        for layer in model.layers:
            y = layer(y)
    else:
        y = model(x)
    (y * y).sum().backward()
    return y.numpy(), [weight.grad.numpy() for weight in model.weights]


def assert_same_as_layer_by_layer(model, x, rtol, atol):
    """The model's output and weight gradients are those of its layers called one
    by one (so never fused)."""
    fused = output_and_gradients(model, x, one_layer_at_a_time=False)
    separate = output_and_gradients(model, x, one_layer_at_a_time=True)
    np.testing.assert_allclose(fused[0], separate[0], rtol=rtol, atol=atol)
    for found, expected in zip(fused[1], separate[1]):
        np.testing.assert_allclose(found, expected, rtol=rtol, atol=atol)


@pytest.mark.parametrize("activation", ["relu", "sigmoid"])
def test_sequential_runs_conv_and_max_pool_as_one_op(backend_name, activation):
    """The fused op gives what the two layers give one after the other: the same
    output and the same weight gradients; the trace shows one op per pair."""
    from deepbreadth.tracer import trace

    model = conv_pool_model(activation)
    # Values a float32 holds exactly: the model (float32 by default) casts its
    # input before the float64 layers cast it back.
    x = random(3, 9, 8, 2).astype(np.float32).astype(np.float64)
    assert_same_as_layer_by_layer(model, x, rtol=1e-10, atol=1e-12)
    with trace() as recorded:
        model(x)
    ops = [record.op for record in recorded.ops if record.op != "AsType"]
    assert ops[:2] == ["ConvolutionMaxPool", "ConvolutionMaxPool"]
    assert "MaxPool" not in ops


def test_trace_counts_the_fused_op_as_its_two_ops():
    """The tracer's FLOPs of ConvolutionMaxPool, forward and backward, are those
    of the Convolution and MaxPool ops it replaces."""
    from deepbreadth.tracer import trace

    model = conv_pool_model()
    x = random(2, 9, 8, 2)

    def flops_by_phase(hook_layer):
        handle = hook_layer.register_forward_hook(lambda *args: None) if hook_layer else None
        with trace() as recorded:
            (model(x) ** 2).sum().backward()
        if handle is not None:
            handle.remove()
        first_block = [record for record in recorded.ops
                       if record.layer in (model.layers[0].name, model.layers[1].name)]
        return {phase: sum(record.flops for record in first_block if record.phase == phase)
                for phase in ("forward", "backward")}

    fused = flops_by_phase(None)
    separate = flops_by_phase(model.layers[0])  # a hook keeps the two layers apart
    assert fused == separate and fused["forward"] > 0


def test_a_hook_or_an_unfused_activation_keeps_the_layers_apart():
    """A forward hook on the convolution must see its own output, and an
    activation the kernels cannot fuse (elu) leaves the convolution and the
    pool as they were: the trace shows the pool again."""
    from deepbreadth.tracer import trace

    x = random(2, 9, 8, 2)
    model = conv_pool_model()
    seen = []
    handle = model.layers[0].register_forward_hook(
        lambda layer, inputs, outputs: seen.append(outputs.shape))
    with trace() as recorded:
        model(x)
    handle.remove()
    assert seen == [(2, 7, 6, 4)]
    ops = [record.op for record in recorded.ops if record.op != "AsType"]
    assert ops[:3] == ["Convolution", "MaxPool", "ConvolutionMaxPool"]
    with trace() as recorded:
        conv_pool_model("elu")(x)
    assert "MaxPool" in [record.op for record in recorded.ops]
    assert "ConvolutionMaxPool" not in [record.op for record in recorded.ops]


def test_functional_model_runs_conv_and_max_pool_as_one_op(backend_name):
    """As in Sequential, unless the model also returns, or another layer also
    reads, the convolution's output."""
    from deepbreadth.tracer import trace

    layers = db.keras.layers
    x = random(3, 9, 8, 2).astype(np.float32)
    inputs = layers.Input((9, 8, 2))
    features = Conv2D(4, 3, activation="relu")(inputs)
    outputs = layers.Dense(2)(layers.Flatten()(MaxPooling2D(2)(features)))
    model = db.keras.Model(inputs, outputs)
    both = db.keras.Model(inputs, [outputs, features])
    assert_same_as_layer_by_layer(model, x, rtol=1e-4, atol=1e-5)
    with trace() as recorded:
        model(x)
    assert "ConvolutionMaxPool" in [record.op for record in recorded.ops]
    with trace() as recorded:
        both(x)
    assert "ConvolutionMaxPool" not in [record.op for record in recorded.ops]


def test_fuses_with_names_its_conditions():
    conv = Conv2D(2, 3, activation="relu")
    assert conv.fuses_with(MaxPooling2D(2))
    assert not conv.fuses_with(AveragePooling2D(2))
    assert not Conv2D(2, 3, activation="relu", use_bias=False).fuses_with(MaxPooling2D(2))
    assert not Conv2D(2, 3, activation="elu").fuses_with(MaxPooling2D(2))
    assert not conv.fuses_with(MaxPooling2D(2, dtype="float64"))
    assert Conv1D(2, 3).fuses_with(MaxPooling1D(2))
    assert not Conv1D(2, 3).fuses_with(MaxPooling2D(2))
    assert not conv.fuses_with(MaxPooling1D(2))
    assert not MaxPooling2D(2).fuses_with(conv)

    class ShiftedConv2D(Conv2D):  # a call of its own, which one fused op would skip
        def call(self, inputs):
            return super().call(inputs) + 1.0

    class ShiftedMaxPooling2D(MaxPooling2D):
        def call(self, inputs):
            return super().call(inputs) + 1.0

    assert not ShiftedConv2D(2, 3, activation="relu").fuses_with(MaxPooling2D(2))
    assert not conv.fuses_with(ShiftedMaxPooling2D(2))


@pytest.mark.parametrize("pool_options", [dict(pool_size=2), dict(pool_size=3, strides=2,
                                                                   padding="same")])
def test_conv1d_max_pool1d_op_gradients(backend_name, pool_options):
    conv = Conv1D(3, 2, activation="relu", padding="causal", dtype="float64")
    x = random(2, 9, 2)
    conv(x)  # build

    def fused(inputs, kernel, bias):
        return F.conv1d_max_pool1d(
            inputs, kernel, bias, padding="causal", activation="relu",
            pool_size=pool_options["pool_size"], pool_strides=pool_options.get("strides"),
            pool_padding=pool_options.get("padding", "valid"))

    assert db.gradcheck(fused, [x, conv.kernel, conv.bias])


def test_sequential_runs_conv1d_and_max_pool1d_as_one_op(backend_name):
    from deepbreadth.tracer import trace

    db.keras.utils.set_random_seed(1)
    model = db.keras.models.Sequential([
        db.keras.layers.Input((11, 3)), Conv1D(4, 3, activation="relu"), MaxPooling1D(2),
        db.keras.layers.Flatten(), db.keras.layers.Dense(2)])
    x = random(3, 11, 3).astype(np.float32)
    assert_same_as_layer_by_layer(model, x, rtol=1e-4, atol=1e-5)
    with trace() as recorded:
        model(x)
    assert [record.op for record in recorded.ops][0] == "ConvolutionMaxPool"


@pytest.mark.parametrize("options", [
    dict(filters=2, kernel_size=3, activation="tanh"),
    dict(filters=2, kernel_size=2, padding="same", strides=2),
    dict(filters=3, kernel_size=2, padding="causal", dilation_rate=2),
])
def test_conv1d_layer_gradients(backend_name, options):
    check_layer_gradients(Conv1D(**options, dtype="float64"), random(2, 7, 2))


def torch_conv2d(torch, x, kernel, bias, strides, pads, dilation):
    """PyTorch's conv2d on our layouts: NHWC <-> NCHW, (kh, kw, in, out) <-> (out, in, kh, kw).

    pads = ((top, bottom), (left, right)), applied explicitly so that the
    asymmetric 'same' padding of TensorFlow is what PyTorch sees too.
    """
    (top, bottom), (left, right) = pads
    x_nchw = torch.nn.functional.pad(x.permute(0, 3, 1, 2), (left, right, top, bottom))
    y = torch.nn.functional.conv2d(x_nchw, kernel.permute(3, 2, 0, 1), bias, stride=strides,
                                   dilation=dilation)
    return y.permute(0, 2, 3, 1)


# (layer options, the padding TensorFlow's 'same' rule gives, worked out by hand)
CONV2D_TORCH_CASES = [
    (dict(kernel_size=3), ((0, 0), (0, 0))),
    (dict(kernel_size=(3, 2), strides=(2, 1)), ((0, 0), (0, 0))),
    (dict(kernel_size=2, padding="same"), ((0, 1), (0, 1))),                  # even kernel
    (dict(kernel_size=3, strides=2, padding="same"), ((1, 1), (0, 1))),       # 5x6 input
    (dict(kernel_size=(3, 2), dilation_rate=(1, 2), padding="same"), ((1, 1), (1, 1))),
    (dict(kernel_size=2, activation="relu"), ((0, 0), (0, 0))),
]


@pytest.mark.parametrize("options, pads", CONV2D_TORCH_CASES)
def test_conv2d_layer_matches_torch(backend_name, options, pads):
    torch = pytest.importorskip("torch")
    x = random(2, 5, 6, 3).astype(np.float32)
    layer = Conv2D(4, **options, bias_initializer="random_normal")
    ours_x = db.tensor(x, requires_grad=True)
    ours = layer(ours_x)
    upstream = random(*ours.shape, seed=1).astype(np.float32)
    ours.backward(upstream)

    kernel, bias = (torch.tensor(w, requires_grad=True) for w in layer.get_weights())
    theirs_x = torch.tensor(x, requires_grad=True)
    theirs = torch_conv2d(torch, theirs_x, kernel, bias, layer.strides, pads, layer.dilation_rate)
    if options.get("activation") == "relu":
        theirs = torch.relu(theirs)
    theirs.backward(torch.tensor(upstream))

    def close(a, b):
        np.testing.assert_allclose(a, b.detach().numpy(), rtol=1e-4, atol=1e-5)

    close(ours.numpy(), theirs)
    close(ours_x.grad.numpy(), theirs_x.grad)
    close(layer.kernel.grad.numpy(), kernel.grad)
    close(layer.bias.grad.numpy(), bias.grad)


@pytest.mark.parametrize("options, pads", [
    (dict(kernel_size=3, strides=2), (0, 0)),
    (dict(kernel_size=2, padding="same"), (0, 1)),
    (dict(kernel_size=3, padding="causal", dilation_rate=2), (4, 0)),
])
def test_conv1d_layer_matches_torch(backend_name, options, pads):
    torch = pytest.importorskip("torch")
    x = random(2, 7, 3).astype(np.float32)
    layer = Conv1D(2, **options, bias_initializer="random_normal")
    ours_x = db.tensor(x, requires_grad=True)
    ours = layer(ours_x)
    upstream = random(*ours.shape, seed=1).astype(np.float32)
    ours.backward(upstream)

    kernel, bias = (torch.tensor(w, requires_grad=True) for w in layer.get_weights())
    theirs_x = torch.tensor(x, requires_grad=True)
    x_ncl = torch.nn.functional.pad(theirs_x.permute(0, 2, 1), pads)
    theirs = torch.nn.functional.conv1d(x_ncl, kernel.permute(2, 1, 0), bias,
                                        stride=layer.strides, dilation=layer.dilation_rate)
    theirs = theirs.permute(0, 2, 1)
    theirs.backward(torch.tensor(upstream))
    for a, b in [(ours, theirs), (ours_x.grad, theirs_x.grad), (layer.kernel.grad, kernel.grad),
                 (layer.bias.grad, bias.grad)]:
        np.testing.assert_allclose(a.numpy(), b.detach().numpy(), rtol=1e-4, atol=1e-5)


def test_conv_layers_shapes_and_weights():
    layer = Conv2D(8, (3, 2), input_shape=(6, 5, 3))
    assert layer(Input(shape=(6, 5, 3))).shape == (None, 4, 4, 8)
    assert [w.shape for w in layer.get_weights()] == [(3, 2, 3, 8), (8,)]
    assert Conv2D(4, 3, strides=2, padding="same")(np.zeros((1, 7, 8, 1))).shape == (1, 4, 4, 4)
    assert Conv1D(5, 3, padding="causal")(np.zeros((2, 9, 4))).shape == (2, 9, 5)
    assert Conv1D(5, 3, padding="SAME").padding == "same"  # Keras accepts any case


def test_conv_config_round_trip():
    layer = Conv2D(3, 2, strides=(2, 1), padding="same", dilation_rate=1, activation="relu",
                   use_bias=False, kernel_initializer=db.initializers.RandomNormal(stddev=0.3))
    copy = round_trip(layer)
    for key in ("filters", "kernel_size", "strides", "padding", "dilation_rate", "use_bias"):
        assert getattr(copy, key) == getattr(layer, key)
    assert copy.get_config()["activation"] == "relu"
    assert copy.kernel_initializer.stddev == 0.3
    x = random(1, 4, 4, 2).astype(np.float32)
    layer(x)
    copy(x)
    copy.set_weights(layer.get_weights())
    np.testing.assert_allclose(copy(x).numpy(), layer(x).numpy())
    assert round_trip(Conv1D(2, 3, padding="causal")).padding == "causal"


def test_conv2d_wrong_rank_says_what_it_expects():
    with pytest.raises(ValueError, match=r"Conv2D layer 'pixels' expects input of rank 4, "
                                         r"\(batch, height, width, channels\), got shape "
                                         r"\(2, 5, 5\); .*x\[\.\.\., None\]"):
        Conv2D(3, 3, name="pixels")(np.zeros((2, 5, 5)))
    with pytest.raises(ValueError, match=r"\(batch, steps, channels\), got shape \(4, 3, 3, 1\)"):
        Conv1D(3, 3)(np.zeros((4, 3, 3, 1)))


def test_conv2d_channel_change_after_build():
    layer = Conv2D(2, 2)
    layer(np.zeros((1, 4, 4, 3)))
    with pytest.raises(ValueError, match=r"built for 3 input channels, got input of shape "
                                         r"\(1, 4, 4, 1\) with 1"):
        layer(np.zeros((1, 4, 4, 1)))


def test_conv_kernel_larger_than_padded_input():
    with pytest.raises(ValueError, match=r"Conv2D layer 'big'.*kernel \(5, 5\).*larger than the "
                                         r"input \(3, 4\).*padding='same'"):
        Conv2D(2, 5, name="big")(np.zeros((1, 3, 4, 1)))
    with pytest.raises(ValueError, match=r"spans \(5,\)"):
        Conv1D(2, 3, dilation_rate=2)(np.zeros((1, 4, 1)))


def test_conv_argument_errors():
    with pytest.raises(ValueError, match="channels_last"):
        Conv2D(2, 3, data_format="channels_first")
    with pytest.raises(ValueError, match="kernel_size must be a positive int or a tuple of 2"):
        Conv2D(2, (3, 3, 3))
    with pytest.raises(ValueError, match="padding must be one of"):
        Conv2D(2, 3, padding="causal")
    with pytest.raises(ValueError, match="filters must be a positive int"):
        Conv1D(0, 3)


# ----------------------------------------------------------------------------
# pooling ops and layers
# ----------------------------------------------------------------------------
POOL2D_CASES = [
    (dict(pool_size=2), (2, 5, 6, 2)),
    (dict(pool_size=(3, 2), strides=(1, 2)), (1, 5, 6, 2)),
    (dict(pool_size=2, strides=1, padding="same"), (1, 4, 5, 2)),
    (dict(pool_size=3, strides=2, padding="same"), (2, 5, 6, 1)),
]


@pytest.mark.parametrize("layer_class", [MaxPooling2D, AveragePooling2D])
@pytest.mark.parametrize("options, shape", POOL2D_CASES)
def test_pool2d_layer_gradients(backend_name, layer_class, options, shape):
    assert db.gradcheck(layer_class(**options, dtype="float64"), [random(*shape)])


@pytest.mark.parametrize("layer_class", [MaxPooling1D, AveragePooling1D])
@pytest.mark.parametrize("options", [dict(pool_size=2), dict(pool_size=3, strides=1),
                                     dict(pool_size=2, padding="same"),
                                     dict(pool_size=3, strides=2, padding="same")])
def test_pool1d_layer_gradients(backend_name, layer_class, options):
    assert db.gradcheck(layer_class(**options, dtype="float64"), [random(2, 7, 2)])


@pytest.mark.parametrize("layer_class, shape", [
    (GlobalMaxPooling1D, (2, 5, 3)), (GlobalAveragePooling1D, (2, 5, 3)),
    (GlobalMaxPooling2D, (2, 3, 4, 2)), (GlobalAveragePooling2D, (2, 3, 4, 2)),
])
def test_global_pool_layer_gradients(backend_name, layer_class, shape):
    assert db.gradcheck(layer_class(dtype="float64"), [random(*shape)])
    assert db.gradcheck(layer_class(keepdims=True, dtype="float64"), [random(*shape)])


def torch_pool2d(torch, kind, x_nhwc, pool, strides, pads):
    """PyTorch pooling of NHWC data with explicit (TensorFlow-style, maybe asymmetric) padding.

    Max pools pad with -inf (padding never wins); average pools divide each window
    by its count of real elements, found by pooling a tensor of ones the same way.
    """
    (top, bottom), (left, right) = pads
    x = x_nhwc.permute(0, 3, 1, 2)
    torch_pads = (left, right, top, bottom)
    if kind == "max":
        padded = torch.nn.functional.pad(x, torch_pads, value=-float("inf"))
        y = torch.nn.functional.max_pool2d(padded, pool, strides)
    else:
        sums = torch.nn.functional.avg_pool2d(torch.nn.functional.pad(x, torch_pads), pool, strides)
        ones = torch.nn.functional.pad(torch.ones_like(x[:1, :1]), torch_pads)
        counts = torch.nn.functional.avg_pool2d(ones, pool, strides)
        y = sums / counts
    return y.permute(0, 2, 3, 1)


# (options, input shape, the padding TensorFlow's 'same' rule gives, by hand)
POOL2D_TORCH_CASES = [
    (dict(pool_size=2), (2, 6, 5, 3), ((0, 0), (0, 0))),
    (dict(pool_size=(3, 2), strides=(1, 2)), (1, 5, 6, 2), ((0, 0), (0, 0))),
    (dict(pool_size=2, strides=1, padding="same"), (1, 4, 5, 2), ((0, 1), (0, 1))),
    (dict(pool_size=3, strides=2, padding="same"), (2, 5, 6, 1), ((1, 1), (0, 1))),
]


@pytest.mark.parametrize("kind, layer_class", [("max", MaxPooling2D), ("avg", AveragePooling2D)])
@pytest.mark.parametrize("options, shape, pads", POOL2D_TORCH_CASES)
def test_pool2d_layer_matches_torch(backend_name, kind, layer_class, options, shape, pads):
    torch = pytest.importorskip("torch")
    x = random(*shape).astype(np.float32)
    layer = layer_class(**options)
    ours_x = db.tensor(x, requires_grad=True)
    ours = layer(ours_x)
    upstream = random(*ours.shape, seed=1).astype(np.float32)
    ours.backward(upstream)
    theirs_x = torch.tensor(x, requires_grad=True)
    theirs = torch_pool2d(torch, kind, theirs_x, layer.pool_size, layer.strides, pads)
    theirs.backward(torch.tensor(upstream))
    np.testing.assert_allclose(ours.numpy(), theirs.detach().numpy(), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(ours_x.grad.numpy(), theirs_x.grad.numpy(), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("layer_class, torch_name", [(MaxPooling1D, "max_pool1d"),
                                                     (AveragePooling1D, "avg_pool1d")])
def test_pool1d_layer_matches_torch(backend_name, layer_class, torch_name):
    torch = pytest.importorskip("torch")
    x = random(2, 9, 3).astype(np.float32)
    layer = layer_class(pool_size=3, strides=2)
    ours_x = db.tensor(x, requires_grad=True)
    ours = layer(ours_x)
    upstream = random(*ours.shape, seed=1).astype(np.float32)
    ours.backward(upstream)
    theirs_x = torch.tensor(x, requires_grad=True)
    pool = getattr(torch.nn.functional, torch_name)
    theirs = pool(theirs_x.permute(0, 2, 1), 3, 2).permute(0, 2, 1)
    theirs.backward(torch.tensor(upstream))
    np.testing.assert_allclose(ours.numpy(), theirs.detach().numpy(), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(ours_x.grad.numpy(), theirs_x.grad.numpy(), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("layer_class, reduce", [
    (GlobalMaxPooling2D, "amax"), (GlobalAveragePooling2D, "mean"),
    (GlobalMaxPooling1D, "amax"), (GlobalAveragePooling1D, "mean"),
])
def test_global_pool_layer_matches_torch(backend_name, layer_class, reduce):
    torch = pytest.importorskip("torch")
    shape = (2, 3, 4, 5) if layer_class.spatial_dims == 2 else (2, 6, 5)
    axes = tuple(range(1, len(shape) - 1))
    x = random(*shape).astype(np.float32)
    upstream = random(2, 5, seed=1).astype(np.float32)
    ours_x = db.tensor(x, requires_grad=True)
    ours = layer_class()(ours_x)
    ours.backward(upstream)
    theirs_x = torch.tensor(x, requires_grad=True)
    theirs = getattr(torch, reduce)(theirs_x, dim=axes)
    theirs.backward(torch.tensor(upstream))
    np.testing.assert_allclose(ours.numpy(), theirs.detach().numpy(), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(ours_x.grad.numpy(), theirs_x.grad.numpy(), rtol=1e-4, atol=1e-6)
    kept = layer_class(keepdims=True)(x)
    assert kept.shape == (2,) + (1,) * len(axes) + (5,)
    np.testing.assert_allclose(kept.numpy().reshape(2, 5), ours.numpy())


def test_pool_ops_default_strides_are_the_pool_size(backend_name):
    x = db.tensor(random(1, 6, 4, 2))
    assert F.max_pool2d(x, (3, 2)).shape == (1, 2, 2, 2)
    assert F.avg_pool1d(F.reshape(x, (1, 24, 2)), 4).shape == (1, 6, 2)
    assert F.max_pool1d(F.reshape(x, (1, 24, 2)), 3, strides=1).shape == (1, 22, 2)
    expected = random(1, 6, 4, 2).reshape(1, 3, 2, 2, 2, 2).mean(axis=(2, 4))
    np.testing.assert_allclose(F.avg_pool2d(x, 2).numpy(), expected, rtol=1e-5)


def test_pooling_shapes_defaults_and_aliases():
    assert MaxPooling2D()(Input(shape=(7, 6, 3))).shape == (None, 3, 3, 3)
    assert MaxPool2D is MaxPooling2D and AvgPool2D is AveragePooling2D
    layer = MaxPooling2D(pool_size=3)
    assert layer.strides == (3, 3)  # strides=None: windows side by side
    assert AveragePooling1D(2, padding="same")(np.zeros((1, 5, 2))).shape == (1, 3, 2)
    assert GlobalAveragePooling2D()(Input(shape=(4, 4, 6))).shape == (None, 6)


def test_pooling_config_round_trip():
    copy = round_trip(MaxPooling2D(pool_size=(3, 2), strides=(1, 2), padding="same"))
    assert (copy.pool_size, copy.strides, copy.padding) == ((3, 2), (1, 2), "same")
    assert round_trip(AveragePooling1D(4)).pool_size == (4,)
    assert round_trip(GlobalMaxPooling2D(keepdims=True)).keepdims is True


def test_pooling_errors():
    with pytest.raises(ValueError, match=r"MaxPooling2D layer 'pool' expects input of rank 4, "
                                         r"\(batch, height, width, channels\), "
                                         r"got shape \(2, 8, 3\)"):
        MaxPooling2D(name="pool")(np.zeros((2, 8, 3)))
    with pytest.raises(ValueError, match=r"AveragePooling2D layer 'avg'.*pool window \(3, 3\).*"
                                         r"larger than the input \(2, 5\)"):
        AveragePooling2D(3, name="avg")(np.zeros((1, 2, 5, 1)))
    with pytest.raises(ValueError, match=r"GlobalAveragePooling1D layer .* rank 3"):
        GlobalAveragePooling1D()(np.zeros((2, 3, 4, 5)))
    with pytest.raises(ValueError, match="channels_last"):
        GlobalMaxPooling2D(data_format="channels_first")
    with pytest.raises(ValueError, match="pool_size must be a positive int"):
        MaxPooling1D(pool_size=0)
