"""Ops under the core layers: dropout, the fused bias + activation, embedding lookup.

Each op is a Function whose forward and backward call the raw kernels of
`kernels/` through `backend.kernel(...)`, so the same code runs on the NumPy
reference kernels, the Numba kernels and the CUDA kernels. Their backward is a
kernel, not Tensor ops, so they are only once differentiable.
"""
import numpy as np

from .. import backend
from ..autograd import Function, Tensor
from .activation import get_activation, linear, relu, sigmoid, tanh


# ----------------------------------------------------------------------------
# Dropout
# ----------------------------------------------------------------------------
def draw_seed(generator=None):
    """A fresh 64-bit seed for one dropout mask, from `generator` or the package
    generator that `set_seed` seeds (so masks repeat from run to run)."""
    generator = generator or backend.rng()
    # One raw 64-bit draw: a fifth of generator.integers' cost, as random.
    return int(generator.bit_generator.random_raw())


class Dropout(Function):
    once_differentiable = True

    @staticmethod
    def forward(ctx, x, rate, generator=None):
        # The seed is drawn here, not by the caller, so that every run of the
        # op draws a new mask, a replayed one as well (deepbreadth/replay.py).
        # The kernel draws the mask from the seed as it goes (docs/KERNELS.md).
        ctx.rate = rate
        y, mask = backend.kernel("dropout_forward", x)(x, draw_seed(generator), rate)
        ctx.save_for_backward(mask)
        return y

    @staticmethod
    def backward(ctx, grad):
        (mask,) = ctx.saved_tensors
        grad_x = backend.kernel("dropout_backward", grad.data)(grad.data, mask.data, ctx.rate)
        return Tensor._wrap(grad_x)


def dropout(x, rate, training=True, generator=None):
    """Zero each element with probability `rate`, scale the rest by 1 / (1 - rate).

    The scaling keeps every element's expected value, so at inference
    (training=False) dropout is simply the identity.
    """
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"dropout: rate must be in [0, 1), got {rate!r}")
    if not training or rate == 0.0:
        return x
    return Dropout.apply(x, rate=float(rate), generator=generator)


# ----------------------------------------------------------------------------
# Bias + activation: the epilogue of Dense and Conv
# ----------------------------------------------------------------------------
# The activations whose derivative the kernel computes from the output alone.
FUSED_ACTIVATIONS = {"linear": linear, "relu": relu, "tanh": tanh, "sigmoid": sigmoid}


def fused_activation_name(activation):
    """The kernel's name for `activation` (a name, a function or None), or None
    when the kernel cannot fuse it."""
    if activation is None:
        return "linear"
    for name, function in FUSED_ACTIVATIONS.items():
        if activation is function or (isinstance(activation, str) and activation == name):
            return name
    return None


class BiasActivation(Function):
    once_differentiable = True

    @staticmethod
    def forward(ctx, x, bias, activation):
        ctx.activation = activation
        y = backend.kernel("bias_activation_forward", x)(x, bias, activation)
        # The activation's derivative is read from the output, so only y is kept.
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        grad_x, grad_bias = backend.kernel("bias_activation_backward", grad.data)(
            grad.data, y.data, ctx.activation)
        return Tensor._wrap(grad_x), Tensor._wrap(grad_bias)


def bias_activation(x, bias, activation=None):
    """activation(x + bias), the bias added along the last axis.

    linear, relu, tanh and sigmoid run as one fused kernel (one pass over x
    forward, one backward); any other activation, or no bias, uses the
    generic differentiable ops.
    """
    name = fused_activation_name(activation)
    if bias is None:
        return get_activation(activation)(x)
    if name is not None:
        return BiasActivation.apply(x, bias, activation=name)
    return get_activation(activation)(x + bias)


# ----------------------------------------------------------------------------
# Dense: the product, the bias and the activation as one op
# ----------------------------------------------------------------------------
class DenseBiasActivation(Function):
    """y = act(x @ kernel + bias) for x (rows, features), in one op.

    As two ops (MatMul, then BiasActivation) the arithmetic is the same, but
    each op costs a few microseconds of Python to record and to run backward,
    and in a small model those add up (a Dense layer's call costs 7-14 us
    above its kernel: benchmarks/NOTES.md, "Fourth round").  One op also lets
    the Numba kernel apply the bias and activation in place on the product's
    output.  Like BiasActivation, the backward reads the activation's
    derivative from the output y.
    """
    once_differentiable = True

    @staticmethod
    def forward(ctx, x, kernel, bias, activation):
        ctx.activation = activation
        y = backend.kernel("dense_bias_activation_forward", x)(x, kernel, bias, activation)
        ctx.save_for_backward(x, kernel, y)
        return y

    @staticmethod
    def backward(ctx, grad):
        x, kernel, y = ctx.saved_tensors
        grad_x, grad_kernel, grad_bias = backend.kernel(
            "dense_bias_activation_backward", grad.data)(
            grad.data, y.data, x.data, kernel.data, ctx.activation,
            ctx.needs_input_grad[0], ctx.needs_input_grad[1])
        return wrap_or_none(grad_x), wrap_or_none(grad_kernel), Tensor._wrap(grad_bias)


def wrap_or_none(array):
    """A kernel's optional gradient as a Tensor, None left as it is (not asked for)."""
    return None if array is None else Tensor._wrap(array)


def dense(x, kernel, bias=None, activation=None):
    """activation(x @ kernel + bias) for x (rows, features), kernel (features, units).

    With a bias and an activation the kernels know (linear, relu, tanh,
    sigmoid) this is one op; otherwise a matrix product and bias_activation.
    """
    if bias is not None and x.ndim == 2 and kernel.ndim == 2:
        name = fused_activation_name(activation)
        if name is not None:
            return DenseBiasActivation.apply(x, kernel, bias, activation=name)
    return bias_activation(x @ kernel, bias, activation)


# ----------------------------------------------------------------------------
# Embedding
# ----------------------------------------------------------------------------
def check_ids(ids, vocab_size):
    """Raise a clear error for non-integer ids or ids outside [0, vocab_size)."""
    if ids.size == 0:
        return
    # Keras also accepts whole numbers stored as floats (as a float Input gives).
    whole_floats = ids.dtype.kind == "f" and bool((ids == ids.astype(np.int64)).all())
    if ids.dtype.kind not in "iu" and not whole_floats:
        raise TypeError(
            f"embedding: ids must be integers, got dtype {ids.dtype} with values that are "
            "not whole numbers; pass integer ids (e.g. x.astype('int64'))"
        )
    smallest, largest = int(ids.min()), int(ids.max())
    if smallest < 0 or largest >= vocab_size:
        bad = smallest if smallest < 0 else largest
        raise ValueError(
            f"embedding: id {bad} is outside [0, {vocab_size}): the table has {vocab_size} "
            f"rows (ids seen range from {smallest} to {largest}); make input_dim larger than "
            "the largest id, or fix the ids"
        )


class Embedding(Function):
    once_differentiable = True

    @staticmethod
    def forward(ctx, table, ids):
        ctx.save_for_backward(ids)
        ctx.vocab_size = table.shape[0]
        return backend.kernel("embedding_forward", table)(table, ids)

    @staticmethod
    def backward(ctx, grad):
        (ids,) = ctx.saved_tensors
        grad_table = backend.kernel("embedding_backward", grad.data)(
            grad.data, ids.data, ctx.vocab_size)
        return Tensor._wrap(grad_table)


def embedding(table, ids):
    """Row `ids[...]` of `table` (V, E) for every id: shape ids.shape + (E,)."""
    ids = ids.data if isinstance(ids, Tensor) else ids
    if not backend.is_gpu_array(ids):
        ids = np.asarray(ids)
    check_ids(ids, table.shape[0])
    # Ids given as NumPy (as Keras users pass them) go to the table's device.
    table_array = table.data if isinstance(table, Tensor) else table
    ids = backend.to_device(ids, backend.device_of(table_array))
    xp = backend.array_module(ids)
    return Embedding.apply(table, ids=xp.asarray(ids, dtype=np.int64))
