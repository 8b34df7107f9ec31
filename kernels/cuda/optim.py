"""Optimizer updates on the GPU, in place, with Keras semantics (kernels in optim.cu).

Unlike every other kernel these modify ``param`` and the optimizer's state
arrays and return None.  A kernel writes through the raw pointer of each
array, so those arrays must be C-contiguous and of the parameter's dtype:
a contiguous copy would receive the update and the caller's array would not.
"""
import math

import cupy
import numpy as np

from .. import composed
from .loader import (
    check_shape,
    contiguous,
    float_dtype,
    get_kernel,
    index,
    launch_over_elements,
    scalar,
)

CUDA_FILE = "optim.cu"


def is_ready_for_update(array, param):
    """True when a kernel can use ``array`` beside ``param`` as it is: a
    C-contiguous CuPy array of param's dtype and shape."""
    return (isinstance(array, cupy.ndarray) and array.flags.c_contiguous
            and array.dtype == param.dtype and array.shape == param.shape)


def checked_grad(param, grad, states):
    """The gradient as the kernel reads it, once param and the states (a dict
    name -> array) are known to be updatable in place.

    An optimizer updates every weight every step, and almost always all its
    arrays are already as the kernel needs them: that case costs a few
    attribute reads.  Otherwise each array is checked by name, for a clear
    error, and the gradient (read only, so a copy will do) is converted.
    (A param that is not float32 or float64 is refused by get_kernel.)
    """
    arrays = (param, grad, *states.values())
    if all(is_ready_for_update(array, param) for array in arrays):
        return grad
    check_updatable(param, states)
    return prepared_grad(grad, param)


def check_updatable(param, states):
    """ValueError unless param and every state can be updated in place by a kernel."""
    float_dtype(param)
    for name, array in (("param", param), *states.items()):
        if not isinstance(array, cupy.ndarray):
            raise TypeError(
                f"optimizer update: {name} must be a CuPy array, got {type(array).__name__}"
            )
        if not array.flags.c_contiguous:
            raise ValueError(
                f"optimizer update: {name} must be C-contiguous to be updated in place; "
                f"got a strided view of shape {tuple(array.shape)}"
            )
        if array.dtype != param.dtype:
            raise ValueError(
                f"optimizer update: {name} is {array.dtype} but param is {param.dtype}"
            )
        check_shape(f"optimizer update: {name}", array, param.shape)


def prepared_grad(grad, param):
    """The gradient as a contiguous array of the parameter's dtype and shape."""
    check_shape("optimizer update: grad", grad, param.shape)
    return contiguous(grad, param.dtype)


def as_scalars(values, dtype):
    """Python floats as the kernel's T, rounded as NumPy rounds them against a T array."""
    return tuple(scalar(value, dtype) for value in values)


def sgd_update(param, grad, velocity, lr, momentum, nesterov):
    """Keras SGD: plain (momentum == 0, velocity untouched), momentum or Nesterov."""
    # Without momentum Keras keeps no velocity: it is neither read nor checked.
    grad = checked_grad(param, grad, {"velocity": velocity} if momentum != 0 else {})
    dtype = param.dtype
    if momentum == 0:
        kernel = get_kernel(CUDA_FILE, "sgd_update", dtype)
        arguments = (param, grad, index(param.size), scalar(lr, dtype))
        launch_over_elements(kernel, param.size, arguments)
        return
    kernel = get_kernel(CUDA_FILE, "sgd_momentum_update", dtype)
    launch_over_elements(
        kernel, param.size,
        (param, grad, velocity, index(param.size),
         scalar(lr, dtype), scalar(momentum, dtype), np.int32(bool(nesterov))),
    )


def adam_update(param, grad, m, v, lr, beta1, beta2, epsilon, step, weight_decay):
    """Keras Adam (AdamW when weight_decay is non-zero); ``step`` counts from 1."""
    grad = checked_grad(param, grad, {"m": m, "v": v})
    dtype = param.dtype
    # Both moments start at zero and so are biased towards it early on; Keras
    # folds the two bias corrections into the step size.
    alpha = lr * math.sqrt(1 - beta2**step) / (1 - beta1**step)
    decay = lr * weight_decay if weight_decay else 0.0
    hyper_parameters = (decay, beta1, 1 - beta1, beta2, 1 - beta2, alpha, epsilon)
    kernel = get_kernel(CUDA_FILE, "adam_update", dtype)
    arguments = (param, grad, m, v, index(param.size)) + as_scalars(hyper_parameters, dtype)
    launch_over_elements(kernel, param.size, arguments)



def adam_update_many(params, grads, ms, vs, lr, beta1, beta2, epsilon, step, weight_decay):
    """adam_update for each parameter of the lists in turn: one optimizer step."""
    composed.adam_update_many(adam_update, params, grads, ms, vs, lr, beta1, beta2, epsilon,
                              step, weight_decay)


def adam_update_flat(params, grads, ms, vs, lr, beta1, beta2, epsilon, step, weight_decay):
    """adam_update_many on tuples of 1-D arrays of one dtype (the cpu set's reason
    for it: the Adam optimizer keeps its arrays' flat views between steps)."""
    composed.adam_update_many(adam_update, params, grads, ms, vs, lr, beta1, beta2, epsilon,
                              step, weight_decay)


def rmsprop_update(param, grad, mean_square, lr, rho, epsilon):
    """Keras RMSprop without momentum, not centered."""
    grad = checked_grad(param, grad, {"mean_square": mean_square})
    dtype = param.dtype
    hyper_parameters = (lr, rho, 1 - rho, epsilon)
    kernel = get_kernel(CUDA_FILE, "rmsprop_update", dtype)
    arguments = (param, grad, mean_square, index(param.size)) + as_scalars(hyper_parameters, dtype)
    launch_over_elements(kernel, param.size, arguments)


def adagrad_update(param, grad, accumulator, lr, epsilon):
    """Adagrad: accumulator += grad**2; param -= lr * grad / (sqrt(accumulator) + epsilon)."""
    grad = checked_grad(param, grad, {"accumulator": accumulator})
    dtype = param.dtype
    kernel = get_kernel(CUDA_FILE, "adagrad_update", dtype)
    arguments = (param, grad, accumulator, index(param.size)) + as_scalars((lr, epsilon), dtype)
    launch_over_elements(kernel, param.size, arguments)
