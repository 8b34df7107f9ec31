"""The 'cupy' backend end to end: device moves, layers, training, predict.

Every test runs twice (the `gpu` fixture of conftest.py): on a real GPU ('cuda',
skipped with the reason where CuPy or a GPU is missing) and on the fake CuPy of
tests/fake_cupy.py ('fake'),
whose device arrays run the NumPy reference kernels on the CPU and raise where
a NumPy array meets device code. The fake checks the device handling of the
Python code on any machine; the real run checks the CUDA kernels as well.
"""
import numpy as np
import pytest

import deepbreadth as db
from deepbreadth import backend, losses, optimizers
from deepbreadth.layers import LSTM, Conv2D, Dense, Input, Reshape
from deepbreadth.models import Sequential


def on_device(tensor):
    return backend.is_gpu_array(tensor.data)


def conv_lstm_model(classes=3):
    """Conv2D -> one sequence step per image row -> LSTM -> Dense, for 6x5 images."""
    return Sequential([
        Input(shape=(6, 5, 1)),
        Conv2D(4, 3, padding="same", activation="relu"),
        Reshape((6, 5 * 4)),
        LSTM(5),
        Dense(classes),
    ])


# ----------------------------------------------------------------------------
# Tensors and device moves
# ----------------------------------------------------------------------------
def test_new_tensors_live_on_the_gpu_and_numpy_copies_back(gpu):
    t = db.tensor([[1.0, 2.0], [3.0, 4.0]])
    assert t.device == "cuda" and on_device(t)
    assert isinstance(t.numpy(), np.ndarray)
    np.testing.assert_array_equal(t.numpy(), [[1.0, 2.0], [3.0, 4.0]])
    assert "device='cuda'" in repr(t)


def test_to_cuda_and_back_passes_gradients_to_the_cpu_leaf(gpu):
    x = db.Tensor(np.array([1.0, -2.0, 3.0]), dtype="float64", requires_grad=True)
    assert x.device == "cpu"
    on_gpu = x.to("cuda")
    assert on_gpu.device == "cuda" and on_device(on_gpu)
    back = (on_gpu * on_gpu).to("cpu")
    assert back.device == "cpu"
    back.sum().backward()
    assert x.grad.device == "cpu"
    np.testing.assert_allclose(x.grad.numpy(), [2.0, -4.0, 6.0])


def test_backward_takes_a_numpy_gradient_for_a_gpu_tensor(gpu):
    x = db.tensor([1.0, 2.0], dtype="float64", requires_grad=True)
    (x * 3).backward(np.array([1.0, 0.5]))
    assert on_device(x.grad)
    np.testing.assert_allclose(x.grad.numpy(), [3.0, 1.5])


def test_numpy_arrays_next_to_gpu_tensors_go_to_the_gpu(gpu):
    x = db.tensor([1.0, 2.0], requires_grad=True)
    y = x * np.array([2.0, 3.0], dtype=np.float32) + np.float32(1)
    assert on_device(y)
    db.where([True, False], x, 0.0).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [1.0, 0.0])


def test_tensors_on_two_devices_raise_backend_error(gpu):
    with pytest.raises(db.BackendError, match=r"different devices \(cpu, cuda\)"):
        db.Tensor(np.ones(3)) + db.tensor(np.ones(3))


# ----------------------------------------------------------------------------
# Layers
# ----------------------------------------------------------------------------
def test_a_layer_takes_numpy_input_onto_its_weights_device(gpu):
    layer = Dense(3)
    output = layer(np.ones((2, 4), dtype=np.float32))
    assert all(on_device(w) for w in layer.weights)
    assert on_device(output) and output.shape == (2, 3)


def test_a_cpu_tensor_given_to_a_gpu_layer_is_a_clear_error(gpu):
    layer = Dense(3, name="classifier")
    layer(np.ones((2, 4), dtype=np.float32))  # built: weights on the GPU
    with pytest.raises(db.BackendError, match=r"layer 'classifier' has its weights on cuda "
                                              r"but got a Tensor on cpu.*\.to\('cuda'\)"):
        layer(db.Tensor(np.ones((2, 4))))
    layer.to("cpu")
    assert layer(db.Tensor(np.ones((2, 4)))).device == "cpu"
    with pytest.raises(db.BackendError, match="weights on cpu but got a Tensor on cuda"):
        layer(db.tensor(np.ones((2, 4))))


def test_dense_conv_lstm_forward_backward_and_step_stay_on_the_device(gpu):
    """Every array the training step touches is a device array: the weights, the
    activations, the gradients and the optimizer's slots."""
    model = conv_lstm_model()
    images = np.random.default_rng(0).standard_normal((4, 6, 5, 1)).astype(np.float32)
    labels = np.array([0, 2, 1, 2])
    logits = model(images)
    assert on_device(logits) and logits.shape == (4, 3)
    loss = losses.SparseCategoricalCrossentropy(from_logits=True)(labels, logits)
    loss.backward()
    weights = model.trainable_weights
    assert len(weights) == 7  # conv kernel and bias, LSTM's three, dense kernel and bias
    before = [w.numpy().copy() for w in weights]
    optimizer = optimizers.Adam(learning_rate=0.01)
    optimizer.step(weights)
    for weight, old in zip(weights, before):
        assert on_device(weight) and on_device(weight.grad), weight.name
        assert all(backend.is_gpu_array(slot) for slot in optimizer._slots[id(weight)].values())
        assert not np.array_equal(weight.numpy(), old), f"{weight.name} did not move"


# ----------------------------------------------------------------------------
# Labels
# ----------------------------------------------------------------------------
@pytest.mark.parametrize("where", ["host", "device"])
def test_sparse_labels_are_checked_on_either_side_with_the_same_errors(gpu, where):
    logits = db.tensor(np.zeros((3, 4)), requires_grad=True)

    def labels(values, dtype=None):
        array = np.array(values, dtype=dtype)
        return array if where == "host" else backend.to_device(array, "cuda")

    def loss(y_true):
        return losses.sparse_categorical_crossentropy(y_true, logits, from_logits=True)

    with pytest.raises(ValueError, match=r"label 7 at position 1 is outside \[0, 4\)"):
        loss(labels([0, 7, 1]))
    with pytest.raises(ValueError, match=r"label -1 at position 2"):
        loss(labels([0, 1, -1]))
    with pytest.raises(ValueError, match=r"label 4 at position 0"):
        loss(labels([4, 1, 2], np.int32))
    with pytest.raises(ValueError, match=r"whole numbers.*label 1.5 at position 2"):
        loss(labels([0.0, 1.0, 1.5]))
    per_sample = loss(labels([0, 3, 1], np.int32))
    assert on_device(per_sample)
    np.testing.assert_allclose(per_sample.numpy(), np.full(3, np.log(4.0)), rtol=1e-6)
    np.testing.assert_allclose(loss(labels([0.0, 3.0, 1.0])).numpy(), per_sample.numpy())


def test_numpy_labels_are_checked_on_the_host_before_they_move(gpu, monkeypatch):
    logits = db.tensor(np.zeros((3, 4)))
    moved_to_gpu = []
    move = backend.to_device

    def recording_move(array, device):
        if device == "cuda":
            moved_to_gpu.append(array)
        return move(array, device)

    monkeypatch.setattr(backend, "to_device", recording_move)
    with pytest.raises(ValueError, match="outside"):
        losses.sparse_categorical_crossentropy(np.array([0, 9, 1]), logits, from_logits=True)
    assert moved_to_gpu == [], "bad labels were copied to the device before being checked"
    losses.sparse_categorical_crossentropy(np.array([0, 2, 1]), logits, from_logits=True)
    assert len(moved_to_gpu) == 1 and isinstance(moved_to_gpu[0], np.ndarray)


# ----------------------------------------------------------------------------
# Models: fit, predict, move
# ----------------------------------------------------------------------------
def test_fit_on_numpy_data_lowers_the_loss_and_predict_returns_numpy(gpu):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((96, 6)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int64)
    model = Sequential([Input(shape=(6,)), Dense(16, activation="relu"), Dense(2)])
    model.compile(optimizer=optimizers.Adam(learning_rate=0.02),
                  loss=losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    history = model.fit(x, y, epochs=8, batch_size=32, verbose=0)
    assert all(on_device(w) for w in model.weights)
    assert history.history["loss"][-1] < 0.7 * history.history["loss"][0]
    predictions = model.predict(x, verbose=0)
    assert isinstance(predictions, np.ndarray) and predictions.shape == (96, 2)

    model.to("cpu")
    assert all(w.device == "cpu" for w in model.weights)
    np.testing.assert_allclose(model.predict(x, verbose=0), predictions, rtol=1e-5, atol=1e-5)
    model.fit(x, y, epochs=1, batch_size=32, verbose=0)  # trains on, on the CPU
    assert all(w.device == "cpu" for w in model.weights)


def test_single_batch_methods_keep_a_device_batch_on_the_device(gpu, monkeypatch):
    """train_on_batch, test_on_batch and predict_on_batch given CuPy arrays use them
    where they are: no copy to the host and back, and the same numbers as for the
    host batch."""
    import cupy

    rng = np.random.default_rng(3)
    x = rng.standard_normal((8, 6)).astype(np.float32)
    y = rng.integers(0, 2, size=8)

    def compiled_model():
        model = Sequential([Input(shape=(6,)), Dense(4, activation="relu"), Dense(2)])
        model.build((None, 6))
        model.compile(optimizer=optimizers.Adam(learning_rate=0.01),
                      loss=losses.SparseCategoricalCrossentropy(from_logits=True))
        return model

    on_host, on_device_model = compiled_model(), compiled_model()
    on_device_model.set_weights(on_host.get_weights())
    expected = [on_host.train_on_batch(x, y), on_host.test_on_batch(x, y),
                on_host.predict_on_batch(x)]

    device_x, device_y = cupy.asarray(x), cupy.asarray(y)
    to_host = backend.to_device

    def refuse_device_batches(array, device):
        if device == "cpu" and (array is device_x or array is device_y):
            raise AssertionError("a device batch was copied to the host")
        return to_host(array, device)

    monkeypatch.setattr(backend, "to_device", refuse_device_batches)
    found = [on_device_model.train_on_batch(device_x, device_y),
             on_device_model.test_on_batch(device_x, device_y),
             on_device_model.predict_on_batch(device_x)]
    for name, mine, theirs in zip(["train loss", "test loss", "predictions"], found, expected):
        np.testing.assert_allclose(mine, theirs, rtol=1e-5, atol=1e-6, err_msg=name)
    assert isinstance(found[2], np.ndarray)


def test_gpu_and_numba_agree_on_a_conv_lstm_model(gpu):
    """The same weights and data through the GPU kernels (the reference kernels
    for the fake) and the Numba kernels: outputs and gradients within float32
    tolerance."""
    pytest.importorskip("numba", reason="Numba is not installed: no CPU kernels to compare")
    images = np.random.default_rng(2).standard_normal((3, 6, 5, 1)).astype(np.float32)
    labels = np.array([1, 0, 2])
    gpu_model = conv_lstm_model()
    gpu_model.build((None, 6, 5, 1))
    weights = gpu_model.get_weights()

    def run(model):
        inputs = db.tensor(images, requires_grad=True)
        logits = model(inputs)
        loss = losses.SparseCategoricalCrossentropy(from_logits=True)(labels, logits)
        loss.backward()
        return [logits.numpy(), inputs.grad.numpy()] + [w.grad.numpy() for w in model.weights]

    on_gpu = run(gpu_model)
    db.set_backend("numba")
    try:
        cpu_model = conv_lstm_model()
        cpu_model.build((None, 6, 5, 1))
        cpu_model.set_weights(weights)
        on_cpu = run(cpu_model)
    finally:
        db.set_backend("cupy")
    names = ["logits", "grad of the input"] + [w.name for w in gpu_model.weights]
    for name, mine, theirs in zip(names, on_gpu, on_cpu):
        np.testing.assert_allclose(mine, theirs, rtol=1e-4, atol=1e-5, err_msg=name)


def test_a_bad_label_on_the_device_is_named_without_a_read_before_the_loss(gpu, monkeypatch):
    """Labels already on the GPU are not read back before the loss (that read would
    wait for the whole forward pass); the loss kernel gives a bad label's sample a
    NaN loss, and train_on_batch then names the label and leaves the weights alone."""
    import cupy

    from deepbreadth.functional import loss as functional_loss

    rng = np.random.default_rng(4)
    x = cupy.asarray(rng.standard_normal((4, 6)).astype(np.float32))
    model = Sequential([Input(shape=(6,)), Dense(3)])
    model.compile(optimizer=optimizers.Adam(learning_rate=0.01),
                  loss=losses.SparseCategoricalCrossentropy(from_logits=True))
    model.build((None, 6))
    before = [w.numpy().copy() for w in model.weights]

    reads = []
    original = functional_loss._some_label_outside

    def counting(labels, classes):
        reads.append(backend.is_gpu_array(labels))
        return original(labels, classes)

    monkeypatch.setattr(functional_loss, "_some_label_outside", counting)
    model.train_on_batch(x, cupy.asarray(np.array([0, 2, 1, 1])))
    assert reads == [], "device labels were read back before the loss"

    with pytest.raises(ValueError, match=r"label 3 at position 2 is outside \[0, 3\)"):
        model.train_on_batch(x, cupy.asarray(np.array([0, 2, 3, 1])))
    trained_once = [w.numpy() for w in model.weights]
    with pytest.raises(ValueError, match=r"outside \[0, 3\)"):
        model.test_on_batch(x, cupy.asarray(np.array([-1, 0, 0, 0])))
    for weight, old in zip(model.weights, trained_once):
        np.testing.assert_array_equal(weight.numpy(), old)
    assert not all(np.array_equal(w.numpy(), b) for w, b in zip(model.weights, before))
