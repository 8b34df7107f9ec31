"""GPU time of the CUDA LSTM kernels at the shapes of W3 and W4, for benchmarks/NOTES.md.

For each shape: lstm_forward and lstm_backward of the CUDA set, on the
whole-sequence path (rnn_sequence.cu, one cooperative launch each) and step by
step (rnn.cu + cuBLAS), CPU and GPU milliseconds per call (cupyx.profiler).
Then the two whole-sequence kernels alone and with parts cut out of their
source (the recurrent product, a phase, the grid barrier): those variants
compute wrong numbers and are timed only to see which part costs what.

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
    "backward without phase 2 (grad_z @ recurrent_kernel^T)":
        ("multiply_rows<T, 1>(grad_z_seq", "if (false) multiply_rows<T, 1>(grad_z_seq"),
    "backward without phase 1 (gate gradients)":
        ("work.has_unit && round < rounds", "false && round < rounds"),
    "both kernels without the grid barrier": ("grid.sync();", "(void)grid;"),
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


def compiled_variant(source):
    return cupy.RawModule(code=source, options=loader.COMPILE_OPTIONS,
                          name_expressions=loader.name_expressions(source),
                          enable_cooperative_groups=True)


def time_kernel_parts(name, p):
    batch, steps, _ = p["grad_h_seq"].shape
    units = p["h0"].shape[1]
    plan = rnn_sequence.launch_plan(batch, units, np.float32)
    if plan is None:
        print(f"{name}: no whole-sequence plan")
        return
    h_seq, c_seq, gates = rnn.lstm_forward(p["x"], p["h0"], p["c0"], p["kernel"],
                                           p["recurrent_kernel"], p["bias"], "tanh", "sigmoid")
    projection = rnn.input_projection(p["x"], p["kernel"])
    source = loader.source_with_local_includes("rnn_sequence.cu")
    variants = {"as written": source}
    for cut, (text, replacement) in CUTS.items():
        if text not in source:
            print(f"  cut '{cut}': text not found in rnn_sequence.cu")
            continue
        variants[cut] = source.replace(text, replacement)
    print(f"{name}: {plan.blocks} blocks x {plan.threads} threads, {plan.units_per_block} "
          f"units and {plan.groups} sample groups per block, {plan.shared_bytes} bytes of "
          "shared memory", flush=True)
    for label, text in variants.items():
        module = compiled_variant(text)
        forward_kernel = module.get_function("lstm_forward_sequence<float>")
        backward_kernel = module.get_function("lstm_backward_sequence<float>")
        scratch = [cupy.empty_like(a) for a in (h_seq, c_seq, gates)]
        sizes = (np.int64(batch), np.int64(steps), np.int64(units),
                 np.int64(plan.units_per_block), np.int64(plan.groups), np.int32(2), np.int32(3))

        def forward():
            rnn_sequence.launch(forward_kernel, plan, (
                projection, p["recurrent_kernel"], p["bias"], p["h0"], p["c0"], *scratch)
                + sizes)

        grad_h = cupy.zeros_like(p["h0"])
        grad_c = p["grad_c_last"].copy()
        grad_z = cupy.empty_like(gates)

        def backward():
            rnn_sequence.launch(backward_kernel, plan, (
                p["recurrent_kernel"], p["c0"], c_seq, gates, p["grad_h_seq"], grad_h, grad_c,
                grad_z) + sizes)
        _, gpu_f = milliseconds(forward)
        _, gpu_b = milliseconds(backward)
        print(f"  {label:58s} forward GPU {gpu_f:7.3f} ms, backward GPU {gpu_b:7.3f} ms",
              flush=True)


def main():
    print("cupy", cupy.__version__, "device",
          cupy.cuda.runtime.getDeviceProperties(0)["name"].decode(), flush=True)
    for name, shape in SHAPES.items():
        p = problem(*shape)
        time_paths(name, p)
        time_kernel_parts(name, p)


if __name__ == "__main__":
    main()
