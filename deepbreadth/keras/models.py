"""tf.keras.models: Sequential, Model, load_model."""
from ..models import InputLayer, Model, Sequential, load_model, model_from_json  # noqa: F401
