"""Losses: one number that says how wrong the predictions are, to be minimised.

Two ways to use each loss, as in Keras:

- a function with the Keras name, `mean_squared_error(y_true, y_pred)`, that
  returns one loss per sample (the last axis is averaged or summed away);
- a class, `MeanSquaredError()`, whose call `loss(y_true, y_pred, sample_weight)`
  weights the per-sample losses and reduces them to one scalar Tensor. The
  default reduction, 'sum_over_batch_size', is the mean over every sample.

`y_true` may be a NumPy array or a Tensor, `y_pred` is a Tensor (the model's
output). The crossentropies check their labels and say what is wrong, and
notice when raw scores (logits) arrive where probabilities were expected:
they warn once (a `LogitsWarning`) and read those values as logits, so that
training still works.
"""
import re
import warnings

import numpy as np

from . import backend
from .autograd import Tensor, as_tensor
from .functional import (abs, clip, expand_dims, log, log_softmax, mean, softplus, squeeze, sum,
                         where)
from .functional.loss import check_sparse_labels, one_hot, softmax_cross_entropy

# Keras's backend.epsilon(): probabilities are clipped to [EPSILON, 1 - EPSILON]
# before their log is taken, so a confident wrong answer costs a large but
# finite loss instead of infinity.
EPSILON = 1e-7

# How far a row of "probabilities" may sum from 1 before we call it logits.
# A float32 softmax is off by about 1e-7; logits that happen to sum to 1 this
# closely are practically never seen.
PROBABILITY_SUM_TOLERANCE = 1e-3

REDUCTIONS = ("sum_over_batch_size", "sum", "mean", "mean_with_sample_weight", "none", None)


class LogitsWarning(UserWarning):
    """Raw scores (logits) were given to a loss that expects probabilities."""


# ----------------------------------------------------------------------------
# Turning y_true and y_pred into Tensors of matching shape
# ----------------------------------------------------------------------------
def _as_prediction(y_pred):
    """y_pred as a floating Tensor (integer predictions make no sense to differentiate)."""
    y_pred = as_tensor(y_pred)
    if y_pred.dtype.kind != "f":
        y_pred = y_pred.astype(backend.floatx())
    if y_pred.ndim == 0:
        raise ValueError("y_pred is a scalar; a loss needs one prediction per sample, shape (batch, ...)")
    return y_pred


def _as_target(y_true, like):
    """y_true as a Tensor with `like`'s float dtype, on its device.

    A Tensor keeps its graph (a target may itself be computed, as in
    distillation); anything else becomes a constant.
    """
    if isinstance(y_true, Tensor):
        if y_true.device != like.device:
            y_true = y_true.to(like.device)
        return y_true if y_true.dtype == like.dtype else y_true.astype(like.dtype)
    array = backend.to_device(y_true if backend.is_gpu_array(y_true) else np.asarray(y_true),
                              like.device)
    return Tensor._wrap(backend.array_module(array).asarray(array, dtype=like.dtype))


def _check_same_batch(y_true_shape, y_pred_shape, loss_name):
    if len(y_true_shape) == 0:
        raise ValueError(f"{loss_name}: y_true is a scalar; give one target per sample")
    if y_true_shape[0] != y_pred_shape[0]:
        raise ValueError(
            f"{loss_name}: y_true has {y_true_shape[0]} samples but y_pred has "
            f"{y_pred_shape[0]} (shapes {tuple(y_true_shape)} and {tuple(y_pred_shape)}); "
            "the targets and the inputs must have the same length along the first axis"
        )


def _aligned_pair(y_true, y_pred, loss_name):
    """y_true and y_pred as Tensors of one shape (batch, ..., features).

    Targets of shape (N,) against predictions (N, 1), or the other way round,
    are lined up instead of being broadcast to an (N, N) matrix: that silent
    blow-up is a classic regression bug. 1-D pairs become (N, 1), so that the
    per-sample losses always have shape (N,).
    """
    y_pred = _as_prediction(y_pred)
    y_true = _as_target(y_true, y_pred)
    _check_same_batch(y_true.shape, y_pred.shape, loss_name)
    if y_pred.ndim == 1:
        y_pred = expand_dims(y_pred, -1)
    if y_true.ndim == y_pred.ndim - 1 and y_pred.shape[-1] == 1:
        y_true = expand_dims(y_true, -1)
    if y_true.shape != y_pred.shape:
        raise ValueError(
            f"{loss_name}: y_true has shape {tuple(y_true.shape)} but y_pred has shape "
            f"{tuple(y_pred.shape)}; they must match (the last layer needs as many units as "
            "there are target values per sample)"
        )
    return y_true, y_pred


# ----------------------------------------------------------------------------
# Noticing logits where probabilities were expected
# ----------------------------------------------------------------------------
def _why_not_distributions(values):
    """None if every row (last axis) is a probability distribution, else what is wrong."""
    if bool((values < 0).any()):
        return "below 0"
    distance_from_one = backend.array_module(values).abs(values.sum(axis=-1) - 1)
    if bool((distance_from_one > PROBABILITY_SUM_TOLERANCE).any()):
        return "in rows that do not sum to 1"
    return None


def _why_not_probabilities(values):
    """None if every value lies in [0, 1], else what is wrong."""
    if bool(((values < 0) | (values > 1)).any()):
        return "outside [0, 1]"
    return None


class _LogitsDetector:
    """Notices raw scores given where probabilities were expected; warns once.

    The decision sticks: once a loss object has seen logits it keeps reading
    its input as logits, so its formula does not change from batch to batch
    (a batch of small logits can pass for probabilities by chance).
    """

    def __init__(self, loss_name, last_activation):
        self.loss_name = loss_name
        self.last_activation = last_activation
        self.found_logits = False

    def reads_as_logits(self, y_pred, what_is_wrong):
        if not self.found_logits:
            problem = what_is_wrong(y_pred.data)
            if problem is not None:
                self.found_logits = True
                warnings.warn(
                    f"{self.loss_name} expects probabilities (from_logits=False), but y_pred has "
                    f"values {problem}: they look like raw scores (logits). Pass "
                    f"from_logits=True to the loss, or put activation='{self.last_activation}' "
                    "on the last layer. Until then this loss reads y_pred as logits, so "
                    "training still works.",
                    LogitsWarning,
                    stacklevel=4,
                )
        return self.found_logits


# ----------------------------------------------------------------------------
# Per-sample loss functions (Keras names)
# ----------------------------------------------------------------------------
def mean_squared_error(y_true, y_pred):
    """mean((y_pred - y_true)**2) over the last axis: one value per sample."""
    y_true, y_pred = _aligned_pair(y_true, y_pred, "mean_squared_error")
    error = y_pred - y_true
    return mean(error * error, axis=-1)


def mean_absolute_error(y_true, y_pred):
    """mean(|y_pred - y_true|) over the last axis: one value per sample."""
    y_true, y_pred = _aligned_pair(y_true, y_pred, "mean_absolute_error")
    return mean(abs(y_pred - y_true), axis=-1)


def huber(y_true, y_pred, delta=1.0):
    """Squared error for small errors, absolute error for large ones (less hurt by outliers).

    Per element: 0.5 * e**2 where |e| <= delta, else delta * (|e| - 0.5 * delta);
    the two pieces meet with equal slope at |e| = delta. Averaged over the last axis.
    """
    y_true, y_pred = _aligned_pair(y_true, y_pred, "huber")
    error = y_pred - y_true
    abs_error = abs(error)
    quadratic = 0.5 * error * error
    linear = delta * abs_error - 0.5 * delta * delta
    return mean(where(abs_error.data <= delta, quadratic, linear), axis=-1)


def binary_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0):
    """-(y log p + (1 - y) log(1 - p)), averaged over the last axis: one value per sample.

    y_true holds 0/1 labels (or probabilities); y_pred holds probabilities,
    or raw scores with from_logits=True.
    """
    detector = _LogitsDetector("binary_crossentropy", "sigmoid")
    return _binary_crossentropy(y_true, y_pred, from_logits, label_smoothing, detector)


def _binary_crossentropy(y_true, y_pred, from_logits, label_smoothing, detector):
    y_true, y_pred = _aligned_pair(y_true, y_pred, "binary_crossentropy")
    _check_binary_targets(y_true)
    if label_smoothing:
        # Pull the targets towards 0.5 so the model is not pushed to infinite scores.
        y_true = y_true * (1 - label_smoothing) + 0.5 * label_smoothing
    if from_logits or detector.reads_as_logits(y_pred, _why_not_probabilities):
        # With p = sigmoid(x) the loss simplifies to log(1 + exp(x)) - x * y;
        # softplus computes log(1 + exp(x)) without overflow for any x.
        elementwise = softplus(y_pred) - y_pred * y_true
    else:
        p = clip(y_pred, EPSILON, 1 - EPSILON)
        elementwise = -(y_true * log(p) + (1 - y_true) * log(1 - p))
    return mean(elementwise, axis=-1)


def _check_binary_targets(y_true):
    values = y_true.data
    outside = (values < 0) | (values > 1)
    if bool(outside.any()):
        bad = backend.to_device(values[outside][:1], "cpu")[0].item()
        raise ValueError(
            f"binary_crossentropy needs targets in [0, 1] (0/1 labels or probabilities), "
            f"but y_true holds {bad}. For integer class labels 0..K-1 use "
            "sparse_categorical_crossentropy with a softmax over K units"
        )


def categorical_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0):
    """-sum(y_true * log p) over the last axis, for one-hot (or soft) targets.

    y_pred holds probabilities (a softmax output), or raw scores with
    from_logits=True. One value per sample.
    """
    detector = _LogitsDetector("categorical_crossentropy", "softmax")
    return _categorical_crossentropy(y_true, y_pred, from_logits, label_smoothing, detector)


def _categorical_crossentropy(y_true, y_pred, from_logits, label_smoothing, detector):
    y_pred = _as_prediction(y_pred)
    y_true = _as_target(y_true, y_pred)
    _check_one_hot_shapes(y_true.shape, y_pred.shape)
    if label_smoothing:
        # Move a little of each target's mass onto every class, evenly.
        y_true = y_true * (1 - label_smoothing) + label_smoothing / y_pred.shape[-1]
    if from_logits or detector.reads_as_logits(y_pred, _why_not_distributions):
        return -sum(y_true * log_softmax(y_pred, axis=-1), axis=-1)
    return _crossentropy_of_probabilities(y_true, y_pred)


def _crossentropy_of_probabilities(targets, probabilities):
    # Rows are rescaled to sum to 1, as Keras does (a softmax in float32 is
    # off by rounding), then clipped so that log never sees 0.
    probabilities = probabilities / sum(probabilities, axis=-1, keepdims=True)
    probabilities = clip(probabilities, EPSILON, 1 - EPSILON)
    return -sum(targets * log(probabilities), axis=-1)


def _check_one_hot_shapes(y_true_shape, y_pred_shape):
    _check_same_batch(y_true_shape, y_pred_shape, "categorical_crossentropy")
    if tuple(y_true_shape) == tuple(y_pred_shape):
        return
    classes = y_pred_shape[-1]
    if tuple(y_true_shape) in (tuple(y_pred_shape[:-1]), tuple(y_pred_shape[:-1]) + (1,)):
        raise ValueError(
            f"categorical_crossentropy expects one-hot labels of shape {tuple(y_pred_shape)}, "
            f"but y_true has shape {tuple(y_true_shape)}: these look like integer class "
            "labels. Use sparse_categorical_crossentropy (SparseCategoricalCrossentropy) for "
            f"integer labels, or one-hot encode them into {classes} columns"
        )
    raise ValueError(
        f"categorical_crossentropy: y_true has shape {tuple(y_true_shape)} but y_pred has "
        f"shape {tuple(y_pred_shape)}; one-hot labels need the same shape as the predictions"
    )


def sparse_categorical_crossentropy(y_true, y_pred, from_logits=False):
    """-log p[label] for integer class labels: one value per sample.

    y_true holds class indices, shape (N,) or (N, 1) (or y_pred's shape
    without its class axis, for sequences); y_pred holds probabilities (a
    softmax output), or raw scores with from_logits=True.
    """
    detector = _LogitsDetector("sparse_categorical_crossentropy", "softmax")
    return _sparse_categorical_crossentropy(y_true, y_pred, from_logits, detector)


def _sparse_categorical_crossentropy(y_true, y_pred, from_logits, detector, mean=False):
    """The per-sample losses, or with mean=True their mean (from logits: inside the fused op)."""
    y_pred = _as_prediction(y_pred)
    labels = _sparse_labels_shaped_for(y_true, y_pred)
    if from_logits or detector.reads_as_logits(y_pred, _why_not_distributions):
        # The fused op: stable for any logits, and its gradient is probs - onehot.
        return softmax_cross_entropy(y_pred, labels, mean=mean)
    # On the predictions' device: the labels of a model's batch are there already.
    labels = backend.to_device(labels, y_pred.device)
    targets = one_hot(labels, y_pred.shape[-1], y_pred.dtype)  # checks the labels too
    losses = _crossentropy_of_probabilities(targets, y_pred)
    return _reduce(losses, None, "sum_over_batch_size") if mean else losses


def _sparse_labels_shaped_for(y_true, y_pred):
    """The label array, reshaped from (N, 1) to (N,) if need be; shape errors explained."""
    labels = y_true.data if isinstance(y_true, Tensor) else y_true
    if not backend.is_gpu_array(labels):
        labels = np.asarray(labels)
    name = "sparse_categorical_crossentropy"
    if y_pred.ndim < 2:
        raise ValueError(
            f"{name} needs y_pred of shape (batch, classes), got shape {tuple(y_pred.shape)}; "
            "the last layer should have one unit per class"
        )
    expected = tuple(y_pred.shape[:-1])
    if labels.shape == expected:
        return labels
    if labels.shape == expected + (1,):
        return labels.reshape(expected)
    _check_same_batch(labels.shape, y_pred.shape, name)
    if labels.shape == tuple(y_pred.shape):
        raise ValueError(
            f"{name} expects integer class labels of shape {expected}, but y_true has shape "
            f"{labels.shape}, the same as y_pred: these look like one-hot labels. Use "
            "categorical_crossentropy (CategoricalCrossentropy) for one-hot labels, or turn "
            "them into class indices with labels.argmax(axis=-1)"
        )
    raise ValueError(
        f"{name}: y_true has shape {labels.shape} but y_pred has shape {tuple(y_pred.shape)}; "
        f"integer labels need shape {expected} (or {expected + (1,)})"
    )


# Keras's short names.
mse = MSE = mean_squared_error
mae = MAE = mean_absolute_error


# ----------------------------------------------------------------------------
# Loss classes
# ----------------------------------------------------------------------------
def _snake_case(name):
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name).lower()


class Loss:
    """Base class: subclasses define `call(y_true, y_pred)` -> one loss per sample.

    Calling the object weights those losses by `sample_weight` and reduces
    them: 'sum_over_batch_size' (the default, also 'mean') divides the sum by
    the number of losses; 'sum' adds them; 'mean_with_sample_weight' divides by
    the sum of the weights; 'none' (or None) returns them as they are.
    """

    def __init__(self, name=None, reduction="sum_over_batch_size", dtype=None):
        if reduction not in REDUCTIONS:
            raise ValueError(f"unknown reduction {reduction!r}; use one of {REDUCTIONS}")
        self.name = name or _snake_case(type(self).__name__)
        self.reduction = reduction
        self.dtype = dtype

    def call(self, y_true, y_pred):
        raise NotImplementedError(f"{type(self).__name__} must define call(y_true, y_pred)")

    def __call__(self, y_true, y_pred, sample_weight=None):
        per_sample = as_tensor(self.call(y_true, y_pred))
        return _reduce(per_sample, sample_weight, self.reduction)

    def get_config(self):
        return {"name": self.name, "reduction": self.reduction}

    def explain_non_finite(self, y_true, y_pred):
        """Called by Model when this loss came out NaN or infinite: raise a clearer
        error if the cause can be told from the targets.  Nothing to say by default."""

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name!r}>"


def _reduce(losses, sample_weight, reduction):
    weights = None
    if sample_weight is not None:
        weights = _weights_for(sample_weight, losses)
        losses = losses * weights
    if reduction in ("none", None):
        return losses
    if reduction == "sum":
        return sum(losses)
    if reduction == "mean_with_sample_weight" and weights is not None:
        xp = backend.array_module(weights.data)
        return sum(losses) / float(xp.broadcast_to(weights.data, losses.shape).sum())
    # Keras divides by the number of losses, not by the sum of the weights.
    return mean(losses)


def _weights_for(sample_weight, losses):
    """sample_weight as a Tensor that multiplies the per-sample losses."""
    weights = _as_target(sample_weight, losses).detach()
    # (N,) weights for (N, T) sequence losses apply to every step; (N, 1) weights
    # for (N,) losses lose the extra axis.
    while weights.ndim < losses.ndim:
        weights = expand_dims(weights, -1)
    while weights.ndim > losses.ndim and weights.shape[-1] == 1:
        weights = squeeze(weights, -1)
    lined_up = weights.ndim == losses.ndim and all(
        w in (1, n) for w, n in zip(weights.shape, losses.shape))
    if not lined_up:
        raise ValueError(
            f"sample_weight of shape {tuple(np.shape(sample_weight))} does not fit the "
            f"per-sample losses of shape {tuple(losses.shape)}; give one weight per sample"
        )
    return weights


class LossFunctionWrapper(Loss):
    """A Loss made from a per-sample function `fn(y_true, y_pred, **kwargs)`."""

    def __init__(self, fn, reduction="sum_over_batch_size", name=None, **kwargs):
        super().__init__(name=name or getattr(fn, "__name__", None), reduction=reduction)
        self.fn = fn
        self._fn_kwargs = kwargs

    def call(self, y_true, y_pred):
        return self.fn(y_true, y_pred, **self._fn_kwargs)

    def get_config(self):
        config = super().get_config()
        if type(self) is LossFunctionWrapper:
            config["fn"] = getattr(self.fn, "__name__", repr(self.fn))
        return {**config, **self._fn_kwargs}


class MeanSquaredError(LossFunctionWrapper):
    replays_exactly = True  # its call is ops only: see deepbreadth/replay.py

    def __init__(self, reduction="sum_over_batch_size", name="mean_squared_error"):
        super().__init__(mean_squared_error, reduction=reduction, name=name)


class MeanAbsoluteError(LossFunctionWrapper):
    replays_exactly = True  # its call is ops only: see deepbreadth/replay.py

    def __init__(self, reduction="sum_over_batch_size", name="mean_absolute_error"):
        super().__init__(mean_absolute_error, reduction=reduction, name=name)


class Huber(LossFunctionWrapper):
    replays_exactly = True  # its call is ops only: see deepbreadth/replay.py

    def __init__(self, delta=1.0, reduction="sum_over_batch_size", name="huber_loss"):
        super().__init__(huber, reduction=reduction, name=name, delta=delta)


class _CrossentropyLoss(Loss):
    """A crossentropy that remembers, per object, whether it has been fed logits."""

    last_activation = "softmax"

    def __init__(self, from_logits, reduction, name):
        super().__init__(name=name, reduction=reduction)
        self.from_logits = from_logits
        self._logits_detector = _LogitsDetector(name, self.last_activation)

    def replay_check(self):
        """For a replayed training step (deepbreadth/replay.py): None when this
        loss reads its input the same way at every step (from logits, or found
        to be fed logits: that decision sticks); else a check to run on the
        model's output before the recorded loss ops, True while the output
        still reads as probabilities.  The check is the detector itself, so a
        replayed step warns and switches to logits where an eager step would."""
        if self.from_logits or self._logits_detector.found_logits:
            return None
        return self._still_reads_probabilities

    def _still_reads_probabilities(self, y_pred):
        return not self._logits_detector.reads_as_logits(y_pred, _why_not_distributions)

    def get_config(self):
        return {**super().get_config(), "from_logits": self.from_logits}


class SparseCategoricalCrossentropy(_CrossentropyLoss):
    """Crossentropy for integer class labels; see `sparse_categorical_crossentropy`."""
    replays_exactly = True  # its call is ops only: see deepbreadth/replay.py

    def __init__(self, from_logits=False, reduction="sum_over_batch_size",
                 name="sparse_categorical_crossentropy"):
        super().__init__(from_logits, reduction, name)

    def call(self, y_true, y_pred):
        return _sparse_categorical_crossentropy(y_true, y_pred, self.from_logits,
                                                self._logits_detector)

    def __call__(self, y_true, y_pred, sample_weight=None):
        own_call = type(self).call is SparseCategoricalCrossentropy.call  # not a subclass's
        if own_call and sample_weight is None and self.reduction == "sum_over_batch_size":
            # Keras' default reduction is the mean over every loss value: taken
            # inside the fused op, one op instead of two forward and backward.
            return _sparse_categorical_crossentropy(y_true, y_pred, self.from_logits,
                                                    self._logits_detector, mean=True)
        return super().__call__(y_true, y_pred, sample_weight)

    def explain_non_finite(self, y_true, y_pred):
        """Labels already on the GPU were not read back before the loss (its kernel
        gives a bad label's sample a NaN loss); read them now, to name a bad one."""
        labels = _sparse_labels_shaped_for(y_true, _as_prediction(y_pred))
        check_sparse_labels(labels, y_pred.shape[-1])


class CategoricalCrossentropy(_CrossentropyLoss):
    """Crossentropy for one-hot labels; see `categorical_crossentropy`."""
    replays_exactly = True  # its call is ops only: see deepbreadth/replay.py

    def __init__(self, from_logits=False, label_smoothing=0.0,
                 reduction="sum_over_batch_size", name="categorical_crossentropy"):
        super().__init__(from_logits, reduction, name)
        self.label_smoothing = label_smoothing

    def call(self, y_true, y_pred):
        return _categorical_crossentropy(y_true, y_pred, self.from_logits,
                                         self.label_smoothing, self._logits_detector)

    def get_config(self):
        return {**super().get_config(), "label_smoothing": self.label_smoothing}


class BinaryCrossentropy(_CrossentropyLoss):
    """Crossentropy for 0/1 labels, one sigmoid output each; see `binary_crossentropy`."""

    last_activation = "sigmoid"

    def __init__(self, from_logits=False, label_smoothing=0.0,
                 reduction="sum_over_batch_size", name="binary_crossentropy"):
        super().__init__(from_logits, reduction, name)
        self.label_smoothing = label_smoothing

    def call(self, y_true, y_pred):
        return _binary_crossentropy(y_true, y_pred, self.from_logits,
                                    self.label_smoothing, self._logits_detector)

    def get_config(self):
        return {**super().get_config(), "label_smoothing": self.label_smoothing}


# ----------------------------------------------------------------------------
# Looking losses up by name, and saving them
# ----------------------------------------------------------------------------
_LOSS_CLASSES_BY_NAME = {
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
    "categorical_crossentropy": CategoricalCrossentropy,
    "binary_crossentropy": BinaryCrossentropy,
    "mean_squared_error": MeanSquaredError,
    "mse": MeanSquaredError,
    "mean_absolute_error": MeanAbsoluteError,
    "mae": MeanAbsoluteError,
    "huber": Huber,
    "huber_loss": Huber,
}
_LOSS_NAMES = sorted(_LOSS_CLASSES_BY_NAME)
# Class names work too ('MeanSquaredError'), in any letter case.
_LOSS_CLASSES_BY_NAME.update(
    {cls.__name__.lower(): cls for cls in set(_LOSS_CLASSES_BY_NAME.values())})

# Passing the function `losses.mse` to compile gives the same loss as 'mse'.
_LOSS_CLASS_OF_FUNCTION = {
    sparse_categorical_crossentropy: SparseCategoricalCrossentropy,
    categorical_crossentropy: CategoricalCrossentropy,
    binary_crossentropy: BinaryCrossentropy,
    mean_squared_error: MeanSquaredError,
    mean_absolute_error: MeanAbsoluteError,
    huber: Huber,
}


def get(identifier):
    """A Loss object from a name ('mse', 'sparse_categorical_crossentropy', ...),
    a Loss, a Loss class, a serialized dict, or a function fn(y_true, y_pred)."""
    if identifier is None or isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, str):
        cls = _LOSS_CLASSES_BY_NAME.get(identifier.lower())
        if cls is None:
            raise ValueError(
                f"unknown loss {identifier!r}; use one of {_LOSS_NAMES}, a Loss object "
                "or a function fn(y_true, y_pred)"
            )
        return cls()
    if isinstance(identifier, type) and issubclass(identifier, Loss):
        return identifier()
    if callable(identifier):
        cls = _LOSS_CLASS_OF_FUNCTION.get(identifier)
        return cls() if cls is not None else LossFunctionWrapper(identifier)
    raise TypeError(
        f"cannot interpret {identifier!r} as a loss; give a name such as 'mse', a Loss "
        "object, or a function fn(y_true, y_pred)"
    )


def serialize(loss):
    """A dict {'class_name', 'config'} from which `deserialize` rebuilds the loss."""
    return {"class_name": type(loss).__name__, "config": loss.get_config()}


def deserialize(config, custom_objects=None):
    """The Loss described by `serialize`'s dict (or a name); `custom_objects`
    maps the names of your own Loss classes or functions to them."""
    if isinstance(config, str):
        return get(config)
    custom_objects = custom_objects or {}
    class_name = config["class_name"]
    options = dict(config.get("config", {}))
    if class_name in custom_objects:
        return custom_objects[class_name].from_config(options)
    if class_name == "LossFunctionWrapper":
        fn_name = options.pop("fn")
        fn = custom_objects.get(fn_name) or globals().get(fn_name)
        if not callable(fn):
            raise ValueError(
                f"cannot rebuild the loss: function {fn_name!r} is unknown; pass "
                f"custom_objects={{{fn_name!r}: {fn_name}}}"
            )
        return LossFunctionWrapper(fn, **options)
    cls = _LOSS_CLASSES_BY_NAME.get(class_name.lower())
    if cls is None:
        raise ValueError(
            f"unknown loss class {class_name!r}; pass custom_objects={{{class_name!r}: {class_name}}}"
        )
    return cls.from_config(options)
