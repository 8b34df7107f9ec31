"""Keras-style layers: `from deepbreadth.layers import Dense, LSTM, ...`."""
from .base import Input, Layer, SymbolicTensor
from .recurrent import GRU, LSTM, Bidirectional, SequenceInputError, SimpleRNN
