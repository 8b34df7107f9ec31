// Convolution as a matrix product: im2col + GEMM (cuBLAS) + col2im.
//
// A convolution output pixel is the dot product of the kernel with the window
// of input pixels under it.  im2col copies every window into one row of a
// matrix `cols`:
//
//     cols (N * OH * OW, KH * KW * C):  row = output pixel (n, oh, ow),
//                                       column = kernel tap (kh, kw) and channel c
//
// so that the whole convolution is cols @ w.reshape(KH * KW * C, F), one GEMM.
// The column order (kh, kw, c) is the memory order of a (KH, KW, C, F) kernel.
//
// Both kernels take the same geometry arguments, in the same order:
//     batch, height, width, channels, kernel_h, kernel_w, out_h, out_w,
//     stride_h, stride_w, pad_top, pad_left, dilation_h, dilation_w
#include "common.cuh"

// One thread per element of cols; padded positions read as zero.
// Consecutive threads take consecutive channels, so reads of x are coalesced.
template <typename T>
__global__ void im2col(const T* x, T* cols,
                       Index batch, Index height, Index width, Index channels,
                       Index kernel_h, Index kernel_w, Index out_h, Index out_w,
                       Index stride_h, Index stride_w, Index pad_top, Index pad_left,
                       Index dilation_h, Index dilation_w)
{
    const Index column_count = kernel_h * kernel_w * channels;
    const Index total = batch * out_h * out_w * column_count;
    for (Index i = first_index(); i < total; i += index_stride()) {
        const Index row = i / column_count;
        const Index column = i % column_count;
        const Index c = column % channels;
        const Index kw = (column / channels) % kernel_w;
        const Index kh = column / (channels * kernel_w);
        const Index ow = row % out_w;
        const Index oh = (row / out_w) % out_h;
        const Index n = row / (out_w * out_h);
        const Index ih = oh * stride_h - pad_top + kh * dilation_h;
        const Index iw = ow * stride_w - pad_left + kw * dilation_w;
        const bool inside = ih >= 0 && ih < height && iw >= 0 && iw < width;
        cols[i] = inside ? x[((n * height + ih) * width + iw) * channels + c] : T(0);
    }
}

// The adjoint of im2col: every input element receives the sum of the cols
// entries that im2col copied it to.  Written as a gather (one thread per
// input element, looping over the kernel taps that can reach it) rather than a
// scatter with atomicAdd, so the result is deterministic.
//
// Tap (kh, kw) reaches input row ih from output row oh when
//     oh * stride_h - pad_top + kh * dilation_h == ih,
// that is when (ih + pad_top - kh * dilation_h) is a non-negative multiple of
// stride_h whose quotient is a valid output row; the same holds for columns.
template <typename T>
__global__ void col2im(const T* cols, T* x,
                       Index batch, Index height, Index width, Index channels,
                       Index kernel_h, Index kernel_w, Index out_h, Index out_w,
                       Index stride_h, Index stride_w, Index pad_top, Index pad_left,
                       Index dilation_h, Index dilation_w)
{
    const Index column_count = kernel_h * kernel_w * channels;
    const Index total = batch * height * width * channels;
    for (Index i = first_index(); i < total; i += index_stride()) {
        const Index c = i % channels;
        const Index iw = (i / channels) % width;
        const Index ih = (i / (channels * width)) % height;
        const Index n = i / (channels * width * height);
        T sum = T(0);
        for (Index kh = 0; kh < kernel_h; ++kh) {
            const Index row_offset = ih + pad_top - kh * dilation_h;
            if (row_offset < 0 || row_offset % stride_h != 0) {
                continue;
            }
            const Index oh = row_offset / stride_h;
            if (oh >= out_h) {
                continue;
            }
            for (Index kw = 0; kw < kernel_w; ++kw) {
                const Index column_offset = iw + pad_left - kw * dilation_w;
                if (column_offset < 0 || column_offset % stride_w != 0) {
                    continue;
                }
                const Index ow = column_offset / stride_w;
                if (ow >= out_w) {
                    continue;
                }
                const Index row = (n * out_h + oh) * out_w + ow;
                const Index column = (kh * kernel_w + kw) * channels + c;
                sum += cols[row * column_count + column];
            }
        }
        x[i] = sum;
    }
}
