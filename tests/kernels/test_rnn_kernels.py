"""SimpleRNN, LSTM and GRU kernels against their three oracles.

1. Every fast kernel set (the `candidate` fixture) against the NumPy reference,
   on tiny random problems drawn by hypothesis, both dtypes, every activation.
2. The reference's backward pass against float64 central finite differences.
3. The reference against PyTorch's LSTM / GRU / RNN with converted weights.

All three cells are driven through the same small helpers below, so each test
reads the same for SimpleRNN, LSTM and GRU.
"""
import importlib

import numpy as np
import pytest
from conftest import KernelSet, assert_close
from gpu_support import gpu_unavailable_reason
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

CELLS = ("simple_rnn", "lstm", "gru")
ACTIVATIONS = ("linear", "relu", "tanh", "sigmoid", "hard_sigmoid")
RECURRENT_ACTIVATIONS = ("sigmoid", "hard_sigmoid")
GATE_COUNT = {"simple_rnn": 1, "lstm": 4, "gru": 3}
# Forward inputs in signature order; the backward returns their gradients in
# the same order.
INPUT_NAMES = {
    "simple_rnn": ("x", "h0", "kernel", "recurrent_kernel", "bias"),
    "lstm": ("x", "h0", "c0", "kernel", "recurrent_kernel", "bias"),
    "gru": ("x", "h0", "kernel", "recurrent_kernel", "bias"),
}
FORWARD_OUTPUT_NAMES = {
    "simple_rnn": ("h_seq",),
    "lstm": ("h_seq", "c_seq", "gates"),
    "gru": ("h_seq", "gates"),
}

# The candidate fixture is stateless, so sharing it across hypothesis examples
# is safe; keep the suppressions of the project profile as well.
fixture_settings = settings(
    suppress_health_check=list(settings.default.suppress_health_check)
    + [HealthCheck.function_scoped_fixture]
)


def rnn_kernel(kernel_set, name):
    """Kernel `name` of a set, from its rnn module if the set does not re-export it."""
    module = kernel_set.module
    if hasattr(module, name):
        return getattr(module, name)
    return getattr(importlib.import_module(module.__name__ + ".rnn"), name)


def reference_set(reference):
    return KernelSet("reference", reference, np)


def make_problem(cell, batch, steps, features, units, dtype, seed):
    """Random inputs, weights and output gradients for one cell.

    grad_h_seq and grad_c_last double as the fixed weights r and q of the
    scalar loss sum(h_seq * r) + sum(c_last * q) used by the finite differences.
    """
    rng = np.random.default_rng(seed)
    gates = GATE_COUNT[cell] * units

    def normal(*shape, scale=1.0):
        return (scale * rng.standard_normal(shape)).astype(dtype)

    return {
        "x": normal(batch, steps, features),
        "h0": normal(batch, units, scale=0.5),
        "c0": normal(batch, units, scale=0.5),
        "kernel": normal(features, gates, scale=0.6),
        "recurrent_kernel": normal(units, gates, scale=0.6),
        "bias": normal(2, gates, scale=0.3) if cell == "gru" else normal(gates, scale=0.3),
        "grad_h_seq": normal(batch, steps, units),
        "grad_c_last": normal(batch, units),
    }


def run_forward(kernel_set, cell, problem, activation, recurrent_activation):
    forward = rnn_kernel(kernel_set, f"{cell}_forward")
    inputs = [kernel_set.asarray(problem[name]) for name in INPUT_NAMES[cell]]
    if cell == "simple_rnn":
        outputs = (forward(*inputs, activation),)
    else:
        outputs = forward(*inputs, activation, recurrent_activation)
    return dict(zip(FORWARD_OUTPUT_NAMES[cell], kernel_set.to_numpy(tuple(outputs))))


def run_backward(
    kernel_set, cell, problem, forward_outputs, activation, recurrent_activation, **options
):
    backward = rnn_kernel(kernel_set, f"{cell}_backward")
    # Every input and forward output, moved to the set's device.
    p = {name: kernel_set.asarray(value) for name, value in {**problem, **forward_outputs}.items()}
    if cell == "simple_rnn":
        grads = backward(
            p["x"], p["h0"], p["kernel"], p["recurrent_kernel"], p["h_seq"], p["grad_h_seq"],
            activation, **options,
        )
    elif cell == "lstm":
        grads = backward(
            p["x"], p["h0"], p["c0"], p["kernel"], p["recurrent_kernel"],
            p["h_seq"], p["c_seq"], p["gates"], p["grad_h_seq"], p["grad_c_last"],
            activation, recurrent_activation, **options,
        )
    else:
        grads = backward(
            p["x"], p["h0"], p["kernel"], p["recurrent_kernel"], p["h_seq"], p["gates"],
            p["grad_h_seq"], activation, recurrent_activation, **options,
        )
    return dict(zip(INPUT_NAMES[cell], kernel_set.to_numpy(tuple(grads))))


def scalar_loss(cell, problem, forward_outputs):
    loss = np.sum(forward_outputs["h_seq"] * problem["grad_h_seq"])
    if cell == "lstm":
        loss += np.sum(forward_outputs["c_seq"][:, -1] * problem["grad_c_last"])
    return loss


# --------------------------------------------------------------------------
# 1. Fast kernel sets against the reference
# --------------------------------------------------------------------------


def as_time_major_views(outputs):
    """Same values, laid out as (T, N, ...) memory seen through (N, T, ...) views,
    the layout in which the Numba forward returns its sequences."""
    return {
        name: np.ascontiguousarray(value.transpose(1, 0, 2)).transpose(1, 0, 2)
        for name, value in outputs.items()
    }


def assert_matches_reference(
    candidate, reference, cell, problem, activation, recurrent_activation, views=False
):
    dtype = problem["x"].dtype
    ref = reference_set(reference)
    expected = run_forward(ref, cell, problem, activation, recurrent_activation)
    actual = run_forward(candidate, cell, problem, activation, recurrent_activation)
    for name in FORWARD_OUTPUT_NAMES[cell]:
        assert actual[name].dtype == dtype, f"{cell} {name} dtype"
        assert_close(actual[name], expected[name], dtype, f"{cell} forward {name}")

    # Both backward passes get the same (reference) forward outputs, so a
    # forward difference cannot hide or masquerade as a backward one.
    expected_grads = run_backward(ref, cell, problem, expected, activation, recurrent_activation)
    given = as_time_major_views(expected) if views else expected
    actual_grads = run_backward(candidate, cell, problem, given, activation, recurrent_activation)
    for name in INPUT_NAMES[cell]:
        assert actual_grads[name].dtype == dtype, f"{cell} grad {name} dtype"
        assert_close(actual_grads[name], expected_grads[name], dtype, f"{cell} grad {name}")


@pytest.mark.parametrize("cell", CELLS)
@given(
    shape=st.tuples(
        st.integers(1, 3), st.integers(1, 4), st.integers(1, 4), st.integers(1, 4)
    ),
    activation=st.sampled_from(ACTIVATIONS),
    recurrent_activation=st.sampled_from(RECURRENT_ACTIVATIONS),
    dtype=st.sampled_from([np.float32, np.float64]),
    seed=st.integers(0, 2**32 - 1),
    views=st.booleans(),
)
@fixture_settings
def test_kernels_match_reference(
    candidate, reference, cell, shape, activation, recurrent_activation, dtype, seed, views
):
    problem = make_problem(cell, *shape, dtype, seed)
    assert_matches_reference(
        candidate, reference, cell, problem, activation, recurrent_activation, views
    )


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(1, 1, 1, 1), (1, 1, 3, 2), (2, 1, 2, 3), (1, 4, 2, 2)])
def test_length_one_and_batch_one(candidate, reference, cell, dtype, shape):
    problem = make_problem(cell, *shape, dtype, seed=7)
    assert_matches_reference(candidate, reference, cell, problem, "tanh", "sigmoid")


@pytest.fixture
def cuda_kernels():
    reason = gpu_unavailable_reason()
    if reason:
        pytest.skip(f"CUDA kernels not tested: {reason}")
    import cupy

    from deepbreadth.kernels import cuda

    return KernelSet("cuda", cuda, cupy)


@pytest.mark.parametrize("whole_sequence", [True, False], ids=["one-launch", "step-by-step"])
@pytest.mark.parametrize(
    "shape, dtype",
    [((2, 3, 4, 5), np.float32), ((1, 1, 3, 2), np.float64),
     ((3, 4, 5, 301), np.float64), ((2, 3, 2, 600), np.float64),
     ((800, 2, 3, 301), np.float64)],
)
def test_cuda_lstm_both_paths_match_reference(
    cuda_kernels, reference, monkeypatch, whole_sequence, shape, dtype
):
    """The CUDA LSTM forward runs all steps in one cooperative launch when a
    block's slice of recurrent_kernel fits in shared memory, and step by step
    otherwise (the backward always step by step).  Both paths, with one unit per block and with several (301 units: a last block that
    owns fewer; 600 in float64: more shared memory than the default 48 KB; 800
    samples of 301 units: more samples than a block's threads take at once).  The
    large shapes are float64: a float32 sum over 301 units is rounded beyond the
    1e-5 of the float32 comparison, on either path."""
    from deepbreadth.kernels.cuda import rnn_sequence

    monkeypatch.setattr(rnn_sequence, "ENABLED", whole_sequence)
    batch, _, _, units = shape
    assert (rnn_sequence.launch_plan(batch, units, dtype) is not None) == whole_sequence
    problem = make_problem("lstm", *shape, dtype, seed=13)
    assert_matches_reference(cuda_kernels, reference, "lstm", problem, "tanh", "sigmoid")


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("which_set", ["candidate", "reference"])
def test_grad_x_skipped_when_not_needed(candidate, reference, cell, which_set):
    """need_grad_x=False returns None for grad_x and the same other gradients."""
    kernel_set = candidate if which_set == "candidate" else reference_set(reference)
    problem = make_problem(cell, 2, 3, 4, 2, np.float64, seed=11)
    outputs = run_forward(kernel_set, cell, problem, "tanh", "sigmoid")
    every = run_backward(kernel_set, cell, problem, outputs, "tanh", "sigmoid")
    backward = rnn_kernel(kernel_set, f"{cell}_backward")
    p = {name: kernel_set.asarray(value) for name, value in {**problem, **outputs}.items()}
    if cell == "simple_rnn":
        grads = backward(p["x"], p["h0"], p["kernel"], p["recurrent_kernel"], p["h_seq"],
                         p["grad_h_seq"], "tanh", need_grad_x=False)
    elif cell == "lstm":
        grads = backward(p["x"], p["h0"], p["c0"], p["kernel"], p["recurrent_kernel"],
                         p["h_seq"], p["c_seq"], p["gates"], p["grad_h_seq"], p["grad_c_last"],
                         "tanh", "sigmoid", need_grad_x=False)
    else:
        grads = backward(p["x"], p["h0"], p["kernel"], p["recurrent_kernel"], p["h_seq"],
                         p["gates"], p["grad_h_seq"], "tanh", "sigmoid", need_grad_x=False)
    assert grads[0] is None, f"{cell}: grad_x should be None with need_grad_x=False"
    for name, grad in zip(INPUT_NAMES[cell][1:], grads[1:]):
        assert_close(kernel_set.to_numpy(grad), every[name], np.float64, f"{cell} grad {name}")


@pytest.mark.parametrize("cell", CELLS)
def test_zero_output_gradient_gives_zero_gradients(candidate, cell):
    problem = make_problem(cell, 2, 3, 2, 2, np.float64, seed=3)
    problem["grad_h_seq"][:] = 0
    problem["grad_c_last"][:] = 0
    outputs = run_forward(candidate, cell, problem, "tanh", "sigmoid")
    grads = run_backward(candidate, cell, problem, outputs, "tanh", "sigmoid")
    for name, grad in grads.items():
        assert not np.any(grad), f"{cell} grad {name} should be zero"


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("which", ["activation", "recurrent_activation"])
def test_unknown_activation_name_raises(candidate, reference, cell, which):
    if cell == "simple_rnn" and which == "recurrent_activation":
        pytest.skip("SimpleRNN has a single activation")
    problem = make_problem(cell, 1, 2, 2, 2, np.float64, seed=0)
    names = {"activation": "tanh", "recurrent_activation": "sigmoid", which: "gelu"}
    for kernel_set in (candidate, reference_set(reference)):
        with pytest.raises(ValueError, match="gelu"):
            run_forward(
                kernel_set, cell, problem, names["activation"], names["recurrent_activation"]
            )


def test_cpu_names_a_missing_return_sequences():
    from deepbreadth.kernels.cpu import rnn as cpu_rnn

    flat_x = np.zeros((2, 3))
    units = 2
    with pytest.raises(ValueError, match="return_sequences"):
        cpu_rnn.lstm_forward(
            flat_x, np.zeros((2, units)), np.zeros((2, units)), np.zeros((3, 4 * units)),
            np.zeros((units, 4 * units)), np.zeros(4 * units), "tanh", "sigmoid",
        )


def test_cpu_rejects_an_empty_sequence():
    from deepbreadth.kernels.cpu import rnn as cpu_rnn

    units = 2
    with pytest.raises(ValueError, match="no time steps"):
        cpu_rnn.gru_forward(
            np.zeros((2, 0, 3)), np.zeros((2, units)), np.zeros((3, 3 * units)),
            np.zeros((units, 3 * units)), np.zeros((2, 3 * units)), "tanh", "sigmoid",
        )


# --------------------------------------------------------------------------
# 2. Reference backward against central finite differences (float64)
# --------------------------------------------------------------------------


def finite_difference_gradient(loss_of, array, step=1e-6):
    """d loss / d array by central differences, perturbing `array` in place."""
    grad = np.zeros_like(array)
    for index in np.ndindex(array.shape):
        saved = array[index]
        array[index] = saved + step
        above = loss_of()
        array[index] = saved - step
        below = loss_of()
        array[index] = saved
        grad[index] = (above - below) / (2 * step)
    return grad


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize(
    "activation, recurrent_activation",
    [
        ("tanh", "sigmoid"),
        ("sigmoid", "hard_sigmoid"),
        ("linear", "sigmoid"),
        ("relu", "hard_sigmoid"),
        ("hard_sigmoid", "sigmoid"),
    ],
)
def test_reference_backward_matches_finite_differences(
    reference, cell, activation, recurrent_activation
):
    ref = reference_set(reference)
    problem = make_problem(cell, 2, 3, 2, 3, np.float64, seed=11)

    def loss_of():
        outputs = run_forward(ref, cell, problem, activation, recurrent_activation)
        return scalar_loss(cell, problem, outputs)

    outputs = run_forward(ref, cell, problem, activation, recurrent_activation)
    grads = run_backward(ref, cell, problem, outputs, activation, recurrent_activation)
    for name in INPUT_NAMES[cell]:
        numeric = finite_difference_gradient(loss_of, problem[name])
        scale = max(1.0, float(np.max(np.abs(numeric))))
        np.testing.assert_allclose(
            grads[name], numeric, rtol=1e-6, atol=1e-7 * scale, err_msg=f"{cell} grad {name}"
        )


# --------------------------------------------------------------------------
# 3. Reference against PyTorch, same weights (float64)
# --------------------------------------------------------------------------


def swap_first_two_gates(array):
    """Keras GRU gates z, r, h <-> PyTorch r, z, n (the swap is its own inverse)."""
    z, r, h = np.split(array, 3, axis=-1)
    return np.concatenate([r, z, h], axis=-1)


def torch_module(torch, cell, problem, activation):
    """A PyTorch layer holding the problem's weights, converted from Keras layout."""
    features, units = problem["x"].shape[2], problem["h0"].shape[1]
    common = dict(batch_first=True, dtype=torch.float64)
    if cell == "simple_rnn":
        module = torch.nn.RNN(features, units, nonlinearity=activation, **common)
    elif cell == "lstm":
        module = torch.nn.LSTM(features, units, **common)
    else:
        module = torch.nn.GRU(features, units, **common)

    kernel, recurrent_kernel, bias = problem["kernel"], problem["recurrent_kernel"], problem["bias"]
    if cell == "gru":
        # PyTorch's GRU is Keras's reset_after=True, with two bias vectors.
        kernel = swap_first_two_gates(kernel)
        recurrent_kernel = swap_first_two_gates(recurrent_kernel)
        input_bias, recurrent_bias = swap_first_two_gates(bias[0]), swap_first_two_gates(bias[1])
    else:
        # One Keras bias: put it all on the input side.
        input_bias, recurrent_bias = bias, np.zeros_like(bias)
    with torch.no_grad():
        module.weight_ih_l0.copy_(torch.from_numpy(kernel.T.copy()))
        module.weight_hh_l0.copy_(torch.from_numpy(recurrent_kernel.T.copy()))
        module.bias_ih_l0.copy_(torch.from_numpy(input_bias))
        module.bias_hh_l0.copy_(torch.from_numpy(recurrent_bias))
    return module


def torch_forward_and_gradients(torch, cell, problem, activation):
    module = torch_module(torch, cell, problem, activation)
    x = torch.tensor(problem["x"], requires_grad=True)
    h0 = torch.tensor(problem["h0"][None], requires_grad=True)
    c0 = torch.tensor(problem["c0"][None], requires_grad=True)
    if cell == "lstm":
        h_seq, (_, c_last) = module(x, (h0, c0))
        loss = (h_seq * torch.from_numpy(problem["grad_h_seq"])).sum() + (
            c_last[0] * torch.from_numpy(problem["grad_c_last"])
        ).sum()
    else:
        h_seq, _ = module(x, h0)
        loss = (h_seq * torch.from_numpy(problem["grad_h_seq"])).sum()
    loss.backward()

    grads = {
        "x": x.grad.numpy(),
        "h0": h0.grad.numpy()[0],
        "kernel": module.weight_ih_l0.grad.numpy().T,
        "recurrent_kernel": module.weight_hh_l0.grad.numpy().T,
    }
    if cell == "gru":
        grads["kernel"] = swap_first_two_gates(grads["kernel"])
        grads["recurrent_kernel"] = swap_first_two_gates(grads["recurrent_kernel"])
        grads["bias"] = np.stack(
            [
                swap_first_two_gates(module.bias_ih_l0.grad.numpy()),
                swap_first_two_gates(module.bias_hh_l0.grad.numpy()),
            ]
        )
    else:
        grads["bias"] = module.bias_ih_l0.grad.numpy()
    forward = {"h_seq": h_seq.detach().numpy()}
    if cell == "lstm":
        grads["c0"] = c0.grad.numpy()[0]
        forward["c_last"] = c_last.detach().numpy()[0]
    return forward, grads


@pytest.mark.parametrize(
    "cell, activation",
    [("simple_rnn", "tanh"), ("simple_rnn", "relu"), ("lstm", "tanh"), ("gru", "tanh")],
)
@pytest.mark.parametrize("shape", [(2, 3, 4, 3), (1, 1, 2, 1), (3, 4, 1, 2)])
def test_reference_matches_pytorch(reference, cell, activation, shape):
    torch = pytest.importorskip("torch")
    ref = reference_set(reference)
    problem = make_problem(cell, *shape, np.float64, seed=5)
    outputs = run_forward(ref, cell, problem, activation, "sigmoid")
    grads = run_backward(ref, cell, problem, outputs, activation, "sigmoid")
    torch_outputs, torch_grads = torch_forward_and_gradients(torch, cell, problem, activation)

    assert_close(outputs["h_seq"], torch_outputs["h_seq"], np.float64, f"{cell} h_seq vs PyTorch")
    if cell == "lstm":
        c_last = outputs["c_seq"][:, -1]
        assert_close(c_last, torch_outputs["c_last"], np.float64, "lstm c_last vs PyTorch")
    for name in INPUT_NAMES[cell]:
        assert_close(grads[name], torch_grads[name], np.float64, f"{cell} grad {name} vs PyTorch")


# --------------------------------------------------------------------------
# The float32 LSTM step's own tanh (kernels/cpu/rnn.py, tanh_float32)
# --------------------------------------------------------------------------


def test_float32_tanh_is_within_its_stated_bound():
    """Relative error under 4e-7 against float64 tanh; +-1 beyond the fitted
    range; NaN stays NaN, so a diverged model still shows NaN."""
    from numba import njit

    from deepbreadth.kernels.cpu import rnn as cpu_rnn

    tanh_float32 = cpu_rnn.tanh_float32

    @njit
    def tanh_all(values, out):
        for k in range(values.shape[0]):
            out[k] = tanh_float32(values[k])

    grid = np.linspace(-12.0, 12.0, 400_001).astype(np.float32)
    grid = grid[grid != 0]
    result = np.empty_like(grid)
    tanh_all(grid, result)
    exact = np.tanh(grid.astype(np.float64))
    assert result.dtype == np.float32
    assert np.max(np.abs(result / exact - 1.0)) < 4e-7

    special = np.array([np.nan, np.inf, -np.inf, 0.0, 1e30, -1e30], dtype=np.float32)
    out = np.empty_like(special)
    tanh_all(special, out)
    assert np.isnan(out[0])
    np.testing.assert_array_equal(out[1:], [1.0, -1.0, 0.0, 1.0, -1.0])


def test_float32_lstm_forward_propagates_nan():
    from deepbreadth.kernels.cpu import rnn as cpu_rnn

    problem = make_problem("lstm", 2, 3, 2, 4, np.float32, seed=5)
    problem["recurrent_kernel"][0, 0] = np.nan
    h_seq, c_seq, _ = cpu_rnn.lstm_forward(
        *(problem[name] for name in INPUT_NAMES["lstm"]), "tanh", "sigmoid"
    )
    assert np.isnan(h_seq[:, -1]).any() and np.isnan(c_seq[:, -1]).any()
