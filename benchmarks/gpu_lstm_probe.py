"""GPU time of the CUDA LSTM kernels at the shapes of W3 and W4, for benchmarks/NOTES.md.

For each shape: lstm_forward of the CUDA set on the whole-sequence path
(rnn_sequence.cu, one cooperative launch) and step by step (rnn.cu + cuBLAS),
and lstm_backward (step by step), CPU and GPU milliseconds per call
(cupyx.profiler).  Then the whole-sequence kernel alone, with parts cut out of
its source (the recurrent product, the grid barrier; those variants compute
wrong numbers and are timed only to see which part costs what) and with other
tile sizes.

    python -m benchmarks.gpu_lstm_probe
"""
import cupy
import numpy as np
from cupyx.profiler import benchmark

from deepbreadth.kernels.cuda import loader, rnn, rnn_sequence

SHAPES = {  # (batch, steps, features, units)
    "W3 LSTM(128)": (128, 28, 28, 128),
    "W4 first LSTM(512)": (128, 28, 28, 512),
    "W4 second LSTM(512)": (128, 28, 512, 512),
}

# (what is cut, text in rnn_sequence.cu, replacement)
CUTS = {
    "forward without the recurrent product":
        ("multiply_rows<T, 4>(previous", "if (false) multiply_rows<T, 4>(previous"),
    "forward without the grid barrier": ("grid.sync();", "(void)grid;"),
}


def milliseconds(action, repeats=20):
    result = benchmark(action, n_repeat=repeats, n_warmup=3)
    return 1e3 * float(np.mean(result.cpu_times)), 1e3 * float(np.mean(result.gpu_times))


def problem(batch, steps, features, units):
    rng = cupy.random.default_rng(0)

    def normal(*shape, scale=0.5):
        return (scale * rng.standard_normal(shape, dtype=np.float32)).astype(np.float32)

    return {
        "x": normal(batch, steps, features), "h0": normal(batch, units),
        "c0": normal(batch, units), "kernel": normal(features, 4 * units, scale=0.1),
        "recurrent_kernel": normal(units, 4 * units, scale=0.1), "bias": normal(4 * units),
        "grad_h_seq": normal(batch, steps, units), "grad_c_last": normal(batch, units),
    }


def time_paths(name, p):
    def forward():
        return rnn.lstm_forward(p["x"], p["h0"], p["c0"], p["kernel"], p["recurrent_kernel"],
                                p["bias"], "tanh", "sigmoid")

    for whole in (True, False):
        rnn_sequence.ENABLED = whole
        label = "one launch" if whole else "step by step"
        h_seq, c_seq, gates = forward()

        def backward():
            return rnn.lstm_backward(p["x"], p["h0"], p["c0"], p["kernel"],
                                     p["recurrent_kernel"], h_seq, c_seq, gates,
                                     p["grad_h_seq"], p["grad_c_last"], "tanh", "sigmoid")
        cpu_f, gpu_f = milliseconds(forward)
        cpu_b, gpu_b = milliseconds(backward)
        print(f"{name:22s} {label:13s} forward CPU {cpu_f:7.3f} GPU {gpu_f:7.3f} ms | "
              f"backward CPU {cpu_b:7.3f} GPU {gpu_b:7.3f} ms", flush=True)
    rnn_sequence.ENABLED = True


_compiled = {}


def compiled_variant(source):
    if source not in _compiled:
        _compiled[source] = cupy.RawModule(
            code=source, options=loader.COMPILE_OPTIONS,
            name_expressions=loader.name_expressions(source), enable_cooperative_groups=True)
    return _compiled[source]


def with_defines(source, samples_per_thread, staged_depth):
    source = source.replace(f"#define SAMPLES_PER_THREAD {rnn_sequence.SAMPLES_PER_THREAD}",
                            f"#define SAMPLES_PER_THREAD {samples_per_thread}")
    return source.replace(f"#define STAGED_DEPTH {rnn_sequence.STAGED_DEPTH}",
                          f"#define STAGED_DEPTH {staged_depth}")


PLAIN_LOADS = ("__pipeline_memcpy_async(destination, rows + n * row_stride + k, sizeof(T));",
               "*destination = rows[n * row_stride + k];")


def variants(source):
    """(label, source, samples per thread, staged depth): the kernels as written, with
    parts cut out, and with other tile sizes."""
    spt, depth = rnn_sequence.SAMPLES_PER_THREAD, rnn_sequence.STAGED_DEPTH
    found = [("as written", source, spt, depth)]
    for cut, (text, replacement) in {**CUTS, "plain loads instead of cp.async": PLAIN_LOADS}.items():
        if text in source:
            found.append((cut, source.replace(text, replacement), spt, depth))
        else:
            print(f"  cut '{cut}': text not found in rnn_sequence.cu")
    for other_spt, other_depth in ((1, 32), (1, 128), (2, 64), (4, 64)):
        if (other_spt, other_depth) != (spt, depth):
            found.append((f"{other_spt} samples per thread, staged depth {other_depth}",
                          with_defines(source, other_spt, other_depth), other_spt, other_depth))
    return found


def time_kernel_parts(name, p):
    batch, steps, _ = p["grad_h_seq"].shape
    units = p["h0"].shape[1]
    h_seq, c_seq, gates = rnn.lstm_forward(p["x"], p["h0"], p["c0"], p["kernel"],
                                           p["recurrent_kernel"], p["bias"], "tanh", "sigmoid")
    projection = rnn.input_projection(p["x"], p["kernel"])
    source = loader.source_with_local_includes("rnn_sequence.cu")
    for label, text, spt, depth in variants(source):
        plan = rnn_sequence.launch_plan(batch, units, np.float32, spt, depth)
        if plan is None:
            print(f"  {label}: no whole-sequence plan")
            continue
        module = compiled_variant(text)
        forward_kernel = module.get_function("lstm_forward_sequence<float>")
        scratch = [cupy.empty_like(a) for a in (h_seq, c_seq, gates)]
        sizes = (np.int64(batch), np.int64(steps), np.int64(units),
                 np.int64(plan.units_per_block), np.int64(plan.groups), np.int32(2), np.int32(3))

        def forward():
            rnn_sequence.launch(forward_kernel, plan, (
                projection, p["recurrent_kernel"], p["bias"], p["h0"], p["c0"], *scratch)
                + sizes)
        _, gpu_f = milliseconds(forward, repeats=10)
        print(f"  {label:45s} forward GPU {gpu_f:7.3f} ms "
              f"({plan.threads} threads, {plan.groups} groups)", flush=True)


def main():
    print("cupy", cupy.__version__, "device",
          cupy.cuda.runtime.getDeviceProperties(0)["name"].decode(), flush=True)
    for name, shape in SHAPES.items():
        p = problem(*shape)
        time_paths(name, p)
        time_kernel_parts(name, p)


if __name__ == "__main__":
    main()
