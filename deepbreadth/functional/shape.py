"""Shape ops: reshape, transpose, expand_dims, squeeze, flatten, concatenate,
stack, split, pad, indexing, astype, device moves.

None of these changes a value, they only move values around; so each
backward moves the gradient back to where the value came from.
"""
import numpy as np

from .. import backend
from ..autograd import Function, ShapeError, Tensor, as_tensor


class Reshape(Function):
    """Also serves expand_dims, squeeze and flatten: all are reshapes."""

    @staticmethod
    def forward(ctx, a, shape):
        ctx.input_shape = a.shape
        try:
            return a.reshape(shape)
        except ValueError:
            raise ShapeError(
                f"reshape: cannot reshape a tensor of shape {a.shape} ({a.size} elements) "
                f"into shape {tuple(shape)}"
            ) from None

    @staticmethod
    def backward(ctx, grad):
        return reshape(grad, ctx.input_shape)


class Transpose(Function):
    @staticmethod
    def forward(ctx, a, axes):
        ctx.axes = axes
        return a.transpose(axes)

    @staticmethod
    def backward(ctx, grad):
        # The inverse permutation sends every axis back to where it came from.
        return transpose(grad, tuple(np.argsort(ctx.axes)))


class Concatenate(Function):
    @staticmethod
    def forward(ctx, *arrays, axis=0):
        ctx.axis = axis
        ctx.sizes = [a.shape[axis] for a in arrays]
        return np.concatenate(arrays, axis=axis)

    @staticmethod
    def backward(ctx, grad):
        pieces = []
        start = 0
        for size in ctx.sizes:
            index = [slice(None)] * grad.ndim
            index[ctx.axis] = slice(start, start + size)
            pieces.append(grad[tuple(index)])
            start += size
        return tuple(pieces)


class Pad(Function):
    @staticmethod
    def forward(ctx, a, pad_width, constant_value=0):
        ctx.pad_width = pad_width
        return np.pad(a, pad_width, mode="constant", constant_values=constant_value)

    @staticmethod
    def backward(ctx, grad):
        index = tuple(slice(before, grad.shape[i] - after)
                      for i, (before, after) in enumerate(ctx.pad_width))
        return grad[index]


class GetItem(Function):
    """a[index] for slices, integers, integer arrays and boolean masks."""

    @staticmethod
    def forward(ctx, a, index):
        ctx.index = index
        ctx.input_shape = a.shape
        return a[index]

    @staticmethod
    def backward(ctx, grad):
        return ScatterAdd.apply(grad, index=ctx.index, shape=ctx.input_shape)


class ScatterAdd(Function):
    """The backward of indexing: zeros of `shape` with `values` added at `index`.

    Added, not assigned: an index that picks the same element twice (a[[0, 0]])
    must pass back both gradients.
    """

    @staticmethod
    def forward(ctx, values, index, shape):
        ctx.index = index
        out = np.zeros_like(values, shape=shape)
        if _is_basic_index(index):
            out[index] = values  # slices never repeat an element: plain assignment
        else:
            backend.scatter_add(out, index, values)
        return out

    @staticmethod
    def backward(ctx, grad):
        return grad[ctx.index]


def _is_basic_index(index):
    parts = index if isinstance(index, tuple) else (index,)
    return all(isinstance(p, (int, np.integer, slice)) or p is None or p is Ellipsis for p in parts)


class AsType(Function):
    @staticmethod
    def forward(ctx, a, dtype):
        ctx.input_dtype = a.dtype
        return a.astype(dtype)

    @staticmethod
    def backward(ctx, grad):
        return astype(grad, ctx.input_dtype)


class ToDevice(Function):
    @staticmethod
    def forward(ctx, a, device):
        ctx.input_device = backend.device_of(a)
        return backend.to_device(a, device)

    @staticmethod
    def backward(ctx, grad):
        return to_device(grad, ctx.input_device)


# ----------------------------------------------------------------------------
# Public functions
# ----------------------------------------------------------------------------
def reshape(a, *shape):
    """Reshape to `shape` (a tuple, or the sizes as separate arguments; -1 allowed)."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = shape[0]
    shape = tuple(int(n) for n in shape)
    if a.shape == shape:
        return a
    return Reshape.apply(a, shape=shape)


def transpose(a, *axes):
    """Permute axes; with no axes, reverse them (like NumPy's .T)."""
    if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
        axes = axes[0]
    if not axes:
        axes = tuple(reversed(range(a.ndim)))
    axes = tuple(_checked_axis("transpose", int(x), a.ndim) for x in axes)
    if sorted(axes) != list(range(a.ndim)):
        raise ValueError(f"transpose: axes {axes} are not a permutation of the {a.ndim} axes of {a.shape}")
    return Transpose.apply(a, axes=axes)


def swapaxes(a, axis1, axis2):
    axes = list(range(a.ndim))
    axes[axis1], axes[axis2] = axes[axis2], axes[axis1]
    return transpose(a, tuple(axes))


def expand_dims(a, axis):
    new_ndim = a.ndim + 1
    axis = _checked_axis("expand_dims", axis, new_ndim)
    shape = list(a.shape)
    shape.insert(axis, 1)
    return reshape(a, tuple(shape))


def squeeze(a, axis=None):
    """Remove size-1 axes (all of them, or the given one(s))."""
    if axis is None:
        shape = tuple(n for n in a.shape if n != 1)
    else:
        axes = (axis,) if isinstance(axis, int) else tuple(axis)
        axes = {_checked_axis("squeeze", x, a.ndim) for x in axes}
        for x in axes:
            if a.shape[x] != 1:
                raise ValueError(f"squeeze: axis {x} of shape {a.shape} has size {a.shape[x]}, not 1")
        shape = tuple(n for i, n in enumerate(a.shape) if i not in axes)
    return reshape(a, shape)


def flatten(a, start_axis=0):
    """Collapse the axes from `start_axis` on into one (start_axis=1 keeps the batch)."""
    leading = a.shape[:start_axis]
    return reshape(a, leading + (-1,))


def concatenate(tensors, axis=0):
    tensors = [as_tensor(t) for t in tensors]
    if not tensors:
        raise ValueError("concatenate needs at least one tensor")
    _check_concatenable([t.shape for t in tensors], axis)
    return Concatenate.apply(*tensors, axis=axis)


def _check_concatenable(shapes, axis):
    """Every shape must agree on every axis but `axis`; say which ones do not."""
    ndim = len(shapes[0])
    if ndim == 0 or any(len(s) != ndim for s in shapes) or not -ndim <= axis < ndim:
        raise ShapeError(f"concatenate: cannot join shapes {shapes} along axis {axis}")
    axis = axis % ndim
    others = {s[:axis] + s[axis + 1:] for s in shapes}
    if len(others) > 1:
        raise ShapeError(
            f"concatenate: shapes {shapes} must match on every axis except axis {axis}"
        )


def stack(tensors, axis=0):
    """Join tensors of one shape along a new axis."""
    tensors = [as_tensor(t) for t in tensors]
    if not tensors:
        raise ValueError("stack needs at least one tensor")
    shapes = {t.shape for t in tensors}
    if len(shapes) > 1:
        raise ShapeError(f"stack: all tensors must have one shape, got {sorted(shapes)}")
    return concatenate([expand_dims(t, axis) for t in tensors], axis=axis)


def split(a, indices_or_sections, axis=0):
    """Split into a list of tensors, as numpy.split (sections or split points)."""
    length = a.shape[axis]
    if isinstance(indices_or_sections, int):
        if length % indices_or_sections:
            raise ValueError(
                f"split: axis {axis} of length {length} does not divide into "
                f"{indices_or_sections} equal sections"
            )
        step = length // indices_or_sections
        points = list(range(step, length, step))
    else:
        points = list(indices_or_sections)
    bounds = [0] + points + [length]
    pieces = []
    for start, stop in zip(bounds[:-1], bounds[1:]):
        index = [slice(None)] * a.ndim
        index[axis] = slice(start, stop)
        pieces.append(getitem(a, tuple(index)))
    return pieces


def pad(a, pad_width, constant_value=0):
    """Pad with a constant; pad_width as in numpy.pad: ((before, after), ...) per axis."""
    if a.ndim == 0:
        return a  # a scalar has no axis to pad
    pad_width = np.broadcast_to(np.asarray(pad_width, dtype=int), (a.ndim, 2))
    pad_width = tuple((int(b), int(e)) for b, e in pad_width)
    return Pad.apply(a, pad_width=pad_width, constant_value=constant_value)


def getitem(a, index):
    index = _index_arrays(index)
    return GetItem.apply(a, index=index)


def _index_arrays(index):
    """Unwrap Tensors used inside an index (labels, masks) to plain arrays."""
    if isinstance(index, Tensor):
        return index.data
    if isinstance(index, tuple):
        return tuple(p.data if isinstance(p, Tensor) else p for p in index)
    if isinstance(index, list):
        return np.asarray(index)
    return index


def astype(a, dtype):
    dtype = np.dtype(dtype)
    if a.dtype == dtype:
        return a
    if dtype.kind not in "fc":
        return Tensor._wrap(a.data.astype(dtype))  # integers carry no gradient
    return AsType.apply(a, dtype=dtype)


def to_device(a, device):
    return ToDevice.apply(a, device=device)


def _checked_axis(name, axis, ndim):
    """`axis` counted from 0 (negative axes count from the end), or a clear error."""
    if not -ndim <= axis < ndim:
        raise ValueError(f"{name}: axis {axis} is out of range for {ndim} dimensions")
    return axis % ndim
