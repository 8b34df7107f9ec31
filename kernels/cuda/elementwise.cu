// Element-wise kernels: dropout scaling, bias + activation, embedding lookup.
#include "common.cuh"

// out = values * mask / keep_probability: the forward of dropout (values = x)
// and its backward (values = grad_y) are the same linear map.  Multiplying by
// the 0/1 mask, rather than selecting, keeps NaN and inf where NumPy keeps them.
template <typename T>
__global__ void scale_by_mask(const T* values, const bool* mask, T* out,
                              Index count, T keep_probability)
{
    for (Index i = first_index(); i < count; i += index_stride()) {
        out[i] = values[i] * T(mask[i]) / keep_probability;
    }
}

// Dropout's random bits: splitmix64's output function of (seed, counter), the
// same hash as kernels/reference/elementwise.py, so the GPU draws the masks
// the CPU draws for the same seed.
__device__ inline unsigned long long splitmix64(unsigned long long seed,
                                                unsigned long long counter)
{
    unsigned long long z = seed + counter * 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

// Element i is kept when the top 24 bits of splitmix64(seed, i + 1) are at
// least keep_from (= ceil(rate * 2^24)); kept values are scaled by
// 1 / keep_probability.
template <typename T>
__global__ void dropout_forward(const T* x, unsigned long long seed,
                                unsigned long long keep_from, T* y, bool* mask,
                                Index count, T keep_probability)
{
    for (Index i = first_index(); i < count; i += index_stride()) {
        const bool keep = (splitmix64(seed, (unsigned long long)i + 1ULL) >> 40) >= keep_from;
        mask[i] = keep;
        y[i] = x[i] * T(keep) / keep_probability;
    }
}

// y = act(x + bias), x seen as (count / channels, channels), bias (channels,).
template <typename T>
__global__ void bias_activation_forward(const T* x, const T* bias, T* y,
                                        Index count, Index channels, int activation)
{
    for (Index i = first_index(); i < count; i += index_stride()) {
        y[i] = activate(activation, x[i] + bias[i % channels]);
    }
}

// The backward of bias + activation in one pass over x seen as (rows, channels):
// grad_x = grad_y * act'(z), the slope computed from the output y, and the bias
// gradient, each column's sum of grad_x, added into column_sums (which the
// caller zeroes).
//
// A block is a tile of COLUMN_TILE columns by ROW_LANES rows: threadIdx.x picks
// the column, so the 32 threads of a warp read 32 neighbouring elements of one
// row, and threadIdx.y the row.  blockIdx.x picks the block's columns; the
// blocks along y share the rows out, grid-stride.  Each thread sums its column
// over the rows it visits, the block adds up its ROW_LANES sums per column in
// shared memory, and one atomicAdd per column and block adds that in: a few
// atomics per column instead of one per element.  (Atomics add in no fixed
// order, so the last bits of a sum may differ from run to run.)
#define COLUMN_TILE 32
#define ROW_LANES 8

template <typename T>
__global__ void activation_backward_with_column_sums(const T* grad_y, const T* y, T* grad_x,
                                                     T* column_sums, Index rows,
                                                     Index channels, int activation)
{
    __shared__ T lane_sums[ROW_LANES][COLUMN_TILE];
    const Index column = (Index)blockIdx.x * COLUMN_TILE + threadIdx.x;
    T sum = T(0);
    if (column < channels) {
        for (Index row = (Index)blockIdx.y * ROW_LANES + threadIdx.y; row < rows;
             row += (Index)gridDim.y * ROW_LANES) {
            const Index i = row * channels + column;
            const T grad = grad_y[i] * activation_slope(activation, y[i]);
            grad_x[i] = grad;
            sum += grad;
        }
    }
    lane_sums[threadIdx.y][threadIdx.x] = sum;
    __syncthreads();
    if (threadIdx.y == 0 && column < channels) {
        T block_sum = T(0);
        for (int lane = 0; lane < ROW_LANES; ++lane) {
            block_sum += lane_sums[lane][threadIdx.x];
        }
        atomicAdd(&column_sums[column], block_sum);
    }
}

// The caller checks the ids; an id outside [0, vocab_size) that slips through
// reads as a row of zeros and receives no gradient, rather than touching
// memory outside the table.
__device__ inline bool valid_id(long long id, Index vocab_size)
{
    return id >= 0 && id < vocab_size;
}

// out (ids, embedding_dim): one thread per output element copies one table entry.
template <typename T>
__global__ void embedding_forward(const T* table, const long long* ids, T* out,
                                  Index count, Index embedding_dim, Index vocab_size)
{
    for (Index i = first_index(); i < count; i += index_stride()) {
        const long long id = ids[i / embedding_dim];
        const Index column = i % embedding_dim;
        out[i] = valid_id(id, vocab_size) ? table[id * embedding_dim + column] : T(0);
    }
}

// The adjoint of the lookup: each output gradient is added to its id's row.
// The same id may appear many times, hence atomicAdd.
template <typename T>
__global__ void embedding_backward(const T* grad_out, const long long* ids, T* grad_table,
                                   Index count, Index embedding_dim, Index vocab_size)
{
    for (Index i = first_index(); i < count; i += index_stride()) {
        const long long id = ids[i / embedding_dim];
        const Index column = i % embedding_dim;
        if (valid_id(id, vocab_size)) {
            atomicAdd(&grad_table[id * embedding_dim + column], grad_out[i]);
        }
    }
}
