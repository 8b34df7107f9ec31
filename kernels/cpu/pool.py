"""Pooling kernels for the CPU, in Numba.

Pooling does almost no arithmetic per byte it reads, so the fastest plan is the
plainest one: one pass over the input with direct loops, the channel loop
innermost (channels are contiguous in NHWC, so it runs over adjacent memory).

Max pooling over a large batch is shared over the lanes (`threads.py`): each
lane pools whole images, from the batch's chunks.  (A Numba thread pool was
tried first and waited about 5 ms for a core, while BLAS's threads spun after
the convolutions' GEMMs; the lanes are threads that sleep, and BLAS is held to
one thread between the convolutions.)  Small inputs stay on one lane: handing
a chunk out costs tens of microseconds.

Padding is handled by skipping out-of-range positions rather than by padding a
copy of the input.  For max pooling that is the same as padding with -inf; for
average pooling the count of visited positions is the number of real elements.

The global pools are the 2-D pools with one window covering a whole (1, M)
plane, except global average pooling, which is NumPy's own mean (already a
compiled single pass).  The shape checks come from reference/pool.py, so both
sets accept and refuse the same arguments.
"""
import numpy as np
from numba import njit

from ..reference import pool as reference_pool
from ..reference.pool import pool2d_output_size
from ..shapes import pool1d_as_pool2d
from .threads import for_each_chunk, lane_count

# Inputs of at least this many elements are pooled over the lanes (the MNIST
# CNN's first pool reads 2.8 M; its second 0.6 M).
SHARE_OUT_ELEMENTS = 1_000_000


def result_dtype(array):
    """The dtype of a kernel's output: that of its first floating input."""
    if array.dtype not in (np.float32, np.float64):
        raise TypeError(f"pool kernels take float32 or float64 arrays, got {array.dtype}")
    return array.dtype


def as_ints(pairs_or_ints):
    """Plain Python ints, so every call hands Numba the same argument types."""
    return tuple(
        tuple(int(v) for v in item) if isinstance(item, (tuple, list)) else int(item)
        for item in pairs_or_ints
    )


@njit(cache=True, nogil=True)
def window_range(out_index, stride, pad_before, pool, length):
    """[start, stop) of the real (unpadded) input positions under one window."""
    start = out_index * stride - pad_before
    return max(start, 0), min(start + pool, length)


@njit(cache=True, nogil=True)
def max_pool2d_core(x, pool, stride, pad_before, plane_width, y, argmax):
    """y, argmax <- the max of each window of x, and where it is: argmax =
    h * plane_width + w, an index into a plane of that width.  That is x's
    own width, except for a convolution pooled in the same op that leaves
    the columns no window reads uncomputed (conv.py): then the full output's."""
    batch, height, width, channels = x.shape
    out_h, out_w = y.shape[1], y.shape[2]
    for n in range(batch):
        for oh in range(out_h):
            h_start, h_stop = window_range(oh, stride[0], pad_before[0], pool[0], height)
            for ow in range(out_w):
                w_start, w_stop = window_range(ow, stride[1], pad_before[1], pool[1], width)
                for c in range(channels):
                    y[n, oh, ow, c] = -np.inf
                    argmax[n, oh, ow, c] = h_start * plane_width + w_start
                # Row-major window order and a strict `>`: ties keep the first.
                for h in range(h_start, h_stop):
                    for w in range(w_start, w_stop):
                        for c in range(channels):
                            value = x[n, h, w, c]
                            if value > y[n, oh, ow, c]:
                                y[n, oh, ow, c] = value
                                argmax[n, oh, ow, c] = h * plane_width + w


@njit(cache=True, nogil=True)
def scatter_to_winners(grad_y, argmax, grad_x_planes):
    """grad_x_planes (N, H * W, C), zero on entry, receives each grad_y at its winner."""
    batch, out_h, out_w, channels = grad_y.shape
    for n in range(batch):
        for oh in range(out_h):
            for ow in range(out_w):
                for c in range(channels):
                    grad_x_planes[n, argmax[n, oh, ow, c], c] += grad_y[n, oh, ow, c]


@njit(cache=True, nogil=True)
def scatter_to_winners_band_by_band(grad_y, argmax, stride_h, pad_top, width, grad_x_planes):
    """scatter_to_winners for windows that do not overlap from one output row to
    the next (stride >= pool along the height), into a grad_x_planes that is
    not zeroed on entry.

    Then the windows of output row oh lie inside the band of input rows
    [oh * stride_h - pad_top, (oh + 1) * stride_h - pad_top).  Each band is
    zeroed just before its gradients are added, so every element of grad_x is
    written while it is in cache, instead of by a separate zeroing pass over
    the whole array that the scatter then reads back: on 128x26x26x32 (the
    MNIST CNN's first pool), with the caches cold as in a training step,
    1.82 -> 0.73 ms.
    """
    batch, out_h, out_w, channels = grad_y.shape
    height = grad_x_planes.shape[1] // width
    for n in range(batch):
        zeroed_rows = 0  # input rows [0, zeroed_rows) are zero or hold their gradient
        for oh in range(out_h):
            band_stop = min((oh + 1) * stride_h - pad_top, height)
            for position in range(zeroed_rows * width, band_stop * width):
                for c in range(channels):
                    grad_x_planes[n, position, c] = 0.0
            zeroed_rows = max(zeroed_rows, band_stop)
            for ow in range(out_w):
                for c in range(channels):
                    grad_x_planes[n, argmax[n, oh, ow, c], c] += grad_y[n, oh, ow, c]
        # Rows below the last window (a 'valid' pool of an odd height) get nothing.
        for position in range(zeroed_rows * width, height * width):
            for c in range(channels):
                grad_x_planes[n, position, c] = 0.0


@njit(cache=True)
def avg_pool2d_core(x, pool, stride, pad_before, y):
    """y, zero on entry, receives the mean of the real elements of every window."""
    batch, height, width, channels = x.shape
    out_h, out_w = y.shape[1], y.shape[2]
    for n in range(batch):
        for oh in range(out_h):
            h_start, h_stop = window_range(oh, stride[0], pad_before[0], pool[0], height)
            for ow in range(out_w):
                w_start, w_stop = window_range(ow, stride[1], pad_before[1], pool[1], width)
                for h in range(h_start, h_stop):
                    for w in range(w_start, w_stop):
                        for c in range(channels):
                            y[n, oh, ow, c] += x[n, h, w, c]
                count = (h_stop - h_start) * (w_stop - w_start)
                for c in range(channels):
                    y[n, oh, ow, c] /= count


@njit(cache=True)
def avg_pool2d_backward_core(grad_y, pool, stride, pad_before, grad_x):
    """grad_x, zero on entry, receives each window's gradient shared over its real elements."""
    batch, height, width, channels = grad_x.shape
    out_h, out_w = grad_y.shape[1], grad_y.shape[2]
    for n in range(batch):
        for oh in range(out_h):
            h_start, h_stop = window_range(oh, stride[0], pad_before[0], pool[0], height)
            for ow in range(out_w):
                w_start, w_stop = window_range(ow, stride[1], pad_before[1], pool[1], width)
                count = (h_stop - h_start) * (w_stop - w_start)
                for h in range(h_start, h_stop):
                    for w in range(w_start, w_stop):
                        for c in range(channels):
                            grad_x[n, h, w, c] += grad_y[n, oh, ow, c] / count


@njit(cache=True, nogil=True)
def max_pool2x2_core(x, plane_width, y, argmax):
    """max_pool2d_core for the layer's default, 2x2 windows side by side, unpadded.

    With the window's four elements named one by one, each channel keeps its
    running maximum in a register and the compiler turns the comparisons into
    vector selects over the channels: 1.5x faster than the general loop, whose
    running maxima live in memory (1.6 -> 1.05 ms on 128x26x26x32, one core).
    Same rule as the general loop: start from -inf, a strict `>` replaces.
    """
    batch, _, _, channels = x.shape
    out_h, out_w = y.shape[1], y.shape[2]
    for n in range(batch):
        for oh in range(out_h):
            h = 2 * oh
            for ow in range(out_w):
                w = 2 * ow
                top_left = h * plane_width + w
                for c in range(channels):
                    best = -np.inf
                    winner = top_left
                    value = x[n, h, w, c]
                    if value > best:
                        best = value
                    value = x[n, h, w + 1, c]
                    if value > best:
                        best = value
                        winner = top_left + 1
                    value = x[n, h + 1, w, c]
                    if value > best:
                        best = value
                        winner = top_left + plane_width
                    value = x[n, h + 1, w + 1, c]
                    if value > best:
                        best = value
                        winner = top_left + plane_width + 1
                    y[n, oh, ow, c] = best
                    argmax[n, oh, ow, c] = winner


def over_the_lanes(batch, elements, pool_images):
    """pool_images(start, stop) for chunks of the batch, shared over the lanes when
    the input has SHARE_OUT_ELEMENTS or more; the images are independent."""
    lanes = lane_count() if elements >= SHARE_OUT_ELEMENTS else 1
    chunk_count = min(batch, lanes)
    if chunk_count <= 1:
        pool_images(0, batch)
        return
    bounds = [batch * index // chunk_count for index in range(chunk_count + 1)]
    for_each_chunk(chunk_count, lambda index, lane: pool_images(bounds[index], bounds[index + 1]),
                   lanes)


def windows_2x2_side_by_side(x_shape, output_size, pool, stride, padding):
    """True for the layer's default: 2x2 windows side by side, unpadded, every
    window inside x (N, H, W, C).  Each element of x then lies in one window
    at most."""
    pool, stride, pad_before = as_ints(pool), as_ints(stride), as_ints(p[0] for p in padding)
    windows_inside = 2 * output_size[0] <= x_shape[1] and 2 * output_size[1] <= x_shape[2]
    return pool == (2, 2) and stride == (2, 2) and pad_before == (0, 0) and windows_inside


def max_pool_core_for(x_shape, output_size, pool, stride, padding):
    """core(x, plane_width, y, argmax): the max pooling loop for this geometry, over
    any run of whole images (plane_width: see max_pool2d_core).  The 2x2 loop
    serves windows_2x2_side_by_side; the general loop every other geometry."""
    if windows_2x2_side_by_side(x_shape, output_size, pool, stride, padding):
        return max_pool2x2_core
    pool, stride, pad_before = as_ints(pool), as_ints(stride), as_ints(p[0] for p in padding)
    return lambda x, plane_width, y, argmax: max_pool2d_core(x, pool, stride, pad_before,
                                                             plane_width, y, argmax)


def max_pool2d_forward(x, pool, stride, padding):
    """x (N, H, W, C) -> (y, argmax), both (N, OH, OW, C); argmax = h * W + w."""
    output_size = pool2d_output_size(x.shape, pool, stride, padding)
    dtype = result_dtype(x)
    x = np.ascontiguousarray(x)
    shape = (x.shape[0], *output_size, x.shape[3])
    y = np.empty(shape, dtype=dtype)
    argmax = np.empty(shape, dtype=np.int64)
    core = max_pool_core_for(x.shape, output_size, pool, stride, padding)

    def pool_images(start, stop):
        core(x[start:stop], x.shape[2], y[start:stop], argmax[start:stop])

    over_the_lanes(x.shape[0], x.size, pool_images)
    return y, argmax


def max_pool2d_backward(grad_y, argmax, x_shape, pool=None, stride=None, padding=None):
    """Each window's gradient goes to its winner; overlapping windows add up.
    Given the forward's geometry, grad_x is written band by band where it can be
    (see scatter_to_winners_band_by_band)."""
    batch, height, width, channels = x_shape
    dtype = result_dtype(grad_y)
    grad_y = np.ascontiguousarray(grad_y)
    argmax = np.ascontiguousarray(argmax, dtype=np.int64)
    rows_of_windows_overlap = pool is None or int(stride[0]) < int(pool[0])
    if not rows_of_windows_overlap:
        grad_x = np.empty((batch, height * width, channels), dtype=dtype)
        stride_h, pad_top = int(stride[0]), int(padding[0][0])

        def scatter_images(start, stop):
            scatter_to_winners_band_by_band(grad_y[start:stop], argmax[start:stop], stride_h,
                                            pad_top, width, grad_x[start:stop])
    else:
        grad_x = np.zeros((batch, height * width, channels), dtype=dtype)

        def scatter_images(start, stop):
            scatter_to_winners(grad_y[start:stop], argmax[start:stop], grad_x[start:stop])
    over_the_lanes(batch, grad_x.size, scatter_images)
    return grad_x.reshape(tuple(x_shape))


def avg_pool2d_forward(x, pool, stride, padding):
    """x (N, H, W, C) -> y (N, OH, OW, C): mean over the real elements of each window."""
    output_size = pool2d_output_size(x.shape, pool, stride, padding)
    dtype = result_dtype(x)
    y = np.zeros((x.shape[0], *output_size, x.shape[3]), dtype=dtype)
    avg_pool2d_core(
        np.ascontiguousarray(x), as_ints(pool), as_ints(stride), as_ints(p[0] for p in padding), y
    )
    return y


def avg_pool2d_backward(grad_y, x_shape, pool, stride, padding):
    """Each window's gradient is shared equally among its real elements."""
    pool2d_output_size(x_shape, pool, stride, padding)
    dtype = result_dtype(grad_y)
    grad_x = np.zeros(tuple(x_shape), dtype=dtype)
    avg_pool2d_backward_core(
        np.ascontiguousarray(grad_y), as_ints(pool), as_ints(stride),
        as_ints(p[0] for p in padding), grad_x,
    )
    return grad_x


def max_pool1d_forward(x, pool, stride, padding):
    """x (N, L, C) -> (y, argmax), both (N, OL, C); argmax indexes L."""
    y, argmax = max_pool2d_forward(x[:, None], *pool1d_as_pool2d(pool, stride, padding))
    return y[:, 0], argmax[:, 0]


def max_pool1d_backward(grad_y, argmax, x_shape, pool=None, stride=None, padding=None):
    batch, length, channels = x_shape
    geometry = () if pool is None else pool1d_as_pool2d(pool, stride, padding)
    grad_x = max_pool2d_backward(grad_y[:, None], argmax[:, None], (batch, 1, length, channels),
                                 *geometry)
    return grad_x[:, 0]


def avg_pool1d_forward(x, pool, stride, padding):
    return avg_pool2d_forward(x[:, None], *pool1d_as_pool2d(pool, stride, padding))[:, 0]


def avg_pool1d_backward(grad_y, x_shape, pool, stride, padding):
    batch, length, channels = x_shape
    grad_x = avg_pool2d_backward(
        grad_y[:, None], (batch, 1, length, channels), *pool1d_as_pool2d(pool, stride, padding)
    )
    return grad_x[:, 0]


def global_avg_pool_forward(x):
    """x (N, ..., C) -> y (N, C): NumPy's mean already makes one compiled pass."""
    return reference_pool.global_avg_pool_forward(x)


def global_avg_pool_backward(grad_y, x_shape):
    return reference_pool.global_avg_pool_backward(grad_y, x_shape)


def global_max_pool_forward(x):
    """x (N, ..., C) -> (y, argmax), both (N, C): one window over the (1, M) plane."""
    batch, channels = x.shape[0], x.shape[-1]
    plane = x.reshape(batch, 1, -1, channels)
    positions = plane.shape[2]
    y, argmax = max_pool2d_forward(plane, (1, positions), (1, positions), ((0, 0), (0, 0)))
    return y[:, 0, 0], argmax[:, 0, 0]


def global_max_pool_backward(grad_y, argmax, x_shape):
    batch, channels = x_shape[0], x_shape[-1]
    positions = int(np.prod(x_shape[1:-1]))
    grad_x = max_pool2d_backward(
        grad_y[:, None, None], argmax[:, None, None], (batch, 1, positions, channels),
        (1, positions), (1, positions), ((0, 0), (0, 0)),
    )
    return grad_x.reshape(tuple(x_shape))
