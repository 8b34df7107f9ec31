"""Embedding: integer ids -> learned vectors, one row of a (input_dim, output_dim) table."""
from ..autograd import Tensor
from ..functional.nn import embedding
from .base import Layer
from .core import errors_named_after, resolve_initializer, serialize_initializer


class Embedding(Layer):
    """Replace each id in [0, input_dim) by row `id` of the `embeddings` table.

    (batch, ...) integer ids -> (batch, ..., output_dim). With mask_zero=True,
    id 0 is padding: compute_mask marks where the ids are not 0.
    """

    def __init__(self, input_dim, output_dim, embeddings_initializer="uniform", mask_zero=False,
                 input_length=None, **kwargs):
        super().__init__(**kwargs)
        for argument, value in (("input_dim", input_dim), ("output_dim", output_dim)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"Embedding: {argument} must be a positive int, got {value!r}")
        self.input_dim = input_dim
        self.output_dim = output_dim
        # Keras's 'uniform' is RandomUniform(-0.05, 0.05).
        self.embeddings_initializer = resolve_initializer(embeddings_initializer)
        self.mask_zero = mask_zero
        self.input_length = input_length  # accepted for Keras 2 code; shapes come from data
        self.embeddings = None

    def build(self, input_shape):
        self.embeddings = self.add_weight("embeddings", (self.input_dim, self.output_dim),
                                          self.embeddings_initializer)

    def call(self, inputs):
        with errors_named_after(self):
            return embedding(self.embeddings, inputs)

    def compute_mask(self, inputs, mask=None):
        """True where an id is real (not the padding id 0); None without mask_zero."""
        if not self.mask_zero:
            return None
        ids = inputs.data if isinstance(inputs, Tensor) else inputs
        return Tensor._wrap(ids != 0)

    def get_config(self):
        return {
            **super().get_config(),
            "input_dim": self.input_dim,
            "output_dim": self.output_dim,
            "embeddings_initializer": serialize_initializer(self.embeddings_initializer),
            "mask_zero": self.mask_zero,
            "input_length": self.input_length,
        }
