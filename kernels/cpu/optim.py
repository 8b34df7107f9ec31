"""Optimizer updates compiled with Numba, with Keras semantics, in place.

Each update is one pass over the parameter: every element reads its gradient
and state once and writes its new state and value once, where the NumPy
version streams the whole array through memory several times.

Parameters may have any shape. The cores see *flat views* made with
``reshape(-1)``; for a C-contiguous array that view shares memory with the
caller's array, so writing through it updates the caller's parameter and
state. A non-contiguous array would be silently copied by ``reshape``, and
the update lost, so the wrappers refuse such arrays.
"""
import math

import numpy as np
from numba import njit
from numba.core.errors import TypingError

from ..composed import check_one_of_each

# Cores that divide use Numba's error_model="numpy": the default ("python")
# tests every divisor for zero so as to raise ZeroDivisionError, and that test
# stops the loop from being vectorized (Adam ran 4x slower with it). NumPy's
# rule, inf or nan, is also what the reference kernels do.


def _flat_view(array, name, param):
    """A flat view that writes through to ``array`` (which must match ``param``)."""
    if array.shape != param.shape:
        raise ValueError(f"{name} has shape {array.shape}, the parameter has {param.shape}")
    if not array.flags.c_contiguous or not array.flags.writeable:
        raise ValueError(
            f"{name} must be a writeable C-contiguous array to be updated in place; "
            f"pass np.ascontiguousarray({name}) and keep that array as the state"
        )
    return array.reshape(-1)


def _flat_grad(grad, param):
    """The gradient is only read, so a contiguous copy in the parameter's dtype is fine."""
    if grad.shape != param.shape:
        raise ValueError(f"grad has shape {grad.shape}, the parameter has {param.shape}")
    return np.ascontiguousarray(grad, dtype=param.dtype).reshape(-1)


# --- SGD -------------------------------------------------------------------


@njit(cache=True)
def _sgd_core(param, grad, lr):
    for i in range(param.size):
        param[i] -= lr * grad[i]


@njit(cache=True)
def _sgd_momentum_core(param, grad, velocity, lr, momentum, nesterov):
    for i in range(param.size):
        g = grad[i]
        new_velocity = momentum * velocity[i] - lr * g
        velocity[i] = new_velocity
        if nesterov:
            # Step from the look-ahead point the velocity is about to reach.
            param[i] += momentum * new_velocity - lr * g
        else:
            param[i] += new_velocity


def sgd_update(param, grad, velocity, lr, momentum, nesterov):
    """Keras SGD: plain, with momentum, or with Nesterov momentum (in place)."""
    flat_param = _flat_view(param, "param", param)
    flat_grad = _flat_grad(grad, param)
    if momentum == 0:
        # Keras keeps no velocity without momentum; the array is left untouched.
        _sgd_core(flat_param, flat_grad, float(lr))
        return
    flat_velocity = _flat_view(velocity, "velocity", param)
    _sgd_momentum_core(
        flat_param, flat_grad, flat_velocity, float(lr), float(momentum), bool(nesterov)
    )


# --- Adam ------------------------------------------------------------------


@njit(cache=True, error_model="numpy")
def _adam_core(param, grad, m, v, beta1, one_minus_beta1, beta2, one_minus_beta2, epsilon,
               alpha, keep):
    for i in range(param.size):
        g = grad[i]
        new_m = beta1 * m[i] + one_minus_beta1 * g
        new_v = beta2 * v[i] + one_minus_beta2 * (g * g)
        m[i] = new_m
        v[i] = new_v
        # keep = 1 - lr * weight_decay: AdamW's decoupled decay (1 for plain Adam).
        param[i] = keep * param[i] - alpha * new_m / (np.sqrt(new_v) + epsilon)


def _adam_coefficients(lr, beta1, beta2, epsilon, step, weight_decay, dtype):
    """(beta1, 1 - beta1, beta2, 1 - beta2, epsilon, alpha, keep) as scalars of `dtype`."""
    if step < 1:
        raise ValueError(f"adam_update: step counts from 1, got {step}")
    # Both bias corrections depend on the step only, so they are folded into
    # the step size once here rather than once per element.
    alpha = lr * math.sqrt(1 - beta2**step) / (1 - beta1**step)
    # Decoupled (AdamW) weight decay: the weights shrink by lr * weight_decay.
    keep = 1.0 - lr * weight_decay if weight_decay else 1.0
    # Every coefficient goes in as a scalar of the parameter's dtype: one
    # float64 scalar would turn a float32 loop into float64 arithmetic, whose
    # square roots and divisions take twice as many vector instructions (2.7x
    # slower for a 784 x 128 kernel). The NumPy reference computes in the
    # parameter's dtype too (NumPy treats Python floats as weak scalars).
    scalar = np.dtype(dtype).type
    return tuple(map(scalar, (beta1, 1 - beta1, beta2, 1 - beta2, epsilon, alpha, keep)))


def adam_update(param, grad, m, v, lr, beta1, beta2, epsilon, step, weight_decay):
    """Keras Adam (AdamW when weight_decay is non-zero), in place; ``step`` counts from 1."""
    _adam_core(
        _flat_view(param, "param", param), _flat_grad(grad, param),
        _flat_view(m, "m", param), _flat_view(v, "v", param),
        *_adam_coefficients(lr, beta1, beta2, epsilon, step, weight_decay, param.dtype),
    )


@njit(cache=True, error_model="numpy")
def _adam_many_core(params, grads, ms, vs, beta1, one_minus_beta1, beta2, one_minus_beta2,
                    epsilon, alpha, keep):
    for k in range(len(params)):
        # Checked here, where it costs nothing: a compiled loop does not check
        # its indices, and a short grad, m or v would be read past its end.
        size = params[k].size
        if grads[k].size != size or ms[k].size != size or vs[k].size != size:
            raise ValueError("adam_update: a grad, m or v is not as long as its parameter")
        if params[k].ndim != 1:
            raise ValueError("adam_update_flat takes 1-D arrays; use adam_update_many")
        _adam_core(params[k], grads[k], ms[k], vs[k], beta1, one_minus_beta1, beta2,
                   one_minus_beta2, epsilon, alpha, keep)


def adam_update_many(params, grads, ms, vs, lr, beta1, beta2, epsilon, step, weight_decay):
    """adam_update for every parameter of the lists: one compiled call per dtype.

    Why: a small model's step updates a few arrays, and each compiled call
    costs 2-3 us to dispatch (Numba checks the type of every argument).  W1's
    four weights: 50 us as four calls, 38 us as one.  The arrays go in as
    tuples of flat views (Numba compiles the loop once per number of arrays,
    and caches it).
    """
    check_one_of_each(params, grads, ms, vs)
    by_dtype = {}
    for param, grad, m, v in zip(params, grads, ms, vs):
        views = (_flat_view(param, "param", param), _flat_grad(grad, param),
                 _flat_view(m, "m", param), _flat_view(v, "v", param))
        by_dtype.setdefault(param.dtype, []).append(views)
    for dtype, group in by_dtype.items():
        flat_params, flat_grads, flat_ms, flat_vs = (tuple(column) for column in zip(*group))
        _adam_many_core(flat_params, flat_grads, flat_ms, flat_vs,
                        *_adam_coefficients(lr, beta1, beta2, epsilon, step, weight_decay, dtype))


def adam_update_flat(params, grads, ms, vs, lr, beta1, beta2, epsilon, step, weight_decay):
    """adam_update_many on tuples of 1-D arrays of one dtype, kept flat by the caller.

    Why: checking and flattening a model's twelve weight and moment arrays at
    every step costs more than the rest of the optimizer's Python.  The Adam
    optimizer makes the flat views of its weights and moments once, and only
    the gradients' views are new each step.  A 1-D array is written in place
    through any strides, so nothing here can be silently copied; the lengths
    and ranks are checked in the compiled loop, for free.
    """
    check_one_of_each(params, grads, ms, vs)
    if not params:
        return
    coefficients = _adam_coefficients(lr, beta1, beta2, epsilon, step, weight_decay,
                                      params[0].dtype)
    try:
        _adam_many_core(params, grads, ms, vs, *coefficients)
    except TypingError:
        # Arrays of several dtypes or ranks make tuples the loop is not compiled
        # for (and a read-only array cannot be written): said here in plain words.
        raise ValueError(
            "adam_update_flat takes tuples of writeable 1-D arrays, all of one dtype, got "
            f"{[(a.shape, str(a.dtype)) for a in params + grads + ms + vs]}; "
            "use adam_update_many for other arrays") from None


# --- RMSprop and Adagrad ---------------------------------------------------


@njit(cache=True, error_model="numpy")
def _rmsprop_core(param, grad, mean_square, lr, rho, one_minus_rho, epsilon):
    for i in range(param.size):
        g = grad[i]
        new_mean_square = rho * mean_square[i] + one_minus_rho * (g * g)
        mean_square[i] = new_mean_square
        param[i] -= lr * g / (np.sqrt(new_mean_square) + epsilon)


def rmsprop_update(param, grad, mean_square, lr, rho, epsilon):
    """Keras RMSprop without momentum, not centered (in place)."""
    scalar = param.dtype.type  # coefficients in the parameter's dtype: see adam_update
    _rmsprop_core(
        _flat_view(param, "param", param), _flat_grad(grad, param),
        _flat_view(mean_square, "mean_square", param),
        scalar(lr), scalar(rho), scalar(1 - rho), scalar(epsilon),
    )


@njit(cache=True, error_model="numpy")
def _adagrad_core(param, grad, accumulator, lr, epsilon):
    for i in range(param.size):
        g = grad[i]
        new_accumulator = accumulator[i] + g * g
        accumulator[i] = new_accumulator
        param[i] -= lr * g / (np.sqrt(new_accumulator) + epsilon)


def adagrad_update(param, grad, accumulator, lr, epsilon):
    """Adagrad, in place: each weight's step shrinks with its own sum of squared gradients."""
    scalar = param.dtype.type  # coefficients in the parameter's dtype: see adam_update
    _adagrad_core(
        _flat_view(param, "param", param), _flat_grad(grad, param),
        _flat_view(accumulator, "accumulator", param), scalar(lr), scalar(epsilon),
    )
