"""Where a GPU training step spends its time, for benchmarks/NOTES.md ("GPU").

For each standard workload, on CuPy and (when installed) PyTorch CUDA:
- the training step as the benchmark times it (train_on_batch on device batches),
  wall time per step with the device synchronized after each;
- the engine's step written out (forward, loss, backward, Adam) without reading the
  loss: the CPU time until the last launch returns, and the wall time to the end
  of the GPU work. CPU time close to the wall time means the step is bound by
  launching work, not by the GPU;
- with --graphs, the same step captured once as a CUDA graph and replayed (a
  feasibility probe: dropout masks and Adam's step count are frozen into such a
  graph; CuPy 14 refuses cuBLAS calls during a capture, so it fails there);
- cProfile of the written-out step: the Python functions that cost the most, and
  what share of a step is Python.

    python -m benchmarks.gpu_probe [--workloads W1,W2] [--steps 40]

Run it on a GPU machine; it prints plain text.
"""
import argparse
import cProfile
import io
import pstats
import statistics
import time
import traceback


def median_ms(values):
    return 1e3 * statistics.median(values)


def time_steps(step, sync, steps):
    """(median CPU ms until `step` returns, median wall ms until the device is done)."""
    cpu, wall = [], []
    for i in range(steps):
        sync()
        began = time.perf_counter()
        step(i)
        returned = time.perf_counter()
        sync()
        done = time.perf_counter()
        cpu.append(returned - began)
        wall.append(done - began)
    return median_ms(cpu), median_ms(wall)


def deepbreadth_runner(workload):
    from benchmarks import adapters
    from benchmarks.data import model_batches

    adapter = adapters.make("deepbreadth", "cupy", "cuda", 1)
    xs, ys = model_batches(workload)
    return adapter, adapter.model(workload, xs, ys)


def written_out_step(runner):
    """The training step of Model._train_step_body without reading the loss."""
    from deepbreadth.autograd import Tensor

    model = runner.model
    weights = model.trainable_weights

    def step(i):
        j = i % len(runner.xs)
        outputs = model(Tensor._wrap(runner.xs[j]), training=True)
        loss = model.loss(Tensor._wrap(runner.ys[j]), outputs)
        loss.backward()
        model.optimizer.step(weights)
        model.optimizer.zero_grad(weights)
        return loss

    return step


def captured_step(runner, with_optimizer):
    """The step captured as one CUDA graph on a private memory pool; returns
    (replay(i), loss array of the last replay)."""
    import cupy

    from deepbreadth.autograd import Tensor

    model = runner.model
    weights = model.trainable_weights
    x_static = runner.xs[0].copy()
    y_static = runner.ys[0].copy()
    pool = cupy.cuda.MemoryPool()
    stream = cupy.cuda.Stream(non_blocking=True)
    cupy.cuda.Device().synchronize()
    model.optimizer.zero_grad(weights)
    with cupy.cuda.using_allocator(pool.malloc), stream:
        stream.begin_capture()
        try:
            outputs = model(Tensor._wrap(x_static), training=True)
            loss = model.loss(Tensor._wrap(y_static), outputs)
            loss.backward()
            if with_optimizer:
                model.optimizer.step(weights)
        finally:
            graph = stream.end_capture()
    grads = [w.grad for w in weights]
    model.optimizer.zero_grad(weights)
    null = cupy.cuda.Stream.null

    def replay(i):
        j = i % len(runner.xs)
        x_static[...] = runner.xs[j]
        y_static[...] = runner.ys[j]
        graph.launch(stream=null)
        if not with_optimizer:
            for weight, grad in zip(weights, grads):
                weight.grad = grad
            model.optimizer.step(weights)
            model.optimizer.zero_grad(weights)

    replay.keep = (pool, stream, graph, grads)
    return replay, loss


def torch_runner(workload):
    from benchmarks import adapters
    from benchmarks.data import model_batches

    adapter = adapters.make("torch", None, "cuda", 1)
    xs, ys = model_batches(workload)
    return adapter, adapter.model(workload, xs, ys)


def profile_lines(step, steps, top=30):
    profiler = cProfile.Profile()
    profiler.enable()
    for i in range(steps):
        step(i)
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(top)
    return [line for line in out.getvalue().splitlines() if line.strip()]


def section(title, action):
    print(f"--- {title}", flush=True)
    try:
        action()
    except Exception:  # a probe: report and go on to the next measurement
        print("FAILED:\n" + traceback.format_exc(limit=8), flush=True)


def probe_workload(workload, steps, profile, graphs):
    import cupy

    adapter, runner = deepbreadth_runner(workload)
    sync = adapter.sync
    for i in range(3):
        runner.train(i)
    sync()

    def benchmark_step():
        cpu, wall = time_steps(runner.train, sync, steps)
        print(f"{workload} train_on_batch (device batches): wall {wall:.3f} ms "
              f"(returns after {cpu:.3f} ms: it reads the loss)")
        cpu, wall = time_steps(runner.infer, sync, steps)
        print(f"{workload} predict_on_batch: wall {wall:.3f} ms")
    section(f"{workload} benchmark step", benchmark_step)

    step = written_out_step(runner)

    def eager():
        cpu, wall = time_steps(step, sync, steps)
        print(f"{workload} eager step: CPU {cpu:.3f} ms, wall {wall:.3f} ms")
    section(f"{workload} eager step", eager)

    if profile:
        def profiled():
            lines = profile_lines(step, steps)
            print(f"{workload} cProfile over {steps} eager steps:")
            print("\n".join(lines[:40]))
        section(f"{workload} profile", profiled)

    for with_optimizer in ((False, True) if graphs else ()):
        label = "forward+backward+Adam" if with_optimizer else "forward+backward (Adam eager)"

        def graph():
            eager_loss = float(step(0).item())
            # the eager step moved the weights; capture from the same starting point
            replay, loss = captured_step(runner, with_optimizer)
            replay(1)
            sync()
            first = float(loss.item())
            print(f"{workload} graph [{label}]: captured; eager loss before {eager_loss:.5f}, "
                  f"replayed loss {first:.5f}")
            cpu, wall = time_steps(replay, sync, steps)
            print(f"{workload} graph [{label}]: CPU {cpu:.3f} ms, wall {wall:.3f} ms")
            del replay
        section(f"{workload} CUDA graph {label}", graph)
    cupy.get_default_memory_pool().free_all_blocks()

    def torch_step():
        t_adapter, t_runner = torch_runner(workload)
        for i in range(3):
            t_runner.train(i)
        t_adapter.sync()
        cpu, wall = time_steps(t_runner.train, t_adapter.sync, steps)
        print(f"{workload} torch eager step: CPU {cpu:.3f} ms, wall {wall:.3f} ms")
        cpu, wall = time_steps(t_runner.infer, t_adapter.sync, steps)
        print(f"{workload} torch infer: CPU {cpu:.3f} ms, wall {wall:.3f} ms")
    section(f"{workload} torch", torch_step)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", default="W1,W2,W3,W4")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--profile", default="W1,W2,W3")
    parser.add_argument("--graphs", action="store_true",
                        help="also try capturing the step as a CUDA graph (CuPy 14 refuses "
                             "cuBLAS calls during a capture)")
    args = parser.parse_args()
    import cupy

    print("cupy", cupy.__version__, "device",
          cupy.cuda.runtime.getDeviceProperties(0)["name"].decode(), flush=True)
    profile = set(args.profile.split(","))
    for workload in args.workloads.split(","):
        probe_workload(workload, args.steps, workload in profile, args.graphs)


if __name__ == "__main__":
    main()
