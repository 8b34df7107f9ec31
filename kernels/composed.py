"""Kernels made of a set's other kernels, written once for the three sets.

conv1d is conv2d on a view of height 1 (docs/KERNELS.md allows that in any
set), and a fused kernel, where a set has no faster way to run it, is its parts
one after the other.  That logic is the same in every set; only the kernels it
calls differ.  So it lives here, taking those kernels as its first arguments,
and each set's contract function is one call that names the kernels it is made
of.  Arrays only, NumPy or CuPy: nothing here looks at the device.
"""
from .shapes import check_dense_shapes, conv1d_as_conv2d, conv_output_shape, pool1d_as_pool2d


# --- conv1d as conv2d on a height-1 view --------------------------------------


def conv1d_forward(conv2d_forward, x, w, stride, padding, dilation):
    """x (N, L, C) convolved with w (K, C, F) -> y (N, OL, F)."""
    y = conv2d_forward(x[:, None], w[None], *conv1d_as_conv2d(stride, padding, dilation))
    return y[:, 0]


def conv1d_backward_input(conv2d_backward_input, grad_y, w, x_shape, stride, padding, dilation):
    batch, length, channels = x_shape
    grad_x = conv2d_backward_input(
        grad_y[:, None], w[None], (batch, 1, length, channels),
        *conv1d_as_conv2d(stride, padding, dilation),
    )
    return grad_x[:, 0]


def conv1d_backward_kernel(conv2d_backward_kernel, x, grad_y, w_shape, stride, padding, dilation):
    grad_w = conv2d_backward_kernel(
        x[:, None], grad_y[:, None], (1, *w_shape),
        *conv1d_as_conv2d(stride, padding, dilation),
    )
    return grad_w[0]


def conv1d_bias_activation_forward(conv2d_bias_activation_forward, x, w, bias, stride, padding,
                                   dilation, activation):
    """act(conv1d(x, w) + bias): x (N, L, C), w (K, C, F) -> y (N, OL, F)."""
    y = conv2d_bias_activation_forward(x[:, None], w[None], bias,
                                       *conv1d_as_conv2d(stride, padding, dilation), activation)
    return y[:, 0]


def conv1d_bias_activation_backward(conv2d_bias_activation_backward, grad_y, y, x, w, stride,
                                    padding, dilation, activation, need_grad_x, need_grad_w):
    grad_x, grad_w, grad_bias = conv2d_bias_activation_backward(
        grad_y[:, None], y[:, None], x[:, None], w[None],
        *conv1d_as_conv2d(stride, padding, dilation), activation, need_grad_x, need_grad_w,
    )
    return (None if grad_x is None else grad_x[:, 0],
            None if grad_w is None else grad_w[0], grad_bias)


# --- the fused convolution as its parts in turn ------------------------------


def conv2d_bias_activation_forward(conv2d_forward, bias_activation_forward, x, w, bias, stride,
                                   padding, dilation, activation):
    """act(conv2d(x, w) + bias) -> y (N, OH, OW, F): the convolution, then bias + activation."""
    y = conv2d_forward(x, w, stride, padding, dilation)
    return bias_activation_forward(y, bias, activation)


def conv2d_bias_activation_backward(conv2d_backward_input, conv2d_backward_kernel,
                                    bias_activation_backward, grad_y, y, x, w, stride, padding,
                                    dilation, activation, need_grad_x, need_grad_w):
    """(grad_x, grad_w, grad_bias) of y = act(conv2d(x, w) + bias), read from y;
    grad_x (grad_w) is None unless need_grad_x (need_grad_w)."""
    grad_conv, grad_bias = bias_activation_backward(grad_y, y, activation)
    grad_x, grad_w = conv2d_gradients(conv2d_backward_input, conv2d_backward_kernel, grad_conv, x,
                                      w, stride, padding, dilation, need_grad_x, need_grad_w)
    return grad_x, grad_w, grad_bias


def conv2d_gradients(conv2d_backward_input, conv2d_backward_kernel, grad_conv, x, w, stride,
                     padding, dilation, need_grad_x, need_grad_w):
    """(grad_x, grad_w) from the gradient of conv2d(x, w)'s own output, each None
    unless asked for."""
    grad_x = grad_w = None
    if need_grad_x:
        grad_x = conv2d_backward_input(grad_conv, w, x.shape, stride, padding, dilation)
    if need_grad_w:
        grad_w = conv2d_backward_kernel(x, grad_conv, w.shape, stride, padding, dilation)
    return grad_x, grad_w


# --- a convolution and the max pool that follows it --------------------------


def conv2d_bias_activation_max_pool2d_forward(conv2d_bias_activation_forward, max_pool2d_forward,
                                              x, w, bias, stride, padding, dilation, activation,
                                              pool, pool_stride, pool_padding):
    """max_pool2d(act(conv2d(x, w) + bias)) -> (y, argmax), as max_pool2d_forward
    returns them: the fused convolution, then the pool."""
    conv_y = conv2d_bias_activation_forward(x, w, bias, stride, padding, dilation, activation)
    return max_pool2d_forward(conv_y, pool, pool_stride, pool_padding)


def conv2d_bias_activation_max_pool2d_backward(conv2d_backward_input, conv2d_backward_kernel,
                                               bias_activation_backward, max_pool2d_backward,
                                               grad_y, y, argmax, x, w, stride, padding,
                                               dilation, activation, pool, pool_stride,
                                               pool_padding, need_grad_x, need_grad_w):
    """(grad_x, grad_w, grad_bias) of y = max_pool2d(act(conv2d(x, w) + bias)).

    The convolution's output was never kept, and need not be: each pooled value
    is its winner's activated value, so act' at the winner reads from y itself.
    g = grad_y * act'(y) goes to the winners (the pool's backward); every other
    pixel of the convolution gets no gradient.  grad_bias sums g.
    """
    g, grad_bias = bias_activation_backward(grad_y, y, activation)
    conv_shape = conv_output_shape(x.shape, w.shape, stride, padding, dilation)
    grad_conv = max_pool2d_backward(g, argmax, conv_shape, pool, pool_stride, pool_padding)
    grad_x, grad_w = conv2d_gradients(conv2d_backward_input, conv2d_backward_kernel, grad_conv, x,
                                      w, stride, padding, dilation, need_grad_x, need_grad_w)
    return grad_x, grad_w, grad_bias


def conv1d_bias_activation_max_pool1d_forward(conv2d_bias_activation_max_pool2d_forward, x, w,
                                              bias, stride, padding, dilation, activation, pool,
                                              pool_stride, pool_padding):
    """max_pool1d(act(conv1d(x, w) + bias)) -> (y, argmax): the 2-D kernel on a
    height-1 view; argmax indexes the convolution's output steps."""
    y, argmax = conv2d_bias_activation_max_pool2d_forward(
        x[:, None], w[None], bias, *conv1d_as_conv2d(stride, padding, dilation), activation,
        *pool1d_as_pool2d(pool, pool_stride, pool_padding))
    return y[:, 0], argmax[:, 0]


def conv1d_bias_activation_max_pool1d_backward(conv2d_bias_activation_max_pool2d_backward, grad_y,
                                               y, argmax, x, w, stride, padding, dilation,
                                               activation, pool, pool_stride, pool_padding,
                                               need_grad_x, need_grad_w):
    grad_x, grad_w, grad_bias = conv2d_bias_activation_max_pool2d_backward(
        grad_y[:, None], y[:, None], argmax[:, None], x[:, None], w[None],
        *conv1d_as_conv2d(stride, padding, dilation), activation,
        *pool1d_as_pool2d(pool, pool_stride, pool_padding), need_grad_x, need_grad_w)
    return (None if grad_x is None else grad_x[:, 0],
            None if grad_w is None else grad_w[0], grad_bias)


# --- a Dense layer as a product and its bias + activation --------------------


def dense_bias_activation_forward(bias_activation_forward, x, w, bias, activation):
    """act(x @ w + bias): x (N, features), w (features, units), bias (units,) -> y (N, units)."""
    check_dense_shapes(x, w, bias)
    return bias_activation_forward(x @ w.astype(x.dtype, copy=False), bias, activation)


def dense_bias_activation_backward(bias_activation_backward, grad_y, y, x, w, activation,
                                   need_grad_x, need_grad_w):
    """(grad_x, grad_w, grad_bias) of y = act(x @ w + bias), act' read from y;
    grad_x (grad_w) is None unless need_grad_x (need_grad_w)."""
    g, grad_bias = bias_activation_backward(grad_y, y, activation)
    grad_x = g @ w.astype(g.dtype, copy=False).T if need_grad_x else None
    grad_w = x.astype(g.dtype, copy=False).T @ g if need_grad_w else None
    return grad_x, grad_w, grad_bias


# --- one optimizer step over many weights -------------------------------------


def check_one_of_each(params, grads, ms, vs):
    """ValueError unless the four lists of adam_update_many are equally long."""
    if not len(params) == len(grads) == len(ms) == len(vs):
        raise ValueError(f"adam_update_many: {len(params)} params, {len(grads)} grads, "
                         f"{len(ms)} m and {len(vs)} v; give one of each per parameter")


def adam_update_many(adam_update, params, grads, ms, vs, lr, beta1, beta2, epsilon, step,
                     weight_decay):
    """adam_update for each parameter of the lists in turn: one optimizer step."""
    check_one_of_each(params, grads, ms, vs)
    for param, grad, m, v in zip(params, grads, ms, vs):
        adam_update(param, grad, m, v, lr, beta1, beta2, epsilon, step, weight_decay)
