"""Convolution on the GPU: im2col + one GEMM + col2im.

im2col (conv.cu) lays every window of the input out as one row of a matrix
``cols`` (N * OH * OW, KH * KW * C); then
- forward:          y      = cols @ w2d                  w2d = w.reshape(KH * KW * C, F)
- kernel gradient:  grad_w = cols.T @ grad_y2d           grad_y2d = grad_y.reshape(-1, F)
- input gradient:   grad_x = col2im(grad_y2d @ w2d.T)
The GEMMs are cuBLAS calls through ``@``; im2col and col2im are our kernels.
conv1d is conv2d on a view with a height of one.
"""
import cupy

from .. import composed
from ..shapes import conv_output_length
from .elementwise import bias_activation_backward, bias_activation_forward
from .pool import max_pool2d_backward, max_pool2d_forward
from .loader import contiguous, float_dtype, get_kernel, indices, launch_over_elements

CUDA_FILE = "conv.cu"


def conv2d_output_size(x_shape, w_shape, stride, padding, dilation):
    """(OH, OW) of a convolution; ValueError when the shapes cannot work."""
    if len(x_shape) != 4 or len(w_shape) != 4:
        raise ValueError(
            f"conv2d expects input (N, H, W, C) and kernel (KH, KW, C, F), "
            f"got input {tuple(x_shape)} and kernel {tuple(w_shape)}"
        )
    if x_shape[3] != w_shape[2]:
        raise ValueError(
            f"conv2d: the input has {x_shape[3]} channels but the kernel "
            f"{tuple(w_shape)} expects {w_shape[2]}"
        )
    output_size = tuple(
        conv_output_length(n, k, s, before, after, d)
        for n, k, s, (before, after), d in zip(x_shape[1:3], w_shape[:2], stride, padding, dilation)
    )
    if min(output_size) < 1:
        raise ValueError(
            f"conv2d: a kernel {tuple(w_shape[:2])} with dilation {tuple(dilation)} "
            f"does not fit in the padded input {tuple(x_shape[1:3])} + {tuple(padding)}"
        )
    return output_size


def check_grad_y_shape(grad_y, batch, output_size, filters):
    expected = (batch, *output_size, filters)
    if tuple(grad_y.shape) != expected:
        raise ValueError(f"conv2d: grad_y has shape {tuple(grad_y.shape)}, expected {expected}")


def geometry_arguments(x_shape, w_shape, output_size, stride, padding, dilation):
    """The arguments that im2col and col2im share, in their C order, as ``Index``."""
    batch, height, width, channels = x_shape
    kernel_h, kernel_w = w_shape[:2]
    (pad_top, _), (pad_left, _) = padding
    values = (
        batch, height, width, channels, kernel_h, kernel_w, *output_size,
        *stride, pad_top, pad_left, *dilation,
    )
    return indices(values)


def im2col(x, w_shape, output_size, stride, padding, dilation):
    """cols (N * OH * OW, KH * KW * C): the window under every output pixel, as a row."""
    batch, _, _, channels = x.shape
    rows = batch * output_size[0] * output_size[1]
    columns = w_shape[0] * w_shape[1] * channels
    cols = cupy.empty((rows, columns), dtype=x.dtype)
    arguments = geometry_arguments(x.shape, w_shape, output_size, stride, padding, dilation)
    kernel = get_kernel(CUDA_FILE, "im2col", x.dtype)
    launch_over_elements(kernel, cols.size, (x, cols) + arguments)
    return cols


def col2im(cols, x_shape, w_shape, output_size, stride, padding, dilation):
    """The adjoint of im2col: sums each input element's entries of cols back into x_shape."""
    x = cupy.empty(x_shape, dtype=cols.dtype)
    arguments = geometry_arguments(x_shape, w_shape, output_size, stride, padding, dilation)
    kernel = get_kernel(CUDA_FILE, "col2im", cols.dtype)
    launch_over_elements(kernel, x.size, (cols, x) + arguments)
    return x


def conv2d_forward(x, w, stride, padding, dilation):
    """x (N, H, W, C) convolved with w (KH, KW, C, F) -> y (N, OH, OW, F)."""
    dtype = float_dtype(x)
    x = contiguous(x)
    w = contiguous(w, dtype)
    output_size = conv2d_output_size(x.shape, w.shape, stride, padding, dilation)
    filters = w.shape[3]
    cols = im2col(x, w.shape, output_size, stride, padding, dilation)
    y = cols @ w.reshape(-1, filters)
    return y.reshape(x.shape[0], *output_size, filters)


def conv2d_backward_input(grad_y, w, x_shape, stride, padding, dilation):
    """Gradient of the loss with respect to the input x, shape x_shape."""
    dtype = float_dtype(grad_y)
    x_shape = tuple(int(size) for size in x_shape)
    grad_y = contiguous(grad_y)
    w = contiguous(w, dtype)
    output_size = conv2d_output_size(x_shape, w.shape, stride, padding, dilation)
    filters = w.shape[3]
    check_grad_y_shape(grad_y, x_shape[0], output_size, filters)
    grad_cols = grad_y.reshape(-1, filters) @ w.reshape(-1, filters).T
    return col2im(grad_cols, x_shape, w.shape, output_size, stride, padding, dilation)


def conv2d_backward_kernel(x, grad_y, w_shape, stride, padding, dilation):
    """Gradient of the loss with respect to the kernel w, shape w_shape."""
    dtype = float_dtype(x)
    w_shape = tuple(int(size) for size in w_shape)
    x = contiguous(x)
    grad_y = contiguous(grad_y, dtype)
    output_size = conv2d_output_size(x.shape, w_shape, stride, padding, dilation)
    filters = w_shape[3]
    check_grad_y_shape(grad_y, x.shape[0], output_size, filters)
    cols = im2col(x, w_shape, output_size, stride, padding, dilation)
    grad_w = cols.T @ grad_y.reshape(-1, filters)
    return grad_w.reshape(w_shape)


def conv1d_forward(x, w, stride, padding, dilation):
    """x (N, L, C) convolved with w (K, C, F) -> y (N, OL, F): conv2d on a height-1 view."""
    return composed.conv1d_forward(conv2d_forward, x, w, stride, padding, dilation)


def conv1d_backward_input(grad_y, w, x_shape, stride, padding, dilation):
    return composed.conv1d_backward_input(conv2d_backward_input, grad_y, w, x_shape, stride,
                                          padding, dilation)


def conv1d_backward_kernel(x, grad_y, w_shape, stride, padding, dilation):
    return composed.conv1d_backward_kernel(conv2d_backward_kernel, x, grad_y, w_shape, stride,
                                           padding, dilation)


# ----------------------------------------------------------------------------
# The convolution with the layer's bias and activation fused in
# ----------------------------------------------------------------------------
def conv2d_bias_activation_forward(x, w, bias, stride, padding, dilation, activation):
    """act(conv2d(x, w) + bias) -> y (N, OH, OW, F).
    Composed of the convolution and the bias + activation kernel; on the GPU
    the extra pass over y costs little next to the GEMM."""
    return composed.conv2d_bias_activation_forward(conv2d_forward, bias_activation_forward, x, w,
                                                   bias, stride, padding, dilation, activation)


def conv2d_bias_activation_backward(grad_y, y, x, w, stride, padding, dilation, activation,
                                    need_grad_x, need_grad_w):
    """(grad_x, grad_w, grad_bias) of y = act(conv2d(x, w) + bias), read from y;
    grad_x (grad_w) is None unless need_grad_x (need_grad_w)."""
    return composed.conv2d_bias_activation_backward(
        conv2d_backward_input, conv2d_backward_kernel, bias_activation_backward, grad_y, y, x, w,
        stride, padding, dilation, activation, need_grad_x, need_grad_w)


def conv1d_bias_activation_forward(x, w, bias, stride, padding, dilation, activation):
    """act(conv1d(x, w) + bias): x (N, L, C), w (K, C, F) -> y (N, OL, F)."""
    return composed.conv1d_bias_activation_forward(conv2d_bias_activation_forward, x, w, bias,
                                                   stride, padding, dilation, activation)


def conv1d_bias_activation_backward(grad_y, y, x, w, stride, padding, dilation, activation,
                                    need_grad_x, need_grad_w):
    return composed.conv1d_bias_activation_backward(
        conv2d_bias_activation_backward, grad_y, y, x, w, stride, padding, dilation, activation,
        need_grad_x, need_grad_w)


# ----------------------------------------------------------------------------
# A convolution and the max pool that follows it, as one kernel
# ----------------------------------------------------------------------------
def conv2d_bias_activation_max_pool2d_forward(x, w, bias, stride, padding, dilation, activation,
                                              pool, pool_stride, pool_padding):
    """max_pool2d(act(conv2d(x, w) + bias)) -> (y, argmax), argmax indexing the
    convolution's output plane.  Composed of the fused convolution and the pool kernels."""
    return composed.conv2d_bias_activation_max_pool2d_forward(
        conv2d_bias_activation_forward, max_pool2d_forward, x, w, bias, stride, padding,
        dilation, activation, pool, pool_stride, pool_padding)


def conv2d_bias_activation_max_pool2d_backward(grad_y, y, argmax, x, w, stride, padding,
                                               dilation, activation, pool, pool_stride,
                                               pool_padding, need_grad_x, need_grad_w):
    """(grad_x, grad_w, grad_bias) of y = max_pool2d(act(conv2d(x, w) + bias)), from
    the pooled y and its argmax; grad_x (grad_w) is None unless asked for."""
    return composed.conv2d_bias_activation_max_pool2d_backward(
        conv2d_backward_input, conv2d_backward_kernel, bias_activation_backward,
        max_pool2d_backward, grad_y, y, argmax, x, w, stride, padding, dilation, activation,
        pool, pool_stride, pool_padding, need_grad_x, need_grad_w)


def conv1d_bias_activation_max_pool1d_forward(x, w, bias, stride, padding, dilation, activation,
                                              pool, pool_stride, pool_padding):
    """max_pool1d(act(conv1d(x, w) + bias)): the 2-D kernel on a height-1 view."""
    return composed.conv1d_bias_activation_max_pool1d_forward(
        conv2d_bias_activation_max_pool2d_forward, x, w, bias, stride, padding, dilation,
        activation, pool, pool_stride, pool_padding)


def conv1d_bias_activation_max_pool1d_backward(grad_y, y, argmax, x, w, stride, padding,
                                               dilation, activation, pool, pool_stride,
                                               pool_padding, need_grad_x, need_grad_w):
    return composed.conv1d_bias_activation_max_pool1d_backward(
        conv2d_bias_activation_max_pool2d_backward, grad_y, y, argmax, x, w, stride, padding,
        dilation, activation, pool, pool_stride, pool_padding, need_grad_x, need_grad_w)
