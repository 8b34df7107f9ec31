"""One adapter per framework: builds the workloads of `benchmarks.workloads` and times nothing.

An adapter module defines `make(backend, device, threads)` returning an object with
- `name` (e.g. 'deepbreadth-numba', 'torch'), `info()` (versions, device, notes),
- `model(workload, xs, ys)` -> a runner with `train(i)`, `infer(i)`, `sync()`,
  `last_loss()`,
- `kernel(name, phase, inputs)` -> `step(i)` (the runner's `sync` is `adapter.sync`),
- `sync()`, and `memory_kind` ('tracemalloc' where array memory is NumPy's,
  'cuda' where the adapter can report its GPU memory peak, else None),
  `gpu_memory()` where memory_kind is 'cuda'.
Modules are imported inside the benchmark subprocess only, after the thread
settings are in place.
"""
import importlib

FRAMEWORK_MODULES = {
    "deepbreadth": "benchmarks.adapters.deepbreadth_adapter",
    "torch": "benchmarks.adapters.torch_adapter",
    "tensorflow": "benchmarks.adapters.tensorflow_adapter",
    "jax": "benchmarks.adapters.jax_adapter",
}

# The import name of each framework, to tell whether it is installed without importing it.
IMPORT_NAMES = {"deepbreadth": "deepbreadth", "torch": "torch", "tensorflow": "tensorflow",
                "jax": "jax"}


class Unsupported(Exception):
    """This framework cannot run this configuration here (no GPU, no package): a skip, with why."""


def make(framework, backend, device, threads):
    module = importlib.import_module(FRAMEWORK_MODULES[framework])
    return module.make(backend, device, threads)
