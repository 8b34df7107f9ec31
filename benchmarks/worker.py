"""One benchmark subprocess: `python -m benchmarks.worker REQUEST.json RESULT.json`.

The parent (`benchmarks.cli`) prepares this process's environment (thread
variables, BLAS variables, Numba cache); here the process first pins itself to
the requested number of cores, and only then imports NumPy and the framework,
so that every thread pool starts with the right size. The result is written as
JSON to RESULT.json (stdout is left to the frameworks' chatter).

Tasks: 'models' (time workloads), 'kernels', 'gemm_peak', 'import' (import
time of one framework), 'first_step' (import, build, first and second train
step: the startup costs, compilation included).
"""
import json
import math
import os
import sys
import time
import traceback


def _rss_now_mb():
    try:
        with open("/proc/self/statm", encoding="ascii") as handle:
            pages = int(handle.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2 ** 20
    except (OSError, ValueError):
        return None


def _rss_peak_mb():
    import resource
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2 ** 20 if sys.platform == "darwin" else peak / 2 ** 10


def _budget(request):
    from .timing import Budget
    return Budget(**request["budget"])


def _adapter(request):
    from .adapters import make
    return make(request["framework"], request.get("backend"), request["device"],
                request["threads"])


def _memory_of(adapter, step, sync):
    """Peak memory of one more call of `step`: tracemalloc (NumPy-side) or the GPU's own counter."""
    memory = {}
    if adapter.memory_kind == "tracemalloc":
        import tracemalloc
        tracemalloc.start()
        try:
            step()
            sync()
            memory["tracemalloc_peak_mb"] = tracemalloc.get_traced_memory()[1] / 2 ** 20
        finally:
            tracemalloc.stop()
    elif adapter.memory_kind == "cuda":
        if hasattr(adapter, "reset_gpu_peak"):
            adapter.reset_gpu_peak()
        step()
        sync()
        memory.update(adapter.gpu_memory())
    return memory


def run_models(request):
    from .data import model_batches
    from .timing import measure, summarize
    budget = _budget(request)
    rss_start = _rss_now_mb()
    started = time.perf_counter()
    adapter = _adapter(request)
    import_s = time.perf_counter() - started
    rss_after_import = _rss_now_mb()
    results = []
    for workload in request["workloads"]:
        entry = {"workload": workload}
        try:
            xs, ys = model_batches(workload)
            began = time.perf_counter()
            runner = adapter.model(workload, xs, ys)
            entry["build_s"] = time.perf_counter() - began
            phases = {}
            for phase in ("train", "infer"):
                step = runner.train if phase == "train" else runner.infer
                began = time.perf_counter()
                step(0)
                runner.sync()
                first = time.perf_counter() - began
                times = measure(step, runner.sync, budget, start_index=1)
                phases[phase] = {**summarize(times), "first_call_ms": first * 1000.0}
                if request.get("memory_probe", True):
                    phases[phase]["memory"] = _memory_of(adapter, lambda: step(0), runner.sync)
                if phase == "train":
                    loss = runner.last_loss()
                    phases[phase]["last_loss"] = loss
                    if not math.isfinite(loss):
                        entry.setdefault("warnings", []).append(f"loss is {loss}")
            entry["phases"] = phases
            entry["rss_peak_mb"] = _rss_peak_mb()
            entry["rss_peak_over_import_mb"] = entry["rss_peak_mb"] - (rss_after_import or 0)
            del runner
        except Exception as error:  # noqa: BLE001 (one failing workload must not sink the rest)
            entry["error"] = f"{type(error).__name__}: {error}"
            entry["traceback"] = traceback.format_exc(limit=8)
        results.append(entry)
    return {"import_s": import_s, "rss_start_mb": rss_start,
            "rss_after_import_mb": rss_after_import, "info": adapter.info(),
            "workloads": results, "rss_shared_by_workloads": len(request["workloads"]) > 1}


def run_kernels(request):
    from .data import kernel_inputs
    from .timing import measure, summarize
    from .workloads import KERNELS
    budget = _budget(request)
    adapter = _adapter(request)
    results = []
    for name in request["kernels"]:
        entry = {"kernel": name, "phases": {}}
        try:
            inputs = kernel_inputs(name)
            for phase in KERNELS[name]["phases"]:
                step = adapter.kernel(name, phase, inputs)
                began = time.perf_counter()
                step(0)
                adapter.sync()
                first = time.perf_counter() - began
                times = measure(step, adapter.sync, budget, start_index=1)
                entry["phases"][phase] = {**summarize(times), "first_call_ms": first * 1000.0}
        except Exception as error:  # noqa: BLE001
            entry["error"] = f"{type(error).__name__}: {error}"
            entry["traceback"] = traceback.format_exc(limit=8)
        results.append(entry)
    return {"info": adapter.info(), "kernels": results, "rss_peak_mb": _rss_peak_mb()}


def run_gemm_peak(request):
    """float32 GEMM throughput, n x n x n: NumPy's BLAS, PyTorch's, or the GPU's (CuPy, torch)."""
    from .timing import Budget, measure
    n = request["size"]
    budget = Budget(seconds=request.get("seconds", 1.5), min_reps=3, max_reps=200,
                    warmup_reps=1, warmup_seconds=0.0)
    flop = 2.0 * n ** 3
    found = {}

    def best(step, sync):
        times = measure(lambda i: step(), sync, budget)
        return flop / min(times) / 1e9

    if request["device"] == "cpu":
        import numpy as np
        rng = np.random.default_rng(0)
        a = rng.standard_normal((n, n), dtype=np.float32)
        b = rng.standard_normal((n, n), dtype=np.float32)
        found["numpy"] = best(lambda: a @ b, lambda: None)
        if request.get("torch"):
            try:
                import torch
                torch.set_num_threads(request["threads"])
                ta, tb = torch.from_numpy(a), torch.from_numpy(b)
                found["torch"] = best(lambda: ta @ tb, lambda: None)
            except ImportError:
                pass
        from .environment import blas_info
        blas = blas_info()
    else:
        blas = None
        try:
            import cupy
            a = cupy.random.standard_normal((n, n), dtype=cupy.float32)
            b = cupy.random.standard_normal((n, n), dtype=cupy.float32)
            found["cupy"] = best(lambda: a @ b, cupy.cuda.Device().synchronize)
        except ImportError:
            pass
        try:
            import torch
            if torch.cuda.is_available():
                ta = torch.randn(n, n, device="cuda")
                tb = torch.randn(n, n, device="cuda")
                found["torch"] = best(lambda: ta @ tb, torch.cuda.synchronize)
        except ImportError:
            pass
    if not found:
        return {"error": "no library to multiply with on this device"}
    source = max(found, key=found.get)
    return {"size": n, "gflops": found[source], "source": source, "by_library": found,
            "blas": blas}


def run_import(request):
    import importlib
    name = request["module"]
    began = time.perf_counter()
    importlib.import_module(name)
    return {"module": name, "import_s": time.perf_counter() - began}


def run_first_step(request):
    """The costs a user meets once: import, build, the first steps (tracing, JIT compiles)."""
    from .data import model_batches
    results = {}
    began = time.perf_counter()
    adapter = _adapter(request)
    results["import_s"] = time.perf_counter() - began
    workload = request["workload"]
    xs, ys = model_batches(workload)
    began = time.perf_counter()
    runner = adapter.model(workload, xs, ys)
    results["build_s"] = time.perf_counter() - began
    for label, step in (("first_train_s", runner.train), ("second_train_s", runner.train),
                        ("first_infer_s", runner.infer), ("second_infer_s", runner.infer)):
        began = time.perf_counter()
        step(0)
        runner.sync()
        results[label] = time.perf_counter() - began
    results["info"] = adapter.info()
    results["numba_cache_dir"] = os.environ.get("NUMBA_CACHE_DIR")
    return results


TASKS = {"models": run_models, "kernels": run_kernels, "gemm_peak": run_gemm_peak,
         "import": run_import, "first_step": run_first_step}


def main(argv):
    request_path, result_path = argv
    with open(request_path, encoding="utf-8") as handle:
        request = json.load(handle)
    from .environment import load_average, pin_to_cores
    result = {"request": request, "cores": pin_to_cores(request["threads"]),
              "load_average_before": load_average()}
    try:
        result.update(TASKS[request["task"]](request))
    except Exception as error:  # noqa: BLE001
        from .adapters import Unsupported
        if isinstance(error, Unsupported):
            result["skipped"] = str(error)
        else:
            result["error"] = f"{type(error).__name__}: {error}"
            result["traceback"] = traceback.format_exc(limit=12)
    if request["task"] in ("models", "kernels", "gemm_peak"):
        try:
            from .environment import blas_info
            result["blas"] = blas_info()
        except Exception:  # noqa: BLE001
            pass
    result["load_average_after"] = load_average()
    temporary = result_path + ".tmp"
    with open(temporary, "w", encoding="utf-8") as handle:
        json.dump(result, handle, indent=1, default=str)
    os.replace(temporary, result_path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
