"""Convolution kernels for the CPU: Numba moves the data, BLAS does the arithmetic.

A convolution is a matrix product in disguise.  `im2col` copies, for every
output pixel, the KH * KW * C input values under its window into one row of a
"column matrix" (zeros where the window hangs over the padding).  Then

    forward          y       = cols @ w_matrix            (one GEMM)
    kernel gradient  grad_w  = cols.T @ grad_y            (one GEMM)
    input gradient   grad_cols = grad_y @ w_matrix.T      (one GEMM)
                     grad_x  = col2im(grad_cols)          (scatter-add back)

where w_matrix is the kernel (KH, KW, C, F) read as (KH * KW * C, F): its row
order (tap row, tap column, channel) is the column order im2col writes.  GEMMs
run near the machine's peak in BLAS, so the Numba code only has to copy.

The batch goes through in chunks, so that the column matrix (KH * KW times
the size of the input) never takes more than COLUMN_CHUNK_BYTES of memory.

The Numba loops are serial on purpose: BLAS already runs the GEMMs on every
core, and handing the cores back and forth between BLAS's threads and Numba's
threads cost about 5 ms per hand-off on a 2-core machine (each pool spins for a
while before it sleeps), far more than the copy itself (about 1 ms for a
128-image batch).  See benchmarks/NOTES.md.

The shape checks come from the reference set (reference/conv.py), so both sets
accept and refuse exactly the same arguments.
"""
import numpy as np
from numba import njit

from ..reference.conv import conv1d_as_conv2d, conv2d_output_size

# Bytes of column matrix per chunk.  Chunks keep the memory a call needs bounded
# however large the batch.  Smaller chunks (2 MiB) ran about 15% faster on one
# thread, the matrix still warm in cache when the GEMM reads it; but every chunk
# is one more BLAS call whose threads must all be scheduled before it finishes,
# and on a busy 2-core machine 2 MiB chunks took 3.6x longer (median) than one
# call per pass.  32 MiB runs each MNIST-sized layer in a single GEMM.
# (benchmarks/NOTES.md has the measurements.)
COLUMN_CHUNK_BYTES = 32 * 2**20


def result_dtype(array):
    """The dtype of a kernel's output: that of its first floating input."""
    if array.dtype not in (np.float32, np.float64):
        raise TypeError(f"conv kernels take float32 or float64 arrays, got {array.dtype}")
    return array.dtype


def batch_chunks(batch, row_bytes_per_image):
    """(start, stop) ranges of images whose column matrix fits COLUMN_CHUNK_BYTES."""
    images = max(1, COLUMN_CHUNK_BYTES // max(1, row_bytes_per_image))
    return [(start, min(start + images, batch)) for start in range(0, batch, images)]


@njit(cache=True)
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


@njit(cache=True)
def col2im(grad_cols, kernel_size, stride, pad_before, dilation, output_size, grad_x):
    """Add every row of grad_cols back onto the input pixels its window covers.

    grad_x must start at zero.  Windows overlap when the stride is smaller than
    the kernel, so several rows add into the same pixel.
    """
    batch, height, width, channels = grad_x.shape
    kernel_h, kernel_w = kernel_size
    out_h, out_w = output_size
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

    def arguments(self):
        return self.kernel_size, self.stride, self.pad_before, self.dilation, self.output_size

    def chunks(self, batch, itemsize):
        """(image range, row range) pairs covering the batch chunk by chunk."""
        row_bytes = self.pixels_per_image * self.column_width * itemsize
        for start, stop in batch_chunks(batch, row_bytes):
            yield (start, stop), (start * self.pixels_per_image, stop * self.pixels_per_image)

    def column_buffer(self, batch, dtype):
        """Room for the column matrix of the largest chunk."""
        largest = max((stop - start for (start, stop), _ in self.chunks(batch, dtype.itemsize)),
                      default=0)
        return np.empty((largest * self.pixels_per_image, self.column_width), dtype=dtype)


def conv2d_forward(x, w, stride, padding, dilation):
    """x (N, H, W, C) convolved with w (KH, KW, C, F) -> y (N, OH, OW, F)."""
    geometry = ConvGeometry(x.shape, w.shape, stride, padding, dilation)
    dtype = result_dtype(x)
    x = np.ascontiguousarray(x, dtype=dtype)
    filters = w.shape[3]
    w_matrix = np.ascontiguousarray(w, dtype=dtype).reshape(-1, filters)
    y = np.empty((x.shape[0], *geometry.output_size, filters), dtype=dtype)
    y_rows = y.reshape(-1, filters)
    buffer = geometry.column_buffer(x.shape[0], dtype)
    for (start, stop), (row_start, row_stop) in geometry.chunks(x.shape[0], dtype.itemsize):
        cols = buffer[: row_stop - row_start]
        im2col(x[start:stop], *geometry.arguments(), cols)
        np.matmul(cols, w_matrix, out=y_rows[row_start:row_stop])
    return y


def conv2d_backward_input(grad_y, w, x_shape, stride, padding, dilation):
    """Gradient of the loss with respect to the input x, shape x_shape."""
    geometry = ConvGeometry(x_shape, w.shape, stride, padding, dilation)
    dtype = result_dtype(grad_y)
    filters = w.shape[3]
    grad_y_rows = np.ascontiguousarray(grad_y, dtype=dtype).reshape(-1, filters)
    w_matrix_t = np.ascontiguousarray(w, dtype=dtype).reshape(-1, filters).T
    grad_x = np.zeros(tuple(x_shape), dtype=dtype)
    buffer = geometry.column_buffer(x_shape[0], dtype)
    for (start, stop), (row_start, row_stop) in geometry.chunks(x_shape[0], dtype.itemsize):
        grad_cols = buffer[: row_stop - row_start]
        np.matmul(grad_y_rows[row_start:row_stop], w_matrix_t, out=grad_cols)
        col2im(grad_cols, *geometry.arguments(), grad_x[start:stop])
    return grad_x


def conv2d_backward_kernel(x, grad_y, w_shape, stride, padding, dilation):
    """Gradient of the loss with respect to the kernel w, shape w_shape."""
    geometry = ConvGeometry(x.shape, w_shape, stride, padding, dilation)
    dtype = result_dtype(x)
    x = np.ascontiguousarray(x, dtype=dtype)
    filters = w_shape[3]
    grad_y_rows = np.ascontiguousarray(grad_y, dtype=dtype).reshape(-1, filters)
    grad_w = np.zeros((geometry.column_width, filters), dtype=dtype)
    chunk_grad_w = np.empty_like(grad_w)
    buffer = geometry.column_buffer(x.shape[0], dtype)
    for (start, stop), (row_start, row_stop) in geometry.chunks(x.shape[0], dtype.itemsize):
        cols = buffer[: row_stop - row_start]
        im2col(x[start:stop], *geometry.arguments(), cols)
        np.matmul(cols.T, grad_y_rows[row_start:row_stop], out=chunk_grad_w)
        grad_w += chunk_grad_w
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
