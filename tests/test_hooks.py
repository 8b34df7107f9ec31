"""Tensor hooks and layer hooks: see and change gradients and outputs; remove them."""
import numpy as np
import pytest

import deepbreadth as db
from deepbreadth.layers import Dense
from deepbreadth.optimizers import SGD

X = np.random.default_rng(1).normal(size=(5, 3)).astype("float32")


def twin_dense_layers():
    """Two Dense layers with the same weights."""
    db.set_seed(3)
    first, second = Dense(4), Dense(4)
    first(X), second(X)
    second.set_weights(first.get_weights())
    return first, second


def sgd_update_of_kernel(layer):
    """How much one SGD step on mean(layer(X)**2) moves the kernel."""
    before = layer.kernel.numpy().copy()
    (layer(X) ** 2).mean().backward()
    SGD(learning_rate=0.1).step(layer.trainable_weights)
    return layer.kernel.numpy() - before


def test_a_hook_that_doubles_the_gradient_doubles_the_sgd_update():
    plain, hooked = twin_dense_layers()
    hooked.kernel.register_hook(lambda grad: grad * 2)
    plain_update = sgd_update_of_kernel(plain)
    hooked_update = sgd_update_of_kernel(hooked)
    assert np.abs(plain_update).max() > 0
    np.testing.assert_allclose(hooked_update, 2 * plain_update, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(hooked.kernel.grad.numpy(), 2 * plain.kernel.grad.numpy(), rtol=1e-5)


def test_a_hook_sees_the_gradient_without_changing_it_when_it_returns_none():
    x = db.tensor([1.0, 2.0, 3.0], requires_grad=True)
    seen = []
    x.register_hook(lambda grad: seen.append(grad.numpy().copy()))
    (x * x).sum().backward()
    np.testing.assert_allclose(seen[0], [2.0, 4.0, 6.0])
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 4.0, 6.0])


def test_removing_a_hook_stops_it():
    x = db.tensor([1.0, 2.0], requires_grad=True)
    handle = x.register_hook(lambda grad: grad * 10)
    (x * 1.0).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [10.0, 10.0])
    handle.remove()
    x.grad = None
    (x * 1.0).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [1.0, 1.0])
    handle.remove()  # removing twice is harmless


def test_a_hook_handle_as_a_context_manager():
    x = db.tensor([1.0, 2.0], requires_grad=True)
    with x.register_hook(lambda grad: grad * 3):
        (x * 1.0).sum().backward()
        np.testing.assert_allclose(x.grad.numpy(), [3.0, 3.0])
    x.grad = None
    (x * 1.0).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [1.0, 1.0])


def test_a_hook_on_an_intermediate_tensor_changes_what_flows_further_back():
    x = db.tensor([1.0, 2.0], requires_grad=True)
    middle = x * 3.0
    middle.register_hook(lambda grad: grad * 0.0)
    (middle * middle).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [0.0, 0.0])


def test_retain_grad_keeps_an_intermediate_gradient():
    x = db.tensor([1.0, 2.0], requires_grad=True)
    middle = x * 3.0
    middle.retain_grad()
    (middle * middle).sum().backward()
    np.testing.assert_allclose(middle.grad.numpy(), [6.0, 12.0])


def test_layer_forward_hook_sees_inputs_and_outputs_and_can_replace_them():
    layer, _ = twin_dense_layers()
    calls = []

    def record(hooked_layer, inputs, outputs):
        calls.append((hooked_layer, inputs.shape, outputs.numpy().copy()))

    handle = layer.register_forward_hook(record)
    out = layer(X)
    assert calls[0][0] is layer and calls[0][1] == X.shape
    np.testing.assert_allclose(calls[0][2], out.numpy())

    with layer.register_forward_hook(lambda hooked, inputs, outputs: outputs * 0.0):
        np.testing.assert_allclose(layer(X).numpy(), 0.0)
    assert np.abs(layer(X).numpy()).max() > 0  # the replacing hook is gone
    handle.remove()
    layer(X)
    assert len(calls) == 3  # the recording hook saw three calls, not the fourth


def test_layer_backward_hook_sees_the_output_gradient_and_can_scale_it():
    plain, hooked = twin_dense_layers()
    seen = []

    def double(layer, grad_output):
        seen.append((layer, grad_output.numpy().copy()))
        return grad_output * 2

    handle = hooked.register_backward_hook(double)
    sgd_update_of_kernel(plain)
    out = hooked(X)
    (out ** 2).mean().backward()
    assert seen[0][0] is hooked
    # d mean(out^2) / d out = 2 out / size
    np.testing.assert_allclose(seen[0][1], 2 * out.numpy() / out.size, rtol=1e-5)
    np.testing.assert_allclose(hooked.kernel.grad.numpy(), 2 * plain.kernel.grad.numpy(), rtol=1e-5)

    handle.remove()
    hooked.kernel.grad = None
    (hooked(X) ** 2).mean().backward()
    np.testing.assert_allclose(hooked.kernel.grad.numpy(), plain.kernel.grad.numpy(), rtol=1e-5)
    assert len(seen) == 1


def test_register_hook_needs_a_tensor_that_requires_grad():
    with pytest.raises(RuntimeError, match="does not require grad"):
        db.tensor([1.0]).register_hook(lambda grad: grad)
