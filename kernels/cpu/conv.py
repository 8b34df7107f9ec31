"""Convolution kernels for the CPU: Numba moves the data, BLAS does the arithmetic.

A convolution is a matrix product in disguise.  `im2col` copies, for every
output pixel, the KH * KW * C input values under its window into one row of a
"column matrix" (zeros where the window hangs over the padding).  Then

    forward          y       = cols @ w_matrix            (a GEMM)
    kernel gradient  grad_w  = cols.T @ grad_y            (a GEMM)
    input gradient   grad_cols = grad_y @ w_matrix.T      (a GEMM)
                     grad_x  = col2im(grad_cols)          (scatter-add back)

where w_matrix is the kernel (KH, KW, C, F) read as (KH * KW * C, F): its row
order (tap row, tap column, channel) is the column order im2col writes.  GEMMs
run near the machine's peak in BLAS, so the Numba code only has to copy.

The batch goes through in chunks of a few images, about 1 MiB of column matrix
and output rows each: the chunk im2col writes is still in the core's cache when the GEMM reads
it (about 20% faster than one GEMM over the whole batch).  Chunks are shared
out between threads by `threads.for_each_chunk`, with BLAS held to one thread;
the reasons, and the fallback when BLAS cannot be held, are in threads.py.
The Numba loops release the GIL (`nogil=True`) so that two chunks can run at
once.

A layer's bias and activation can come with the convolution
(`conv2d_bias_activation_*`): forward, they are applied to each chunk of y
right after its GEMM (the epilogue); backward, grad_y * act'(y) and the bias
gradient are formed chunk by chunk before the GEMMs (the prologue), and both
backward GEMMs run in the same pass over the chunks.  Separately, each would
be one more pass over the whole output, which for the MNIST CNN's first layer
is 11 MB.  The prologue also leaves out the output pixels whose gradient is
zero in every filter (see gradient_before_activation).

A max pool after the convolution can come with it too
(`conv2d_bias_activation_max_pool2d_*`): forward, each chunk of the
convolution's output is pooled while it is in cache, and only the output
pixels some window reads are computed; backward, the prologue builds each
chunk's gradient from the pooled output and its argmax.  The whole output is
never written out or read back.

The shape checks come from the reference set (reference/conv.py), so both sets
accept and refuse exactly the same arguments.
"""
import copy
import math

import numpy as np
from numba import njit

from .. import composed
from ..reference.conv import conv2d_output_size
from ..reference.pool import pool2d_output_size
from .elementwise import activation_code, activation_derivative_from_output, bias_and_activation
from .pool import max_pool_core_for, windows_2x2_side_by_side
from .threads import (BLAS_THREADED_CHUNK_BYTES, CACHE_CHUNK_BYTES, blas_on_one_thread,
                      can_share_out, for_each_chunk, lane_count)


# Inputs with at most this many channels use the transposed column matrix
# (im2col_transposed). Forward + kernel gradient on 128x28x28xC -> 32, one core:
# 7.5 -> 4.4 ms for C = 1, 14.8 -> 12.6 ms for C = 4, but slower from C = 6 on.
FEW_CHANNELS = 4


def result_dtype(array):
    """The dtype of a kernel's output: that of its first floating input."""
    if array.dtype not in (np.float32, np.float64):
        raise TypeError(f"conv kernels take float32 or float64 arrays, got {array.dtype}")
    return array.dtype


@njit(cache=True, nogil=True)
def im2col(x, kernel_size, stride, pad_before, dilation, output_size, pixels, cols):
    """Fill row k of cols (len(pixels), KH * KW * C) with the window of output pixel
    pixels[k], a flat index (n * OH + oh) * OW + ow, the list in increasing
    order: usually every pixel of x (see backpropagate for when some are left
    out).  The loops walk all output pixels and skip those not listed, which
    is cheaper than working (n, oh, ow) out of each index by division."""
    batch, height, width, channels = x.shape
    kernel_h, kernel_w = kernel_size
    out_h, out_w = output_size
    row = 0  # the next row of cols, which is also the position in pixels
    for n in range(batch):
        for oh in range(out_h):
            for ow in range(out_w):
                if row == pixels.size or pixels[row] != (n * out_h + oh) * out_w + ow:
                    continue
                for i in range(kernel_h):
                    h = oh * stride[0] - pad_before[0] + i * dilation[0]
                    for j in range(kernel_w):
                        w = ow * stride[1] - pad_before[1] + j * dilation[1]
                        col = (i * kernel_w + j) * channels
                        if 0 <= h < height and 0 <= w < width:
                            if channels == 1:
                                # A one-channel image (MNIST's first layer) would
                                # spend longer entering the channel loop than
                                # copying: this branch made im2col 1.7x faster there.
                                cols[row, col] = x[n, h, w, 0]
                            else:
                                for c in range(channels):
                                    cols[row, col + c] = x[n, h, w, c]
                        else:  # the window hangs over the zero padding
                            for c in range(channels):
                                cols[row, col + c] = 0.0
                row += 1


@njit(cache=True, nogil=True)
def im2col_transposed(x, kernel_size, stride, pad_before, dilation, output_size, cols_t):
    """im2col into the transposed matrix cols_t (KH * KW * C, N * OH * OW).

    For inputs with very few channels (MNIST's first layer has one), im2col's
    copy of `channels` values per window tap is a single value: the loop spends
    its time on bookkeeping.  Transposed, each (tap, channel) row receives the
    values of a whole output row at once, a run of OW consecutive writes that
    the compiler vectorizes: 2x faster on 128x28x28x1 (1.24 -> 0.64 ms), and
    the GEMMs read the transposed matrix as fast (see FEW_CHANNELS).
    """
    batch, height, width, channels = x.shape
    kernel_h, kernel_w = kernel_size
    out_h, out_w = output_size
    for n in range(batch):
        for oh in range(out_h):
            first_row = (n * out_h + oh) * out_w
            for i in range(kernel_h):
                h = oh * stride[0] - pad_before[0] + i * dilation[0]
                for j in range(kernel_w):
                    for c in range(channels):
                        col = (i * kernel_w + j) * channels + c
                        for ow in range(out_w):
                            w = ow * stride[1] - pad_before[1] + j * dilation[1]
                            if 0 <= h < height and 0 <= w < width:
                                cols_t[col, first_row + ow] = x[n, h, w, c]
                            else:  # the window hangs over the zero padding
                                cols_t[col, first_row + ow] = 0.0


@njit(cache=True, nogil=True)
def col2im(grad_cols, kernel_size, stride, pad_before, dilation, output_size, pixels, grad_x):
    """Overwrite grad_x with the sum of every row k of grad_cols added back onto the
    input pixels that the window of output pixel pixels[k] covers (pixels as in
    im2col; output pixels left out add nothing).

    Windows overlap when the stride is smaller than the kernel, so several rows
    add into the same pixel.  grad_x is zeroed here, chunk by chunk, while it is
    in cache, rather than by a separate pass over the whole batch.
    """
    batch, height, width, channels = grad_x.shape
    kernel_h, kernel_w = kernel_size
    out_h, out_w = output_size
    grad_x[...] = 0.0
    row = 0  # as in im2col
    for n in range(batch):
        for oh in range(out_h):
            for ow in range(out_w):
                if row == pixels.size or pixels[row] != (n * out_h + oh) * out_w + ow:
                    continue
                for i in range(kernel_h):
                    h = oh * stride[0] - pad_before[0] + i * dilation[0]
                    if h < 0 or h >= height:
                        continue  # gradient on padding belongs to no input
                    for j in range(kernel_w):
                        w = ow * stride[1] - pad_before[1] + j * dilation[1]
                        if w < 0 or w >= width:
                            continue
                        col = (i * kernel_w + j) * channels
                        for c in range(channels):
                            grad_x[n, h, w, c] += grad_cols[row, col + c]
                row += 1


class ConvGeometry:
    """The integers im2col and col2im need, computed and checked once per call."""

    def __init__(self, x_shape, w_shape, stride, padding, dilation):
        self.output_size = tuple(
            int(n) for n in conv2d_output_size(x_shape, w_shape, stride, padding, dilation)
        )
        self.kernel_size = (int(w_shape[0]), int(w_shape[1]))
        self.stride = (int(stride[0]), int(stride[1]))
        self.pad_before = (int(padding[0][0]), int(padding[1][0]))
        self.dilation = (int(dilation[0]), int(dilation[1]))
        self.pixels_per_image = self.output_size[0] * self.output_size[1]
        self.column_width = self.kernel_size[0] * self.kernel_size[1] * int(w_shape[2])
        self.filters = int(w_shape[3])
        self.kernel_shape = tuple(int(n) for n in w_shape)
        self.columns_transposed = int(w_shape[2]) <= FEW_CHANNELS

    def cropped_to(self, output_size):
        """This geometry with only the first output_size (rows, columns) of the
        output computed: im2col works out each output pixel's window from its
        position, so the pixels left out are simply never visited."""
        cropped = copy.copy(self)
        cropped.output_size = tuple(int(n) for n in output_size)
        cropped.pixels_per_image = cropped.output_size[0] * cropped.output_size[1]
        return cropped

    def arguments(self):
        return self.kernel_size, self.stride, self.pad_before, self.dilation, self.output_size

    def fill_columns(self, x, cols, pixels=None):
        """im2col of the images x into cols, a buffer from run_in_chunks: every
        output pixel, or only the listed ones (see im2col)."""
        if self.columns_transposed:
            im2col_transposed(x, *self.arguments(), cols.T)
        else:
            if pixels is None:
                pixels = np.arange(x.shape[0] * self.pixels_per_image)
            im2col(x, *self.arguments(), pixels, cols[:pixels.size])

    def run_in_chunks(self, batch, dtype, work):
        """Call work(start, stop, columns, lane) for chunks of images [start, stop)
        covering the batch.  `columns` is the lane's own buffer, read as a matrix
        with one row per output pixel of the chunk; for few channels it is the
        transpose of a C-ordered matrix (see im2col_transposed).  See the module
        docstring for the chunk sizes."""
        transposed = self.columns_transposed
        share_out = can_share_out()
        chunk_bytes = CACHE_CHUNK_BYTES if share_out else BLAS_THREADED_CHUNK_BYTES
        # A chunk's working set: its column matrix and its rows of y (or of the
        # gradient).  Counting the rows too matters for few channels, where
        # they are the larger part (9 columns, 32 filters in the MNIST CNN's
        # first layer): its batch of 128 is cut into 15 chunks instead of 3,
        # which two lanes share evenly.
        row_bytes = self.pixels_per_image * (self.column_width + self.filters) * dtype.itemsize
        images = max(1, chunk_bytes // max(1, row_bytes))
        starts = range(0, batch, images)
        buffers = {}

        def chunk(index, lane):
            start = starts[index]
            stop = min(start + images, batch)
            if lane not in buffers:
                buffers[lane] = np.empty(images * self.pixels_per_image * self.column_width,
                                         dtype=dtype)
            rows = (stop - start) * self.pixels_per_image
            flat = buffers[lane][: rows * self.column_width]
            if transposed:
                columns = flat.reshape(self.column_width, rows).T
            else:
                columns = flat.reshape(rows, self.column_width)
            work(start, stop, columns, lane)

        if not share_out:
            for_each_chunk(len(starts), chunk, lanes=1)
            return
        with blas_on_one_thread():
            for_each_chunk(len(starts), chunk, lanes=lane_count())


def conv2d_forward(x, w, stride, padding, dilation):
    """x (N, H, W, C) convolved with w (KH, KW, C, F) -> y (N, OH, OW, F)."""
    return convolve(x, w, stride, padding, dilation, epilogue=None)


def conv2d_bias_activation_forward(x, w, bias, stride, padding, dilation, activation):
    """act(conv2d(x, w) + bias) -> y (N, OH, OW, F), the bias and activation applied
    to each chunk of y as soon as its GEMM has written it, while it is in cache
    (a separate bias_activation pass would read and write all of y once more)."""
    code = activation_code(activation)
    check_bias(bias, w.shape)
    bias = np.ascontiguousarray(bias, dtype=result_dtype(x))
    return convolve(x, w, stride, padding, dilation,
                    epilogue=lambda y_rows: bias_and_activation(y_rows, bias, code, y_rows))


def convolve(x, w, stride, padding, dilation, epilogue):
    """The forward pass, im2col + GEMM chunk by chunk; epilogue(y_rows), if given,
    then runs on the chunk's rows of y (N * OH * OW, F)."""
    geometry = ConvGeometry(x.shape, w.shape, stride, padding, dilation)
    dtype = result_dtype(x)
    x = np.ascontiguousarray(x, dtype=dtype)
    filters = w.shape[3]
    w_matrix = np.ascontiguousarray(w, dtype=dtype).reshape(-1, filters)
    y = np.empty((x.shape[0], *geometry.output_size, filters), dtype=dtype)
    y_rows = y.reshape(-1, filters)
    pixels_per_image = geometry.pixels_per_image

    def forward_chunk(start, stop, cols, lane):
        geometry.fill_columns(x[start:stop], cols)
        chunk_rows = y_rows[start * pixels_per_image:stop * pixels_per_image]
        np.matmul(cols, w_matrix, out=chunk_rows)
        if epilogue is not None:
            epilogue(chunk_rows)

    geometry.run_in_chunks(x.shape[0], dtype, forward_chunk)
    return y


def conv2d_backward_input(grad_y, w, x_shape, stride, padding, dilation):
    """Gradient of the loss with respect to the input x, shape x_shape."""
    geometry = ConvGeometry(x_shape, w.shape, stride, padding, dilation)
    dtype = result_dtype(grad_y)
    grad_x, _, _ = backpropagate(geometry, x_shape, dtype,
                                 gradient_as_given(grad_y, geometry, dtype), w=w)
    return grad_x


def conv2d_backward_kernel(x, grad_y, w_shape, stride, padding, dilation):
    """Gradient of the loss with respect to the kernel w, shape w_shape."""
    geometry = ConvGeometry(x.shape, w_shape, stride, padding, dilation)
    dtype = result_dtype(grad_y)
    _, grad_w, _ = backpropagate(geometry, x.shape, dtype,
                                 gradient_as_given(grad_y, geometry, dtype), x=x)
    return grad_w


def conv2d_bias_activation_backward(grad_y, y, x, w, stride, padding, dilation, activation,
                                    need_grad_x, need_grad_w):
    """(grad_x, grad_w, grad_bias) of y = act(conv2d(x, w) + bias), from y itself.

    The activation's derivative and the bias gradient are the prologue of each
    chunk: grad_y * act'(y) is formed in a small buffer that the chunk's GEMMs
    read while it is in cache, instead of a full-size array written by one pass
    and read back by two more.  grad_x or grad_w is None when not asked for.
    """
    code = activation_code(activation)
    if y.shape != grad_y.shape:
        raise ValueError(f"conv2d: grad_y has shape {grad_y.shape}, y has {y.shape}")
    geometry = ConvGeometry(x.shape, w.shape, stride, padding, dilation)
    dtype = result_dtype(grad_y)
    return backpropagate(geometry, x.shape, dtype,
                         gradient_through_activation(grad_y, y, code, geometry, dtype),
                         x=x if need_grad_w else None, w=w if need_grad_x else None)


def gradient_as_given(grad_y, geometry, dtype):
    """chunk_gradient (see backpropagate) for the gradient of the convolution's own
    output, used as it is: every pixel kept."""
    grad_y_rows = as_rows(grad_y, geometry.filters, dtype)

    def chunk_gradient(sums, start, stop):
        grad_rows = grad_y_rows[start * geometry.pixels_per_image:stop * geometry.pixels_per_image]
        return grad_rows, np.arange(grad_rows.shape[0])

    return chunk_gradient


def gradient_through_activation(grad_y, y, code, geometry, dtype):
    """chunk_gradient for y = act(conv + bias): grad_y * act'(y), chunk by chunk
    (gradient_before_activation)."""
    grad_y_rows = as_rows(grad_y, geometry.filters, dtype)
    y_rows = as_rows(y, geometry.filters, dtype)

    def chunk_gradient(sums, start, stop):
        rows = slice(start * geometry.pixels_per_image, stop * geometry.pixels_per_image)
        return sums.prologue(grad_y_rows[rows], y_rows[rows], code, geometry.columns_transposed)

    return chunk_gradient


def as_rows(array, filters, dtype):
    """A contiguous (pixels, filters) view of an (N, OH, OW, F) array."""
    return np.ascontiguousarray(array, dtype=dtype).reshape(-1, filters)


def backpropagate(geometry, x_shape, dtype, chunk_gradient, x=None, w=None):
    """-> (grad_x, grad_w, grad_bias): both backward GEMMs in one pass over the
    chunks of the batch.  grad_w is computed when x is given, grad_x when w is.

    chunk_gradient(sums, start, stop) -> (grad_rows, pixels) gives, for the
    images [start, stop), the gradient of the convolution's own output (before
    any bias and activation), one row per pixel listed in pixels (a pixel left
    out has no gradient).  It may add the bias gradient to sums.bias, and use
    sums' scratch buffers.  grad_bias is the lanes' sums.bias added up (zeros
    when chunk_gradient adds nothing).
    """
    filters = geometry.filters
    if x is not None:
        x = np.ascontiguousarray(x, dtype=dtype)
    grad_x = None
    if w is not None:
        w_matrix_t = np.ascontiguousarray(w, dtype=dtype).reshape(-1, filters).T
        grad_x = np.empty(tuple(x_shape), dtype=dtype)
    # Each lane (thread) has its own buffers and running sums, so that lanes
    # never write into the same array.
    lanes = {}

    def backward_chunk(start, stop, cols, lane):
        if lane not in lanes:
            lanes[lane] = LaneSums(geometry.column_width, filters, dtype)
        sums = lanes[lane]
        grad_rows, pixels = chunk_gradient(sums, start, stop)
        kept = pixels.size
        if x is not None:
            geometry.fill_columns(x[start:stop], cols, pixels)
            # np.dot, not np.matmul: with a left operand of few rows (the 9
            # columns of a one-channel 3x3 kernel), two lanes running NumPy's
            # matmul at once took twice as long as one (they ran one after the
            # other); np.dot of the same shapes runs side by side
            # (benchmarks/NOTES.md, "Fourth round", 7).
            np.dot(cols[:kept].T, grad_rows, out=sums.product)
            sums.kernel += sums.product
        if w is not None:
            # The column buffer is free again: it now receives grad_cols, one
            # row per output pixel, the layout col2im reads.
            grad_cols = as_row_matrix(cols)[:kept]
            np.matmul(grad_rows, w_matrix_t, out=grad_cols)
            col2im(grad_cols, *geometry.arguments(), pixels, grad_x[start:stop])

    geometry.run_in_chunks(x_shape[0], dtype, backward_chunk)
    grad_w = None
    if x is not None:
        grad_w = sum_over_lanes([sums.kernel for sums in lanes.values()],
                                (geometry.column_width, filters), dtype)
        grad_w = grad_w.reshape(geometry.kernel_shape)
    grad_bias = sum_over_lanes([sums.bias for sums in lanes.values()], (filters,), dtype)
    return grad_x, grad_w, grad_bias


class Scratch:
    """One lane's scratch arrays, kept from chunk to chunk."""

    def __init__(self, dtype):
        self.dtype = dtype
        self.arrays = {}

    def buffer(self, name, shape, dtype=None):
        """Scratch array `name` of this shape, reused from chunk to chunk (made
        again, larger, when a chunk needs more)."""
        dtype = self.dtype if dtype is None else dtype
        size = math.prod(shape)  # not np.prod: a few microseconds a call, per chunk
        if name not in self.arrays or self.arrays[name].size < size:
            self.arrays[name] = np.empty(size, dtype=dtype)
        return self.arrays[name][:size].reshape(shape)


class LaneSums(Scratch):
    """One lane's running sums (kernel and bias gradient), and its scratch arrays."""

    def __init__(self, column_width, filters, dtype):
        super().__init__(dtype)
        self.filters = filters
        self.kernel = np.zeros((column_width, filters), dtype=dtype)
        self.product = np.empty_like(self.kernel)
        # float64, so that float32 bias gradients over many rows stay accurate.
        self.bias = np.zeros(filters)

    def prologue(self, chunk_grad_y, chunk_y, code, keep_every_pixel):
        """-> (grad_rows, pixels): gradient_before_activation on one chunk, into
        this lane's buffers, cut to the pixels kept.  The transposed column
        matrix (few channels) is filled a whole image row at a time, so it
        takes every pixel; there the GEMMs are cheap anyway."""
        grad_rows = self.buffer("gradient", chunk_grad_y.shape)
        pixels = self.buffer("pixels", chunk_grad_y.shape[:1], np.int64)
        kept = gradient_before_activation(chunk_grad_y, chunk_y, code, keep_every_pixel,
                                          grad_rows, pixels, self.bias)
        return grad_rows[:kept], pixels[:kept]

    def pooled_prologue(self, chunk_grad_y, chunk_y, chunk_argmax, code, output_size,
                        keep_every_pixel, windows_2x2):
        """-> (grad_rows, pixels): gradient_from_pooled on one chunk of images, into
        this lane's buffers, cut to the pixels kept (as prologue).  output_size:
        the convolution's (OH, OW); windows_2x2: the pool had 2x2 windows side by
        side (then gradient_from_2x2_pooled)."""
        pixels_per_image = output_size[0] * output_size[1]
        rows = chunk_grad_y.shape[0] * pixels_per_image
        grad_rows = self.buffer("gradient", (rows, self.filters))
        pixels = self.buffer("pixels", (rows,), np.int64)
        if windows_2x2:
            kept = gradient_from_2x2_pooled(chunk_grad_y, chunk_y, chunk_argmax, code,
                                            output_size, keep_every_pixel, grad_rows, pixels,
                                            self.bias)
        else:
            kept = gradient_from_pooled(chunk_grad_y, chunk_y, chunk_argmax, code,
                                        pixels_per_image, keep_every_pixel, grad_rows, pixels,
                                        self.bias)
        return grad_rows[:kept], pixels[:kept]


def sum_over_lanes(partial_sums, shape, dtype):
    """The lanes' partial sums added up in float64 (zeros when no lane ran: batch 0)."""
    total = np.zeros(shape)
    for partial in partial_sums:
        total += partial
    return total.astype(dtype)


def as_row_matrix(columns):
    """The C-ordered (rows, width) matrix over the memory of a column buffer, which
    run_in_chunks may hand out transposed (see im2col_transposed)."""
    if columns.flags.c_contiguous:
        return columns
    return columns.T.reshape(-1).reshape(columns.shape)


def check_bias(bias, w_shape):
    if bias.shape != (w_shape[-1],):
        raise ValueError(f"conv: bias has shape {bias.shape}, expected ({w_shape[-1]},), one "
                         f"value per filter of the kernel {tuple(w_shape)}")


@njit(cache=True, nogil=True)
def gradient_before_activation(grad_y_rows, y_rows, code, keep_every_pixel, grad_rows, pixels,
                               bias_sums):
    """The backward's prologue on one chunk: g = grad_y * act'(y) for every output
    pixel (row), its column sums added to bias_sums (float64).

    Rows where g is zero in every filter are left out unless keep_every_pixel:
    the others are packed into the first rows of grad_rows, their pixel index
    (row number in the chunk) in pixels.  Returns how many were kept.  A pixel
    without gradient adds nothing to either gradient, and each one left out
    saves a row in both backward GEMMs.  They are common: a 2x2 max pool over
    an odd size never reads the last row and column (the MNIST CNN's second
    convolution, 11x11 pooled to 5x5, sends a gradient to 100 of 121 pixels).
    """
    kept = 0
    for row in range(grad_y_rows.shape[0]):
        nonzero = False
        for channel in range(grad_y_rows.shape[1]):
            g = grad_y_rows[row, channel] * activation_derivative_from_output(
                y_rows[row, channel], code)
            grad_rows[kept, channel] = g
            bias_sums[channel] += g
            nonzero |= g != 0.0
        if nonzero or keep_every_pixel:
            pixels[kept] = row
            kept += 1
    return kept


# ----------------------------------------------------------------------------
# A convolution and the max pool that follows it, as one kernel
# ----------------------------------------------------------------------------
def conv2d_bias_activation_max_pool2d_forward(x, w, bias, stride, padding, dilation, activation,
                                              pool, pool_stride, pool_padding):
    """max_pool2d(act(conv2d(x, w) + bias)) -> (y, argmax), argmax indexing the
    convolution's output plane, as max_pool2d_forward's does.

    The convolution's output is never written out whole.  Each chunk of it
    lives in a lane's buffer, in cache: the GEMM writes it, the epilogue adds
    the bias and applies the activation, and the pool reads it.  As two ops,
    the whole output would be written to memory and read back by the pool
    (11 MB for the MNIST CNN's first layer); and the backward, below, would
    read it once more for act'.
    """
    code = activation_code(activation)
    check_bias(bias, w.shape)
    geometry = ConvGeometry(x.shape, w.shape, stride, padding, dilation)
    dtype = result_dtype(x)
    x = np.ascontiguousarray(x, dtype=dtype)
    bias = np.ascontiguousarray(bias, dtype=dtype)
    w_matrix = np.ascontiguousarray(w, dtype=dtype).reshape(-1, geometry.filters)
    conv_shape = (x.shape[0], *geometry.output_size, geometry.filters)
    pooled_size = pool2d_output_size(conv_shape, pool, pool_stride, pool_padding)
    y = np.empty((x.shape[0], *pooled_size, geometry.filters), dtype=dtype)
    argmax = np.empty(y.shape, dtype=np.int64)
    # Only the output pixels some window reads are computed: a 2x2 pool over
    # 11x11 (the MNIST CNN's second convolution) reads 10x10, 17% fewer.
    read = geometry.cropped_to(pixels_read(geometry.output_size, pooled_size, pool, pool_stride,
                                           pool_padding))
    pool_core = max_pool_core_for((x.shape[0], *read.output_size, geometry.filters),
                                  pooled_size, pool, pool_stride, pool_padding)
    lanes = {}

    def forward_chunk(start, stop, cols, lane):
        if lane not in lanes:
            lanes[lane] = Scratch(dtype)
        read.fill_columns(x[start:stop], cols)
        conv_rows = lanes[lane].buffer("convolution", (cols.shape[0], read.filters))
        np.matmul(cols, w_matrix, out=conv_rows)
        bias_and_activation(conv_rows, bias, code, conv_rows)
        pool_core(conv_rows.reshape(stop - start, *read.output_size, read.filters),
                  geometry.output_size[1], y[start:stop], argmax[start:stop])

    read.run_in_chunks(x.shape[0], dtype, forward_chunk)
    return y, argmax


def pixels_read(output_size, pooled_size, pool, pool_stride, pool_padding):
    """(rows, columns) at the top left of a convolution's output that a max pool of
    this geometry reads: up to the end of its last window along each axis."""
    return tuple(min(size, (count - 1) * int(stride) - int(before) + int(window))
                 for size, count, window, stride, (before, _) in zip(
                     output_size, pooled_size, pool, pool_stride, pool_padding))


def conv2d_bias_activation_max_pool2d_backward(grad_y, y, argmax, x, w, stride, padding,
                                               dilation, activation, pool, pool_stride,
                                               pool_padding, need_grad_x, need_grad_w):
    """(grad_x, grad_w, grad_bias) of y = max_pool2d(act(conv2d(x, w) + bias)), from
    the pooled y and its argmax.  The prologue of each chunk builds the
    gradient of the convolution's output from them, in cache
    (gradient_from_pooled); the rest is conv2d_bias_activation_backward's."""
    code = activation_code(activation)
    if not y.shape == grad_y.shape == argmax.shape:
        raise ValueError(f"conv2d + max_pool2d: grad_y {grad_y.shape}, y {y.shape} and argmax "
                         f"{argmax.shape} must have the same shape, the pool's output")
    geometry = ConvGeometry(x.shape, w.shape, stride, padding, dilation)
    dtype = result_dtype(grad_y)
    grad_y = np.ascontiguousarray(grad_y, dtype=dtype)
    y = np.ascontiguousarray(y, dtype=dtype)
    argmax = np.ascontiguousarray(argmax, dtype=np.int64)
    conv_shape = (x.shape[0], *geometry.output_size, geometry.filters)
    windows_2x2 = windows_2x2_side_by_side(conv_shape, y.shape[1:3], pool, pool_stride,
                                           pool_padding)

    def chunk_gradient(sums, start, stop):
        return sums.pooled_prologue(grad_y[start:stop], y[start:stop], argmax[start:stop], code,
                                    geometry.output_size, geometry.columns_transposed,
                                    windows_2x2)

    return backpropagate(geometry, x.shape, dtype, chunk_gradient,
                         x=x if need_grad_w else None, w=w if need_grad_x else None)


def conv1d_bias_activation_max_pool1d_forward(x, w, bias, stride, padding, dilation, activation,
                                              pool, pool_stride, pool_padding):
    """max_pool1d(act(conv1d(x, w) + bias)): the 2-D kernel on a height-1 view."""
    return composed.conv1d_bias_activation_max_pool1d_forward(
        conv2d_bias_activation_max_pool2d_forward, x, w, bias, stride, padding, dilation,
        activation, pool, pool_stride, pool_padding)


def conv1d_bias_activation_max_pool1d_backward(grad_y, y, argmax, x, w, stride, padding,
                                               dilation, activation, pool, pool_stride,
                                               pool_padding, need_grad_x, need_grad_w):
    return composed.conv1d_bias_activation_max_pool1d_backward(
        conv2d_bias_activation_max_pool2d_backward, grad_y, y, argmax, x, w, stride, padding,
        dilation, activation, pool, pool_stride, pool_padding, need_grad_x, need_grad_w)


@njit(cache=True, nogil=True)
def gradient_from_pooled(grad_pooled, y_pooled, argmax, code, pixels_per_image, keep_every_pixel,
                         grad_rows, pixels, bias_sums):
    """The backward's prologue of a convolution and its max pool, on one chunk of
    images: grad_rows (one row per pixel of the convolution's output) receives
    g = grad_pooled * act'(y_pooled) at each window's winner and zero
    elsewhere; g's column sums are added to bias_sums (float64).

    act' is read from the pooled y: a pooled value is its winner's activated
    value.  As in gradient_before_activation, rows that are zero in every
    filter are left out unless keep_every_pixel: the others are moved up to
    the first rows, their pixel index written to pixels.  Returns how many
    were kept.
    """
    batch, out_h, out_w, filters = grad_pooled.shape
    grad_rows[:, :] = 0.0
    for n in range(batch):
        first_row = n * pixels_per_image
        for oh in range(out_h):
            for ow in range(out_w):
                for channel in range(filters):
                    g = grad_pooled[n, oh, ow, channel] * activation_derivative_from_output(
                        y_pooled[n, oh, ow, channel], code)
                    grad_rows[first_row + argmax[n, oh, ow, channel], channel] += g
                    bias_sums[channel] += g
    return keep_rows_with_gradient(grad_rows, keep_every_pixel, pixels)


@njit(cache=True, nogil=True)
def gradient_from_2x2_pooled(grad_pooled, y_pooled, argmax, code, output_size, keep_every_pixel,
                             grad_rows, pixels, bias_sums):
    """gradient_from_pooled for 2x2 windows side by side, unpadded (the layer's
    default): each pixel of the convolution's output lies in at most one
    window, so each row of grad_rows is written once, g at the winner and
    zero at the window's three others, instead of zeroed whole and then
    added into.  On the MNIST CNN's first layer: 1.46 -> 0.4 ms.  Pixels in
    no window (the last row and column of an odd size) are zeroed."""
    batch, pooled_h, pooled_w, filters = grad_pooled.shape
    out_h, out_w = output_size
    for n in range(batch):
        first_row = n * out_h * out_w
        for oh in range(2 * pooled_h, out_h):  # rows below the last window
            for ow in range(out_w):
                grad_rows[first_row + oh * out_w + ow, :] = 0.0
        for oh in range(2 * pooled_h):  # the column right of the last window
            for ow in range(2 * pooled_w, out_w):
                grad_rows[first_row + oh * out_w + ow, :] = 0.0
        for ph in range(pooled_h):
            for pw in range(pooled_w):
                top_left = 2 * ph * out_w + 2 * pw
                top = first_row + top_left
                bottom = top + out_w
                for channel in range(filters):
                    g = grad_pooled[n, ph, pw, channel] * activation_derivative_from_output(
                        y_pooled[n, ph, pw, channel], code)
                    bias_sums[channel] += g
                    winner = argmax[n, ph, pw, channel] - top_left
                    grad_rows[top, channel] = g if winner == 0 else 0.0
                    grad_rows[top + 1, channel] = g if winner == 1 else 0.0
                    grad_rows[bottom, channel] = g if winner == out_w else 0.0
                    grad_rows[bottom + 1, channel] = g if winner == out_w + 1 else 0.0
    return keep_rows_with_gradient(grad_rows, keep_every_pixel, pixels)


@njit(cache=True, nogil=True)
def keep_rows_with_gradient(grad_rows, keep_every_pixel, pixels):
    """Move the rows of grad_rows that are not zero in every column up to the
    first rows (all of them when keep_every_pixel), their index to pixels;
    returns how many."""
    filters = grad_rows.shape[1]
    kept = 0
    for row in range(grad_rows.shape[0]):
        if not keep_every_pixel:
            nonzero = False
            for channel in range(filters):
                nonzero |= grad_rows[row, channel] != 0.0
            if not nonzero:
                continue
        if kept != row:  # kept < row: the row moves up over one already read
            for channel in range(filters):
                grad_rows[kept, channel] = grad_rows[row, channel]
        pixels[kept] = row
        kept += 1
    return kept


def conv1d_forward(x, w, stride, padding, dilation):
    """x (N, L, C) convolved with w (K, C, F) -> y (N, OL, F): conv2d on a height-1 view."""
    return composed.conv1d_forward(conv2d_forward, x, w, stride, padding, dilation)


def conv1d_backward_input(grad_y, w, x_shape, stride, padding, dilation):
    return composed.conv1d_backward_input(conv2d_backward_input, grad_y, w, x_shape, stride,
                                          padding, dilation)


def conv1d_backward_kernel(x, grad_y, w_shape, stride, padding, dilation):
    return composed.conv1d_backward_kernel(conv2d_backward_kernel, x, grad_y, w_shape, stride,
                                           padding, dilation)


def conv1d_bias_activation_forward(x, w, bias, stride, padding, dilation, activation):
    """act(conv1d(x, w) + bias): x (N, L, C), w (K, C, F) -> y (N, OL, F)."""
    return composed.conv1d_bias_activation_forward(conv2d_bias_activation_forward, x, w, bias,
                                                   stride, padding, dilation, activation)


def conv1d_bias_activation_backward(grad_y, y, x, w, stride, padding, dilation, activation,
                                    need_grad_x, need_grad_w):
    return composed.conv1d_bias_activation_backward(
        conv2d_bias_activation_backward, grad_y, y, x, w, stride, padding, dilation, activation,
        need_grad_x, need_grad_w)
