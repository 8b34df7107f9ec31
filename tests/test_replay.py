"""Recorded training steps (deepbreadth/replay.py): a replayed step computes
what the eager step computes, and a step that cannot be replayed runs eagerly.

Each model is built twice from one seed, one with run_eagerly=True; trained
on the same batches, the two must end with the same weights, to the bit: the
replay calls the same ops on the same arrays.  Dropout in a model checks that
a replay draws new masks (one frozen mask would part the two at step 2).
"""
import numpy as np
import pytest

import deepbreadth as db
from deepbreadth import keras, replay
from deepbreadth.layers import Dense

layers = keras.layers


def mlp():
    return keras.models.Sequential([
        layers.Flatten(input_shape=(6, 5)), layers.Dense(12, activation="relu"),
        layers.Dropout(0.3), layers.Dense(4)])


def cnn():
    return keras.models.Sequential([
        layers.Conv2D(3, 3, activation="relu", input_shape=(8, 8, 1)), layers.MaxPooling2D(2),
        layers.Conv2D(4, 2, padding="same"),
        layers.GlobalAveragePooling2D(), layers.Dropout(0.5), layers.Dense(4)])


def two_input_model():
    a, b = keras.Input(shape=(5,)), keras.Input(shape=(5,))
    merged = layers.Add()([layers.Dense(6, activation="relu")(a), layers.Dense(6)(b)])
    return keras.Model([a, b], layers.Dense(4, activation="softmax")(merged))


def built(make, run_eagerly, loss=None, seed=0):
    db.set_seed(seed)
    model = make()
    model.compile(optimizer="adam", run_eagerly=run_eagerly, metrics=["accuracy"],
                  loss=loss or keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def batches(x_shape, count=3, classes=4, two_inputs=False, seed=1):
    rng = np.random.default_rng(seed)
    xs = [rng.normal(size=x_shape).astype("float32") for _ in range(count)]
    if two_inputs:
        xs = [[x, 2 * x] for x in xs]
    ys = [rng.integers(0, classes, x_shape[0]) for _ in range(count)]
    return xs, ys


def train(model, xs, ys, steps=6):
    return [model.train_on_batch(xs[i % len(xs)], ys[i % len(ys)]) for i in range(steps)]


def assert_same_training(make, x_shape, loss=None, two_inputs=False):
    xs, ys = batches(x_shape, two_inputs=two_inputs)
    # Each model is trained right after it is built: both draw the same
    # dropout seeds from the package generator, which set_seed restarts.
    eager = built(make, True, loss)
    eager_results = train(eager, xs, ys)
    replayed = built(make, False, loss)
    assert train(replayed, xs, ys) == eager_results
    for a, b in zip(eager.get_weights(), replayed.get_weights()):
        np.testing.assert_array_equal(a, b)
    return replayed


def recordings(model):
    return list(model._recorded_steps.values())


@pytest.mark.parametrize("make, x_shape, two_inputs", [
    (mlp, (7, 6, 5), False),
    (cnn, (5, 8, 8, 1), False),
    (two_input_model, (6, 5), True),
], ids=["mlp-dropout", "cnn-fused-conv-pool", "functional-two-inputs"])
def test_a_replayed_step_trains_exactly_as_the_eager_step(backend_name, make, x_shape, two_inputs):
    model = assert_same_training(make, x_shape, two_inputs=two_inputs)
    (recording,) = recordings(model)
    assert isinstance(recording, replay.RecordedStep)
    assert recording.ops  # the ops were recorded, then replayed five times


def test_fit_replays_and_matches_eager_fit():
    x, y = batches((20, 6, 5), count=1)
    results = []
    for run_eagerly in (True, False):
        model = built(mlp, run_eagerly)
        history = model.fit(x[0], y[0], batch_size=8, epochs=2, verbose=0, shuffle=False)
        results.append((history.history["loss"], model.get_weights()))
    assert results[0][0] == results[1][0]
    for a, b in zip(results[0][1], results[1][1]):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("label_dtype", ["uint8", "int32"])
def test_labels_of_any_integer_dtype_replay(label_dtype):
    xs, ys = batches((7, 6, 5))
    ys = [y.astype(label_dtype) for y in ys]  # MNIST's labels are uint8
    eager_results = train(built(mlp, True), xs, ys)
    model = built(mlp, False)
    assert train(model, xs, ys) == eager_results
    assert isinstance(recordings(model)[0], replay.RecordedStep)


def stacked(recurrent_layer):
    """W4's shape, small: two recurrent layers with a Dropout between them."""
    def make():
        return keras.models.Sequential([
            recurrent_layer(5, return_sequences=True, input_shape=(4, 3)), layers.Dropout(0.3),
            recurrent_layer(6), layers.Dense(4)])
    return make


@pytest.mark.parametrize("recurrent_layer", [layers.SimpleRNN, layers.LSTM, layers.GRU],
                         ids=["simple-rnn", "lstm", "gru"])
def test_recurrent_models_replay_exactly(backend_name, recurrent_layer):
    model = assert_same_training(stacked(recurrent_layer), (6, 4, 3))
    (recording,) = recordings(model)
    assert recording is not None, "the zero initial states are an op: the step is recorded"
    assert [op.function.__name__ for op in recording.ops].count("ZeroState") == \
        2 * len(recurrent_layer(1).state_names)


def test_a_recurrent_layer_with_input_dropout_runs_eagerly():
    def make():
        return keras.models.Sequential([layers.LSTM(5, dropout=0.2, input_shape=(4, 3)),
                                        layers.Dense(4)])
    xs, ys = batches((6, 4, 3))
    eager_results = train(built(make, True), xs, ys, steps=3)
    model = built(make, False)
    assert train(model, xs, ys, steps=3) == eager_results
    assert recordings(model) == [None], "the mask is drawn outside the ops"


def test_zero_states_are_constants_whatever_their_input():
    from deepbreadth.functional.rnn import zero_state
    x = db.tensor(np.ones((3, 4, 2)), requires_grad=True)
    state = zero_state(x, 5)
    assert state.shape == (3, 5) and not state.numpy().any()
    assert not state.requires_grad and state.grad_fn is None


def test_a_recording_per_batch_shape():
    model = built(mlp, False)
    xs, ys = batches((7, 6, 5), count=1)
    short_xs, short_ys = batches((3, 6, 5), count=1)
    train(model, xs, ys, steps=3)
    train(model, short_xs, short_ys, steps=3)
    train(model, xs, ys, steps=2)
    assert len(recordings(model)) == 2
    assert all(isinstance(r, replay.RecordedStep) for r in recordings(model))


def test_mean_squared_error_and_one_hot_crossentropy_replay():
    def regression():
        return keras.models.Sequential([layers.Dense(5, activation="tanh", input_shape=(3,)),
                                        layers.Dense(2)])

    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(6, 3)).astype("float32"), rng.normal(size=(6, 2)).astype("float32")
    eager_results = train(built(regression, True, "mse"), [x], [y], 4)
    replayed = built(regression, False, "mse")
    assert train(replayed, [x], [y], 4) == eager_results
    assert isinstance(recordings(replayed)[0], replay.RecordedStep)

    one_hot = keras.losses.CategoricalCrossentropy(from_logits=True)
    xs, labels = batches((7, 6, 5))
    ys = [np.eye(4, dtype="float32")[label] for label in labels]
    eager_results = train(built(mlp, True, one_hot), xs, ys)
    replayed = built(mlp, False, one_hot)
    assert train(replayed, xs, ys) == eager_results
    assert isinstance(recordings(replayed)[0], replay.RecordedStep)


def test_run_eagerly_records_nothing():
    model = built(mlp, True)
    train(model, *batches((7, 6, 5)), steps=3)
    assert model._recorded_steps == {}
    assert model.run_eagerly is True


def test_setting_run_eagerly_after_recording_runs_eagerly():
    model = built(mlp, False)
    xs, ys = batches((7, 6, 5))
    train(model, xs, ys, steps=2)
    calls = []
    original = replay.RecordedStep.run

    def counting(self, *args):
        calls.append(1)
        return original(self, *args)

    replay.RecordedStep.run = counting
    try:
        train(model, xs, ys, steps=2)
        model.run_eagerly = True
        train(model, xs, ys, steps=2)
    finally:
        replay.RecordedStep.run = original
    assert len(calls) == 2


class ScaledDense(Dense):
    """A subclass: its class does not declare replays_exactly, so it runs eagerly."""


class ConstantAdder(keras.layers.Layer):
    """Claims to replay, but adds a tensor it makes on the fly: the recorder
    cannot trace that tensor, so the step is not replayed."""

    replays_exactly = True

    def call(self, inputs):
        return inputs + db.Tensor(np.ones(inputs.shape[-1], dtype=inputs.dtype))


@pytest.mark.parametrize("extra_layer, reason", [
    (lambda: ScaledDense(4), "replays_exactly"),
    (lambda: layers.BatchNormalization(), "replays_exactly"),
    (lambda: ConstantAdder(), "made outside the ops"),
], ids=["subclass", "batch-normalization", "untraced-constant"])
def test_a_step_that_cannot_be_replayed_runs_eagerly(extra_layer, reason):
    def make():
        model = mlp()
        model.add(extra_layer())
        return model

    xs, ys = batches((7, 6, 5))
    eager_results = train(built(make, True), xs, ys, steps=3)
    model = built(make, False)
    assert train(model, xs, ys, steps=3) == eager_results
    (recording,) = recordings(model)
    assert recording is None


def test_the_recorder_names_what_it_could_not_trace():
    model = built(lambda: keras.models.Sequential([layers.Dense(4, input_shape=(5,)),
                                                   ConstantAdder()]), False)
    x, y = batches((3, 5))
    inputs, targets = model._model_input([x[0]], "cpu"), model._targets([y[0]], "cpu")
    with replay.StepRecorder([inputs], [targets], model.weights) as recorder:
        outputs = model(inputs, training=True)
        loss = model.loss(targets, outputs)
    assert recorder.recording(outputs, loss, model.layers) is None
    assert "made outside the ops" in recorder.why_not and "(3, 4)" not in recorder.why_not


def test_a_hook_registered_after_recording_is_called():
    model = built(mlp, False)
    xs, ys = batches((7, 6, 5))
    train(model, xs, ys, steps=2)
    seen = []
    handle = model.layers[1].register_forward_hook(lambda layer, i, o: seen.append(o.shape))
    train(model, xs, ys, steps=2)
    handle.remove()
    assert seen == [(7, 12), (7, 12)]


def test_trace_sees_every_op_of_a_recorded_model():
    model = built(mlp, False)
    xs, ys = batches((7, 6, 5))
    train(model, xs, ys, steps=2)
    with db.trace() as trace:
        model.train_on_batch(xs[0], ys[0])
    names = [record.op for record in trace.phase("forward")]
    assert "Dropout" in names and names.count("DenseBiasActivation") == 2
    assert [record.layer for record in trace.phase("forward")][1] == model.layers[1].name


def test_freezing_a_layer_after_recording_takes_effect():
    model = built(mlp, False)
    xs, ys = batches((7, 6, 5))
    train(model, xs, ys, steps=2)
    model.layers[1].trainable = False
    frozen = [w.copy() for w in model.layers[1].get_weights()]
    train(model, xs, ys, steps=3)
    for before, after in zip(frozen, model.layers[1].get_weights()):
        np.testing.assert_array_equal(before, after)
    assert len([r for r in recordings(model) if r is not None]) == 2


def trained_before_and_after(change):
    """An eager and a replayed model: two steps, change(model), three more steps.
    Both must end with the same losses and weights, to the bit."""
    xs, ys = batches((7, 6, 5))
    models, results = [], []
    for run_eagerly in (True, False):
        model = built(mlp, run_eagerly)
        train(model, xs, ys, steps=2)
        change(model)
        results.append((train(model, xs, ys, steps=3), model.get_weights()))
        models.append(model)
    assert results[0][0] == results[1][0]
    for a, b in zip(results[0][1], results[1][1]):
        np.testing.assert_array_equal(a, b)
    return models


def test_a_weight_frozen_by_hand_after_recording_is_left_alone():
    # requires_grad set on the Tensor itself, not through the layer's trainable:
    # no new recording is made, and the recorded step must not run as it was.
    frozen = {}

    def freeze_first_kernel(model):
        model.layers[1].kernel.requires_grad = False
        frozen[id(model)] = model.layers[1].kernel.numpy().copy()

    for model in trained_before_and_after(freeze_first_kernel):
        np.testing.assert_array_equal(model.layers[1].kernel.numpy(), frozen[id(model)])


def test_a_layer_option_changed_after_recording_is_recorded_again():
    def change_options(model):
        model.layers[1].activation = keras.activations.get("tanh")
        model.layers[2].rate = 0.6

    trained_before_and_after(change_options)


def test_a_nan_loss_in_a_replayed_step_stops_with_the_weights_kept():
    model = built(mlp, False)
    xs, ys = batches((7, 6, 5))
    train(model, xs, ys, steps=2)
    before = model.get_weights()
    bad = xs[0].copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(db.models.NaNLossError):
        model.train_on_batch(bad, ys[0])
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert all(w.grad is None for w in model.trainable_weights)


def softmax_mlp():
    return keras.models.Sequential([layers.Dense(6, activation="relu", input_shape=(5,)),
                                    layers.Dense(4, activation="softmax")])


def test_a_softmax_model_with_a_probabilities_loss_replays():
    """Keras's usual pairing: softmax output, sparse_categorical_crossentropy
    (the one-hot is an op, so the recording traces the labels)."""
    xs, ys = batches((6, 5))
    ys = [y.astype("uint8") for y in ys]
    eager_results = train(built(softmax_mlp, True, "sparse_categorical_crossentropy"), xs, ys)
    model = built(softmax_mlp, False, "sparse_categorical_crossentropy")
    assert train(model, xs, ys) == eager_results
    (recording,) = recordings(model)
    assert isinstance(recording, replay.RecordedStep) and recording.check is not None


def uniform_output(input_shape):
    """A Dense layer whose outputs start as probability rows (all 0.25)."""
    return layers.Dense(4, input_shape=input_shape, kernel_initializer="zeros",
                        bias_initializer=keras.initializers.Constant(0.25))


def uniform_start():
    return keras.models.Sequential([uniform_output((5,))])


def recurrent_uniform_start():
    # The second LSTM's zero states are made from an input that wants a
    # gradient: linking the replayed ops for the eager finish must leave them out.
    return keras.models.Sequential([
        layers.LSTM(3, return_sequences=True, input_shape=(4, 5)), layers.LSTM(3),
        uniform_output(None)])


@pytest.mark.parametrize("make, x_shape", [
    (uniform_start, (6, 5)), (recurrent_uniform_start, (6, 4, 5)),
], ids=["dense", "stacked-lstm"])
def test_a_replayed_step_switches_to_logits_where_the_eager_step_would(make, x_shape):
    """Outputs that start as probability rows (all 0.25) and stop summing to 1
    after a few updates: the loss finds logits at the same step, with the same
    warning, replayed or not."""
    xs, ys = batches(x_shape)
    results = []
    for run_eagerly in (True, False):
        model = built(make, run_eagerly, "sparse_categorical_crossentropy")
        with pytest.warns(db.losses.LogitsWarning) as caught:
            losses = train(model, xs, ys, steps=8)
        results.append((losses, model.get_weights(), len(caught)))
    assert results[0][0] == results[1][0] and results[0][2] == results[1][2] == 1
    for a, b in zip(results[0][1], results[1][1]):
        np.testing.assert_array_equal(a, b)
    assert recordings(model)[-1].check is None  # recorded again, as logits for good


def test_a_bad_label_in_a_replayed_probabilities_step_is_named():
    xs, ys = batches((6, 5))
    model = built(softmax_mlp, False, "sparse_categorical_crossentropy")
    train(model, xs, ys, steps=2)
    bad = ys[0].copy()
    bad[3] = 9
    with pytest.raises(ValueError, match="label 9 at position 3"):
        model.train_on_batch(xs[0], bad)


def test_replays_exactly_is_not_inherited():
    assert replay.replays_exactly(Dense(3))
    assert not replay.replays_exactly(ScaledDense(3))
    assert not replay.replays_exactly(layers.Bidirectional(layers.LSTM(3)))
