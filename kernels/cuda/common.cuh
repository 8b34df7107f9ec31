// Device helpers shared by every .cu file of the CUDA kernel set.
//
// Each kernel is written once as `template <typename T>` and compiled for
// float and double; the helpers below are what makes that possible (math
// functions with one name for both types) and what every kernel repeats
// (grid-stride loops, the activation functions, block reductions).
//
// The Python loader pastes this file into each .cu file before compiling it,
// so keep it self-contained: no #include of its own.
#ifndef DEEPBREADTH_COMMON_CUH
#define DEEPBREADTH_COMMON_CUH

// Sizes and flat indices are 64-bit: an im2col matrix easily holds more than
// 2^31 elements.  The Python side passes every size as numpy.int64.
typedef long long Index;

// ---------------------------------------------------------------------------
// Grid-stride loops
// ---------------------------------------------------------------------------
// A kernel over `count` elements is written
//     for (Index i = first_index(); i < count; i += index_stride()) { ... }
// Thread k handles elements k, k + stride, k + 2 * stride, ..., so any grid
// size covers any count and the launcher may cap the number of blocks.
__device__ inline Index first_index()
{
    return (Index)blockIdx.x * blockDim.x + threadIdx.x;
}

__device__ inline Index index_stride()
{
    return (Index)blockDim.x * gridDim.x;
}

// ---------------------------------------------------------------------------
// Math with one name for float and double
// ---------------------------------------------------------------------------
// Spelled out, so that float code can never be silently promoted to the
// (much slower) double routines.
__device__ inline float device_exp(float x) { return expf(x); }
__device__ inline double device_exp(double x) { return exp(x); }
__device__ inline float device_log(float x) { return logf(x); }
__device__ inline double device_log(double x) { return log(x); }
__device__ inline float device_tanh(float x) { return tanhf(x); }
__device__ inline double device_tanh(double x) { return tanh(x); }
__device__ inline float device_sqrt(float x) { return sqrtf(x); }
__device__ inline double device_sqrt(double x) { return sqrt(x); }
__device__ inline float device_abs(float x) { return fabsf(x); }
__device__ inline double device_abs(double x) { return fabs(x); }

__device__ inline float not_a_number(float) { return __int_as_float(0x7fc00000); }
__device__ inline double not_a_number(double)
{
    return __longlong_as_double((long long)0x7ff8000000000000ULL);
}

__device__ inline float negative_infinity(float) { return __int_as_float(0xff800000); }
__device__ inline double negative_infinity(double)
{
    return __longlong_as_double((long long)0xfff0000000000000ULL);
}

// ---------------------------------------------------------------------------
// Activations, by integer code (the Python loader maps names to these codes)
// ---------------------------------------------------------------------------
#define ACTIVATION_LINEAR 0
#define ACTIVATION_RELU 1
#define ACTIVATION_TANH 2
#define ACTIVATION_SIGMOID 3
#define ACTIVATION_HARD_SIGMOID 4

template <typename T>
__device__ inline T sigmoid(T z)
{
    // exp(-|z|) never overflows; each branch divides by a number >= 1.
    T e = device_exp(-device_abs(z));
    return z >= T(0) ? T(1) / (T(1) + e) : e / (T(1) + e);
}

template <typename T>
__device__ inline T activate(int activation, T z)
{
    switch (activation) {
    case ACTIVATION_RELU:
        // Written so that a NaN input stays NaN, as numpy.maximum does.
        return z < T(0) ? T(0) : z;
    case ACTIVATION_TANH:
        return device_tanh(z);
    case ACTIVATION_SIGMOID:
        return sigmoid(z);
    case ACTIVATION_HARD_SIGMOID: {
        // Keras 3: clip(z / 6 + 0.5, 0, 1).
        T y = z / T(6) + T(0.5);
        return y < T(0) ? T(0) : (y > T(1) ? T(1) : y);
    }
    default:  // ACTIVATION_LINEAR
        return z;
    }
}

// d act(z) / dz written in terms of the output y = act(z): the forward pass
// keeps y, so nothing has to be recomputed from the pre-activation.
template <typename T>
__device__ inline T activation_slope(int activation, T y)
{
    switch (activation) {
    case ACTIVATION_RELU:
        return y > T(0) ? T(1) : T(0);
    case ACTIVATION_TANH:
        return T(1) - y * y;
    case ACTIVATION_SIGMOID:
        return y * (T(1) - y);
    case ACTIVATION_HARD_SIGMOID:
        // Slope 1/6 on the ramp, 0 where the output is clipped to 0 or 1.
        return (y > T(0) && y < T(1)) ? T(1) / T(6) : T(0);
    default:  // ACTIVATION_LINEAR
        return T(1);
    }
}

// ---------------------------------------------------------------------------
// Block-wide reductions (blockDim.x must be a multiple of 32, at most 1024)
// ---------------------------------------------------------------------------
struct SumOperation {
    template <typename T>
    __device__ T operator()(T a, T b) const { return a + b; }
};

struct MaxOperation {
    template <typename T>
    __device__ T operator()(T a, T b) const { return b > a ? b : a; }
};

template <typename T, typename Operation>
__device__ inline T warp_reduce(T value, Operation combine)
{
    // After the loop lane 0 holds the result of all 32 lanes.
    for (int offset = 16; offset > 0; offset /= 2) {
        value = combine(value, __shfl_down_sync(0xffffffffu, value, offset));
    }
    return value;
}

// Every thread passes its value and gets back the result over the block.
// `partials` is a __shared__ array of 32 elements owned by the caller.
template <typename T, typename Operation>
__device__ inline T block_reduce(T value, T identity, Operation combine, T* partials)
{
    const int lane = threadIdx.x % 32;
    const int warp = threadIdx.x / 32;
    const int warp_count = blockDim.x / 32;

    value = warp_reduce(value, combine);
    if (lane == 0) {
        partials[warp] = value;
    }
    __syncthreads();
    if (warp == 0) {
        value = lane < warp_count ? partials[lane] : identity;
        value = warp_reduce(value, combine);
        if (lane == 0) {
            partials[0] = value;
        }
    }
    __syncthreads();
    const T result = partials[0];
    // The next reduction writes `partials` again: wait until all have read it.
    __syncthreads();
    return result;
}

#endif  // DEEPBREADTH_COMMON_CUH
