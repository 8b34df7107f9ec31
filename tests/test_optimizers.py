"""Optimizers and learning-rate schedules: steps on a small quadratic against
hand-written Keras formulas and torch.optim, gradient clipping, schedules'
values, get_state/set_state resuming exactly, lookup and configuration."""
import io

import numpy as np
import pytest

try:
    import torch
except ImportError:  # PyTorch is an optional oracle: its comparisons are skipped without it
    torch = None
requires_torch = pytest.mark.skipif(torch is None, reason="PyTorch is not installed")

import deepbreadth as db
from deepbreadth import optimizers
from deepbreadth.optimizers import schedules

# f(w) = 0.5 * sum(CURVATURE * (w - TARGET)**2): a bowl stretched differently
# along each axis, so adaptive optimizers take visibly different paths.
CURVATURE = np.array([[1.0, 3.0, 0.5], [2.0, 0.1, 8.0]])
TARGET = np.array([[1.0, -2.0, 0.5], [0.0, 3.0, -1.0]])
START = np.array([[0.5, 0.5, -0.5], [1.0, -1.0, 2.0]])
STEPS = 6


def quadratic_grad(w):
    return CURVATURE * (w - TARGET)


def run_optimizer(optimizer, steps=STEPS, dtype="float64", start=START):
    weight = db.tensor(start, dtype=dtype, requires_grad=True)
    for _ in range(steps):
        weight.grad = db.tensor(quadratic_grad(weight.numpy().astype(np.float64)), dtype=dtype)
        optimizer.step([weight])
    return weight.numpy()


# ----------------------------------------------------------------------------
# The Keras update rules, written out independently of the kernels
# ----------------------------------------------------------------------------
def keras_sgd(lr, momentum=0.0, nesterov=False, steps=STEPS):
    w, velocity = START.copy(), np.zeros_like(START)
    for _ in range(steps):
        g = quadratic_grad(w)
        velocity = momentum * velocity - lr * g
        w = w + (momentum * velocity - lr * g if nesterov else velocity)
    return w


def keras_adam(lr, beta_1=0.9, beta_2=0.999, epsilon=1e-7, weight_decay=0.0, steps=STEPS):
    w, m, v = START.copy(), np.zeros_like(START), np.zeros_like(START)
    for t in range(1, steps + 1):
        g = quadratic_grad(w)
        w = w - lr * weight_decay * w
        m = beta_1 * m + (1 - beta_1) * g
        v = beta_2 * v + (1 - beta_2) * g * g
        m_hat, v_hat = m / (1 - beta_1**t), v / (1 - beta_2**t)
        # Keras adds epsilon to sqrt(v), before the bias correction of v:
        # sqrt(v_hat) + epsilon / sqrt(1 - beta_2**t).
        w = w - lr * m_hat / (np.sqrt(v_hat) + epsilon / np.sqrt(1 - beta_2**t))
    return w


def keras_rmsprop(lr, rho=0.9, epsilon=1e-7, steps=STEPS):
    w, mean_square = START.copy(), np.zeros_like(START)
    for _ in range(steps):
        g = quadratic_grad(w)
        mean_square = rho * mean_square + (1 - rho) * g * g
        w = w - lr * g / (np.sqrt(mean_square) + epsilon)
    return w


def keras_adagrad(lr, initial_accumulator_value=0.1, epsilon=1e-7, steps=STEPS):
    w, accumulator = START.copy(), np.full_like(START, initial_accumulator_value)
    for _ in range(steps):
        g = quadratic_grad(w)
        accumulator = accumulator + g * g
        w = w - lr * g / (np.sqrt(accumulator) + epsilon)
    return w


@pytest.mark.parametrize("optimizer, expected", [
    (lambda: optimizers.SGD(learning_rate=0.05), lambda: keras_sgd(0.05)),
    (lambda: optimizers.SGD(0.05, momentum=0.9), lambda: keras_sgd(0.05, 0.9)),
    (lambda: optimizers.SGD(0.05, momentum=0.8, nesterov=True), lambda: keras_sgd(0.05, 0.8, True)),
    (lambda: optimizers.Adam(learning_rate=0.1), lambda: keras_adam(0.1)),
    (lambda: optimizers.Adam(0.1, beta_1=0.5, beta_2=0.9, epsilon=0.1),
     lambda: keras_adam(0.1, 0.5, 0.9, 0.1)),
    (lambda: optimizers.AdamW(learning_rate=0.1, weight_decay=0.05),
     lambda: keras_adam(0.1, weight_decay=0.05)),
    (lambda: optimizers.RMSprop(learning_rate=0.05, rho=0.8), lambda: keras_rmsprop(0.05, 0.8)),
    (lambda: optimizers.Adagrad(learning_rate=0.3), lambda: keras_adagrad(0.3)),
    (lambda: optimizers.Adagrad(0.3, initial_accumulator_value=1.0, epsilon=0.01),
     lambda: keras_adagrad(0.3, 1.0, 0.01)),
])
def test_steps_follow_the_keras_formula(backend_name, optimizer, expected):
    np.testing.assert_allclose(run_optimizer(optimizer()), expected(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(run_optimizer(optimizer(), dtype="float32"), expected(),
                               rtol=1e-5, atol=1e-6)


def test_the_quadratic_is_minimised():
    final = run_optimizer(optimizers.Adam(learning_rate=0.1), steps=300)
    np.testing.assert_allclose(final, TARGET, atol=0.05)


# ----------------------------------------------------------------------------
# Against torch.optim where the formulas agree
# ----------------------------------------------------------------------------
def run_torch(make_optimizer, steps=STEPS):
    weight = torch.tensor(START, requires_grad=True)
    optimizer = make_optimizer([weight])
    for _ in range(steps):
        weight.grad = torch.tensor(quadratic_grad(weight.detach().numpy()))
        optimizer.step()
    return weight.detach().numpy()


@requires_torch
@pytest.mark.parametrize("ours, theirs, rtol", [
    # Keras's velocity is -lr times torch's momentum buffer: the same steps.
    (lambda: optimizers.SGD(0.05, momentum=0.9),
     lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9), 1e-12),
    (lambda: optimizers.SGD(0.05, momentum=0.9, nesterov=True),
     lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True), 1e-12),
    (lambda: optimizers.RMSprop(0.05, rho=0.8, epsilon=1e-3),
     lambda p: torch.optim.RMSprop(p, lr=0.05, alpha=0.8, eps=1e-3), 1e-12),
    (lambda: optimizers.Adagrad(0.3, initial_accumulator_value=0.1, epsilon=1e-3),
     lambda p: torch.optim.Adagrad(p, lr=0.3, initial_accumulator_value=0.1, eps=1e-3), 1e-12),
    # torch puts epsilon after the bias correction of v, Keras before: with a
    # tiny epsilon the two agree.
    (lambda: optimizers.Adam(0.1, epsilon=1e-12),
     lambda p: torch.optim.Adam(p, lr=0.1, eps=1e-12), 1e-9),
    (lambda: optimizers.AdamW(0.1, weight_decay=0.05, epsilon=1e-12),
     lambda p: torch.optim.AdamW(p, lr=0.1, weight_decay=0.05, eps=1e-12), 1e-9),
])
def test_steps_match_torch(backend_name, ours, theirs, rtol):
    np.testing.assert_allclose(run_optimizer(ours()), run_torch(theirs), rtol=rtol)


# ----------------------------------------------------------------------------
# Gradient clipping
# ----------------------------------------------------------------------------
def one_sgd_step(grads, **clipping):
    """The change that one SGD step with learning rate 1 makes to zero weights."""
    weights = [db.tensor(np.zeros_like(g), dtype="float64", requires_grad=True) for g in grads]
    originals = [g.copy() for g in grads]
    optimizers.SGD(learning_rate=1.0, **clipping).apply_gradients(zip(grads, weights))
    for grad, original in zip(grads, originals):
        np.testing.assert_array_equal(grad, original)  # the caller's gradients are untouched
    return [-w.numpy() for w in weights]


def test_clipvalue_clips_each_element():
    (step,) = one_sgd_step([np.array([1.0, -2.0, 0.2])], clipvalue=0.5)
    np.testing.assert_allclose(step, [0.5, -0.5, 0.2])


def test_clipnorm_caps_each_gradients_norm():
    steps = one_sgd_step([np.array([3.0, 4.0]), np.array([0.3, 0.4])], clipnorm=1.0)
    np.testing.assert_allclose(steps[0], [0.6, 0.8])
    np.testing.assert_allclose(steps[1], [0.3, 0.4])  # norm 0.5: left alone


def test_global_clipnorm_scales_all_gradients_together():
    steps = one_sgd_step([np.array([3.0, 4.0]), np.array([0.0, 12.0])], global_clipnorm=1.0)
    np.testing.assert_allclose(steps[0], [3 / 13, 4 / 13])
    np.testing.assert_allclose(steps[1], [0.0, 12 / 13])
    small = one_sgd_step([np.array([0.3, 0.4]), np.array([0.0, 0.0])], global_clipnorm=1.0)
    np.testing.assert_allclose(small[0], [0.3, 0.4])


def test_only_one_clipping_option_at_a_time():
    with pytest.raises(ValueError, match="at most one of"):
        optimizers.Adam(clipnorm=1.0, global_clipnorm=1.0)
    with pytest.raises(ValueError, match="clipvalue must be > 0"):
        optimizers.SGD(clipvalue=-1.0)


# ----------------------------------------------------------------------------
# apply_gradients, step, zero_grad
# ----------------------------------------------------------------------------
def test_none_gradients_are_skipped_but_every_step_counts():
    first = db.tensor([1.0, 2.0], requires_grad=True)
    second = db.tensor([1.0], requires_grad=True)
    optimizer = optimizers.SGD(learning_rate=0.5)
    optimizer.apply_gradients([(None, first), (db.tensor([2.0]), second)])
    np.testing.assert_allclose(first.numpy(), [1.0, 2.0])
    np.testing.assert_allclose(second.numpy(), [0.0])
    assert optimizer.iterations == 1


def test_step_leaves_grad_and_zero_grad_clears_it():
    weight = db.tensor([1.0, -1.0], requires_grad=True)
    (weight * weight).sum().backward()
    optimizer = optimizers.SGD(learning_rate=0.25)
    optimizer.step([weight])
    np.testing.assert_allclose(weight.numpy(), [0.5, -0.5])
    np.testing.assert_allclose(weight.grad.numpy(), [2.0, -2.0])
    optimizer.zero_grad([weight])
    assert weight.grad is None


def test_slots_are_made_lazily_on_the_weights_dtype():
    weight = db.tensor(np.ones((2, 2)), dtype="float32", requires_grad=True)
    optimizer = optimizers.Adam()
    assert optimizer.get_state() == {"iterations": 0, "learning_rate": 0.001}
    optimizer.apply_gradients([(np.ones((2, 2)), weight)])
    state = optimizer.get_state()
    assert sorted(state) == ["iterations", "learning_rate", "slots.0.m", "slots.0.v"]
    assert state["slots.0.m"].dtype == np.float32 and state["slots.0.m"].shape == (2, 2)
    assert not optimizers.SGD().get_state().keys() - {"iterations", "learning_rate"}


def test_bad_pairs_are_explained():
    weight = db.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(TypeError, match="gradient first"):
        optimizers.SGD().apply_gradients([(weight, np.ones(2))])
    with pytest.raises(ValueError, match=r"gradient of shape \(3,\) was given for a weight of shape \(2,\)"):
        optimizers.SGD().apply_gradients([(np.ones(3), weight)])
    with pytest.raises(TypeError, match="learning_rate must be"):
        optimizers.SGD(learning_rate="fast")


def adam_steps(optimizer, weights, steps, replace_at=None):
    """Adam on fixed gradients; at step `replace_at` the first weight gets a new
    array (as set_weights or a user's `weight.data = ...` would give it)."""
    for step in steps:
        if step == replace_at:
            weights[0].data = weights[0].data.copy()
        optimizer.apply_gradients(zip(fixed_gradients(step), weights))


def adam_reference(starts, steps):
    """The same steps with the reference adam_update, one weight at a time."""
    from deepbreadth.kernels import reference
    params = [start.copy() for start in starts]
    moments = [(np.zeros_like(p), np.zeros_like(p)) for p in params]
    for step in steps:
        for param, grad, (m, v) in zip(params, fixed_gradients(step), moments):
            reference.adam_update(param, grad, m, v, 0.05, 0.9, 0.999, 1e-7, step + 1, 0.0)
    return params


def test_adam_keeps_its_flat_views_and_makes_them_again_for_new_arrays(backend_name):
    generator = np.random.default_rng(0)
    starts = [generator.standard_normal((2, 3)), generator.standard_normal(3)]
    weights = [db.tensor(start, dtype="float64", requires_grad=True) for start in starts]
    optimizer = optimizers.Adam(0.05)
    adam_steps(optimizer, weights, range(2))
    kept = optimizer._flat_views_kept[1]
    assert kept is not None, "contiguous weights of one dtype are updated through flat views"
    adam_steps(optimizer, weights, range(2, 3))
    assert optimizer._flat_views_kept[1] is kept, "the same arrays: the same views"
    adam_steps(optimizer, weights, range(3, 5), replace_at=3)
    assert optimizer._flat_views_kept[1] is not kept, "a new array: new views"
    for weight, expected in zip(weights, adam_reference(starts, range(5))):
        np.testing.assert_allclose(weight.numpy(), expected, rtol=1e-12, atol=1e-15)


def test_adam_with_mixed_dtypes_updates_each_weight(backend_name):
    weights = [db.tensor(np.ones((2, 3)), dtype="float32", requires_grad=True),
               db.tensor(np.ones(3), dtype="float64", requires_grad=True)]
    optimizer = optimizers.Adam(0.05)
    adam_steps(optimizer, weights, range(3))
    assert optimizer._flat_views_kept[1] is None, "two dtypes: no flat views"
    for weight, expected in zip(weights, adam_reference([np.ones((2, 3)), np.ones(3)], range(3))):
        assert weight.data.dtype == weight.dtype
        np.testing.assert_allclose(weight.numpy(), expected, rtol=1e-6)


# ----------------------------------------------------------------------------
# Schedules
# ----------------------------------------------------------------------------
def test_exponential_and_inverse_time_decay():
    decay = schedules.ExponentialDecay(1.0, decay_steps=10, decay_rate=0.5)
    assert [decay(0), decay(5), decay(20)] == pytest.approx([1.0, 0.5**0.5, 0.25])
    stairs = schedules.ExponentialDecay(1.0, decay_steps=10, decay_rate=0.5, staircase=True)
    assert [stairs(9), stairs(15), stairs(20)] == pytest.approx([1.0, 0.5, 0.25])
    inverse = schedules.InverseTimeDecay(1.0, decay_steps=10, decay_rate=2.0)
    assert [inverse(0), inverse(5), inverse(10)] == pytest.approx([1.0, 0.5, 1 / 3])


def test_cosine_decay_with_and_without_warmup():
    cosine = schedules.CosineDecay(1.0, decay_steps=10, alpha=0.1)
    assert [cosine(0), cosine(5), cosine(10), cosine(50)] == pytest.approx([1.0, 0.55, 0.1, 0.1])
    warm = schedules.CosineDecay(0.0, decay_steps=10, warmup_target=1.0, warmup_steps=4)
    assert [warm(0), warm(2), warm(4), warm(9), warm(14), warm(99)] == \
        pytest.approx([0.0, 0.5, 1.0, 0.5, 0.0, 0.0])


def test_piecewise_constant_and_polynomial_decay():
    piecewise = schedules.PiecewiseConstantDecay([10, 20], [1.0, 0.5, 0.1])
    assert [piecewise(s) for s in (0, 10, 11, 20, 21)] == pytest.approx([1.0, 1.0, 0.5, 0.5, 0.1])
    with pytest.raises(ValueError, match="one more value than boundaries"):
        schedules.PiecewiseConstantDecay([10, 20], [1.0, 0.5])
    with pytest.raises(ValueError, match="boundaries must increase"):
        schedules.PiecewiseConstantDecay([20, 10], [1.0, 0.5, 0.1])
    poly = schedules.PolynomialDecay(1.0, decay_steps=10, end_learning_rate=0.0, power=2.0)
    assert [poly(0), poly(5), poly(10), poly(30)] == pytest.approx([1.0, 0.25, 0.0, 0.0])
    cycling = schedules.PolynomialDecay(1.0, decay_steps=10, end_learning_rate=0.0, cycle=True)
    assert cycling(15) == pytest.approx(0.25)  # the span doubles to 20


def test_schedules_refuse_non_positive_decay_steps():
    with pytest.raises(ValueError, match="decay_steps must be > 0"):
        schedules.ExponentialDecay(0.1, decay_steps=0, decay_rate=0.5)


def test_an_optimizer_evaluates_its_schedule_at_its_step_count():
    optimizer = optimizers.SGD(learning_rate=schedules.PiecewiseConstantDecay([1], [1.0, 0.1]))
    weight = db.tensor([0.0], dtype="float64", requires_grad=True)
    rates = []
    for _ in range(3):
        rates.append(optimizer.learning_rate)
        optimizer.apply_gradients([(np.array([1.0]), weight)])
    assert rates == pytest.approx([1.0, 1.0, 0.1])
    np.testing.assert_allclose(weight.numpy(), [-2.1])


def test_learning_rate_can_be_set():
    optimizer = optimizers.Adam()
    optimizer.learning_rate = np.float32(0.5)
    assert optimizer.learning_rate == 0.5 and isinstance(optimizer.learning_rate, float)
    optimizer.learning_rate = schedules.ExponentialDecay(1.0, 1, 0.5)
    optimizer.iterations = 2
    assert optimizer.learning_rate == pytest.approx(0.25)


# ----------------------------------------------------------------------------
# get_state / set_state: resuming exactly
# ----------------------------------------------------------------------------
def fixed_gradients(step):
    generator = np.random.default_rng(step)
    return [generator.standard_normal((2, 3)), generator.standard_normal(3)]


def train(optimizer, weights, steps):
    for step in steps:
        optimizer.apply_gradients(zip(fixed_gradients(step), weights))


def saved_and_loaded(state):
    """The state written to an .npz file and read back, as a model save would."""
    buffer = io.BytesIO()
    np.savez(buffer, **state)
    buffer.seek(0)
    with np.load(buffer) as loaded:
        return {key: loaded[key] for key in loaded.files}


@pytest.mark.parametrize("make_optimizer", [
    lambda: optimizers.SGD(0.1, momentum=0.9, nesterov=True),
    lambda: optimizers.Adam(0.05),
    lambda: optimizers.AdamW(0.05, weight_decay=0.1),
    lambda: optimizers.RMSprop(0.05),
    lambda: optimizers.Adagrad(0.2),
])
def test_state_round_trip_resumes_training_exactly(backend_name, make_optimizer):
    generator = np.random.default_rng(0)
    starts = [generator.standard_normal((2, 3)), generator.standard_normal(3)]
    original_weights = [db.tensor(s, requires_grad=True) for s in starts]
    original = make_optimizer()
    train(original, original_weights, range(3))
    original.learning_rate = 0.02  # as a callback might
    state = saved_and_loaded(original.get_state())

    resumed_weights = [db.tensor(w.numpy(), requires_grad=True) for w in original_weights]
    resumed = optimizers.deserialize(optimizers.serialize(make_optimizer()))
    resumed.set_state(state, resumed_weights)
    assert resumed.iterations == 3 and resumed.learning_rate == pytest.approx(0.02)

    restarted_weights = [db.tensor(w.numpy(), requires_grad=True) for w in original_weights]
    restarted = make_optimizer()
    restarted.set_state({"learning_rate": 0.02}, restarted_weights)

    for optimizer, weights in ((original, original_weights), (resumed, resumed_weights),
                               (restarted, restarted_weights)):
        train(optimizer, weights, range(3, 5))
    for kept, reloaded, fresh in zip(original_weights, resumed_weights, restarted_weights):
        np.testing.assert_array_equal(reloaded.numpy(), kept.numpy())
        # Without the state the path differs: the test can tell.
        assert not np.allclose(fresh.numpy(), kept.numpy(), rtol=1e-7, atol=0)


def test_set_state_refuses_state_of_another_model_or_optimizer():
    weights = [db.tensor(np.zeros((2, 3)), requires_grad=True)]
    adam = optimizers.Adam()
    adam.apply_gradients(zip([np.ones((2, 3))], weights))
    state = adam.get_state()
    with pytest.raises(ValueError, match=r"has shape \(2, 3\) in the saved state but the weight has shape \(3,\)"):
        optimizers.Adam().set_state(state, [db.tensor(np.zeros(3), requires_grad=True)])
    with pytest.raises(ValueError, match="only 0 weights were given"):
        optimizers.Adam().set_state(state, [])
    with pytest.raises(ValueError, match="which RMSprop does not use"):
        optimizers.RMSprop().set_state(state, weights)
    with pytest.raises(ValueError, match="unknown key 'momentum'"):
        optimizers.Adam().set_state({"momentum": 1}, weights)


# ----------------------------------------------------------------------------
# get, serialize, deserialize, configs
# ----------------------------------------------------------------------------
@pytest.mark.parametrize("name, cls", [
    ("adam", optimizers.Adam), ("Adam", optimizers.Adam), ("sgd", optimizers.SGD),
    ("rmsprop", optimizers.RMSprop), ("adagrad", optimizers.Adagrad), ("adamw", optimizers.AdamW),
])
def test_get_by_name(name, cls):
    assert type(optimizers.get(name)) is cls


def test_get_passes_instances_and_refuses_unknown_names():
    adam = optimizers.Adam()
    assert optimizers.get(adam) is adam
    with pytest.raises(ValueError, match="unknown optimizer 'adamax'"):
        optimizers.get("adamax")
    with pytest.raises(TypeError, match="cannot interpret"):
        optimizers.get(0.1)


def test_configs_round_trip_with_a_schedule():
    schedule = schedules.CosineDecay(0.1, decay_steps=100, alpha=0.01, warmup_target=0.2,
                                     warmup_steps=5)
    optimizer = optimizers.SGD(learning_rate=schedule, momentum=0.5, nesterov=True, clipnorm=2.0)
    rebuilt = optimizers.deserialize(optimizers.serialize(optimizer))
    assert rebuilt.get_config() == optimizer.get_config()
    assert isinstance(rebuilt._learning_rate, schedules.CosineDecay)
    for optimizer in (optimizers.Adam(0.01, beta_1=0.8), optimizers.AdamW(weight_decay=0.1),
                      optimizers.RMSprop(rho=0.7), optimizers.Adagrad(epsilon=1e-3)):
        rebuilt = type(optimizer).from_config(optimizer.get_config())
        assert rebuilt.get_config() == optimizer.get_config()


def test_schedules_are_reachable_as_in_keras():
    from deepbreadth.optimizers.schedules import ExponentialDecay

    assert ExponentialDecay is optimizers.schedules.ExponentialDecay
    schedule = schedules.PiecewiseConstantDecay([5], [0.1, 0.01])
    assert schedules.deserialize(schedules.serialize(schedule)).get_config() == schedule.get_config()
