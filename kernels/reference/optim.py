"""Optimizer update rules in plain NumPy, with Keras semantics.

Unlike every other kernel these work in place: they modify ``param`` and the
optimizer's state arrays and return None, because the optimizer owns those
arrays and reallocating them every step would only cost memory traffic.
Every update below uses in-place operators (``-=``, ``[...] =``) so that the
caller's arrays, of any shape, are the ones that change.
"""
import math

import numpy as np

from .. import composed


def sgd_update(param, grad, velocity, lr, momentum, nesterov):
    """Keras SGD: plain, with momentum, or with Nesterov momentum."""
    if momentum == 0:
        # Keras keeps no velocity without momentum; leave the array untouched.
        param -= lr * grad
        return
    velocity[...] = momentum * velocity - lr * grad
    if nesterov:
        # Take the step the velocity is about to take, from the look-ahead point.
        param += momentum * velocity - lr * grad
    else:
        param += velocity


def adam_update(param, grad, m, v, lr, beta1, beta2, epsilon, step, weight_decay):
    """Keras Adam (AdamW when weight_decay is non-zero); ``step`` counts from 1."""
    if weight_decay:
        # Decoupled weight decay: shrink the weights directly, outside the
        # adaptive scaling, so large-gradient weights decay like the others.
        param -= lr * weight_decay * param
    m[...] = beta1 * m + (1 - beta1) * grad
    v[...] = beta2 * v + (1 - beta2) * grad * grad
    # Both moments start at zero and so are biased towards it early on; Keras
    # folds the two bias corrections into the step size.
    alpha = lr * math.sqrt(1 - beta2**step) / (1 - beta1**step)
    param -= alpha * m / (np.sqrt(v) + epsilon)


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
    mean_square[...] = rho * mean_square + (1 - rho) * grad * grad
    param -= lr * grad / (np.sqrt(mean_square) + epsilon)


def adagrad_update(param, grad, accumulator, lr, epsilon):
    """Adagrad: each weight's step shrinks with its own sum of squared gradients."""
    accumulator += grad * grad
    param -= lr * grad / (np.sqrt(accumulator) + epsilon)
