"""Merge layers (Add, Concatenate, ...) and parameterised activation layers."""
import json

import numpy as np
import pytest

import deepbreadth as db
from deepbreadth import layers
from deepbreadth.models import Model


def _pair(shape=(2, 3)):
    rng = np.random.default_rng(0)
    return rng.standard_normal(shape), rng.standard_normal(shape)


@pytest.mark.parametrize("layer_class, combine", [
    (layers.Add, lambda a, b: a + b),
    (layers.Subtract, lambda a, b: a - b),
    (layers.Multiply, lambda a, b: a * b),
    (layers.Average, lambda a, b: (a + b) / 2),
    (layers.Maximum, np.maximum),
    (layers.Minimum, np.minimum),
])
def test_merge_layers_compute_and_differentiate(layer_class, combine):
    a, b = _pair()
    out = layer_class(dtype="float64")([db.tensor(a, dtype="float64"), db.tensor(b, dtype="float64")])
    np.testing.assert_allclose(out.numpy(), combine(a, b))
    assert db.gradcheck(lambda x, y: layer_class(dtype="float64")([x, y]), [a, b])


def test_concatenate_joins_along_the_feature_axis_and_splits_gradients():
    a, b = np.ones((2, 3)), np.zeros((2, 4))
    out = layers.Concatenate()([db.tensor(a), db.tensor(b)])
    assert out.shape == (2, 7)
    assert db.gradcheck(lambda x, y: layers.Concatenate(axis=-1, dtype="float64")([x, y]), [a, b])


def test_merge_of_a_single_tensor_names_the_fix():
    with pytest.raises(ValueError, match=r"at least 2 tensors.*Add\(\)\(\[a, b\]\)"):
        layers.Add()(db.tensor(np.ones((2, 3))))


def test_merge_of_different_shapes_names_them():
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(2, 4\)"):
        layers.Add()([db.tensor(np.ones((2, 3))), db.tensor(np.ones((2, 4)))])


def test_a_functional_model_with_a_residual_add_trains():
    inputs = layers.Input(shape=(4,))
    hidden = layers.Dense(4, activation="relu")(inputs)
    outputs = layers.Dense(1)(layers.Add()([inputs, hidden]))
    model = Model(inputs, outputs)
    model.compile(optimizer=db.optimizers.Adam(0.05), loss="mse")
    x = np.random.default_rng(1).standard_normal((64, 4)).astype("float32")
    y = x.sum(axis=1, keepdims=True)
    history = model.fit(x, y, epochs=20, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0] * 0.5


@pytest.mark.parametrize("layer, expected", [
    (layers.Softmax(), lambda x: np.exp(x) / np.exp(x).sum(-1, keepdims=True)),
    (layers.ReLU(max_value=0.5), lambda x: np.minimum(np.maximum(x, 0), 0.5)),
    (layers.LeakyReLU(negative_slope=0.1), lambda x: np.where(x > 0, x, 0.1 * x)),
    (layers.ELU(alpha=2.0), lambda x: np.where(x > 0, x, 2.0 * np.expm1(x))),
])
def test_activation_layers_match_their_formulas(layer, expected):
    x = np.linspace(-2, 2, 12).reshape(3, 4)
    np.testing.assert_allclose(layer(db.tensor(x)).numpy(), expected(x), rtol=1e-5, atol=1e-6)


def test_activation_layer_configs_round_trip_through_json():
    for layer in (layers.Softmax(axis=1), layers.ReLU(max_value=6.0), layers.LeakyReLU(0.2),
                  layers.ELU(0.5), layers.Concatenate(axis=1)):
        config = json.loads(json.dumps(layer.get_config()))
        rebuilt = type(layer).from_config(config)
        for key in config:
            assert rebuilt.get_config()[key] == config[key]


def test_tensorflow_top_level_namespaces():
    import deepbreadth as tf

    tf.random.set_seed(3)
    first = tf.random.normal((2, 2)).numpy()
    tf.random.set_seed(3)
    np.testing.assert_array_equal(first, tf.random.normal((2, 2)).numpy())
    probabilities = tf.nn.softmax(tf.tensor([[1.0, 2.0, 3.0]])).numpy()
    np.testing.assert_allclose(probabilities.sum(), 1.0, rtol=1e-6)
    assert tf.keras.layers.Softmax is layers.Softmax
