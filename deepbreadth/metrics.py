"""Metrics: numbers that say how well the model does, accumulated over batches.

A metric object keeps running totals: `update_state(y_true, y_pred)` adds a
batch, `result()` gives the value so far (a float), `reset_state()` starts
over (fit does this at every epoch). Most metrics are the weighted mean of a
per-sample value, such as "was this sample's top class the right one", so
they are `MeanMetricWrapper`s of a per-sample function with the Keras name.

Metrics only measure: they work on NumPy arrays and record no gradients.
Tensors are accepted and converted.
"""
import re

import numpy as np

from . import backend
from . import losses as losses_module
from .autograd import Tensor, no_grad
from .functional.loss import check_sparse_labels


def _to_numpy(value):
    if isinstance(value, Tensor):
        return value.numpy()
    if backend.is_gpu_array(value):
        return backend.to_device(value, "cpu")
    return np.asarray(value)


def _snake_case(name):
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name).lower()


# ----------------------------------------------------------------------------
# Base classes
# ----------------------------------------------------------------------------
class Metric:
    """Base class: `update_state(...)`, `result() -> float`, `reset_state()`."""

    def __init__(self, name=None, dtype=None):
        self.name = name or _snake_case(type(self).__name__)
        self.dtype = dtype

    def update_state(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} must define update_state")

    def result(self):
        raise NotImplementedError(f"{type(self).__name__} must define result")

    def reset_state(self):
        raise NotImplementedError(f"{type(self).__name__} must define reset_state")

    def __call__(self, *args, **kwargs):
        """Add a batch and return the result so far, as Keras does."""
        self.update_state(*args, **kwargs)
        return self.result()

    def get_config(self):
        return {"name": self.name}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name!r} result={self.result():.6g}>"


class Mean(Metric):
    """The (weighted) mean of every value given since the last reset."""

    def __init__(self, name="mean", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.reset_state()

    def reset_state(self):
        self.total = 0.0
        self.count = 0.0

    def update_state(self, values, sample_weight=None):
        if isinstance(values, float) and isinstance(sample_weight, (int, float)):
            # One number with one weight: a batch's loss, weighted by the batch
            # size, after every training step. Plain float arithmetic, the same
            # float64 sums as the array path below, at a tenth of its cost.
            self.total += values * sample_weight
            self.count += float(sample_weight)
            return
        values = _to_numpy(values).astype(np.float64)
        if sample_weight is None:
            self.total += float(values.sum())
            self.count += values.size
            return
        weights = _weights_like(_to_numpy(sample_weight).astype(np.float64), values)
        self.total += float((values * weights).sum())
        self.count += float(weights.sum())

    def result(self):
        # Nothing seen yet reads as 0, as in Keras, rather than 0/0.
        return self.total / self.count if self.count else 0.0


def _weights_like(weights, values):
    """Per-sample weights spread over the values' shape: (N,) weights for (N, T) values."""
    while weights.ndim > values.ndim and weights.shape[-1] == 1:
        weights = weights[..., 0]
    while weights.ndim < values.ndim:
        weights = weights[..., None]
    try:
        return np.broadcast_to(weights, values.shape)
    except ValueError:
        raise ValueError(
            f"sample_weight of shape {weights.shape} does not fit values of shape "
            f"{values.shape}; give one weight per sample"
        ) from None


class MeanMetricWrapper(Mean):
    """The mean of `fn(y_true, y_pred, **kwargs)`, a per-sample metric function."""

    def __init__(self, fn, name=None, dtype=None, **kwargs):
        self.fn = fn
        self._fn_kwargs = kwargs
        super().__init__(name=name or getattr(fn, "__name__", "mean_metric"), dtype=dtype)

    def update_state(self, y_true, y_pred, sample_weight=None):
        # Tensors in, as in Keras: a metric function written with deepbreadth
        # ops works; the built-in ones turn them into NumPy arrays.
        with no_grad():
            values = self.fn(_as_constant(y_true), _as_constant(y_pred), **self._fn_kwargs)
        super().update_state(values, sample_weight)

    def get_config(self):
        return {**super().get_config(), **self._fn_kwargs}


def _as_constant(value):
    return value.detach() if isinstance(value, Tensor) else Tensor(value)


# ----------------------------------------------------------------------------
# Per-sample metric functions (Keras names); NumPy in, NumPy out
# ----------------------------------------------------------------------------
def _aligned(y_true, y_pred, metric_name):
    """NumPy y_true and y_pred of one shape; (N,) against (N, 1) is lined up, 1-D becomes (N, 1)."""
    y_true, y_pred = _to_numpy(y_true), _to_numpy(y_pred)
    if y_pred.ndim == 1:
        y_pred = y_pred[:, None]
    if y_true.ndim == y_pred.ndim - 1 and y_pred.shape[-1] == 1:
        y_true = y_true[..., None]
    if y_true.shape != y_pred.shape:
        raise ValueError(
            f"{metric_name}: y_true has shape {y_true.shape} but y_pred has shape {y_pred.shape}"
        )
    return y_true, y_pred


def _class_labels(y_true, y_pred, metric_name):
    """Sparse labels shaped like y_pred without its class axis; (N, 1) becomes (N,)."""
    y_true, y_pred = _to_numpy(y_true), _to_numpy(y_pred)
    expected = y_pred.shape[:-1]
    if y_true.shape == expected + (1,):
        y_true = y_true.reshape(expected)
    if y_true.shape != expected:
        hint = (" These look like one-hot labels: use categorical accuracy."
                if y_true.shape == y_pred.shape else "")
        raise ValueError(
            f"{metric_name} expects integer labels of shape {expected}, got y_true of shape "
            f"{y_true.shape} for y_pred of shape {y_pred.shape}.{hint}"
        )
    return y_true, y_pred


def _one_hot_pair(y_true, y_pred, metric_name):
    y_true, y_pred = _to_numpy(y_true), _to_numpy(y_pred)
    if y_true.shape != y_pred.shape:
        hint = (" These look like integer labels: use sparse categorical accuracy."
                if y_true.shape in (y_pred.shape[:-1], y_pred.shape[:-1] + (1,)) else "")
        raise ValueError(
            f"{metric_name} expects one-hot labels of shape {y_pred.shape}, got y_true of "
            f"shape {y_true.shape}.{hint}"
        )
    return y_true, y_pred


def sparse_categorical_accuracy(y_true, y_pred):
    """1 where the highest-scoring class is the integer label, else 0."""
    labels, y_pred = _class_labels(y_true, y_pred, "sparse_categorical_accuracy")
    return (y_pred.argmax(axis=-1) == labels).astype(np.float32)


def categorical_accuracy(y_true, y_pred):
    """1 where the highest-scoring class is the one-hot label's class, else 0."""
    y_true, y_pred = _one_hot_pair(y_true, y_pred, "categorical_accuracy")
    return (y_pred.argmax(axis=-1) == y_true.argmax(axis=-1)).astype(np.float32)


def binary_accuracy(y_true, y_pred, threshold=0.5):
    """The fraction of outputs on the right side of `threshold`, per sample."""
    y_true, y_pred = _aligned(y_true, y_pred, "binary_accuracy")
    predicted = (y_pred > threshold).astype(y_true.dtype)
    return (predicted == y_true).mean(axis=-1, dtype=np.float32)


def sparse_top_k_categorical_accuracy(y_true, y_pred, k=5):
    """1 where the integer label is among the `k` highest-scoring classes, else 0."""
    labels, y_pred = _class_labels(y_true, y_pred, "sparse_top_k_categorical_accuracy")
    labels = check_sparse_labels(labels, y_pred.shape[-1])
    label_scores = np.take_along_axis(y_pred, labels[..., None], axis=-1)
    # Counting the classes that beat the label's score treats ties kindly: a
    # label tied at the k-th place counts as in the top k.
    higher = (y_pred > label_scores).sum(axis=-1)
    return (higher < k).astype(np.float32)


def top_k_categorical_accuracy(y_true, y_pred, k=5):
    """1 where the one-hot label's class is among the `k` highest-scoring, else 0."""
    y_true, y_pred = _one_hot_pair(y_true, y_pred, "top_k_categorical_accuracy")
    return sparse_top_k_categorical_accuracy(y_true.argmax(axis=-1), y_pred, k)


def mean_absolute_error(y_true, y_pred):
    y_true, y_pred = _aligned(y_true, y_pred, "mean_absolute_error")
    return np.abs(y_pred - y_true).mean(axis=-1)


def mean_squared_error(y_true, y_pred):
    y_true, y_pred = _aligned(y_true, y_pred, "mean_squared_error")
    return ((y_pred - y_true) ** 2).mean(axis=-1)


def _accuracy_chosen_by_shape(y_true, y_pred):
    """'accuracy' when the loss does not say which kind: Keras's rule, from the shapes.

    One output per sample: binary. Labels with one axis fewer than the
    predictions, or a last axis of 1: sparse. Otherwise one-hot: categorical.
    """
    y_true, y_pred = _to_numpy(y_true), _to_numpy(y_pred)
    if y_pred.ndim == 1 or y_pred.shape[-1] == 1:
        return binary_accuracy(y_true, y_pred)
    if y_true.ndim == y_pred.ndim - 1 or y_true.shape[-1] == 1:
        return sparse_categorical_accuracy(y_true, y_pred)
    return categorical_accuracy(y_true, y_pred)


# ----------------------------------------------------------------------------
# Metric classes
# ----------------------------------------------------------------------------
class SparseCategoricalAccuracy(MeanMetricWrapper):
    def __init__(self, name="sparse_categorical_accuracy", dtype=None):
        super().__init__(sparse_categorical_accuracy, name=name, dtype=dtype)


class CategoricalAccuracy(MeanMetricWrapper):
    def __init__(self, name="categorical_accuracy", dtype=None):
        super().__init__(categorical_accuracy, name=name, dtype=dtype)


class BinaryAccuracy(MeanMetricWrapper):
    def __init__(self, name="binary_accuracy", dtype=None, threshold=0.5):
        super().__init__(binary_accuracy, name=name, dtype=dtype, threshold=threshold)


class TopKCategoricalAccuracy(MeanMetricWrapper):
    def __init__(self, k=5, name="top_k_categorical_accuracy", dtype=None):
        super().__init__(top_k_categorical_accuracy, name=name, dtype=dtype, k=k)


class SparseTopKCategoricalAccuracy(MeanMetricWrapper):
    def __init__(self, k=5, name="sparse_top_k_categorical_accuracy", dtype=None):
        super().__init__(sparse_top_k_categorical_accuracy, name=name, dtype=dtype, k=k)


class MeanAbsoluteError(MeanMetricWrapper):
    def __init__(self, name="mean_absolute_error", dtype=None):
        super().__init__(mean_absolute_error, name=name, dtype=dtype)


class MeanSquaredError(MeanMetricWrapper):
    def __init__(self, name="mean_squared_error", dtype=None):
        super().__init__(mean_squared_error, name=name, dtype=dtype)


# ----------------------------------------------------------------------------
# Looking metrics up by name
# ----------------------------------------------------------------------------
_METRIC_CLASSES_BY_NAME = {
    "sparse_categorical_accuracy": SparseCategoricalAccuracy,
    "categorical_accuracy": CategoricalAccuracy,
    "binary_accuracy": BinaryAccuracy,
    "top_k_categorical_accuracy": TopKCategoricalAccuracy,
    "sparse_top_k_categorical_accuracy": SparseTopKCategoricalAccuracy,
    "mean_absolute_error": MeanAbsoluteError,
    "mae": MeanAbsoluteError,
    "mean_squared_error": MeanSquaredError,
    "mse": MeanSquaredError,
    "mean": Mean,
}
_METRIC_NAMES = sorted(_METRIC_CLASSES_BY_NAME) + ["accuracy"]
_METRIC_CLASSES_BY_NAME.update(
    {cls.__name__.lower(): cls for cls in set(_METRIC_CLASSES_BY_NAME.values())})


def get(identifier, loss=None):
    """A Metric from a name, a Metric (returned as it is), a Metric class or a
    function fn(y_true, y_pred) returning per-sample values.

    'accuracy' (or 'acc') becomes the accuracy that fits `loss`, as Keras
    decides it: sparse categorical crossentropy -> sparse categorical accuracy,
    binary crossentropy -> binary accuracy, categorical crossentropy ->
    categorical accuracy; for any other loss the shapes decide at the first
    batch. The metric keeps the name given ('accuracy'), so the history
    shows what was asked for. A loss name ('binary_crossentropy') gives the
    mean of that loss.
    """
    if identifier is None or isinstance(identifier, Metric):
        return identifier
    if isinstance(identifier, str):
        if identifier.lower() in ("accuracy", "acc"):
            return _accuracy_for(loss, name=identifier)
        cls = _METRIC_CLASSES_BY_NAME.get(identifier.lower())
        if cls is not None:
            return cls(name=identifier)
        try:
            loss_object = losses_module.get(identifier)
        except ValueError:
            raise ValueError(
                f"unknown metric {identifier!r}; use one of {_METRIC_NAMES}, a loss name, a "
                "Metric object or a function fn(y_true, y_pred)"
            ) from None
        return MeanMetricWrapper(loss_object.call, name=identifier)
    if isinstance(identifier, type) and issubclass(identifier, Metric):
        return identifier()
    if callable(identifier):
        return MeanMetricWrapper(identifier)
    raise TypeError(
        f"cannot interpret {identifier!r} as a metric; give a name such as 'accuracy', a "
        "Metric object, or a function fn(y_true, y_pred)"
    )


def _accuracy_for(loss, name):
    try:
        loss = losses_module.get(loss)
    except (TypeError, ValueError, KeyError):
        loss = None  # several outputs' losses, or a custom one: let the shapes decide
    if isinstance(loss, losses_module.SparseCategoricalCrossentropy):
        return SparseCategoricalAccuracy(name=name)
    if isinstance(loss, losses_module.CategoricalCrossentropy):
        return CategoricalAccuracy(name=name)
    if isinstance(loss, losses_module.BinaryCrossentropy):
        # Logits are on the positive side at 0, not at 0.5: a sigmoid of 0 is 0.5.
        return BinaryAccuracy(name=name, threshold=0.0 if loss.from_logits else 0.5)
    return MeanMetricWrapper(_accuracy_chosen_by_shape, name=name)


def serialize(metric):
    """A dict {'class_name', 'config'} from which `deserialize` rebuilds the metric."""
    return {"class_name": type(metric).__name__, "config": metric.get_config()}


def deserialize(config, custom_objects=None):
    """The metric described by `serialize`'s dict; `custom_objects` maps the names
    of your own Metric classes to them."""
    class_name = config["class_name"]
    cls = (custom_objects or {}).get(class_name) or _METRIC_CLASSES_BY_NAME.get(class_name.lower())
    if cls is None:
        raise ValueError(
            f"unknown metric {class_name!r}; pass custom_objects={{{class_name!r}: {class_name}}}"
        )
    return cls.from_config(config["config"])
