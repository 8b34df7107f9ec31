"""Convolution kernels, held against three oracles.

1. Every candidate set (Numba, and CUDA where a GPU exists) against the NumPy
   reference, on shapes drawn by hypothesis: batch 1, odd sizes, strides larger
   than the kernel, dilation, 'same' padding with even kernels, both dtypes.
2. The reference against PyTorch, an independent implementation.
3. The reference's backward passes against float64 central differences.
"""
import numpy as np
import pytest
from conftest import assert_close, lanes
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deepbreadth.kernels.reference.conv import conv2d_output_size
from deepbreadth.kernels.shapes import resolve_padding

# The `candidate` fixture holds no state, so reusing it across examples is safe.
given_with_fixtures = settings(
    suppress_health_check=[*settings.default.suppress_health_check,
                           HealthCheck.function_scoped_fixture]
)


@st.composite
def conv_cases(draw, spatial_axes):
    """Arguments of one convolution with `spatial_axes` spatial axes (1 or 2)."""
    kernel = tuple(draw(st.integers(1, 3)) for _ in range(spatial_axes))
    stride = tuple(draw(st.integers(1, 4)) for _ in range(spatial_axes))
    dilation = tuple(draw(st.integers(1, 2)) for _ in range(spatial_axes))
    # At least the dilated kernel, so that even 'valid' has an output.
    spatial = tuple(draw(st.integers((k - 1) * d + 1, 8)) for k, d in zip(kernel, dilation))
    padding_kind = draw(st.sampled_from(["valid", "same", "explicit"]))
    if padding_kind == "explicit":
        padding = tuple(
            (draw(st.integers(0, 2)), draw(st.integers(0, 2))) for _ in range(spatial_axes)
        )
    else:
        padding = resolve_padding(padding_kind, spatial, kernel, stride, dilation)
    # Up to 6 channels: the Numba set lays out its column matrix differently
    # from 5 channels on (kernels/cpu/conv.py, FEW_CHANNELS).
    channels, filters = draw(st.integers(1, 6)), draw(st.integers(1, 3))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    x = rng.standard_normal((draw(st.integers(1, 3)), *spatial, channels)).astype(dtype)
    w = rng.standard_normal((*kernel, channels, filters)).astype(dtype)
    return x, w, (stride, padding, dilation), rng


def check_against_reference(candidate, reference, dims, x, w, geometry, rng):
    """Forward and both backward passes of conv{dims}d agree with the reference."""
    forward, backward_input, backward_kernel = (
        f"conv{dims}d_forward", f"conv{dims}d_backward_input", f"conv{dims}d_backward_kernel")
    dtype = x.dtype
    expected_y = getattr(reference, forward)(x, w, *geometry)
    y = candidate.to_numpy(
        getattr(candidate, forward)(candidate.asarray(x), candidate.asarray(w), *geometry))
    assert y.dtype == dtype
    assert_close(y, expected_y, dtype, "forward")

    grad_y = rng.standard_normal(expected_y.shape).astype(dtype)
    grad_x = candidate.to_numpy(getattr(candidate, backward_input)(
        candidate.asarray(grad_y), candidate.asarray(w), x.shape, *geometry))
    assert grad_x.dtype == dtype
    assert_close(grad_x, getattr(reference, backward_input)(grad_y, w, x.shape, *geometry),
                 dtype, "backward input")

    grad_w = candidate.to_numpy(getattr(candidate, backward_kernel)(
        candidate.asarray(x), candidate.asarray(grad_y), w.shape, *geometry))
    assert grad_w.dtype == dtype
    assert_close(grad_w, getattr(reference, backward_kernel)(x, grad_y, w.shape, *geometry),
                 dtype, "backward kernel")


@given_with_fixtures
@given(case=conv_cases(spatial_axes=2))
def test_conv2d_matches_reference(candidate, reference, case):
    check_against_reference(candidate, reference, 2, *case)


@given_with_fixtures
@given(case=conv_cases(spatial_axes=1))
def test_conv1d_matches_reference(candidate, reference, case):
    check_against_reference(candidate, reference, 1, *case)


def test_conv2d_leaves_inputs_alone_and_accepts_views(candidate, reference):
    rng = np.random.default_rng(1)
    base = rng.standard_normal((2, 6, 7, 3))
    x = base[:, ::-1, :, :]  # a non-contiguous view
    w = rng.standard_normal((2, 3, 3, 4))
    geometry = ((1, 2), ((1, 0), (1, 1)), (1, 1))
    x_before, w_before = x.copy(), w.copy()
    y = candidate.to_numpy(candidate.conv2d_forward(candidate.asarray(x), candidate.asarray(w),
                                                    *geometry))
    assert_close(y, reference.conv2d_forward(x, w, *geometry), np.float64, "forward on a view")
    np.testing.assert_array_equal(x, x_before)
    np.testing.assert_array_equal(w, w_before)


def test_conv2d_refuses_mismatched_shapes(candidate, reference):
    geometry = ((1, 1), ((0, 0), (0, 0)), (1, 1))
    for kernels, asarray in ((candidate, candidate.asarray), (reference, np.asarray)):
        x = asarray(np.zeros((1, 5, 5, 3)))
        with pytest.raises(ValueError, match="channels"):
            kernels.conv2d_forward(x, asarray(np.zeros((3, 3, 2, 4))), *geometry)
        with pytest.raises(ValueError, match="does not fit"):
            kernels.conv2d_forward(x, asarray(np.zeros((6, 3, 3, 4))), *geometry)


# ------------------------------------------------- the convolution with bias and activation

ACTIVATIONS = ["linear", "relu", "tanh", "sigmoid", "hard_sigmoid"]


def gradient_with_silent_pixels(rng, shape, dtype):
    """A random grad_y in which some output pixels get no gradient in any filter,
    as behind a max pool (the Numba set leaves those pixels out of its GEMMs)."""
    grad_y = rng.standard_normal(shape).astype(dtype)
    silent = rng.random(shape[:-1]) < 0.4
    grad_y[silent] = 0.0
    return grad_y


def check_fused_against_reference(candidate, reference, dims, x, w, geometry, rng, activation,
                                  need_grad_x, need_grad_w):
    """conv{dims}d_bias_activation_forward/backward agree with the reference."""
    forward = getattr(candidate, f"conv{dims}d_bias_activation_forward")
    backward = getattr(candidate, f"conv{dims}d_bias_activation_backward")
    dtype = x.dtype
    bias = rng.standard_normal(w.shape[-1]).astype(dtype)
    expected_y = getattr(reference, f"conv{dims}d_bias_activation_forward")(
        x, w, bias, *geometry, activation)
    as_device = candidate.asarray
    y = candidate.to_numpy(forward(as_device(x), as_device(w), as_device(bias), *geometry,
                                   activation))
    assert y.dtype == dtype
    assert_close(y, expected_y, dtype, f"{activation} forward")

    grad_y = gradient_with_silent_pixels(rng, y.shape, dtype)
    expected = getattr(reference, f"conv{dims}d_bias_activation_backward")(
        grad_y, expected_y, x, w, *geometry, activation, need_grad_x, need_grad_w)
    found = [None if value is None else candidate.to_numpy(value) for value in backward(
        as_device(grad_y), as_device(expected_y), as_device(x), as_device(w), *geometry,
        activation, need_grad_x, need_grad_w)]
    for name, value, wanted, expected_value in zip(
            ("grad_x", "grad_w", "grad_bias"), found, (need_grad_x, need_grad_w, True), expected):
        if not wanted:
            assert value is None and expected_value is None, f"{name} was not asked for"
            continue
        assert value.dtype == dtype
        assert_close(value, expected_value, dtype, f"{activation} {name}")


@given_with_fixtures
@given(case=conv_cases(spatial_axes=2), activation=st.sampled_from(ACTIVATIONS),
       needs=st.sampled_from([(True, True), (False, True), (True, False)]))
def test_conv2d_bias_activation_matches_reference(candidate, reference, case, activation, needs):
    check_fused_against_reference(candidate, reference, 2, *case, activation, *needs)


@given_with_fixtures
@given(case=conv_cases(spatial_axes=1), activation=st.sampled_from(ACTIVATIONS))
def test_conv1d_bias_activation_matches_reference(candidate, reference, case, activation):
    check_fused_against_reference(candidate, reference, 1, *case, activation, True, True)


def test_reference_fused_conv_is_the_conv_then_bias_activation(reference):
    """The fused kernels' specification, spelled out with the separate kernels."""
    rng = np.random.default_rng(5)
    x, w, bias = (rng.standard_normal(shape) for shape in ((2, 6, 5, 3), (3, 2, 3, 4), (4,)))
    geometry = ((1, 2), ((1, 1), (0, 1)), (1, 1))
    y = reference.conv2d_bias_activation_forward(x, w, bias, *geometry, "tanh")
    np.testing.assert_array_equal(y, np.tanh(reference.conv2d_forward(x, w, *geometry) + bias))
    grad_y = rng.standard_normal(y.shape)
    grad_x, grad_w, grad_bias = reference.conv2d_bias_activation_backward(
        grad_y, y, x, w, *geometry, "tanh", True, True)
    grad_conv = grad_y * (1 - y * y)
    np.testing.assert_allclose(grad_bias, grad_conv.sum(axis=(0, 1, 2)))
    np.testing.assert_allclose(
        grad_x, reference.conv2d_backward_input(grad_conv, w, x.shape, *geometry))
    np.testing.assert_allclose(
        grad_w, reference.conv2d_backward_kernel(x, grad_conv, w.shape, *geometry))


def one_image_per_chunk_with_poisoned_scratch(monkeypatch):
    """The Numba conv kernels cut the batch into chunks of one image, and every
    scratch array they take starts as NaN (or -1 for pixel lists): a result
    that reads scratch it did not write shows."""
    from deepbreadth.kernels.cpu import conv as cpu_conv

    monkeypatch.setattr(cpu_conv, "CACHE_CHUNK_BYTES", 1)
    real_buffer = cpu_conv.Scratch.buffer

    def poisoned_buffer(self, name, shape, dtype=None):
        array = real_buffer(self, name, shape, dtype)
        array[...] = -1 if array.dtype.kind == "i" else np.nan
        return array

    monkeypatch.setattr(cpu_conv.Scratch, "buffer", poisoned_buffer)


@pytest.mark.parametrize("channels", [1, 6])
@pytest.mark.parametrize("lane_count", [1, 2])
def test_cpu_conv_in_many_chunks_with_poisoned_scratch(reference, monkeypatch, channels,
                                                       lane_count):
    """Chunks of one image shared out over lanes, scratch buffers that start as NaN
    (or -1 for pixel lists), some pixels without gradient: still the reference's
    results.  (Without threadpoolctl the kernels run one chunk per pass, and this
    checks that.)"""
    from deepbreadth.kernels import cpu

    one_image_per_chunk_with_poisoned_scratch(monkeypatch)
    rng = np.random.default_rng(6)
    x = rng.standard_normal((5, 7, 6, channels)).astype(np.float32)
    w = rng.standard_normal((3, 2, channels, 4)).astype(np.float32)
    bias = rng.standard_normal(4).astype(np.float32)
    geometry = ((1, 1), ((1, 1), (0, 1)), (1, 1))
    with lanes(lane_count):
        y = cpu.conv2d_bias_activation_forward(x, w, bias, *geometry, "relu")
        grad_y = gradient_with_silent_pixels(rng, y.shape, np.float32)
        found = cpu.conv2d_bias_activation_backward(grad_y, y, x, w, *geometry, "relu",
                                                    True, True)
        unfused = (cpu.conv2d_backward_input(grad_y, w, x.shape, *geometry),
                   cpu.conv2d_backward_kernel(x, grad_y, w.shape, *geometry))
    assert_close(y, reference.conv2d_bias_activation_forward(x, w, bias, *geometry, "relu"),
                 np.float32, "forward")
    expected = reference.conv2d_bias_activation_backward(grad_y, y, x, w, *geometry, "relu",
                                                         True, True)
    for name, value, expected_value in zip(("grad_x", "grad_w", "grad_bias"), found, expected):
        assert_close(value, expected_value, np.float32, name)
    assert_close(unfused[0], reference.conv2d_backward_input(grad_y, w, x.shape, *geometry),
                 np.float32, "unfused grad_x")
    assert_close(unfused[1], reference.conv2d_backward_kernel(x, grad_y, w.shape, *geometry),
                 np.float32, "unfused grad_w")


# ------------------------------------------------------- a convolution and its max pool

@st.composite
def pool_after(draw, conv_output_size):
    """(pool, pool_stride, pool_padding) of a max pool over a conv output of this size."""
    pool = tuple(draw(st.integers(1, min(3, n))) for n in conv_output_size)
    pool_stride = tuple(draw(st.integers(1, 3)) for _ in conv_output_size)
    padding_kind = draw(st.sampled_from(["valid", "same"]))
    pool_padding = resolve_padding(padding_kind, conv_output_size, pool, pool_stride, (1, 1))
    return pool, pool_stride, pool_padding


def assert_points_at_winners(argmax, y, conv_y, dtype):
    """Each argmax entry indexes an element of the convolution's output plane
    whose value is the pooled y: a winner of its window.  (Not compared index
    for index with the reference's: where float32 rounding makes two elements
    of a window tie, as at a saturated activation, either may win.)"""
    batch, filters = conv_y.shape[0], conv_y.shape[-1]
    plane = conv_y.reshape(batch, -1, filters)
    assert argmax.min() >= 0 and argmax.max() < plane.shape[1]
    picked = np.take_along_axis(plane, argmax.reshape(batch, -1, filters), axis=1)
    assert_close(picked.reshape(y.shape), y, dtype, "the values argmax points at")


def check_conv_pool_against_reference(candidate, reference, x, w, geometry, rng, activation,
                                      pooling, need_grad_x, need_grad_w):
    """conv2d_bias_activation_max_pool2d_forward/backward agree with the reference."""
    dtype = x.dtype
    bias = rng.standard_normal(w.shape[-1]).astype(dtype)
    expected_y, expected_argmax = reference.conv2d_bias_activation_max_pool2d_forward(
        x, w, bias, *geometry, activation, *pooling)
    as_device = candidate.asarray
    y, argmax = candidate.to_numpy(candidate.conv2d_bias_activation_max_pool2d_forward(
        as_device(x), as_device(w), as_device(bias), *geometry, activation, *pooling))
    assert y.dtype == dtype
    assert_close(y, expected_y, dtype, f"{activation} forward")
    conv_y = reference.conv2d_bias_activation_forward(x, w, bias, *geometry, activation)
    assert_points_at_winners(argmax, expected_y, conv_y, dtype)

    grad_y = rng.standard_normal(y.shape).astype(dtype)
    expected = reference.conv2d_bias_activation_max_pool2d_backward(
        grad_y, expected_y, expected_argmax, x, w, *geometry, activation, *pooling, need_grad_x,
        need_grad_w)
    found = candidate.conv2d_bias_activation_max_pool2d_backward(
        as_device(grad_y), as_device(expected_y), as_device(expected_argmax), as_device(x),
        as_device(w), *geometry, activation, *pooling, need_grad_x, need_grad_w)
    for name, value, wanted, expected_value in zip(
            ("grad_x", "grad_w", "grad_bias"), found, (need_grad_x, need_grad_w, True), expected):
        if not wanted:
            assert value is None and expected_value is None, f"{name} was not asked for"
            continue
        value = candidate.to_numpy(value)
        assert value.dtype == dtype
        assert_close(value, expected_value, dtype, f"{activation} {name}")


@given_with_fixtures
@given(case=conv_cases(spatial_axes=2), activation=st.sampled_from(ACTIVATIONS),
       needs=st.sampled_from([(True, True), (False, True), (True, False)]), data=st.data())
def test_conv2d_bias_activation_max_pool2d_matches_reference(candidate, reference, case,
                                                             activation, needs, data):
    x, w, geometry, rng = case
    conv_size = conv2d_output_size(x.shape, w.shape, *geometry)
    pooling = data.draw(pool_after(conv_size))
    check_conv_pool_against_reference(candidate, reference, x, w, geometry, rng, activation,
                                      pooling, *needs)


@given_with_fixtures
@given(case=conv_cases(spatial_axes=1), activation=st.sampled_from(ACTIVATIONS), data=st.data())
def test_conv1d_bias_activation_max_pool1d_matches_reference(candidate, reference, case,
                                                             activation, data):
    """The 1-D kernel against the reference's, and against the 2-D kernel on a
    height-1 view, which is what it is in every set."""
    x, w, geometry, rng = case
    stride, padding, dilation = geometry
    conv_length = conv2d_output_size(x[:, None].shape, w[None].shape, (1, *stride),
                                     ((0, 0), *padding), (1, *dilation))[1]
    pooling = [value[1:] for value in data.draw(pool_after((1, conv_length)))]
    bias = rng.standard_normal(w.shape[-1]).astype(x.dtype)
    as_device = candidate.asarray
    y, argmax = candidate.to_numpy(candidate.conv1d_bias_activation_max_pool1d_forward(
        as_device(x), as_device(w), as_device(bias), *geometry, activation, *pooling))
    expected_y, expected_argmax = reference.conv1d_bias_activation_max_pool1d_forward(
        x, w, bias, *geometry, activation, *pooling)
    assert_close(y, expected_y, x.dtype, f"{activation} forward")
    conv_y = reference.conv1d_bias_activation_forward(x, w, bias, *geometry, activation)
    assert_points_at_winners(argmax, expected_y, conv_y, x.dtype)
    grad_y = rng.standard_normal(y.shape).astype(x.dtype)
    found = candidate.conv1d_bias_activation_max_pool1d_backward(
        as_device(grad_y), as_device(expected_y), as_device(expected_argmax), as_device(x),
        as_device(w), *geometry, activation, *pooling, True, True)
    expected = reference.conv1d_bias_activation_max_pool1d_backward(
        grad_y, expected_y, expected_argmax, x, w, *geometry, activation, *pooling, True, True)
    for name, value, expected_value in zip(("grad_x", "grad_w", "grad_bias"), found, expected):
        assert_close(candidate.to_numpy(value), expected_value, x.dtype, f"{activation} {name}")


@pytest.mark.parametrize("size", [(6, 8), (7, 5)])
def test_conv2d_max_pool2d_layers_default_pool(candidate, reference, size):
    """The layers' default: 2x2 windows side by side (the Numba set writes the
    backward's gradient window by window there), even and odd output sizes."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((3, *size, 2))
    w = rng.standard_normal((3, 3, 2, 5))
    geometry = ((1, 1), ((1, 1), (1, 1)), (1, 1))
    pooling = ((2, 2), (2, 2), ((0, 0), (0, 0)))
    check_conv_pool_against_reference(candidate, reference, x, w, geometry, rng, "relu",
                                      pooling, True, True)


def test_reference_conv_pool_is_the_fused_conv_then_the_pool(reference):
    """The kernel's specification, spelled out with the separate kernels: the
    forward is the pool of the fused convolution; backward, g = grad_y * act'(y)
    goes to the winners and then back through the convolution."""
    rng = np.random.default_rng(8)
    x, w, bias = (rng.standard_normal(shape) for shape in ((2, 7, 6, 3), (3, 2, 3, 4), (4,)))
    geometry = ((1, 1), ((1, 1), (0, 1)), (1, 1))
    pooling = ((2, 2), (2, 1), ((0, 0), (0, 0)))
    conv_y = reference.conv2d_bias_activation_forward(x, w, bias, *geometry, "tanh")
    y, argmax = reference.conv2d_bias_activation_max_pool2d_forward(x, w, bias, *geometry,
                                                                    "tanh", *pooling)
    expected_y, expected_argmax = reference.max_pool2d_forward(conv_y, *pooling)
    np.testing.assert_array_equal(y, expected_y)
    np.testing.assert_array_equal(argmax, expected_argmax)
    grad_y = rng.standard_normal(y.shape)
    found = reference.conv2d_bias_activation_max_pool2d_backward(
        grad_y, y, argmax, x, w, *geometry, "tanh", *pooling, True, True)
    grad_conv_y = reference.max_pool2d_backward(grad_y, argmax, conv_y.shape, *pooling)
    expected = reference.conv2d_bias_activation_backward(grad_conv_y, conv_y, x, w, *geometry,
                                                         "tanh", True, True)
    for value, expected_value in zip(found, expected):
        np.testing.assert_allclose(value, expected_value, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("channels", [1, 6])
@pytest.mark.parametrize("lane_count", [1, 2])
def test_cpu_conv_pool_in_many_chunks_with_poisoned_scratch(reference, monkeypatch, channels,
                                                            lane_count):
    """As the test above, for the convolution with its max pool: one image per
    chunk, over the lanes, scratch buffers that start as NaN or -1."""
    from deepbreadth.kernels import cpu

    one_image_per_chunk_with_poisoned_scratch(monkeypatch)
    rng = np.random.default_rng(9)
    x = rng.standard_normal((5, 8, 7, channels)).astype(np.float32)
    w = rng.standard_normal((3, 2, channels, 4)).astype(np.float32)
    bias = rng.standard_normal(4).astype(np.float32)
    geometry = ((1, 1), ((1, 1), (0, 1)), (1, 1))
    pooling = ((2, 2), (2, 2), ((0, 0), (0, 0)))
    with lanes(lane_count):
        y, argmax = cpu.conv2d_bias_activation_max_pool2d_forward(x, w, bias, *geometry, "relu",
                                                                  *pooling)
        grad_y = rng.standard_normal(y.shape).astype(np.float32)
        found = cpu.conv2d_bias_activation_max_pool2d_backward(
            grad_y, y, argmax, x, w, *geometry, "relu", *pooling, True, True)
    expected_y, _ = reference.conv2d_bias_activation_max_pool2d_forward(
        x, w, bias, *geometry, "relu", *pooling)
    assert_close(y, expected_y, np.float32, "forward")
    conv_y = reference.conv2d_bias_activation_forward(x, w, bias, *geometry, "relu")
    assert_points_at_winners(argmax, expected_y, conv_y, np.float32)
    expected = reference.conv2d_bias_activation_max_pool2d_backward(
        grad_y, y, argmax, x, w, *geometry, "relu", *pooling, True, True)
    for name, value, expected_value in zip(("grad_x", "grad_w", "grad_bias"), found, expected):
        assert_close(value, expected_value, np.float32, name)


# ---------------------------------------------------------------- independent oracles

def torch_conv2d_with_gradients(x, w, grad_y, stride, padding, dilation):
    """PyTorch's y, grad_x and grad_w for NHWC x and (KH, KW, C, F) w."""
    torch = pytest.importorskip("torch", reason="PyTorch, the independent conv oracle, is not installed")
    x_t = torch.tensor(x.transpose(0, 3, 1, 2), requires_grad=True)
    w_t = torch.tensor(w.transpose(3, 2, 0, 1), requires_grad=True)
    (top, bottom), (left, right) = padding
    # Explicit zero padding first: PyTorch's own padding argument is symmetric only.
    padded = torch.nn.functional.pad(x_t, (left, right, top, bottom))
    y_t = torch.nn.functional.conv2d(padded, w_t, stride=stride, dilation=dilation)
    y_t.backward(torch.tensor(grad_y.transpose(0, 3, 1, 2)))
    return (y_t.detach().numpy().transpose(0, 2, 3, 1),
            x_t.grad.numpy().transpose(0, 2, 3, 1),
            w_t.grad.numpy().transpose(2, 3, 1, 0))


@pytest.mark.parametrize("x_shape, w_shape, stride, padding, dilation", [
    ((2, 7, 6, 3), (3, 3, 3, 4), (1, 1), ((0, 0), (0, 0)), (1, 1)),
    ((1, 9, 8, 2), (2, 3, 2, 3), (2, 3), ((0, 0), (0, 0)), (1, 1)),
    ((2, 9, 9, 1), (3, 2, 1, 2), (1, 2), ((0, 0), (0, 0)), (2, 3)),
    ((1, 6, 5, 2), (2, 2, 2, 2), (1, 1), ((0, 1), (0, 1)), (1, 1)),  # 'same', even kernel
    ((1, 5, 5, 2), (1, 1, 2, 3), (4, 4), ((1, 2), (2, 0)), (1, 1)),  # stride > kernel
])
def test_reference_conv2d_matches_torch(reference, x_shape, w_shape, stride, padding, dilation):
    rng = np.random.default_rng(2)
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    y = reference.conv2d_forward(x, w, stride, padding, dilation)
    grad_y = rng.standard_normal(y.shape)
    torch_y, torch_grad_x, torch_grad_w = torch_conv2d_with_gradients(
        x, w, grad_y, stride, padding, dilation)
    assert_close(y, torch_y, np.float64, "forward")
    assert_close(reference.conv2d_backward_input(grad_y, w, x.shape, stride, padding, dilation),
                 torch_grad_x, np.float64, "backward input")
    assert_close(reference.conv2d_backward_kernel(x, grad_y, w.shape, stride, padding, dilation),
                 torch_grad_w, np.float64, "backward kernel")


def test_reference_conv1d_matches_torch(reference):
    torch = pytest.importorskip("torch", reason="PyTorch, the independent conv oracle, is not installed")
    rng = np.random.default_rng(3)
    x, w = rng.standard_normal((2, 11, 3)), rng.standard_normal((3, 3, 2))
    y = reference.conv1d_forward(x, w, (2,), ((0, 0),), (2,))
    expected = torch.nn.functional.conv1d(
        torch.tensor(x.transpose(0, 2, 1)), torch.tensor(w.transpose(2, 1, 0)),
        stride=2, dilation=2)
    assert_close(y, expected.numpy().transpose(0, 2, 1), np.float64, "conv1d forward")


def numerical_gradient(loss, array, step=1e-6):
    """Central differences of the scalar loss() with respect to every element of array."""
    gradient = np.zeros_like(array)
    for index in np.ndindex(array.shape):
        saved = array[index]
        array[index] = saved + step
        above = loss()
        array[index] = saved - step
        below = loss()
        array[index] = saved
        gradient[index] = (above - below) / (2 * step)
    return gradient


@pytest.mark.parametrize("stride, padding, dilation", [
    ((1, 1), ((0, 0), (0, 0)), (1, 1)),
    ((2, 1), ((1, 0), (0, 2)), (1, 2)),
])
def test_reference_conv2d_backward_matches_finite_differences(reference, stride, padding,
                                                              dilation):
    rng = np.random.default_rng(4)
    x, w = rng.standard_normal((2, 5, 4, 2)), rng.standard_normal((2, 2, 2, 3))
    weights = rng.standard_normal(reference.conv2d_forward(x, w, stride, padding, dilation).shape)

    def loss():  # sum(y * r): its gradient with respect to y is r
        return np.sum(reference.conv2d_forward(x, w, stride, padding, dilation) * weights)

    grad_x = reference.conv2d_backward_input(weights, w, x.shape, stride, padding, dilation)
    grad_w = reference.conv2d_backward_kernel(x, weights, w.shape, stride, padding, dilation)
    np.testing.assert_allclose(grad_x, numerical_gradient(loss, x), atol=1e-7)
    np.testing.assert_allclose(grad_w, numerical_gradient(loss, w), atol=1e-7)
