"""Convolutions over channels-last data: conv1d (N, L, C) and conv2d (N, H, W, C).

One Function serves both: the number of spatial axes (the input's rank minus
the batch and channel axes) picks the kernels `conv1d_*` or `conv2d_*`.
The kernel (the weights) has Keras's layout: (K, C, F) or (KH, KW, C, F).

A layer's bias and activation can ride along as the convolution's epilogue
(`convolution(..., bias=b, activation="relu")`): see `Convolution`.

The helpers at the top (argument tuples, padding, output sizes) are shared
with the pooling ops.
"""
import numbers

from .. import backend
from ..autograd import Function, Tensor
from ..kernels.shapes import conv_output_length, resolve_padding
from .nn import bias_activation, fused_activation_name, wrap_or_none


# ----------------------------------------------------------------------------
# Arguments shared by convolution and pooling
# ----------------------------------------------------------------------------
def normalize_tuple(value, length, argument):
    """An int or a sequence of `length` positive ints -> a tuple of `length` ints."""
    if isinstance(value, numbers.Integral):
        values = (value,) * length
    else:
        values = tuple(value) if isinstance(value, (tuple, list)) else ()
    if len(values) != length or not all(isinstance(v, numbers.Integral) and v >= 1
                                        for v in values):
        raise ValueError(
            f"{argument} must be a positive int or a tuple of {length} positive ints, "
            f"got {value!r}"
        )
    return tuple(int(v) for v in values)


def normalize_padding(padding, allowed=("valid", "same")):
    """Keras accepts the padding word in any case: 'SAME' is 'same'."""
    word = padding.lower() if isinstance(padding, str) else padding
    if word not in allowed:
        raise ValueError(f"padding must be one of {allowed}, got {padding!r}")
    return word


def padding_pairs(padding, spatial_shape, window, strides, dilation):
    """'valid', 'same' or 'causal' -> one (before, after) pair per spatial axis.

    'causal' (1-D only) pads the start alone, so output step t sees inputs up
    to t and never beyond: what sequence models that must not peek need.
    """
    if padding == "causal":
        return tuple(((k - 1) * d, 0) for k, d in zip(window, dilation))
    return resolve_padding(padding, spatial_shape, window, strides, dilation)


def window_output_shape(op, spatial_shape, window, strides, pairs, dilation, padding,
                        window_name="window"):
    """Output size per spatial axis; raises when the window (a convolution kernel or
    a pool) is larger than the padded input."""
    sizes = tuple(conv_output_length(n, k, s, before, after, d)
                  for n, k, s, (before, after), d in zip(spatial_shape, window, strides, pairs,
                                                          dilation))
    if min(sizes, default=1) < 1:
        described = f"{window_name} {window}"
        if any(d > 1 for d in dilation):
            spans = tuple((k - 1) * d + 1 for k, d in zip(window, dilation))
            described += f" (dilation {dilation}, so it spans {spans})"
        padded = tuple(n + before + after for n, (before, after) in zip(spatial_shape, pairs))
        raise ValueError(
            f"{op}: the {described} is larger than the input {tuple(spatial_shape)} padded "
            f"with {padding!r} to {padded}; use padding='same', a smaller {window_name}, or "
            "a larger input"
        )
    return sizes


def check_kernel_rank(op, kernel, spatial_dims):
    """ValueError naming the layout unless kernel is (K, C, F) or (KH, KW, C, F)."""
    layouts = {1: "(K, C, F)", 2: "(KH, KW, C, F)"}
    if kernel.ndim != spatial_dims + 2:
        raise ValueError(f"{op} expects a kernel {layouts[spatial_dims]}, got shape "
                         f"{tuple(kernel.shape)}")


def check_rank(op, x, spatial_dims):
    expected = {1: "(batch, steps, channels)", 2: "(batch, height, width, channels)"}
    if x.ndim != spatial_dims + 2:
        raise ValueError(
            f"{op} expects input of rank {spatial_dims + 2}, {expected[spatial_dims]}, "
            f"got shape {tuple(x.shape)}"
        )


def pool_options(op, spatial_shape, pool_size, strides, padding):
    """Check a pool's arguments over inputs of this spatial shape -> (pool_size,
    strides, padding pairs)."""
    spatial_dims = len(spatial_shape)
    pool_size = normalize_tuple(pool_size, spatial_dims, "pool_size")
    # Keras: strides=None means windows side by side, strides equal to the pool size.
    strides = pool_size if strides is None else normalize_tuple(strides, spatial_dims, "strides")
    padding = normalize_padding(padding)
    no_dilation = (1,) * spatial_dims
    pairs = padding_pairs(padding, spatial_shape, pool_size, strides, no_dilation)
    window_output_shape(op, spatial_shape, pool_size, strides, pairs, no_dilation, padding,
                        window_name="pool window")
    return pool_size, strides, pairs


# ----------------------------------------------------------------------------
# The convolution
# ----------------------------------------------------------------------------
class Convolution(Function):
    """y = conv(x, kernel), or, given a bias, y = act(conv(x, kernel) + bias) in one op.

    Why one op for the three: a convolution's output is large (the MNIST CNN's
    first one is 11 MB) and adding the bias and applying the activation do
    almost no arithmetic per element, so as a separate op (BiasActivation) they
    cost a full pass over it forward and two backward.  The Numba kernels
    (kernels/cpu/conv.py) instead run them on each chunk of the output while
    it is still in the cache: forward, right after the GEMM that wrote the
    chunk (the epilogue); backward, on each chunk of the incoming gradient
    before the GEMMs read it (the prologue, which also sums the bias
    gradient).  Like BiasActivation, the backward reads the activation's
    derivative from the output y, so y is saved.
    """
    once_differentiable = True

    @staticmethod
    def forward(ctx, x, kernel, bias=None, *, strides, padding, dilation, activation=None):
        ctx.op = f"conv{x.ndim - 2}d"
        ctx.options = (strides, padding, dilation)
        ctx.activation = activation
        if bias is None:
            ctx.save_for_backward(x, kernel)
            return backend.kernel(f"{ctx.op}_forward", x)(x, kernel, strides, padding, dilation)
        y = backend.kernel(f"{ctx.op}_bias_activation_forward", x)(
            x, kernel, bias, strides, padding, dilation, activation)
        ctx.save_for_backward(x, kernel, y)
        return y

    @staticmethod
    def backward(ctx, grad):
        if ctx.activation is None:
            return Convolution.backward_without_bias(ctx, grad)
        x, kernel, y = ctx.saved_tensors
        grad_x, grad_kernel, grad_bias = backend.kernel(
            f"{ctx.op}_bias_activation_backward", grad.data)(
            grad.data, y.data, x.data, kernel.data, *ctx.options, ctx.activation,
            ctx.needs_input_grad[0], ctx.needs_input_grad[1])
        return wrap_or_none(grad_x), wrap_or_none(grad_kernel), Tensor._wrap(grad_bias)

    @staticmethod
    def backward_without_bias(ctx, grad):
        x, kernel = ctx.saved_tensors
        grad_x = grad_kernel = None
        if ctx.needs_input_grad[0]:
            grad_x = backend.kernel(f"{ctx.op}_backward_input", grad.data)(
                grad.data, kernel.data, x.shape, *ctx.options)
            grad_x = Tensor._wrap(grad_x)
        if ctx.needs_input_grad[1]:
            grad_kernel = backend.kernel(f"{ctx.op}_backward_kernel", grad.data)(
                x.data, grad.data, kernel.shape, *ctx.options)
            grad_kernel = Tensor._wrap(grad_kernel)
        return grad_x, grad_kernel


def convolution(x, kernel, strides=1, padding="valid", dilation_rate=1, bias=None,
                activation=None):
    """conv1d or conv2d, told apart by the rank of `x` (3 or 4), then
    activation(... + bias) when a bias is given.

    The bias and the activations the kernels know (linear, relu, tanh,
    sigmoid) become the convolution's epilogue, one op; any other activation
    runs as its own op after it.
    """
    options, _ = convolution_options(x, kernel, bias, strides, padding, dilation_rate)
    fused_name = fused_activation_name(activation)
    if bias is not None and fused_name is not None:
        return Convolution.apply(x, kernel, bias, activation=fused_name, **options)
    return bias_activation(Convolution.apply(x, kernel, **options), bias, activation)


def convolution_options(x, kernel, bias, strides, padding, dilation_rate):
    """Check a convolution's arguments -> ({strides, padding pairs, dilation}, the
    output's spatial shape)."""
    spatial_dims = kernel.ndim - 2
    op = f"conv{spatial_dims}d"
    check_rank(op, x, spatial_dims)
    if x.shape[-1] != kernel.shape[-2]:
        raise ValueError(
            f"{op}: the input has {x.shape[-1]} channels (shape {tuple(x.shape)}) but the "
            f"kernel {tuple(kernel.shape)} expects {kernel.shape[-2]}"
        )
    if bias is not None and tuple(bias.shape) != (kernel.shape[-1],):
        raise ValueError(
            f"{op}: the bias has shape {tuple(bias.shape)}, expected ({kernel.shape[-1]},): one "
            f"value per filter of the kernel {tuple(kernel.shape)}"
        )
    strides = normalize_tuple(strides, spatial_dims, "strides")
    dilation = normalize_tuple(dilation_rate, spatial_dims, "dilation_rate")
    allowed = ("valid", "same", "causal") if spatial_dims == 1 else ("valid", "same")
    padding = normalize_padding(padding, allowed)
    window = tuple(kernel.shape[:spatial_dims])
    spatial_shape = tuple(x.shape[1:-1])
    pairs = padding_pairs(padding, spatial_shape, window, strides, dilation)
    output_shape = window_output_shape(op, spatial_shape, window, strides, pairs, dilation,
                                       padding, window_name="kernel")
    return {"strides": strides, "padding": pairs, "dilation": dilation}, output_shape


def conv1d(x, kernel, strides=1, padding="valid", dilation_rate=1):
    """x (N, L, C) with kernel (K, C, F) -> (N, OL, F). padding: 'valid', 'same' or 'causal'."""
    check_kernel_rank("conv1d", kernel, spatial_dims=1)
    return convolution(x, kernel, strides, padding, dilation_rate)


def conv2d(x, kernel, strides=1, padding="valid", dilation_rate=1):
    """x (N, H, W, C) with kernel (KH, KW, C, F) -> (N, OH, OW, F). padding: 'valid' or 'same'."""
    check_kernel_rank("conv2d", kernel, spatial_dims=2)
    return convolution(x, kernel, strides, padding, dilation_rate)
