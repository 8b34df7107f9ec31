"""Reductions: sum, mean, var, max, min, logsumexp, argmax; and the pair
sum_to_shape / broadcast_to that the engine uses to undo broadcasting.

A reduction's backward spreads the output gradient back over the reduced
axes: that is broadcasting, so `sum` and `broadcast_to` are each other's
backward, and so are `sum_to_shape` and `broadcast_to`.
"""
import builtins

import numpy as np

from ..autograd import Function, Tensor, is_grad_enabled


def _normalize_axes(axis, ndim):
    """A sorted tuple of non-negative axes; None means every axis."""
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    normalized = []
    for a in axes:
        if not -ndim <= a < builtins.max(ndim, 1):
            raise ValueError(f"axis {a} is out of range for a tensor with {ndim} dimensions")
        normalized.append(a % ndim if ndim else 0)
    if ndim == 0:
        return ()  # axis 0 or -1 of a scalar: there is nothing to reduce over
    return tuple(sorted(set(normalized)))


def _restore_reduced_axes(grad, axes, keepdims):
    """Put back the reduced axes as size-1 axes, so grad broadcasts over the input."""
    if keepdims or not axes or grad.ndim == 0:
        return grad  # a scalar (the sum of everything) broadcasts as it is
    shape = list(grad.shape)
    for a in axes:
        shape.insert(a, 1)
    return grad.reshape(tuple(shape))


class Sum(Function):
    @staticmethod
    def forward(ctx, a, axis=None, keepdims=False):
        ctx.axes = _normalize_axes(axis, a.ndim)
        ctx.keepdims = keepdims
        ctx.input_shape = a.shape
        return a.sum(axis=ctx.axes, keepdims=keepdims)

    @staticmethod
    def backward(ctx, grad):
        grad = _restore_reduced_axes(grad, ctx.axes, ctx.keepdims)
        return broadcast_to(grad, ctx.input_shape)


class Mean(Function):
    """The sum over axes divided by the number of elements summed, as one op:
    every mean loss ends with it, and Sum then Div made two ops forward and
    two backward."""

    @staticmethod
    def forward(ctx, a, axis=None, keepdims=False):
        ctx.axes = _normalize_axes(axis, a.ndim)
        ctx.keepdims = keepdims
        ctx.input_shape = a.shape
        ctx.count = _count_over(a, ctx.axes)
        if ctx.count == 0:
            return _divide_by_count(a.sum(axis=ctx.axes, keepdims=keepdims), ctx.count)
        # The array's own mean divides inside its reduction: on the GPU one
        # call, where a sum then a division would be two.
        return a.mean(axis=ctx.axes, keepdims=keepdims)

    @staticmethod
    def backward(ctx, grad):
        grad = _restore_reduced_axes(grad, ctx.axes, ctx.keepdims)
        if not is_grad_enabled():
            # A plain backward (no create_graph) records nothing, so the
            # gradient is made on the arrays, in one pass: the Tensor ops below
            # copy `count` to the device, divide, then broadcast in a second pass.
            return Tensor._wrap(_spread_evenly(grad.data, ctx.count, ctx.input_shape))
        return broadcast_to(_divide_by_count(grad, ctx.count), ctx.input_shape)


def _spread_evenly(grad, count, shape):
    """A new array of `shape` holding grad / count (grad broadcasts to the shape)."""
    out = np.empty_like(grad, shape=shape)
    # With count 0 the input, and so `out`, has no elements: nothing is divided.
    np.divide(grad, count, out=out)
    return out


class SumToShape(Function):
    """Sum a broadcast result back down to `shape` (the inverse of broadcasting)."""

    @staticmethod
    def forward(ctx, a, shape):
        ctx.input_shape = a.shape
        extra = a.ndim - len(shape)
        # Sum the leading axes broadcasting added, then the axes it stretched from 1.
        stretched = tuple(extra + i for i, n in enumerate(shape) if n == 1 and a.shape[extra + i] != 1)
        out = a.sum(axis=tuple(range(extra)) + stretched, keepdims=True)
        return out.reshape(shape)

    @staticmethod
    def backward(ctx, grad):
        return broadcast_to(grad, ctx.input_shape)


class BroadcastTo(Function):
    @staticmethod
    def forward(ctx, a, shape):
        ctx.input_shape = a.shape
        # A broadcast view is read-only and shares memory, so the values go
        # into a new array: later in-place work on gradients can never write
        # through it. (empty + assign: a third of np.broadcast_to(a).copy()'s
        # 3.3 us, which every mean loss paid in its backward.)
        out = np.empty_like(a, shape=shape)
        out[...] = a
        return out

    @staticmethod
    def backward(ctx, grad):
        return sum_to_shape(grad, ctx.input_shape)


class MaxMin(Function):
    """max or min over axes; tied extremes share the gradient equally."""

    @staticmethod
    def forward(ctx, a, axis=None, keepdims=False, take_max=True):
        ctx.axes = _normalize_axes(axis, a.ndim)
        ctx.keepdims = keepdims
        if any(a.shape[axis] == 0 for axis in ctx.axes):
            raise ValueError(f"max/min over an empty axis of shape {a.shape} has no value")
        reduce = np.max if take_max else np.min
        out = reduce(a, axis=ctx.axes, keepdims=True)
        ctx.is_extreme = a == out
        return out if keepdims else out.reshape([n for i, n in enumerate(out.shape) if i not in ctx.axes])

    @staticmethod
    def backward(ctx, grad):
        grad = _restore_reduced_axes(grad, ctx.axes, ctx.keepdims)
        is_extreme = ctx.is_extreme
        count = is_extreme.sum(axis=ctx.axes, keepdims=True)
        share = Tensor._wrap((is_extreme / count).astype(grad.dtype))
        return grad * share


class LogSumExp(Function):
    """log(sum(exp(a))) computed as m + log(sum(exp(a - m))), m = max(a): no overflow."""

    @staticmethod
    def forward(ctx, a, axis=None, keepdims=False):
        ctx.axes = _normalize_axes(axis, a.ndim)
        ctx.keepdims = keepdims
        shift = np.max(a, axis=ctx.axes, keepdims=True)
        shift = np.where(np.isfinite(shift), shift, 0)
        out = np.log(np.exp(a - shift).sum(axis=ctx.axes, keepdims=True)) + shift
        ctx.save_for_backward(a)
        return out if keepdims else out.reshape([n for i, n in enumerate(out.shape) if i not in ctx.axes])

    @staticmethod
    def backward(ctx, grad):
        (a,) = ctx.saved_tensors
        # d logsumexp / da = softmax(a), recomputed with differentiable ops so
        # that second derivatives are right too.
        grad = _restore_reduced_axes(grad, ctx.axes, ctx.keepdims)
        return grad * softmax_over(a, ctx.axes)


def softmax_over(a, axes):
    """exp(a - logsumexp(a)) over `axes`, built from differentiable ops."""
    return (a - logsumexp(a, axis=axes, keepdims=True)).exp()


# ----------------------------------------------------------------------------
# Public functions
# ----------------------------------------------------------------------------
def sum(a, axis=None, keepdims=False):  # noqa: A001
    return Sum.apply(a, axis=axis, keepdims=keepdims)


def _count_over(a, axes):
    """How many elements each reduction over `axes` combines."""
    count = 1
    for ax in axes:
        count *= a.shape[ax]
    return count


def _divide_by_count(total, count):
    # The mean of no values is undefined: NaN, as in NumPy, rather than a made-up 0.
    return total / count if count > 0 else total * float("nan")


def mean(a, axis=None, keepdims=False):
    return Mean.apply(a, axis=axis, keepdims=keepdims)


def var(a, axis=None, keepdims=False, ddof=0):
    """Variance, the mean squared deviation (ddof=1 for the unbiased estimate)."""
    axes = _normalize_axes(axis, a.ndim)
    deviation = a - mean(a, axis=axes, keepdims=True)
    squares = sum(deviation * deviation, axis=axes, keepdims=keepdims)
    return _divide_by_count(squares, _count_over(a, axes) - ddof)


def max(a, axis=None, keepdims=False):  # noqa: A001
    return MaxMin.apply(a, axis=axis, keepdims=keepdims, take_max=True)


def min(a, axis=None, keepdims=False):  # noqa: A001
    return MaxMin.apply(a, axis=axis, keepdims=keepdims, take_max=False)


def logsumexp(a, axis=None, keepdims=False):
    return LogSumExp.apply(a, axis=axis, keepdims=keepdims)


def argmax(a, axis=None, keepdims=False):
    """Index of the largest value (an integer tensor: no gradient)."""
    data = a.data if isinstance(a, Tensor) else np.asarray(a)
    return Tensor._wrap(np.argmax(data, axis=axis, keepdims=keepdims))


def argmin(a, axis=None, keepdims=False):
    data = a.data if isinstance(a, Tensor) else np.asarray(a)
    return Tensor._wrap(np.argmin(data, axis=axis, keepdims=keepdims))


def sum_to_shape(a, shape):
    shape = tuple(shape)
    if a.shape == shape:
        return a
    return SumToShape.apply(a, shape=shape)


def broadcast_to(a, shape):
    shape = tuple(shape)
    if a.shape == shape:
        return a
    return BroadcastTo.apply(a, shape=shape)
