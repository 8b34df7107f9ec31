"""Softmax cross-entropy on the GPU (kernels in loss.cu).

The loss and the softmax are computed together because the gradient of the
pair is simply ``grad_loss * (probs - onehot(labels))``.  The label range is
checked by the caller (the differentiable op), not here.
"""
import cupy

from .loader import (
    check_shape,
    contiguous,
    contiguous_ids,
    float_dtype,
    get_kernel,
    index,
    launch_over_elements,
    launch_over_rows,
)

CUDA_FILE = "loss.cu"


def check_logits_and_labels(logits, labels):
    if logits.ndim != 2:
        raise ValueError(f"softmax cross-entropy expects logits (N, K), got {tuple(logits.shape)}")
    if logits.shape[1] == 0:
        raise ValueError("softmax cross-entropy needs at least one class, got logits with K = 0")
    check_shape("labels", labels, logits.shape[:1])


def softmax_cross_entropy_forward(logits, labels):
    """logits (N, K), labels (N,) int -> (loss (N,), probs (N, K))."""
    dtype = float_dtype(logits)
    logits = contiguous(logits)
    labels = contiguous_ids(labels)
    check_logits_and_labels(logits, labels)
    rows, classes = logits.shape
    loss = cupy.empty(rows, dtype=dtype)
    probs = cupy.empty((rows, classes), dtype=dtype)
    kernel = get_kernel(CUDA_FILE, "softmax_cross_entropy_forward", dtype)
    launch_over_rows(
        kernel, rows, classes, (logits, labels, loss, probs, index(rows), index(classes))
    )
    return loss, probs


def softmax_cross_entropy_backward(probs, labels, grad_loss):
    """grad_loss (N,) -> grad_logits (N, K) = grad_loss[:, None] * (probs - onehot(labels))."""
    dtype = float_dtype(probs)
    probs = contiguous(probs)
    labels = contiguous_ids(labels)
    grad_loss = contiguous(grad_loss, dtype)
    check_logits_and_labels(probs, labels)
    check_shape("grad_loss", grad_loss, probs.shape[:1])
    rows, classes = probs.shape
    grad_logits = cupy.empty((rows, classes), dtype=dtype)
    kernel = get_kernel(CUDA_FILE, "softmax_cross_entropy_backward", dtype)
    launch_over_elements(
        kernel, grad_logits.size,
        (probs, labels, grad_loss, grad_logits, index(rows), index(classes)),
    )
    return grad_logits
