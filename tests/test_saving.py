"""Weights files and whole-model files: round trips, resuming training exactly,
clear errors for the wrong file, and atomic writes."""
import json
import os

import numpy as np
import pytest

import deepbreadth as db
from deepbreadth import losses, saving
from deepbreadth.layers import LSTM, Dense, Dropout, Embedding, Flatten, Input, Layer
from deepbreadth.models import Model, Sequential, load_model, model_from_json


@pytest.fixture(autouse=True)
def seeded():
    db.set_seed(0)


def data(count=32, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(count, 4)).astype(np.float32)
    return x, (x[:, 0] + x[:, 1] > 0).astype(np.int64)


def mlp(hidden=8):
    return Sequential([Dense(hidden, activation="relu", input_shape=(4,)), Dense(2)])


def compiled(model):
    model.compile(optimizer="adam", loss=losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    return model


class Doubled(Model):
    """A subclassed model with a no-argument constructor, as most are."""

    def __init__(self):
        super().__init__()
        self.dense = Dense(2)

    def call(self, inputs):
        return self.dense(inputs * 2.0)


class Scale(Layer):
    """A user-defined layer: loading needs custom_objects."""

    def __init__(self, factor=2.0, **kwargs):
        super().__init__(**kwargs)
        self.factor = factor

    def call(self, inputs):
        return inputs * self.factor

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}


# ----------------------------------------------------------------------------
# Weights files
# ----------------------------------------------------------------------------
def test_weights_round_trip_at_exactly_the_path_given(tmp_path):
    model = mlp()
    path = tmp_path / "model.weights.h5"
    model.save_weights(str(path))
    assert os.listdir(tmp_path) == ["model.weights.h5"]  # no '.npz' added, no temporary left
    twin = mlp()
    twin.load_weights(path)
    for got, want in zip(twin.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(got, want)


def test_weights_file_is_plain_npz_keyed_by_index_and_name(tmp_path):
    model = mlp()
    path = str(tmp_path / "w.npz")
    model.save_weights(path)
    with np.load(path, allow_pickle=False) as archive:
        keys = sorted(archive.files)
        assert [key.split("/", 1)[0] for key in keys] == ["0000", "0001", "0002", "0003"]
        assert keys[0].endswith("/kernel") and archive[keys[0]].shape == (4, 8)


def test_weights_of_another_architecture_name_the_first_mismatch(tmp_path):
    path = str(tmp_path / "w.npz")
    mlp(hidden=8).save_weights(path)
    wider = mlp(hidden=16)
    with pytest.raises(ValueError) as caught:
        wider.load_weights(path)
    message = str(caught.value)
    assert f"layer '{wider.layers[0].name}'" in message
    assert "(4, 16) in the model" in message and "(4, 8)" in message
    deeper = Sequential([Dense(8, input_shape=(4,)), Dense(2), Dense(2)])
    message = f"holds 4 weights but the model has 6: layer '{deeper.layers[2].name}'"
    with pytest.raises(ValueError, match=message):
        deeper.load_weights(path)


def test_weights_need_a_built_model(tmp_path):
    with pytest.raises(ValueError, match="not built yet"):
        Sequential([Dense(2)]).save_weights(str(tmp_path / "w.npz"))


def test_no_file_and_not_a_weights_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        mlp().load_weights(str(tmp_path / "missing.npz"))
    junk = tmp_path / "junk.npz"
    junk.write_text("not a zip")
    with pytest.raises(ValueError, match="not a deepbreadth weights or model file"):
        mlp().load_weights(str(junk))


def test_overwrite_false_keeps_an_existing_file(tmp_path):
    path = str(tmp_path / "w.npz")
    mlp().save_weights(path)
    with pytest.raises(FileExistsError, match="overwrite=False"):
        mlp().save_weights(path, overwrite=False)


def test_a_failed_write_leaves_the_old_file_intact(tmp_path, monkeypatch):
    path = str(tmp_path / "w.npz")
    model = mlp()
    model.save_weights(path)
    before = open(path, "rb").read()

    def broken_savez(file, **arrays):
        file.write(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(saving.np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        mlp().save_weights(path)
    assert open(path, "rb").read() == before
    assert os.listdir(tmp_path) == ["w.npz"]


# ----------------------------------------------------------------------------
# Whole models
# ----------------------------------------------------------------------------
def assert_same_predictions(first, second, x):
    np.testing.assert_array_equal(first.predict(x), second.predict(x))


def test_sequential_model_round_trip_with_compile_settings(tmp_path):
    x, y = data()
    model = compiled(Sequential([Flatten(input_shape=(2, 2)), Dense(8, activation="relu"),
                                Dropout(0.1), Dense(2)]))
    model.fit(x.reshape(-1, 2, 2), y, epochs=1, verbose=0)
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = load_model(path)
    assert isinstance(loaded, Sequential)
    kinds = [type(layer).__name__ for layer in loaded.layers]
    assert kinds == ["Flatten", "Dense", "Dropout", "Dense"]
    assert [layer.name for layer in loaded.layers] == [layer.name for layer in model.layers]
    assert_same_predictions(model, loaded, x.reshape(-1, 2, 2))
    assert type(loaded.optimizer).__name__ == "Adam"
    assert loaded.optimizer.iterations == model.optimizer.iterations
    assert isinstance(loaded.loss, losses.SparseCategoricalCrossentropy) and loaded.loss.from_logits
    assert loaded.metrics_names == ["loss", "accuracy"]
    assert loaded.evaluate(x.reshape(-1, 2, 2), y, verbose=0) == pytest.approx(
        model.evaluate(x.reshape(-1, 2, 2), y, verbose=0))


def test_model_file_holds_json_and_arrays_only(tmp_path):
    path = str(tmp_path / "model")
    compiled(mlp()).save(path)
    with np.load(path, allow_pickle=False) as archive:
        document = json.loads(str(archive["architecture.json"]))
        assert document["model"]["class_name"] == "Sequential"
        assert document["compile"]["loss"]["class_name"] == "SparseCategoricalCrossentropy"
        assert sum(key.startswith("weights/") for key in archive.files) == 4


def test_training_resumes_exactly_after_save_and_load(tmp_path):
    x, y = data(count=40)

    def fresh():
        db.set_seed(5)
        return compiled(mlp())

    straight = fresh()
    straight.fit(x, y, epochs=3, batch_size=8, shuffle=False, verbose=0)

    interrupted = fresh()
    interrupted.fit(x, y, epochs=2, batch_size=8, shuffle=False, verbose=0)
    path = str(tmp_path / "checkpoint.keras")
    interrupted.save(path)
    resumed = load_model(path)
    resumed.fit(x, y, epochs=1, batch_size=8, shuffle=False, verbose=0)

    assert resumed.optimizer.iterations == straight.optimizer.iterations == 15
    for got, want in zip(resumed.get_weights(), straight.get_weights()):
        np.testing.assert_array_equal(got, want)


def test_functional_model_round_trip(tmp_path):
    inputs = Input(shape=(4,))
    shared = Dense(4, activation="tanh")
    outputs = Dense(2)(shared(shared(inputs)))
    model = compiled(Model(inputs, outputs, name="twice"))
    path = str(tmp_path / "functional.npz")
    model.save(path)
    loaded = load_model(path)
    assert loaded.name == "twice" and len(loaded.trainable_weights) == 4
    assert_same_predictions(model, loaded, data()[0])


def test_subclassed_model_round_trip_with_custom_objects(tmp_path):
    model = compiled(Doubled())
    x, y = data()
    model.fit(x, y, verbose=0)
    path = str(tmp_path / "doubled")
    model.save(path)
    with pytest.raises(ValueError, match="custom_objects=\\{'Doubled': Doubled\\}"):
        load_model(path)
    loaded = load_model(path, custom_objects={"Doubled": Doubled})
    assert isinstance(loaded, Doubled)
    assert_same_predictions(model, loaded, x)


def test_custom_layer_in_a_sequential_model(tmp_path):
    model = Sequential([Dense(3, input_shape=(4,)), Scale(3.0)])
    path = str(tmp_path / "scaled")
    model.save(path)
    loaded = load_model(path, custom_objects={"Scale": Scale})
    assert loaded.layers[1].factor == 3.0
    assert_same_predictions(model, loaded, data()[0])


def test_uncompiled_model_and_compile_false(tmp_path):
    path = str(tmp_path / "plain")
    mlp().save(path)
    assert load_model(path).optimizer is None
    compiled(mlp()).save(path)
    assert load_model(path, compile=False).optimizer is None


def test_model_built_from_data_round_trip(tmp_path):
    model = Sequential([Dense(3), Dense(2)])
    x = data()[0]
    model.predict(x)
    path = str(tmp_path / "lazy")
    model.save(path)
    assert_same_predictions(model, load_model(path), x)


def test_recurrent_model_round_trip(tmp_path):
    model = Sequential([LSTM(4, input_shape=(3, 2), return_sequences=True), LSTM(3), Dense(2)])
    path = str(tmp_path / "rnn")
    model.save(path)
    x = np.random.default_rng(1).normal(size=(5, 3, 2)).astype(np.float32)
    assert_same_predictions(model, load_model(path), x)


def test_load_model_of_a_weights_file_says_what_to_do(tmp_path):
    path = str(tmp_path / "w.npz")
    mlp().save_weights(path)
    with pytest.raises(ValueError, match="only weights.*load_weights"):
        load_model(path)


def test_load_weights_reads_a_whole_model_file(tmp_path):
    path = str(tmp_path / "m")
    model = compiled(mlp())
    model.save(path)
    twin = mlp()
    twin.load_weights(path)
    assert_same_predictions(model, twin, data()[0])


def test_architecture_alone_through_json():
    model = mlp()
    copy = model_from_json(model.to_json())
    assert [w.shape for w in copy.get_weights()] == [w.shape for w in model.get_weights()]
    assert not np.array_equal(copy.get_weights()[0], model.get_weights()[0])  # fresh weights


class Bag(Model):
    """A subclassed model on integer ids: rebuilding it needs the saved input dtype."""

    def __init__(self):
        super().__init__()
        self.embed = Embedding(10, 3)
        self.dense = Dense(2)

    def call(self, ids):
        return self.dense(db.mean(self.embed(ids), axis=1))


def test_models_on_integer_ids_round_trip(tmp_path):
    ids = np.random.default_rng(0).integers(0, 10, (6, 5))
    for model, custom_objects in ((Bag(), {"Bag": Bag}),
                                  (Sequential([Embedding(10, 3), Flatten(), Dense(2)]), None)):
        model.predict(ids)
        path = str(tmp_path / type(model).__name__)
        model.save(path)
        assert_same_predictions(model, load_model(path, custom_objects=custom_objects), ids)
