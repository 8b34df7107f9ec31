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
labels on the GPU unchecked; see `device_label_checks_deferred`).
"""
import contextlib
import threading

import numpy as np

from .. import backend
from ..autograd import Function, Tensor
from .shape import reshape


class SoftmaxCrossEntropy(Function):
    """Per-row `-log softmax(logits)[label]` for logits (N, K) and int labels (N,)."""

    # The backward is a raw kernel, not Tensor ops: no second derivative.
    once_differentiable = True

    @staticmethod
    def forward(ctx, logits, labels):
        loss, probs = backend.kernel("softmax_cross_entropy_forward", logits)(logits, labels)
        ctx.save_for_backward(probs, labels)
        return loss

    @staticmethod
    def backward(ctx, grad_loss):
        probs, labels = ctx.saved_tensors
        grad_logits = backend.kernel("softmax_cross_entropy_backward", probs.data)(
            probs.data, labels.data, grad_loss.data)
        # Wrapped here: a bare array would be sent to its device again by the engine.
        return Tensor._wrap(grad_logits), None  # labels are class indices: no gradient


def softmax_cross_entropy(logits, labels):
    """`-log softmax(logits)[label]` along the last axis, per position.

    logits (..., K) float Tensor; labels (...) integer class indices in [0, K)
    (NumPy array or Tensor) -> loss (...). Any leading shape works, so
    sequence outputs (batch, time, K) with labels (batch, time) need no reshape.
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
                                 read_device_labels=not _device_label_checks.deferred)
    if logits.ndim == 2:  # already rows: no reshape ops to record and run backward
        return SoftmaxCrossEntropy.apply(logits, Tensor._wrap(labels))
    leading_shape = logits.shape[:-1]
    # The kernels work on rows: flatten every leading axis into one.
    rows = reshape(logits, (-1, logits.shape[-1]))
    flat_labels = Tensor._wrap(labels.reshape(-1))
    loss = SoftmaxCrossEntropy.apply(rows, flat_labels)
    return reshape(loss, leading_shape)


class _DeviceLabelChecks(threading.local):
    deferred = False


_device_label_checks = _DeviceLabelChecks()


@contextlib.contextmanager
def device_label_checks_deferred():
    """Within this block the fused sparse cross-entropy does not read labels that are
    already on the GPU back to check them: reading one number waits for everything
    queued before it, so the CPU would idle until the GPU had run the forward pass,
    instead of queueing the backward meanwhile.  A bad label still shows: the
    kernels give its sample a NaN loss.  Model's train and test steps use this
    block; they read the loss anyway, and when it is not finite they ask the loss
    to explain itself (SparseCategoricalCrossentropy.explain_non_finite reads the
    labels then and names the bad one).
    """
    previous = _device_label_checks.deferred
    _device_label_checks.deferred = True
    try:
        yield
    finally:
        _device_label_checks.deferred = previous


def check_sparse_labels(labels, num_classes, on_device_of=None, read_device_labels=True):
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
    loss asks); with read_device_labels=False it is skipped, and the loss
    kernels give a sample with a bad label a NaN loss instead (see
    device_label_checks_deferred).
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
    checked_here = read_device_labels or not backend.is_gpu_array(labels)
    if checked_here and _some_label_outside(labels, num_classes):
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
