"""Keras tutorial code runs unchanged with `import deepbreadth as tf`."""
import contextlib
import subprocess
import sys
import warnings

import numpy as np
import pytest

import deepbreadth as tf
from deepbreadth.losses import LogitsWarning


@pytest.fixture(autouse=True)
def seeded():
    tf.set_seed(0)


@pytest.fixture
def one_blas_thread():
    """Run on one BLAS thread. On a small machine shared with other jobs,
    OpenBLAS's threads wait on each other and a modest matrix product takes
    a hundred times longer; one thread is plenty for these sizes."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        limits = contextlib.nullcontext()
    else:
        limits = threadpool_limits(1, user_api="blas")
    with limits:
        yield


@pytest.fixture(scope="module")
def mnist_slice():
    """3,000 training and 500 test images of MNIST, scaled to [0, 1]."""
    (x_train, y_train), (x_test, y_test) = tf.keras.datasets.mnist.load_data()
    return ((x_train[:3000] / 255.0).astype(np.float32), y_train[:3000],
            (x_test[:500] / 255.0).astype(np.float32), y_test[:500])


def test_the_beginner_tutorial_runs_and_learns(mnist_slice, one_blas_thread):
    X_train, y_train, X_test, y_test = mnist_slice
    model = tf.keras.models.Sequential([
        tf.keras.layers.Flatten(input_shape=(28, 28)),
        tf.keras.layers.Dense(128, activation='relu'),
        tf.keras.layers.Dropout(0.2),
        tf.keras.layers.Dense(10)
    ])
    model.compile(optimizer='adam', loss='sparse_categorical_crossentropy', metrics=['accuracy'])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = model.fit(X_train, y_train, epochs=3, validation_data=(X_test, y_test), verbose=0)
    y_pred = model.predict(X_test)

    # The last layer gives logits to a loss that expects probabilities: one
    # warning, and the loss reads them as logits, so training works.
    assert sum(issubclass(w.category, LogitsWarning) for w in caught) == 1
    assert set(history.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert history.history["val_accuracy"][-1] >= 0.88
    assert y_pred.shape == (500, 10)
    accuracy = (y_pred.argmax(axis=1) == y_test).mean()
    assert accuracy == pytest.approx(history.history["val_accuracy"][-1])


def test_the_stacked_lstm_tutorial_builds_and_trains(mnist_slice, one_blas_thread):
    from deepbreadth.keras.layers import LSTM, Dense, Dropout
    from deepbreadth.keras.models import Sequential

    X_train, y_train, _, _ = mnist_slice
    model = Sequential([
        LSTM(512, activation='relu', input_shape=(28, 28), return_sequences=True),
        Dropout(0.2),
        LSTM(512, activation='relu'),
        Dropout(0.2),
        Dense(10),
    ])
    assert model.output_shape == (None, 10)
    assert model.count_params() == 4 * 512 * (28 + 512 + 1) + 4 * 512 * (512 + 512 + 1) + 5130
    model.compile(loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  optimizer=tf.keras.optimizers.Adam(learning_rate=1e-3), metrics=['accuracy'])
    # One step on four images: this model is large, and the test only shows it runs.
    history = model.fit(X_train[:4], y_train[:4], batch_size=4, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


def test_the_stacked_lstm_mistake_gets_the_fix():
    from deepbreadth.keras.layers import LSTM, Dense, Dropout
    from deepbreadth.keras.models import Sequential

    with pytest.raises(ValueError, match="return_sequences=True"):
        Sequential([LSTM(16, activation='relu', input_shape=(28, 28)), Dropout(0.2),
                    LSTM(16, activation='relu'), Dropout(0.2), Dense(10)])


def test_functional_api_and_top_level_names():
    inputs = tf.keras.Input(shape=(4,))
    x = tf.keras.layers.Dense(8, activation="relu")(inputs)
    outputs = tf.keras.layers.Dense(1, activation="sigmoid")(x)
    model = tf.keras.Model(inputs=inputs, outputs=outputs)
    model.compile(optimizer=tf.keras.optimizers.SGD(learning_rate=0.1), loss="binary_crossentropy",
                  metrics=["accuracy"])
    x_data = np.random.default_rng(0).normal(size=(64, 4)).astype(np.float32)
    y_data = (x_data[:, 0] > 0).astype(np.float32)
    history = model.fit(x_data, y_data, epochs=20, batch_size=16, verbose=0)
    assert history.history["accuracy"][-1] >= 0.9
    assert tf.keras.Sequential is tf.keras.models.Sequential


def test_keras_namespaces():
    keras = tf.keras
    assert keras.layers.Dense is tf.layers.Dense
    assert keras.layers.InputLayer is tf.models.InputLayer
    assert keras.optimizers.Adam is tf.optimizers.Adam
    schedule = keras.optimizers.schedules.ExponentialDecay(0.1, decay_steps=10, decay_rate=0.5)
    assert keras.optimizers.Adam(learning_rate=schedule).learning_rate == pytest.approx(0.1)
    from deepbreadth.keras.optimizers.schedules import ExponentialDecay

    assert ExponentialDecay is type(schedule)
    assert keras.losses.SparseCategoricalCrossentropy is tf.losses.SparseCategoricalCrossentropy
    assert keras.metrics.SparseCategoricalAccuracy is tf.metrics.SparseCategoricalAccuracy
    assert keras.callbacks.EarlyStopping is tf.callbacks.EarlyStopping
    assert keras.initializers.GlorotUniform is tf.initializers.GlorotUniform
    assert keras.activations.get("relu") is keras.activations.relu
    assert keras.datasets.mnist is tf.datasets.mnist
    assert hasattr(keras.datasets.fashion_mnist, "load_data")
    assert keras.models.load_model is tf.models.load_model


def test_backend_functions():
    keras_backend = tf.keras.backend
    assert keras_backend.floatx() == "float32"
    keras_backend.set_floatx("float64")
    try:
        assert tf.keras.layers.Dense(2)(np.zeros((1, 3))).dtype == np.float64
    finally:
        keras_backend.set_floatx("float32")
    tf.keras.layers.Dense(2)
    keras_backend.clear_session()
    assert tf.keras.layers.Dense(2).name == "dense"
    assert keras_backend.epsilon() == 1e-7


def test_to_categorical():
    to_categorical = tf.keras.utils.to_categorical
    np.testing.assert_array_equal(to_categorical([0, 2, 1], 3), np.eye(3)[[0, 2, 1]])
    assert to_categorical(np.array([[1], [0]])).shape == (2, 2)
    assert to_categorical([1, 0], 2).dtype == np.float32
    with pytest.raises(ValueError, match=r"label 5 at index \(1,\) is not below num_classes=3"):
        to_categorical([0, 5], 3)
    with pytest.raises(ValueError, match=">= 0"):
        to_categorical([0, -1])
    with pytest.raises(ValueError, match="whole-number"):
        to_categorical([0.5])


def test_set_random_seed_repeats_weights():
    tf.keras.utils.set_random_seed(7)
    first = tf.keras.layers.Dense(3)(np.zeros((1, 2), np.float32))
    first_kernel = tf.keras.layers.Dense(3)
    first_kernel.build((None, 2))
    tf.keras.utils.set_random_seed(7)
    tf.keras.layers.Dense(3)(np.zeros((1, 2), np.float32))
    second_kernel = tf.keras.layers.Dense(3)
    second_kernel.build((None, 2))
    np.testing.assert_array_equal(first_kernel.kernel.numpy(), second_kernel.kernel.numpy())
    assert first.shape == (1, 3)


def test_import_deepbreadth_loads_the_higher_layers_lazily():
    code = ("import sys, deepbreadth\n"
            "assert 'deepbreadth.models' not in sys.modules\n"
            "assert 'deepbreadth.layers' not in sys.modules\n"
            "assert 'deepbreadth.keras' not in sys.modules\n"
            "deepbreadth.keras.layers.Dense\n"
            "assert 'deepbreadth.layers' in sys.modules\n"
            "print(deepbreadth.callbacks.History.__name__, deepbreadth.datasets.mnist.__name__)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["History", "deepbreadth.datasets.mnist"]
    with pytest.raises(AttributeError, match="no attribute 'kears'"):
        tf.kears  # noqa: B018
