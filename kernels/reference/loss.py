"""Softmax cross-entropy in plain NumPy: the readable specification.

The loss and the softmax are computed together because the gradient of the
pair is simply ``probs - onehot(labels)``; computing them apart would cost a
second pass and lose that simplicity.
"""
import numpy as np


def softmax_cross_entropy_forward(logits, labels):
    """Per-row loss ``-log softmax(logits)[label]`` and the softmax itself.

    logits (N, K) float, labels (N,) int in [0, K) -> loss (N,), probs (N, K).
    """
    # Subtracting the row maximum changes nothing mathematically but keeps
    # every exponent <= 0, so exp never overflows even for logits of 1e4.
    shifted = logits - logits.max(axis=1, keepdims=True)
    exps = np.exp(shifted)
    sum_exps = exps.sum(axis=1, keepdims=True)
    probs = exps / sum_exps
    rows = np.arange(logits.shape[0])
    # -log(exp(s_label) / sum) = log(sum) - s_label: no log of a tiny probability.
    loss = np.log(sum_exps[:, 0]) - shifted[rows, labels]
    return loss, probs


def softmax_cross_entropy_backward(probs, labels, grad_loss):
    """Gradient of the per-row loss w.r.t. the logits: ``grad_loss * (probs - onehot)``."""
    grad_logits = probs * grad_loss[:, None].astype(probs.dtype)
    rows = np.arange(probs.shape[0])
    grad_logits[rows, labels] -= grad_loss.astype(probs.dtype)
    return grad_logits
