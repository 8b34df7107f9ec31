"""Pooling over channels-last data: max and average, 1-D and 2-D, and global pools.

As with the convolutions, one Function serves the 1-D and the 2-D case: the
input's rank picks the kernels `max_pool1d_*` or `max_pool2d_*`. Max pooling
keeps the index of each window's winner, so its backward sends the gradient
straight there; average pooling shares each window's gradient among the
real (unpadded) elements of the window, as Keras does for 'same'.

A convolution and the max pool after it can also run as one op
(`conv2d_max_pool2d`, `conv1d_max_pool1d`, ConvolutionMaxPool): what a model
does for a Conv2D (Conv1D) layer followed by a MaxPooling2D (MaxPooling1D) layer.
"""
from .. import backend
from ..autograd import Function, Tensor
from .conv import (check_kernel_rank, check_rank, convolution, convolution_options,
                   pool_options)
from .nn import fused_activation_name, wrap_or_none


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
    pool_size, strides, pairs = pool_options(op, tuple(x.shape[1:-1]), pool_size, strides,
                                             padding)
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
# A convolution and the max pool after it, as one op
# ----------------------------------------------------------------------------
class ConvolutionMaxPool(Function):
    """y = max_pool(act(conv(x, kernel) + bias)): a Conv2D (Conv1D) layer and the
    MaxPooling2D (MaxPooling1D) layer after it, in one op; the input's rank
    picks the kernels, as for Convolution.

    Why: the convolution's output is the largest array of a CNN (11 MB in the
    MNIST CNN's first layer) and the pool reads it once and keeps a quarter.
    In one op, the Numba kernel pools each chunk of it while it is in the
    cache, and the whole output is never written to memory.  Nor is it kept
    for the backward: a pooled value is its window's winner, so y and the
    winners' positions (argmax) say all the backward needs, act' included.

    The activation is applied before the max, as the two layers apply it, so
    both ways give the same y, and the same winners.
    """
    once_differentiable = True

    @staticmethod
    def forward(ctx, x, kernel, bias, *, strides, padding, dilation, activation, pool_size,
                pool_strides, pool_padding):
        dims = x.ndim - 2
        ctx.op = f"conv{dims}d_bias_activation_max_pool{dims}d"
        ctx.activation = activation  # for the tracer's FLOP count
        ctx.options = (strides, padding, dilation, activation, pool_size, pool_strides,
                       pool_padding)
        y, argmax = backend.kernel(f"{ctx.op}_forward", x)(x, kernel, bias, *ctx.options)
        ctx.save_for_backward(x, kernel, y, argmax)
        return y

    @staticmethod
    def backward(ctx, grad):
        x, kernel, y, argmax = ctx.saved_tensors
        grad_x, grad_kernel, grad_bias = backend.kernel(f"{ctx.op}_backward", grad.data)(
            grad.data, y.data, argmax.data, x.data, kernel.data, *ctx.options,
            ctx.needs_input_grad[0], ctx.needs_input_grad[1])
        return wrap_or_none(grad_x), wrap_or_none(grad_kernel), Tensor._wrap(grad_bias)


def convolution_max_pool(x, kernel, bias, strides=1, padding="valid", dilation_rate=1,
                         activation=None, pool_size=2, pool_strides=None, pool_padding="valid"):
    """max_pool(activation(conv(x, kernel) + bias)), 1-D or 2-D as the kernel's
    rank says: x (N, H, W, C) or (N, L, C), kernel (KH, KW, C, F) or (K, C, F),
    bias (F,).

    The arguments are those of the convolution and of the max pool
    (pool_size, pool_strides, pool_padding).  One op when the kernels can
    fuse the activation (linear, relu, tanh, sigmoid); otherwise the
    convolution and the pool in turn.
    """
    spatial_dims = kernel.ndim - 2
    pool_op = f"max_pool{spatial_dims}d"
    fused_name = fused_activation_name(activation)
    if fused_name is None:
        y = convolution(x, kernel, strides, padding, dilation_rate, bias, activation)
        return _pool(MaxPool, pool_op, y, pool_size, pool_strides, pool_padding, spatial_dims)
    options, conv_shape = convolution_options(x, kernel, bias, strides, padding, dilation_rate)
    pool_size, pool_strides, pool_pairs = pool_options(pool_op, conv_shape, pool_size,
                                                       pool_strides, pool_padding)
    return ConvolutionMaxPool.apply(x, kernel, bias, activation=fused_name, **options,
                                    pool_size=pool_size, pool_strides=pool_strides,
                                    pool_padding=pool_pairs)


def conv2d_max_pool2d(x, kernel, bias, strides=1, padding="valid", dilation_rate=1,
                      activation=None, pool_size=(2, 2), pool_strides=None,
                      pool_padding="valid"):
    """max_pool2d(activation(conv2d(x, kernel) + bias)) -> (N, PH, PW, F); see
    convolution_max_pool."""
    check_kernel_rank("conv2d_max_pool2d", kernel, spatial_dims=2)
    return convolution_max_pool(x, kernel, bias, strides, padding, dilation_rate, activation,
                                pool_size, pool_strides, pool_padding)


def conv1d_max_pool1d(x, kernel, bias, strides=1, padding="valid", dilation_rate=1,
                      activation=None, pool_size=2, pool_strides=None, pool_padding="valid"):
    """max_pool1d(activation(conv1d(x, kernel) + bias)) -> (N, PL, F); see
    convolution_max_pool."""
    check_kernel_rank("conv1d_max_pool1d", kernel, spatial_dims=1)
    return convolution_max_pool(x, kernel, bias, strides, padding, dilation_rate, activation,
                                pool_size, pool_strides, pool_padding)


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
