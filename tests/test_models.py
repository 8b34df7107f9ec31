"""Sequential, functional and subclassed models: building, the training loop,
evaluate / predict, summary, and the errors bad input gets."""
import re

import numpy as np
import pytest

import deepbreadth as db
from deepbreadth import losses, optimizers
from deepbreadth.layers import LSTM, Dense, Dropout, Flatten, Input, Layer
from deepbreadth.layers.recurrent import SequenceInputError
from deepbreadth.models import InputLayer, Model, NaNLossError, Sequential


@pytest.fixture(autouse=True)
def seeded():
    db.set_seed(0)


def blobs(count=64, features=4, classes=3, seed=0):
    """Separable classes: each class is a cloud around its own centre."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, count)
    centres = rng.normal(0, 3, (classes, features))
    x = centres[labels] + rng.normal(0, 0.5, (count, features))
    return x.astype(np.float32), labels


def small_classifier(features=4, classes=3):
    return Sequential([Dense(16, activation="relu", input_shape=(features,)), Dense(classes)])


def compiled(model, optimizer=None, metrics=("accuracy",)):
    model.compile(optimizer=optimizer or optimizers.Adam(learning_rate=0.02),
                  loss=losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=list(metrics))
    return model


class AddInputs(Layer):
    """Adds its two inputs: enough to make a two-input functional model."""

    def call(self, inputs):
        first, second = inputs
        return first + second


class TwoDense(Model):
    def __init__(self):
        super().__init__()
        self.hidden = Dense(16, activation="relu")
        self.out = Dense(3)

    def call(self, inputs):
        return self.out(self.hidden(inputs))


# ----------------------------------------------------------------------------
# Building
# ----------------------------------------------------------------------------
def test_sequential_with_input_shape_is_built_at_once():
    model = small_classifier()
    assert model.built
    assert [w.shape for w in model.get_weights()] == [(4, 16), (16,), (16, 3), (3,)]
    assert model.count_params() == 4 * 16 + 16 + 16 * 3 + 3
    assert model.input_shape == (None, 4)
    assert model.output_shape == (None, 3)


@pytest.mark.parametrize("first", [lambda: Input(shape=(4,)), lambda: InputLayer(input_shape=(4,))])
def test_sequential_input_first_builds_and_is_not_a_layer(first):
    model = Sequential([first(), Dense(2)])
    assert model.built and len(model.layers) == 1
    assert model.layers[0].kernel.shape == (4, 2)


def test_sequential_add_builds_each_layer_when_the_input_is_known():
    model = Sequential()
    model.add(Dense(5, input_shape=(3,)))
    model.add(Dense(2))
    assert model.layers[1].kernel.shape == (5, 2)
    popped = model.pop()
    assert popped.units == 2 and len(model.layers) == 1 and model.output_shape == (None, 5)


def test_sequential_without_input_shape_builds_on_first_data():
    model = Sequential([Dense(5), Dense(2)])
    assert not model.built
    with pytest.raises(ValueError, match="not been built"):
        model.summary()
    out = model.predict(np.zeros((3, 7), np.float32))
    assert out.shape == (3, 2) and model.built
    assert model.layers[0].kernel.shape == (7, 5)


def test_sequential_rejects_non_layers_and_late_inputs():
    with pytest.raises(TypeError, match="can only add layers"):
        Sequential(["dense"])
    with pytest.raises(ValueError, match="only come first"):
        Sequential([Dense(2, input_shape=(3,)), InputLayer(input_shape=(3,))])


def test_functional_model_runs_its_graph_in_order():
    inputs = Input(shape=(4,))
    hidden = Dense(8, activation="relu")(inputs)
    outputs = Dense(3)(hidden)
    model = Model(inputs, outputs)
    assert [type(layer).__name__ for layer in model.layers] == ["InputLayer", "Dense", "Dense"]
    x = np.random.default_rng(1).normal(size=(5, 4)).astype(np.float32)
    first, second = model.layers[1], model.layers[2]
    expected = np.maximum(x @ first.kernel.numpy() + first.bias.numpy(), 0)
    expected = expected @ second.kernel.numpy() + second.bias.numpy()
    np.testing.assert_allclose(model.predict(x), expected, rtol=1e-5, atol=1e-6)


def test_functional_model_with_two_inputs_and_a_shared_layer_trains():
    first, second = Input(shape=(4,)), Input(shape=(4,))
    shared = Dense(4)
    outputs = Dense(3)(AddInputs()([shared(first), shared(second)]))
    model = compiled(Model([first, second], outputs))
    x, y = blobs()
    history = model.fit([x, x], y, epochs=2, verbose=0)
    assert len(history.history["loss"]) == 2
    assert len(model.trainable_weights) == 4  # the shared layer's weights count once
    with pytest.raises(ValueError, match="2 inputs but x holds 3"):
        model.predict([x, x, x])


def test_functional_model_with_two_outputs_predicts_both():
    inputs = Input(shape=(4,))
    model = Model(inputs, [Dense(2)(inputs), Dense(3)(inputs)])
    first, second = model.predict(np.zeros((5, 4), np.float32))
    assert first.shape == (5, 2) and second.shape == (5, 3)
    with pytest.raises(NotImplementedError, match="several outputs"):
        model.compile("adam", "mse")


def test_functional_model_rejects_disconnected_or_concrete_tensors():
    used, unused = Input(shape=(4,)), Input(shape=(4,))
    outputs = Dense(2)(used)
    with pytest.raises(ValueError, match="not among the model's inputs"):
        Model(unused, outputs)
    with pytest.raises(TypeError, match="symbolic tensors"):
        Model(used, Dense(2)(np.zeros((1, 4), np.float32)))


def test_subclassed_model_tracks_its_layers_and_trains():
    model = compiled(TwoDense())
    x, y = blobs()
    history = model.fit(x, y, epochs=5, verbose=0)
    assert len(model.layers) == 2 and len(model.trainable_weights) == 4
    assert history.history["loss"][-1] < history.history["loss"][0]


def test_subclassed_model_without_call_says_how_to_fix():
    with pytest.raises(NotImplementedError, match="define call"):
        Model()(np.zeros((1, 2), np.float32))


def test_model_is_a_layer_inside_another_model():
    inner = Sequential([Dense(3, input_shape=(4,))])
    outer = Sequential([inner, Dense(2)])
    assert outer.built and outer.count_params() == 4 * 3 + 3 + 3 * 2 + 2
    assert outer.predict(np.ones((2, 4), np.float32)).shape == (2, 2)


# ----------------------------------------------------------------------------
# The training step and the loop
# ----------------------------------------------------------------------------
def test_one_train_step_is_forward_backward_update():
    """train_on_batch moves the weights exactly as the hand-written loop does."""
    x, y = blobs(count=8)
    model = small_classifier()
    twin = small_classifier()
    twin.set_weights(model.get_weights())
    model.compile(optimizer=optimizers.SGD(learning_rate=0.1),
                  loss=losses.SparseCategoricalCrossentropy(from_logits=True))
    loss_value = model.train_on_batch(x, y)

    loss_fn = losses.SparseCategoricalCrossentropy(from_logits=True)
    loss = loss_fn(y, twin(x, training=True))
    loss.backward()
    expected = [w.numpy() - 0.1 * w.grad.numpy() for w in twin.trainable_weights]
    assert loss_value == pytest.approx(loss.item(), rel=1e-6)
    for got, want in zip(model.get_weights(), expected):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
    assert all(w.grad is None for w in model.trainable_weights)  # zero_grad ran


def test_fit_learns_and_returns_history_with_keras_keys():
    x, y = blobs(count=96)
    model = compiled(small_classifier(), metrics=["acc"])
    history = model.fit(x[:64], y[:64], epochs=8, batch_size=16, verbose=0,
                        validation_data=(x[64:], y[64:]))
    assert set(history.history) == {"loss", "acc", "val_loss", "val_acc"}
    assert history.epoch == list(range(8))
    assert model.history is history
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert history.history["val_acc"][-1] >= 0.9
    assert history.params["steps"] == 4 and history.params["epochs"] == 8


def test_validation_split_takes_the_last_samples():
    x, y = blobs(count=40)
    model = compiled(small_classifier())
    history = model.fit(x, y, epochs=1, validation_split=0.25, verbose=0, shuffle=False)
    loss, accuracy = model.evaluate(x[30:], y[30:], verbose=0)
    assert history.history["val_loss"][0] == pytest.approx(loss, rel=1e-5)
    assert history.params["steps"] == 1  # 30 training samples, one batch of 32 or fewer
    with pytest.raises(ValueError, match="leaves no training samples"):
        model.fit(x, y, validation_split=0.99, verbose=0)


def test_epoch_loss_is_the_mean_over_samples():
    x, y = blobs(count=10)
    model = compiled(small_classifier(), optimizer=optimizers.SGD(learning_rate=0.0))
    history = model.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    # With a learning rate of 0 the weights never move: the epoch's loss is
    # the loss of the whole data set, the short last batch weighted by its size.
    assert history.history["loss"][0] == pytest.approx(model.evaluate(x, y, verbose=0)[0], rel=1e-5)


def test_same_seed_same_training():
    def train():
        db.set_seed(3)
        x, y = blobs()
        model = compiled(Sequential([Dense(8, input_shape=(4,)), Dropout(0.3), Dense(3)]))
        model.fit(x, y, epochs=2, batch_size=8, verbose=0)
        return model.get_weights()

    for first, second in zip(train(), train()):
        np.testing.assert_array_equal(first, second)


def test_initial_epoch_continues_the_count():
    x, y = blobs()
    model = compiled(small_classifier())
    history = model.fit(x, y, epochs=3, initial_epoch=1, verbose=0)
    assert history.epoch == [1, 2]


def test_sample_weight_and_class_weight_weigh_the_loss():
    x, y = blobs(count=8)
    model = compiled(small_classifier())
    weights = np.zeros(8)
    weights[0] = 1.0
    first_only = model.evaluate(x[:1], y[:1], verbose=0)[0]
    # Keras's default reduction divides by the number of samples, not the weights' sum.
    weighted = model.evaluate(x, y, sample_weight=weights, verbose=0)[0]
    assert weighted == pytest.approx(first_only / 8, rel=1e-5)
    class_weight = {0: 1.0, 1: 1.0, 2: 1.0}
    model.fit(x, y, class_weight=class_weight, verbose=0)
    with pytest.raises(ValueError, match="no weight for class"):
        model.fit(x, y, class_weight={0: 1.0}, verbose=0)


# ----------------------------------------------------------------------------
# evaluate, predict and the single-batch methods
# ----------------------------------------------------------------------------
def test_evaluate_returns_like_keras():
    x, y = blobs(count=20)
    with_metrics = compiled(small_classifier())
    result = with_metrics.evaluate(x, y, verbose=0)
    assert isinstance(result, list) and len(result) == 2
    as_dict = with_metrics.evaluate(x, y, verbose=0, return_dict=True)
    assert as_dict == {"loss": result[0], "accuracy": result[1]}
    assert with_metrics.metrics_names == ["loss", "accuracy"]
    loss_only = compiled(small_classifier(), metrics=())
    assert isinstance(loss_only.evaluate(x, y, verbose=0), float)


def test_predict_gives_numpy_independent_of_batch_size():
    x, _ = blobs(count=21)
    model = small_classifier()
    full = model.predict(x, batch_size=32)
    assert isinstance(full, np.ndarray) and full.shape == (21, 3) and full.dtype == np.float32
    np.testing.assert_allclose(model.predict(x, batch_size=5), full, rtol=1e-6)
    np.testing.assert_allclose(model.predict_on_batch(x), full, rtol=1e-6)
    np.testing.assert_allclose(model(x).numpy(), full, rtol=1e-6)


def test_float64_input_is_cast_to_the_model_dtype():
    x, _ = blobs(count=4)
    assert small_classifier().predict(x.astype(np.float64)).dtype == np.float32


def test_single_batch_methods():
    x, y = blobs(count=16)
    model = compiled(small_classifier())
    before = model.test_on_batch(x, y)
    for _ in range(20):
        model.train_on_batch(x, y)
    after = model.test_on_batch(x, y, return_dict=True)
    assert after["loss"] < before[0]
    assert set(after) == {"loss", "accuracy"}


def test_evaluate_and_predict_do_not_train():
    x, y = blobs(count=16)
    model = compiled(Sequential([Dense(8, input_shape=(4,)), Dropout(0.5), Dense(3)]))
    weights = model.get_weights()
    first = model.predict(x)
    model.evaluate(x, y, verbose=0)
    np.testing.assert_array_equal(model.predict(x), first)  # dropout is off
    for got, want in zip(model.get_weights(), weights):
        np.testing.assert_array_equal(got, want)


# ----------------------------------------------------------------------------
# Errors
# ----------------------------------------------------------------------------
def test_fit_before_compile():
    x, y = blobs()
    with pytest.raises(RuntimeError, match="must be compiled before fit"):
        small_classifier().fit(x, y)
    with pytest.raises(RuntimeError, match="compiled before evaluate"):
        small_classifier().evaluate(x, y)


def test_compile_without_loss():
    model = small_classifier()
    model.compile(optimizer="adam")
    with pytest.raises(ValueError, match="without a loss"):
        model.fit(*blobs(), verbose=0)


def test_x_and_y_of_different_lengths():
    x, y = blobs(count=10)
    with pytest.raises(ValueError, match="x has 10 samples but y has 9"):
        compiled(small_classifier()).fit(x, y[:9])


def test_empty_data():
    with pytest.raises(ValueError, match="empty"):
        compiled(small_classifier()).fit(np.zeros((0, 4), np.float32), np.zeros(0, int))


@pytest.mark.parametrize("batch_size", [0, -1, 2.5, True])
def test_bad_batch_size(batch_size):
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        compiled(small_classifier()).fit(*blobs(), batch_size=batch_size)


def test_batch_size_larger_than_the_data():
    x, y = blobs(count=10)
    message = r"batch_size=64 is larger than the 10 training samples.*at most 10"
    with pytest.raises(ValueError, match=message):
        compiled(small_classifier()).fit(x, y, batch_size=64)
    # without a batch size, the default of 32 shrinks to fit (XOR's 4 samples train)
    assert compiled(small_classifier()).fit(x[:4], y[:4], verbose=0).params["steps"] == 1
    assert small_classifier().predict(x[:1]).shape == (1, 3)


def test_nan_and_inf_in_the_data_are_named():
    x, y = blobs(count=10)
    x[7, 2] = np.nan
    model = compiled(small_classifier())
    with pytest.raises(ValueError, match=r"x contains NaN at index \(7, 2\) \(sample 7\)"):
        model.fit(x, y)
    targets = np.zeros((10, 3), np.float32)
    targets[4, 1] = np.inf
    model.compile("adam", "mse")
    with pytest.raises(ValueError, match=r"y contains an infinite value at index \(4, 1\)"):
        model.evaluate(np.ones((10, 4), np.float32), targets)


def test_labels_out_of_range_get_the_loss_message():
    x, y = blobs(count=10)
    y[3] = 7
    with pytest.raises(ValueError, match="7"):
        compiled(small_classifier()).fit(x, y, verbose=0)


@pytest.mark.parametrize("bad_label", [-1, 3])
def test_a_bad_label_in_a_training_step_is_named_and_the_weights_stay(bad_label):
    """Model's steps leave the range check to the loss kernel (a NaN loss), then
    name the label; the step must not update the weights."""
    model = compiled(small_classifier())
    x, y = blobs(count=10)
    model.train_on_batch(x, y)
    before = model.get_weights()
    y[5] = bad_label
    with pytest.raises(ValueError, match=rf"label {bad_label} at position 5 is outside \[0, 3\)"):
        model.train_on_batch(x, y)
    for got, want in zip(model.get_weights(), before):
        np.testing.assert_array_equal(got, want)


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning")
def test_nan_loss_stops_training_with_epoch_and_step():
    x = np.ones((8, 4), np.float32) * 1e30  # finite, but the squared error overflows
    y = np.zeros((8, 3), np.float32)
    model = small_classifier()
    model.compile(optimizer="sgd", loss="mse")
    before = model.get_weights()
    with pytest.raises(NaNLossError, match=r"epoch 1, step 1 of 2.*learning rate"):
        model.fit(x, y, batch_size=4, verbose=0)
    for got, want in zip(model.get_weights(), before):  # the bad step did not update
        np.testing.assert_array_equal(got, want)


def test_stacked_lstm_without_return_sequences_names_both_layers():
    with pytest.raises(SequenceInputError) as caught:
        Sequential([LSTM(8, activation="relu", input_shape=(5, 3)), Dropout(0.2),
                    LSTM(8, activation="relu"), Dense(2)])
    message = str(caught.value)
    first, second = re.findall(r"'(lstm[_0-9]*)'", message)[:2][::-1]
    assert "return_sequences=True" in message
    assert caught.value.previous_layer.name == first != second == caught.value.layer.name


def test_stacked_lstm_error_also_when_built_by_data():
    model = Sequential([LSTM(4), LSTM(4)])
    model.compile("adam", "mse")
    with pytest.raises(SequenceInputError, match="return_sequences=True"):
        model.fit(np.zeros((4, 5, 3), np.float32), np.zeros((4, 4), np.float32), verbose=0)
    assert not model.built


def test_data_that_is_not_arrays():
    with pytest.raises(TypeError, match="must be a NumPy array"):
        small_classifier().predict([{"a": 1}, {"b": 2}])


# ----------------------------------------------------------------------------
# summary, weights, devices
# ----------------------------------------------------------------------------
def test_summary_prints_a_keras_table():
    model = Sequential([Flatten(input_shape=(28, 28)), Dense(128, activation="relu"),
                        Dropout(0.2), Dense(10)], name="mnist_mlp")
    model.layers[-1].trainable = False
    lines = []
    model.summary(print_fn=lines.append)
    text = "\n".join(lines)
    assert lines[0] == 'Model: "mnist_mlp"'
    assert re.search(r"Layer \(type\)\s+Output Shape\s+Param #", text)
    assert re.search(r"\(Flatten\)\s+\(None, 784\)\s+0", text)
    assert re.search(r"\(Dense\)\s+\(None, 128\)\s+100480", text)
    assert re.search(r"\(Dense\)\s+\(None, 10\)\s+1290", text)
    assert "Total params: 101,770" in text
    assert "Trainable params: 100,480" in text
    assert "Non-trainable params: 1,290" in text


def test_summary_of_subclassed_and_functional_models():
    model = TwoDense()
    model.build((None, 4))
    lines = []
    model.summary(print_fn=lines.append)
    assert any(re.search(r"\(Dense\)\s+\(None, 16\)\s+80", line) for line in lines)
    inputs = Input(shape=(4,))
    shared = Dense(4)
    functional = Model(inputs, shared(shared(inputs)))
    lines = []
    functional.summary(print_fn=lines.append)
    assert any(re.search(r"\(Dense\)\s+multiple\s+20", line) for line in lines)


def test_weights_move_and_trainable_flag():
    model = small_classifier()
    arrays = [np.full(w.shape, 0.5, np.float32) for w in model.get_weights()]
    model.set_weights(arrays)
    assert all((w == 0.5).all() for w in model.get_weights())
    assert model.to("cpu") is model
    model.trainable = False
    assert model.trainable_weights == [] and len(model.non_trainable_weights) == 4


def test_to_keeps_the_optimizer_state_with_the_weights():
    x, y = blobs()
    model = compiled(small_classifier())
    model.fit(x, y, verbose=0)
    iterations = model.optimizer.iterations
    model.to("cpu")
    assert model.optimizer.iterations == iterations
    model.fit(x, y, verbose=0)


def test_trainable_weights_follow_changes_made_after_training():
    # The list of trainable weights is kept between steps; every change of
    # the layer structure must still show in it.
    x, y = blobs()
    model = compiled(small_classifier(), metrics=())
    model.train_on_batch(x, y)
    assert len(model.trainable_weights) == 4
    model.add(Dense(2))
    assert len(model.trainable_weights) == 6
    model.layers[0].trainable = False
    assert len(model.trainable_weights) == 4
    frozen = model.layers[0].get_weights()
    model.compile(optimizer=optimizers.Adam(learning_rate=0.02),
                  loss=losses.SparseCategoricalCrossentropy(from_logits=True))
    model.train_on_batch(x, y % 2)
    np.testing.assert_array_equal(model.layers[0].get_weights()[0], frozen[0])
    model.pop()
    assert len(model.trainable_weights) == 2


def test_layer_assigned_after_training_joins_the_trainable_weights():
    class Net(Model):
        def __init__(self):
            super().__init__()
            self.first = Dense(3)

        def call(self, inputs):
            out = self.first(inputs)
            return self.second(out) if hasattr(self, "second") else out

    x, y = blobs()
    model = compiled(Net(), metrics=())
    model.train_on_batch(x, y)
    assert len(model.trainable_weights) == 2
    model.second = Dense(3)
    model.train_on_batch(x, y)
    assert len(model.trainable_weights) == 4
    before = model.second.get_weights()[0].copy()
    model.train_on_batch(x, y)
    assert not np.array_equal(model.second.get_weights()[0], before)
