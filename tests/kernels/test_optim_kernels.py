"""Optimizer update kernels: in-place updates vs the reference, Keras formulas, torch."""
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import assert_close

DTYPES = [np.float32, np.float64]
STEPS = 3

# The kernel-set fixtures hold no state, so one instance may serve every example.
stateless_fixtures = settings(
    suppress_health_check=[*settings.default.suppress_health_check, HealthCheck.function_scoped_fixture]
)


@st.composite
def parameters(draw):
    """A parameter of any rank (0-d included), its dtype and a generator for gradients."""
    shape = tuple(draw(st.lists(st.integers(1, 3), min_size=0, max_size=3)))
    dtype = draw(st.sampled_from(DTYPES))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    return rng.standard_normal(shape).astype(dtype), dtype, rng


def run_steps_on_both(candidate, reference, kernel_name, param, states, gradients, hyper_parameters):
    """Apply the same updates with both kernel sets, each to its own copies.

    Returns (candidate param, candidate states, reference param, reference states)
    after every gradient has been applied. `hyper_parameters(step)` gives the
    arguments after the state arrays, so Adam can receive its step number.
    """
    candidate_param = candidate.asarray(param.copy())
    candidate_states = [candidate.asarray(state.copy()) for state in states]
    reference_param = param.copy()
    reference_states = [state.copy() for state in states]
    for step, grad in enumerate(gradients, start=1):
        returned = getattr(candidate, kernel_name)(
            candidate_param, candidate.asarray(grad), *candidate_states, *hyper_parameters(step)
        )
        assert returned is None, "optimizer kernels update in place and return None"
        getattr(reference, kernel_name)(reference_param, grad, *reference_states, *hyper_parameters(step))
    return (
        candidate.to_numpy(candidate_param),
        [candidate.to_numpy(state) for state in candidate_states],
        reference_param,
        reference_states,
    )


def assert_same_updates(result, dtype, kernel_name):
    candidate_param, candidate_states, reference_param, reference_states = result
    assert candidate_param.dtype == dtype
    assert_close(candidate_param, reference_param, dtype, f"{kernel_name} param")
    for index, (actual, expected) in enumerate(zip(candidate_states, reference_states)):
        assert_close(actual, expected, dtype, f"{kernel_name} state {index}")


def gradients_for(param, rng, dtype):
    return [rng.standard_normal(param.shape).astype(dtype) for _ in range(STEPS)]


# --- candidate vs reference ------------------------------------------------


@stateless_fixtures
@given(parameters(), st.sampled_from([0.0, 0.5, 0.9]), st.booleans())
def test_sgd_matches_reference(candidate, reference, case, momentum, nesterov):
    param, dtype, rng = case
    velocity = np.zeros_like(param)
    gradients = gradients_for(param, rng, dtype)
    result = run_steps_on_both(
        candidate, reference, "sgd_update", param, [velocity], gradients,
        lambda step: (0.1, momentum, nesterov),
    )
    assert_same_updates(result, dtype, "sgd_update")
    assert not np.array_equal(result[0], param), "the parameter must change in place"
    if momentum == 0:
        np.testing.assert_array_equal(result[1][0], velocity)  # left untouched


@stateless_fixtures
@given(parameters(), st.sampled_from([0.0, 0.004]))
def test_adam_matches_reference(candidate, reference, case, weight_decay):
    param, dtype, rng = case
    moments = [np.zeros_like(param), np.zeros_like(param)]
    gradients = gradients_for(param, rng, dtype)
    result = run_steps_on_both(
        candidate, reference, "adam_update", param, moments, gradients,
        lambda step: (0.01, 0.9, 0.999, 1e-7, step, weight_decay),
    )
    assert_same_updates(result, dtype, "adam_update")


@stateless_fixtures
@given(st.lists(parameters(), min_size=1, max_size=4), st.sampled_from([0.0, 0.01]))
def test_adam_update_many_matches_adam_update_on_each(candidate, reference, cases, weight_decay):
    """One call for several parameters (of mixed dtypes) equals the reference's
    adam_update on each, step after step."""
    on = candidate.asarray
    theirs = [case[0].copy() for case in cases]
    ours = [on(case[0].copy()) for case in cases]
    their_moments = [(np.zeros_like(p), np.zeros_like(p)) for p in theirs]
    our_moments = [(on(np.zeros_like(p)), on(np.zeros_like(p))) for p in theirs]
    for step in (1, 2, 3):
        grads = [gradients_for(case[0], case[2], case[1])[0] for case in cases]
        for param, grad, (m, v) in zip(theirs, grads, their_moments):
            reference.adam_update(param, grad, m, v, 0.01, 0.9, 0.999, 1e-7, step, weight_decay)
        candidate.adam_update_many(ours, [on(g) for g in grads], [m for m, _ in our_moments],
                                   [v for _, v in our_moments], 0.01, 0.9, 0.999, 1e-7, step,
                                   weight_decay)
    for index, (param, case) in enumerate(zip(theirs, cases)):
        assert_close(candidate.to_numpy(ours[index]), param, case[1], f"param {index}")
        assert_close(candidate.to_numpy(our_moments[index][1]), their_moments[index][1],
                     case[1], f"v {index}")


def test_adam_update_many_refuses_lists_of_different_lengths(candidate):
    param = candidate.asarray(np.zeros(3, np.float32))
    with pytest.raises(ValueError, match="1 params, 2 grads"):
        candidate.adam_update_many([param], [param, param], [param], [param],
                                   0.01, 0.9, 0.999, 1e-7, 1, 0.0)


@stateless_fixtures
@given(st.lists(st.integers(1, 40), min_size=1, max_size=4), st.sampled_from(DTYPES),
       st.sampled_from([0.0, 0.01]))
def test_adam_update_flat_matches_adam_update_on_each(candidate, reference, sizes, dtype,
                                                      weight_decay):
    """Tuples of 1-D arrays of one dtype, updated in place as adam_update updates each."""
    rng = np.random.default_rng(sum(sizes))
    on = candidate.asarray
    theirs = [rng.standard_normal(size).astype(dtype) for size in sizes]
    ours = tuple(on(param.copy()) for param in theirs)
    their_moments = [(np.zeros_like(p), np.zeros_like(p)) for p in theirs]
    our_ms = tuple(on(np.zeros_like(p)) for p in theirs)
    our_vs = tuple(on(np.zeros_like(p)) for p in theirs)
    for step in (1, 2, 3):
        grads = [rng.standard_normal(size).astype(dtype) for size in sizes]
        for param, grad, (m, v) in zip(theirs, grads, their_moments):
            reference.adam_update(param, grad, m, v, 0.01, 0.9, 0.999, 1e-7, step, weight_decay)
        candidate.adam_update_flat(ours, tuple(on(g) for g in grads), our_ms, our_vs,
                                   0.01, 0.9, 0.999, 1e-7, step, weight_decay)
    for index, param in enumerate(theirs):
        assert_close(candidate.to_numpy(ours[index]), param, dtype, f"param {index}")
        assert_close(candidate.to_numpy(our_vs[index]), their_moments[index][1], dtype,
                     f"v {index}")


def test_adam_update_flat_refuses_what_it_cannot_update_in_place(candidate):
    def flat(size, dtype=np.float32):
        return candidate.asarray(np.zeros(size, dtype))

    with pytest.raises(ValueError):  # a grad shorter than its parameter
        candidate.adam_update_flat((flat(3),), (flat(2),), (flat(3),), (flat(3),),
                                   0.01, 0.9, 0.999, 1e-7, 1, 0.0)
    with pytest.raises(ValueError, match="1 params, 2 grads"):
        candidate.adam_update_flat((flat(3),), (flat(3), flat(3)), (flat(3),), (flat(3),),
                                   0.01, 0.9, 0.999, 1e-7, 1, 0.0)


def test_the_cpu_adam_update_flat_refuses_arrays_that_are_not_flat_or_of_two_dtypes():
    from deepbreadth.kernels import cpu
    square = np.zeros((2, 2), np.float32)
    with pytest.raises(ValueError, match="1-D arrays"):
        cpu.adam_update_flat((square,), (square,), (square,), (square,),
                             0.01, 0.9, 0.999, 1e-7, 1, 0.0)
    params = (np.zeros(2, np.float32), np.zeros(2, np.float64))
    with pytest.raises(ValueError, match="all of one dtype"):
        cpu.adam_update_flat(params, params, params, params, 0.01, 0.9, 0.999, 1e-7, 1, 0.0)
    read_only = np.zeros(2, np.float32)
    read_only.setflags(write=False)
    with pytest.raises(ValueError, match="writeable"):
        cpu.adam_update_flat((read_only,), (read_only,), (read_only,), (read_only,),
                             0.01, 0.9, 0.999, 1e-7, 1, 0.0)


@stateless_fixtures
@given(parameters())
def test_rmsprop_matches_reference(candidate, reference, case):
    param, dtype, rng = case
    gradients = gradients_for(param, rng, dtype)
    result = run_steps_on_both(
        candidate, reference, "rmsprop_update", param, [np.zeros_like(param)], gradients,
        lambda step: (0.01, 0.9, 1e-7),
    )
    assert_same_updates(result, dtype, "rmsprop_update")


@stateless_fixtures
@given(parameters())
def test_adagrad_matches_reference(candidate, reference, case):
    param, dtype, rng = case
    accumulator = np.full_like(param, 0.1)  # Keras' initial_accumulator_value
    gradients = gradients_for(param, rng, dtype)
    result = run_steps_on_both(
        candidate, reference, "adagrad_update", param, [accumulator], gradients,
        lambda step: (0.05, 1e-7),
    )
    assert_same_updates(result, dtype, "adagrad_update")


def test_update_converts_any_gradient_and_refuses_strided_states(candidate, reference):
    """Gradients are only read: another dtype or a strided view is converted.  States
    are written in place: a strided one, or one of the wrong shape, is refused."""
    param = np.linspace(-1.0, 1.0, 12).reshape(3, 4)
    hyper_parameters = (0.1, 0.9, 0.999, 1e-7, 1, 0.0)
    gradients = {
        "float32 for a float64 param": candidate.asarray(np.ones((3, 4), np.float32)),
        "a transposed view": candidate.asarray(np.arange(12.0).reshape(4, 3)).T,
    }
    for what, grad in gradients.items():
        updated = candidate.asarray(param.copy())
        m, v = candidate.asarray(np.zeros((3, 4))), candidate.asarray(np.zeros((3, 4)))
        candidate.adam_update(updated, grad, m, v, *hyper_parameters)
        expected = param.copy()
        reference.adam_update(expected, candidate.to_numpy(grad).astype(np.float64),
                              np.zeros((3, 4)), np.zeros((3, 4)), *hyper_parameters)
        assert_close(candidate.to_numpy(updated), expected, np.float64, what)

    grad = candidate.asarray(np.ones((3, 4)))
    strided = candidate.asarray(np.zeros((4, 3))).T
    with pytest.raises(ValueError, match="contiguous"):
        candidate.adam_update(candidate.asarray(param.copy()), grad, strided,
                              candidate.asarray(np.zeros((3, 4))), *hyper_parameters)
    with pytest.raises(ValueError, match="shape"):
        candidate.adam_update(candidate.asarray(param.copy()), grad,
                              candidate.asarray(np.zeros((3, 4))),
                              candidate.asarray(np.zeros(12)), *hyper_parameters)
    with pytest.raises(ValueError, match="shape"):
        candidate.adam_update(candidate.asarray(param.copy()), candidate.asarray(np.ones(12)),
                              candidate.asarray(np.zeros((3, 4))),
                              candidate.asarray(np.zeros((3, 4))), *hyper_parameters)


def test_cpu_update_refuses_non_contiguous_parameter():
    from deepbreadth.kernels import cpu

    param = np.zeros((4, 3)).T  # a transposed view: reshape(-1) would copy it
    with pytest.raises(ValueError, match="contiguous"):
        cpu.sgd_update(param, np.ones((3, 4)), np.zeros((3, 4)), 0.1, 0.0, False)


# --- reference vs formulas written independently ---------------------------


def test_reference_adam_follows_keras_formula(reference):
    """Keras Adam/AdamW, element by element, written out with Python floats."""
    lr, beta1, beta2, epsilon, weight_decay = 0.01, 0.9, 0.999, 1e-7, 0.004
    rng = np.random.default_rng(3)
    param = rng.standard_normal(5)
    gradients = [rng.standard_normal(5) for _ in range(4)]
    m, v = np.zeros(5), np.zeros(5)
    expected = [float(value) for value in param]
    expected_m, expected_v = [0.0] * 5, [0.0] * 5
    for step, grad in enumerate(gradients, start=1):
        reference.adam_update(param, grad, m, v, lr, beta1, beta2, epsilon, step, weight_decay)
        for i, g in enumerate(grad):
            expected[i] -= expected[i] * weight_decay * lr
            expected_m[i] += (g - expected_m[i]) * (1 - beta1)
            expected_v[i] += (g * g - expected_v[i]) * (1 - beta2)
            alpha = lr * math.sqrt(1 - beta2**step) / (1 - beta1**step)
            expected[i] -= expected_m[i] * alpha / (math.sqrt(expected_v[i]) + epsilon)
    assert_close(param, np.array(expected), np.float64, "param")
    assert_close(m, np.array(expected_m), np.float64, "m")
    assert_close(v, np.array(expected_v), np.float64, "v")


@pytest.mark.parametrize("nesterov", [False, True])
def test_reference_sgd_follows_keras_formula(reference, nesterov):
    lr, momentum = 0.1, 0.9
    rng = np.random.default_rng(4)
    param = rng.standard_normal(4)
    velocity = np.zeros(4)
    expected, expected_velocity = param.copy(), np.zeros(4)
    for _ in range(3):
        grad = rng.standard_normal(4)
        reference.sgd_update(param, grad, velocity, lr, momentum, nesterov)
        for i, g in enumerate(grad):
            expected_velocity[i] = momentum * expected_velocity[i] - lr * g
            step = momentum * expected_velocity[i] - lr * g if nesterov else expected_velocity[i]
            expected[i] += step
    assert_close(param, expected, np.float64, "param")
    assert_close(velocity, expected_velocity, np.float64, "velocity")


# --- reference vs torch.optim where the formulas coincide ------------------


def run_reference_and_torch(reference_update, torch_optimizer_class, torch_options, state_count, steps=4):
    """Run the same gradients through a reference kernel and a torch optimizer."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    param = rng.standard_normal((2, 3))
    states = [np.zeros_like(param) for _ in range(state_count)]
    torch_param = torch.nn.Parameter(torch.from_numpy(param.copy()))
    optimizer = torch_optimizer_class([torch_param], **torch_options)
    for step in range(1, steps + 1):
        grad = rng.standard_normal(param.shape)
        reference_update(param, grad, states, step)
        torch_param.grad = torch.from_numpy(grad.copy())
        optimizer.step()
    return param, torch_param.detach().numpy()


@pytest.mark.parametrize("nesterov", [False, True])
@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_reference_sgd_matches_torch(reference, momentum, nesterov):
    # torch keeps b = momentum * b + g and steps -lr * b (Nesterov: -lr * (g + momentum * b)).
    # Keras keeps v = momentum * v - lr * g. With a constant lr, v = -lr * b at every
    # step (both start at zero), so Keras' steps v and momentum * v - lr * g equal
    # torch's -lr * b and -lr * (g + momentum * b): the two forms coincide.
    torch = pytest.importorskip("torch")
    if nesterov and momentum == 0:
        pytest.skip("Nesterov needs momentum")
    ours, theirs = run_reference_and_torch(
        lambda param, grad, states, step: reference.sgd_update(param, grad, states[0], 0.1, momentum, nesterov),
        torch.optim.SGD, {"lr": 0.1, "momentum": momentum, "nesterov": nesterov}, 1,
    )
    assert_close(ours, theirs, np.float64, "sgd vs torch")


@pytest.mark.parametrize("weight_decay", [0.0, 0.01])
def test_reference_adam_matches_torch_without_epsilon(reference, weight_decay):
    # torch divides by sqrt(v) / sqrt(1 - beta2**t) + eps, Keras by sqrt(v) + eps after
    # folding sqrt(1 - beta2**t) into the step size: they agree exactly when eps = 0.
    # torch.optim.AdamW shrinks the weights by lr * weight_decay first, as Keras does.
    torch = pytest.importorskip("torch")
    ours, theirs = run_reference_and_torch(
        lambda param, grad, states, step: reference.adam_update(
            param, grad, states[0], states[1], 0.01, 0.9, 0.999, 0.0, step, weight_decay
        ),
        torch.optim.AdamW, {"lr": 0.01, "betas": (0.9, 0.999), "eps": 0.0, "weight_decay": weight_decay}, 2,
    )
    assert_close(ours, theirs, np.float64, "adam vs torch")


def test_reference_rmsprop_matches_torch(reference):
    torch = pytest.importorskip("torch")
    ours, theirs = run_reference_and_torch(
        lambda param, grad, states, step: reference.rmsprop_update(param, grad, states[0], 0.01, 0.9, 1e-7),
        torch.optim.RMSprop, {"lr": 0.01, "alpha": 0.9, "eps": 1e-7}, 1,
    )
    assert_close(ours, theirs, np.float64, "rmsprop vs torch")


def test_reference_adagrad_matches_torch(reference):
    torch = pytest.importorskip("torch")
    ours, theirs = run_reference_and_torch(
        lambda param, grad, states, step: reference.adagrad_update(param, grad, states[0], 0.05, 1e-7),
        torch.optim.Adagrad, {"lr": 0.05, "eps": 1e-7}, 1,
    )
    assert_close(ours, theirs, np.float64, "adagrad vs torch")
