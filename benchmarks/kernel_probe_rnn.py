"""Probe: one LSTM layer's forward + backward, Numba kernels against PyTorch.

Times `lstm_forward` + `lstm_backward` of the Numba set (kernels/cpu/rnn.py)
and `torch.nn.LSTM` forward + backward on the same float32 problem, batch 128,
28 steps of 28 features (MNIST rows as a sequence), for 128 and 512 units.
The two are timed alternately in one process, so that load from elsewhere on
the machine hits both alike; the ratio of the minimum times is the figure to
quote, the medians show how noisy the run was.

On a machine shared with other jobs, wall time mostly measures the others;
`--threads 1 --cpu-time` then compares the CPU time each side really used.

    python benchmarks/kernel_probe_rnn.py [--units 128 512] [--repeats 10] [--threads 2]
                                          [--cpu-time]
"""
import argparse
import os
import time

# NumPy, Numba and torch are imported only after limit_threads(): OpenBLAS and
# OpenMP read their thread counts once, when they are loaded.


def parse_arguments():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, nargs="+", default=[128, 512])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=28)
    parser.add_argument("--features", type=int, default=28)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--stacked",
        action="store_true",
        help="two layers, LSTM(units, return_sequences=True) -> LSTM(units), as in W4",
    )
    parser.add_argument(
        "--cpu-time",
        action="store_true",
        help="time with the process CPU clock (meaningful with --threads 1)",
    )
    return parser.parse_args()


def limit_threads(count):
    """Same thread budget for everyone; must run before NumPy/Numba/torch start."""
    for variable in (
        "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"
    ):
        os.environ[variable] = str(count)


def make_lstm_problem(batch, steps, features, units, seed=0):
    import numpy as np

    rng = np.random.default_rng(seed)

    def normal(*shape, scale):
        return (scale * rng.standard_normal(shape)).astype(np.float32)

    return {
        "x": normal(batch, steps, features, scale=1.0),
        "h0": np.zeros((batch, units), np.float32),
        "c0": np.zeros((batch, units), np.float32),
        "kernel": normal(features, 4 * units, scale=features**-0.5),
        "recurrent_kernel": normal(units, 4 * units, scale=units**-0.5),
        "bias": np.zeros(4 * units, np.float32),
        "grad_h_seq": normal(batch, steps, units, scale=1.0),
        "grad_c_last": np.zeros((batch, units), np.float32),
    }


def numba_step(p):
    """A closure running our forward + backward once."""
    from deepbreadth.kernels.cpu import rnn

    def run():
        h_seq, c_seq, gates = rnn.lstm_forward(
            p["x"], p["h0"], p["c0"], p["kernel"], p["recurrent_kernel"], p["bias"],
            "tanh", "sigmoid",
        )
        rnn.lstm_backward(
            p["x"], p["h0"], p["c0"], p["kernel"], p["recurrent_kernel"],
            h_seq, c_seq, gates, p["grad_h_seq"], p["grad_c_last"], "tanh", "sigmoid",
        )

    return run


def numba_stacked_step(first, second):
    """LSTM(return_sequences=True) -> LSTM, the loss reading the last step only."""
    import numpy as np
    from deepbreadth.kernels.cpu import rnn

    def layer_forward(x, p):
        return rnn.lstm_forward(
            x, p["h0"], p["c0"], p["kernel"], p["recurrent_kernel"], p["bias"], "tanh", "sigmoid"
        )

    def layer_backward(x, p, outputs, grad_h_seq):
        return rnn.lstm_backward(
            x, p["h0"], p["c0"], p["kernel"], p["recurrent_kernel"], *outputs,
            grad_h_seq, p["grad_c_last"], "tanh", "sigmoid",
        )

    def run():
        first_outputs = layer_forward(first["x"], first)
        h_seq = first_outputs[0]
        second_outputs = layer_forward(h_seq, second)
        grad_last_only = np.zeros_like(second["grad_h_seq"])
        grad_last_only[:, -1] = second["grad_h_seq"][:, -1]
        grad_h_seq = layer_backward(h_seq, second, second_outputs, grad_last_only)[0]
        layer_backward(first["x"], first, first_outputs, grad_h_seq)

    return run


def torch_stacked_step(first, second, torch):
    features, units = first["x"].shape[2], first["h0"].shape[1]
    lstm = torch.nn.LSTM(features, units, num_layers=2, batch_first=True)
    x = torch.from_numpy(first["x"])
    grad_last = torch.from_numpy(second["grad_h_seq"][:, -1].copy())

    def run():
        lstm.zero_grad(set_to_none=True)
        h_seq, _ = lstm(x)
        h_seq[:, -1].backward(grad_last)

    return run


def torch_step(p, torch):
    features, units = p["x"].shape[2], p["h0"].shape[1]
    lstm = torch.nn.LSTM(features, units, batch_first=True)
    x = torch.from_numpy(p["x"]).requires_grad_(True)  # a layer in a stack needs grad_x
    grad_h_seq = torch.from_numpy(p["grad_h_seq"])

    def run():
        lstm.zero_grad(set_to_none=True)
        x.grad = None
        h_seq, _ = lstm(x)
        h_seq.backward(grad_h_seq)

    return run


def time_alternately(runs, repeats, clock):
    """Seconds per call for each named closure, calls interleaved."""
    for run in runs.values():
        run()  # warm-up: Numba compiles (or loads its cache), torch allocates
    seconds = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            start = clock()
            run()
            seconds[name].append(clock() - start)
    return seconds


def main():
    arguments = parse_arguments()
    limit_threads(arguments.threads)
    import numba
    import numpy as np
    import torch

    torch.set_num_threads(arguments.threads)
    clock = time.process_time if arguments.cpu_time else time.perf_counter
    print(
        f"threads {arguments.threads}, {'CPU' if arguments.cpu_time else 'wall'} time; "
        f"numba {numba.__version__}, "
        f"torch {torch.__version__}, numpy {np.__version__}"
    )
    for units in arguments.units:
        shape = (arguments.batch, arguments.steps, arguments.features)
        problem = make_lstm_problem(*shape, units)
        if arguments.stacked:
            second = make_lstm_problem(arguments.batch, arguments.steps, units, units, seed=1)
            runs = {
                "numba": numba_stacked_step(problem, second),
                "torch": torch_stacked_step(problem, second, torch),
            }
        else:
            runs = {"numba": numba_step(problem), "torch": torch_step(problem, torch)}
        seconds = time_alternately(runs, arguments.repeats, clock)
        best = {name: min(values) for name, values in seconds.items()}
        median = {name: float(np.median(values)) for name, values in seconds.items()}
        print(
            f"{'2 x ' if arguments.stacked else ''}LSTM({units}) x {shape} "
            f"fwd+bwd  numba {best['numba'] * 1e3:7.1f} ms (median {median['numba'] * 1e3:7.1f})"
            f"  torch {best['torch'] * 1e3:7.1f} ms (median {median['torch'] * 1e3:7.1f})"
            f"  numba/torch {best['numba'] / best['torch']:.2f}"
        )


if __name__ == "__main__":
    main()
