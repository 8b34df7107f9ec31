"""Depth versus breadth: what more layers, or wider layers, buy an MLP on MNIST.

What it teaches, in two experiments:

1. A grid of MLPs, every combination of depth (hidden layers) and breadth
   (units per hidden layer), each trained the same way. For each we measure
   test accuracy, parameter count and time per epoch. What to look for:
   - parameters grow with breadth SQUARED (a hidden-to-hidden layer of
     width w holds w*w weights) but only linearly with depth;
   - time per epoch follows the parameter count: every weight costs a
     multiply-add per example, forward and twice backward;
   - accuracy climbs quickly with breadth, then flattens: past a few hundred
     units, more width mostly adds cost. Extra depth helps narrow networks
     most, and on a small budget of epochs a very deep, narrow one can even
     do worse.

2. Why depth used to be hard: the gradient of each layer's weights, after
   one backward pass on the first batch, for deeper and deeper networks
   with sigmoid or ReLU units. The backward pass multiplies the gradient by
   each layer's activation derivative on its way down; sigmoid's is at most
   0.25, so with sigmoid the gradient shrinks layer after layer (it
   "vanishes") and the first layers barely learn. ReLU's derivative is 1
   where the unit is active, so the gradient keeps its size.

    python examples/depth_vs_breadth.py            # 4x4 grid, 10,000 images, 3 epochs
    python examples/depth_vs_breadth.py --full     # 6x7 grid, all 60,000 images, 5 epochs (long)
    python examples/depth_vs_breadth.py --quick    # 2x2 grid on a small slice, seconds

Results go to examples/results/depth_vs_breadth.json, and two plots,
depth_vs_breadth.png and gradient_norms.png, when matplotlib is installed
(`pip install matplotlib`; without it the plots are skipped with a note).
A --full run names its files depth_vs_breadth_full.json and so on.
"""
import argparse
import io
import os

import numpy as np

import deepbreadth as tf
from _results import Stopwatch, write_atomically, write_results


def build_mlp(depth, breadth, activation="relu"):
    """`depth` hidden Dense layers of `breadth` units each, then 10 logits."""
    layers = [tf.keras.layers.Flatten(input_shape=(28, 28))]
    layers += [tf.keras.layers.Dense(breadth, activation=activation) for _ in range(depth)]
    layers.append(tf.keras.layers.Dense(10))
    return tf.keras.Sequential(layers)


# ----------------------------------------------------------------------------
# Experiment 1: the grid
# ----------------------------------------------------------------------------
def train_grid(depths, breadths, data, epochs, batch_size, seed):
    (x_train, y_train), (x_test, y_test) = data
    # A throwaway fit first, so that loading the compiled kernels is not
    # counted in the first model's time per epoch.
    warm_up = build_mlp(1, 16)
    warm_up.compile(optimizer="adam",
                    loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    warm_up.fit(x_train[:256], y_train[:256], batch_size=batch_size, verbose=0)
    results = []
    for depth in depths:
        for breadth in breadths:
            # The same seed for every model: differences come from the shape,
            # not from luckier initial weights or batch orders.
            tf.keras.utils.set_random_seed(seed)
            model = build_mlp(depth, breadth)
            model.compile(optimizer="adam",
                          loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                          metrics=["accuracy"])
            stopwatch = Stopwatch()
            history = model.fit(x_train, y_train, epochs=epochs, batch_size=batch_size,
                                callbacks=[stopwatch], verbose=0)
            _, test_accuracy = model.evaluate(x_test, y_test, batch_size=1000, verbose=0)
            result = {
                "depth": depth,
                "breadth": breadth,
                "parameters": model.count_params(),
                "test_accuracy": test_accuracy,
                "seconds_per_epoch": float(np.mean(stopwatch.seconds_per_epoch)),
                "cpu_seconds_per_epoch": float(np.mean(stopwatch.cpu_seconds_per_epoch)),
                "first_batch_loss": stopwatch.first_batch_loss,
                "history": history.history,
            }
            results.append(result)
            print(f"depth {depth:2d}  breadth {breadth:5d}  "
                  f"parameters {result['parameters']:>10,}  "
                  f"test accuracy {test_accuracy:.4f}  {result['seconds_per_epoch']:6.2f} s/epoch "
                  f"({result['cpu_seconds_per_epoch']:.2f} s CPU)",
                  flush=True)
    return results


# ----------------------------------------------------------------------------
# Experiment 2: gradient norms per layer
# ----------------------------------------------------------------------------
def gradient_norms(depth, breadth, activation, x_batch, y_batch, seed):
    """The norm of d loss / d kernel for each Dense layer, input side first,
    after one forward and one backward pass of an untrained network."""
    tf.keras.utils.set_random_seed(seed)  # sigmoid and ReLU nets start from the same weights
    model = build_mlp(depth, breadth, activation)
    loss_function = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    loss = loss_function(y_batch, model(x_batch, training=True))
    loss.backward()   # fills .grad of every weight
    kernels = [layer.kernel for layer in model.layers if isinstance(layer, tf.keras.layers.Dense)]
    return [float(np.linalg.norm(kernel.grad.numpy())) for kernel in kernels]


def measure_gradients(depths, breadth, x_batch, y_batch, seed):
    results = {}
    for activation in ("sigmoid", "relu"):
        results[activation] = {}
        for depth in depths:
            norms = gradient_norms(depth, breadth, activation, x_batch, y_batch, seed)
            results[activation][str(depth)] = norms
            # The first hidden layer against the output layer: how much of the
            # gradient survives the way down.
            print(f"{activation:7s} depth {depth:2d}: |grad| first hidden layer {norms[0]:.2e}, "
                  f"output layer {norms[-1]:.2e}, ratio {norms[0] / norms[-1]:.2e}")
    return results


# ----------------------------------------------------------------------------
# Plots (matplotlib is optional)
# ----------------------------------------------------------------------------
def plot_grid(grid, depths, breadths, path, pyplot):
    from matplotlib.ticker import NullLocator

    figure, axes = pyplot.subplots(1, 3, figsize=(15, 4.5))
    measures = [("test_accuracy", "test accuracy", False),
                ("parameters", "parameters", True),
                # CPU time, not the wall clock: on a shared machine the wall
                # clock also counts waiting for a core, which is noise here.
                ("cpu_seconds_per_epoch", "CPU seconds per epoch", True)]
    for axis, (key, label, log_scale) in zip(axes, measures):
        for depth in depths:
            values = [next(r[key] for r in grid if r["depth"] == depth and r["breadth"] == breadth)
                      for breadth in breadths]
            line_label = f"{depth} hidden layer{'s' * (depth > 1)}"
            axis.plot(breadths, values, marker="o", label=line_label)
        axis.set_xscale("log", base=2)
        axis.set_xticks(breadths, [str(breadth) for breadth in breadths])
        axis.xaxis.set_minor_locator(NullLocator())
        if log_scale:
            axis.set_yscale("log")
        axis.set_xlabel("breadth (units per hidden layer)")
        axis.set_ylabel(label)
        axis.grid(True, alpha=0.3)
    axes[0].legend()
    figure.suptitle("MLPs on MNIST: depth versus breadth")
    figure.tight_layout()
    save_figure(figure, path, pyplot)


def plot_gradients(gradients, breadth, path, pyplot):
    from matplotlib.ticker import MaxNLocator

    figure, axes = pyplot.subplots(1, 2, figsize=(11, 4.5), sharey=True)
    for axis, activation in zip(axes, ("sigmoid", "relu")):
        for depth, norms in gradients[activation].items():
            axis.plot(range(1, len(norms) + 1), norms, marker="o", label=f"{depth} hidden layers")
        axis.set_yscale("log")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.set_title(f"{activation}, {breadth} units per layer")
        axis.set_xlabel("layer (1 = nearest the input; the last is the output layer)")
        axis.grid(True, alpha=0.3)
    axes[0].set_ylabel("norm of d loss / d kernel, first batch")
    axes[1].legend()
    figure.suptitle("Vanishing gradients: sigmoid shrinks them layer by layer, ReLU does not")
    figure.tight_layout()
    save_figure(figure, path, pyplot)


def save_figure(figure, path, pyplot):
    """Render to memory, then write atomically like the JSON."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    pyplot.close(figure)
    write_atomically(path, buffer.getvalue())
    print(f"plot written to {path}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true",
                      help="a 2x2 grid, 1,000 images, one epoch (a smoke test, seconds)")
    size.add_argument("--full", action="store_true",
                      help="a 6x7 grid on all 60,000 images for 5 epochs "
                           "(an hour or more on 2 cores)")
    parser.add_argument("--depths", type=int, nargs="+", help="hidden layers to try")
    parser.add_argument("--breadths", type=int, nargs="+", help="units per hidden layer to try")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--train-samples", type=int)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results"),
                        help="directory for the results JSON and plots")
    args = parser.parse_args()

    if args.quick:
        depths, breadths, epochs, train_samples, test_samples = [1, 2], [16, 64], 1, 1000, 1000
        gradient_depths, batch_size = [2, 4], 32
    elif args.full:
        depths, breadths, epochs, train_samples, test_samples = (
            [1, 2, 3, 4, 6, 8], [16, 32, 64, 128, 256, 512, 1024], 5, 60000, 10000)
        gradient_depths, batch_size = [2, 4, 8, 16], args.batch_size
    else:
        depths, breadths, epochs, train_samples, test_samples = (
            [1, 2, 4, 8], [16, 64, 256, 1024], 3, 10000, 10000)
        gradient_depths, batch_size = [2, 4, 8, 16], args.batch_size
    depths = args.depths or depths
    breadths = args.breadths or breadths
    epochs = args.epochs or epochs
    train_samples = args.train_samples or train_samples

    (x_train, y_train), (x_test, y_test) = tf.keras.datasets.mnist.load_data()
    x_train = (x_train[:train_samples] / 255.0).astype("float32")
    x_test = (x_test[:test_samples] / 255.0).astype("float32")
    data = (x_train, y_train[:train_samples]), (x_test, y_test[:test_samples])

    print(f"Experiment 1: {len(depths)} depths x {len(breadths)} breadths, "
          f"{len(x_train):,} training images, {epochs} epoch(s), batch size {batch_size}")
    grid = train_grid(depths, breadths, data, epochs, batch_size, args.seed)

    gradient_breadth = 128
    print(f"\nExperiment 2: gradient norms per layer, {gradient_breadth} units per layer, "
          "one batch of 256 images")
    gradients = measure_gradients(gradient_depths, gradient_breadth, x_train[:256],
                                  y_train[:256], args.seed)

    # A --full run keeps its own files, next to those of the default run.
    suffix = "_full" if args.full else ""
    plots = {}
    try:
        import matplotlib
        matplotlib.use("Agg")  # draw to files; no window, no display needed
        from matplotlib import pyplot
    except ImportError:
        print("\nmatplotlib is not installed: no plots (pip install matplotlib to get them)")
    else:
        os.makedirs(args.out, exist_ok=True)
        plots["grid"] = os.path.join(args.out, f"depth_vs_breadth{suffix}.png")
        plots["gradients"] = os.path.join(args.out, f"gradient_norms{suffix}.png")
        plot_grid(grid, depths, breadths, plots["grid"], pyplot)
        plot_gradients(gradients, gradient_breadth, plots["gradients"], pyplot)

    best = max(grid, key=lambda r: r["test_accuracy"])
    print(f"\nbest: depth {best['depth']}, breadth {best['breadth']}, "
          f"test accuracy {best['test_accuracy']:.4f}")
    write_results(args.out, f"depth_vs_breadth{suffix}", {
        "quick": args.quick,
        "full": args.full,
        "epochs": epochs,
        "batch_size": batch_size,
        "train_samples": len(x_train),
        "test_samples": len(x_test),
        "activation": "relu",
        "optimizer": "adam",
        "grid": grid,
        "gradient_norms": {"breadth": gradient_breadth, "batch": 256, "per_layer": gradients},
        "plots": {name: os.path.basename(path) for name, path in plots.items()},
    })


if __name__ == "__main__":
    main()
