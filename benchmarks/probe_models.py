"""Training-step probe for W1 and W2: frameworks interleaved in one process.

    python benchmarks/probe_models.py [--threads 1] [--workloads W1,W2]
        [--frameworks deepbreadth,torch] [--rounds 30] [--block 5]
        [--clock wall|cpu] [--profile W1]

`python -m benchmarks` runs each framework in its own subprocess, minutes
apart; on a busy shared machine the load changes in between. This probe builds
the same models through the same adapters (benchmarks/adapters) in *one*
process, and alternates: `--block` steps of deepbreadth, then `--block` steps of
each reference, `--rounds` times. Every step is timed alone; the median of each
framework's steps and their ratio are printed, with the load average before and
after. Ratios taken this way see the same background load.

The first steps of a block run with the caches full of the other framework's
data: about 1.3 ms for W1's first step against 0.8 steady, and three or four
steps to recover (benchmarks/NOTES.md, "Seventh round"). The suite times each
framework in a process of its own, in the steady state; for a ratio comparable
to the suite's, take `--block 20` or more.

`--clock cpu` times CPU seconds of the process instead of wall seconds: it does
not count the time spent waiting for a core, so it is steadier on a loaded
machine, but it also counts BLAS threads spinning while they wait for work, and
with several threads it is not a duration. Read it with `--threads 1`.

`--profile W1` skips the comparison and prints each op's median time over
many traced deepbreadth steps (`deepbreadth.trace()`), and as its own line
the median of untraced steps minus the ops' medians: the time outside ops
(layer calls, the loss reduction's bookkeeping, the optimizer,
train_on_batch). Medians do not add up exactly; read that line as a rough
figure.

Thread settings go in before NumPy or any framework is imported, as in the
harness: the thread variables = N, the OpenBLAS workaround variables removed
(they slow a current NumPy; see benchmarks/README.md), the process pinned to N
cores.
"""
import argparse
import os
import statistics
import sys
import time


def parse_arguments():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--workloads", default="W1,W2")
    parser.add_argument("--frameworks", default="deepbreadth,torch")
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--block", type=int, default=5, help="steps per framework per round")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall")
    parser.add_argument("--profile", default=None, help="trace deepbreadth on this workload")
    return parser.parse_args()


def prepare_environment(threads):
    from benchmarks.environment import (OPENBLAS_WORKAROUND_VARIABLES, THREAD_VARIABLES,
                                        pin_to_cores)
    for name in OPENBLAS_WORKAROUND_VARIABLES:
        os.environ.pop(name, None)
    for name in THREAD_VARIABLES:
        os.environ[name] = str(threads)
    os.environ["TF_NUM_INTEROP_THREADS"] = "1"
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
    os.environ["JAX_PLATFORMS"] = "cpu"
    os.environ["XLA_FLAGS"] = (f"--xla_cpu_multi_thread_eigen={'false' if threads == 1 else 'true'}"
                               f" intra_op_parallelism_threads={threads}")
    pin_to_cores(threads)


def blas_line():
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "threadpoolctl not installed"
    parts = []
    for pool in threadpool_info():
        parts.append(f"{pool.get('internal_api')} {pool.get('version')} "
                     f"{pool.get('architecture') or ''} threads={pool.get('num_threads')}")
    return "; ".join(parts)


def compare(args, workloads, frameworks):
    from benchmarks.adapters import make
    from benchmarks.data import model_batches

    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    adapters = {name: make(name, None, "cpu", args.threads) for name in frameworks}
    print("BLAS:", blas_line())
    for workload in workloads:
        xs, ys = model_batches(workload)
        runners = {name: adapter.model(workload, xs, ys) for name, adapter in adapters.items()}
        for runner in runners.values():
            for i in range(args.warmup):
                runner.train(i)
            runner.sync()
        times = {name: [] for name in runners}
        load_before = os.getloadavg()[0]
        index = 0
        for _ in range(args.rounds):
            for name, runner in runners.items():
                for _ in range(args.block):
                    begin = clock()
                    runner.train(index)
                    runner.sync()
                    times[name].append(clock() - begin)
                    index += 1
        load_after = os.getloadavg()[0]
        medians = {name: statistics.median(values) * 1e3 for name, values in times.items()}
        print(f"{workload} train, {args.threads} thread(s), {args.clock} clock, "
              f"load {load_before:.1f} -> {load_after:.1f}")
        for name, values in times.items():
            ordered = sorted(values)
            q1, q3 = ordered[len(ordered) // 4] * 1e3, ordered[3 * len(ordered) // 4] * 1e3
            line = (f"  {name:12s} median {medians[name]:8.3f} ms  (min {ordered[0] * 1e3:.3f}, "
                    f"q1 {q1:.3f}, q3 {q3:.3f})")
            if name != frameworks[0]:
                line += f"  ratio {frameworks[0]}/{name} = {medians[frameworks[0]] / medians[name]:.2f}"
            print(line)


def profile(args, workload):
    """Per-op medians over many traced deepbreadth steps."""
    import deepbreadth as db
    from benchmarks.adapters import make
    from benchmarks.data import model_batches

    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    if args.clock == "cpu":
        # The trace reads autograd's clock: give it CPU time too.
        import types
        from deepbreadth import autograd
        autograd.time = types.SimpleNamespace(perf_counter=time.process_time)
    adapter = make("deepbreadth", None, "cpu", args.threads)
    xs, ys = model_batches(workload)
    runner = adapter.model(workload, xs, ys)
    for i in range(args.warmup):
        runner.train(i)
    per_op = {}
    steps = []
    for i in range(args.rounds * args.block):
        with db.trace() as trace:
            runner.train(i)
        for position, record in enumerate(trace.ops):
            key = (position, record.phase, record.op, record.layer or "")
            per_op.setdefault(key, []).append(record.seconds)
        # An untraced step next to each traced one: the tracer's own work (the
        # gradient norms, reading the layer stack) must not count as "outside".
        begin = clock()
        runner.train(i)
        steps.append(clock() - begin)
    total = statistics.median(steps) * 1e3
    in_ops = 0.0
    print(f"{workload}: median step {total:.3f} ms (untraced, {args.clock} clock), "
          f"load {os.getloadavg()[0]:.1f}")
    for (position, phase, op, layer), seconds in sorted(per_op.items()):
        median = statistics.median(seconds) * 1e3
        in_ops += median
        print(f"  {position:3d} {phase:8s} {op:22s} {layer:16s} {median:8.3f} ms")
    print(f"  outside ops (Python between them, optimizer, train_on_batch): "
          f"{total - in_ops:.3f} ms")


def main():
    args = parse_arguments()
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    prepare_environment(args.threads)
    if args.profile:
        profile(args, args.profile)
        return
    compare(args, args.workloads.split(","), args.frameworks.split(","))


if __name__ == "__main__":
    main()
