"""Softmax cross-entropy with integer labels, fused into one op.

`softmax(logits)` followed by `-log(p[label])` as two ops would store the
softmax, take the log of numbers that may underflow to zero, and chain two
backward passes. Fused, the forward computes the loss as
`logsumexp(logits) - logits[label]` (never the log of a tiny probability) and
the backward is simply `probs - onehot(labels)`: that is why the kernels
`softmax_cross_entropy_forward/backward` exist, and this op wraps them.

The checks that give a clear error for a bad label live here, in
`check_sparse_labels`, and are shared with the loss that reads probabilities
instead of logits.  The kernels do not read outside a row: a label outside the
classes gives its sample a NaN loss (what a training step sees when it leaves
labels unchecked; see `label_checks_deferred`).
"""
import contextlib
import threading

import numpy as np

from .. import backend
from ..autograd import Function, Tensor
from .shape import reshape


class SoftmaxCrossEntropy(Function):
    """Per-row `-log softmax(logits)[label]` for logits (N, K) and int labels (N,),
    or with mean=True their mean over the rows, in the same op.

    Why the mean is an option of this op rather than a Mean op after it: every
    training step with Keras' default reduction ends with that mean, and a
    second op costs a few microseconds forward and backward, as much as this
    op's kernels for a batch of 128 (W1: 15 us of a 0.85 ms step).
    """

    # The backward is a raw kernel, not Tensor ops: no second derivative.
    once_differentiable = True

    @staticmethod
    def forward(ctx, logits, labels, mean=False):
        loss, probs = backend.kernel("softmax_cross_entropy_forward", logits)(logits, labels)
        ctx.save_for_backward(probs, labels)
        ctx.mean = mean
        if mean:
            # sum / count: NumPy's own mean() adds several microseconds of Python.
            return loss.sum() / max(len(loss), 1)
        return loss

    @staticmethod
    def backward(ctx, grad_loss):
        probs, labels = ctx.saved_tensors
        grad_loss = grad_loss.data
        if ctx.mean:
            # d mean / d loss_i = 1 / N for every row.
            xp = backend.array_module(probs.data)
            grad_loss = xp.full(len(labels.data), grad_loss / max(len(labels.data), 1),
                                dtype=probs.dtype)
        grad_logits = backend.kernel("softmax_cross_entropy_backward", probs.data)(
            probs.data, labels.data, grad_loss)
        # Wrapped here: a bare array would be sent to its device again by the engine.
        return Tensor._wrap(grad_logits), None  # labels are class indices: no gradient


def softmax_cross_entropy(logits, labels, mean=False):
    """`-log softmax(logits)[label]` along the last axis, per position.

    logits (..., K) float Tensor; labels (...) integer class indices in [0, K)
    (NumPy array or Tensor) -> loss (...). Any leading shape works, so
    sequence outputs (batch, time, K) with labels (batch, time) need no reshape.
    mean=True returns the mean over every position instead, in the same op.
    """
    values = labels.data if isinstance(labels, Tensor) else labels
    # The array's own .shape: np.shape(cupy_array) would be handed over to CuPy.
    labels_shape = tuple(values.shape) if hasattr(values, "shape") else np.shape(values)
    if labels_shape != logits.shape[:-1]:
        raise ValueError(
            f"softmax_cross_entropy: labels of shape {labels_shape} do not match "
            f"logits of shape {tuple(logits.shape)}; labels need the logits' shape "
            "without its last (class) axis"
        )
    labels = check_sparse_labels(labels, logits.shape[-1], on_device_of=logits.data,
                                 check_range=not _label_checks.deferred)
    if logits.ndim == 2:  # already rows: no reshape ops to record and run backward
        return SoftmaxCrossEntropy.apply(logits, Tensor._wrap(labels), mean=mean)
    leading_shape = logits.shape[:-1]
    # The kernels work on rows: flatten every leading axis into one.
    rows = reshape(logits, (-1, logits.shape[-1]))
    flat_labels = Tensor._wrap(labels.reshape(-1))
    loss = SoftmaxCrossEntropy.apply(rows, flat_labels, mean=mean)
    return loss if mean else reshape(loss, leading_shape)


class OneHot(Function):
    """Rows of 0s with a 1 at each label's class, from integer labels (...) -> (..., classes).

    No gradient: class indices have none (`differentiable = False`).  The
    labels are checked here, in the op, so that a replayed training step
    (deepbreadth/replay.py), which runs the ops and nothing around them,
    checks them too.
    """
    differentiable = False

    @staticmethod
    def forward(ctx, labels, classes, dtype):
        labels = check_sparse_labels(labels, classes)
        xp = backend.array_module(labels)
        return (labels[..., None] == xp.arange(classes)).astype(dtype)


def one_hot(labels, classes, dtype):
    """OneHot of `labels` (an array or Tensor of class indices) as a `dtype` Tensor."""
    values = labels if isinstance(labels, Tensor) else Tensor._wrap(labels)
    return OneHot.apply(values, classes=classes, dtype=np.dtype(dtype))


class _LabelChecks(threading.local):
    deferred = False


_label_checks = _LabelChecks()


@contextlib.contextmanager
def label_checks_deferred():
    """Within this block the fused sparse cross-entropy does not check that the
    labels lie in [0, classes) before the loss.  For labels already on the GPU
    the check would read a number back, which waits for everything queued
    before it: the CPU would idle until the GPU had run the forward pass,
    instead of queueing the backward meanwhile.  On the CPU it costs a few
    microseconds, as much as the loss's own kernel for a batch of 128.  A bad
    label still shows: the kernels give its sample a NaN loss.  Model's train
    and test steps use this block; they read the loss anyway, and when it is
    not finite they ask the loss to explain itself
    (SparseCategoricalCrossentropy.explain_non_finite reads the labels then and
    names the bad one).  Labels that are not whole numbers are refused before
    the loss either way.
    """
    previous = _label_checks.deferred
    _label_checks.deferred = True
    try:
        yield
    finally:
        _label_checks.deferred = previous


def check_sparse_labels(labels, num_classes, on_device_of=None, check_range=True):
    """Integer class labels as an int64 array, or a clear error.

    Accepts integer arrays and floats that are whole numbers (Keras does too:
    labels are often stored as float32). Raises ValueError naming the first
    bad value and its position when a label is not a whole number or lies
    outside [0, num_classes). The array is moved to the device of
    `on_device_of` when given.

    The labels are checked where they are, before they move: NumPy labels on
    their way to the GPU cost no device work and no wait for the device, and
    integer labels already on the GPU one reduction and one read.  That read
    waits for all the work queued before it (the whole forward pass, when the
    loss asks); with check_range=False the range check is skipped, on
    either device, and the loss kernels give a sample with a bad label a NaN
    loss instead (see label_checks_deferred).
    """
    if isinstance(labels, Tensor):
        labels = labels.data
    if not backend.is_gpu_array(labels):
        labels = np.asarray(labels)
    if labels.dtype.kind == "f":
        labels = _whole_float_labels_as_int(labels, backend.array_module(labels))
    elif labels.dtype.kind not in "iub":
        raise ValueError(
            f"sparse labels must be integer class indices, got dtype {labels.dtype}"
        )
    if labels.dtype != np.int64:
        labels = labels.astype(np.int64)
    if check_range and _some_label_outside(labels, num_classes):
        outside = (labels < 0) | (labels >= num_classes)
        position, value = _first_flagged(labels, outside)
        raise ValueError(
            f"label {value} at position {position} is outside [0, {num_classes}): the "
            f"predictions have {num_classes} classes. Labels must be class indices "
            f"0..{num_classes - 1}; if your labels start at 1, subtract 1, and if there "
            "are more classes, give the last layer more units"
        )
    if on_device_of is not None:
        labels = backend.to_device(labels, backend.device_of(on_device_of))
    return labels


def _some_label_outside(labels, num_classes):
    """Whether an int64 label lies outside [0, num_classes), found with one reduction.

    Read as unsigned 64-bit numbers, negative labels become 2**63 or more, so
    the largest unsigned value is below num_classes exactly when every label
    is in range: one max (and, on the GPU, one read of it) instead of two
    comparisons, an `or` and an `any`.
    """
    if labels.size == 0:
        return False
    return int(labels.view(np.uint64).max()) >= num_classes


def _whole_float_labels_as_int(labels, xp):
    not_whole = ~xp.isfinite(labels) | (labels != xp.rint(labels))
    if bool(not_whole.any()):
        position, value = _first_flagged(labels, not_whole)
        raise ValueError(
            f"sparse labels must be whole numbers (class indices), but label {value} at "
            f"position {position} is not. For one-hot or soft targets use "
            "categorical_crossentropy instead"
        )
    return labels.astype(np.int64)


def _first_flagged(values, flags):
    """The position (a tuple) and value of the first True in `flags`, for an error message."""
    flat_index = int(backend.to_device(flags.reshape(-1), "cpu").argmax())
    position = tuple(int(i) for i in np.unravel_index(flat_index, flags.shape))
    value = backend.to_device(values.reshape(-1)[flat_index:flat_index + 1], "cpu")[0].item()
    return position if len(position) > 1 else position[0], value
