"""The CPU kernel set: Numba-compiled loops with the reference set's signatures.

Importing this package compiles nothing: each kernel is compiled on its first
call (and cached on disk), so that importing deepbreadth stays fast.
"""
# How the kernels use threads (deepbreadth.kernel_threads enters its BLAS guard).
from . import threads  # noqa: F401
from .conv import (
    conv2d_forward,
    conv2d_backward_input,
    conv2d_backward_kernel,
    conv1d_forward,
    conv1d_backward_input,
    conv1d_backward_kernel,
    conv2d_bias_activation_forward,
    conv2d_bias_activation_backward,
    conv1d_bias_activation_forward,
    conv1d_bias_activation_backward,
    conv2d_bias_activation_max_pool2d_forward,
    conv2d_bias_activation_max_pool2d_backward,
    conv1d_bias_activation_max_pool1d_forward,
    conv1d_bias_activation_max_pool1d_backward,
)
from .pool import (
    max_pool2d_forward,
    max_pool2d_backward,
    avg_pool2d_forward,
    avg_pool2d_backward,
    max_pool1d_forward,
    max_pool1d_backward,
    avg_pool1d_forward,
    avg_pool1d_backward,
    global_avg_pool_forward,
    global_avg_pool_backward,
    global_max_pool_forward,
    global_max_pool_backward,
)
from .rnn import (
    simple_rnn_forward,
    simple_rnn_backward,
    lstm_forward,
    lstm_backward,
    gru_forward,
    gru_backward,
)
from .loss import (
    softmax_cross_entropy_forward,
    softmax_cross_entropy_backward,
)
from .dense import (
    dense_bias_activation_forward,
    dense_bias_activation_backward,
)
from .elementwise import (
    dropout_forward,
    dropout_backward,
    bias_activation_forward,
    bias_activation_backward,
    embedding_forward,
    embedding_backward,
)
from .optim import (
    sgd_update,
    adam_update,
    adam_update_many,
    adam_update_flat,
    rmsprop_update,
    adagrad_update,
)

__all__ = [
    # conv
    "conv2d_forward",
    "conv2d_backward_input",
    "conv2d_backward_kernel",
    "conv1d_forward",
    "conv1d_backward_input",
    "conv1d_backward_kernel",
    "conv2d_bias_activation_forward",
    "conv2d_bias_activation_backward",
    "conv1d_bias_activation_forward",
    "conv1d_bias_activation_backward",
    "conv2d_bias_activation_max_pool2d_forward",
    "conv2d_bias_activation_max_pool2d_backward",
    "conv1d_bias_activation_max_pool1d_forward",
    "conv1d_bias_activation_max_pool1d_backward",
    # pool
    "max_pool2d_forward",
    "max_pool2d_backward",
    "avg_pool2d_forward",
    "avg_pool2d_backward",
    "max_pool1d_forward",
    "max_pool1d_backward",
    "avg_pool1d_forward",
    "avg_pool1d_backward",
    "global_avg_pool_forward",
    "global_avg_pool_backward",
    "global_max_pool_forward",
    "global_max_pool_backward",
    # rnn
    "simple_rnn_forward",
    "simple_rnn_backward",
    "lstm_forward",
    "lstm_backward",
    "gru_forward",
    "gru_backward",
    # loss
    "softmax_cross_entropy_forward",
    "softmax_cross_entropy_backward",
    # dense
    "dense_bias_activation_forward",
    "dense_bias_activation_backward",
    # elementwise
    "dropout_forward",
    "dropout_backward",
    "bias_activation_forward",
    "bias_activation_backward",
    "embedding_forward",
    "embedding_backward",
    # optim
    "sgd_update",
    "adam_update",
    "adam_update_many",
    "adam_update_flat",
    "rmsprop_update",
    "adagrad_update",
]
