"""Pooling kernels, held against three oracles.

1. Every candidate set (Numba, and CUDA where a GPU exists) against the NumPy
   reference, on shapes drawn by hypothesis (batch 1, odd sizes, strides larger
   than the pool, 'same' padding, both dtypes, inputs full of ties).
2. The reference against PyTorch, an independent implementation.
3. The reference's backward passes against float64 central differences.
Plus the contract's own rules: ties go to the first element in row-major window
order, and padded positions never win.
"""
import numpy as np
import pytest
from conftest import assert_close, lanes
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deepbreadth.kernels.shapes import resolve_padding

# The `candidate` fixture holds no state, so reusing it across examples is safe.
given_with_fixtures = settings(
    suppress_health_check=[*settings.default.suppress_health_check,
                           HealthCheck.function_scoped_fixture]
)


def random_values(rng, shape, dtype, with_ties):
    """Normal values, or small integers that make equal values in a window likely."""
    if with_ties:
        return rng.integers(-2, 3, size=shape).astype(dtype)
    return rng.standard_normal(shape).astype(dtype)


@st.composite
def pool_cases(draw, spatial_axes):
    """(x, pool, stride, padding, rng) of one pooling with 1 or 2 spatial axes."""
    pool = tuple(draw(st.integers(1, 3)) for _ in range(spatial_axes))
    stride = tuple(draw(st.integers(1, 4)) for _ in range(spatial_axes))
    spatial = tuple(draw(st.integers(p, 8)) for p in pool)
    padding_kind = draw(st.sampled_from(["valid", "same"]))
    padding = resolve_padding(padding_kind, spatial, pool, stride, (1,) * spatial_axes)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    shape = (draw(st.integers(1, 3)), *spatial, draw(st.integers(1, 3)))
    x = random_values(rng, shape, dtype, with_ties=draw(st.booleans()))
    return x, pool, stride, padding, rng


def run(candidate, kernel_name, *arguments):
    """Call a candidate kernel with array arguments moved to its device."""
    moved = [candidate.asarray(a) if isinstance(a, np.ndarray) else a for a in arguments]
    return candidate.to_numpy(getattr(candidate, kernel_name)(*moved))


def check_max_pool(candidate, reference, dims, x, pool, stride, padding, rng):
    forward, backward = f"max_pool{dims}d_forward", f"max_pool{dims}d_backward"
    expected_y, expected_argmax = getattr(reference, forward)(x, pool, stride, padding)
    y, argmax = run(candidate, forward, x, pool, stride, padding)
    assert y.dtype == x.dtype and argmax.dtype == np.int64
    assert_close(y, expected_y, x.dtype, "max forward")
    np.testing.assert_array_equal(argmax, expected_argmax, err_msg="argmax")
    # The winner holds the maximum, so padded positions (which hold none) never won.
    planes = x.reshape(x.shape[0], -1, x.shape[-1])
    winners = np.take_along_axis(planes, argmax.reshape(x.shape[0], -1, x.shape[-1]), axis=1)
    np.testing.assert_array_equal(winners.reshape(y.shape), y)

    grad_y = rng.standard_normal(y.shape).astype(x.dtype)
    expected_grad_x = getattr(reference, backward)(grad_y, expected_argmax, x.shape)
    # With the forward's geometry (what the layers pass) and without it.
    for geometry in ((pool, stride, padding), ()):
        grad_x = run(candidate, backward, grad_y, argmax, x.shape, *geometry)
        assert grad_x.dtype == x.dtype
        assert_close(grad_x, expected_grad_x, x.dtype, f"max backward, geometry {geometry}")


def check_avg_pool(candidate, reference, dims, x, pool, stride, padding, rng):
    forward, backward = f"avg_pool{dims}d_forward", f"avg_pool{dims}d_backward"
    expected_y = getattr(reference, forward)(x, pool, stride, padding)
    y = run(candidate, forward, x, pool, stride, padding)
    assert y.dtype == x.dtype
    assert_close(y, expected_y, x.dtype, "avg forward")

    grad_y = rng.standard_normal(y.shape).astype(x.dtype)
    grad_x = run(candidate, backward, grad_y, x.shape, pool, stride, padding)
    assert grad_x.dtype == x.dtype
    assert_close(grad_x, getattr(reference, backward)(grad_y, x.shape, pool, stride, padding),
                 x.dtype, "avg backward")


@pytest.mark.parametrize("pool, stride, padding, x_shape", [
    ((2, 2), (2, 2), ((0, 0), (0, 0)), (2, 7, 6, 3)),  # odd height: the last row gets nothing
    ((2, 3), (3, 2), ((0, 1), (1, 1)), (1, 7, 8, 2)),  # stride > pool, padding, columns overlap
    ((1, 5), (1, 5), ((0, 0), (0, 0)), (3, 1, 5, 2)),  # one window per row, as a global pool
])
def test_cpu_max_pool_backward_band_by_band_writes_every_element(reference, pool, stride,
                                                                 padding, x_shape):
    """The band-by-band scatter starts from an array full of NaN: every element of
    grad_x, winner or not, must be written."""
    from deepbreadth.kernels.cpu import pool as cpu_pool

    rng = np.random.default_rng(7)
    x = rng.standard_normal(x_shape)
    y, argmax = reference.max_pool2d_forward(x, pool, stride, padding)
    grad_y = rng.standard_normal(y.shape)
    batch, height, width, channels = x_shape
    grad_x = np.full((batch, height * width, channels), np.nan)
    cpu_pool.scatter_to_winners_band_by_band(grad_y, argmax, stride[0], padding[0][0], width,
                                             grad_x)
    np.testing.assert_allclose(grad_x.reshape(x_shape),
                               reference.max_pool2d_backward(grad_y, argmax, x_shape),
                               rtol=1e-12, atol=1e-12)


@given_with_fixtures
@given(case=pool_cases(spatial_axes=2))
def test_pool2d_matches_reference(candidate, reference, case):
    check_max_pool(candidate, reference, 2, *case)
    check_avg_pool(candidate, reference, 2, *case)


@given_with_fixtures
@given(case=pool_cases(spatial_axes=1))
def test_pool1d_matches_reference(candidate, reference, case):
    check_max_pool(candidate, reference, 1, *case)
    check_avg_pool(candidate, reference, 1, *case)


@given_with_fixtures
@given(
    middle=st.lists(st.integers(1, 4), min_size=1, max_size=3),
    seed=st.integers(0, 2**32 - 1),
    dtype=st.sampled_from([np.float32, np.float64]),
    with_ties=st.booleans(),
)
def test_global_pools_match_reference(candidate, reference, middle, seed, dtype, with_ties):
    rng = np.random.default_rng(seed)
    x = random_values(rng, (2, *middle, 3), dtype, with_ties)
    grad_y = rng.standard_normal((2, 3)).astype(dtype)

    y = run(candidate, "global_avg_pool_forward", x)
    assert_close(y, reference.global_avg_pool_forward(x), dtype, "global avg forward")
    grad_x = run(candidate, "global_avg_pool_backward", grad_y, x.shape)
    assert_close(grad_x, reference.global_avg_pool_backward(grad_y, x.shape), dtype,
                 "global avg backward")

    expected_y, expected_argmax = reference.global_max_pool_forward(x)
    y, argmax = run(candidate, "global_max_pool_forward", x)
    assert argmax.dtype == np.int64
    assert_close(y, expected_y, dtype, "global max forward")
    np.testing.assert_array_equal(argmax, expected_argmax, err_msg="global argmax")
    grad_x = run(candidate, "global_max_pool_backward", grad_y, argmax, x.shape)
    assert grad_x.dtype == dtype
    assert_close(grad_x, reference.global_max_pool_backward(grad_y, expected_argmax, x.shape),
                 dtype, "global max backward")


def first_real_element_of_each_window(width, stride, padding, output_size):
    """The flat index h * W + w of the top-left unpadded element of every window."""
    rows = np.maximum(np.arange(output_size[0]) * stride[0] - padding[0][0], 0)
    cols = np.maximum(np.arange(output_size[1]) * stride[1] - padding[1][0], 0)
    return rows[:, None] * width + cols[None, :]


@pytest.mark.parametrize("pool, stride, padding", [
    ((2, 2), (2, 2), ((0, 0), (0, 0))),
    ((3, 2), (1, 1), ((1, 1), (0, 1))),  # 'same' padding: windows overlap the border
])
def test_max_pool_ties_go_to_the_first_element(candidate, reference, pool, stride, padding):
    x = np.full((1, 5, 6, 2), 7.0)  # every window is one big tie
    output_size = reference.max_pool2d_forward(x, pool, stride, padding)[0].shape[1:3]
    expected = first_real_element_of_each_window(6, stride, padding, output_size)
    for kernels, asarray in ((candidate, candidate.asarray), (reference, np.asarray)):
        _, argmax = kernels.max_pool2d_forward(asarray(x), pool, stride, padding)
        argmax = candidate.to_numpy(argmax)
        for channel in range(2):
            np.testing.assert_array_equal(argmax[0, :, :, channel], expected)


def test_max_pool_padding_never_wins(candidate, reference):
    # All inputs negative: a padded position counted as zero would win.
    x = -1.0 - np.random.default_rng(5).random((2, 5, 5, 3))
    padding = ((1, 1), (1, 1))
    for kernels, asarray in ((candidate, candidate.asarray), (reference, np.asarray)):
        y, _ = kernels.max_pool2d_forward(asarray(x), (3, 3), (2, 2), padding)
        y = candidate.to_numpy(y)
        assert np.all(y < -1.0)
        # The corner window sees only x[:, 0:2, 0:2].
        np.testing.assert_array_equal(y[:, 0, 0], x[:, 0:2, 0:2].max(axis=(1, 2)))


def test_avg_pool_divides_by_real_elements_only(candidate, reference):
    x = np.ones((1, 4, 4, 1))
    padding = ((1, 1), (1, 1))
    for kernels, asarray in ((candidate, candidate.asarray), (reference, np.asarray)):
        y = candidate.to_numpy(kernels.avg_pool2d_forward(asarray(x), (3, 3), (1, 1), padding))
        # The mean of ones is one, however many of the 9 window positions are padding.
        np.testing.assert_allclose(y, np.ones((1, 4, 4, 1)), rtol=1e-12)


def test_pool_refuses_padding_as_wide_as_the_window(candidate, reference):
    x = np.zeros((1, 4, 4, 1))
    for kernels, asarray in ((candidate, candidate.asarray), (reference, np.asarray)):
        for kernel_name in ("max_pool2d_forward", "avg_pool2d_forward"):
            with pytest.raises(ValueError, match="padding"):
                getattr(kernels, kernel_name)(asarray(x), (2, 2), (2, 2), ((2, 0), (0, 0)))


# ---------------------------------------------------------------- independent oracles

def to_torch(array, requires_grad=False):
    """NHWC (or NLC) NumPy array -> NCHW (or NCL) torch tensor."""
    torch = pytest.importorskip("torch", reason="PyTorch, the independent pooling oracle, is not installed")
    axes = (0, array.ndim - 1, *range(1, array.ndim - 1))
    return torch.tensor(array.transpose(axes), requires_grad=requires_grad)


def from_torch(tensor):
    array = tensor.detach().numpy()
    return array.transpose(0, *range(2, array.ndim), 1)


@pytest.mark.parametrize("pool, stride", [((2, 2), (2, 2)), ((3, 2), (1, 2)), ((2, 1), (3, 4))])
def test_reference_max_pool2d_matches_torch(reference, pool, stride):
    torch = pytest.importorskip("torch", reason="PyTorch, the independent pooling oracle, is not installed")
    rng = np.random.default_rng(6)
    x = rng.standard_normal((2, 7, 8, 3))
    y, argmax = reference.max_pool2d_forward(x, pool, stride, ((0, 0), (0, 0)))
    grad_y = rng.standard_normal(y.shape)

    x_t = to_torch(x, requires_grad=True)
    y_t, indices_t = torch.nn.functional.max_pool2d(x_t, pool, stride, return_indices=True)
    y_t.backward(to_torch(grad_y))
    assert_close(y, from_torch(y_t), np.float64, "max forward")
    # PyTorch's indices are flat h * W + w indices into the input plane, like ours.
    np.testing.assert_array_equal(argmax, from_torch(indices_t))
    assert_close(reference.max_pool2d_backward(grad_y, argmax, x.shape), from_torch(x_t.grad),
                 np.float64, "max backward")


@pytest.mark.parametrize("pool, stride, padding", [
    ((2, 2), (2, 2), ((0, 0), (0, 0))),
    ((3, 2), (1, 3), ((0, 0), (0, 0))),
    ((3, 3), (1, 1), ((1, 1), (1, 1))),  # 'same': PyTorch must leave padding uncounted
])
def test_reference_avg_pool2d_matches_torch(reference, pool, stride, padding):
    torch = pytest.importorskip("torch", reason="PyTorch, the independent pooling oracle, is not installed")
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 7, 8, 3))
    y = reference.avg_pool2d_forward(x, pool, stride, padding)
    grad_y = rng.standard_normal(y.shape)

    x_t = to_torch(x, requires_grad=True)
    y_t = torch.nn.functional.avg_pool2d(
        x_t, pool, stride, padding=(padding[0][0], padding[1][0]), count_include_pad=False)
    y_t.backward(to_torch(grad_y))
    assert_close(y, from_torch(y_t), np.float64, "avg forward")
    assert_close(reference.avg_pool2d_backward(grad_y, x.shape, pool, stride, padding),
                 from_torch(x_t.grad), np.float64, "avg backward")


def test_reference_pool1d_matches_torch(reference):
    torch = pytest.importorskip("torch", reason="PyTorch, the independent pooling oracle, is not installed")
    x = np.random.default_rng(8).standard_normal((2, 11, 3))
    y, argmax = reference.max_pool1d_forward(x, (3,), (2,), ((0, 0),))
    y_t, indices_t = torch.nn.functional.max_pool1d(to_torch(x), 3, 2, return_indices=True)
    assert_close(y, from_torch(y_t), np.float64, "max_pool1d")
    np.testing.assert_array_equal(argmax, from_torch(indices_t))
    y = reference.avg_pool1d_forward(x, (2,), (3,), ((0, 0),))
    assert_close(y, from_torch(torch.nn.functional.avg_pool1d(to_torch(x), 2, 3)), np.float64,
                 "avg_pool1d")


def test_reference_global_pools_match_torch(reference):
    x = np.random.default_rng(9).standard_normal((2, 3, 4, 5))
    x_t = to_torch(x)  # (N, C, H, W); skips the test when PyTorch is absent
    assert_close(reference.global_avg_pool_forward(x), x_t.mean(dim=(2, 3)).numpy(),
                 np.float64, "global avg")
    assert_close(reference.global_max_pool_forward(x)[0], x_t.amax(dim=(2, 3)).numpy(),
                 np.float64, "global max")


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


@pytest.mark.parametrize("pool, stride, padding", [
    ((2, 2), (2, 2), ((0, 0), (0, 0))),
    ((3, 2), (1, 1), ((1, 1), (0, 1))),  # overlapping windows and padding
])
def test_reference_pool2d_backward_matches_finite_differences(reference, pool, stride, padding):
    rng = np.random.default_rng(10)
    # Distinct values spaced far beyond the step: no window's winner can change.
    x = rng.permutation(2 * 5 * 4 * 2).reshape(2, 5, 4, 2) * 0.1
    y, argmax = reference.max_pool2d_forward(x, pool, stride, padding)
    weights = rng.standard_normal(y.shape)

    def max_loss():  # sum(y * r): its gradient with respect to y is r
        return np.sum(reference.max_pool2d_forward(x, pool, stride, padding)[0] * weights)

    def avg_loss():
        return np.sum(reference.avg_pool2d_forward(x, pool, stride, padding) * weights)

    np.testing.assert_allclose(reference.max_pool2d_backward(weights, argmax, x.shape),
                               numerical_gradient(max_loss, x), atol=1e-7)
    np.testing.assert_allclose(
        reference.avg_pool2d_backward(weights, x.shape, pool, stride, padding),
        numerical_gradient(avg_loss, x), atol=1e-7)


def test_reference_global_pools_backward_match_finite_differences(reference):
    rng = np.random.default_rng(11)
    x = rng.permutation(2 * 3 * 2 * 3).reshape(2, 3, 2, 3) * 0.1
    weights = rng.standard_normal((2, 3))
    _, argmax = reference.global_max_pool_forward(x)

    def max_loss():
        return np.sum(reference.global_max_pool_forward(x)[0] * weights)

    def avg_loss():
        return np.sum(reference.global_avg_pool_forward(x) * weights)

    np.testing.assert_allclose(reference.global_max_pool_backward(weights, argmax, x.shape),
                               numerical_gradient(max_loss, x), atol=1e-7)
    np.testing.assert_allclose(reference.global_avg_pool_backward(weights, x.shape),
                               numerical_gradient(avg_loss, x), atol=1e-7)


# --- the Numba set shares large pools over its lanes --------------------------------


@pytest.mark.skipif(__import__("numba").config.NUMBA_NUM_THREADS < 2,
                    reason="Numba is limited to one thread here (NUMBA_NUM_THREADS); lanes need two")
@pytest.mark.parametrize("pool, stride", [((2, 2), (2, 2)), ((3, 3), (2, 2)), ((2, 3), (1, 3))])
def test_max_pool_over_two_lanes_matches_reference(reference, monkeypatch, pool, stride):
    """2x2 windows (their own core), overlapping rows (zeroed first) and windows whose
    rows do not overlap (written band by band), each with the batch cut between lanes."""
    from deepbreadth.kernels.cpu import pool as cpu_pool
    from deepbreadth.kernels.cpu import threads

    monkeypatch.setattr(cpu_pool, "SHARE_OUT_ELEMENTS", 0)
    chunks = []
    real_for_each_chunk = threads.for_each_chunk
    monkeypatch.setattr(cpu_pool, "for_each_chunk",
                        lambda count, work, lanes: chunks.append(count)
                        or real_for_each_chunk(count, work, lanes))
    rng = np.random.default_rng(4)
    x = random_values(rng, (5, 7, 9, 3), np.float32, with_ties=True)
    padding = resolve_padding("valid", x.shape[1:3], pool, stride, (1, 1))
    with lanes(2):
        y, argmax = cpu_pool.max_pool2d_forward(x, pool, stride, padding)
        grad_y = rng.standard_normal(y.shape).astype(np.float32)
        grad_x = cpu_pool.max_pool2d_backward(grad_y, argmax, x.shape, pool, stride, padding)
    assert chunks == [2, 2], "forward and backward were not both shared over two lanes"
    expected_y, expected_argmax = reference.max_pool2d_forward(x, pool, stride, padding)
    assert_close(y, expected_y, np.float32, "y")
    np.testing.assert_array_equal(argmax, expected_argmax)
    expected_grad_x = reference.max_pool2d_backward(grad_y, expected_argmax, x.shape, pool,
                                                    stride, padding)
    assert_close(grad_x, expected_grad_x, np.float32, "grad_x")
