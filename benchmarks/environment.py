"""The environment of a measurement: thread pinning, BLAS variables, machine facts.

Most thread settings must be in place before a framework is imported (its thread
pools start with it), so every (framework, thread count) pair runs in a fresh
subprocess whose environment `child_environment` prepares, and which pins itself
to `threads` CPU cores (`pin_to_cores`) before importing anything heavy.
"""
import os
import platform
import re
import shutil
import subprocess
import sys

REPOSITORY_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                    "NUMBA_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS",
                    "BLIS_NUM_THREADS", "TF_NUM_INTRAOP_THREADS")

# Set on some processors of this machine because older OpenBLAS builds misbehave
# there; they slow a current NumPy down. Benchmark subprocesses run without them
# (both together), and the results say so. Tests and CI never touch them.
OPENBLAS_WORKAROUND_VARIABLES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


def openblas_workaround_seen():
    """The workaround variables set in this environment, with their values."""
    return {name: os.environ[name] for name in OPENBLAS_WORKAROUND_VARIABLES if name in os.environ}


def child_environment(threads, device, framework, numba_cache_dir=None):
    """The environment of one benchmark subprocess."""
    env = dict(os.environ)
    for name in OPENBLAS_WORKAROUND_VARIABLES:
        env.pop(name, None)
    for name in THREAD_VARIABLES:
        env[name] = str(threads)
    env["TF_NUM_INTEROP_THREADS"] = "1"
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    # XLA (JAX): no Eigen thread pool beyond the pinned cores when single-threaded.
    xla_flags = [flag for flag in env.get("XLA_FLAGS", "").split()
                 if not flag.startswith(("--xla_cpu_multi_thread_eigen",
                                         "intra_op_parallelism_threads"))]
    xla_flags.append(f"--xla_cpu_multi_thread_eigen={'false' if threads == 1 else 'true'}")
    xla_flags.append(f"intra_op_parallelism_threads={threads}")
    env["XLA_FLAGS"] = " ".join(xla_flags)
    if device == "cpu":
        # CPU runs stay on the CPU even on a GPU machine.
        env["JAX_PLATFORMS"] = "cpu"
        if framework in ("tensorflow", "jax"):
            env["CUDA_VISIBLE_DEVICES"] = ""
    if numba_cache_dir is not None:
        env["NUMBA_CACHE_DIR"] = numba_cache_dir
    # The repository first on the path, so `import deepbreadth` and `benchmarks`
    # resolve to this checkout.
    env["PYTHONPATH"] = os.pathsep.join(
        [REPOSITORY_ROOT] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    env["PYTHONHASHSEED"] = "0"
    return env


def pin_to_cores(threads):
    """Restrict this process to `threads` CPU cores (no-op where unsupported or already so)."""
    if not hasattr(os, "sched_setaffinity"):
        return None
    available = sorted(os.sched_getaffinity(0))
    if threads < len(available):
        os.sched_setaffinity(0, available[:threads])
    return sorted(os.sched_getaffinity(0))


def load_average():
    """The 1-minute load average: how many runnable processes shared the cores meanwhile."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def cpu_model():
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_count():
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count()


def cpu_flags():
    """The SIMD extensions that matter for float32 kernels."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            text = handle.read()
    except OSError:
        return []
    match = re.search(r"^flags\s*:\s*(.*)$", text, re.MULTILINE)
    flags = set(match.group(1).split()) if match else set()
    return [f for f in ("avx", "avx2", "fma", "avx512f", "avx512_bf16", "amx_tile") if f in flags]


def gpu_names():
    """Names of the NVIDIA GPUs that nvidia-smi reports, or [] (no GPU, no driver)."""
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        output = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                                capture_output=True, text=True, timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in output.splitlines() if line.strip()]


def machine_info():
    return {
        "cpu_model": cpu_model(),
        "cpu_cores": cpu_count(),
        "cpu_flags": cpu_flags(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "gpus": gpu_names(),
        "openblas_workaround_variables_unset_for_benchmarks": openblas_workaround_seen(),
    }


def blas_info():
    """The BLAS NumPy uses, and its threads: threadpoolctl if installed, else NumPy's config."""
    try:
        from threadpoolctl import threadpool_info
        pools = [{key: pool.get(key) for key in
                  ("user_api", "internal_api", "version", "num_threads", "architecture",
                   "threading_layer", "filepath")} for pool in threadpool_info()]
        return {"source": "threadpoolctl", "pools": pools}
    except ImportError:
        pass
    try:
        import numpy as np
        config = np.show_config(mode="dicts")
        blas = config.get("Build Dependencies", {}).get("blas", {})
        return {"source": "numpy.show_config", "name": blas.get("name"),
                "version": blas.get("version"), "config": blas.get("openblas configuration")}
    except Exception as error:  # noqa: BLE001 (a report, never a failure)
        return {"source": "unknown", "error": repr(error)}


def short_blas(info):
    """'openblas 0.3.29 (SkylakeX, 2 threads)' from blas_info()."""
    if not info:
        return "?"
    if info.get("source") == "threadpoolctl":
        parts = []
        for pool in info.get("pools", []):
            if pool.get("user_api") != "blas":
                continue
            text = f"{pool.get('internal_api')} {pool.get('version')}"
            extra = [str(x) for x in (pool.get("architecture"),) if x]
            extra.append(f"{pool.get('num_threads')} threads")
            parts.append(f"{text} ({', '.join(extra)})")
        return "; ".join(parts) or "no BLAS pool found"
    return f"{info.get('name')} {info.get('version')}"
