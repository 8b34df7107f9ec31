"""tf.nn: the activation and loss functions code written for TensorFlow calls."""
from ..functional import (elu, gelu, leaky_relu, log_softmax, relu, sigmoid, softmax,  # noqa: F401
                          softplus, tanh)
from ..functional.loss import softmax_cross_entropy


def sparse_softmax_cross_entropy_with_logits(labels, logits):
    """Per-example cross-entropy of integer labels against logits (tf.nn's name)."""
    return softmax_cross_entropy(logits, labels)
