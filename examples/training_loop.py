"""Training without `fit`: the loop that `model.fit` runs for you, written out.

What it teaches: there is no magic inside `fit`. A network is a few weight
Tensors marked `requires_grad=True`; training repeats five steps:

    1. take a batch of examples            (DataLoader)
    2. forward: compute the outputs         (Tensor operations, recorded as a graph)
    3. the loss: one number, how wrong      (softmax cross-entropy)
    4. backward: d loss / d each weight     (loss.backward() fills weight.grad)
    5. update the weights, clear the grads  (optimizer.step, optimizer.zero_grad)

The model is the MLP of mnist_mlp.py (784 -> 128 ReLU -> 10), but with its
weights made by hand instead of by Dense layers. Evaluation runs under
`no_grad()`: nothing will be differentiated, so no graph is recorded.

What `fit` adds on top of this loop: turning arrays into Tensors of the right
dtype and device, metrics, validation, callbacks, the progress bar, a clear
error when the loss becomes NaN, and BLAS held to one thread (see below).

    python examples/training_loop.py            # 5 epochs on MNIST, about 97.5%
    python examples/training_loop.py --quick    # one epoch on 2,000 images, seconds

Results go to examples/results/training_loop.json (or --out DIR).
"""
import argparse
import os
import time

import numpy as np

import deepbreadth as tf
from _results import write_results
import deepbreadth.functional as F
from deepbreadth.datasets import DataLoader


def glorot_uniform(fan_in, fan_out, rng):
    """Keras's default initializer: uniform in +-sqrt(6 / (fan_in + fan_out)).

    Weights of that size keep the variance of the signal about the same from
    layer to layer, forwards and backwards, so training starts neither
    saturated nor silent.
    """
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=(fan_in, fan_out))


def forward(weights, x):
    """The network: logits = relu(x @ W1 + b1) @ W2 + b2."""
    w1, b1, w2, b2 = weights
    hidden = F.relu(x @ w1 + b1)
    return hidden @ w2 + b2


def train(weights, optimizer, loader, epochs):
    """The loop itself. Returns the history, the times and the first batch's loss."""
    history = {"loss": [], "accuracy": []}
    seconds_per_epoch, cpu_seconds_per_epoch, first_batch_loss = [], [], None
    for epoch in range(epochs):
        started, cpu_started = time.perf_counter(), time.process_time()
        loss_sum, correct, seen = 0.0, 0, 0
        for x_batch, y_batch in loader:                        # 1. a batch
            logits = forward(weights, tf.tensor(x_batch))      # 2. forward
            loss = F.softmax_cross_entropy(logits, y_batch).mean()  # 3. the loss
            loss.backward()                                     # 4. gradients into .grad
            optimizer.step(weights)                             # 5. update ...
            optimizer.zero_grad(weights)                        #    ... and clear, or the
                                                                #    next backward would add to them
            # Bookkeeping: the epoch's mean loss and accuracy, weighted by batch size.
            loss_value = loss.item()
            if first_batch_loss is None:
                first_batch_loss = loss_value
            loss_sum += loss_value * len(y_batch)
            correct += int((logits.numpy().argmax(axis=1) == y_batch).sum())
            seen += len(y_batch)
        seconds_per_epoch.append(time.perf_counter() - started)
        cpu_seconds_per_epoch.append(time.process_time() - cpu_started)
        history["loss"].append(loss_sum / seen)
        history["accuracy"].append(correct / seen)
        print(f"epoch {epoch + 1}/{epochs}: loss {loss_sum / seen:.4f}, "
              f"accuracy {correct / seen:.4f}, {seconds_per_epoch[-1]:.1f} s "
              f"({cpu_seconds_per_epoch[-1]:.1f} s CPU)")
    return history, seconds_per_epoch, cpu_seconds_per_epoch, first_batch_loss


def evaluate(weights, images, labels, batch_size=1000):
    """Mean loss and accuracy, without recording a graph."""
    total_loss, correct = 0.0, 0
    with tf.no_grad():
        for x_batch, y_batch in DataLoader(images, labels, batch_size=batch_size, shuffle=False):
            logits = forward(weights, tf.tensor(x_batch))
            total_loss += F.softmax_cross_entropy(logits, y_batch).sum().item()
            correct += int((logits.numpy().argmax(axis=1) == y_batch).sum())
    return total_loss / len(labels), correct / len(labels)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="one epoch on 2,000 images (a smoke test, seconds)")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results"),
                        help="directory for the results JSON")
    args = parser.parse_args()

    (x_train, y_train), (x_test, y_test) = tf.datasets.mnist.load_data()
    # Flatten here, once, instead of in every forward; scale pixels to [0, 1];
    # float32 is what the weights hold, so no batch needs converting later.
    x_train = (x_train.reshape(-1, 784) / 255.0).astype(np.float32)
    x_test = (x_test.reshape(-1, 784) / 255.0).astype(np.float32)
    labels_train, labels_test = y_train.astype(np.int64), y_test.astype(np.int64)
    epochs = args.epochs
    if args.quick:
        x_train, labels_train = x_train[:2000], labels_train[:2000]
        x_test, labels_test = x_test[:1000], labels_test[:1000]
        epochs = 1

    # The weights: plain Tensors that ask for gradients. Biases start at zero.
    rng = np.random.default_rng(args.seed)
    weights = [
        tf.tensor(glorot_uniform(784, 128, rng), requires_grad=True),   # W1
        tf.zeros(128, requires_grad=True),                               # b1
        tf.tensor(glorot_uniform(128, 10, rng), requires_grad=True),    # W2
        tf.zeros(10, requires_grad=True),                                # b2
    ]
    print(f"{sum(w.size for w in weights):,} weights")
    optimizer = tf.optimizers.Adam(learning_rate=args.learning_rate)
    # A new random order every epoch (shuffle), the same orders every run (seed).
    loader = DataLoader(x_train, labels_train, batch_size=args.batch_size, shuffle=True,
                        seed=args.seed)

    # fit does one more thing, for speed on the CPU: it keeps NumPy's BLAS on
    # one thread while it trains (tf.kernel_threads() is that setting). A step
    # is a chain of small matrix products, and between them BLAS's idle
    # threads spin, taking the cores from the work that comes next. On the
    # 2-core development machine an epoch of this loop took 1.0 s this way,
    # and 58 s with BLAS's default two threads.
    with tf.kernel_threads():
        history, seconds_per_epoch, cpu_seconds_per_epoch, first_batch_loss = train(
            weights, optimizer, loader, epochs)
        test_loss, test_accuracy = evaluate(weights, x_test, labels_test)
    print(f"\ntest accuracy {test_accuracy:.4f}, test loss {test_loss:.4f} "
          f"(first batch loss {first_batch_loss:.3f}; ln 10 = 2.303 is a uniform guess)")

    write_results(args.out, "training_loop", {
        "quick": args.quick,
        "model": "hand-made weights: relu(x @ W1 + b1) @ W2 + b2, 784 -> 128 -> 10",
        "parameters": int(sum(w.size for w in weights)),
        "optimizer": f"Adam(learning_rate={args.learning_rate})",
        "epochs": epochs,
        "batch_size": args.batch_size,
        "train_samples": len(x_train),
        "test_samples": len(x_test),
        "first_batch_loss": first_batch_loss,
        "history": history,
        "seconds_per_epoch": seconds_per_epoch,
        "cpu_seconds_per_epoch": cpu_seconds_per_epoch,
        "test_loss": test_loss,
        "test_accuracy": test_accuracy,
    })


if __name__ == "__main__":
    main()
