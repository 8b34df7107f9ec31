"""MNIST with a small convolutional network: depth that knows about images.

What it teaches: why convolutions beat a plain MLP on pictures. A Dense layer
gives every pixel its own weight, so a stroke learned in one corner must be
learned again in every other. A Conv2D layer slides one small 3x3 filter over
the whole image: the same few weights find the same stroke anywhere. Max
pooling then keeps the strongest answer in each 2x2 window, halving the
image, so the next convolution sees a wider area with the same 3x3 filter.
Depth here means going from strokes (first conv) to parts of digits (second)
to the digit (Dense).

Images need a channel axis: Keras (and deepbreadth) use channels last,
(batch, height, width, channels), so grey MNIST images become (n, 28, 28, 1).

Under the hood each Conv2D -> MaxPooling2D pair runs as one op (the model
sees that the pool alone reads the convolution's output): the convolution's
full-size output, the largest array here, is pooled piece by piece while it
is in the CPU's cache and never stored whole (docs/ARCHITECTURE.md).

    python examples/mnist_cnn.py            # 12 epochs, about 99% test accuracy
    python examples/mnist_cnn.py --quick    # a small slice, one epoch, seconds

Results go to examples/results/mnist_cnn.json (or --out DIR).
"""
import argparse
import os

import numpy as np

import deepbreadth as tf
from _results import Stopwatch, write_results

TARGET_ACCURACY = 0.99


def build_model():
    layers = tf.keras.layers
    model = tf.keras.Sequential([
        # 32 filters of 3x3 over the one grey channel: (28, 28, 1) -> (26, 26, 32).
        layers.Conv2D(32, 3, activation="relu", input_shape=(28, 28, 1)),
        layers.MaxPooling2D(2),                       # -> (13, 13, 32)
        # 64 filters, each looking at all 32 maps of the layer before: -> (11, 11, 64).
        layers.Conv2D(64, 3, activation="relu"),
        layers.MaxPooling2D(2),                       # -> (5, 5, 64)
        layers.Flatten(),                             # -> 1600 features
        # Half the features dropped while training: the Dense layer holds most
        # of the weights (16,010 of them), and so overfits first.
        layers.Dropout(0.5),
        layers.Dense(10),
    ])
    model.compile(optimizer="adam",
                  loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    return model


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="train on 1,000 images for one epoch (a smoke test, seconds)")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results"),
                        help="directory for the results JSON")
    args = parser.parse_args()
    tf.keras.utils.set_random_seed(args.seed)

    (x_train, y_train), (x_test, y_test) = tf.keras.datasets.mnist.load_data()
    # Scale to [0, 1] and add the channel axis (float32: the model's dtype, so
    # fit need not convert each batch).
    x_train = (x_train / 255.0).astype("float32")[..., np.newaxis]
    x_test = (x_test / 255.0).astype("float32")[..., np.newaxis]
    epochs, batch_size = args.epochs, args.batch_size
    if args.quick:
        x_train, y_train = x_train[:1000], y_train[:1000]
        x_test, y_test = x_test[:500], y_test[:500]
        epochs, batch_size = 1, 32  # small batches: more updates from few images

    model = build_model()
    model.summary()
    stopwatch = Stopwatch()
    history = model.fit(x_train, y_train, epochs=epochs, batch_size=batch_size,
                        callbacks=[stopwatch], verbose=2)
    test_loss, test_accuracy = model.evaluate(x_test, y_test, batch_size=256, verbose=0)

    print(f"\ntest accuracy {test_accuracy:.4f}, test loss {test_loss:.4f}"
          + ("" if args.quick else f" (target: at least {TARGET_ACCURACY})"))
    print(f"time per epoch {np.mean(stopwatch.seconds_per_epoch):.1f} s "
          f"({np.mean(stopwatch.cpu_seconds_per_epoch):.1f} s CPU; "
          f"{len(x_train)} images, batch size {batch_size})")

    write_results(args.out, "mnist_cnn", {
        "quick": args.quick,
        "model": "Conv2D(32,3,relu) -> MaxPool(2) -> Conv2D(64,3,relu) -> MaxPool(2) -> "
                 "Flatten -> Dropout(0.5) -> Dense(10)",
        "parameters": model.count_params(),
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
