"""Inside backprop: the graph, the gradients and the cost of every op.

This lesson looks inside a training step in three ways:

1. The computation graph of a small LSTM classifier (it reads each MNIST
   image row by row), drawn with `deepbreadth.viz.draw_graph`: every op from
   the input to the loss, each layer a box that lists its weights with the
   norm of their gradients. Backward walks this graph against the arrows.
2. Gradient flow in a deep MLP, sigmoid against relu, measured with
   `GradientMonitor` on a slice of MNIST. The sigmoid's slope is at most 1/4,
   and backward multiplies the gradient by it once per layer, so the layers
   near the input get gradients many times smaller than the layers near the
   output: they barely learn (the vanishing gradient). Relu's slope is 1
   where the unit is active, so the gradient reaches the first layers intact.
3. The trace of one training step (forward and backward) of a two-layer MLP,
   from `deepbreadth.trace()`: each op with its shapes, time and FLOPs, first
   in forward order, then the backward ops in reverse, with the norm of the
   gradient arriving at each.

Run:  python examples/inside_backprop.py            (about a minute)
      python examples/inside_backprop.py --quick    (a few seconds)
Pictures go to --out (default docs/images/): lstm_graph.png and
gradient_flow.png. The graph needs Graphviz's `dot` program (without it the
DOT text is written instead); the plot needs matplotlib.
"""
import argparse
import os
import shutil

import numpy as np

import deepbreadth as db
from deepbreadth.datasets import mnist
from deepbreadth.layers import LSTM, Dense, Flatten
from deepbreadth.models import Sequential
from deepbreadth.monitor import GradientMonitor


def mnist_slice(count):
    """`count` training images scaled to [0, 1], and their labels."""
    (images, labels), _ = mnist.load_data()
    return images[:count].astype("float32") / 255.0, labels[:count].astype("int64")


# ----------------------------------------------------------------------------
# 1. The graph of an LSTM classifier
# ----------------------------------------------------------------------------
def draw_lstm_graph(images, labels, out_dir):
    """Draw the graph of one loss of a small LSTM model, with its gradients."""
    db.set_seed(0)
    model = Sequential([LSTM(16, input_shape=(28, 28), name="lstm"), Dense(10, name="logits")])
    # The fused softmax cross-entropy is one op: the loss stays a short tail of the graph.
    loss_function = db.losses.SparseCategoricalCrossentropy(from_logits=True)
    # Run the forward inside a trace so the graph knows which op belongs to which layer.
    with db.trace():
        loss = loss_function(labels, model(images))
    # Keep the graph after backward, to draw it together with the gradients.
    loss.backward(retain_graph=True)
    if shutil.which("dot") is None:
        path = os.path.join(out_dir, "lstm_graph.dot")
        db.viz.draw_graph(loss, path, format="dot")
        print(f"Graphviz's dot program is not installed: wrote the DOT text to {path}")
    else:
        path = os.path.join(out_dir, "lstm_graph.png")
        db.viz.draw_graph(loss, path, format="png")
        print(f"wrote {path}")
    return path


# ----------------------------------------------------------------------------
# 2. Gradient flow: sigmoid against relu
# ----------------------------------------------------------------------------
def deep_mlp(activation, depth, width):
    db.set_seed(0)  # the same starting weights for both activations
    hidden = [Dense(width, activation=activation, name=f"{activation}_{n + 1}")
              for n in range(depth)]
    output = Dense(10, name=f"{activation}_out")
    model = Sequential([Flatten(input_shape=(28, 28))] + hidden + [output])
    model.compile(optimizer=db.optimizers.SGD(learning_rate=0.1),
                  loss=db.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def gradient_norms_by_depth(activation, images, labels, depth, width, epochs):
    """The mean gradient norm of each layer's weights over the last epoch, input side first."""
    model = deep_mlp(activation, depth, width)
    monitor = GradientMonitor()
    model.fit(images, labels, batch_size=64, epochs=epochs, verbose=0, callbacks=[monitor])
    return [monitor.history[f"grad_norm/{layer.name}"][-1] for layer in model.layers
            if layer.trainable_weights]


def plot_gradient_flow(norms, out_dir):
    from matplotlib.figure import Figure  # a bare Figure: no window, no pyplot state

    figure = Figure(figsize=(6, 3.8))
    axis = figure.subplots()
    for activation, values in norms.items():
        axis.plot(np.arange(1, len(values) + 1), values, marker="o", label=activation)
    axis.set_yscale("log")
    axis.set_xlabel("layer (1 = next to the input)")
    axis.set_ylabel("mean gradient norm of its weights")
    axis.set_title("Gradient flow in a deep MLP on MNIST")
    axis.legend()
    figure.tight_layout()
    path = os.path.join(out_dir, "gradient_flow.png")
    figure.savefig(path, dpi=100)
    print(f"wrote {path}")
    return path


def show_gradient_flow(images, labels, out_dir, depth, width, epochs):
    norms = {activation: gradient_norms_by_depth(activation, images, labels, depth, width, epochs)
             for activation in ("sigmoid", "relu")}
    print("mean gradient norm per layer, input side first:")
    for activation, values in norms.items():
        print(f"  {activation:8s}" + " ".join(f"{value:9.2e}" for value in values))
    try:
        import matplotlib  # noqa: F401  (only to know whether it is installed)
    except ImportError:
        print("matplotlib is not installed: no gradient_flow.png (pip install matplotlib)")
        return None
    return plot_gradient_flow(norms, out_dir)


# ----------------------------------------------------------------------------
# 3. The trace of one training step
# ----------------------------------------------------------------------------
def show_trace(images, labels):
    db.set_seed(0)
    model = Sequential([Flatten(input_shape=(28, 28), name="flatten"),
                        Dense(64, activation="relu", name="hidden"), Dense(10, name="output")])
    loss_function = db.losses.SparseCategoricalCrossentropy(from_logits=True)
    model(images)  # build the weights (and compile the kernels) before tracing
    with db.trace() as recorded:
        loss = loss_function(labels, model(images))
        loss.backward()
    print(f"one training step of a two-layer MLP on a batch of {len(images)}:")
    print(recorded.table())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small data, a few seconds")
    parser.add_argument("--out", default=os.path.join("docs", "images"),
                        help="directory for the pictures (default docs/images)")
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)

    count, epochs = (1024, 1) if args.quick else (8192, 2)
    images, labels = mnist_slice(count)

    draw_lstm_graph(images[:32], labels[:32], args.out)
    show_gradient_flow(images, labels, args.out, depth=6, width=32, epochs=epochs)
    show_trace(images[:64], labels[:64])


if __name__ == "__main__":
    main()
