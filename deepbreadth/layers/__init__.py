"""Keras-style layers: `from deepbreadth.layers import Dense, LSTM, ...`."""
from .base import Input, Layer, SymbolicTensor
from .recurrent import GRU, LSTM, Bidirectional, SequenceInputError, SimpleRNN
from .core import Activation, Dropout, Flatten, Reshape
from .dense import Dense
from .conv import Conv1D, Conv2D, Convolution1D, Convolution2D
from .pooling import (AveragePooling1D, AveragePooling2D, AvgPool1D, AvgPool2D,
                      GlobalAveragePooling1D, GlobalAveragePooling2D, GlobalAvgPool1D,
                      GlobalAvgPool2D, GlobalMaxPool1D, GlobalMaxPool2D, GlobalMaxPooling1D,
                      GlobalMaxPooling2D, MaxPool1D, MaxPool2D, MaxPooling1D, MaxPooling2D)
from .normalization import BatchNormalization
from .embedding import Embedding
from .merge import Add, Average, Concatenate, Maximum, Minimum, Multiply, Subtract
from .activations import ELU, LeakyReLU, ReLU, Softmax
