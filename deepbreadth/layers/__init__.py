"""Keras-style layers: `from deepbreadth.layers import Dense, LSTM, ...`."""
from .base import Input, Layer, SymbolicTensor
