"""Small helpers Keras keeps in keras.utils: one-hot labels, normalizing, seeding."""
import numpy as np

from . import backend


def to_categorical(y, num_classes=None, dtype="float32"):
    """Integer class labels -> one-hot rows: to_categorical([0, 2], 3) -> [[1,0,0], [0,0,1]].

    The output has y's shape plus a last axis of `num_classes` (a trailing
    axis of size 1 is dropped first, as in Keras). Without `num_classes`, it
    is the largest label + 1.
    """
    y = np.asarray(y)
    if y.ndim > 1 and y.shape[-1] == 1:
        y = y[..., 0]
    if y.dtype.kind == "f":
        if not np.all(np.isfinite(y)) or np.any(y != np.round(y)):
            raise ValueError(
                "to_categorical needs whole-number class labels, got non-integer values")
        y = y.astype(np.int64)
    elif y.dtype.kind not in "iub":
        raise TypeError(f"to_categorical needs integer class labels, got dtype {y.dtype}")
    if y.size and y.min() < 0:
        index = tuple(int(i) for i in np.argwhere(y < 0)[0])
        raise ValueError(f"to_categorical: labels must be >= 0, got {y[index]} at index {index}")
    if num_classes is None:
        num_classes = int(y.max()) + 1 if y.size else 0
    elif y.size and y.max() >= num_classes:
        index = tuple(int(i) for i in np.argwhere(y >= num_classes)[0])
        raise ValueError(
            f"to_categorical: label {y[index]} at index {index} is not below num_classes="
            f"{num_classes}; labels must lie in [0, num_classes)"
        )
    one_hot = np.zeros(y.shape + (num_classes,), dtype=dtype)
    np.put_along_axis(one_hot, y[..., None].astype(np.intp), 1, axis=-1)
    return one_hot


def normalize(x, axis=-1, order=2):
    """x divided by its `order`-norm along `axis` (rows of norm 0 stay 0)."""
    x = np.asarray(x)
    norms = np.linalg.norm(x, ord=order, axis=axis, keepdims=True)
    return x / np.where(norms == 0, 1, norms)


def set_random_seed(seed):
    """Seed every random source deepbreadth uses (Keras's keras.utils.set_random_seed)."""
    backend.set_seed(seed)
