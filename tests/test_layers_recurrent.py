"""SimpleRNN, LSTM, GRU and Bidirectional: gradients, PyTorch parity, Keras semantics, errors.

Three oracles:
- float64 finite differences (deepbreadth.gradcheck) for the input, every
  weight and the initial states, on every tested backend (conftest.py);
- PyTorch's nn.RNN / nn.LSTM / nn.GRU with the same weights (converted from
  Keras's layout), forward values and gradients in float32;
- a plain NumPy loop for what PyTorch cannot do (an LSTM with activation='relu').
"""
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import deepbreadth as db
from deepbreadth import initializers
from deepbreadth.layers import (GRU, LSTM, Bidirectional, Input, SequenceInputError,
                                SimpleRNN)

LAYER_CLASSES = [SimpleRNN, LSTM, GRU]
STATE_COUNT = {SimpleRNN: 1, LSTM: 2, GRU: 1}


@pytest.fixture(autouse=True)
def seeded():
    db.set_seed(1234)


def random_array(*shape, seed=0, dtype="float64"):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


# ----------------------------------------------------------------------------
# Helpers: run a layer with weights supplied from outside (for gradcheck)
# ----------------------------------------------------------------------------
def recurrent_parts(layer):
    if isinstance(layer, Bidirectional):
        return [layer.forward_layer, layer.backward_layer]
    return [layer]


def weight_slots(layer):
    """(owner, attribute) of every weight, in get_weights() order."""
    return [(part, name) for part in recurrent_parts(layer)
            for name in ("kernel", "recurrent_kernel", "bias") if getattr(part, name) is not None]


def as_tuple(outputs):
    return tuple(outputs) if isinstance(outputs, list) else outputs


def layer_function(layer, **call_options):
    """fn(x, *weights, *initial_states) that runs `layer` with those tensors as its
    weights, so that gradcheck can perturb and differentiate every one of them."""
    slots = weight_slots(layer)

    def run(x, *tensors):
        weights, states = tensors[:len(slots)], list(tensors[len(slots):])
        saved = [getattr(owner, name) for owner, name in slots]
        for (owner, name), weight in zip(slots, weights):
            setattr(owner, name, weight)
        try:
            outputs = layer(x, initial_state=states or None, **call_options)
        finally:
            for (owner, name), weight in zip(slots, saved):
                setattr(owner, name, weight)
        return as_tuple(outputs)

    # The slots must be the layer's weights, in get_weights() order.
    assert all(getattr(owner, name) is weight
               for (owner, name), weight in zip(slots, layer.weights))
    assert len(slots) == len(layer.weights)
    return run


def built(layer, x):
    layer(x)
    return layer


def check_layer_gradients(layer, x, initial_states=()):
    layer = built(layer, x)
    weights = layer.get_weights()
    fn = layer_function(layer)
    assert db.gradcheck(fn, [x] + weights + list(initial_states))


# ----------------------------------------------------------------------------
# Gradients: every input, weight and initial state, both backends
# ----------------------------------------------------------------------------
LAYER_OPTIONS = {
    "last_output": {},
    "sequences": {"return_sequences": True},
    "state": {"return_state": True},
    "backwards_sequences": {"go_backwards": True, "return_sequences": True},
    "backwards_state": {"go_backwards": True, "return_state": True},
    "no_bias_sigmoid": {"use_bias": False, "activation": "sigmoid"},
}


@pytest.mark.parametrize("options", LAYER_OPTIONS.values(), ids=LAYER_OPTIONS.keys())
@pytest.mark.parametrize("layer_class", LAYER_CLASSES, ids=lambda c: c.__name__)
def test_gradients_match_finite_differences(backend_name, layer_class, options):
    x = random_array(2, 3, 2)
    layer = layer_class(2, dtype="float64", bias_initializer="random_normal", **options)
    check_layer_gradients(layer, x)


@pytest.mark.parametrize("layer_class", LAYER_CLASSES, ids=lambda c: c.__name__)
def test_gradients_reach_initial_states(backend_name, layer_class):
    x = random_array(2, 3, 2)
    states = [random_array(2, 2, seed=1 + i) for i in range(STATE_COUNT[layer_class])]
    layer = layer_class(2, dtype="float64", return_sequences=True, return_state=True)
    check_layer_gradients(layer, x, states)


def test_relu_lstm_gradients(backend_name):
    x = random_array(2, 3, 2)
    layer = LSTM(2, activation="relu", recurrent_activation="hard_sigmoid", dtype="float64",
                 return_state=True)
    check_layer_gradients(layer, x)


@pytest.mark.parametrize("merge_mode", ["concat", "sum", "mul", "ave", None])
def test_bidirectional_gradients(backend_name, merge_mode):
    x = random_array(2, 3, 2)
    layer = Bidirectional(GRU(2, return_sequences=True, dtype="float64"), merge_mode=merge_mode)
    check_layer_gradients(layer, x)


def test_bidirectional_lstm_states_gradients(backend_name):
    x = random_array(2, 3, 2)
    states = [random_array(2, 2, seed=1 + i) for i in range(4)]
    layer = Bidirectional(LSTM(2, return_state=True, dtype="float64"))
    check_layer_gradients(layer, x, states)


def test_sequence_ops_are_once_differentiable():
    x = db.tensor(random_array(1, 2, 2), requires_grad=True, dtype="float64")
    layer = built(SimpleRNN(2, dtype="float64"), x)
    (gradient,) = db.grad(layer(x).sum(), [x], create_graph=False)
    assert gradient.shape == x.shape
    with pytest.raises(RuntimeError, match="once differentiable"):
        db.grad(layer(x).sum(), [x], create_graph=True)


# ----------------------------------------------------------------------------
# PyTorch parity, float32, converted weights
# ----------------------------------------------------------------------------
def keras_gates_to_torch_gru(array, units):
    """Keras GRU gate blocks z, r, h -> PyTorch's r, z, n along the last axis."""
    z, r, h = (array[..., i * units:(i + 1) * units] for i in range(3))
    return np.concatenate([r, z, h], axis=-1)


def torch_gates_to_keras_gru(array, units):
    r, z, h = (array[..., i * units:(i + 1) * units] for i in range(3))
    return np.concatenate([z, r, h], axis=-1)


def torch_layer_for(layer, torch):
    """A PyTorch module holding `layer`'s weights, and a function turning the PyTorch
    gradients back into Keras's layout (one array per deepbreadth weight)."""
    features = layer.kernel.shape[0]
    units = layer.units
    kernel, recurrent_kernel, bias = layer.get_weights()
    if isinstance(layer, GRU):
        module = torch.nn.GRU(features, units, batch_first=True)
        to_torch = lambda a: keras_gates_to_torch_gru(a, units)  # noqa: E731
        to_keras = lambda a: torch_gates_to_keras_gru(a, units)  # noqa: E731
        bias_ih, bias_hh = to_torch(bias[0]), to_torch(bias[1])
    else:
        module = (torch.nn.LSTM(features, units, batch_first=True) if isinstance(layer, LSTM)
                  else torch.nn.RNN(features, units, batch_first=True, nonlinearity="tanh"))
        to_torch = to_keras = lambda a: a  # noqa: E731  same gate order i, f, g, o
        bias_ih, bias_hh = bias, np.zeros_like(bias)
    with torch.no_grad():
        module.weight_ih_l0.copy_(torch.from_numpy(to_torch(kernel).T.copy()))
        module.weight_hh_l0.copy_(torch.from_numpy(to_torch(recurrent_kernel).T.copy()))
        module.bias_ih_l0.copy_(torch.from_numpy(bias_ih.copy()))
        module.bias_hh_l0.copy_(torch.from_numpy(bias_hh.copy()))

    def gradients_in_keras_layout():
        grad_kernel = to_keras(module.weight_ih_l0.grad.numpy().T)
        grad_recurrent = to_keras(module.weight_hh_l0.grad.numpy().T)
        grad_ih = to_keras(module.bias_ih_l0.grad.numpy())
        grad_hh = to_keras(module.bias_hh_l0.grad.numpy())
        # Keras's single LSTM/RNN bias is added where both PyTorch biases are.
        grad_bias = np.stack([grad_ih, grad_hh]) if isinstance(layer, GRU) else grad_ih
        return [grad_kernel, grad_recurrent, grad_bias]

    return module, gradients_in_keras_layout


def assert_close32(actual, expected, what):
    np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-5, err_msg=what)


@pytest.mark.parametrize("layer_class", LAYER_CLASSES, ids=lambda c: c.__name__)
def test_matches_pytorch(backend_name, layer_class):
    torch = pytest.importorskip("torch")
    batch, steps, features, units = 3, 5, 4, 3
    x_values = random_array(batch, steps, features, dtype="float32")
    states_values = [random_array(batch, units, seed=5 + i, dtype="float32")
                     for i in range(STATE_COUNT[layer_class])]
    layer = layer_class(units, return_sequences=True, return_state=True,
                        bias_initializer="random_normal")
    layer(x_values)  # build

    x = db.tensor(x_values, requires_grad=True)
    states = [db.tensor(s, requires_grad=True) for s in states_values]
    outputs = layer(x, initial_state=states)
    output_weights = [random_array(*o.shape, seed=20 + i, dtype="float32")
                      for i, o in enumerate(outputs)]
    loss = sum((o * db.tensor(w)).sum() for o, w in zip(outputs, output_weights))
    loss.backward()

    module, torch_weight_grads = torch_layer_for(layer, torch)
    torch_x = torch.tensor(x_values, requires_grad=True)
    torch_states = [torch.tensor(s[None], requires_grad=True) for s in states_values]
    if layer_class is LSTM:
        torch_seq, (torch_h, torch_c) = module(torch_x, tuple(torch_states))
        torch_outputs = [torch_seq, torch_h[0], torch_c[0]]
    else:
        torch_seq, torch_h = module(torch_x, torch_states[0])
        torch_outputs = [torch_seq, torch_h[0]]
    torch_loss = sum((o * torch.from_numpy(w)).sum()
                     for o, w in zip(torch_outputs, output_weights))
    torch_loss.backward()

    for index, (ours, theirs) in enumerate(zip(outputs, torch_outputs)):
        assert_close32(ours.numpy(), theirs.detach().numpy(), f"output {index}")
    assert_close32(x.grad.numpy(), torch_x.grad.numpy(), "grad of x")
    for index, (state, torch_state) in enumerate(zip(states, torch_states)):
        assert_close32(state.grad.numpy(), torch_state.grad.numpy()[0], f"grad of state {index}")
    ours = [w.grad.numpy() for w in layer.weights]
    for name, mine, theirs in zip(("kernel", "recurrent_kernel", "bias"), ours,
                                  torch_weight_grads()):
        assert_close32(mine, theirs, f"grad of {name}")


def test_bidirectional_matches_pytorch(backend_name):
    torch = pytest.importorskip("torch")
    x_values = random_array(2, 4, 3, dtype="float32")
    layer = Bidirectional(LSTM(2, return_sequences=True, bias_initializer="random_normal"))
    x = db.tensor(x_values, requires_grad=True)
    output = layer(x)
    output.sum().backward()

    module = torch.nn.LSTM(3, 2, batch_first=True, bidirectional=True)
    kernel_f, recurrent_f, bias_f, kernel_b, recurrent_b, bias_b = layer.get_weights()
    with torch.no_grad():
        for suffix, (kernel, recurrent, bias) in (("", (kernel_f, recurrent_f, bias_f)),
                                                  ("_reverse", (kernel_b, recurrent_b, bias_b))):
            getattr(module, "weight_ih_l0" + suffix).copy_(torch.from_numpy(kernel.T.copy()))
            getattr(module, "weight_hh_l0" + suffix).copy_(torch.from_numpy(recurrent.T.copy()))
            getattr(module, "bias_ih_l0" + suffix).copy_(torch.from_numpy(bias))
            getattr(module, "bias_hh_l0" + suffix).zero_()
    torch_x = torch.tensor(x_values, requires_grad=True)
    torch_output, _ = module(torch_x)
    torch_output.sum().backward()

    assert_close32(output.numpy(), torch_output.detach().numpy(), "bidirectional output")
    assert_close32(x.grad.numpy(), torch_x.grad.numpy(), "grad of x")
    grad_backward_kernel = layer.backward_layer.kernel.grad.numpy()
    assert_close32(grad_backward_kernel, module.weight_ih_l0_reverse.grad.numpy().T,
                   "grad of the backward kernel")


# ----------------------------------------------------------------------------
# A plain NumPy loop as the oracle for activations PyTorch lacks
# ----------------------------------------------------------------------------
def numpy_lstm(x, kernel, recurrent_kernel, bias, activation, recurrent_activation):
    units = recurrent_kernel.shape[0]
    h = np.zeros((x.shape[0], units))
    c = np.zeros((x.shape[0], units))
    outputs = []
    for t in range(x.shape[1]):
        z = x[:, t] @ kernel + h @ recurrent_kernel + bias
        i = recurrent_activation(z[:, :units])
        f = recurrent_activation(z[:, units:2 * units])
        g = activation(z[:, 2 * units:3 * units])
        o = recurrent_activation(z[:, 3 * units:])
        c = f * c + i * g
        h = o * activation(c)
        outputs.append(h)
    return np.stack(outputs, axis=1), c


def test_relu_lstm_matches_numpy_loop(backend_name):
    # The seed model's layer is LSTM(512, activation='relu'); the same maths, smaller.
    x = random_array(3, 6, 5, dtype="float32")
    layer = LSTM(8, activation="relu", return_sequences=True, return_state=True,
                 bias_initializer="random_normal")
    sequence, h, c = layer(x)
    relu = lambda a: np.maximum(a, 0)  # noqa: E731
    sigmoid = lambda a: 1 / (1 + np.exp(-a))  # noqa: E731
    expected_sequence, expected_c = numpy_lstm(x.astype(np.float64), *layer.get_weights(),
                                               relu, sigmoid)
    assert_close32(sequence.numpy(), expected_sequence, "relu LSTM sequence")
    assert_close32(h.numpy(), expected_sequence[:, -1], "relu LSTM h")
    assert_close32(c.numpy(), expected_c, "relu LSTM c")
    assert (sequence.numpy() != 0).any()


# ----------------------------------------------------------------------------
# Keras semantics
# ----------------------------------------------------------------------------
@pytest.mark.parametrize("layer_class", LAYER_CLASSES, ids=lambda c: c.__name__)
def test_keras_weight_shapes_and_output_shapes(layer_class):
    x = random_array(4, 7, 5, dtype="float32")
    gates = {SimpleRNN: 1, LSTM: 4, GRU: 3}[layer_class]
    layer = layer_class(6)
    assert layer(x).shape == (4, 6)
    kernel, recurrent_kernel, bias = layer.get_weights()
    assert kernel.shape == (5, gates * 6)
    assert recurrent_kernel.shape == (6, gates * 6)
    assert bias.shape == ((2, 18) if layer_class is GRU else (gates * 6,))
    assert kernel.dtype == np.float32
    assert [w.name for w in layer.weights] == [
        f"{layer.name}/kernel", f"{layer.name}/recurrent_kernel", f"{layer.name}/bias"]
    outputs = layer_class(6, return_sequences=True, return_state=True)(x)
    assert isinstance(outputs, list)
    assert [o.shape for o in outputs] == [(4, 7, 6)] + [(4, 6)] * STATE_COUNT[layer_class]


def test_lstm_forget_gate_bias_starts_at_one():
    layer = built(LSTM(3), random_array(1, 2, 2, dtype="float32"))
    np.testing.assert_array_equal(layer.get_weights()[2], [0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0])
    plain = built(LSTM(3, unit_forget_bias=False), random_array(1, 2, 2, dtype="float32"))
    np.testing.assert_array_equal(plain.get_weights()[2], np.zeros(12))


def test_recurrent_kernel_starts_orthogonal():
    layer = built(SimpleRNN(4), random_array(1, 2, 3, dtype="float32"))
    recurrent = layer.get_weights()[1]
    np.testing.assert_allclose(recurrent @ recurrent.T, np.eye(4), atol=1e-5)


@pytest.mark.parametrize("layer_class", LAYER_CLASSES, ids=lambda c: c.__name__)
def test_state_is_last_output(layer_class):
    x = random_array(2, 4, 3, dtype="float32")
    sequence, h, *_ = layer_class(5, return_sequences=True, return_state=True)(x)
    np.testing.assert_array_equal(h.numpy(), sequence.numpy()[:, -1])


@settings(max_examples=10)
@given(batch=st.integers(1, 3), steps=st.integers(1, 4), features=st.integers(1, 3),
       units=st.integers(1, 3), layer_index=st.integers(0, 2), return_sequences=st.booleans())
def test_go_backwards_reads_the_reversed_sequence(batch, steps, features, units, layer_index,
                                                  return_sequences):
    layer_class = LAYER_CLASSES[layer_index]
    x = random_array(batch, steps, features, dtype="float32")
    forwards = built(layer_class(units, return_sequences=return_sequences), x)
    backwards = layer_class(units, return_sequences=return_sequences, go_backwards=True)
    backwards(x)
    backwards.set_weights(forwards.get_weights())
    # Keras keeps the reversed order of the outputs, so no flip back here.
    np.testing.assert_allclose(backwards(x).numpy(), forwards(x[:, ::-1].copy()).numpy(),
                               rtol=1e-6, atol=1e-6)


def test_initial_state_changes_the_result():
    x = random_array(2, 3, 2, dtype="float32")
    layer = built(LSTM(2), x)
    zeros = [np.zeros((2, 2), np.float32)] * 2
    ones = [np.ones((2, 2), np.float32)] * 2
    np.testing.assert_allclose(layer(x, initial_state=zeros).numpy(), layer(x).numpy())
    assert not np.allclose(layer(x, initial_state=ones).numpy(), layer(x).numpy())
    gru = built(GRU(2), x)
    single = gru(x, initial_state=db.tensor(ones[0]))
    assert np.allclose(single.numpy(), gru(x, initial_state=[ones[0]]).numpy())


def test_bidirectional_is_forward_and_reversed_backward():
    x = random_array(2, 4, 3, dtype="float32")
    layer = Bidirectional(SimpleRNN(2, return_sequences=True))
    output = layer(x).numpy()
    forward_kernel, _, _, backward_kernel, _, _ = layer.get_weights()
    assert layer.forward_layer.name.startswith("forward_")
    assert layer.backward_layer.name.startswith("backward_")
    assert layer.backward_layer.go_backwards and not layer.forward_layer.go_backwards
    assert not np.array_equal(forward_kernel, backward_kernel)  # two sets of weights
    np.testing.assert_allclose(output[..., :2], layer.forward_layer(x).numpy(), rtol=1e-6)
    np.testing.assert_allclose(output[..., 2:], layer.backward_layer(x).numpy()[:, ::-1],
                               rtol=1e-6)


@pytest.mark.parametrize("merge_mode,width", [("concat", 4), ("sum", 2), ("mul", 2), ("ave", 2)])
def test_bidirectional_merge_modes(merge_mode, width):
    x = random_array(2, 3, 2, dtype="float32")
    layer = Bidirectional(GRU(2), merge_mode=merge_mode)
    output = layer(x).numpy()
    assert output.shape == (2, width)
    forward = layer.forward_layer(x).numpy()
    backward = layer.backward_layer(x).numpy()
    expected = {"concat": np.concatenate([forward, backward], -1), "sum": forward + backward,
                "mul": forward * backward, "ave": (forward + backward) / 2}[merge_mode]
    np.testing.assert_allclose(output, expected, rtol=1e-6)


def test_bidirectional_return_state_and_no_merge():
    x = random_array(2, 3, 2, dtype="float32")
    outputs = Bidirectional(LSTM(2, return_state=True))(x)
    assert [o.shape for o in outputs] == [(2, 4)] + [(2, 2)] * 4
    separate = Bidirectional(LSTM(2, return_sequences=True, return_state=True), merge_mode=None)(x)
    assert [o.shape for o in separate] == [(2, 3, 2), (2, 3, 2)] + [(2, 2)] * 4


def test_bidirectional_weights_forward_then_backward():
    x = random_array(2, 3, 2, dtype="float32")
    layer = Bidirectional(LSTM(2))
    layer(x)
    weights = layer.get_weights()
    assert len(weights) == 6
    np.testing.assert_array_equal(weights[0], layer.forward_layer.get_weights()[0])
    np.testing.assert_array_equal(weights[3], layer.backward_layer.get_weights()[0])
    assert [w.name for w in layer.weights][0].startswith("forward_")
    new_weights = [w + 1 for w in weights]
    layer.set_weights(new_weights)
    np.testing.assert_array_equal(layer.backward_layer.get_weights()[2], new_weights[5])


def test_bidirectional_with_explicit_backward_layer():
    x = random_array(2, 3, 2, dtype="float32")
    backward = GRU(3, go_backwards=True)
    layer = Bidirectional(LSTM(2), backward_layer=backward)
    assert layer(x).shape == (2, 5)
    assert layer.backward_layer is backward
    with pytest.raises(ValueError, match="go_backwards"):
        Bidirectional(LSTM(2), backward_layer=GRU(2))
    with pytest.raises(ValueError, match="return_sequences"):
        Bidirectional(LSTM(2), backward_layer=LSTM(2, go_backwards=True, return_sequences=True))


def test_dropout_drops_input_features_the_same_at_every_step():
    layer = LSTM(2, dropout=0.5, seed=3)
    x = db.tensor(np.ones((4, 5, 6), np.float32))
    dropped = layer.drop_input_features(x).numpy()
    assert set(np.unique(dropped)) <= {0.0, 2.0}
    assert (dropped == 0).any() and (dropped == 2).any()
    np.testing.assert_array_equal(dropped, np.broadcast_to(dropped[:, :1], dropped.shape))
    inputs = random_array(4, 5, 6, dtype="float32")
    layer(inputs)
    inference = layer(inputs, training=False).numpy()
    np.testing.assert_array_equal(inference, layer(inputs).numpy())
    assert not np.allclose(layer(inputs, training=True).numpy(), inference)


def test_functional_api_symbolic_shapes():
    inputs = Input(shape=(5, 3))
    sequence, h, c = LSTM(4, return_sequences=True, return_state=True)(inputs)
    assert sequence.shape == (None, 5, 4)
    assert h.shape == c.shape == (None, 4)
    merged = Bidirectional(GRU(2))(sequence)
    assert merged.shape == (None, 4)


def test_float64_layer_keeps_float64():
    x = random_array(2, 3, 2)
    layer = GRU(2, dtype="float64")
    assert layer(x).dtype == np.float64
    assert Bidirectional(LSTM(2, dtype="float64"))(x).dtype == np.float64


def test_activation_given_as_function_or_none():
    assert LSTM(2, activation=db.relu).activation == "relu"
    assert SimpleRNN(2, activation=None).activation == "linear"


# ----------------------------------------------------------------------------
# Configuration
# ----------------------------------------------------------------------------
@pytest.mark.parametrize("layer", [
    SimpleRNN(3, activation="relu", return_sequences=True, go_backwards=True),
    LSTM(4, unit_forget_bias=False, return_state=True, dropout=0.25, seed=2),
    GRU(2, recurrent_activation="hard_sigmoid", use_bias=False),
    Bidirectional(LSTM(3, return_sequences=True), merge_mode="sum"),
    Bidirectional(GRU(3), backward_layer=SimpleRNN(2, go_backwards=True)),
], ids=["simple_rnn", "lstm", "gru", "bidirectional", "bidirectional_mixed"])
def test_config_round_trip(layer):
    config = layer.get_config()
    text = json.dumps(config)
    rebuilt = type(layer).from_config(json.loads(text))
    assert rebuilt.get_config() == config
    x = random_array(2, 3, 2, dtype="float32")
    layer(x)
    rebuilt(x)
    rebuilt.set_weights(layer.get_weights())
    np.testing.assert_allclose(as_tuple(rebuilt(x))[0].numpy(), as_tuple(layer(x))[0].numpy())


def test_bidirectional_config_nests_the_layer():
    config = Bidirectional(LSTM(3)).get_config()
    assert config["layer"]["class_name"] == "LSTM"
    assert config["layer"]["config"]["units"] == 3
    assert config["backward_layer"]["config"]["go_backwards"] is True
    assert config["merge_mode"] == "concat"


def test_initializer_objects_in_config():
    layer = SimpleRNN(2, kernel_initializer=initializers.RandomNormal(stddev=0.5))
    config = json.loads(json.dumps(layer.get_config()))
    rebuilt = SimpleRNN.from_config(config)
    assert rebuilt.kernel_initializer.stddev == 0.5


# ----------------------------------------------------------------------------
# Errors
# ----------------------------------------------------------------------------
@pytest.mark.parametrize("layer_class", LAYER_CLASSES, ids=lambda c: c.__name__)
def test_two_dimensional_input_explains_return_sequences(layer_class):
    layer = layer_class(3, name="second")
    with pytest.raises(SequenceInputError) as caught:
        layer(np.zeros((2, 512), np.float32))
    message = str(caught.value)
    assert f"{layer_class.__name__} layer 'second'" in message
    assert "(batch, timesteps, features)" in message
    assert "(None, 512)" in message
    assert "return_sequences=True" in message
    assert caught.value.layer is layer and caught.value.shape == (2, 512)
    assert isinstance(caught.value, ValueError)
    assert not layer.built


def test_two_dimensional_input_error_names_the_previous_layer():
    first = LSTM(4, name="lstm_first")
    with pytest.raises(SequenceInputError) as caught:
        LSTM(3, name="lstm_second")(first(np.zeros((2, 5, 3), np.float32)))
    enriched = str(caught.value.with_previous_layer(first))
    assert "LSTM layer 'lstm_second' expects 3-D input" in enriched
    assert "the previous layer 'lstm_first' returns only its last output; " \
           "pass return_sequences=True to it" in enriched


def test_symbolic_two_dimensional_input_fails_at_build():
    with pytest.raises(SequenceInputError, match=r"\(None, 512\)"):
        LSTM(3)(Input(shape=(512,)))
    with pytest.raises(SequenceInputError, match="Bidirectional layer"):
        Bidirectional(LSTM(3))(np.zeros((2, 4), np.float32))


def test_feature_count_cannot_change_after_build():
    layer = built(GRU(2, name="gru_fixed"), random_array(2, 3, 4, dtype="float32"))
    with pytest.raises(ValueError, match=r"gru_fixed.*built for 4 features.*\(2, 3, 5\)"):
        layer(random_array(2, 3, 5, dtype="float32"))


def test_wrong_initial_state_is_explained():
    x = random_array(2, 3, 4, dtype="float32")
    layer = built(LSTM(3, name="lstm_states"), x)
    with pytest.raises(ValueError, match=r"lstm_states.*2 tensor\(s\) \[h, c\].*\(2, 3\)"):
        layer(x, initial_state=[np.zeros((2, 3), np.float32)])
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(2, 4\)"):
        layer(x, initial_state=[np.zeros((2, 4), np.float32)] * 2)
    with pytest.raises(ValueError, match="initial_state needs 4 tensors"):
        Bidirectional(LSTM(3))(x, initial_state=[np.zeros((2, 3), np.float32)] * 2)


def test_unsupported_options_are_refused_clearly():
    with pytest.raises(ValueError, match="'softmax'.*'tanh'"):
        LSTM(2, activation="softmax")
    with pytest.raises(ValueError, match="recurrent_activation"):
        GRU(2, recurrent_activation="gelu")
    with pytest.raises(NotImplementedError, match="reset_after=True"):
        GRU(2, reset_after=False)
    with pytest.raises(NotImplementedError, match="recurrent_dropout"):
        LSTM(2, recurrent_dropout=0.2)
    with pytest.raises(NotImplementedError, match="stateful"):
        SimpleRNN(2, stateful=True)
    with pytest.raises(ValueError, match="merge_mode"):
        Bidirectional(LSTM(2), merge_mode="max")
    with pytest.raises(ValueError, match="recurrent layer"):
        Bidirectional(db.layers.Layer())
    with pytest.raises(ValueError, match="units"):
        LSTM(0)


def test_functional_op_checks_shapes():
    x = db.tensor(random_array(2, 3, 4))
    h0 = db.tensor(np.zeros((2, 3)))
    with pytest.raises(db.ShapeError, match=r"lstm: kernel has shape \(4, 8\).*\(4, 12\)"):
        db.functional.lstm(x, h0, h0, np.zeros((4, 8)), np.zeros((3, 12)))
    with pytest.raises(db.ShapeError, match="gru: bias"):
        db.functional.gru(x, h0, np.zeros((4, 9)), np.zeros((3, 9)), np.zeros(9))
