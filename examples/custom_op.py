"""Write your own differentiable op, check it, and train a model with it.

What it teaches: how every op in deepbreadth is made. An op is a `Function`
with two static methods side by side:

- forward(ctx, *arrays): computes the output from plain NumPy arrays, and
  saves what the backward pass will need (`ctx.save_for_backward`);
- backward(ctx, grad): given the gradient of the loss with respect to the
  output, returns the gradient with respect to each input (chain rule:
  grad times the local derivative).

The op here is Swish with a learnable slope (Ramachandran et al. 2017):

    swish(x, beta) = x * sigmoid(beta * x)

    d swish / d x    = s + beta * x * s * (1 - s)        where s = sigmoid(beta * x)
    d swish / d beta = x * x * s * (1 - s)

A derivative worked out by hand is easy to get wrong, so we check it
against finite differences with `deepbreadth.gradcheck` -- and show what
the check reports for a backward with a term missing. Because this
backward is written with Tensor operations (not raw NumPy), it can itself
be differentiated, which `gradgradcheck` verifies (second derivatives).

Finally a Keras layer wraps the op, with beta as one trainable weight per
unit, and a model using it is trained with `fit`.

    python examples/custom_op.py            # checks, then 5 epochs on MNIST
    python examples/custom_op.py --quick    # checks, then one short epoch

Results go to examples/results/custom_op.json (or --out DIR).
"""
import argparse
import os

import numpy as np

import deepbreadth as tf
from _results import Stopwatch, write_results


# ----------------------------------------------------------------------------
# The op
# ----------------------------------------------------------------------------
class Swish(tf.Function):
    @staticmethod
    def forward(ctx, x, beta):
        # sigmoid(z) = (1 + tanh(z / 2)) / 2: the same function, but tanh
        # never overflows, whereas 1 / (1 + exp(-z)) overflows in exp for z
        # very negative.
        s = 0.5 * (1 + np.tanh(0.5 * beta * x))
        # Save the inputs: in backward they come back as Tensors still linked
        # to the graph, which is what makes the backward differentiable again.
        ctx.save_for_backward(x, beta)
        return x * s

    @staticmethod
    def backward(ctx, grad):
        x, beta = ctx.saved_tensors
        s = tf.sigmoid(beta * x)       # Tensor ops from here on, not NumPy
        slope = s * (1 - s)            # sigmoid's derivative
        grad_x = grad * (s + beta * x * slope)
        grad_beta = grad * x * x * slope
        # beta has one value per unit but was broadcast over the batch: its
        # gradient has the batch's shape. The engine sums it back down to
        # beta's shape, once, for every op, so backward need not.
        return grad_x, grad_beta


def swish(x, beta):
    """The op as a function, as deepbreadth's own ops are: swish(x, beta) -> Tensor."""
    return Swish.apply(x, beta)


class SwishMissingTerm(Swish):
    """The same forward, with a typical slip in the hand derivation: d/dx
    forgets the product rule's second term (x times the derivative of s)."""

    @staticmethod
    def backward(ctx, grad):
        x, beta = ctx.saved_tensors
        s = tf.sigmoid(beta * x)
        return grad * s, grad * x * x * s * (1 - s)


# ----------------------------------------------------------------------------
# Checking it
# ----------------------------------------------------------------------------
def check_gradients():
    """Compare the analytic gradients with finite differences; return a report."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 5)) * 3   # a spread of values, both signs
    beta = rng.uniform(0.5, 2.0, size=5)  # one slope per unit, broadcast over rows

    # gradcheck runs in float64: (f(x + eps) - f(x - eps)) / 2eps is then
    # accurate to ~1e-10, far below any real mistake.
    tf.gradcheck(swish, [x, beta])
    print("gradcheck: first derivatives match finite differences")
    tf.gradgradcheck(swish, [x, beta])
    print("gradgradcheck: second derivatives match too (backward is differentiable)")

    try:
        tf.gradcheck(SwishMissingTerm.apply, [x, beta])
        caught = None
    except tf.GradcheckError as error:
        caught = str(error)
        print(f"gradcheck on the slipped backward fails, as it should:\n  {caught}")
    if caught is None:
        raise AssertionError("gradcheck did not notice the missing term")
    return {"gradcheck": True, "gradgradcheck": True, "wrong_backward_caught": caught}


# ----------------------------------------------------------------------------
# Using it: a Keras layer, and a model
# ----------------------------------------------------------------------------
class SwishLayer(tf.keras.layers.Layer):
    """x * sigmoid(beta * x), with one trainable beta per unit (starting at 1)."""

    def build(self, input_shape):
        # Weights are made here, when the input's size is first known.
        self.beta = self.add_weight("beta", (input_shape[-1],), initializer="ones")

    def call(self, inputs):
        return swish(inputs, self.beta)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="checks, then one epoch on 2,000 images (a smoke test, seconds)")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results"),
                        help="directory for the results JSON")
    args = parser.parse_args()
    tf.keras.utils.set_random_seed(args.seed)

    checks = check_gradients()

    (x_train, y_train), (x_test, y_test) = tf.keras.datasets.mnist.load_data()
    x_train, x_test = x_train / 255.0, x_test / 255.0
    epochs = args.epochs
    if args.quick:
        x_train, y_train = x_train[:2000], y_train[:2000]
        x_test, y_test = x_test[:1000], y_test[:1000]
        epochs = 1

    model = tf.keras.Sequential([
        tf.keras.layers.Flatten(input_shape=(28, 28)),
        tf.keras.layers.Dense(128),     # no activation here: the next layer is it
        SwishLayer(),
        tf.keras.layers.Dense(10),
    ])
    model.compile(optimizer="adam",
                  loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    model.summary()
    stopwatch = Stopwatch()
    history = model.fit(x_train, y_train, epochs=epochs, batch_size=args.batch_size,
                        callbacks=[stopwatch], verbose=2)
    test_loss, test_accuracy = model.evaluate(x_test, y_test, verbose=0)

    # The slopes moved away from 1: the network tuned its own activation.
    beta = model.layers[2].beta.numpy()
    print(f"\ntest accuracy {test_accuracy:.4f}, test loss {test_loss:.4f}")
    print(f"learned beta: mean {beta.mean():.3f}, min {beta.min():.3f}, max {beta.max():.3f} "
          "(all started at 1)")
    print(f"time per epoch {np.mean(stopwatch.seconds_per_epoch):.1f} s "
          f"({np.mean(stopwatch.cpu_seconds_per_epoch):.1f} s CPU)")

    write_results(args.out, "custom_op", {
        "quick": args.quick,
        "checks": checks,
        "model": "Flatten -> Dense(128) -> SwishLayer (x * sigmoid(beta * x)) -> Dense(10)",
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
        "beta": {"mean": float(beta.mean()), "min": float(beta.min()), "max": float(beta.max())},
    })


if __name__ == "__main__":
    main()
