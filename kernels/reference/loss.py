"""Softmax cross-entropy in plain NumPy: the readable specification.

The loss and the softmax are computed together because the gradient of the
pair is simply ``probs - onehot(labels)``; computing them apart would cost a
second pass and lose that simplicity.
"""
import numpy as np


def softmax_cross_entropy_forward(logits, labels):
    """Per-row loss ``-log softmax(logits)[label]`` and the softmax itself.

    logits (N, K) float, labels (N,) int -> loss (N,), probs (N, K).  A row
    whose label lies outside [0, K) gets a NaN loss (no class to pick): labels
    already on a GPU are not read back to be checked, so the kernels, not the
    caller, must say that a label was bad.
    """
    # Subtracting the row maximum changes nothing mathematically but keeps
    # every exponent <= 0, so exp never overflows even for logits of 1e4.
    shifted = logits - logits.max(axis=1, keepdims=True)
    exps = np.exp(shifted)
    sum_exps = exps.sum(axis=1, keepdims=True)
    probs = exps / sum_exps
    rows = np.arange(logits.shape[0])
    valid = (labels >= 0) & (labels < logits.shape[1])
    # -log(exp(s_label) / sum) = log(sum) - s_label: no log of a tiny probability.
    loss = np.log(sum_exps[:, 0]) - shifted[rows, np.where(valid, labels, 0)]
    loss[~valid] = np.nan
    return loss, probs


def softmax_cross_entropy_backward(probs, labels, grad_loss):
    """Gradient of the per-row loss w.r.t. the logits: ``grad_loss * (probs - onehot)``
    (a label outside [0, K) has no one-hot entry)."""
    grad_logits = probs * grad_loss[:, None].astype(probs.dtype)
    valid = (labels >= 0) & (labels < probs.shape[1])
    rows = np.arange(probs.shape[0])[valid]
    grad_logits[rows, labels[valid]] -= grad_loss[valid].astype(probs.dtype)
    return grad_logits
