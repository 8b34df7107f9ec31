"""Synthetic inputs, the same for every framework: a few batches, cycled during timing.

Arrays are made with NumPy from fixed seeds, in the Keras layouts (NHWC images,
(batch, time, features) sequences); each adapter converts them to its own layout
and device once, before timing.
"""
import numpy as np

from .workloads import BATCH, CLASSES, MODELS

ROTATION = 4   # distinct batches cycled through, so caches do not flatter anyone


def model_batches(workload, count=ROTATION, seed=0):
    """`count` batches (x float32 of the workload's input shape, y int64 labels)."""
    rng = np.random.default_rng(seed)
    shape = (BATCH,) + tuple(MODELS[workload]["input_shape"])
    xs = [rng.random(shape, dtype=np.float32) for _ in range(count)]
    ys = [rng.integers(0, CLASSES, size=BATCH, dtype=np.int64) for _ in range(count)]
    return xs, ys


def _normal(rng, shape, scale=1.0):
    return (rng.standard_normal(shape, dtype=np.float32) * np.float32(scale))


def kernel_inputs(name, count=ROTATION, seed=0):
    """The kernel's inputs: lists of `count` arrays for what rotates, single arrays for weights."""
    rng = np.random.default_rng(seed)
    if name == "matmul":
        return {"a": [_normal(rng, (128, 784)) for _ in range(count)],
                "b": _normal(rng, (784, 128), 784 ** -0.5)}
    if name == "conv2d":
        return {"x": [_normal(rng, (128, 13, 13, 32)) for _ in range(count)],
                "w": _normal(rng, (3, 3, 32, 64), (9 * 32) ** -0.5),
                "g": [_normal(rng, (128, 11, 11, 64)) for _ in range(count)]}
    if name == "conv_pool":
        return {"x": [_normal(rng, (128, 28, 28, 1)) for _ in range(count)],
                "w": _normal(rng, (3, 3, 1, 32), 9 ** -0.5),
                "b": _normal(rng, (32,), 0.1),
                "g": [_normal(rng, (128, 13, 13, 32)) for _ in range(count)]}
    if name == "maxpool":
        return {"x": [_normal(rng, (128, 26, 26, 32)) for _ in range(count)],
                "g": [_normal(rng, (128, 13, 13, 32)) for _ in range(count)]}
    if name == "lstm":
        units, features = 128, 28
        return {"x": [_normal(rng, (128, 28, features)) for _ in range(count)],
                "kernel": _normal(rng, (features, 4 * units), features ** -0.5),
                "recurrent_kernel": _normal(rng, (units, 4 * units), units ** -0.5),
                "bias": np.zeros(4 * units, dtype=np.float32),
                "g": [_normal(rng, (128, 28, units)) for _ in range(count)],
                "units": units}
    if name == "softmax_ce":
        return {"logits": [_normal(rng, (128, CLASSES), 3.0) for _ in range(count)],
                "labels": [rng.integers(0, CLASSES, size=128, dtype=np.int64)
                           for _ in range(count)]}
    raise KeyError(f"unknown kernel {name!r}")
