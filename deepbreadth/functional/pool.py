"""Pooling over channels-last data: max and average, 1-D and 2-D, and global pools.

As with the convolutions, one Function serves the 1-D and the 2-D case: the
input's rank picks the kernels `max_pool1d_*` or `max_pool2d_*`. Max pooling
keeps the index of each window's winner, so its backward sends the gradient
straight there; average pooling shares each window's gradient among the
real (unpadded) elements of the window, as Keras does for 'same'.
"""
from .. import backend
from ..autograd import Function, Tensor
from .conv import check_rank, normalize_padding, normalize_tuple, padding_pairs, \
    window_output_shape


class MaxPool(Function):
    once_differentiable = True

    @staticmethod
    def forward(ctx, x, pool_size, strides, padding):
        ctx.op = f"max_pool{x.ndim - 2}d"
        ctx.x_shape = x.shape
        ctx.options = (pool_size, strides, padding)
        y, argmax = backend.kernel(f"{ctx.op}_forward", x)(x, pool_size, strides, padding)
        ctx.save_for_backward(argmax)
        return y

    @staticmethod
    def backward(ctx, grad):
        (argmax,) = ctx.saved_tensors
        grad_x = backend.kernel(f"{ctx.op}_backward", grad.data)(grad.data, argmax.data,
                                                                  ctx.x_shape, *ctx.options)
        return Tensor._wrap(grad_x)


class AvgPool(Function):
    once_differentiable = True

    @staticmethod
    def forward(ctx, x, pool_size, strides, padding):
        ctx.op = f"avg_pool{x.ndim - 2}d"
        ctx.x_shape = x.shape
        ctx.options = (pool_size, strides, padding)
        return backend.kernel(f"{ctx.op}_forward", x)(x, pool_size, strides, padding)

    @staticmethod
    def backward(ctx, grad):
        grad_x = backend.kernel(f"{ctx.op}_backward", grad.data)(grad.data, ctx.x_shape,
                                                                  *ctx.options)
        return Tensor._wrap(grad_x)


def _pool(function, op, x, pool_size, strides, padding, spatial_dims):
    """Check and resolve the pooling arguments, then apply `function`."""
    check_rank(op, x, spatial_dims)
    pool_size = normalize_tuple(pool_size, spatial_dims, "pool_size")
    # Keras: strides=None means windows side by side, strides equal to the pool size.
    strides = pool_size if strides is None else normalize_tuple(strides, spatial_dims, "strides")
    padding = normalize_padding(padding)
    no_dilation = (1,) * spatial_dims
    spatial_shape = tuple(x.shape[1:-1])
    pairs = padding_pairs(padding, spatial_shape, pool_size, strides, no_dilation)
    window_output_shape(op, spatial_shape, pool_size, strides, pairs, no_dilation, padding,
                        window_name="pool window")
    return function.apply(x, pool_size=pool_size, strides=strides, padding=pairs)


def max_pool1d(x, pool_size=2, strides=None, padding="valid"):
    """x (N, L, C) -> (N, OL, C): the largest value of each window."""
    return _pool(MaxPool, "max_pool1d", x, pool_size, strides, padding, spatial_dims=1)


def max_pool2d(x, pool_size=(2, 2), strides=None, padding="valid"):
    """x (N, H, W, C) -> (N, OH, OW, C): the largest value of each window."""
    return _pool(MaxPool, "max_pool2d", x, pool_size, strides, padding, spatial_dims=2)


def avg_pool1d(x, pool_size=2, strides=None, padding="valid"):
    """x (N, L, C) -> (N, OL, C): the mean of each window's real elements."""
    return _pool(AvgPool, "avg_pool1d", x, pool_size, strides, padding, spatial_dims=1)


def avg_pool2d(x, pool_size=(2, 2), strides=None, padding="valid"):
    """x (N, H, W, C) -> (N, OH, OW, C): the mean of each window's real elements."""
    return _pool(AvgPool, "avg_pool2d", x, pool_size, strides, padding, spatial_dims=2)


# ----------------------------------------------------------------------------
# Global pools: one window over every axis between the batch and the channels
# ----------------------------------------------------------------------------
class GlobalMaxPool(Function):
    once_differentiable = True

    @staticmethod
    def forward(ctx, x):
        ctx.x_shape = x.shape
        y, argmax = backend.kernel("global_max_pool_forward", x)(x)
        ctx.save_for_backward(argmax)
        return y

    @staticmethod
    def backward(ctx, grad):
        (argmax,) = ctx.saved_tensors
        grad_x = backend.kernel("global_max_pool_backward", grad.data)(grad.data, argmax.data,
                                                                        ctx.x_shape)
        return Tensor._wrap(grad_x)


class GlobalAvgPool(Function):
    once_differentiable = True

    @staticmethod
    def forward(ctx, x):
        ctx.x_shape = x.shape
        return backend.kernel("global_avg_pool_forward", x)(x)

    @staticmethod
    def backward(ctx, grad):
        grad_x = backend.kernel("global_avg_pool_backward", grad.data)(grad.data, ctx.x_shape)
        return Tensor._wrap(grad_x)


def _check_global_input(op, x):
    if x.ndim < 3 or 0 in x.shape[1:-1]:
        raise ValueError(
            f"{op} expects input (batch, ..., channels) with at least one position between "
            f"batch and channels, got shape {tuple(x.shape)}"
        )


def global_max_pool(x):
    """x (N, ..., C) -> (N, C): the largest value over every middle axis."""
    _check_global_input("global_max_pool", x)
    return GlobalMaxPool.apply(x)


def global_avg_pool(x):
    """x (N, ..., C) -> (N, C): the mean over every middle axis."""
    _check_global_input("global_avg_pool", x)
    return GlobalAvgPool.apply(x)
