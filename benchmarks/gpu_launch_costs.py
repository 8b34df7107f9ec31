"""What one call costs the CPU on the GPU path: the figures behind the CUDA set's
launch choices (benchmarks/NOTES.md, "GPU").

For each way of starting GPU work that a training step uses (a CuPy matmul, a
direct cuBLAS call, one of our RawKernels with its arguments, a CuPy reduction,
an element-wise CuPy operation, an allocation, a read of one number back), the
median CPU microseconds per call over many calls with no synchronization in
between, and a cooperative kernel that runs many dependent steps in one launch
with a grid-wide barrier between them.

    python -m benchmarks.gpu_launch_costs
"""
import statistics
import time

import cupy
import numpy as np

REPEATS = 2000

TOY_SOURCE = r"""
#include <cooperative_groups.h>
namespace cg = cooperative_groups;

extern "C" __global__ void add_one(float* x, long long n, float step) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x) {
        x[i] += step;
    }
}

// steps dependent rounds: every block reads what all blocks wrote in the previous one.
extern "C" __global__ void rounds(float* x, long long n, int steps) {
    cg::grid_group grid = cg::this_grid();
    for (int s = 0; s < steps; ++s) {
        for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
             i += (long long)gridDim.x * blockDim.x) {
            x[i] = x[(i + 1) % n] + 1.0f;
        }
        grid.sync();
    }
}
"""


def per_call_us(action, repeats=REPEATS):
    for _ in range(20):
        action()
    cupy.cuda.Device().synchronize()
    samples = []
    for _ in range(repeats // 100):
        began = time.perf_counter()
        for _ in range(100):
            action()
        samples.append((time.perf_counter() - began) / 100)
        cupy.cuda.Device().synchronize()
    return 1e6 * statistics.median(samples)


def report(name, action, repeats=REPEATS):
    try:
        print(f"{name:58s} {per_call_us(action, repeats):8.2f} us", flush=True)
    except Exception as error:  # a probe: say what failed and go on
        print(f"{name:58s} FAILED: {type(error).__name__}: {error}", flush=True)


def main():
    print("cupy", cupy.__version__, "device",
          cupy.cuda.runtime.getDeviceProperties(0)["name"].decode(),
          "SMs", cupy.cuda.Device().attributes["MultiProcessorCount"], flush=True)
    rng = cupy.random.default_rng(0)
    a = rng.standard_normal((128, 128), dtype=np.float32)
    b = rng.standard_normal((128, 512), dtype=np.float32)
    out = cupy.empty((128, 512), dtype=np.float32)
    report("cupy.matmul 128x128 @ 128x512", lambda: a @ b)
    report("cupy.matmul(out=) 128x128 @ 128x512", lambda: cupy.matmul(a, b, out=out))

    from cupy_backends.cuda.libs import cublas
    handle = cupy.cuda.device.get_cublas_handle()
    one = np.array(1.0, dtype=np.float32)
    zero = np.array(0.0, dtype=np.float32)

    def raw_sgemm():
        # row-major out = a @ b is column-major out^T = b^T a^T
        cublas.setStream(handle, cupy.cuda.get_current_stream().ptr)
        cublas.sgemm(handle, cublas.CUBLAS_OP_N, cublas.CUBLAS_OP_N, 512, 128, 128,
                     one.ctypes.data, b.data.ptr, 512, a.data.ptr, 128,
                     zero.ctypes.data, out.data.ptr, 512)
    report("cublas.sgemm (raw handle) same product", raw_sgemm)
    raw_sgemm()
    check = float(cupy.abs(out - a @ b).max())
    print(f"  raw sgemm max difference from cupy.matmul: {check:.2e}")

    module = cupy.RawModule(code=TOY_SOURCE, options=("--std=c++17",),
                            enable_cooperative_groups=True)
    add_one = module.get_function("add_one")
    x = cupy.zeros(128 * 128, dtype=np.float32)
    args_numpy = (x, np.int64(x.size), np.float32(1.0))
    report("RawKernel launch, 3 args", lambda: add_one((64,), (256,), args_numpy))
    many = (x,) * 8 + (np.int64(x.size),) * 4 + (np.float32(1.0),) * 0
    kernel14 = cupy.RawModule(code=r"""
extern "C" __global__ void k(float* a, float* b, float* c, float* d, float* e, float* f,
                             float* g, float* h, long long n, long long s, long long u,
                             long long t, int p, int q) {
    long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    if (i < n) a[i] += 1.0f;
}""").get_function("k")
    many = (x,) * 8 + (np.int64(x.size), np.int64(1), np.int64(2), np.int64(3),
                       np.int32(1), np.int32(2))
    report("RawKernel launch, 14 args (8 arrays, 4 int64, 2 int32)",
           lambda: kernel14((64,), (256,), many))
    report("  the same building the 6 numpy scalars each call",
           lambda: kernel14((64,), (256,), (x,) * 8 + (
               np.int64(x.size), np.int64(1), np.int64(2), np.int64(3), np.int32(1),
               np.int32(2))))
    report("RawModule.get_function by name", lambda: module.get_function("add_one"))
    g = rng.standard_normal((128 * 28, 512), dtype=np.float32)
    report("cupy sum(axis=0) of (3584, 512)", lambda: g.sum(axis=0))
    ones = cupy.ones((1, 128 * 28), dtype=np.float32)
    report("ones @ g as the same column sum", lambda: ones @ g)
    report("cupy elementwise a < 0", lambda: a < 0)
    report("cupy.empty((128, 512))", lambda: cupy.empty((128, 512), dtype=np.float32))
    report("a.T view", lambda: a.T)
    report("cupy.ascontiguousarray of contiguous", lambda: cupy.ascontiguousarray(a))
    report("cupy.asarray(numpy 128x784) (host to device)",
           lambda: cupy.asarray(np.ones((128, 784), np.float32)), repeats=400)
    report("float(device scalar) (device to host, waits)",
           lambda: float(x[0]), repeats=400)

    rounds = module.get_function("rounds")
    y = cupy.zeros(128 * 512, dtype=np.float32)
    sms = cupy.cuda.Device().attributes["MultiProcessorCount"]
    for steps in (1, 28):
        def cooperative(steps=steps):
            rounds((sms,), (256,), (y, np.int64(y.size), np.int32(steps)))
        try:
            cooperative()
            cupy.cuda.Device().synchronize()
            began = time.perf_counter()
            for _ in range(200):
                cooperative()
            cupy.cuda.Device().synchronize()
            print(f"cooperative kernel, {steps:2d} grid-synced rounds, {sms} blocks: "
                  f"{1e6 * (time.perf_counter() - began) / 200:8.2f} us per launch "
                  "(wall, synchronized)", flush=True)
        except Exception as error:
            print(f"cooperative kernel FAILED: {type(error).__name__}: {error}", flush=True)

    stream = cupy.cuda.Stream(non_blocking=True)
    try:
        with stream:
            stream.begin_capture()
            try:
                raw_sgemm()
            finally:
                graph = stream.end_capture()
        graph.launch(stream=stream)
        stream.synchronize()
        print("raw cuBLAS call inside a stream capture: captured and replayed")
    except Exception as error:
        print(f"raw cuBLAS call inside a stream capture FAILED: {type(error).__name__}: {error}")


if __name__ == "__main__":
    main()
