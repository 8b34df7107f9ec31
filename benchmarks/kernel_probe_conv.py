"""Time the conv and pool kernels on the MNIST CNN's shapes, next to PyTorch.

    python benchmarks/kernel_probe_conv.py [--threads 2] [--repeats 30] [--clock wall]

The workload is the Keras MNIST CNN at batch 128: Conv2D(32, 3x3) on 28x28x1,
MaxPool 2x2, Conv2D(64, 3x3) on 13x13x32, MaxPool 2x2.  Each line gives the
time of our Numba (cpu) kernel, PyTorch's time for the same work (NCHW, as
PyTorch prefers), and the ratio ours / torch (below 1: we are faster).

Times are the best and the median of --repeats calls.  On a machine shared with
other work the best is the steadier estimate of what the code can do; the
median shows what the noise made of it.  The ratio uses the best times.
`--clock cpu` measures the process's CPU time instead of wall time: with
`--threads 1` that ignores the time the process spends waiting for a core, so
it stays meaningful on a busy machine (with more threads it would add up the
threads, spinning included, and is not a fair measure).

PyTorch's backward passes are timed one gradient at a time through
aten.convolution_backward and aten.max_pool2d_with_indices_backward, the
functions its autograd calls, so each of our kernels meets its exact twin.
"""
import argparse
import os
import time


def parse_arguments():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--clock", default="wall", choices=["wall", "cpu"])
    return parser.parse_args()


ARGS = parse_arguments()
# Thread counts must be set before NumPy's BLAS and Numba start their pools.
for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[variable] = str(ARGS.threads)

import numpy as np  # noqa: E402
import torch  # noqa: E402

from deepbreadth.kernels.cpu import conv as cpu_conv  # noqa: E402
from deepbreadth.kernels.cpu import pool as cpu_pool  # noqa: E402

torch.set_num_threads(ARGS.threads)
CLOCK = time.perf_counter if ARGS.clock == "wall" else time.process_time


def timings(function, repeats):
    """(best, median) wall time of function() after two warm-up calls (Numba compiles on the first)."""
    function()
    function()
    times = []
    for _ in range(repeats):
        start = CLOCK()
        function()
        times.append(CLOCK() - start)
    return np.array([min(times), np.median(times)])


def report(name, ours, theirs):
    """One line: best / median in ms for both, and the ratio of the best times."""
    print(f"{name:<46} ours {ours[0] * 1e3:6.2f} /{ours[1] * 1e3:6.2f} ms   "
          f"torch {theirs[0] * 1e3:6.2f} /{theirs[1] * 1e3:6.2f} ms   "
          f"ratio {ours[0] / theirs[0]:5.2f}")


def probe_conv(batch, height, width, channels, filters, dtype, repeats):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, height, width, channels)).astype(dtype)
    w = rng.standard_normal((3, 3, channels, filters)).astype(dtype)
    geometry = ((1, 1), ((0, 0), (0, 0)), (1, 1))
    y = cpu_conv.conv2d_forward(x, w, *geometry)
    grad_y = rng.standard_normal(y.shape).astype(dtype)

    x_t = torch.from_numpy(x.transpose(0, 3, 1, 2).copy())
    w_t = torch.from_numpy(w.transpose(3, 2, 0, 1).copy())
    grad_y_t = torch.from_numpy(grad_y.transpose(0, 3, 1, 2).copy())

    def torch_backward(input_mask, weight_mask):
        return torch.ops.aten.convolution_backward(
            grad_y_t, x_t, w_t, None, [1, 1], [0, 0], [1, 1], False, [0, 0], 1,
            [input_mask, weight_mask, False],
        )

    shape = f"{batch}x{height}x{width}x{channels} -> {filters}"
    with torch.no_grad():
        cases = [
            ("forward", lambda: cpu_conv.conv2d_forward(x, w, *geometry),
             lambda: torch.nn.functional.conv2d(x_t, w_t)),
            ("backward input", lambda: cpu_conv.conv2d_backward_input(grad_y, w, x.shape, *geometry),
             lambda: torch_backward(True, False)),
            ("backward kernel", lambda: cpu_conv.conv2d_backward_kernel(x, grad_y, w.shape, *geometry),
             lambda: torch_backward(False, True)),
        ]
        ours_total, theirs_total = np.zeros(2), np.zeros(2)
        for name, ours, theirs in cases:
            ours_time, theirs_time = timings(ours, repeats), timings(theirs, repeats)
            ours_total += ours_time
            theirs_total += theirs_time
            report(f"conv2d 3x3 {shape} {name}", ours_time, theirs_time)
        report(f"conv2d 3x3 {shape} all three", ours_total, theirs_total)


def probe_max_pool(batch, height, width, channels, dtype, repeats):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, height, width, channels)).astype(dtype)
    arguments = ((2, 2), (2, 2), ((0, 0), (0, 0)))
    y, argmax = cpu_pool.max_pool2d_forward(x, *arguments)
    grad_y = rng.standard_normal(y.shape).astype(dtype)

    x_t = torch.from_numpy(x.transpose(0, 3, 1, 2).copy())
    grad_y_t = torch.from_numpy(grad_y.transpose(0, 3, 1, 2).copy())
    _, indices_t = torch.nn.functional.max_pool2d(x_t, 2, 2, return_indices=True)
    shape = f"{batch}x{height}x{width}x{channels}"

    # PyTorch saves the winners' indices whenever the input needs a gradient,
    # as ours always does: time the forward with return_indices to match.
    forward_ours = timings(lambda: cpu_pool.max_pool2d_forward(x, *arguments), repeats)
    forward_torch = timings(
        lambda: torch.nn.functional.max_pool2d(x_t, 2, 2, return_indices=True), repeats)
    backward_ours = timings(
        lambda: cpu_pool.max_pool2d_backward(grad_y, argmax, x.shape, *arguments), repeats)
    backward_torch = timings(
        lambda: torch.ops.aten.max_pool2d_with_indices_backward(
            grad_y_t, x_t, [2, 2], [2, 2], [0, 0], [1, 1], False, indices_t), repeats)
    report(f"max_pool2d 2x2 {shape} forward", forward_ours, forward_torch)
    report(f"max_pool2d 2x2 {shape} backward", backward_ours, backward_torch)


def main():
    dtype = np.dtype(ARGS.dtype)
    print(f"threads: {ARGS.threads} (torch {torch.get_num_threads()}), dtype {dtype}, "
          f"{ARGS.clock} clock, best / median of {ARGS.repeats} calls")
    probe_conv(128, 28, 28, 1, 32, dtype, ARGS.repeats)
    probe_conv(128, 13, 13, 32, 64, dtype, ARGS.repeats)
    probe_max_pool(128, 26, 26, 32, dtype, ARGS.repeats)
    probe_max_pool(128, 11, 11, 64, dtype, ARGS.repeats)


if __name__ == "__main__":
    main()
