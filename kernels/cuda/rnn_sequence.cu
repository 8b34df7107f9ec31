// A whole LSTM sequence in one launch: the recurrence runs inside the kernel.
//
// Why: step by step (rnn.cu), each of the T steps is a small GEMM plus a gate
// kernel, two launches that cost the CPU 10-25 us each, while the GPU finishes
// the step's arithmetic in a few microseconds.  A 28-step LSTM spent its time
// launching.  Here ONE launch runs every step:
//
//   - each block owns a slice of the units: all four gates of those units, for
//     every sample;
//   - it keeps its slice of recurrent_kernel in shared memory for the whole
//     sequence and computes its part of h_{t-1} @ recurrent_kernel itself;
//   - step t needs h_{t-1} of EVERY unit, so the blocks meet at a grid-wide
//     barrier (grid.sync()) after each step.  A barrier across blocks is only
//     safe when all blocks run at once: the loader launches the kernels of
//     this file cooperatively, which guarantees that or refuses the launch,
//     and rnn.py launches at most one block per multiprocessor.
//
// The input projection x @ kernel (one GEMM over all steps) and the weight
// gradients (one GEMM each over all steps) stay cuBLAS calls in rnn.py.
// Layouts and equations are those of rnn.cu (and of the reference set):
//     sequences        (batch, steps, units)       element (n, t, u)
//     gate sequences   (batch, steps, 4 * units)   gate k of (n, t, u) at k * units + u
//     gate order       i, f, g (candidate), o, as Keras stores them
#include <cooperative_groups.h>

#include "common.cuh"

namespace cg = cooperative_groups;

// Position of (n, t, u) in a (batch, steps, width) sequence.
__device__ inline Index position_in_sequence(Index n, Index t, Index u, Index steps, Index width)
{
    return (n * steps + t) * width + u;
}

// The units a block owns: first_unit .. first_unit + owned_units - 1.
__device__ inline Index first_owned_unit(Index units_per_block)
{
    return (Index)blockIdx.x * units_per_block;
}

__device__ inline Index owned_unit_count(Index units, Index units_per_block)
{
    const Index left = units - first_owned_unit(units_per_block);
    return left < units_per_block ? left : units_per_block;
}

// ---------------------------------------------------------------------------
// Forward: for t = 0 .. steps-1
//     z = input_projection[:, t] + bias + h_{t-1} @ recurrent_kernel
//     i, f, g, o = rec_act(z_i), rec_act(z_f), act(z_g), rec_act(z_o)
//     c_t = f * c_{t-1} + i * g;   h_t = o * act(c_t)
// Shared memory: the block's columns of recurrent_kernel (units, 4 * units),
// stored as weights[k * 4 * units_per_block + gate * units_per_block + j] for
// unit first_unit + j, so the four gates of a unit sit side by side.
// ---------------------------------------------------------------------------
template <typename T>
__global__ void lstm_forward_sequence(const T* input_projection, const T* recurrent_kernel,
                                      const T* bias, const T* h0, const T* c0,
                                      T* h_seq, T* c_seq, T* gates,
                                      Index batch, Index steps, Index units,
                                      Index units_per_block,
                                      int activation, int recurrent_activation)
{
    cg::grid_group grid = cg::this_grid();
    extern __shared__ unsigned char shared_bytes[];
    T* weights = reinterpret_cast<T*>(shared_bytes);

    const Index width = 4 * units;
    const Index slice_width = 4 * units_per_block;
    const Index first_unit = first_owned_unit(units_per_block);
    const Index owned = owned_unit_count(units, units_per_block);

    for (Index e = threadIdx.x; e < units * slice_width; e += blockDim.x) {
        const Index k = e / slice_width;
        const Index gate = (e % slice_width) / units_per_block;
        const Index j = e % units_per_block;
        weights[e] = j < owned ? recurrent_kernel[k * width + gate * units + first_unit + j] : T(0);
    }
    __syncthreads();

    // One item per (sample n, owned unit j); a thread keeps the same items at
    // every step, so the c_{t-1} it reads is the one it wrote itself.
    const Index items = batch * owned;
    for (Index t = 0; t < steps; ++t) {
        for (Index item = threadIdx.x; item < items; item += blockDim.x) {
            const Index n = item / owned;
            const Index j = item % owned;
            const Index u = first_unit + j;
            const Index gate_at = position_in_sequence(n, t, u, steps, width);
            const T* h_previous =
                t == 0 ? h0 + n * units : h_seq + position_in_sequence(n, t - 1, 0, steps, units);

            T z[4];
            for (int gate = 0; gate < 4; ++gate) {
                z[gate] = input_projection[gate_at + gate * units] + bias[gate * units + u];
            }
            for (Index k = 0; k < units; ++k) {
                const T h = h_previous[k];
                const T* w = weights + k * slice_width + j;
                z[0] += h * w[0];
                z[1] += h * w[units_per_block];
                z[2] += h * w[2 * units_per_block];
                z[3] += h * w[3 * units_per_block];
            }
            const T input_gate = activate(recurrent_activation, z[0]);   // how much new to write
            const T forget_gate = activate(recurrent_activation, z[1]);  // how much old to keep
            const T candidate = activate(activation, z[2]);              // the new content
            const T output_gate = activate(recurrent_activation, z[3]);  // how much to show
            const T c_previous =
                t == 0 ? c0[n * units + u] : c_seq[position_in_sequence(n, t - 1, u, steps, units)];
            const T c = forget_gate * c_previous + input_gate * candidate;
            const T h = output_gate * activate(activation, c);

            const Index at = position_in_sequence(n, t, u, steps, units);
            c_seq[at] = c;
            h_seq[at] = h;
            gates[gate_at] = input_gate;
            gates[gate_at + units] = forget_gate;
            gates[gate_at + 2 * units] = candidate;
            gates[gate_at + 3 * units] = output_gate;
        }
        // Step t + 1 reads h_t of every unit: wait for every block.
        grid.sync();
    }
}

// ---------------------------------------------------------------------------
// Backward through time: for t = steps-1 .. 0
//   phase 1 (own units): grad_h = grad_h_seq[:, t] + grad_h_from_later;
//           the gradients of the four pre-activations z -> grad_z_seq[:, t];
//           grad_c <- (gradient of c_t) * f, the gradient of c_{t-1}
//   grid barrier: phase 2 reads grad_z of every unit
//   phase 2 (own units): grad_h_from_later = grad_z_seq[:, t] @ recurrent_kernel^T
// grad_h and grad_c (batch, units) carry the running gradients: on entry
// grad_h = 0 and grad_c = grad_c_last; on exit they hold the gradients of h0
// and c0.  Phase 1 of step t - 1 writes grad_z_seq[:, t - 1] while other blocks
// may still read grad_z_seq[:, t], so one grid barrier per step suffices.
//
// Phase 2 is a dot product of length 4 * units per (sample, owned unit): a warp
// takes one sample, its lanes stride along the row of grad_z (consecutive,
// coalesced reads) and keep one partial sum per owned unit, then add the lanes.
// Shared memory: the block's rows of recurrent_kernel, weights[j * 4 * units + k].
// ---------------------------------------------------------------------------
#define MAX_UNITS_PER_BLOCK 8

template <typename T>
__global__ void lstm_backward_sequence(const T* recurrent_kernel, const T* c0, const T* c_seq,
                                       const T* gates, const T* grad_h_seq,
                                       T* grad_h, T* grad_c, T* grad_z_seq,
                                       Index batch, Index steps, Index units,
                                       Index units_per_block,
                                       int activation, int recurrent_activation)
{
    cg::grid_group grid = cg::this_grid();
    extern __shared__ unsigned char shared_bytes[];
    T* weights = reinterpret_cast<T*>(shared_bytes);

    const Index width = 4 * units;
    const Index first_unit = first_owned_unit(units_per_block);
    const Index owned = owned_unit_count(units, units_per_block);
    const int lane = threadIdx.x % 32;

    for (Index e = threadIdx.x; e < owned * width; e += blockDim.x) {
        weights[e] = recurrent_kernel[first_unit * width + e];
    }
    __syncthreads();

    const Index items = batch * owned;
    for (Index t = steps - 1; t >= 0; --t) {
        for (Index item = threadIdx.x; item < items; item += blockDim.x) {
            const Index n = item / owned;
            const Index u = first_unit + item % owned;
            const Index i = n * units + u;
            const Index at = position_in_sequence(n, t, u, steps, units);
            const Index gate_at = position_in_sequence(n, t, u, steps, width);
            const T input_gate = gates[gate_at];
            const T forget_gate = gates[gate_at + units];
            const T candidate = gates[gate_at + 2 * units];
            const T output_gate = gates[gate_at + 3 * units];
            const T c_previous = t == 0 ? c0[i] : c_seq[at - units];  // (n, t - 1, u)
            const T activated_c = activate(activation, c_seq[at]);

            const T grad_h_total = grad_h_seq[at] + grad_h[i];
            // h_t = o * act(c_t)
            const T grad_output_gate = grad_h_total * activated_c;
            const T grad_c_total =
                grad_c[i] + grad_h_total * output_gate * activation_slope(activation, activated_c);
            // c_t = f * c_{t-1} + i * g
            grad_z_seq[gate_at] =
                grad_c_total * candidate * activation_slope(recurrent_activation, input_gate);
            grad_z_seq[gate_at + units] =
                grad_c_total * c_previous * activation_slope(recurrent_activation, forget_gate);
            grad_z_seq[gate_at + 2 * units] =
                grad_c_total * input_gate * activation_slope(activation, candidate);
            grad_z_seq[gate_at + 3 * units] =
                grad_output_gate * activation_slope(recurrent_activation, output_gate);
            grad_c[i] = grad_c_total * forget_gate;
        }
        // Phase 2 reads the gate gradients of every unit.
        grid.sync();
        for (Index n = threadIdx.x / 32; n < batch; n += blockDim.x / 32) {
            const T* grad_z = grad_z_seq + position_in_sequence(n, t, 0, steps, width);
            T sums[MAX_UNITS_PER_BLOCK];
            for (int j = 0; j < MAX_UNITS_PER_BLOCK; ++j) {
                sums[j] = T(0);
            }
            for (Index k = lane; k < width; k += 32) {
                const T g = grad_z[k];
                for (int j = 0; j < MAX_UNITS_PER_BLOCK; ++j) {
                    if (j < owned) {
                        sums[j] += g * weights[j * width + k];
                    }
                }
            }
            for (int j = 0; j < owned; ++j) {
                const T total = warp_reduce(sums[j], SumOperation());
                if (lane == 0) {
                    grad_h[n * units + first_unit + j] = total;
                }
            }
        }
        // Phase 1 of the next step reads grad_h from other threads of this block.
        __syncthreads();
    }
}
