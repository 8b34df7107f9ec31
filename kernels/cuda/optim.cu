// Fused, in-place optimizer updates with Keras semantics: one thread per
// weight reads the gradient and the state once and writes both back, instead
// of the several passes over memory that whole-array expressions would take.
//
// Hyper-parameters arrive as T, already rounded from the Python floats the
// way NumPy rounds a Python float meeting a float32 array.  Expressions keep
// the reference's order of operations (see kernels/reference/optim.py).
#include "common.cuh"

// momentum == 0: param -= lr * grad; Keras keeps no velocity then.
template <typename T>
__global__ void sgd_update(T* param, const T* grad, Index count, T lr)
{
    for (Index i = first_index(); i < count; i += index_stride()) {
        param[i] -= lr * grad[i];
    }
}

// velocity = momentum * velocity - lr * grad, then the step: the velocity, or
// with Nesterov the step the velocity is about to take from the look-ahead point.
template <typename T>
__global__ void sgd_momentum_update(T* param, const T* grad, T* velocity, Index count,
                                    T lr, T momentum, int nesterov)
{
    for (Index i = first_index(); i < count; i += index_stride()) {
        const T g = grad[i];
        const T v = momentum * velocity[i] - lr * g;
        velocity[i] = v;
        param[i] += nesterov ? momentum * v - lr * g : v;
    }
}

// Adam, AdamW when decay = lr * weight_decay is non-zero (decoupled: applied
// to the weight directly, outside the adaptive scaling).  alpha folds both
// bias corrections: lr * sqrt(1 - beta2^step) / (1 - beta1^step).
template <typename T>
__global__ void adam_update(T* param, const T* grad, T* m, T* v, Index count,
                            T decay, T beta1, T one_minus_beta1,
                            T beta2, T one_minus_beta2, T alpha, T epsilon)
{
    for (Index i = first_index(); i < count; i += index_stride()) {
        const T g = grad[i];
        T p = param[i];
        if (decay != T(0)) {
            p -= decay * p;
        }
        const T new_m = beta1 * m[i] + one_minus_beta1 * g;
        const T new_v = beta2 * v[i] + one_minus_beta2 * g * g;
        m[i] = new_m;
        v[i] = new_v;
        param[i] = p - alpha * new_m / (device_sqrt(new_v) + epsilon);
    }
}

// RMSprop without momentum, not centered.
template <typename T>
__global__ void rmsprop_update(T* param, const T* grad, T* mean_square, Index count,
                               T lr, T rho, T one_minus_rho, T epsilon)
{
    for (Index i = first_index(); i < count; i += index_stride()) {
        const T g = grad[i];
        const T square = rho * mean_square[i] + one_minus_rho * g * g;
        mean_square[i] = square;
        param[i] -= lr * g / (device_sqrt(square) + epsilon);
    }
}

// Each weight's step shrinks with its own sum of squared gradients.
template <typename T>
__global__ void adagrad_update(T* param, const T* grad, T* accumulator, Index count,
                               T lr, T epsilon)
{
    for (Index i = first_index(); i < count; i += index_stride()) {
        const T g = grad[i];
        const T sum = accumulator[i] + g * g;
        accumulator[i] = sum;
        param[i] -= lr * g / (device_sqrt(sum) + epsilon);
    }
}
