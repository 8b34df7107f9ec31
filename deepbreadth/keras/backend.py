"""tf.keras.backend: the default float type and clear_session."""
from ..backend import floatx, set_floatx  # noqa: F401
from ..layers import base as _layer_base


def clear_session():
    """Start layer names afresh ('dense', not 'dense_7'), as Keras's clear_session does.

    There is no graph or session to free here: models are ordinary Python
    objects that go away with their last reference.
    """
    _layer_base._layer_name_counts.clear()


def epsilon():
    """The small number Keras adds to avoid dividing by zero."""
    return 1e-7
