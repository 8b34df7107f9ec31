"""Pooling on the GPU: max and average pools, 1-D, 2-D and global.

Every kernel is in pool.cu.  The max pools remember their winners (argmax) so
that the backward pass sends each gradient to one input element; the average
pools divide by the number of real (unpadded) elements of each window.
The 1-D pools are the 2-D pools on a view with a height of one, and the global
pools see their input as (batch, positions, channels).
"""
import math

import cupy
import numpy as np

from ..shapes import conv_output_length, pool1d_as_pool2d
from .loader import (
    check_shape,
    contiguous,
    contiguous_ids,
    float_dtype,
    get_kernel,
    index,
    indices,
    launch_over_elements,
)

CUDA_FILE = "pool.cu"


def pool2d_output_size(x_shape, pool, stride, padding):
    """(OH, OW) of a pooling; ValueError when the arguments cannot work."""
    if len(x_shape) != 4:
        raise ValueError(f"pool2d expects input (N, H, W, C), got {tuple(x_shape)}")
    for size, (before, after) in zip(pool, padding):
        # With padding smaller than the window every window holds a real
        # element: a max always exists and a mean never divides by zero.
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


def geometry_arguments(x_shape, output_size, pool, stride, padding):
    """The arguments the windowed kernels share, in their C order, as ``Index``."""
    (pad_top, _), (pad_left, _) = padding
    values = (*x_shape, *output_size, *pool, *stride, pad_top, pad_left)
    return indices(values)


# ----------------------------------------------------------------------------
# 2-D
# ----------------------------------------------------------------------------
def max_pool2d_forward(x, pool, stride, padding):
    """x (N, H, W, C) -> (y, argmax), both (N, OH, OW, C); argmax = h * W + w (int64)."""
    dtype = float_dtype(x)
    x = contiguous(x)
    output_size = pool2d_output_size(x.shape, pool, stride, padding)
    out_shape = (x.shape[0], *output_size, x.shape[3])
    y = cupy.empty(out_shape, dtype=dtype)
    argmax = cupy.empty(out_shape, dtype=np.int64)
    kernel = get_kernel(CUDA_FILE, "max_pool2d_forward", dtype)
    arguments = geometry_arguments(x.shape, output_size, pool, stride, padding)
    launch_over_elements(kernel, y.size, (x, y, argmax) + arguments)
    return y, argmax


def scatter_to_argmax(grad_y, argmax, batch, in_positions, channels):
    """grad_x (batch, in_positions, channels) with every gradient added to its winner."""
    dtype = float_dtype(grad_y)
    grad_y = contiguous(grad_y)
    argmax = contiguous_ids(argmax)
    check_shape("argmax", argmax, grad_y.shape)
    if grad_y.ndim < 2 or grad_y.shape[0] != batch or grad_y.shape[-1] != channels:
        raise ValueError(
            f"grad_y of shape {tuple(grad_y.shape)} does not fit an input of "
            f"{batch} samples and {channels} channels"
        )
    out_positions = math.prod(grad_y.shape[1:-1])
    grad_x = cupy.zeros((batch, in_positions, channels), dtype=dtype)
    kernel = get_kernel(CUDA_FILE, "scatter_to_argmax", dtype)
    arguments = (index(batch), index(out_positions), index(in_positions), index(channels))
    launch_over_elements(kernel, grad_y.size, (grad_y, argmax, grad_x) + arguments)
    return grad_x


def max_pool2d_backward(grad_y, argmax, x_shape, pool=None, stride=None, padding=None):
    """Each window's gradient goes to its winner; overlapping windows add up.
    (The geometry is not needed here: one thread per output element adds into
    its winner.)"""
    batch, height, width, channels = (int(size) for size in x_shape)
    grad_x = scatter_to_argmax(grad_y, argmax, batch, height * width, channels)
    return grad_x.reshape(batch, height, width, channels)


def avg_pool2d_forward(x, pool, stride, padding):
    """x (N, H, W, C) -> y (N, OH, OW, C): mean over the real elements of each window."""
    dtype = float_dtype(x)
    x = contiguous(x)
    output_size = pool2d_output_size(x.shape, pool, stride, padding)
    y = cupy.empty((x.shape[0], *output_size, x.shape[3]), dtype=dtype)
    kernel = get_kernel(CUDA_FILE, "avg_pool2d_forward", dtype)
    arguments = geometry_arguments(x.shape, output_size, pool, stride, padding)
    launch_over_elements(kernel, y.size, (x, y) + arguments)
    return y


def avg_pool2d_backward(grad_y, x_shape, pool, stride, padding):
    """Each window's gradient is shared equally among its real elements."""
    dtype = float_dtype(grad_y)
    x_shape = tuple(int(size) for size in x_shape)
    grad_y = contiguous(grad_y)
    output_size = pool2d_output_size(x_shape, pool, stride, padding)
    check_shape("grad_y", grad_y, (x_shape[0], *output_size, x_shape[3]))
    grad_x = cupy.empty(x_shape, dtype=dtype)
    kernel = get_kernel(CUDA_FILE, "avg_pool2d_backward", dtype)
    arguments = geometry_arguments(x_shape, output_size, pool, stride, padding)
    launch_over_elements(kernel, grad_x.size, (grad_y, grad_x) + arguments)
    return grad_x


# ----------------------------------------------------------------------------
# 1-D, as 2-D with a height of one (the flat index h * L + l is then just l)
# ----------------------------------------------------------------------------
def max_pool1d_forward(x, pool, stride, padding):
    """x (N, L, C) -> (y, argmax), both (N, OL, C); argmax indexes L."""
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


# ----------------------------------------------------------------------------
# Global pools: x (N, ..., C) seen as (N, positions, C)
# ----------------------------------------------------------------------------
def global_pool_sizes(x_shape):
    """(batch, positions, channels) of an (N, ..., C) shape; positions >= 1 required."""
    if len(x_shape) < 2:
        raise ValueError(f"global pooling expects input (N, ..., C), got shape {tuple(x_shape)}")
    batch, channels = int(x_shape[0]), int(x_shape[-1])
    positions = math.prod(int(size) for size in x_shape[1:-1])
    if positions == 0:
        raise ValueError(f"global pooling over an empty input of shape {tuple(x_shape)}")
    return batch, positions, channels


def global_avg_pool_forward(x):
    """x (N, ..., C) -> y (N, C): mean over every middle axis."""
    dtype = float_dtype(x)
    x = contiguous(x)
    batch, positions, channels = global_pool_sizes(x.shape)
    y = cupy.empty((batch, channels), dtype=dtype)
    kernel = get_kernel(CUDA_FILE, "global_avg_pool_forward", dtype)
    arguments = (index(batch), index(positions), index(channels))
    launch_over_elements(kernel, y.size, (x, y) + arguments)
    return y


def global_avg_pool_backward(grad_y, x_shape):
    dtype = float_dtype(grad_y)
    x_shape = tuple(int(size) for size in x_shape)
    batch, positions, channels = global_pool_sizes(x_shape)
    grad_y = contiguous(grad_y)
    check_shape("grad_y", grad_y, (batch, channels))
    grad_x = cupy.empty(x_shape, dtype=dtype)
    kernel = get_kernel(CUDA_FILE, "global_avg_pool_backward", dtype)
    arguments = (index(batch), index(positions), index(channels))
    launch_over_elements(kernel, grad_x.size, (grad_y, grad_x) + arguments)
    return grad_x


def global_max_pool_forward(x):
    """x (N, ..., C) -> (y, argmax), both (N, C); argmax is a flat middle index (int64)."""
    dtype = float_dtype(x)
    x = contiguous(x)
    batch, positions, channels = global_pool_sizes(x.shape)
    y = cupy.empty((batch, channels), dtype=dtype)
    argmax = cupy.empty((batch, channels), dtype=np.int64)
    kernel = get_kernel(CUDA_FILE, "global_max_pool_forward", dtype)
    arguments = (index(batch), index(positions), index(channels))
    launch_over_elements(kernel, y.size, (x, y, argmax) + arguments)
    return y, argmax


def global_max_pool_backward(grad_y, argmax, x_shape):
    x_shape = tuple(int(size) for size in x_shape)
    batch, positions, channels = global_pool_sizes(x_shape)
    grad_x = scatter_to_argmax(grad_y, argmax, batch, positions, channels)
    return grad_x.reshape(x_shape)
