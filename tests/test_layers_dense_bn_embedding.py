"""Dense, BatchNormalization and Embedding layers, and the embedding op."""
import json

import numpy as np
import pytest

import deepbreadth as db
import deepbreadth.functional as F
from deepbreadth import initializers
from deepbreadth.layers import BatchNormalization, Dense, Embedding, Input


def random(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def check_layer_gradients(layer, x, weight_names, gradcheck=db.gradcheck, **call_options):
    """gradcheck of a float64 layer with respect to its input and the named weights.

    gradcheck differentiates with respect to its own copies of the inputs, so
    the layer's weight attributes are pointed at those copies for the check.
    """
    layer(x, **call_options)  # build
    originals = [getattr(layer, name) for name in weight_names]

    def run(inputs, *weights):
        for name, weight in zip(weight_names, weights):
            setattr(layer, name, weight)
        return layer(inputs, **call_options)

    try:
        assert gradcheck(run, [x] + originals)
    finally:
        for name, weight in zip(weight_names, originals):
            setattr(layer, name, weight)


def round_trip(layer):
    config = json.loads(json.dumps(layer.get_config()))
    config.pop("name")
    return type(layer).from_config(config)


def close(ours, theirs):
    np.testing.assert_allclose(ours.numpy(), theirs.detach().numpy(), rtol=1e-4, atol=1e-5)


# ----------------------------------------------------------------------------
# Dense
# ----------------------------------------------------------------------------
@pytest.mark.parametrize("activation", [None, "relu", "tanh", "sigmoid", "elu", "softmax"])
@pytest.mark.parametrize("shape", [(3, 4), (2, 3, 4)])
def test_dense_gradients(backend_name, activation, shape):
    layer = Dense(3, activation=activation, bias_initializer="random_normal", dtype="float64")
    check_layer_gradients(layer, random(*shape), ["kernel", "bias"])


def test_dense_without_bias_gradients(backend_name):
    layer = Dense(2, use_bias=False, dtype="float64")
    check_layer_gradients(layer, random(3, 4), ["kernel"])
    assert [w.shape for w in layer.get_weights()] == [(4, 2)]


@pytest.mark.parametrize("activation", [None, "relu", "sigmoid"])
@pytest.mark.parametrize("shape", [(5, 4), (2, 3, 4)])
def test_dense_matches_torch_linear(backend_name, activation, shape):
    torch = pytest.importorskip("torch")
    x = random(*shape).astype(np.float32)
    layer = Dense(3, activation=activation, bias_initializer="random_normal")
    ours_x = db.tensor(x, requires_grad=True)
    ours = layer(ours_x)
    upstream = random(*ours.shape, seed=1).astype(np.float32)
    ours.backward(upstream)

    linear = torch.nn.Linear(4, 3)
    kernel, bias = layer.get_weights()
    with torch.no_grad():
        linear.weight.copy_(torch.tensor(kernel.T))  # Keras (in, out), PyTorch (out, in)
        linear.bias.copy_(torch.tensor(bias))
    theirs_x = torch.tensor(x, requires_grad=True)
    theirs = linear(theirs_x)
    if activation is not None:
        theirs = getattr(torch, activation)(theirs)
    theirs.backward(torch.tensor(upstream))
    close(ours, theirs)
    close(ours_x.grad, theirs_x.grad)
    close(layer.kernel.grad, linear.weight.grad.T)
    close(layer.bias.grad, linear.bias.grad)


def test_dense_shapes_and_weights():
    layer = Dense(5, input_shape=(3,))
    assert layer(Input(shape=(3,))).shape == (None, 5)
    assert [w.shape for w in layer.get_weights()] == [(3, 5), (5,)]
    assert [w.name for w in layer.weights] == [f"{layer.name}/kernel", f"{layer.name}/bias"]
    assert Dense(2)(np.zeros((4, 6, 7), dtype=np.float32)).shape == (4, 6, 2)
    np.testing.assert_array_equal(layer.get_weights()[1], np.zeros(5))  # bias 'zeros'


def test_dense_config_round_trip():
    layer = Dense(4, activation="tanh", use_bias=True,
                  kernel_initializer=initializers.RandomNormal(stddev=0.2),
                  bias_initializer="ones")
    copy = round_trip(layer)
    assert (copy.units, copy.use_bias) == (4, True)
    assert copy.get_config()["activation"] == "tanh"
    assert copy.kernel_initializer.stddev == 0.2
    x = random(2, 3).astype(np.float32)
    copy(x)
    copy.set_weights([np.ones((3, 4)), np.ones(4)])
    np.testing.assert_allclose(copy(x).numpy(), np.tanh(x @ np.ones((3, 4)) + 1), rtol=1e-6)


def test_dense_errors():
    with pytest.raises(ValueError, match=r"Dense layer 'fc' expects input of rank >= 2.*"
                                         r"got shape \(4,\).*x\[None\]"):
        Dense(2, name="fc")(np.zeros(4))
    layer = Dense(2)
    layer(np.zeros((1, 3)))
    with pytest.raises(ValueError, match=r"built for inputs with 3 features.*got shape \(1, 5\)"):
        layer(np.zeros((1, 5)))
    with pytest.raises(ValueError, match="units must be a positive int"):
        Dense(0)
    with pytest.raises(ValueError, match="unknown activation"):
        Dense(2, activation="relu6x")


# ----------------------------------------------------------------------------
# BatchNormalization
# ----------------------------------------------------------------------------
@pytest.mark.parametrize("shape, axis", [((5, 3), -1), ((2, 3, 2, 2), -1), ((3, 2, 4), 1)])
def test_batch_norm_training_gradients(backend_name, shape, axis):
    layer = BatchNormalization(axis=axis, beta_initializer="random_normal",
                               gamma_initializer="random_normal", dtype="float64")
    check_layer_gradients(layer, random(*shape), ["gamma", "beta"], training=True)


def test_batch_norm_inference_gradients(backend_name):
    layer = BatchNormalization(beta_initializer="random_normal", dtype="float64",
                               moving_mean_initializer="random_normal",
                               moving_variance_initializer="ones")
    check_layer_gradients(layer, random(4, 3),
                          ["gamma", "beta", "moving_mean", "moving_variance"], training=False)


def test_batch_norm_is_twice_differentiable(backend_name):
    layer = BatchNormalization(gamma_initializer="random_normal", dtype="float64")
    check_layer_gradients(layer, random(4, 2), ["gamma", "beta"], gradcheck=db.gradgradcheck,
                          training=True)


def torch_batch_norm(torch, layer):
    """torch BatchNorm2d holding the layer's weights; Keras momentum m is PyTorch's 1 - m."""
    gamma, beta, moving_mean, moving_variance = layer.get_weights()
    norm = torch.nn.BatchNorm2d(len(gamma), eps=1e-3, momentum=1 - 0.99)
    with torch.no_grad():
        norm.weight.copy_(torch.tensor(gamma))
        norm.bias.copy_(torch.tensor(beta))
        norm.running_mean.copy_(torch.tensor(moving_mean))
        norm.running_var.copy_(torch.tensor(moving_variance))
    return norm


@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_matches_torch(backend_name, training):
    torch = pytest.importorskip("torch")
    x = (random(4, 3, 5, 2) * 2 + 1).astype(np.float32)
    layer = BatchNormalization(gamma_initializer="random_normal", beta_initializer="random_normal",
                               moving_mean_initializer="random_normal")
    layer(x[:1])  # build, then give the moving variance values other than 1
    weights = layer.get_weights()  # gamma, beta, moving_mean, moving_variance
    weights[3] = np.array([0.5, 2.0], dtype=np.float32)
    layer.set_weights(weights)  # set_weights moves host arrays to the weights' device
    norm = torch_batch_norm(torch, layer)
    norm.train(training)

    ours_x = db.tensor(x, requires_grad=True)
    ours = layer(ours_x, training=training)
    upstream = random(*x.shape, seed=1).astype(np.float32)
    ours.backward(upstream)
    theirs_x = torch.tensor(x, requires_grad=True)
    theirs = norm(theirs_x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)  # NHWC <-> NCHW
    theirs.backward(torch.tensor(upstream))

    close(ours, theirs)
    close(ours_x.grad, theirs_x.grad)
    close(layer.gamma.grad, norm.weight.grad)
    close(layer.beta.grad, norm.bias.grad)
    close(layer.moving_mean, norm.running_mean)
    if training:
        # Keras updates the moving variance with the biased batch variance,
        # PyTorch its running_var with the unbiased one.
        batch_variance = x.reshape(-1, 2).var(axis=0)
        np.testing.assert_allclose(layer.moving_variance.numpy(),
                                   0.99 * np.array([0.5, 2.0]) + 0.01 * batch_variance, rtol=1e-5)
    else:
        close(layer.moving_variance, norm.running_var)


def test_batch_norm_moving_statistics_and_training_flag():
    x = np.array([[1.0, 10.0], [3.0, 20.0]], dtype=np.float32)
    layer = BatchNormalization(momentum=0.9)
    # Inference before any training: moving mean 0, variance 1.
    np.testing.assert_allclose(layer(x).numpy(), x / np.sqrt(1 + 1e-3), rtol=1e-6)
    np.testing.assert_allclose(layer.moving_mean.numpy(), [0, 0])
    trained = layer(x, training=True).numpy()
    np.testing.assert_allclose(trained, [[-1, -1], [1, 1]], rtol=1e-3)
    np.testing.assert_allclose(layer.moving_mean.numpy(), 0.1 * np.array([2.0, 15.0]), rtol=1e-6)
    np.testing.assert_allclose(layer.moving_variance.numpy(), 0.9 + 0.1 * np.array([1.0, 25.0]),
                               rtol=1e-6)
    # A frozen layer runs in inference mode and leaves its statistics alone.
    layer.trainable = False
    before = layer.moving_mean.numpy().copy()
    frozen = layer(x, training=True).numpy()
    np.testing.assert_array_equal(layer.moving_mean.numpy(), before)
    expected = (x - before) / np.sqrt(layer.moving_variance.numpy() + 1e-3)
    np.testing.assert_allclose(frozen, expected, rtol=1e-5)


def test_batch_norm_weights_order_and_trainability():
    layer = BatchNormalization()
    layer(np.zeros((2, 3), dtype=np.float32))
    names = [w.name.split("/")[-1] for w in layer._weights_in_creation_order()]
    assert names == ["gamma", "beta", "moving_mean", "moving_variance"]
    assert [w.name.split("/")[-1] for w in layer.trainable_weights] == ["gamma", "beta"]
    assert not layer.moving_mean.requires_grad
    plain = BatchNormalization(center=False, scale=False)
    plain(np.zeros((2, 3), dtype=np.float32))
    assert len(plain.get_weights()) == 2 and plain.trainable_weights == []


def test_batch_norm_config_round_trip():
    layer = BatchNormalization(axis=1, momentum=0.9, epsilon=1e-5, center=False,
                               gamma_initializer=initializers.Constant(2.0))
    copy = round_trip(layer)
    assert (copy.axis, copy.momentum, copy.epsilon, copy.center, copy.scale) == \
        (1, 0.9, 1e-5, False, True)
    copy(np.zeros((2, 3, 4), dtype=np.float32))
    np.testing.assert_array_equal(copy.gamma.numpy(), [2.0, 2.0, 2.0])


def test_batch_norm_errors():
    layer = BatchNormalization(name="bn")
    layer(np.zeros((2, 4), dtype=np.float32))
    with pytest.raises(ValueError, match=r"'bn' was built for 4 channels on axis -1, got input "
                                         r"of shape \(2, 3\)"):
        layer(np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"axis 3 is out of range for input of shape \(2, 4\)"):
        BatchNormalization(axis=3)(np.zeros((2, 4)))


# ----------------------------------------------------------------------------
# Embedding
# ----------------------------------------------------------------------------
def test_embedding_op_gradients_with_repeated_ids(backend_name):
    ids = np.array([[0, 3, 3], [1, 0, 4]])
    assert db.gradcheck(lambda table: F.embedding(table, ids), [random(5, 2)])
    table = db.tensor(random(5, 2), requires_grad=True)
    F.embedding(table, ids).sum().backward()
    np.testing.assert_allclose(table.grad.numpy()[:, 0], [2, 1, 0, 2, 1])  # counts of each id


def test_embedding_layer_gradients(backend_name):
    layer = Embedding(6, 3, dtype="float64")
    check_layer_gradients(layer, np.array([[5, 1], [1, 2]]), ["embeddings"])


def test_embedding_matches_torch(backend_name):
    torch = pytest.importorskip("torch")
    ids = np.array([[1, 4, 4, 0], [2, 9, 1, 1]])
    layer = Embedding(10, 3)
    ours = layer(ids)
    upstream = random(2, 4, 3, seed=1).astype(np.float32)
    ours.backward(upstream)
    theirs_layer = torch.nn.Embedding(10, 3)
    with torch.no_grad():
        theirs_layer.weight.copy_(torch.tensor(layer.get_weights()[0]))
    theirs = theirs_layer(torch.tensor(ids))
    theirs.backward(torch.tensor(upstream))
    close(ours, theirs)
    close(layer.embeddings.grad, theirs_layer.weight.grad)


def test_embedding_shapes_and_default_initializer():
    layer = Embedding(1000, 8)
    assert layer(Input(shape=(5,), dtype="int64")).shape == (None, 5, 8)
    table = layer.get_weights()[0]
    assert table.shape == (1000, 8)
    # Keras's 'uniform': RandomUniform(-0.05, 0.05).
    assert np.abs(table).max() <= 0.05 and table.std() > 0.02
    assert layer(np.array([3, 7])).shape == (2, 8)
    assert layer(np.array([[1.0, 2.0]], dtype=np.float32)).shape == (1, 2, 8)


def test_embedding_out_of_range_ids_name_the_range_and_value():
    layer = Embedding(10, 2, name="words")
    with pytest.raises(ValueError, match=r"Embedding layer 'words'.*id 12 is outside \[0, 10\)"):
        layer(np.array([[1, 12, 3]]))
    with pytest.raises(ValueError, match=r"id -1 is outside \[0, 10\)"):
        layer(np.array([[-1, 2]]))
    with pytest.raises(TypeError, match="ids must be integers, got dtype float"):
        layer(np.array([[1.5, 2.0]]))


def test_embedding_mask_and_config_round_trip():
    layer = Embedding(7, 3, mask_zero=True, embeddings_initializer="ones")
    mask = layer.compute_mask(np.array([[0, 2, 0]]))
    np.testing.assert_array_equal(mask.numpy(), [[False, True, False]])
    assert Embedding(7, 3).compute_mask(np.array([[0, 1]])) is None
    copy = round_trip(layer)
    assert (copy.input_dim, copy.output_dim, copy.mask_zero) == (7, 3, True)
    np.testing.assert_array_equal(copy(np.array([1])).numpy(), np.ones((1, 3)))
    with pytest.raises(ValueError, match="input_dim must be a positive int"):
        Embedding(0, 3)
