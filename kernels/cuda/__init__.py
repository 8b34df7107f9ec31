"""The CUDA kernel set: CUDA C (.cu files in this folder) loaded through CuPy.

Same names and signatures as the other sets (docs/KERNELS.md), on CuPy arrays.
Importing this package imports CuPy but compiles nothing: each .cu file is
compiled on the first call of one of its kernels (see loader.py).
"""
from .conv import (
    conv1d_backward_input,
    conv1d_backward_kernel,
    conv1d_bias_activation_backward,
    conv1d_bias_activation_forward,
    conv1d_bias_activation_max_pool1d_backward,
    conv1d_bias_activation_max_pool1d_forward,
    conv1d_forward,
    conv2d_backward_input,
    conv2d_backward_kernel,
    conv2d_bias_activation_backward,
    conv2d_bias_activation_forward,
    conv2d_bias_activation_max_pool2d_backward,
    conv2d_bias_activation_max_pool2d_forward,
    conv2d_forward,
)
from .dense import dense_bias_activation_backward, dense_bias_activation_forward
from .elementwise import (
    bias_activation_backward,
    bias_activation_forward,
    dropout_backward,
    dropout_forward,
    embedding_backward,
    embedding_forward,
)
from .loss import softmax_cross_entropy_backward, softmax_cross_entropy_forward
from .optim import (adagrad_update, adam_update, adam_update_flat, adam_update_many,
                    rmsprop_update, sgd_update)
from .pool import (
    avg_pool1d_backward,
    avg_pool1d_forward,
    avg_pool2d_backward,
    avg_pool2d_forward,
    global_avg_pool_backward,
    global_avg_pool_forward,
    global_max_pool_backward,
    global_max_pool_forward,
    max_pool1d_backward,
    max_pool1d_forward,
    max_pool2d_backward,
    max_pool2d_forward,
)
from .rnn import (
    gru_backward,
    gru_forward,
    lstm_backward,
    lstm_forward,
    simple_rnn_backward,
    simple_rnn_forward,
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
