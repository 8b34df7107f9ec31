"""tf.keras.activations: activation functions, by name through get()."""
from ..functional.activation import (elu, gelu, get_activation, leaky_relu, linear,  # noqa: F401
                                     log_softmax, relu, sigmoid, softmax, softplus, tanh)


def get(identifier):
    """An activation function from a name ('relu'), a function, or None (linear)."""
    return get_activation(identifier)


def serialize(activation):
    """The name of an activation function."""
    return activation.__name__


def deserialize(name):
    return get_activation(name)
