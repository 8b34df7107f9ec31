"""Convolution kernels in plain NumPy: the readable specification.

A 2-D convolution slides a (KH, KW) window over the zero-padded image and, at
every output pixel, takes the dot product of the window with the kernel.
Like Keras and PyTorch, the kernel is not flipped (strictly speaking this is a
cross-correlation).

Rather than looping over the output pixels, these kernels loop over the KH * KW
*taps* of the kernel.  For one tap (i, j), the input pixels it touches, one per
output pixel, form a strided slice of the padded input that has exactly the
output's spatial shape.  So the whole contribution of that tap is a single
matrix product, (N, OH, OW, C) @ (C, F), and the loop has only KH * KW steps.

The backward passes walk the same taps:
- the input gradient sends each tap's share back through the same slice
  (a scatter-add into a padded gradient, cropped at the end);
- the kernel gradient of a tap pairs that slice with the output gradient.

conv1d is conv2d on a view with a height of one.
"""
import numpy as np

from .. import composed
from ..shapes import conv_output_length
from .elementwise import bias_activation_backward, bias_activation_forward
from .pool import max_pool2d_backward, max_pool2d_forward


def conv2d_output_size(x_shape, w_shape, stride, padding, dilation):
    """(OH, OW) of a convolution; raises ValueError when the shapes cannot work."""
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
        for n, k, s, (before, after), d in zip(
            x_shape[1:3], w_shape[:2], stride, padding, dilation
        )
    )
    if min(output_size) < 1:
        raise ValueError(
            f"conv2d: a kernel {tuple(w_shape[:2])} with dilation {tuple(dilation)} "
            f"does not fit in the padded input {tuple(x_shape[1:3])} + {tuple(padding)}"
        )
    return output_size


def pad_spatial(x, padding):
    """x (N, H, W, C) with zeros added around H and W."""
    (top, bottom), (left, right) = padding
    return np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))


def crop_spatial(x_padded, padding, height, width):
    """Undo pad_spatial: the (height, width) interior, as a new array."""
    (top, _), (left, _) = padding
    return x_padded[:, top:top + height, left:left + width, :].copy()


def tap_slice(tap_row, tap_col, output_size, stride, dilation):
    """Index of the padded-input pixels that kernel tap (tap_row, tap_col) meets.

    Output pixel (oh, ow) reads padded pixel
    (oh * stride_h + tap_row * dilation_h, ow * stride_w + tap_col * dilation_w).
    """
    (out_h, out_w), (stride_h, stride_w), (dilation_h, dilation_w) = (
        output_size, stride, dilation)
    top = tap_row * dilation_h
    left = tap_col * dilation_w
    rows = slice(top, top + (out_h - 1) * stride_h + 1, stride_h)
    cols = slice(left, left + (out_w - 1) * stride_w + 1, stride_w)
    return (slice(None), rows, cols, slice(None))


def conv2d_forward(x, w, stride, padding, dilation):
    """x (N, H, W, C) convolved with w (KH, KW, C, F) -> y (N, OH, OW, F)."""
    output_size = conv2d_output_size(x.shape, w.shape, stride, padding, dilation)
    kernel_h, kernel_w, _, filters = w.shape
    x_padded = pad_spatial(x, padding)
    y = np.zeros((x.shape[0], *output_size, filters), dtype=x.dtype)
    for i in range(kernel_h):
        for j in range(kernel_w):
            window = x_padded[tap_slice(i, j, output_size, stride, dilation)]
            y += window @ w[i, j]  # (N, OH, OW, C) @ (C, F)
    return y


def conv2d_backward_input(grad_y, w, x_shape, stride, padding, dilation):
    """Gradient of the loss with respect to the input x, shape x_shape."""
    output_size = conv2d_output_size(x_shape, w.shape, stride, padding, dilation)
    kernel_h, kernel_w = w.shape[:2]
    batch, height, width, channels = x_shape
    (top, bottom), (left, right) = padding
    grad_x_padded = np.zeros(
        (batch, height + top + bottom, width + left + right, channels), dtype=grad_y.dtype
    )
    for i in range(kernel_h):
        for j in range(kernel_w):
            # `+=` rather than `=`: taps overlap when the stride is smaller
            # than the kernel, and every overlapping share must be summed.
            grad_x_padded[tap_slice(i, j, output_size, stride, dilation)] += grad_y @ w[i, j].T
    # Gradient that landed on the zero padding belongs to no input: drop it.
    return crop_spatial(grad_x_padded, padding, height, width)


def conv2d_backward_kernel(x, grad_y, w_shape, stride, padding, dilation):
    """Gradient of the loss with respect to the kernel w, shape w_shape."""
    output_size = conv2d_output_size(x.shape, w_shape, stride, padding, dilation)
    kernel_h, kernel_w = w_shape[:2]
    x_padded = pad_spatial(x, padding)
    grad_w = np.zeros(w_shape, dtype=x.dtype)
    for i in range(kernel_h):
        for j in range(kernel_w):
            window = x_padded[tap_slice(i, j, output_size, stride, dilation)]
            # Sum over batch and output pixels: (N, OH, OW, C) x (N, OH, OW, F) -> (C, F).
            grad_w[i, j] = np.tensordot(window, grad_y, axes=([0, 1, 2], [0, 1, 2]))
    return grad_w


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
    This set composes the two kernels; the Numba set (cpu/conv.py) applies the
    bias and activation to each chunk of y while it is in cache."""
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
    convolution's output plane.  This set composes the fused convolution and the pool."""
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
