// The per-step gate arithmetic of SimpleRNN, LSTM and GRU.
//
// The matrix products are not here: the input projection of all steps is one
// GEMM before the loop, the recurrent projection one GEMM per step (both
// cuBLAS, from rnn.py).  What is left per step is element-wise, and each step
// does all of it in ONE kernel with one thread per (sample n, unit u).
//
// Layouts (row-major):
//     sequences        (batch, steps, units)     element (n, t, u)
//     gate sequences   (batch, steps, G * units) gate k of (n, t, u) at k * units + u
//     per-step arrays  (batch, units) or (batch, G * units), contiguous
// Arguments `batch, steps, units, t` are Index; activations are int codes.
#include "common.cuh"

// Position of (n, t, u) in a (batch, steps, width) sequence.
__device__ inline Index sequence_position(Index n, Index t, Index u, Index steps, Index width)
{
    return (n * steps + t) * width + u;
}

// ---------------------------------------------------------------------------
// SimpleRNN:  h_t = act(x_t @ kernel + h_{t-1} @ recurrent_kernel + bias)
// ---------------------------------------------------------------------------
// input_projection (batch, steps, units) = x @ kernel for all steps;
// recurrent_projection (batch, units) = h_{t-1} @ recurrent_kernel.
// Writes h_t to h_seq and to h_state (the contiguous input of the next GEMM).
template <typename T>
__global__ void simple_rnn_forward_step(const T* input_projection, const T* recurrent_projection,
                                        const T* bias, T* h_state, T* h_seq,
                                        Index batch, Index steps, Index units, Index t,
                                        int activation)
{
    const Index total = batch * units;
    for (Index i = first_index(); i < total; i += index_stride()) {
        const Index u = i % units;
        const Index n = i / units;
        const Index at = sequence_position(n, t, u, steps, units);
        const T h = activate(activation, input_projection[at] + recurrent_projection[i] + bias[u]);
        h_state[i] = h;
        h_seq[at] = h;
    }
}

// grad_h_from_later (batch, units): what flows back into h_t from step t + 1.
// Writes the gradient of the pre-activation z_t to grad_z_seq (for the weight
// gradients after the loop) and to grad_z_step (the input of the next GEMM).
template <typename T>
__global__ void simple_rnn_backward_step(const T* grad_h_seq, const T* h_seq,
                                         const T* grad_h_from_later, T* grad_z_seq, T* grad_z_step,
                                         Index batch, Index steps, Index units, Index t,
                                         int activation)
{
    const Index total = batch * units;
    for (Index i = first_index(); i < total; i += index_stride()) {
        const Index u = i % units;
        const Index n = i / units;
        const Index at = sequence_position(n, t, u, steps, units);
        const T grad_h = grad_h_seq[at] + grad_h_from_later[i];
        const T grad_z = grad_h * activation_slope(activation, h_seq[at]);
        grad_z_seq[at] = grad_z;
        grad_z_step[i] = grad_z;
    }
}

// ---------------------------------------------------------------------------
// LSTM, Keras gate order i, f, c, o
// ---------------------------------------------------------------------------
// input_projection (batch, steps, 4 units), recurrent_projection (batch, 4 units).
// c_state holds c_{t-1} on entry and c_t on exit (each thread owns one element);
// h_state receives h_t.  gates (batch, steps, 4 units) receives i, f, g, o.
template <typename T>
__global__ void lstm_forward_step(const T* input_projection, const T* recurrent_projection,
                                  const T* bias, T* h_state, T* c_state,
                                  T* h_seq, T* c_seq, T* gates,
                                  Index batch, Index steps, Index units, Index t,
                                  int activation, int recurrent_activation)
{
    const Index total = batch * units;
    const Index width = 4 * units;
    for (Index i = first_index(); i < total; i += index_stride()) {
        const Index u = i % units;
        const Index n = i / units;
        const Index gate_at = sequence_position(n, t, u, steps, width);
        const Index recurrent_at = n * width + u;
        T z[4];
        for (int k = 0; k < 4; ++k) {
            z[k] = input_projection[gate_at + k * units]
                 + recurrent_projection[recurrent_at + k * units] + bias[k * units + u];
        }
        const T input_gate = activate(recurrent_activation, z[0]);   // how much new to write
        const T forget_gate = activate(recurrent_activation, z[1]);  // how much old to keep
        const T candidate = activate(activation, z[2]);              // the new content
        const T output_gate = activate(recurrent_activation, z[3]);  // how much to show
        const T c = forget_gate * c_state[i] + input_gate * candidate;
        const T h = output_gate * activate(activation, c);

        const Index at = sequence_position(n, t, u, steps, units);
        c_state[i] = c;
        h_state[i] = h;
        c_seq[at] = c;
        h_seq[at] = h;
        gates[gate_at] = input_gate;
        gates[gate_at + units] = forget_gate;
        gates[gate_at + 2 * units] = candidate;
        gates[gate_at + 3 * units] = output_gate;
    }
}

// grad_c holds the gradient of c_t on entry (from step t + 1, or grad_c_last)
// and that of c_{t-1} on exit.  grad_z_seq (batch, steps, 4 units) and
// grad_z_step (batch, 4 units) receive the gradient of the pre-activations z.
// act(c_t) is recomputed from c_seq rather than stored by the forward pass.
template <typename T>
__global__ void lstm_backward_step(const T* grad_h_seq, const T* c_seq, const T* c0,
                                   const T* gates, const T* grad_h_from_later, T* grad_c,
                                   T* grad_z_seq, T* grad_z_step,
                                   Index batch, Index steps, Index units, Index t,
                                   int activation, int recurrent_activation)
{
    const Index total = batch * units;
    const Index width = 4 * units;
    for (Index i = first_index(); i < total; i += index_stride()) {
        const Index u = i % units;
        const Index n = i / units;
        const Index at = sequence_position(n, t, u, steps, units);
        const Index gate_at = sequence_position(n, t, u, steps, width);
        const T input_gate = gates[gate_at];
        const T forget_gate = gates[gate_at + units];
        const T candidate = gates[gate_at + 2 * units];
        const T output_gate = gates[gate_at + 3 * units];
        const T c_prev = t == 0 ? c0[i] : c_seq[at - units];  // (n, t - 1, u)
        const T activated_c = activate(activation, c_seq[at]);

        const T grad_h = grad_h_seq[at] + grad_h_from_later[i];
        // h_t = o * act(c_t)
        const T grad_output_gate = grad_h * activated_c;
        const T grad_c_total =
            grad_c[i] + grad_h * output_gate * activation_slope(activation, activated_c);
        // c_t = f * c_{t-1} + i * g
        const T grad_input_gate = grad_c_total * candidate;
        const T grad_forget_gate = grad_c_total * c_prev;
        const T grad_candidate = grad_c_total * input_gate;

        T grad_z[4];
        grad_z[0] = grad_input_gate * activation_slope(recurrent_activation, input_gate);
        grad_z[1] = grad_forget_gate * activation_slope(recurrent_activation, forget_gate);
        grad_z[2] = grad_candidate * activation_slope(activation, candidate);
        grad_z[3] = grad_output_gate * activation_slope(recurrent_activation, output_gate);
        for (int k = 0; k < 4; ++k) {
            grad_z_seq[gate_at + k * units] = grad_z[k];
            grad_z_step[n * width + k * units + u] = grad_z[k];
        }
        grad_c[i] = grad_c_total * forget_gate;
    }
}

// ---------------------------------------------------------------------------
// GRU, Keras reset_after=True, gate order z, r, h
// ---------------------------------------------------------------------------
// input_projection (batch, steps, 3 units) = x @ kernel (no bias);
// recurrent_projection (batch, 3 units) = h_{t-1} @ recurrent_kernel (no bias).
// h_state holds h_{t-1} on entry and h_t on exit.  gates (batch, steps, 4 units)
// receives z, r, hh and hz_h (the recurrent candidate part before r scales it).
template <typename T>
__global__ void gru_forward_step(const T* input_projection, const T* recurrent_projection,
                                 const T* input_bias, const T* recurrent_bias,
                                 T* h_state, T* h_seq, T* gates,
                                 Index batch, Index steps, Index units, Index t,
                                 int activation, int recurrent_activation)
{
    const Index total = batch * units;
    const Index width = 3 * units;
    for (Index i = first_index(); i < total; i += index_stride()) {
        const Index u = i % units;
        const Index n = i / units;
        const Index input_at = sequence_position(n, t, u, steps, width);
        const Index recurrent_at = n * width + u;
        T xz[3];
        T hz[3];
        for (int k = 0; k < 3; ++k) {
            xz[k] = input_projection[input_at + k * units] + input_bias[k * units + u];
            hz[k] = recurrent_projection[recurrent_at + k * units] + recurrent_bias[k * units + u];
        }
        const T update_gate = activate(recurrent_activation, xz[0] + hz[0]);  // keep old h
        const T reset_gate = activate(recurrent_activation, xz[1] + hz[1]);
        // reset_after=True: r scales the recurrent part after its matrix product.
        const T candidate = activate(activation, xz[2] + reset_gate * hz[2]);
        const T h = update_gate * h_state[i] + (T(1) - update_gate) * candidate;

        h_state[i] = h;
        h_seq[sequence_position(n, t, u, steps, units)] = h;
        const Index gate_at = sequence_position(n, t, u, steps, 4 * units);
        gates[gate_at] = update_gate;
        gates[gate_at + units] = reset_gate;
        gates[gate_at + 2 * units] = candidate;
        gates[gate_at + 3 * units] = hz[2];
    }
}

// h_{t-1} reaches h_t twice: directly (z * h_{t-1}) and through the recurrent
// GEMM.  The step keeps the two parts apart so that it needs no second kernel:
// grad_h_direct holds grad_h_t * z_t on exit (read back by step t - 1) and
// grad_h_from_gemm is (grad of hz at step t + 1) @ recurrent_kernel.T.
// grad_xz_seq / grad_hz_seq (batch, steps, 3 units) receive the gradients of the
// input and recurrent projections; grad_hz_step (batch, 3 units) the latter
// for this step, the input of the next GEMM.
template <typename T>
__global__ void gru_backward_step(const T* grad_h_seq, const T* h_seq, const T* h0,
                                  const T* gates, const T* grad_h_from_gemm, T* grad_h_direct,
                                  T* grad_xz_seq, T* grad_hz_seq, T* grad_hz_step,
                                  Index batch, Index steps, Index units, Index t,
                                  int activation, int recurrent_activation)
{
    const Index total = batch * units;
    const Index width = 3 * units;
    for (Index i = first_index(); i < total; i += index_stride()) {
        const Index u = i % units;
        const Index n = i / units;
        const Index at = sequence_position(n, t, u, steps, units);
        const Index gate_at = sequence_position(n, t, u, steps, 4 * units);
        const T update_gate = gates[gate_at];
        const T reset_gate = gates[gate_at + units];
        const T candidate = gates[gate_at + 2 * units];
        const T recurrent_candidate = gates[gate_at + 3 * units];
        const T h_prev = t == 0 ? h0[i] : h_seq[at - units];  // (n, t - 1, u)

        const T grad_h = grad_h_seq[at] + (grad_h_direct[i] + grad_h_from_gemm[i]);
        // h_t = z * h_{t-1} + (1 - z) * hh
        const T grad_update_gate = grad_h * (h_prev - candidate);
        const T grad_candidate_out = grad_h * (T(1) - update_gate);
        // hh = act(xz_h + r * hz_h)
        const T grad_candidate = grad_candidate_out * activation_slope(activation, candidate);
        const T grad_reset_gate = grad_candidate * recurrent_candidate;
        const T grad_z_pre = grad_update_gate * activation_slope(recurrent_activation, update_gate);
        const T grad_r_pre = grad_reset_gate * activation_slope(recurrent_activation, reset_gate);

        const Index input_at = sequence_position(n, t, u, steps, width);
        const Index step_at = n * width + u;
        grad_xz_seq[input_at] = grad_z_pre;
        grad_xz_seq[input_at + units] = grad_r_pre;
        grad_xz_seq[input_at + 2 * units] = grad_candidate;
        grad_hz_seq[input_at] = grad_z_pre;
        grad_hz_seq[input_at + units] = grad_r_pre;
        grad_hz_seq[input_at + 2 * units] = grad_candidate * reset_gate;
        grad_hz_step[step_at] = grad_z_pre;
        grad_hz_step[step_at + units] = grad_r_pre;
        grad_hz_step[step_at + 2 * units] = grad_candidate * reset_gate;
        grad_h_direct[i] = grad_h * update_gate;
    }
}
