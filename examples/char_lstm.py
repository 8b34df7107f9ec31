"""A character-level language model: an LSTM that writes like Shakespeare.

What it teaches:
- sequence-to-sequence training: the model reads 100 characters and, at
  EVERY position, predicts the next one (`return_sequences=True`), so one
  sequence gives 100 training examples. The loss is the softmax
  cross-entropy of each position's logits, averaged over positions;
- how to read that loss as bits per character (bpc): the loss is in nats
  (natural log); divided by ln 2 it is the number of bits an ideal
  compressor using the model would spend per character;
- why baselines matter: a model that knows only how often each character
  occurs (unigram) needs about 4.5 bits; one that knows the previous
  character (bigram) about 3.3. Anything the LSTM gains below those is
  what it learned about words, spelling and verse;
- generation: feed a start text, turn the logits of the next character into
  probabilities, draw one, feed it back, repeat. Dividing the logits by a
  temperature below 1 sharpens the distribution (safer, more repetitive
  text); above 1 flattens it (more surprising, more misspelt).

    python examples/char_lstm.py            # 256 units, 15 epochs (about 15 min on 2 cores)
    python examples/char_lstm.py --quick    # a small slice of text, seconds

Results go to examples/results/char_lstm.json (or --out DIR).
"""
import argparse
import math
import os

import numpy as np

import deepbreadth as tf
from _results import Stopwatch, write_results
from deepbreadth.datasets import shakespeare


# ----------------------------------------------------------------------------
# Baselines: counting characters, no learning
# ----------------------------------------------------------------------------
def unigram_bits(train_ids, vocabulary_size):
    """The entropy of the training text's character frequencies, in bits.

    A model that predicts every character with its overall frequency, and
    nothing else, pays this many bits per character on its own training text.
    """
    counts = np.bincount(train_ids, minlength=vocabulary_size)
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log2(p)).sum())


def bigram_bits(train_ids, validation_ids, vocabulary_size):
    """Bits per validation character of a model that knows only the previous character.

    P(next | previous) is counted on the training text; one is added to
    every count (Laplace smoothing) so that a pair never seen in training
    gets a small probability instead of zero (which would cost infinite bits).
    """
    counts = np.ones((vocabulary_size, vocabulary_size))
    np.add.at(counts, (train_ids[:-1], train_ids[1:]), 1)
    p_next = counts / counts.sum(axis=1, keepdims=True)
    return float(-np.log2(p_next[validation_ids[:-1], validation_ids[1:]]).mean())


# ----------------------------------------------------------------------------
# Data and model
# ----------------------------------------------------------------------------
def as_sequences(ids, length):
    """Cut the text into pieces of length+1: inputs are the first `length`
    characters of each piece, targets the same piece shifted by one."""
    pieces = len(ids) // (length + 1)
    chunks = ids[: pieces * (length + 1)].reshape(pieces, length + 1)
    return chunks[:, :-1], chunks[:, 1:]


def build_model(vocabulary_size, units, embedding_size, learning_rate):
    layers = tf.keras.layers
    model = tf.keras.Sequential([
        # Each character id becomes a learned vector: cheaper than a one-hot
        # vector of 76 zeros and a one, and similar characters can end up close.
        layers.Embedding(vocabulary_size, embedding_size),
        layers.LSTM(units, return_sequences=True),      # (batch, time, units)
        layers.Dense(vocabulary_size),                  # (batch, time, 76) logits
    ])
    model.compile(
        # Clipping: over 100 steps an LSTM's gradient can spike now and then;
        # clipnorm caps each step instead of letting one batch undo the others.
        optimizer=tf.keras.optimizers.Adam(learning_rate=learning_rate, clipnorm=1.0),
        # Labels (batch, time) and logits (batch, time, 76): one loss per
        # position, averaged. No reshaping needed.
        loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return model


# ----------------------------------------------------------------------------
# Generation
# ----------------------------------------------------------------------------
def sample_text(model, vocabulary, start, length, temperature, rng):
    """`length` characters written by the model after the text `start`.

    The training model sees whole sequences and forgets its state between
    them. To write, we call the same trained layers one character at a time
    and carry the LSTM's state (h, c) from each call to the next: a copy of
    the LSTM with return_state=True, holding the trained weights.
    """
    embedding, lstm, dense = model.layers
    stepper = tf.keras.layers.LSTM(lstm.units, return_sequences=True, return_state=True)
    stepper.build((1, 1, embedding.output_dim))
    stepper.set_weights(lstm.get_weights())

    written = []
    with tf.no_grad():  # no training here: record no graph
        # Read the start text in one call: its final state holds the context.
        ids = vocabulary.encode(start)[np.newaxis]
        outputs, h, c = stepper(embedding(ids))
        for _ in range(length):
            logits = dense(outputs[:, -1]).numpy()[0].astype(np.float64)
            # softmax(logits / T), computed stably (subtract the max first).
            scaled = logits / temperature
            probabilities = np.exp(scaled - scaled.max())
            probabilities /= probabilities.sum()
            next_id = rng.choice(len(probabilities), p=probabilities)
            written.append(next_id)
            outputs, h, c = stepper(embedding(np.array([[next_id]])), initial_state=[h, c])
    return start + vocabulary.decode(written)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="20,000 characters, a small model, two epochs (a smoke test, seconds)")
    parser.add_argument("--units", type=int, default=256)
    parser.add_argument("--embedding-size", type=int, default=64)
    parser.add_argument("--sequence-length", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument("--sample-length", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results"),
                        help="directory for the results JSON")
    args = parser.parse_args()
    tf.keras.utils.set_random_seed(args.seed)

    train_ids, validation_ids, vocabulary = shakespeare.load_data(as_ids=True)
    units, length, epochs = args.units, args.sequence_length, args.epochs
    batch_size, sample_length = args.batch_size, args.sample_length
    if args.quick:
        train_ids, validation_ids = train_ids[:20_000], validation_ids[:5_000]
        units, length, epochs, batch_size, sample_length = 64, 50, 2, 16, 100
    print(f"{len(train_ids):,} training and {len(validation_ids):,} validation characters, "
          f"{len(vocabulary)} distinct")

    # The baselines are measured in bits; the bigram one on the validation text.
    unigram = unigram_bits(train_ids, len(vocabulary))
    bigram = bigram_bits(train_ids, validation_ids, len(vocabulary))
    print(f"baselines: unigram {unigram:.3f} bits/char (training entropy), "
          f"bigram {bigram:.3f} bits/char (validation)")

    x_train, y_train = as_sequences(train_ids, length)
    x_validation, y_validation = as_sequences(validation_ids, length)
    model = build_model(len(vocabulary), units, args.embedding_size, args.learning_rate)
    model.build((None, length))
    model.summary()

    # Its first batch loss is about ln(76) = 4.33 nats: 76 characters guessed evenly.
    stopwatch = Stopwatch()
    history = model.fit(x_train, y_train, epochs=epochs, batch_size=batch_size,
                        validation_data=(x_validation, y_validation),
                        callbacks=[stopwatch], verbose=2)
    # Losses are mean nats per character; bits = nats / ln 2.
    bits = {name: [value / math.log(2) for value in values]
            for name, values in history.history.items()}
    validation_bpc = bits["val_loss"][-1]
    print(f"\nvalidation: {validation_bpc:.3f} bits per character "
          f"(unigram {unigram:.3f}, bigram {bigram:.3f})")
    print(f"time per epoch {np.mean(stopwatch.seconds_per_epoch):.1f} s "
          f"({np.mean(stopwatch.cpu_seconds_per_epoch):.1f} s CPU; "
          f"training and validation, {len(x_train)} sequences of {length}, "
          f"batch size {batch_size})")

    rng = np.random.default_rng(args.seed)
    samples = {}
    for temperature in (0.5, 1.0):
        text = sample_text(model, vocabulary, "ROMEO:\n", sample_length, temperature, rng)
        samples[str(temperature)] = text
        print(f"\n--- temperature {temperature} ---\n{text}")

    write_results(args.out, "char_lstm", {
        "quick": args.quick,
        "model": f"Embedding({len(vocabulary)}, {args.embedding_size}) -> "
                 f"LSTM({units}, return_sequences) -> Dense({len(vocabulary)})",
        "parameters": model.count_params(),
        "optimizer": f"Adam(learning_rate={args.learning_rate}, clipnorm=1.0)",
        "epochs": epochs,
        "batch_size": batch_size,
        "sequence_length": length,
        "train_characters": len(train_ids),
        "validation_characters": len(validation_ids),
        "first_batch_loss": stopwatch.first_batch_loss,
        "history": history.history,
        "history_bits_per_character": bits,
        "seconds_per_epoch": stopwatch.seconds_per_epoch,
        "cpu_seconds_per_epoch": stopwatch.cpu_seconds_per_epoch,
        "validation_bits_per_character": validation_bpc,
        "unigram_bits_per_character": unigram,
        "bigram_bits_per_character": bigram,
        "samples": samples,
    })


if __name__ == "__main__":
    main()
