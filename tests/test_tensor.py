"""The Tensor itself: its properties, its constructors, grad mode, the RNG seed,
the default float dtype, and how fast the package imports."""
import subprocess
import sys
import time

import numpy as np
import pytest

import deepbreadth as db


@pytest.fixture(autouse=True)
def on_each_device(device):
    """Every test here runs on each device chosen with --backend (see conftest.py)."""


@pytest.fixture
def float64_default():
    """Switch the default float dtype to float64 for one test, then back."""
    previous = db.floatx()
    db.set_floatx("float64")
    yield
    db.set_floatx(previous)


# ----------------------------------------------------------------------------
# Properties and conversions
# ----------------------------------------------------------------------------
def test_array_properties_follow_the_data():
    t = db.tensor(np.arange(24.0).reshape(2, 3, 4))
    assert t.shape == (2, 3, 4)
    assert t.ndim == 3
    assert t.size == 24
    assert t.dtype == np.float32
    assert len(t) == 2


def test_numpy_returns_the_values():
    values = np.array([[1.5, -2.0], [3.25, 0.0]], dtype=np.float32)
    t = db.tensor(values)
    assert isinstance(t.numpy(), np.ndarray)
    np.testing.assert_array_equal(t.numpy(), values)
    np.testing.assert_array_equal(np.asarray(t), values)


def test_item_gives_a_python_number_for_one_element():
    assert db.tensor(2.5).item() == 2.5
    assert isinstance(db.tensor([7]).item(), int)
    with pytest.raises(ValueError, match="one element"):
        db.tensor([1.0, 2.0]).item()


def test_transpose_property_reverses_the_axes():
    values = np.arange(6.0).reshape(2, 3)
    np.testing.assert_array_equal(db.tensor(values).T.numpy(), values.T)
    assert db.tensor(np.zeros((2, 3, 4))).T.shape == (4, 3, 2)


def test_detach_keeps_values_and_cuts_the_graph():
    x = db.tensor([1.0, 2.0], requires_grad=True)
    y = x * 3
    d = y.detach()
    assert not d.requires_grad and d.grad_fn is None
    np.testing.assert_array_equal(d.numpy(), [3.0, 6.0])
    # A detached value is a constant: no gradient flows through it.
    (x * d).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [3.0, 6.0])


def test_astype_changes_dtype_and_passes_the_gradient_back_in_the_original_dtype():
    x = db.tensor([1.0, 2.0], requires_grad=True)
    y = x.astype("float64")
    assert y.dtype == np.float64
    (y * 3).sum().backward()
    assert x.grad.dtype == np.float32
    np.testing.assert_array_equal(x.grad.numpy(), [3.0, 3.0])


def test_astype_to_integers_gives_a_constant():
    y = db.tensor([1.7, -2.2], requires_grad=True).astype("int64")
    assert y.dtype == np.int64 and not y.requires_grad
    np.testing.assert_array_equal(y.numpy(), [1, -2])


def test_truth_value_of_a_multi_element_tensor_is_an_error():
    assert bool(db.tensor([3.0]))
    with pytest.raises(ValueError, match="ambiguous"):
        bool(db.tensor([1.0, 2.0]))


def test_repr_shows_values_dtype_and_grad_state():
    text = repr(db.tensor([1.0, 2.0], requires_grad=True))
    assert "1." in text and "2." in text and "float32" in text and "requires_grad=True" in text
    assert "grad_fn=Mul" in repr(db.tensor([1.0], requires_grad=True) * 2)


def test_comparisons_give_boolean_tensors_without_gradient():
    x = db.tensor([1.0, 2.0, 3.0], requires_grad=True)
    mask = x > 1.5
    assert mask.dtype == np.bool_ and not mask.requires_grad
    np.testing.assert_array_equal(mask.numpy(), [False, True, True])


# ----------------------------------------------------------------------------
# requires_grad and .grad
# ----------------------------------------------------------------------------
def test_grad_is_none_until_backward_then_a_tensor():
    x = db.tensor([1.0, 2.0], requires_grad=True)
    assert x.requires_grad and x.grad is None and x.is_leaf
    (x * x).sum().backward()
    assert isinstance(x.grad, db.Tensor)
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 4.0])


def test_tensors_do_not_require_grad_by_default():
    x = db.tensor([1.0])
    y = x * 2
    assert not x.requires_grad and not y.requires_grad and y.grad_fn is None


def test_an_op_on_a_tensor_that_requires_grad_records_a_node():
    y = db.tensor([1.0], requires_grad=True) * 2
    assert y.requires_grad and y.grad_fn is not None and not y.is_leaf


def test_only_floating_tensors_can_require_grad():
    with pytest.raises(TypeError, match="floating"):
        db.tensor([1, 2], requires_grad=True)


def test_backward_of_a_scalar_starts_from_one():
    x = db.tensor(3.0, requires_grad=True)
    (x * x).backward()
    assert x.grad.item() == pytest.approx(6.0)


def test_backward_of_a_one_element_tensor_starts_from_one():
    x = db.tensor([3.0], requires_grad=True)
    (x * 5).backward()
    assert x.grad.item() == pytest.approx(5.0)


def test_backward_of_a_non_scalar_without_grad_is_a_clear_error():
    x = db.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match=r"shape \(2,\).*needs a `grad`"):
        (x * 2).backward()


def test_backward_of_a_non_scalar_with_grad_is_a_vector_jacobian_product():
    x = db.tensor([1.0, 2.0, 3.0], requires_grad=True)
    (x * x).backward(db.tensor([1.0, 0.5, -1.0]))
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 2.0, -6.0])


def test_backward_grad_given_as_an_array_keeps_the_tensor_dtype():
    x = db.tensor([1.0, 2.0], dtype="float64", requires_grad=True)
    # 0.1 is not exact in float32: a float32 detour would show in the 8th digit.
    (x * 3).backward(np.array([0.1, 0.1]))
    assert x.grad.dtype == np.float64
    np.testing.assert_array_equal(x.grad.numpy(), [0.1 * 3, 0.1 * 3])


def test_backward_with_a_grad_of_the_wrong_shape_names_both_shapes():
    x = db.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(db.ShapeError, match=r"\(3,\).*\(2,\)"):
        (x * 2).backward(np.ones(3))


def test_backward_on_a_tensor_that_does_not_require_grad_says_so():
    with pytest.raises(RuntimeError, match="does not require grad"):
        (db.tensor([1.0]) * 2).sum().backward()


# ----------------------------------------------------------------------------
# Constructors and dtypes
# ----------------------------------------------------------------------------
def test_floating_input_defaults_to_float32():
    assert db.tensor([1.0, 2.0]).dtype == np.float32
    assert db.tensor(np.array([1.0], dtype=np.float64)).dtype == np.float32
    assert db.tensor(1.5).dtype == np.float32


def test_integer_and_boolean_input_keep_their_dtype():
    assert db.tensor([1, 2]).dtype == np.int64
    assert db.tensor([True, False]).dtype == np.bool_


def test_float64_is_kept_when_asked_for():
    assert db.tensor([1.0], dtype="float64").dtype == np.float64
    assert db.tensor([1.0], dtype=np.float64).dtype == np.float64


@pytest.mark.parametrize("make", [
    lambda dtype: db.zeros(2, 3, dtype=dtype),
    lambda dtype: db.ones((2, 3), dtype=dtype),
    lambda dtype: db.full((2, 3), 0.5, dtype=dtype),
    lambda dtype: db.randn(2, 3, dtype=dtype),
    lambda dtype: db.rand(2, 3, dtype=dtype),
    lambda dtype: db.arange(0.0, 3.0, 0.5, dtype=dtype),
    lambda dtype: db.zeros_like(db.ones(2), dtype=dtype),
    lambda dtype: db.ones_like(db.ones(2), dtype=dtype),
], ids=["zeros", "ones", "full", "randn", "rand", "arange", "zeros_like", "ones_like"])
def test_every_constructor_honours_dtype(make):
    assert make(None).dtype == np.float32
    assert make("float64").dtype == np.float64


def test_set_floatx_changes_the_default_float_dtype(float64_default):
    assert db.floatx() == np.float64
    assert db.tensor([1.0]).dtype == np.float64
    assert db.zeros(2).dtype == np.float64
    assert db.randn(2).dtype == np.float64
    assert (db.tensor([1.0]) * 2.5).dtype == np.float64


def test_set_floatx_rejects_non_float_dtypes():
    with pytest.raises(ValueError, match="floatx"):
        db.set_floatx("int32")


def test_tensor_copies_its_data():
    values = np.ones(3, dtype=np.float32)
    t = db.tensor(values)
    values[0] = 5.0
    assert t.numpy()[0] == 1.0


def test_zeros_ones_full_values_and_shapes():
    np.testing.assert_array_equal(db.zeros(2, 3).numpy(), np.zeros((2, 3)))
    np.testing.assert_array_equal(db.zeros((2, 3)).numpy(), np.zeros((2, 3)))
    np.testing.assert_array_equal(db.ones(4).numpy(), np.ones(4))
    np.testing.assert_array_equal(db.full((2, 2), 7.5).numpy(), np.full((2, 2), 7.5))
    np.testing.assert_array_equal(db.full(3, 2.0).numpy(), [2.0, 2.0, 2.0])
    assert db.zeros(0, 3).shape == (0, 3)
    assert db.zeros(()).shape == ()


def test_constructors_can_make_leaves_that_require_grad():
    for t in (db.zeros(2, requires_grad=True), db.ones(2, requires_grad=True),
              db.full(2, 1.0, requires_grad=True), db.randn(2, requires_grad=True),
              db.rand(2, requires_grad=True), db.tensor([1.0], requires_grad=True),
              db.zeros_like(db.ones(2), requires_grad=True)):
        assert t.requires_grad and t.is_leaf


def test_arange_like_numpy():
    np.testing.assert_array_equal(db.arange(5).numpy(), np.arange(5))
    assert db.arange(5).dtype == np.int64
    np.testing.assert_array_equal(db.arange(2, 11, 3).numpy(), [2, 5, 8])
    np.testing.assert_allclose(db.arange(0.0, 1.0, 0.25).numpy(), [0.0, 0.25, 0.5, 0.75])
    assert db.arange(0.0, 1.0, 0.25).dtype == np.float32


def test_zeros_like_and_ones_like_copy_shape_and_dtype():
    other = db.tensor(np.arange(6.0).reshape(2, 3), dtype="float64")
    assert db.zeros_like(other).shape == (2, 3) and db.zeros_like(other).dtype == np.float64
    np.testing.assert_array_equal(db.ones_like(other).numpy(), np.ones((2, 3)))
    assert db.zeros_like(db.arange(3)).dtype == np.int64


def test_rand_is_uniform_in_the_unit_interval_and_randn_is_roughly_standard():
    db.set_seed(1)
    uniform = db.rand(2000).numpy()
    assert uniform.min() >= 0.0 and uniform.max() < 1.0
    normal = db.randn(4000).numpy()
    # Loose bounds: 4000 samples put the mean within 0.1 and the std within 0.1.
    assert abs(normal.mean()) < 0.1 and abs(normal.std() - 1.0) < 0.1


def test_set_seed_makes_random_tensors_reproducible():
    db.set_seed(123)
    first = (db.randn(3, 4).numpy(), db.rand(5).numpy())
    db.set_seed(123)
    second = (db.randn(3, 4).numpy(), db.rand(5).numpy())
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])
    db.set_seed(124)
    assert not np.array_equal(db.randn(3, 4).numpy(), first[0])


# ----------------------------------------------------------------------------
# Grad mode
# ----------------------------------------------------------------------------
def test_no_grad_as_a_context_manager_records_nothing():
    x = db.tensor([1.0], requires_grad=True)
    with db.no_grad():
        assert not db.is_grad_enabled()
        y = x * 2
    assert db.is_grad_enabled()
    assert not y.requires_grad and y.grad_fn is None


def test_no_grad_as_a_decorator():
    x = db.tensor([1.0], requires_grad=True)

    @db.no_grad()
    def double(t):
        """Doubles."""
        return t * 2

    y = double(x)
    assert not y.requires_grad
    assert double.__name__ == "double" and double.__doc__ == "Doubles."
    assert (x * 2).requires_grad  # the mode came back after the call


def test_no_grad_is_restored_after_an_exception():
    with pytest.raises(KeyError):
        with db.no_grad():
            raise KeyError("boom")
    assert db.is_grad_enabled()


def test_enable_grad_inside_no_grad_records_again():
    x = db.tensor([1.0], requires_grad=True)
    with db.no_grad():
        with db.enable_grad():
            y = x * 2
        z = x * 2
    assert y.requires_grad and not z.requires_grad


# ----------------------------------------------------------------------------
# Import time
# ----------------------------------------------------------------------------
def test_import_is_fast():
    """`import deepbreadth` must not pull in Numba, SciPy or CuPy (target: under 1 s).

    The bound is generous because the test machine is shared; the modules
    check is the strict part."""
    code = ("import sys, time; start = time.perf_counter(); import deepbreadth; "
            "print(time.perf_counter() - start); "
            "print(' '.join(m for m in ('numba', 'scipy', 'cupy', 'torch') if m in sys.modules))")
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    wall = time.perf_counter() - start
    import_seconds, heavy_modules = (result.stdout.splitlines() + [""])[:2]
    assert heavy_modules == "", f"import deepbreadth imported {heavy_modules}"
    assert float(import_seconds) < 1.0
    assert wall < 3.0
