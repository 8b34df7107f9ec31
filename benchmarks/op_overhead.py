"""How much does one small op cost? deepbreadth's autograd next to PyTorch eager.

    python benchmarks/op_overhead.py [--repeats 2000] [--rounds 15]

On tiny tensors the arithmetic is nothing; what is timed is the bookkeeping
around it: wrapping arrays, recording graph nodes, ordering the graph and
routing gradients. The workload, identical in both frameworks, is

    c = a * b + a          (a, b: 16-element float32 vectors that require grad)
    c.sum().backward()

Each round times `--repeats` forward+backward steps in a row and keeps the
time per step; the median over rounds is reported, with the spread (the
lowest and highest round, and the quartiles). Writes
benchmarks/results/op_overhead.json: the ratio deepbreadth / PyTorch (below
1: deepbreadth is faster), the CPU model, thread counts and versions.
"""
import argparse
import json
import os
import platform
import sys
import tempfile
import time

# One thread everywhere, set before NumPy and torch start their thread pools:
# on 16 elements threads only add overhead, and both sides should get the same.
for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                 "NUMBA_NUM_THREADS", "VECLIB_MAXIMUM_THREADS"):
    os.environ[variable] = "1"

import numpy as np  # noqa: E402

import deepbreadth as db  # noqa: E402

RESULTS_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "op_overhead.json")
SIZE = 16


def parse_arguments():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=2000, help="steps per timed round")
    parser.add_argument("--rounds", type=int, default=15, help="timed rounds (the median is reported)")
    parser.add_argument("--warmup", type=int, default=500, help="untimed steps first")
    return parser.parse_args()


# ----------------------------------------------------------------------------
# The workload, once per framework
# ----------------------------------------------------------------------------
def deepbreadth_step(a, b):
    a.grad = None
    b.grad = None
    c = a * b + a
    c.sum().backward()


def torch_step(a, b):
    a.grad = None
    b.grad = None
    c = a * b + a
    c.sum().backward()


def deepbreadth_inputs(values_a, values_b):
    return (db.tensor(values_a, requires_grad=True), db.tensor(values_b, requires_grad=True))


def torch_inputs(values_a, values_b):
    import torch

    return (torch.tensor(values_a, requires_grad=True), torch.tensor(values_b, requires_grad=True))


# ----------------------------------------------------------------------------
# Timing
# ----------------------------------------------------------------------------
def seconds_per_step(step, inputs, repeats, rounds, warmup):
    """Time per step for each round: many steps per round, so the timer's own
    resolution and call cost vanish in the total."""
    for _ in range(warmup):
        step(*inputs)
    per_round = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(repeats):
            step(*inputs)
        per_round.append((time.perf_counter() - start) / repeats)
    return per_round


def summary(per_round):
    """Median and spread, in microseconds per step."""
    micro = np.array(per_round) * 1e6
    return {
        "median_us": round(float(np.median(micro)), 3),
        "min_us": round(float(micro.min()), 3),
        "max_us": round(float(micro.max()), 3),
        "quartiles_us": [round(float(q), 3) for q in np.percentile(micro, [25, 75])],
        "rounds": len(per_round),
    }


def interleaved_timings(frameworks, repeats, rounds, warmup):
    """Alternate the frameworks round by round, so a noisy neighbour on a shared
    machine slows both alike instead of one of them."""
    per_round = {name: [] for name in frameworks}
    for name, (step, inputs) in frameworks.items():
        seconds_per_step(step, inputs, repeats, 0, warmup)
    for _ in range(rounds):
        for name, (step, inputs) in frameworks.items():
            per_round[name] += seconds_per_step(step, inputs, repeats, 1, 0)
    return per_round


# ----------------------------------------------------------------------------
# The machine
# ----------------------------------------------------------------------------
def cpu_model():
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def write_json_atomically(path, payload):
    """Write to a temporary file beside `path`, then rename: never a half-written file."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            json.dump(payload, file, indent=2)
            file.write("\n")
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def check_same_gradients(ours, theirs):
    """Both frameworks must compute the same thing, or the timing compares nothing."""
    deepbreadth_step(*ours)
    torch_step(*theirs)
    for mine, reference in zip(ours, theirs):
        np.testing.assert_allclose(mine.grad.numpy(), reference.grad.numpy(), rtol=1e-6)


def main():
    args = parse_arguments()
    try:
        import torch
    except ImportError:
        sys.exit("op_overhead.py compares against PyTorch eager: pip install torch")
    torch.set_num_threads(1)

    rng = np.random.default_rng(0)
    values_a = rng.standard_normal(SIZE).astype(np.float32)
    values_b = rng.standard_normal(SIZE).astype(np.float32)
    ours = deepbreadth_inputs(values_a, values_b)
    theirs = torch_inputs(values_a, values_b)
    check_same_gradients(ours, theirs)

    per_round = interleaved_timings(
        {"deepbreadth": (deepbreadth_step, ours), "torch": (torch_step, theirs)},
        args.repeats, args.rounds, args.warmup,
    )
    results = {name: summary(times) for name, times in per_round.items()}
    ratio = results["deepbreadth"]["median_us"] / results["torch"]["median_us"]
    # Rounds ran side by side, so each pair saw the same machine load: the
    # median of the pairwise ratios is the steadier number on a busy machine.
    paired = np.array(per_round["deepbreadth"]) / np.array(per_round["torch"])
    payload = {
        "workload": f"c = a * b + a; c.sum().backward() on {SIZE}-element float32 tensors",
        "ratio_deepbreadth_over_torch": round(ratio, 3),
        "ratio_of_paired_rounds": {"median": round(float(np.median(paired)), 3),
                                   "min": round(float(paired.min()), 3),
                                   "max": round(float(paired.max()), 3)},
        "deepbreadth": results["deepbreadth"],
        "torch": results["torch"],
        "steps_per_round": args.repeats,
        "machine": {
            "cpu": cpu_model(),
            "logical_cpus": os.cpu_count(),
            "load_average_1min": round(os.getloadavg()[0], 2),
            "threads": {"torch": torch.get_num_threads(), "numpy": os.environ["OPENBLAS_NUM_THREADS"]},
        },
        "versions": {
            "python": platform.python_version(),
            "numpy": np.__version__,
            "torch": torch.__version__,
            "deepbreadth": db.__version__,
        },
        "backend": db.get_backend(),
    }
    write_json_atomically(RESULTS_PATH, payload)
    print(f"deepbreadth {results['deepbreadth']['median_us']:.1f} us/step, "
          f"torch {results['torch']['median_us']:.1f} us/step, ratio {ratio:.2f} "
          f"(paired rounds: {np.median(paired):.2f}) "
          f"(written to {os.path.relpath(RESULTS_PATH)})")


if __name__ == "__main__":
    main()
