"""The checker itself: it passes right gradients and catches wrong ones.

A checker that never fails proves nothing, so most tests here plant a wrong
backward in a custom Function and expect GradcheckError, with a message that
names the input and the element to blame.
"""
import re

import numpy as np
import pytest

import deepbreadth as db
from deepbreadth.autograd import Function, Tensor


class Square(Function):
    """a**2 with a backward that is wrong at one element when `wrong_at` is set."""

    wrong_at = None

    @staticmethod
    def forward(ctx, a):
        ctx.save_for_backward(a)
        return a * a

    @staticmethod
    def backward(ctx, grad):
        (a,) = ctx.saved_tensors
        result = grad * a * 2
        if Square.wrong_at is not None:
            error = np.zeros(a.shape)
            error[Square.wrong_at] = 0.5
            result = result + db.tensor(error, dtype=a.dtype)  # on the current device
        return result


class ScaledProduct(Function):
    """a * b, with the gradient of b off by `b_error_factor`."""

    b_error_factor = 1.0

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a * b

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved_tensors
        return grad * b, grad * a * ScaledProduct.b_error_factor


class CubeWithConstantBackward(Function):
    """a**3 whose backward is right in value but built from a constant (3 a^2 as
    a raw array), so its own derivative is lost: only gradgradcheck can tell."""

    @staticmethod
    def forward(ctx, a):
        ctx.save_for_backward(a)
        return a ** 3

    @staticmethod
    def backward(ctx, grad):
        (a,) = ctx.saved_tensors
        return grad * Tensor._wrap(3 * a.data ** 2)


@pytest.fixture(autouse=True)
def on_each_device(device):
    """Every test here runs on each device chosen with --backend (see conftest.py)."""


@pytest.fixture(autouse=True)
def right_gradients_by_default():
    Square.wrong_at = None
    ScaledProduct.b_error_factor = 1.0
    yield
    Square.wrong_at = None
    ScaledProduct.b_error_factor = 1.0


def random_array(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


# ----------------------------------------------------------------------------
# Right gradients pass
# ----------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["full", "random", "auto"])
def test_right_gradients_pass_in_every_mode(mode):
    assert db.gradcheck(lambda a: Square.apply(a), [random_array(3, 4)], mode=mode) is True
    assert db.gradcheck(lambda a, b: ScaledProduct.apply(a, b),
                        [random_array(3, 1), random_array(4)], mode=mode) is True


def test_functions_with_several_outputs_are_checked_output_by_output():
    def two_outputs(a, b):
        return a * b, (a + b).exp()

    assert db.gradcheck(two_outputs, [random_array(2, 3), random_array(3, seed=1)])
    assert db.gradgradcheck(two_outputs, [random_array(2, 3), random_array(3, seed=1)])


def test_empty_and_zero_dimensional_inputs():
    assert db.gradcheck(lambda a: (a * 2).sum(axis=0), [np.zeros((0, 3))])
    assert db.gradcheck(lambda a: a.exp() * 3, [np.zeros((2, 0))])
    assert db.gradcheck(lambda a: a * a, [np.array(1.5)])
    assert db.gradgradcheck(lambda a: a * a * a, [np.array(1.5)])
    assert db.gradcheck(lambda a, b: a * b, [np.array(2.0), random_array(3)])


def test_inputs_are_checked_in_float64_whatever_their_dtype():
    seen = []

    def record_dtype(a):
        seen.append(a.dtype)
        return a.exp()

    db.gradcheck(record_dtype, [db.tensor([1.0, 2.0])])  # a float32 tensor
    assert seen and all(dtype == np.float64 for dtype in seen)


def test_non_floating_inputs_pass_through_unchanged():
    def pick(a, index):
        assert index.dtype.kind == "i"
        return a[index] * 2

    assert db.gradcheck(pick, [random_array(4), np.array([0, 3, 3])])


@pytest.mark.parametrize("mode", ["full", "random"])
def test_an_input_that_does_not_affect_the_output_has_zero_gradient(mode):
    assert db.gradcheck(lambda a, b: a * 2, [random_array(3), random_array(3)], mode=mode)
    assert db.gradgradcheck(lambda a, b: a * 2, [random_array(3), random_array(3)], mode=mode)


def test_the_callers_arrays_are_left_unchanged():
    values = random_array(2, 2)
    original = values.copy()
    db.gradcheck(lambda a: Square.apply(a), [values])
    np.testing.assert_array_equal(values, original)


def test_auto_mode_switches_to_random_directions_for_large_inputs():
    calls = []

    def counted(a):
        calls.append(1)
        return a * 3

    db.gradcheck(counted, [random_array(30, 30)], num_directions=5)  # 900 elements
    # The full Jacobian would evaluate fn twice per element (1800 calls).
    assert len(calls) < 50


# ----------------------------------------------------------------------------
# Wrong gradients are caught and located
# ----------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["full", "random"])
def test_a_wrong_element_is_caught_and_named_in_both_modes(mode):
    Square.wrong_at = (1, 2)
    with pytest.raises(db.GradcheckError) as info:
        db.gradcheck(lambda a: Square.apply(a), [random_array(3, 4)], mode=mode)
    message = str(info.value)
    assert "input 0" in message and "index (1, 2)" in message
    values = re.search(r"analytic (\S+), numeric (\S+)", message)
    assert values, message
    # The planted error is 0.5 on the gradient of output element (1, 2).
    assert float(values.group(1)) - float(values.group(2)) == pytest.approx(0.5, abs=1e-4)


@pytest.mark.parametrize("mode", ["full", "random"])
def test_the_wrong_input_is_the_one_named(mode):
    ScaledProduct.b_error_factor = 1.5
    with pytest.raises(db.GradcheckError, match=r"input 1 .*index \("):
        db.gradcheck(lambda a, b: ScaledProduct.apply(a, b), [random_array(2, 3), random_array(2, 3)],
                     mode=mode)


def test_a_named_input_is_named_in_the_message():
    Square.wrong_at = (0,)
    weights = db.Tensor(random_array(3), dtype="float64", name="weights")
    with pytest.raises(db.GradcheckError, match=r"input 0 \(weights\).*index \(0,\)"):
        db.gradcheck(lambda a: Square.apply(a), [weights])


def test_random_mode_catches_an_error_in_a_large_input():
    Square.wrong_at = (17, 3)
    with pytest.raises(db.GradcheckError, match=r"index \(17, 3\)"):
        db.gradcheck(lambda a: Square.apply(a), [random_array(25, 25)])  # auto: 625 elements, random


def test_tolerances_decide_what_counts_as_wrong():
    ScaledProduct.b_error_factor = 1 + 1e-4  # a relative error of 1e-4
    inputs = [random_array(2, 2), random_array(2, 2) + 3]
    assert db.gradcheck(lambda a, b: ScaledProduct.apply(a, b), inputs, rtol=1e-3, atol=0)
    with pytest.raises(db.GradcheckError):
        db.gradcheck(lambda a, b: ScaledProduct.apply(a, b), inputs, rtol=1e-6, atol=0)


def test_a_nan_gradient_is_never_accepted():
    class NanBackward(Function):
        @staticmethod
        def forward(ctx, a):
            return a * 2

        @staticmethod
        def backward(ctx, grad):
            return grad * float("nan")

    with pytest.raises(db.GradcheckError, match="analytic nan"):
        db.gradcheck(lambda a: NanBackward.apply(a), [random_array(3)])
    with pytest.raises(db.GradcheckError):
        db.gradcheck(lambda a: NanBackward.apply(a), [random_array(30, 30)], mode="random")


def test_gradgradcheck_catches_a_backward_that_is_not_differentiable():
    inputs = [random_array(3) + 2]
    assert db.gradcheck(lambda a: CubeWithConstantBackward.apply(a), inputs)
    with pytest.raises(db.GradcheckError, match="input 0"):
        db.gradgradcheck(lambda a: CubeWithConstantBackward.apply(a), inputs)


def test_gradgradcheck_passes_a_differentiable_backward():
    assert db.gradgradcheck(lambda a: Square.apply(a), [random_array(3, 2)])
    assert db.gradgradcheck(lambda a, b: ScaledProduct.apply(a, b), [random_array(3), random_array(3)])


# ----------------------------------------------------------------------------
# Misuse
# ----------------------------------------------------------------------------
def test_no_floating_input_is_an_error():
    with pytest.raises(ValueError, match="none of the inputs"):
        db.gradcheck(lambda index: index, [np.array([1, 2])])


def test_an_unknown_mode_is_an_error():
    with pytest.raises(ValueError, match="mode"):
        db.gradcheck(lambda a: a * 2, [random_array(2)], mode="sideways")
