// Softmax cross-entropy: loss and softmax together, and the fused gradient.
#include "common.cuh"

// One block per row of logits (the blocks loop over rows when there are more
// rows than blocks).  Three passes over the row, each a block-wide reduction:
//   1. the row maximum m;
//   2. s = sum_k exp(logits_k - m)   (every exponent <= 0: no overflow);
//   3. probs_k = exp(logits_k - m) / s,  loss = log(s) - (logits_label - m),
//      which is -log(probs_label) without taking the log of a tiny number.
// blockDim.x must be a multiple of 32.
template <typename T>
__global__ void softmax_cross_entropy_forward(const T* logits, const long long* labels,
                                              T* loss, T* probs, Index rows, Index classes)
{
    __shared__ T partials[32];
    const T lowest = negative_infinity(T(0));
    for (Index row = blockIdx.x; row < rows; row += gridDim.x) {
        const T* row_logits = logits + row * classes;
        T* row_probs = probs + row * classes;

        T local_max = lowest;
        for (Index k = threadIdx.x; k < classes; k += blockDim.x) {
            local_max = MaxOperation()(local_max, row_logits[k]);
        }
        const T row_max = block_reduce(local_max, lowest, MaxOperation(), partials);

        T local_sum = T(0);
        for (Index k = threadIdx.x; k < classes; k += blockDim.x) {
            local_sum += device_exp(row_logits[k] - row_max);
        }
        const T sum = block_reduce(local_sum, T(0), SumOperation(), partials);

        for (Index k = threadIdx.x; k < classes; k += blockDim.x) {
            row_probs[k] = device_exp(row_logits[k] - row_max) / sum;
        }
        if (threadIdx.x == 0) {
            // A label outside [0, classes) has no logit to pick: NaN marks the
            // row (labels on the GPU are not read back to be checked first).
            const long long label = labels[row];
            loss[row] = label >= 0 && label < classes
                            ? device_log(sum) - (row_logits[label] - row_max)
                            : not_a_number(T(0));
        }
    }
}

// One thread per element: grad_loss[n] * (probs[n, k] - onehot(labels[n])[k]).
template <typename T>
__global__ void softmax_cross_entropy_backward(const T* probs, const long long* labels,
                                               const T* grad_loss, T* grad_logits,
                                               Index rows, Index classes)
{
    const Index total = rows * classes;
    for (Index i = first_index(); i < total; i += index_stride()) {
        const Index k = i % classes;
        const Index n = i / classes;
        T grad = probs[i] * grad_loss[n];
        if (k == labels[n]) {
            grad -= grad_loss[n];
        }
        grad_logits[i] = grad;
    }
}
