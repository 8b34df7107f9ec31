"""`python -m benchmarks`: deepbreadth against PyTorch, TensorFlow/Keras and JAX, in one run.

    python -m benchmarks                                   # models suite, every installed framework
    python -m benchmarks --suite models --suite kernels --threads 1,2
    python -m benchmarks --suite startup
    python -m benchmarks --suite models --quick --frameworks deepbreadth --threads 1 --out /tmp/b
    python -m benchmarks --suite models --frameworks deepbreadth,torch --device cuda

Each (framework, backend, thread count) is measured in its own subprocess
(benchmarks/worker.py), which is where thread settings can still take effect;
the parent collects the JSON, computes the ratios deepbreadth / reference for
measurements of the same run, and writes JSON, Markdown and a PNG chart to
--out (default benchmarks/results/).
"""
import argparse
import datetime
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

from . import report
from .environment import (REPOSITORY_ROOT, child_environment, cpu_count, gpu_names, machine_info,
                          openblas_workaround_seen)
from .timing import QUICK_BUDGET, Budget
from .workloads import KERNELS, MODELS, STARTUP_WORKLOADS

SUITES = ("models", "kernels", "startup")
FRAMEWORKS = ("deepbreadth", "torch", "tensorflow", "jax")
BACKENDS = ("numba", "numpy", "cupy")
DEFAULT_RESULTS = os.path.join(REPOSITORY_ROOT, "benchmarks", "results")


def _comma_list(text):
    return [item.strip() for item in text.split(",") if item.strip()]


def parse_arguments(argv):
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Time deepbreadth against PyTorch, TensorFlow/Keras and JAX; "
                    "ratios < 1 mean deepbreadth is faster.")
    parser.add_argument("--suite", action="append", default=None,
                        help="models, kernels, startup or all (repeat or comma-separate; "
                             "default models)")
    parser.add_argument("--frameworks", default=None,
                        help="comma list of deepbreadth, torch, tensorflow, jax (default: those "
                             "installed; with --quick: deepbreadth)")
    parser.add_argument("--backend", default=None,
                        help="deepbreadth backends, comma list of numba, numpy, cupy (default: "
                             "numba,numpy on the CPU (numba alone with --quick), cupy on a GPU)")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                        help="auto: cuda when a GPU is present, else cpu")
    parser.add_argument("--threads", default=None,
                        help="comma list of thread counts, each run separately (default "
                             "1,<cores>)")
    parser.add_argument("--workloads", default=None,
                        help=f"models to run (default all: {','.join(MODELS)})")
    parser.add_argument("--kernels", default=None,
                        help=f"kernels to run (default all: {','.join(KERNELS)})")
    parser.add_argument("--budget", type=float, default=2.0,
                        help="seconds of timed repetitions per workload and phase (default 2)")
    parser.add_argument("--min-reps", type=int, default=5)
    parser.add_argument("--max-reps", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=2,
                        help="untimed steps after the first call, before timing (at least)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="measure everything this many times, rounds interleaved, and keep "
                             "for each the round with the lowest median (steadier on a busy "
                             "machine; default 1)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke mode: 1 warm-up step, 2 timed steps, deepbreadth only unless "
                             "--frameworks says otherwise")
    parser.add_argument("--out", default=DEFAULT_RESULTS, help="results folder")
    parser.add_argument("--tag", default="", help="added to the result file names")
    parser.add_argument("--timeout", type=float, default=1200.0,
                        help="seconds allowed to one subprocess")
    parser.add_argument("--no-chart", action="store_true", help="skip the PNG chart")
    parser.add_argument("--startup-repeats", type=int, default=3,
                        help="fresh processes per import-time measurement")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be >= 1")

    suites = []
    for item in args.suite or ["models"]:
        for name in _comma_list(item):
            if name == "all":
                suites.extend(SUITES)
            elif name in SUITES:
                suites.append(name)
            else:
                parser.error(f"unknown suite {name!r}; choose from {', '.join(SUITES)} or all")
    args.suites = list(dict.fromkeys(suites))

    gpus = gpu_names()
    if args.device == "auto":
        args.device = "cuda" if gpus else "cpu"
    elif args.device == "cuda" and not gpus:
        parser.error("--device cuda, but nvidia-smi reports no GPU here")
    args.gpus = gpus

    if args.frameworks is None:
        wanted = ["deepbreadth"] if args.quick else list(FRAMEWORKS)
    else:
        wanted = _comma_list(args.frameworks)
        for name in wanted:
            if name not in FRAMEWORKS:
                parser.error(f"unknown framework {name!r}; choose from {', '.join(FRAMEWORKS)}")
    args.frameworks = wanted

    if args.backend is None:
        if args.device == "cuda":
            backends = ["cupy"]
        elif args.quick:
            backends = ["numba"]   # deepbreadth's default backend: CI time
        else:
            backends = ["numba", "numpy"]
    else:
        backends = _comma_list(args.backend)
        for name in backends:
            if name not in BACKENDS:
                parser.error(f"unknown backend {name!r}; choose from {', '.join(BACKENDS)}")
        if args.device == "cpu" and "cupy" in backends:
            parser.error("backend cupy runs on the GPU: add --device cuda")
        if args.device == "cuda":
            backends = [b for b in backends if b == "cupy"] or ["cupy"]
    args.backends = backends

    if args.threads is None:
        args.thread_counts = sorted({1, cpu_count()})
    else:
        try:
            args.thread_counts = [int(t) for t in _comma_list(args.threads)]
        except ValueError:
            parser.error(f"--threads takes integers, got {args.threads!r}")
        if any(t < 1 for t in args.thread_counts):
            parser.error("--threads: every count must be >= 1")
    args.workload_names = _comma_list(args.workloads) if args.workloads else list(MODELS)
    for name in args.workload_names:
        if name not in MODELS:
            parser.error(f"unknown workload {name!r}; choose from {', '.join(MODELS)}")
    args.kernel_names = _comma_list(args.kernels) if args.kernels else list(KERNELS)
    for name in args.kernel_names:
        if name not in KERNELS:
            parser.error(f"unknown kernel {name!r}; choose from {', '.join(KERNELS)}")
    if args.quick:
        args.timing = QUICK_BUDGET
    else:
        args.timing = Budget(seconds=args.budget, min_reps=args.min_reps, max_reps=args.max_reps,
                             warmup_reps=args.warmup)
    return args


# ----------------------------------------------------------------------------
# Running subprocesses
# ----------------------------------------------------------------------------
class Runner:
    """Runs worker subprocesses one at a time (never two at once: they would share cores)."""

    def __init__(self, args, scratch):
        self.args = args
        self.scratch = scratch
        self.count = 0

    def run(self, request, label, numba_cache_dir=None):
        result = self._run_once(request, label, numba_cache_dir)
        if "error" in result and request["task"] != "first_step":
            # Once more: a shared checkout can be mid-reinstall for a moment. A startup
            # measurement is not retried, since its Numba cache has changed state.
            _progress(f"[{self.count}] retrying once")
            retried = self._run_once(request, label, numba_cache_dir)
            retried["first_attempt_error"] = result["error"]
            result = retried
        return result

    def _run_once(self, request, label, numba_cache_dir=None):
        self.count += 1
        request = dict(request)
        request.setdefault("device", self.args.device)
        stem = os.path.join(self.scratch, f"task{self.count:03d}")
        request_path, result_path, log_path = stem + ".json", stem + ".result.json", stem + ".log"
        with open(request_path, "w", encoding="utf-8") as handle:
            json.dump(request, handle)
        env = child_environment(request["threads"], request["device"],
                                request.get("framework"), numba_cache_dir)
        began = time.perf_counter()
        _progress(f"[{self.count}] {label} ...")
        with open(log_path, "w", encoding="utf-8") as log:
            try:
                completed = subprocess.run(
                    [sys.executable, "-m", "benchmarks.worker", request_path, result_path],
                    cwd=REPOSITORY_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                    timeout=self.args.timeout, check=False)
                code = completed.returncode
            except subprocess.TimeoutExpired:
                code = "timeout"
        wall = time.perf_counter() - began
        if os.path.exists(result_path):
            with open(result_path, encoding="utf-8") as handle:
                result = json.load(handle)
        else:
            result = {"request": request,
                      "error": f"the subprocess ended ({code}) without a result"}
        if code not in (0,) and "error" not in result:
            result["error"] = f"the subprocess ended with {code}"
        if "error" in result:
            with open(log_path, encoding="utf-8", errors="replace") as handle:
                result["log_tail"] = handle.read()[-3000:]
        result["wall_s"] = wall
        status = ("skipped: " + result["skipped"]) if "skipped" in result else (
            "ERROR: " + result["error"] if "error" in result else "ok")
        _progress(f"[{self.count}] {label}: {status} ({wall:.1f} s)")
        return result


def _progress(message):
    print(message, file=sys.stderr, flush=True)


def _installed(framework):
    from .adapters import IMPORT_NAMES
    return importlib.util.find_spec(IMPORT_NAMES[framework]) is not None


def configurations(args):
    """(framework, backend) pairs to measure, and the notes on those skipped."""
    configs, skipped = [], []
    for framework in args.frameworks:
        if not _installed(framework):
            skipped.append({"framework": framework, "reason": f"{framework} is not installed"})
            continue
        if framework == "deepbreadth":
            for backend in args.backends:
                if backend == "numba" and not importlib.util.find_spec("numba"):
                    skipped.append({"framework": "deepbreadth-numba",
                                    "reason": "numba is not installed"})
                    continue
                if backend == "cupy" and not importlib.util.find_spec("cupy"):
                    skipped.append({"framework": "deepbreadth-cupy",
                                    "reason": "cupy is not installed"})
                    continue
                configs.append(("deepbreadth", backend))
        else:
            configs.append((framework, None))
    return configs, skipped


def config_name(framework, backend, device):
    if framework == "deepbreadth":
        return f"deepbreadth-{backend}"
    return framework if device == "cpu" else f"{framework}-cuda"


# ----------------------------------------------------------------------------
# Suites
# ----------------------------------------------------------------------------
def measure_peaks(args, runner, configs):
    peaks = {}
    size = (1024 if args.quick else 2048) if args.device == "cpu" else 8192
    with_torch = any(framework == "torch" for framework, _ in configs)
    for threads in args.thread_counts:
        result = runner.run({"task": "gemm_peak", "threads": threads, "size": size,
                             "torch": with_torch, "seconds": 0.5 if args.quick else 1.5},
                            f"float32 GEMM peak {size}^3, {threads} thread(s)")
        peaks[str(threads)] = {key: result.get(key) for key in
                               ("size", "gflops", "source", "by_library", "blas", "error")
                               if key in result}
    return peaks


def _best_peaks(before, after):
    """Per thread count, the better of two peak measurements (both kept in the JSON)."""
    best = {}
    for threads, first in before.items():
        second = after.get(threads, {})
        chosen = dict(second if (second.get("gflops") or 0) > (first.get("gflops") or 0)
                      else first)
        chosen["measurements_gflops"] = [first.get("gflops"), second.get("gflops")]
        best[threads] = chosen
    return best


def suite_models(args, runner, configs):
    # --quick skips the extra step under tracemalloc: CI time.
    base = {"task": "models", "budget": args.timing.as_dict(), "memory_probe": not args.quick}
    entries = []
    for round_ in range(args.rounds):
        for threads in args.thread_counts:
            if args.quick:
                # One process per framework for all workloads: CI time, not memory isolation.
                for framework, backend in configs:
                    name = config_name(framework, backend, args.device)
                    entries.append(runner.run(
                        {**base, "framework": framework, "backend": backend, "threads": threads,
                         "workloads": args.workload_names, "round": round_},
                        f"models {','.join(args.workload_names)} {name}, {threads} thread(s)"))
                continue
            # Workload by workload, frameworks interleaved: a noisy minute on the shared
            # machine then hits every framework of that workload, not one framework.
            for workload in args.workload_names:
                for framework, backend in configs:
                    name = config_name(framework, backend, args.device)
                    entries.append(runner.run(
                        {**base, "framework": framework, "backend": backend, "threads": threads,
                         "workloads": [workload], "round": round_},
                        f"models {workload} {name}, {threads} thread(s)"
                        + (f", round {round_ + 1}/{args.rounds}" if args.rounds > 1 else "")))
    return entries


def suite_kernels(args, runner, configs):
    base = {"task": "kernels", "budget": args.timing.as_dict(), "kernels": args.kernel_names}
    entries = []
    for round_ in range(args.rounds):
        for threads in args.thread_counts:
            for framework, backend in configs:
                name = config_name(framework, backend, args.device)
                entries.append(runner.run(
                    {**base, "framework": framework, "backend": backend, "threads": threads,
                     "round": round_},
                    f"kernels {name}, {threads} thread(s)"
                    + (f", round {round_ + 1}/{args.rounds}" if args.rounds > 1 else "")))
    return entries


def suite_startup(args, runner, configs):
    threads = max(args.thread_counts)
    imports = []
    modules = ["deepbreadth"] + [f for f in ("torch", "tensorflow", "jax")
                                 if any(c[0] == f for c in configs)]
    repeats = 1 if args.quick else args.startup_repeats
    for module in modules:
        times = []
        for _ in range(repeats):
            result = runner.run({"task": "import", "module": module, "threads": threads},
                                f"import {module}")
            if "import_s" in result:
                times.append(result["import_s"])
        imports.append({"module": module, "import_s": times})
    first_steps = []
    workloads = [w for w in STARTUP_WORKLOADS if w in args.workload_names] or list(STARTUP_WORKLOADS)
    for framework, backend in configs:
        name = config_name(framework, backend, args.device)
        for workload in workloads:
            request = {"task": "first_step", "framework": framework, "backend": backend,
                       "threads": threads, "workload": workload}
            if framework == "deepbreadth" and backend == "numba":
                cache = tempfile.mkdtemp(prefix="numba-cache-", dir=runner.scratch)
                for state in ("cold", "warm"):
                    result = runner.run(request, f"first step {workload} {name}, {state} "
                                                 "Numba cache", numba_cache_dir=cache)
                    first_steps.append({"framework": name, "workload": workload,
                                        "numba_cache": state, **_first_step_fields(result)})
            else:
                result = runner.run(request, f"first step {workload} {name}")
                first_steps.append({"framework": name, "workload": workload,
                                    **_first_step_fields(result)})
    return {"threads": threads, "imports": imports, "first_steps": first_steps}


def _first_step_fields(result):
    keys = ("import_s", "build_s", "first_train_s", "second_train_s", "first_infer_s",
            "second_infer_s", "error", "skipped", "wall_s")
    return {key: result[key] for key in keys if key in result}


# ----------------------------------------------------------------------------
# Writing results
# ----------------------------------------------------------------------------
def _write_atomic(path, data, mode="w"):
    directory = os.path.dirname(path) or "."
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=".tmp-",
                                         suffix=os.path.splitext(path)[1])
    try:
        with os.fdopen(handle, mode, **({"encoding": "utf-8"} if "b" not in mode else {})) as out:
            out.write(data)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


def write_results(args, suite, document, markdown):
    os.makedirs(args.out, exist_ok=True)
    stamp = document["created"].replace(":", "").replace("-", "")[:15]
    tag = f"_{args.tag}" if args.tag else ""
    text = json.dumps(document, indent=1, default=str, sort_keys=False)
    paths = []
    for name in (f"{suite}_{stamp}{tag}.json", f"latest_{suite}{tag}.json"):
        path = os.path.join(args.out, name)
        _write_atomic(path, text)
        paths.append(path)
    for name in (f"{suite}_{stamp}{tag}.md", f"latest_{suite}{tag}.md"):
        path = os.path.join(args.out, name)
        _write_atomic(path, markdown)
        paths.append(path)
    if not args.no_chart and suite in ("models", "kernels"):
        png = os.path.join(args.out, f"latest_{suite}{tag}.png")
        written = report.chart(document, png, _write_atomic)
        if written:
            paths.append(png)
    return paths


def main(argv=None):
    args = parse_arguments(sys.argv[1:] if argv is None else argv)
    configs, skipped = configurations(args)
    if not configs:
        _progress("nothing to measure: " + "; ".join(s["reason"] for s in skipped))
        return 2
    created = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    scratch = tempfile.mkdtemp(prefix="deepbreadth-bench-")
    runner = Runner(args, scratch)
    common = {
        "created": created,
        "command": "python -m benchmarks " + " ".join(sys.argv[1:] if argv is None else argv),
        "device": args.device,
        "machine": machine_info(),
        "threads": args.thread_counts,
        "quick": args.quick,
        "timing": args.timing.as_dict(),
        "rounds": args.rounds,
        "environment_changes": {
            "unset_in_benchmark_subprocesses": sorted(openblas_workaround_seen()) or
            "OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE (neither was set)",
            "thread_variables": "OMP/OPENBLAS/MKL/NUMBA/VECLIB/NUMEXPR/BLIS_NUM_THREADS = N, "
                                "TF intra-op N / inter-op 1, torch.set_num_threads(N), "
                                "XLA_FLAGS multi_thread_eigen, CPU affinity to N cores",
        },
        "skipped": skipped,
    }
    exit_code = 0
    try:
        peaks = None
        timed_suites = [s for s in args.suites if s in ("models", "kernels")]
        if timed_suites:
            peaks = measure_peaks(args, runner, configs)
        for suite in args.suites:
            started = time.perf_counter()
            if suite == "models":
                raw = suite_models(args, runner, configs)
            elif suite == "kernels":
                raw = suite_kernels(args, runner, configs)
            else:
                raw = suite_startup(args, runner, configs)
            if suite in timed_suites:
                # Measured again at the end, and the better kept: a busy moment on a shared
                # machine would otherwise lower the peak and flatter every percentage.
                peaks = _best_peaks(peaks, measure_peaks(args, runner, configs))
            document = report.build_document(suite, common, peaks, raw)
            document["suite_wall_s"] = time.perf_counter() - started
            markdown = report.markdown(document)
            paths = write_results(args, suite, document, markdown)
            print(markdown)
            _progress("wrote " + ", ".join(os.path.relpath(p) for p in paths))
            if document.get("errors"):
                exit_code = 1
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return exit_code
