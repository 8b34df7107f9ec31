"""Dropout, bias + activation and embedding lookup on the GPU (kernels in elementwise.cu)."""
import cupy
import numpy

from ..reference.elementwise import check_seed, dropout_threshold
from .loader import (
    MAX_BLOCKS,
    activation_code,
    check_shape,
    contiguous,
    contiguous_ids,
    float_dtype,
    get_kernel,
    index,
    launch_over_elements,
    scalar,
)

CUDA_FILE = "elementwise.cu"

# The block of activation_backward_with_column_sums: COLUMN_TILE columns by
# ROW_LANES rows (the #defines of the same names in elementwise.cu).
COLUMN_TILE = 32
ROW_LANES = 8
# Its grid: about this many blocks keep every multiprocessor busy (an H100 has
# 132), while each column receives no more atomic additions than there are
# blocks along the rows.
COLUMN_SUM_BLOCKS = 1024


# ----------------------------------------------------------------------------
# Dropout
# ----------------------------------------------------------------------------
def check_dropout_rate(rate):
    # rate == 1 would divide by zero and silently turn every value into nan/inf.
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"dropout rate must be in [0, 1), got {rate!r}")


def scale_by_mask(values, mask, rate):
    """values * mask / (1 - rate), a new array of the values' shape and dtype."""
    dtype = float_dtype(values)
    values = contiguous(values)
    mask = contiguous(mask, dtype=bool)
    check_shape("dropout mask", mask, values.shape)
    out = cupy.empty(values.shape, dtype=dtype)
    kernel = get_kernel(CUDA_FILE, "scale_by_mask", dtype)
    keep_probability = scalar(1.0 - rate, dtype)
    launch_over_elements(kernel, out.size, (values, mask, out, index(out.size), keep_probability))
    return out


def dropout_forward(x, seed, rate):
    """mask = the element's random draw (splitmix64 of seed and index) >= rate; y = x * mask / (1 - rate)."""
    check_dropout_rate(rate)
    seed = check_seed(seed)
    dtype = float_dtype(x)
    x = contiguous(x)
    y = cupy.empty(x.shape, dtype=dtype)
    mask = cupy.empty(x.shape, dtype=bool)
    kernel = get_kernel(CUDA_FILE, "dropout_forward", dtype)
    launch_over_elements(kernel, y.size, (
        x, seed, numpy.uint64(dropout_threshold(rate)), y, mask, index(y.size),
        scalar(1.0 - rate, dtype)))
    return y, mask


def dropout_backward(grad_y, mask, rate):
    """The forward pass is linear in x, so the gradient takes the same mask and scale."""
    check_dropout_rate(rate)
    return scale_by_mask(grad_y, mask, rate)


# ----------------------------------------------------------------------------
# Bias + activation
# ----------------------------------------------------------------------------
def bias_activation_forward(x, bias, activation):
    """y = act(x + bias), the bias broadcast along the last axis of x."""
    code = activation_code(activation)
    dtype = float_dtype(x)
    x = contiguous(x)
    bias = contiguous(bias, dtype)
    channels = x.shape[-1]
    check_shape("bias", bias, (channels,))
    y = cupy.empty(x.shape, dtype=dtype)
    kernel = get_kernel(CUDA_FILE, "bias_activation_forward", dtype)
    launch_over_elements(kernel, y.size, (x, bias, y, index(y.size), index(channels), code))
    return y


def bias_activation_backward(grad_y, y, activation):
    """(grad_x, grad_bias): grad_x = grad_y * act'(from y), grad_bias = grad_x summed
    over all but the last axis."""
    code = activation_code(activation)
    dtype = float_dtype(grad_y)
    grad_y = contiguous(grad_y)
    y = contiguous(y, dtype)
    check_shape("y", y, grad_y.shape)
    channels = grad_y.shape[-1]
    rows = grad_y.size // channels if channels else 0
    grad_x = cupy.empty(grad_y.shape, dtype=dtype)
    # The bias was broadcast over every axis but the last: its gradient is the
    # sum over those axes, a column sum, which the kernel adds into this buffer
    # while it writes grad_x: one launch, not a second pass by CuPy's reduction.
    grad_bias = cupy.zeros(channels, dtype=dtype)
    kernel = get_kernel(CUDA_FILE, "activation_backward_with_column_sums", dtype)
    launch_over_column_tiles(
        kernel, rows, channels,
        (grad_y, y, grad_x, grad_bias, index(rows), index(channels), code),
    )
    return grad_x, grad_bias


def launch_over_column_tiles(kernel, rows, channels, args):
    """Launch activation_backward_with_column_sums over a (rows, channels) matrix:
    across, one block per tile of COLUMN_TILE columns; down, as many blocks as
    the rows need, but no more than keep the grid near COLUMN_SUM_BLOCKS."""
    if rows == 0 or channels == 0:
        return  # nothing to write, and the column sums are already zero
    column_blocks = -(-channels // COLUMN_TILE)
    row_blocks = min(-(-rows // ROW_LANES), max(1, COLUMN_SUM_BLOCKS // column_blocks),
                     MAX_BLOCKS)
    kernel((column_blocks, row_blocks), (COLUMN_TILE, ROW_LANES), args)


# ----------------------------------------------------------------------------
# Embedding
# ----------------------------------------------------------------------------
def embedding_forward(table, ids):
    """One row of table (V, E) per id: out has shape ids.shape + (E,)."""
    dtype = float_dtype(table)
    table = contiguous(table)
    if table.ndim != 2:
        raise ValueError(f"embedding table must be (vocab_size, dim), got {tuple(table.shape)}")
    vocab_size, embedding_dim = table.shape
    out = cupy.empty(tuple(ids.shape) + (embedding_dim,), dtype=dtype)
    ids = contiguous_ids(ids)
    kernel = get_kernel(CUDA_FILE, "embedding_forward", dtype)
    launch_over_elements(
        kernel, out.size,
        (table, ids, out, index(out.size), index(embedding_dim), index(vocab_size)),
    )
    return out


def embedding_backward(grad_out, ids, vocab_size):
    """Scatter-add of each output row's gradient into its id's row: grad_table (V, E)."""
    dtype = float_dtype(grad_out)
    grad_out = contiguous(grad_out)
    embedding_dim = grad_out.shape[-1]
    check_shape("embedding grad_out", grad_out, tuple(ids.shape) + (embedding_dim,))
    ids = contiguous_ids(ids)
    grad_table = cupy.zeros((int(vocab_size), embedding_dim), dtype=dtype)
    kernel = get_kernel(CUDA_FILE, "embedding_backward", dtype)
    launch_over_elements(
        kernel, grad_out.size,
        (grad_out, ids, grad_table, index(grad_out.size), index(embedding_dim), index(vocab_size)),
    )
    return grad_table
