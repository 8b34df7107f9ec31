"""Pooling kernels in plain NumPy: the readable specification.

Pooling slides a (PH, PW) window over each channel of the image and keeps one
number per window: the largest (max pooling) or the mean (average pooling).
As in reference/conv.py, the loops run over the PH * PW offsets inside the
window; for one offset, the input element of every window is a strided slice
of the padded input with the output's shape, so each step is whole-array work.

Padding never contributes: max pooling pads with -inf, so a padded position
never wins; average pooling divides by the number of real (unpadded) elements
of each window, as Keras does for 'same'.

The 1-D pools are the 2-D pools on a view with a height of one.  The global
pools reduce over every axis between the batch and the channels.
"""
import numpy as np

from ..shapes import conv_output_length, pool1d_as_pool2d


def pool2d_output_size(x_shape, pool, stride, padding):
    """(OH, OW) of a pooling; raises ValueError when the arguments cannot work."""
    if len(x_shape) != 4:
        raise ValueError(f"pool2d expects input (N, H, W, C), got {tuple(x_shape)}")
    for size, (before, after) in zip(pool, padding):
        # With padding smaller than the window, every window holds at least one
        # real element, so a max always exists and a mean never divides by zero.
        if before >= size or after >= size:
            raise ValueError(
                f"pool2d: padding {tuple(padding)} must be smaller than the pool "
                f"size {tuple(pool)} (use 'valid' or 'same')"
            )
    output_size = tuple(
        conv_output_length(n, k, s, before, after)
        for n, k, s, (before, after) in zip(x_shape[1:3], pool, stride, padding)
    )
    if min(output_size) < 1:
        raise ValueError(
            f"pool2d: a pool window {tuple(pool)} does not fit in the input "
            f"{tuple(x_shape[1:3])} with padding {tuple(padding)}"
        )
    return output_size


def window_offset_slice(offset_row, offset_col, output_size, stride):
    """Index (rows, cols) of the padded positions at one offset of every window."""
    (out_h, out_w), (stride_h, stride_w) = output_size, stride
    rows = slice(offset_row, offset_row + (out_h - 1) * stride_h + 1, stride_h)
    cols = slice(offset_col, offset_col + (out_w - 1) * stride_w + 1, stride_w)
    return rows, cols


def pad_spatial(x, padding, value):
    """x (N, H, W, C) with `value` added around H and W."""
    (top, bottom), (left, right) = padding
    return np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)), constant_values=value)


def crop_spatial(x_padded, padding, height, width):
    """Undo pad_spatial: the (height, width) interior, as a new array."""
    (top, _), (left, _) = padding
    return x_padded[:, top:top + height, left:left + width, :].copy()


def plane_index(height, width, padding):
    """Flat index h * width + w of every padded position (padded ones are never used)."""
    (top, bottom), (left, right) = padding
    rows = np.arange(-top, height + bottom)
    cols = np.arange(-left, width + right)
    return rows[:, None] * width + cols[None, :]


def max_pool2d_forward(x, pool, stride, padding):
    """x (N, H, W, C) -> (y, argmax), both (N, OH, OW, C); argmax = h * W + w."""
    output_size = pool2d_output_size(x.shape, pool, stride, padding)
    batch, height, width, channels = x.shape
    x_padded = pad_spatial(x, padding, -np.inf)
    index = plane_index(height, width, padding)
    y = np.full((batch, *output_size, channels), -np.inf, dtype=x.dtype)
    argmax = np.zeros((batch, *output_size, channels), dtype=np.int64)
    for i in range(pool[0]):
        for j in range(pool[1]):
            rows, cols = window_offset_slice(i, j, output_size, stride)
            candidate = x_padded[:, rows, cols, :]
            # Strictly greater: an equal element met later does not replace the
            # current winner, so ties go to the first in row-major window order.
            wins = candidate > y
            y = np.where(wins, candidate, y)
            argmax = np.where(wins, index[rows, cols][None, :, :, None], argmax)
    return y, argmax


def max_pool2d_backward(grad_y, argmax, x_shape, pool=None, stride=None, padding=None):
    """Each window's gradient goes to its winner; overlapping windows add up.

    pool, stride and padding are the forward's.  The winners in argmax are all
    this set needs; the Numba set uses the geometry to write grad_x band by
    band (cpu/pool.py).
    """
    batch, height, width, channels = x_shape
    grad_plane = np.zeros((batch, height * width, channels), dtype=grad_y.dtype)
    batch_index = np.arange(batch)[:, None, None, None]
    channel_index = np.arange(channels)
    # np.add.at, unlike `grad_plane[...] += grad_y`, adds every repeated index.
    np.add.at(grad_plane, (batch_index, argmax, channel_index), grad_y)
    return grad_plane.reshape(x_shape)


def window_counts(height, width, pool, stride, padding, output_size, dtype):
    """(OH, OW): how many real (unpadded) input elements each window covers."""
    real = pad_spatial(np.ones((1, height, width, 1), dtype=dtype), padding, 0)[0, :, :, 0]
    counts = np.zeros(output_size, dtype=dtype)
    for i in range(pool[0]):
        for j in range(pool[1]):
            counts += real[window_offset_slice(i, j, output_size, stride)]
    return counts


def avg_pool2d_forward(x, pool, stride, padding):
    """x (N, H, W, C) -> y (N, OH, OW, C): mean over the real elements of each window."""
    output_size = pool2d_output_size(x.shape, pool, stride, padding)
    batch, height, width, channels = x.shape
    x_padded = pad_spatial(x, padding, 0)
    window_sum = np.zeros((batch, *output_size, channels), dtype=x.dtype)
    for i in range(pool[0]):
        for j in range(pool[1]):
            rows, cols = window_offset_slice(i, j, output_size, stride)
            window_sum += x_padded[:, rows, cols, :]
    counts = window_counts(height, width, pool, stride, padding, output_size, x.dtype)
    return window_sum / counts[None, :, :, None]


def avg_pool2d_backward(grad_y, x_shape, pool, stride, padding):
    """Each window's gradient is shared equally among its real elements."""
    output_size = pool2d_output_size(x_shape, pool, stride, padding)
    batch, height, width, channels = x_shape
    (top, bottom), (left, right) = padding
    counts = window_counts(height, width, pool, stride, padding, output_size, grad_y.dtype)
    share = grad_y / counts[None, :, :, None]
    grad_x_padded = np.zeros(
        (batch, height + top + bottom, width + left + right, channels), dtype=grad_y.dtype
    )
    for i in range(pool[0]):
        for j in range(pool[1]):
            rows, cols = window_offset_slice(i, j, output_size, stride)
            grad_x_padded[:, rows, cols, :] += share
    # The shares sent to padded positions were never counted: crop them away.
    return crop_spatial(grad_x_padded, padding, height, width)


def max_pool1d_forward(x, pool, stride, padding):
    """x (N, L, C) -> (y, argmax), both (N, OL, C); argmax indexes L."""
    # With height 1 the flat index h * L + l is just l.
    y, argmax = max_pool2d_forward(x[:, None], *pool1d_as_pool2d(pool, stride, padding))
    return y[:, 0], argmax[:, 0]


def max_pool1d_backward(grad_y, argmax, x_shape, pool=None, stride=None, padding=None):
    batch, length, channels = x_shape
    geometry = () if pool is None else pool1d_as_pool2d(pool, stride, padding)
    grad_x = max_pool2d_backward(grad_y[:, None], argmax[:, None], (batch, 1, length, channels),
                                 *geometry)
    return grad_x[:, 0]


def avg_pool1d_forward(x, pool, stride, padding):
    return avg_pool2d_forward(x[:, None], *pool1d_as_pool2d(pool, stride, padding))[:, 0]


def avg_pool1d_backward(grad_y, x_shape, pool, stride, padding):
    batch, length, channels = x_shape
    grad_x = avg_pool2d_backward(
        grad_y[:, None], (batch, 1, length, channels), *pool1d_as_pool2d(pool, stride, padding)
    )
    return grad_x[:, 0]


def flatten_middle(x):
    """x (N, ..., C) -> (N, M, C) with M the product of the middle axes."""
    return x.reshape(x.shape[0], -1, x.shape[-1])


def global_avg_pool_forward(x):
    """x (N, ..., C) -> y (N, C): mean over every middle axis."""
    return flatten_middle(x).mean(axis=1)


def global_avg_pool_backward(grad_y, x_shape):
    batch, channels = x_shape[0], x_shape[-1]
    positions = int(np.prod(x_shape[1:-1]))
    share = grad_y / positions
    grad_x = np.empty(x_shape, dtype=grad_y.dtype)
    grad_x[...] = share.reshape(batch, *[1] * (len(x_shape) - 2), channels)
    return grad_x


def global_max_pool_forward(x):
    """x (N, ..., C) -> (y, argmax), both (N, C); argmax is a flat middle index."""
    flat = flatten_middle(x)
    argmax = flat.argmax(axis=1)  # the first maximum: ties go to row-major first
    y = np.take_along_axis(flat, argmax[:, None, :], axis=1)[:, 0]
    return y, argmax.astype(np.int64)


def global_max_pool_backward(grad_y, argmax, x_shape):
    batch, channels = x_shape[0], x_shape[-1]
    grad_flat = np.zeros((batch, int(np.prod(x_shape[1:-1])), channels), dtype=grad_y.dtype)
    # One winner per (sample, channel): no index repeats, plain assignment is enough.
    np.put_along_axis(grad_flat, argmax[:, None, :], grad_y[:, None, :], axis=1)
    return grad_flat.reshape(x_shape)
