"""Check analytic gradients against finite differences, in float64.

The idea: for a small step eps, (f(x + eps) - f(x - eps)) / (2 eps) approaches
df/dx with an error of order eps**2. If backward() was written correctly the
two agree to many digits in float64; if it was not, they differ in a way a
test can catch.

Two ways of comparing:
- 'full': the whole Jacobian, one element at a time (few inputs/outputs);
- 'random': directional derivatives along random directions against the
  analytic gradient dotted with the same direction (large inputs), for a
  random weighting of the outputs.
"""
import numpy as np

from .autograd import Tensor, enable_grad, grad, no_grad


class GradcheckError(AssertionError):
    """An analytic gradient that disagrees with the finite-difference estimate."""


def _prepare_inputs(inputs):
    """float64 copies of the floating inputs, each requiring grad; others as they are."""
    prepared = []
    for value in inputs:
        if isinstance(value, Tensor):
            array = value.numpy()
        elif isinstance(value, (np.ndarray, np.generic, float, int, list)):
            array = np.asarray(value)
        else:
            prepared.append(value)  # options such as None or strings pass through
            continue
        if array.dtype.kind == "f":
            prepared.append(Tensor(array, dtype=np.float64, requires_grad=True))
        else:
            prepared.append(Tensor(array))
    return prepared


def _outputs_as_tuple(outputs):
    return outputs if isinstance(outputs, (tuple, list)) else (outputs,)


def _weighted_sum(outputs, weights):
    total = None
    for output, weight in zip(outputs, weights):
        term = (output * Tensor(weight, dtype=np.float64)).sum()
        total = term if total is None else total + term
    return total


def _evaluate(fn, inputs, weights):
    """The scalar sum_k <output_k, weight_k> as a float, without recording a graph."""
    with no_grad():
        outputs = _outputs_as_tuple(fn(*inputs))
    return float(sum(np.vdot(o.numpy().astype(np.float64), w) for o, w in zip(outputs, weights)))


def _analytic_gradients(fn, inputs, weights):
    """Gradient of the weighted output sum with respect to every differentiable input."""
    differentiable = [t for t in inputs if isinstance(t, Tensor) and t.requires_grad]
    with enable_grad():
        outputs = _outputs_as_tuple(fn(*inputs))
        scalar = _weighted_sum(outputs, weights)
        if not scalar.requires_grad:
            return [np.zeros(t.shape) for t in differentiable]
        grads = grad(scalar, differentiable)
    return [np.zeros(t.shape) if g is None else g.numpy().astype(np.float64) for g in grads]


def _numeric_derivative(fn, inputs, weights, tensor, direction, eps):
    """Central difference of the weighted output sum along `direction` in `tensor`."""
    original = tensor.data.copy()
    tensor.data = original + eps * direction
    plus = _evaluate(fn, inputs, weights)
    tensor.data = original - eps * direction
    minus = _evaluate(fn, inputs, weights)
    tensor.data = original
    return (plus - minus) / (2 * eps)


def _describe(index, name):
    return f"input {index}" + (f" ({name})" if name else "")


def gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, mode="auto",
              num_directions=10, max_full_elements=400, seed=0):
    """Check the gradients of `fn(*inputs)` with respect to every floating input.

    `inputs` are Tensors or arrays; floating ones are copied to float64 and
    made to require grad. `fn` returns a Tensor or a tuple of Tensors.

    An element passes when |analytic - numeric| <= atol + rtol * |numeric|.
    Returns True, or raises GradcheckError naming the input, the worst
    element's index, and both values.

    mode: 'full' checks every element of the gradient of a random weighting of
    the outputs (repeated for 2 weightings); 'random' compares directional
    derivatives along `num_directions` random directions; 'auto' picks 'full'
    when the inputs have at most `max_full_elements` elements in total.
    """
    rng = np.random.default_rng(seed)
    inputs = _prepare_inputs(inputs)
    differentiable = [(i, t) for i, t in enumerate(inputs) if isinstance(t, Tensor) and t.requires_grad]
    if not differentiable:
        raise ValueError("gradcheck: none of the inputs is a floating tensor or array")
    total_elements = sum(t.size for _, t in differentiable)
    if mode == "auto":
        mode = "full" if total_elements <= max_full_elements else "random"
    outputs = _outputs_as_tuple(fn(*inputs))
    # Two independent random weightings of the outputs in full mode: together
    # they catch errors a single weighting could cancel by chance.
    weightings = 2 if mode == "full" else 1
    for _ in range(weightings):
        weights = [rng.standard_normal(o.shape) for o in outputs]
        analytic = _analytic_gradients(fn, inputs, weights)
        for (index, tensor), analytic_grad in zip(differentiable, analytic):
            if mode == "full":
                _check_every_element(fn, inputs, weights, index, tensor, analytic_grad, eps, atol, rtol)
            else:
                _check_directions(fn, inputs, weights, index, tensor, analytic_grad, eps, atol,
                                  rtol, num_directions, rng)
    return True


def _check_every_element(fn, inputs, weights, index, tensor, analytic_grad, eps, atol, rtol):
    numeric = np.zeros(tensor.shape)
    for position in np.ndindex(*tensor.shape):
        direction = np.zeros(tensor.shape)
        direction[position] = 1.0
        numeric[position] = _numeric_derivative(fn, inputs, weights, tensor, direction, eps)
    error = np.abs(analytic_grad - numeric) - (atol + rtol * np.abs(numeric))
    if error.size and np.max(error) > 0:
        worst = np.unravel_index(np.argmax(error), error.shape)
        raise GradcheckError(
            f"gradient of {_describe(index, tensor.name)} is wrong at index {tuple(int(i) for i in worst)}: "
            f"analytic {analytic_grad[worst]:.10g}, numeric {numeric[worst]:.10g} "
            f"(atol={atol}, rtol={rtol})"
        )


def _check_directions(fn, inputs, weights, index, tensor, analytic_grad, eps, atol, rtol,
                      num_directions, rng):
    for k in range(num_directions):
        direction = rng.standard_normal(tensor.shape)
        numeric = _numeric_derivative(fn, inputs, weights, tensor, direction, eps)
        expected = float(np.vdot(analytic_grad, direction))
        if abs(expected - numeric) > atol + rtol * abs(numeric):
            raise GradcheckError(
                f"gradient of {_describe(index, tensor.name)} is wrong along random direction {k}: "
                f"analytic {expected:.10g}, numeric {numeric:.10g} (atol={atol}, rtol={rtol})"
            )


def gradgradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, mode="auto", seed=0, **options):
    """Check second derivatives: gradcheck of the (create_graph) gradient of fn.

    The gradient of sum(fn(x) * v) with respect to x, for a fixed random v,
    is itself a function of x; its gradient must match finite differences too.
    """
    rng = np.random.default_rng(seed + 1)
    inputs = _prepare_inputs(inputs)
    outputs = _outputs_as_tuple(fn(*inputs))
    weights = [rng.standard_normal(o.shape) for o in outputs]
    positions = [i for i, t in enumerate(inputs) if isinstance(t, Tensor) and t.requires_grad]

    def first_gradients(*values):
        with enable_grad():
            scalar = _weighted_sum(_outputs_as_tuple(fn(*values)), weights)
            wanted = [values[i] for i in positions]
            grads = grad(scalar, wanted, create_graph=True)
        # An input that does not affect the output has a zero gradient.
        return tuple(g if g is not None else Tensor(np.zeros(values[i].shape), dtype=np.float64)
                     for g, i in zip(grads, positions))

    return gradcheck(first_gradients, inputs, eps=eps, atol=atol, rtol=rtol, mode=mode,
                     seed=seed, **options)


__all__ = ["gradcheck", "gradgradcheck", "GradcheckError"]
