"""The backward engine: graph order, accumulation, freed graphs, higher-order
gradients, hooks, retain_grad, deepbreadth.grad, custom Functions and the
errors a user meets."""
import time

import numpy as np
import pytest

import deepbreadth as db
from deepbreadth.autograd import Function


@pytest.fixture(autouse=True)
def on_each_device(device):
    """Every test here runs on each device chosen with --backend (see conftest.py)."""


def float64_leaf(values):
    return db.tensor(values, dtype="float64", requires_grad=True)


# ----------------------------------------------------------------------------
# Order and accumulation
# ----------------------------------------------------------------------------
def test_a_chain_of_100000_ops_backpropagates_without_recursion():
    x = db.tensor([1.0, 2.0], requires_grad=True)
    one = db.tensor(1.0)
    start = time.perf_counter()
    y = x
    for _ in range(100_000):
        y = y + one
    y.sum().backward()
    elapsed = time.perf_counter() - start
    np.testing.assert_array_equal(x.grad.numpy(), [1.0, 1.0])
    np.testing.assert_array_equal(y.numpy(), [100_001.0, 100_002.0])
    assert elapsed < 30, f"100,000-op chain took {elapsed:.1f} s"


def test_a_deep_chain_can_be_dropped_without_backward():
    """Freeing a long graph must not overflow the C stack either."""
    y = db.tensor([1.0], requires_grad=True)
    one = db.tensor(1.0)
    for _ in range(100_000):
        y = y * one
    del y


def test_gradients_accumulate_when_a_tensor_is_used_twice():
    x = float64_leaf([1.0, -2.0, 3.0])
    (x * x + x).sum().backward()  # d/dx (x^2 + x) = 2x + 1, x reaches the sum 3 times
    np.testing.assert_allclose(x.grad.numpy(), [3.0, -3.0, 7.0])


def test_diamond_graph_sums_both_paths():
    x = float64_leaf(2.0)
    a = x * 3
    b = x.exp()
    (a * b).backward()  # d/dx 3x e^x = 3 e^x + 3x e^x
    assert x.grad.item() == pytest.approx(3 * np.exp(2.0) + 6 * np.exp(2.0))


def test_nodes_run_only_after_all_their_consumers():
    """A node reached by a short and a long path must wait for both gradients."""
    x = float64_leaf(1.5)
    short = x * 2
    long = ((short * 3).exp() * 0.5).log() + short  # log(0.5 e^{6x}) + 2x = log 0.5 + 8x
    (short + long).backward()
    assert x.grad.item() == pytest.approx(10.0)


def test_gradients_accumulate_across_backward_calls():
    x = float64_leaf([1.0, 2.0])
    (x * 3).sum().backward()
    (x * 4).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [7.0, 7.0])
    x.zero_grad()
    assert x.grad is None


def test_broadcasting_is_undone_once_for_every_input():
    a = float64_leaf(np.ones((3, 1)))
    b = float64_leaf(np.ones(4))
    c = float64_leaf(2.0)
    (a * b + c).sum().backward()
    assert a.grad.shape == (3, 1) and b.grad.shape == (4,) and c.grad.shape == ()
    np.testing.assert_allclose(a.grad.numpy(), np.full((3, 1), 4.0))
    np.testing.assert_allclose(b.grad.numpy(), np.full(4, 3.0))
    assert c.grad.item() == 12.0


def test_a_float32_leaf_in_a_float64_op_gets_a_float32_gradient():
    small = db.tensor([1.0, 2.0], requires_grad=True)
    wide = float64_leaf([3.0, 4.0])
    (small * wide).sum().backward()
    assert small.grad.dtype == np.float32 and wide.grad.dtype == np.float64
    np.testing.assert_allclose(small.grad.numpy(), [3.0, 4.0])


def test_only_leaves_keep_grad_by_default():
    x = float64_leaf([1.0])
    y = x * 2
    (y * 3).sum().backward()
    assert y.grad is None and x.grad is not None


def test_detached_and_constant_branches_get_no_gradient():
    x = float64_leaf([1.0, 2.0])
    constant = db.tensor([5.0, 6.0], dtype="float64")
    (x * constant + x.detach() * 100).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [5.0, 6.0])
    assert constant.grad is None


def test_ops_under_no_grad_do_not_join_the_graph():
    x = float64_leaf([1.0])
    with db.no_grad():
        y = x * 2
    z = x * y
    z.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [2.0])


# ----------------------------------------------------------------------------
# Freed graphs
# ----------------------------------------------------------------------------
def test_a_second_backward_through_a_freed_graph_is_a_clear_error():
    x = float64_leaf([1.0, 2.0])
    loss = (x.exp() * 2).sum()
    loss.backward()
    with pytest.raises(RuntimeError, match="second time.*retain_graph=True"):
        loss.backward()


def test_retain_graph_allows_a_second_backward():
    x = float64_leaf([1.0, 2.0])
    loss = (x.exp() * 2).sum()
    loss.backward(retain_graph=True)
    loss.backward()
    np.testing.assert_allclose(x.grad.numpy(), 4 * np.exp([1.0, 2.0]))


def test_a_new_op_on_top_of_a_freed_graph_cannot_reach_through_it():
    x = float64_leaf([1.0])
    y = x.exp()
    y.sum().backward()
    with pytest.raises(RuntimeError, match="second time"):
        (y * 3).sum().backward()


def test_backward_frees_saved_values():
    x = float64_leaf([1.0, 2.0])
    y = x.exp()
    node = y.grad_fn
    y.sum().backward()
    assert node.freed and node.inputs == ()


# ----------------------------------------------------------------------------
# Higher-order gradients
# ----------------------------------------------------------------------------
def test_hessian_vector_product_matches_the_hand_derived_hessian():
    """f(x) = sum(x^3) + x.(A x) + logsumexp(x), so
    H = diag(6 x) + A + A^T + diag(p) - p p^T with p = softmax(x)."""
    rng = np.random.default_rng(0)
    x_values = rng.standard_normal(4)
    A = rng.standard_normal((4, 4))
    v = rng.standard_normal(4)
    x = float64_leaf(x_values)
    a = db.tensor(A, dtype="float64")

    f = (x ** 3).sum() + x @ (a @ x) + db.logsumexp(x)
    (g,) = db.grad(f, [x], create_graph=True)
    (hv,) = db.grad(g @ db.tensor(v, dtype="float64"), [x])

    p = np.exp(x_values) / np.exp(x_values).sum()
    hessian = np.diag(6 * x_values) + A + A.T + np.diag(p) - np.outer(p, p)
    np.testing.assert_allclose(g.numpy(), 3 * x_values**2 + (A + A.T) @ x_values + p, rtol=1e-12)
    np.testing.assert_allclose(hv.numpy(), hessian @ v, rtol=1e-10)


def test_backward_with_create_graph_gives_a_differentiable_grad():
    x = float64_leaf([0.5, 1.0])
    x.exp().sum().backward(create_graph=True)
    first = x.grad
    assert first.requires_grad
    x.grad = None
    first.sum().backward()  # d/dx of e^x is e^x again
    np.testing.assert_allclose(x.grad.numpy(), np.exp([0.5, 1.0]), rtol=1e-12)


def test_third_derivative():
    x = float64_leaf(0.7)
    y = x ** 4
    (d1,) = db.grad(y, [x], create_graph=True)
    (d2,) = db.grad(d1, [x], create_graph=True)
    (d3,) = db.grad(d2, [x])
    assert d1.item() == pytest.approx(4 * 0.7**3)
    assert d2.item() == pytest.approx(12 * 0.7**2)
    assert d3.item() == pytest.approx(24 * 0.7)


class DoubleWithKernel(Function):
    """2x, with a backward that (like a fused kernel) works on raw arrays."""

    once_differentiable = True

    @staticmethod
    def forward(ctx, a):
        return 2 * a

    @staticmethod
    def backward(ctx, grad):
        return 2 * grad.data


def test_a_once_differentiable_op_works_for_first_derivatives():
    x = float64_leaf([1.0, 2.0])
    DoubleWithKernel.apply(x).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 2.0])
    assert x.grad.dtype == np.float64


def test_a_once_differentiable_op_refuses_create_graph():
    x = float64_leaf([1.0, 2.0])
    y = DoubleWithKernel.apply(x).sum()
    with pytest.raises(RuntimeError, match="DoubleWithKernel is only once differentiable"):
        y.backward(create_graph=True)


# ----------------------------------------------------------------------------
# Hooks and retain_grad
# ----------------------------------------------------------------------------
def test_a_hook_sees_the_gradient_of_an_intermediate():
    x = float64_leaf([1.0, 2.0])
    y = x * 3
    seen = []
    y.register_hook(lambda grad: seen.append(grad.numpy().copy()))
    (y * y).sum().backward()
    assert len(seen) == 1
    np.testing.assert_allclose(seen[0], [6.0, 12.0])  # d/dy y^2 = 2y


def test_a_hook_can_replace_the_gradient():
    x = float64_leaf([1.0, 2.0])
    y = x * 3
    y.register_hook(lambda grad: grad * 0 + 1)
    (y * y).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [3.0, 3.0])


def test_a_hook_on_a_leaf_sees_the_total_gradient_once():
    x = float64_leaf([1.0, 2.0])
    seen = []
    x.register_hook(lambda grad: seen.append(grad.numpy().copy()))
    (x * 2 + x * 5).sum().backward()
    assert len(seen) == 1
    np.testing.assert_allclose(seen[0], [7.0, 7.0])


def test_a_hook_may_return_an_array_of_the_gradient_dtype():
    x = float64_leaf([1.0, 2.0])
    x.register_hook(lambda grad: np.full(grad.shape, 0.1))
    (x * 2).sum().backward()
    assert x.grad.dtype == np.float64
    np.testing.assert_array_equal(x.grad.numpy(), [0.1, 0.1])


def test_a_removed_hook_is_not_called():
    x = float64_leaf([1.0])
    calls = []
    handle = x.register_hook(lambda grad: calls.append(1) or grad * 10)
    (x * 2).sum().backward()
    handle.remove()
    x.grad = None
    (x * 2).sum().backward()
    assert calls == [1]
    np.testing.assert_allclose(x.grad.numpy(), [2.0])


def test_a_hook_on_a_tensor_without_grad_is_an_error():
    with pytest.raises(RuntimeError, match="does not require grad"):
        db.tensor([1.0]).register_hook(lambda grad: grad)


def test_retain_grad_keeps_an_intermediate_gradient():
    x = float64_leaf([1.0, 2.0])
    y = x * 3
    y.retain_grad()
    (y * y).sum().backward()
    np.testing.assert_allclose(y.grad.numpy(), [6.0, 12.0])
    np.testing.assert_allclose(x.grad.numpy(), [18.0, 36.0])


# ----------------------------------------------------------------------------
# deepbreadth.grad
# ----------------------------------------------------------------------------
def test_grad_returns_gradients_and_leaves_dot_grad_alone():
    x = float64_leaf([1.0, 2.0])
    w = float64_leaf([3.0, -1.0])
    gx, gw = db.grad((x * w).sum(), [x, w])
    np.testing.assert_allclose(gx.numpy(), [3.0, -1.0])
    np.testing.assert_allclose(gw.numpy(), [1.0, 2.0])
    assert x.grad is None and w.grad is None


def test_grad_of_a_single_input_returns_a_single_tensor():
    x = float64_leaf(2.0)
    g = db.grad(x * x, x)
    assert isinstance(g, db.Tensor) and g.item() == pytest.approx(4.0)


def test_grad_of_an_unused_input_is_none():
    x = float64_leaf([1.0])
    unused = float64_leaf([1.0])
    assert db.grad((x * 2).sum(), [x, unused])[1] is None


def test_grad_with_respect_to_an_intermediate():
    x = float64_leaf([1.0, 2.0])
    y = x * 3
    (gy,) = db.grad((y * y).sum(), [y])
    np.testing.assert_allclose(gy.numpy(), [6.0, 12.0])


def test_grad_runs_no_hook_and_fills_no_grad_of_tensors_not_asked_for():
    x = float64_leaf([1.0])
    w = float64_leaf([2.0])
    y = x * w
    y.retain_grad()
    calls = []
    w.register_hook(lambda grad: calls.append(grad))
    db.grad((y * 3).sum(), [x])
    assert calls == [] and w.grad is None and y.grad is None


def test_grad_with_grad_outputs():
    x = float64_leaf([1.0, 2.0])
    (g,) = db.grad(x * x, [x], grad_outputs=db.tensor([1.0, -1.0], dtype="float64"))
    np.testing.assert_allclose(g.numpy(), [2.0, -4.0])


# ----------------------------------------------------------------------------
# Custom Functions
# ----------------------------------------------------------------------------
class SumAndProduct(Function):
    """Two outputs from two inputs: (a + b, a * b)."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a + b, a * b

    @staticmethod
    def backward(ctx, grad_sum, grad_product):
        a, b = ctx.saved_tensors
        return grad_sum + grad_product * b, grad_sum + grad_product * a


def test_a_multi_output_function_with_one_output_unused():
    a = float64_leaf([2.0])
    b = float64_leaf([5.0])
    total, product = SumAndProduct.apply(a, b)
    product.sum().backward()  # `total` takes no part: its gradient is zero
    assert a.grad.item() == 5.0 and b.grad.item() == 2.0


def test_a_multi_output_function_with_both_outputs_used():
    a = float64_leaf([2.0])
    b = float64_leaf([5.0])
    total, product = SumAndProduct.apply(a, b)
    (total * 10 + product).sum().backward()
    assert a.grad.item() == 15.0 and b.grad.item() == 12.0


def test_a_custom_backward_may_return_float64_arrays():
    class Triple(Function):
        @staticmethod
        def forward(ctx, a):
            return 3 * a

        @staticmethod
        def backward(ctx, grad):
            return np.full(grad.shape, 0.1) * 3  # a raw array, not a Tensor

    x = float64_leaf([1.0, 2.0])
    Triple.apply(x).sum().backward()
    assert x.grad.dtype == np.float64 and x.grad.device == x.device
    np.testing.assert_array_equal(x.grad.numpy(), [0.1 * 3, 0.1 * 3])


def test_a_backward_that_returns_too_few_gradients_is_named():
    class Broken(Function):
        @staticmethod
        def forward(ctx, a, b):
            return a + b

        @staticmethod
        def backward(ctx, grad):
            return grad

    with pytest.raises(RuntimeError, match="Broken.backward returned 1 gradients for 2 inputs"):
        Broken.apply(float64_leaf([1.0]), float64_leaf([1.0])).sum().backward()


# ----------------------------------------------------------------------------
# Errors a user meets
# ----------------------------------------------------------------------------
def assert_no_numpy_traceback(error):
    """The error is raised fresh: no NumPy exception chained behind it."""
    assert error.__cause__ is None
    assert error.__context__ is None or error.__suppress_context__


def test_matmul_shape_mismatch_names_the_op_and_both_shapes():
    with pytest.raises(db.ShapeError, match=r"matmul.*\(2, 3\).*\(4, 5\)") as info:
        db.ones(2, 3) @ db.ones(4, 5)
    assert_no_numpy_traceback(info.value)


def test_batched_matmul_batch_mismatch_names_both_shapes():
    with pytest.raises(db.ShapeError, match=r"\(2, 3, 4\).*\(5, 4, 2\)") as info:
        db.ones(2, 3, 4) @ db.ones(5, 4, 2)
    assert_no_numpy_traceback(info.value)


@pytest.mark.parametrize("op, name", [
    (lambda a, b: a + b, "Add"), (lambda a, b: a - b, "Sub"), (lambda a, b: a * b, "Mul"),
    (lambda a, b: a / b, "Div"), (lambda a, b: a ** b, "Pow"),
    (lambda a, b: db.maximum(a, b), "Maximum"),
])
def test_broadcast_mismatch_names_the_op_and_both_shapes(op, name):
    a = db.ones(2, 3, requires_grad=True)
    with pytest.raises(db.ShapeError, match=rf"{name}.*\(2, 3\).*\(4,\)") as info:
        op(a, db.ones(4))
    assert_no_numpy_traceback(info.value)


def test_concatenate_mismatch_names_the_shapes():
    with pytest.raises(db.ShapeError, match=r"concatenate.*\(2, 3\).*\(2, 4\)"):
        db.concatenate([db.ones(2, 3), db.ones(2, 4)], axis=0)


def test_reshape_mismatch_names_the_shapes():
    with pytest.raises(db.ShapeError, match=r"reshape.*\(2, 3\).*\(4, 2\)"):
        db.ones(2, 3).reshape(4, 2)


def test_stack_of_different_shapes_is_a_shape_error():
    with pytest.raises(db.ShapeError, match="stack"):
        db.stack([db.ones(2), db.ones(3)])


@pytest.mark.parametrize("mistake, message", [
    (lambda: db.ones(2, 3).sum(axis=2), "axis 2 is out of range"),
    (lambda: db.ones(2, 3).transpose(0, 3), "transpose: axis 3 is out of range"),
    (lambda: db.ones(2).expand_dims(3), "expand_dims: axis 3 is out of range"),
    (lambda: db.squeeze(db.tensor(1.0), 0), "squeeze: axis 0 is out of range"),
    (lambda: db.ones(2, 3).squeeze(0), "squeeze: axis 0 of shape"),
    (lambda: db.split(db.ones(5), 2), "does not divide"),
    (lambda: db.ones(0, 2).max(axis=0), "empty axis"),
    (lambda: db.clip(db.ones(2)), "give low, high or both"),
])
def test_axis_and_argument_mistakes_get_a_clear_value_error(mistake, message):
    with pytest.raises(ValueError, match=message):
        mistake()


def test_where_accepts_a_plain_list_as_condition():
    x = float64_leaf([1.0, 2.0])
    db.where([True, False], x, 0.0).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [1.0, 0.0])


class FakeGpuArray(np.ndarray):
    """A NumPy array that the backend takes for a CuPy array (its module says cupy)."""


FakeGpuArray.__module__ = "cupy._fake_for_tests"


def test_tensors_on_different_devices_raise_backend_error():
    on_gpu = db.Tensor._wrap(np.ones(3).view(FakeGpuArray))
    assert on_gpu.device == "cuda"
    with pytest.raises(db.BackendError, match=r"different devices \(cpu, cuda\)"):
        db.Tensor(np.ones(3)) + on_gpu
