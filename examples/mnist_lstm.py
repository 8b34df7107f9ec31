"""MNIST read row by row with stacked LSTMs: a picture as a sequence.

What it teaches: recurrent layers, and how to stack them. Each 28x28 image is
read as 28 time steps of 28 pixels (one row per step), so the input shape is
(28, 28) = (time steps, features per step). An LSTM carries a memory (its
cell state) from row to row; by the last row it must have kept what matters
about the whole digit.

Stacking two LSTMs adds depth in a new direction: the second reads the
sequence of the first one's outputs. For that, the first must output its
state at EVERY step (`return_sequences=True`); the second outputs only its
last state, which the Dense layer turns into 10 digit scores.

The seed model uses ReLU instead of tanh inside the LSTM. ReLU is unbounded,
so a too-large step can blow the memory up; a modest learning rate and
gradient clipping (`clipnorm`: each weight's gradient is scaled down if its
norm exceeds 1) keep training stable.

    python examples/mnist_lstm.py                  # the seed model, 512 units (slow on a CPU)
    python examples/mnist_lstm.py --units 128      # a narrower variant, 4x fewer steps of work
    python examples/mnist_lstm.py --quick          # 32 units, a small slice, seconds

Results go to examples/results/mnist_lstm_<units>.json (or --out DIR).
"""
import argparse
import os

import numpy as np

import deepbreadth as tf
from _results import Stopwatch, write_results

TARGET_ACCURACY = 0.98


def build_model(units, learning_rate):
    layers = tf.keras.layers
    model = tf.keras.Sequential([
        # (batch, 28 rows, 28 pixels) -> (batch, 28 steps, units): every step's output.
        layers.LSTM(units, activation="relu", input_shape=(28, 28), return_sequences=True),
        layers.Dropout(0.2),
        # -> (batch, units): only the state after the last row.
        layers.LSTM(units, activation="relu"),
        layers.Dropout(0.2),
        layers.Dense(10),
    ])
    model.compile(optimizer=tf.keras.optimizers.Adam(learning_rate=learning_rate, clipnorm=1.0),
                  loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    return model


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="32 units, 2,000 images, two epochs (a smoke test, seconds)")
    parser.add_argument("--units", type=int, default=512, help="LSTM units per layer (breadth)")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--train-samples", type=int, default=None,
                        help="train on the first N images only (to bound a slow run)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results"),
                        help="directory for the results JSON")
    args = parser.parse_args()
    tf.keras.utils.set_random_seed(args.seed)

    (x_train, y_train), (x_test, y_test) = tf.keras.datasets.mnist.load_data()
    # No channel axis here: the LSTM wants (time steps, features), and an image
    # already is (rows, pixels per row).
    x_train = (x_train / 255.0).astype("float32")
    x_test = (x_test / 255.0).astype("float32")
    units, epochs, batch_size = args.units, args.epochs, args.batch_size
    if args.train_samples:
        x_train, y_train = x_train[:args.train_samples], y_train[:args.train_samples]
    if args.quick:
        x_train, y_train = x_train[:2000], y_train[:2000]
        x_test, y_test = x_test[:500], y_test[:500]
        units, epochs, batch_size = 32, 2, 32
    name = f"mnist_lstm_{units}"

    model = build_model(units, args.learning_rate)
    model.summary()
    stopwatch = Stopwatch()
    history = model.fit(x_train, y_train, epochs=epochs, batch_size=batch_size,
                        callbacks=[stopwatch], verbose=2)
    test_loss, test_accuracy = model.evaluate(x_test, y_test, batch_size=256, verbose=0)

    print(f"\n{units} units: test accuracy {test_accuracy:.4f}, test loss {test_loss:.4f}"
          + ("" if args.quick else f" (target: at least {TARGET_ACCURACY})"))
    print(f"time per epoch {np.mean(stopwatch.seconds_per_epoch):.1f} s "
          f"({np.mean(stopwatch.cpu_seconds_per_epoch):.1f} s CPU; "
          f"{len(x_train)} images, batch size {batch_size})")

    write_results(args.out, name, {
        "quick": args.quick,
        "model": f"LSTM({units}, relu, return_sequences) -> Dropout(0.2) -> LSTM({units}, relu) "
                 "-> Dropout(0.2) -> Dense(10)",
        "units": units,
        "parameters": model.count_params(),
        "optimizer": f"Adam(learning_rate={args.learning_rate}, clipnorm=1.0)",
        "epochs": epochs,
        "batch_size": batch_size,
        "train_samples": len(x_train),
        "test_samples": len(x_test),
        "first_batch_loss": stopwatch.first_batch_loss,
        "history": history.history,
        "seconds_per_epoch": stopwatch.seconds_per_epoch,
        "cpu_seconds_per_epoch": stopwatch.cpu_seconds_per_epoch,
        "test_loss": test_loss,
        "test_accuracy": test_accuracy,
        "target_accuracy": TARGET_ACCURACY,
        "reached_target": None if args.quick else bool(test_accuracy >= TARGET_ACCURACY),
    })


if __name__ == "__main__":
    main()
