"""Shape arithmetic shared by every kernel set: output sizes and padding.

Kernels take padding as explicit ``(before, after)`` pairs per spatial axis,
so that the Keras words ``'valid'`` and ``'same'`` are resolved once, here,
and never inside a hot loop.
"""


def conv_output_length(length, kernel_size, stride, pad_before, pad_after, dilation=1):
    """Number of output positions of a window sliding over ``length`` inputs."""
    effective_kernel = (kernel_size - 1) * dilation + 1
    return (length + pad_before + pad_after - effective_kernel) // stride + 1


def conv_output_shape(x_shape, w_shape, stride, padding, dilation):
    """(N, ..., F): the output shape of a convolution of x (N, ..., C) with a kernel
    w (..., C, F), any number of spatial axes; padding as (before, after) pairs."""
    spatial = tuple(conv_output_length(n, k, s, before, after, d)
                    for n, k, s, (before, after), d in zip(x_shape[1:-1], w_shape[:-2], stride,
                                                          padding, dilation))
    return (x_shape[0], *spatial, w_shape[-1])


def same_padding(length, kernel_size, stride, dilation=1):
    """Keras/TensorFlow 'same' padding: output length is ceil(length / stride).

    When the total padding is odd the extra element goes *after* the input,
    which is what TensorFlow does (and why even kernel sizes are asymmetric).
    """
    effective_kernel = (kernel_size - 1) * dilation + 1
    out_length = -(-length // stride)  # ceil division
    total = max((out_length - 1) * stride + effective_kernel - length, 0)
    return (total // 2, total - total // 2)


def resolve_padding(padding, spatial_shape, kernel_size, strides, dilation):
    """Turn 'valid' / 'same' into a tuple of (before, after) pairs, one per axis."""
    if padding == "valid":
        return tuple((0, 0) for _ in spatial_shape)
    if padding == "same":
        return tuple(
            same_padding(n, k, s, d)
            for n, k, s, d in zip(spatial_shape, kernel_size, strides, dilation)
        )
    raise ValueError(f"padding must be 'valid' or 'same', got {padding!r}")


def conv1d_as_conv2d(stride, padding, dilation):
    """The conv2d arguments of a conv1d seen as a conv2d with height 1."""
    return (1, *stride), ((0, 0), *padding), (1, *dilation)


def pool1d_as_pool2d(pool, stride, padding):
    """The pool2d arguments of a pool1d seen as a pool2d with height 1."""
    return (1, *pool), (1, *stride), ((0, 0), *padding)


def check_dense_shapes(x, w, bias=None):
    """ValueError naming the shapes unless x (rows, features), w (features, units), bias (units,)."""
    if x.ndim != 2 or w.ndim != 2 or x.shape[1] != w.shape[0]:
        raise ValueError(
            f"dense: x {x.shape} and w {w.shape} must be (rows, features) and "
            "(features, units)"
        )
    if bias is not None and bias.shape != (w.shape[1],):
        raise ValueError(f"dense: bias has shape {bias.shape}, expected ({w.shape[1]},)")
