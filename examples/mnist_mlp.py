"""MNIST with a multilayer perceptron: the first model of most Keras tutorials.

What it teaches: the whole Keras workflow in deepbreadth, unchanged -- load
the data, scale it, stack layers in a Sequential model, compile with an
optimizer, a loss and a metric, fit, evaluate -- plus how a callback looks
inside `fit` (here it times each epoch).

The model reads each 28x28 image as 784 numbers (Flatten), mixes them in one
hidden layer of 128 ReLU units (its breadth), drops 20% of those units at
random while training (Dropout, so no unit can be relied on alone), and
outputs 10 scores, one per digit. The scores are logits (no softmax): the
loss applies the softmax itself, which is more accurate numerically.

    python examples/mnist_mlp.py            # 10 epochs, about 97.5-98% test accuracy
    python examples/mnist_mlp.py --quick    # a small slice, one epoch, seconds

Results go to examples/results/mnist_mlp.json (or --out DIR).
"""
import argparse
import os
import time

import numpy as np

import deepbreadth as tf
from _results import write_results

TARGET_ACCURACY = 0.975


class Stopwatch(tf.keras.callbacks.Callback):
    """Times every epoch, and keeps the loss of the very first batch.

    `fit` calls these methods at fixed moments; a callback is how you look
    inside the training loop without rewriting it. The first batch's loss is
    the untrained model's: about ln(10) = 2.3 for 10 classes guessed evenly.
    """

    def on_train_begin(self, logs=None):
        self.seconds_per_epoch = []
        self.cpu_seconds_per_epoch = []
        self.first_batch_loss = None

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()
        self.cpu_started = time.process_time()

    def on_train_batch_end(self, batch, logs=None):
        if self.first_batch_loss is None:
            self.first_batch_loss = logs["loss"]

    def on_epoch_end(self, epoch, logs=None):
        self.seconds_per_epoch.append(time.perf_counter() - self.started)
        # CPU time too: on a shared machine the wall clock also counts the
        # time spent waiting for a free core; the CPU time does not.
        self.cpu_seconds_per_epoch.append(time.process_time() - self.cpu_started)


def build_model():
    # The seed model, layer for layer, as the Keras beginner tutorial writes it.
    model = tf.keras.models.Sequential([
        tf.keras.layers.Flatten(input_shape=(28, 28)),
        tf.keras.layers.Dense(128, activation="relu"),
        tf.keras.layers.Dropout(0.2),
        tf.keras.layers.Dense(10),
    ])
    model.compile(
        optimizer="adam",
        # from_logits=True: the last layer outputs raw scores, not probabilities.
        loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="train on 2,000 images for one epoch (a smoke test, seconds)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=32)  # Keras's default
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results"),
                        help="directory for the results JSON")
    args = parser.parse_args()

    # One seed for weights, dropout masks and shuffling: reruns give the same numbers.
    tf.keras.utils.set_random_seed(args.seed)

    (x_train, y_train), (x_test, y_test) = tf.keras.datasets.mnist.load_data()
    # Pixels 0-255 become 0-1: inputs of order 1 keep the first layer's
    # outputs, and so the gradients, of a sensible size.
    x_train, x_test = x_train / 255.0, x_test / 255.0
    epochs = args.epochs
    if args.quick:
        x_train, y_train = x_train[:2000], y_train[:2000]
        x_test, y_test = x_test[:1000], y_test[:1000]
        epochs = 1

    model = build_model()
    model.summary()
    stopwatch = Stopwatch()
    history = model.fit(x_train, y_train, epochs=epochs, batch_size=args.batch_size,
                        callbacks=[stopwatch], verbose=2)
    test_loss, test_accuracy = model.evaluate(x_test, y_test, verbose=0)

    print(f"\ntest accuracy {test_accuracy:.4f}, test loss {test_loss:.4f}"
          + ("" if args.quick else f" (target: at least {TARGET_ACCURACY})"))
    print(f"time per epoch {np.mean(stopwatch.seconds_per_epoch):.1f} s "
          f"({np.mean(stopwatch.cpu_seconds_per_epoch):.1f} s CPU; "
          f"{len(x_train)} images, batch size {args.batch_size})")

    # predict gives logits; softmax turns them into probabilities for a reader.
    probabilities = tf.softmax(tf.tensor(model.predict(x_test[:1])), axis=-1).numpy()[0]
    print(f"first test image: label {y_test[0]}, predicted {probabilities.argmax()} "
          f"with probability {probabilities.max():.3f}")

    write_results(args.out, "mnist_mlp", {
        "quick": args.quick,
        "model": "Flatten -> Dense(128, relu) -> Dropout(0.2) -> Dense(10)",
        "parameters": model.count_params(),
        "epochs": epochs,
        "batch_size": args.batch_size,
        "train_samples": len(x_train),
        "test_samples": len(x_test),
        "first_batch_loss": stopwatch.first_batch_loss,
        "history": history.history,
        "seconds_per_epoch": stopwatch.seconds_per_epoch,
        "cpu_seconds_per_epoch": stopwatch.cpu_seconds_per_epoch,
        "test_loss": test_loss,
        "test_accuracy": test_accuracy,
        "target_accuracy": TARGET_ACCURACY,
        # A quick run is a smoke test: the target is for the full run only.
        "reached_target": None if args.quick else bool(test_accuracy >= TARGET_ACCURACY),
    })


if __name__ == "__main__":
    main()
