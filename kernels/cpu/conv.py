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
each: the chunk im2col writes is still in the core's cache when the GEMM reads
it (about 20% faster than one GEMM over the whole batch).  Chunks are shared
out between threads by `threads.for_each_chunk`, with BLAS held to one thread;
the reasons, and the fallback when BLAS cannot be held, are in threads.py.
The Numba loops release the GIL (`nogil=True`) so that two chunks can run at
once.

The shape checks come from the reference set (reference/conv.py), so both sets
accept and refuse exactly the same arguments.
"""
import numpy as np
from numba import njit

from ..reference.conv import conv1d_as_conv2d, conv2d_output_size
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
def im2col(x, kernel_size, stride, pad_before, dilation, output_size, cols):
    """Fill cols (N * OH * OW, KH * KW * C) with the window of every output pixel."""
    batch, height, width, channels = x.shape
    kernel_h, kernel_w = kernel_size
    out_h, out_w = output_size
    for n in range(batch):
        for oh in range(out_h):
            for ow in range(out_w):
                row = (n * out_h + oh) * out_w + ow
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
def col2im(grad_cols, kernel_size, stride, pad_before, dilation, output_size, grad_x):
    """Overwrite grad_x with the sum of every row of grad_cols added back onto the
    input pixels its window covers.

    Windows overlap when the stride is smaller than the kernel, so several rows
    add into the same pixel.  grad_x is zeroed here, chunk by chunk, while it is
    in cache, rather than by a separate pass over the whole batch.
    """
    batch, height, width, channels = grad_x.shape
    kernel_h, kernel_w = kernel_size
    out_h, out_w = output_size
    grad_x[...] = 0.0
    for n in range(batch):
        for oh in range(out_h):
            for ow in range(out_w):
                row = (n * out_h + oh) * out_w + ow
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
        self.columns_transposed = int(w_shape[2]) <= FEW_CHANNELS

    def arguments(self):
        return self.kernel_size, self.stride, self.pad_before, self.dilation, self.output_size

    def fill_columns(self, x, cols):
        """im2col of the images x into cols, a buffer from run_in_chunks."""
        if self.columns_transposed:
            im2col_transposed(x, *self.arguments(), cols.T)
        else:
            im2col(x, *self.arguments(), cols)

    def run_in_chunks(self, batch, dtype, work, rows_for_col2im=False):
        """Call work(start, stop, columns, lane) for chunks of images [start, stop)
        covering the batch.  `columns` is the lane's own buffer, read as a matrix
        with one row per output pixel of the chunk; for few channels it is the
        transpose of a C-ordered matrix (see im2col_transposed), unless
        `rows_for_col2im`.  See the module docstring for the chunk sizes."""
        transposed = self.columns_transposed and not rows_for_col2im
        share_out = can_share_out()
        chunk_bytes = CACHE_CHUNK_BYTES if share_out else BLAS_THREADED_CHUNK_BYTES
        row_bytes = self.pixels_per_image * self.column_width * dtype.itemsize
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
    geometry = ConvGeometry(x.shape, w.shape, stride, padding, dilation)
    dtype = result_dtype(x)
    x = np.ascontiguousarray(x, dtype=dtype)
    filters = w.shape[3]
    w_matrix = np.ascontiguousarray(w, dtype=dtype).reshape(-1, filters)
    y = np.empty((x.shape[0], *geometry.output_size, filters), dtype=dtype)
    y_rows = y.reshape(-1, filters)
    pixels = geometry.pixels_per_image

    def forward_chunk(start, stop, cols, lane):
        geometry.fill_columns(x[start:stop], cols)
        np.matmul(cols, w_matrix, out=y_rows[start * pixels:stop * pixels])

    geometry.run_in_chunks(x.shape[0], dtype, forward_chunk)
    return y


def conv2d_backward_input(grad_y, w, x_shape, stride, padding, dilation):
    """Gradient of the loss with respect to the input x, shape x_shape."""
    geometry = ConvGeometry(x_shape, w.shape, stride, padding, dilation)
    dtype = result_dtype(grad_y)
    filters = w.shape[3]
    grad_y_rows = np.ascontiguousarray(grad_y, dtype=dtype).reshape(-1, filters)
    w_matrix_t = np.ascontiguousarray(w, dtype=dtype).reshape(-1, filters).T
    grad_x = np.empty(tuple(x_shape), dtype=dtype)
    pixels = geometry.pixels_per_image

    def input_chunk(start, stop, grad_cols, lane):
        np.matmul(grad_y_rows[start * pixels:stop * pixels], w_matrix_t, out=grad_cols)
        col2im(grad_cols, *geometry.arguments(), grad_x[start:stop])

    geometry.run_in_chunks(x_shape[0], dtype, input_chunk, rows_for_col2im=True)
    return grad_x


def conv2d_backward_kernel(x, grad_y, w_shape, stride, padding, dilation):
    """Gradient of the loss with respect to the kernel w, shape w_shape."""
    geometry = ConvGeometry(x.shape, w_shape, stride, padding, dilation)
    dtype = result_dtype(x)
    x = np.ascontiguousarray(x, dtype=dtype)
    filters = w_shape[3]
    grad_y_rows = np.ascontiguousarray(grad_y, dtype=dtype).reshape(-1, filters)
    pixels = geometry.pixels_per_image
    # One running sum per lane, so that lanes never add into the same array.
    sums, products = {}, {}

    def kernel_chunk(start, stop, cols, lane):
        geometry.fill_columns(x[start:stop], cols)
        if lane not in sums:
            sums[lane] = np.zeros((geometry.column_width, filters), dtype=dtype)
            products[lane] = np.empty_like(sums[lane])
        np.matmul(cols.T, grad_y_rows[start * pixels:stop * pixels], out=products[lane])
        sums[lane] += products[lane]

    geometry.run_in_chunks(x.shape[0], dtype, kernel_chunk)
    grad_w = np.zeros((geometry.column_width, filters), dtype=dtype)
    for lane_sum in sums.values():
        grad_w += lane_sum
    return grad_w.reshape(tuple(w_shape))


def conv1d_forward(x, w, stride, padding, dilation):
    """x (N, L, C) convolved with w (K, C, F) -> y (N, OL, F)."""
    y = conv2d_forward(x[:, None], w[None], *conv1d_as_conv2d(stride, padding, dilation))
    return y[:, 0]


def conv1d_backward_input(grad_y, w, x_shape, stride, padding, dilation):
    batch, length, channels = x_shape
    grad_x = conv2d_backward_input(
        grad_y[:, None], w[None], (batch, 1, length, channels),
        *conv1d_as_conv2d(stride, padding, dilation),
    )
    return grad_x[:, 0]


def conv1d_backward_kernel(x, grad_y, w_shape, stride, padding, dilation):
    grad_w = conv2d_backward_kernel(
        x[:, None], grad_y[:, None], (1, *w_shape),
        *conv1d_as_conv2d(stride, padding, dilation),
    )
    return grad_w[0]
