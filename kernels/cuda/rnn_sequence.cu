// A whole LSTM forward sequence in one launch: the recurrence runs inside the kernel.
//
// Why: step by step (rnn.cu), each of the T steps is a small GEMM plus a gate
// kernel, two launches that cost the CPU 10-25 us each, while the GPU finishes
// the step's arithmetic in a few microseconds.  A 28-step LSTM spent its time
// launching.  Here ONE launch runs every step:
//
//   - each block owns a slice of the units: all four gates of those units, for
//     every sample;
//   - it keeps its slice of recurrent_kernel in shared memory for the whole
//     sequence and computes its part of h_{t-1} @ recurrent_kernel itself:
//     the rows of h_{t-1} pass through shared memory in tiles that the whole
//     block copies from global memory together (asynchronous copies);
//   - step t needs h_{t-1} of EVERY unit, so the blocks meet at a grid-wide
//     barrier (grid.sync()) after each step.  A barrier across blocks is only
//     safe when all blocks run at once: the loader launches the kernels of
//     this file cooperatively, which guarantees that or refuses the launch,
//     and rnn_sequence.py launches at most one block per multiprocessor.
//
// The backward pass stays step by step (rnn.cu + cuBLAS): a one-launch
// backward was measured slower on an H200 (benchmarks/NOTES.md, "GPU"),
// because every block must read the gate gradients of ALL units at every step
// (4 * units per sample) to form its part of grad_z @ recurrent_kernel^T.
//
// The input projection x @ kernel (one GEMM over all steps) stays a cuBLAS
// call in rnn.py.  Layouts and equations are those of rnn.cu (and of the
// reference set):
//     sequences        (batch, steps, units)       element (n, t, u)
//     gate sequences   (batch, steps, 4 * units)   gate k of (n, t, u) at k * units + u
//     gate order       i, f, g (candidate), o, as Keras stores them
#include <cooperative_groups.h>
#include <cuda_pipeline.h>

#include "common.cuh"

namespace cg = cooperative_groups;

// Position of (n, t, u) in a (batch, steps, width) sequence.
__device__ inline Index position_in_sequence(Index n, Index t, Index u, Index steps, Index width)
{
    return (n * steps + t) * width + u;
}

// ---------------------------------------------------------------------------
// Who does what inside a block
// ---------------------------------------------------------------------------
// A block owns units first_unit .. first_unit + owned - 1.  Its thread number
// `groups * j + g` takes owned unit j and sample group g; in round `round` the
// group is the SAMPLES_PER_THREAD samples
//     (round * SAMPLES_PER_THREAD + r) * groups + g,   r < SAMPLES_PER_THREAD.
// Consecutive threads take consecutive samples, whose rows in a staged tile lie
// in different shared-memory banks, and a thread keeps the same samples and
// unit at every step: what it reads of c_{t-1} is what it wrote itself.
// One sample per thread measured fastest on an H200 (more threads hide more of
// the latency of the staged copies than a larger register tile saves).
// Threads beyond groups * owned only help staging.
#define SAMPLES_PER_THREAD 1
// Columns of the left matrix copied into shared memory per pass.
#define STAGED_DEPTH 64
// A unit's columns of the recurrent kernel: its i, f, g and o gates.
#define GATES 4

struct ThreadWork {
    Index first_unit;
    Index unit_slot;  // j
    Index group;      // g
    Index groups;
    bool has_unit;
};

__device__ inline ThreadWork thread_work(Index units, Index units_per_block, Index groups)
{
    ThreadWork work;
    work.first_unit = (Index)blockIdx.x * units_per_block;
    const Index left = units - work.first_unit;
    const Index owned = left < units_per_block ? left : units_per_block;
    work.unit_slot = threadIdx.x / groups;
    work.group = threadIdx.x % groups;
    work.groups = groups;
    work.has_unit = work.unit_slot < owned;
    return work;
}

__device__ inline Index sample_of(const ThreadWork& work, Index round, int r)
{
    return (round * SAMPLES_PER_THREAD + r) * work.groups + work.group;
}

// Copies columns first_column .. first_column + STAGED_DEPTH - 1 of rows
// first_row .. first_row + tile_rows - 1 of a (batch, depth) matrix in global
// memory (row n at rows + n * row_stride) into
// tile[local_row * (STAGED_DEPTH + 1) + column]; missing rows and columns read
// as zero.  The + 1 shifts each row by one bank.  Every thread takes part.
//
// The copies are asynchronous (cp.async): a thread issues all of its copies and
// then waits once.  A plain load-then-store loop waits for each load in turn,
// and the rows were just written by other multiprocessors, so each load comes
// from L2 at its full latency: that made staging the slowest part of a step.
template <typename T>
__device__ void stage_tile(const T* rows, Index row_stride, Index batch, Index depth,
                           Index first_row, Index tile_rows, Index first_column, T* tile)
{
    for (Index e = threadIdx.x; e < tile_rows * STAGED_DEPTH; e += blockDim.x) {
        const Index local_row = e / STAGED_DEPTH;
        const Index column = e % STAGED_DEPTH;
        const Index n = first_row + local_row;
        const Index k = first_column + column;
        T* destination = tile + local_row * (STAGED_DEPTH + 1) + column;
        if (n < batch && k < depth) {
            __pipeline_memcpy_async(destination, rows + n * row_stride + k, sizeof(T));
        } else {
            *destination = T(0);
        }
    }
    __pipeline_commit();
    __pipeline_wait_prior(0);
}

// The product of this round's rows of a (batch, depth) matrix in global memory
// with the (depth, right_width) matrix `right` in shared memory, for the
// thread's SAMPLES_PER_THREAD samples and the GATES columns of its unit starting
// at first_column: sums[r][c] += sum over k of left[sample r][k] * right[k][first_column + c].
// The left rows pass through `tile`, STAGED_DEPTH columns at a time, read once
// from global memory by the whole block.  Every thread of the block must call it.
template <typename T>
__device__ void multiply_rows(const T* rows, Index row_stride, Index batch, Index depth,
                              Index round, const ThreadWork& work,
                              const T* right, Index right_width, Index first_column,
                              T* tile, T (&sums)[SAMPLES_PER_THREAD][GATES])
{
    const Index tile_rows = SAMPLES_PER_THREAD * work.groups;
    for (Index k0 = 0; k0 < depth; k0 += STAGED_DEPTH) {
        __syncthreads();  // every thread is done with the previous tile
        stage_tile(rows, row_stride, batch, depth, round * tile_rows, tile_rows, k0, tile);
        __syncthreads();
        if (!work.has_unit) {
            continue;
        }
        const Index chunk = depth - k0 < STAGED_DEPTH ? depth - k0 : STAGED_DEPTH;
        for (Index kk = 0; kk < chunk; ++kk) {
            T right_values[GATES];
            for (int c = 0; c < GATES; ++c) {
                right_values[c] = right[(k0 + kk) * right_width + first_column + c];
            }
            for (int r = 0; r < SAMPLES_PER_THREAD; ++r) {
                const T left = tile[(r * work.groups + work.group) * (STAGED_DEPTH + 1) + kk];
                for (int c = 0; c < GATES; ++c) {
                    sums[r][c] += left * right_values[c];
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Forward: for t = 0 .. steps-1
//     z = input_projection[:, t] + bias + h_{t-1} @ recurrent_kernel
//     i, f, g, o = rec_act(z_i), rec_act(z_f), act(z_g), rec_act(z_o)
//     c_t = f * c_{t-1} + i * g;   h_t = o * act(c_t)
// Shared memory: the block's columns of recurrent_kernel (units rows, four per
// owned unit), weights[k * 4 * units_per_block + 4 * j + gate], so a thread's
// four gates sit side by side; then the staging tile.
// ---------------------------------------------------------------------------
template <typename T>
__global__ void lstm_forward_sequence(const T* input_projection, const T* recurrent_kernel,
                                      const T* bias, const T* h0, const T* c0,
                                      T* h_seq, T* c_seq, T* gates,
                                      Index batch, Index steps, Index units,
                                      Index units_per_block, Index groups,
                                      int activation, int recurrent_activation)
{
    cg::grid_group grid = cg::this_grid();
    extern __shared__ unsigned char shared_bytes[];
    T* weights = reinterpret_cast<T*>(shared_bytes);
    const Index slice_width = GATES * units_per_block;
    T* tile = weights + units * slice_width;

    const Index width = GATES * units;
    const ThreadWork work = thread_work(units, units_per_block, groups);
    const Index owned = units - work.first_unit < units_per_block ? units - work.first_unit
                                                                   : units_per_block;
    for (Index e = threadIdx.x; e < units * slice_width; e += blockDim.x) {
        const Index k = e / slice_width;
        const Index j = (e % slice_width) / 4;
        const Index gate = e % 4;
        weights[e] = j < owned ? recurrent_kernel[k * width + gate * units + work.first_unit + j]
                               : T(0);
    }

    const Index u = work.first_unit + work.unit_slot;
    const Index round_samples = SAMPLES_PER_THREAD * groups;
    const Index rounds = (batch + round_samples - 1) / round_samples;
    for (Index t = 0; t < steps; ++t) {
        // h_{t-1} of every sample: the rows of h0, or of h_seq at step t - 1.
        const T* previous = t == 0 ? h0 : h_seq + (t - 1) * units;
        const Index previous_stride = t == 0 ? units : steps * units;
        for (Index round = 0; round < rounds; ++round) {
            T z[SAMPLES_PER_THREAD][GATES] = {};
            multiply_rows<T>(previous, previous_stride, batch, units, round, work,
                             weights, slice_width, GATES * work.unit_slot, tile, z);
            if (!work.has_unit) {
                continue;
            }
            for (int r = 0; r < SAMPLES_PER_THREAD; ++r) {
                const Index n = sample_of(work, round, r);
                if (n >= batch) {
                    continue;
                }
                const Index gate_at = position_in_sequence(n, t, u, steps, width);
                T activated[GATES];
                for (int gate = 0; gate < GATES; ++gate) {
                    const T pre_activation = z[r][gate] + input_projection[gate_at + gate * units]
                                           + bias[gate * units + u];
                    // i, f, o use the recurrent activation; the candidate g the activation.
                    activated[gate] = activate(gate == 2 ? activation : recurrent_activation,
                                               pre_activation);
                }
                const T c_previous = t == 0 ? c0[n * units + u]
                                            : c_seq[position_in_sequence(n, t - 1, u, steps, units)];
                const T c = activated[1] * c_previous + activated[0] * activated[2];
                const T h = activated[3] * activate(activation, c);

                const Index at = position_in_sequence(n, t, u, steps, units);
                c_seq[at] = c;
                h_seq[at] = h;
                for (int gate = 0; gate < GATES; ++gate) {
                    gates[gate_at + gate * units] = activated[gate];
                }
            }
        }
        // Step t + 1 reads h_t of every unit: wait for every block.
        grid.sync();
    }
}
