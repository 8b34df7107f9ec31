// Pooling kernels: max and average over windows, and the global pools.
//
// Images are NHWC.  The windowed kernels take the same geometry arguments,
// in the same order:
//     batch, height, width, channels, out_h, out_w,
//     pool_h, pool_w, stride_h, stride_w, pad_top, pad_left
// Padded positions never contribute: they are skipped, never read.
#include "common.cuh"

// Rows (or columns) of the input that a window starting at `start` covers:
// the part of [start, start + size) inside [0, limit).
__device__ inline Index covered_length(Index start, Index size, Index limit)
{
    const Index first = start > 0 ? start : 0;
    const Index end = start + size < limit ? start + size : limit;
    return end - first;
}

// One thread per output element (n, oh, ow, c).  argmax receives the flat
// index ih * width + iw of the winner within its input plane.  Strictly
// greater replaces the winner, so ties go to the first element in row-major
// window order; `found` lets even a window of -inf values have a winner.
template <typename T>
__global__ void max_pool2d_forward(const T* x, T* y, long long* argmax,
                                   Index batch, Index height, Index width, Index channels,
                                   Index out_h, Index out_w, Index pool_h, Index pool_w,
                                   Index stride_h, Index stride_w, Index pad_top, Index pad_left)
{
    const Index total = batch * out_h * out_w * channels;
    for (Index i = first_index(); i < total; i += index_stride()) {
        const Index c = i % channels;
        const Index ow = (i / channels) % out_w;
        const Index oh = (i / (channels * out_w)) % out_h;
        const Index n = i / (channels * out_w * out_h);
        const T* plane = x + n * height * width * channels;
        bool found = false;
        T best = negative_infinity(T(0));
        Index best_index = 0;
        for (Index ph = 0; ph < pool_h; ++ph) {
            const Index ih = oh * stride_h - pad_top + ph;
            if (ih < 0 || ih >= height) {
                continue;
            }
            for (Index pw = 0; pw < pool_w; ++pw) {
                const Index iw = ow * stride_w - pad_left + pw;
                if (iw < 0 || iw >= width) {
                    continue;
                }
                const T value = plane[(ih * width + iw) * channels + c];
                if (!found || value > best) {
                    found = true;
                    best = value;
                    best_index = ih * width + iw;
                }
            }
        }
        y[i] = best;
        argmax[i] = best_index;
    }
}

// The backward of every max pool: each output's gradient is added to the
// input element that won its window.  Windows overlap when the stride is
// smaller than the pool, so two outputs may add to the same element: atomicAdd.
// grad_y and argmax are (batch, out_positions, channels) with argmax a flat
// index into the (in_positions) input positions of the same sample.
template <typename T>
__global__ void scatter_to_argmax(const T* grad_y, const long long* argmax, T* grad_x,
                                  Index batch, Index out_positions, Index in_positions,
                                  Index channels)
{
    const Index total = batch * out_positions * channels;
    for (Index i = first_index(); i < total; i += index_stride()) {
        const Index c = i % channels;
        const Index n = i / (channels * out_positions);
        const Index winner = argmax[i];
        // An index outside the plane can only come from a corrupted argmax;
        // skipping it is better than writing to memory that is not grad_x.
        if (winner < 0 || winner >= in_positions) {
            continue;
        }
        atomicAdd(&grad_x[(n * in_positions + winner) * channels + c], grad_y[i]);
    }
}

// One thread per output element: the mean over the real (unpadded) elements
// of its window, as Keras does for 'same' padding.
template <typename T>
__global__ void avg_pool2d_forward(const T* x, T* y,
                                   Index batch, Index height, Index width, Index channels,
                                   Index out_h, Index out_w, Index pool_h, Index pool_w,
                                   Index stride_h, Index stride_w, Index pad_top, Index pad_left)
{
    const Index total = batch * out_h * out_w * channels;
    for (Index i = first_index(); i < total; i += index_stride()) {
        const Index c = i % channels;
        const Index ow = (i / channels) % out_w;
        const Index oh = (i / (channels * out_w)) % out_h;
        const Index n = i / (channels * out_w * out_h);
        const T* plane = x + n * height * width * channels;
        T sum = T(0);
        for (Index ph = 0; ph < pool_h; ++ph) {
            const Index ih = oh * stride_h - pad_top + ph;
            if (ih < 0 || ih >= height) {
                continue;
            }
            for (Index pw = 0; pw < pool_w; ++pw) {
                const Index iw = ow * stride_w - pad_left + pw;
                if (iw < 0 || iw >= width) {
                    continue;
                }
                sum += plane[(ih * width + iw) * channels + c];
            }
        }
        const Index count = covered_length(oh * stride_h - pad_top, pool_h, height)
                          * covered_length(ow * stride_w - pad_left, pool_w, width);
        y[i] = sum / T(count);
    }
}

// One thread per input element (n, ih, iw, c), gathering its share from every
// window that contains it (deterministic, no atomics).  Offset ph of window
// oh sits on row ih when oh * stride_h - pad_top + ph == ih.
template <typename T>
__global__ void avg_pool2d_backward(const T* grad_y, T* grad_x,
                                    Index batch, Index height, Index width, Index channels,
                                    Index out_h, Index out_w, Index pool_h, Index pool_w,
                                    Index stride_h, Index stride_w, Index pad_top, Index pad_left)
{
    const Index total = batch * height * width * channels;
    for (Index i = first_index(); i < total; i += index_stride()) {
        const Index c = i % channels;
        const Index iw = (i / channels) % width;
        const Index ih = (i / (channels * width)) % height;
        const Index n = i / (channels * width * height);
        T sum = T(0);
        for (Index ph = 0; ph < pool_h; ++ph) {
            const Index row_offset = ih + pad_top - ph;
            if (row_offset < 0 || row_offset % stride_h != 0) {
                continue;
            }
            const Index oh = row_offset / stride_h;
            if (oh >= out_h) {
                continue;
            }
            for (Index pw = 0; pw < pool_w; ++pw) {
                const Index column_offset = iw + pad_left - pw;
                if (column_offset < 0 || column_offset % stride_w != 0) {
                    continue;
                }
                const Index ow = column_offset / stride_w;
                if (ow >= out_w) {
                    continue;
                }
                const Index count = covered_length(oh * stride_h - pad_top, pool_h, height)
                                  * covered_length(ow * stride_w - pad_left, pool_w, width);
                sum += grad_y[((n * out_h + oh) * out_w + ow) * channels + c] / T(count);
            }
        }
        grad_x[i] = sum;
    }
}

// The global pools see x as (batch, positions, channels): one thread per
// (n, c) walks the positions; neighbouring threads read neighbouring channels.
template <typename T>
__global__ void global_avg_pool_forward(const T* x, T* y,
                                        Index batch, Index positions, Index channels)
{
    const Index total = batch * channels;
    for (Index i = first_index(); i < total; i += index_stride()) {
        const Index c = i % channels;
        const Index n = i / channels;
        T sum = T(0);
        for (Index p = 0; p < positions; ++p) {
            sum += x[(n * positions + p) * channels + c];
        }
        y[i] = sum / T(positions);
    }
}

// One thread per input element: every position gets an equal share.
template <typename T>
__global__ void global_avg_pool_backward(const T* grad_y, T* grad_x,
                                         Index batch, Index positions, Index channels)
{
    const Index total = batch * positions * channels;
    for (Index i = first_index(); i < total; i += index_stride()) {
        const Index c = i % channels;
        const Index n = i / (channels * positions);
        grad_x[i] = grad_y[n * channels + c] / T(positions);
    }
}

// Ties go to the first position, as numpy.argmax does.
template <typename T>
__global__ void global_max_pool_forward(const T* x, T* y, long long* argmax,
                                        Index batch, Index positions, Index channels)
{
    const Index total = batch * channels;
    for (Index i = first_index(); i < total; i += index_stride()) {
        const Index c = i % channels;
        const Index n = i / channels;
        T best = x[n * positions * channels + c];
        Index best_index = 0;
        for (Index p = 1; p < positions; ++p) {
            const T value = x[(n * positions + p) * channels + c];
            if (value > best) {
                best = value;
                best_index = p;
            }
        }
        y[i] = best;
        argmax[i] = best_index;
    }
}
