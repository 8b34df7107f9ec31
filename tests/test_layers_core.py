"""Activation, Flatten, Reshape and Dropout layers; the dropout and bias_activation ops."""
import json

import numpy as np
import pytest

import deepbreadth as db
import deepbreadth.functional as F
from deepbreadth.layers import Activation, Dropout, Flatten, Input, Layer, Reshape


def random(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def round_trip(layer):
    """A new layer from the JSON text of layer.get_config()."""
    config = json.loads(json.dumps(layer.get_config()))
    config.pop("name")
    return type(layer).from_config(config)


# ----------------------------------------------------------------------------
# dropout op
# ----------------------------------------------------------------------------
def test_dropout_op_gradients(backend_name):
    # A fresh generator per call: every evaluation draws the same mask.
    def fn(x):
        return F.dropout(x, 0.4, generator=np.random.default_rng(3))

    assert db.gradcheck(fn, [random(3, 5)])


def test_dropout_statistics_and_scaling(backend_name):
    x = db.tensor(np.full((200, 100), 2.0), dtype="float64")
    y = F.dropout(x, 0.3, generator=np.random.default_rng(0)).numpy()
    dropped = np.mean(y == 0)
    # 20,000 draws: the standard deviation of the fraction is about 0.003.
    assert abs(dropped - 0.3) < 0.015
    np.testing.assert_allclose(y[y != 0], 2.0 / 0.7)
    assert abs(y.mean() - 2.0) < 0.05  # the scaling keeps the expected value


def test_dropout_gradient_uses_the_forward_mask(backend_name):
    x = db.tensor(random(4, 6), dtype="float64", requires_grad=True)
    y = F.dropout(x, 0.5, generator=np.random.default_rng(1))
    y.sum().backward()
    kept = y.numpy() != 0
    np.testing.assert_allclose(x.grad.numpy(), np.where(kept, 2.0, 0.0))


def test_dropout_op_identity_when_not_training():
    x = db.tensor(random(3, 4))
    assert F.dropout(x, 0.5, training=False) is x
    assert F.dropout(x, 0.0) is x


def test_dropout_op_rejects_bad_rate():
    with pytest.raises(ValueError, match=r"rate must be in \[0, 1\), got 1.0"):
        F.dropout(db.tensor(random(2, 2)), 1.0)


# ----------------------------------------------------------------------------
# bias_activation op
# ----------------------------------------------------------------------------
@pytest.mark.parametrize("activation", [None, "linear", "relu", "tanh", "sigmoid", "elu",
                                        F.tanh, lambda t: t * t])
def test_bias_activation_gradients(backend_name, activation):
    x = random(2, 3, 4)
    x[np.abs(x) < 0.05] = 0.5  # keep relu's kink away from the finite differences
    bias = random(4, seed=1) * 0.01
    assert db.gradcheck(lambda x, b: F.bias_activation(x, b, activation), [x, bias])


@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid", "elu", "softmax"])
def test_bias_activation_matches_generic_ops(backend_name, activation):
    x = db.tensor(random(5, 3), dtype="float64")
    bias = db.tensor(random(3, seed=2), dtype="float64")
    expected = F.get_activation(activation)(x + bias)
    np.testing.assert_allclose(F.bias_activation(x, bias, activation).numpy(), expected.numpy(),
                               rtol=1e-12)


def test_bias_activation_without_bias_is_the_activation(backend_name):
    x = db.tensor(random(2, 3), dtype="float64")
    np.testing.assert_allclose(F.bias_activation(x, None, "tanh").numpy(), np.tanh(x.numpy()))


# ----------------------------------------------------------------------------
# Activation layer
# ----------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["relu", "tanh", "sigmoid", "softmax", "elu"])
def test_activation_layer_gradients(backend_name, name):
    x = random(3, 4)
    x[np.abs(x) < 0.05] = 0.5
    layer = Activation(name, dtype="float64")
    assert db.gradcheck(layer, [x])


@pytest.mark.parametrize("name", ["relu", "tanh", "sigmoid", "softmax", "elu"])
def test_activation_layer_matches_torch(name):
    torch = pytest.importorskip("torch")
    functions = {"relu": torch.relu, "tanh": torch.tanh, "sigmoid": torch.sigmoid,
                 "softmax": lambda t: torch.softmax(t, -1), "elu": torch.nn.functional.elu}
    x = random(3, 5).astype(np.float32)
    upstream = random(3, 5, seed=1).astype(np.float32)
    ours_x = db.tensor(x, requires_grad=True)
    ours = Activation(name)(ours_x)
    ours.backward(upstream)
    theirs_x = torch.tensor(x, requires_grad=True)
    theirs = functions[name](theirs_x)
    theirs.backward(torch.tensor(upstream))
    np.testing.assert_allclose(ours.numpy(), theirs.detach().numpy(), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(ours_x.grad.numpy(), theirs_x.grad.numpy(), rtol=1e-4, atol=1e-6)


def test_activation_layer_config_round_trip():
    layer = round_trip(Activation("sigmoid"))
    assert layer.get_config()["activation"] == "sigmoid"
    np.testing.assert_allclose(layer(np.array([[0.0]])).numpy(), [[0.5]])


def test_activation_layer_unknown_name():
    with pytest.raises(ValueError, match="unknown activation 'relux'"):
        Activation("relux")


# ----------------------------------------------------------------------------
# Flatten and Reshape
# ----------------------------------------------------------------------------
@pytest.mark.parametrize("shape, expected", [((2, 3, 4, 5), (2, 60)), ((2, 7), (2, 7)),
                                             ((3,), (3, 1)), ((0, 2, 2), (0, 4))])
def test_flatten_keeps_the_batch_axis(shape, expected):
    x = np.arange(np.prod(shape), dtype=np.float32).reshape(shape)
    y = Flatten()(x)
    assert y.shape == expected
    np.testing.assert_array_equal(y.numpy(), x.reshape(expected))


def test_flatten_gradients_and_symbolic_shape(backend_name):
    assert db.gradcheck(Flatten(dtype="float64"), [random(2, 3, 2)])
    assert Flatten()(Input(shape=(4, 5, 3))).shape == (None, 60)


def test_flatten_matches_torch():
    torch = pytest.importorskip("torch")
    x = random(2, 3, 4).astype(np.float32)
    np.testing.assert_array_equal(Flatten()(x).numpy(),
                                  torch.flatten(torch.tensor(x), start_dim=1).numpy())


def test_flatten_rejects_channels_first():
    with pytest.raises(ValueError, match="channels_last"):
        Flatten(data_format="channels_first")


@pytest.mark.parametrize("target, expected", [((3, 4), (2, 3, 4)), ((-1, 2), (2, 6, 2)),
                                              ((2, -1, 3), (2, 2, 2, 3)), ((12,), (2, 12))])
def test_reshape_excludes_the_batch_axis(target, expected):
    x = np.arange(24, dtype=np.float32).reshape(2, 12)
    y = Reshape(target)(x)
    assert y.shape == expected
    np.testing.assert_array_equal(y.numpy(), x.reshape(expected))


def test_reshape_gradients_and_symbolic_shape(backend_name):
    assert db.gradcheck(Reshape((4, -1), dtype="float64"), [random(2, 3, 4)])
    assert Reshape((2, -1))(Input(shape=(3, 4))).shape == (None, 2, 6)


def test_reshape_matches_torch():
    torch = pytest.importorskip("torch")
    x = random(2, 3, 4)
    np.testing.assert_array_equal(Reshape((4, -1))(x).numpy(),
                                  torch.tensor(x, dtype=torch.float32).reshape(2, 4, -1).numpy())


def test_reshape_wrong_size_names_layer_and_sizes():
    layer = Reshape((5, -1), name="to_rows")
    with pytest.raises(ValueError, match=r"'to_rows'.*\(2, 3, 4\) \(12 values per sample\)"):
        layer(np.zeros((2, 3, 4)))
    with pytest.raises(ValueError, match="same number of values"):
        Reshape((5, 2))(np.zeros((2, 12)))


def test_reshape_rejects_two_unknown_sizes():
    with pytest.raises(ValueError, match="at most one -1"):
        Reshape((-1, -1))


def test_flatten_and_reshape_config_round_trip():
    assert round_trip(Reshape((3, -1))).target_shape == (3, -1)
    assert round_trip(Flatten()).get_config()["data_format"] is None


# ----------------------------------------------------------------------------
# Dropout layer
# ----------------------------------------------------------------------------
def test_dropout_layer_is_identity_unless_training(backend_name):
    x = random(4, 5).astype(np.float32)
    layer = Dropout(0.5)
    np.testing.assert_array_equal(layer(x).numpy(), x)
    np.testing.assert_array_equal(layer(x, training=False).numpy(), x)
    trained = layer(x, training=True).numpy()
    assert np.any(trained == 0)
    np.testing.assert_allclose(trained[trained != 0], 2 * x[trained != 0], rtol=1e-6)


def test_dropout_layer_statistics(backend_name):
    y = Dropout(0.25)(np.ones((100, 200), dtype=np.float32), training=True).numpy()
    assert abs(np.mean(y == 0) - 0.25) < 0.015
    assert abs(y.mean() - 1.0) < 0.03


def test_dropout_layer_gradients(backend_name):
    layer = Dropout(0.3, seed=7, dtype="float64")

    def fn(x):
        layer._generator = np.random.default_rng(7)  # the same mask at every evaluation
        return layer(x, training=True)

    assert db.gradcheck(fn, [random(3, 4)])


def test_dropout_layer_matches_torch_scaling():
    torch = pytest.importorskip("torch")
    x = np.ones((50, 40), dtype=np.float32)
    ours = Dropout(0.2)(x, training=True).numpy()
    theirs = torch.nn.functional.dropout(torch.tensor(x), 0.2, training=True).numpy()
    assert set(np.unique(ours)) == set(np.unique(theirs)) == {0.0, np.float32(1 / 0.8)}
    np.testing.assert_array_equal(Dropout(0.2)(x).numpy(),
                                  torch.nn.functional.dropout(torch.tensor(x), 0.2,
                                                              training=False).numpy())


def test_dropout_seed_repeats_the_masks():
    x = np.ones((6, 7), dtype=np.float32)
    first, second = Dropout(0.5, seed=11), Dropout(0.5, seed=11)
    np.testing.assert_array_equal(first(x, training=True).numpy(),
                                  second(x, training=True).numpy())
    # Successive calls of one layer draw new masks.
    assert not np.array_equal(first(x, training=True).numpy(), first(x, training=True).numpy())


def test_dropout_layer_config_and_errors():
    layer = round_trip(Dropout(0.3, seed=5))
    assert (layer.rate, layer.seed) == (0.3, 5)
    with pytest.raises(ValueError, match=r"rate must be in \[0, 1\), got 1.5"):
        Dropout(1.5)
    with pytest.raises(NotImplementedError, match="noise_shape"):
        Dropout(0.5, noise_shape=(1, 3))


def test_core_layers_are_layers():
    for layer in (Activation("relu"), Flatten(), Reshape((1,)), Dropout(0.1)):
        assert isinstance(layer, Layer)
        assert layer.weights == []
