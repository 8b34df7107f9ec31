"""Check analytic gradients against finite differences, in float64.

The idea: for a small step eps, (f(x + eps) - f(x - eps)) / (2 eps) approaches
df/dx with an error of order eps**2. If backward() was written correctly the
two agree to many digits in float64; if it was not, they differ in a way a
test can catch.

Two ways of comparing:
- 'full': the whole Jacobian, d output element / d input element for every
  pair. Each column comes from moving one input element both ways, each row
  from one backward pass seeded with one output element (small tensors).
- 'random': directional derivatives along random directions, for a random
  weighting of the outputs, against the analytic gradient dotted with the
  same direction (large tensors, where the full Jacobian costs too much).

On the GPU: when an input is a CuPy array or tensor, or the backend is 'cupy',
the float64 copies that are differentiated and perturbed live on the GPU
(`_prepare_inputs`). Directions, one-hot seeds and weightings are made on the
host and moved there by `_on_device_of`; outputs and gradients come back with
`.numpy()`, and every comparison is made on the host.
"""
import numpy as np

from . import backend
from .autograd import Tensor, enable_grad, grad, no_grad


class GradcheckError(AssertionError):
    """An analytic gradient that disagrees with the finite-difference estimate."""


def _device_for(inputs):
    """'cuda' if an input is on the GPU, else the current backend's device."""
    for value in inputs:
        if backend.is_gpu_array(value.data if isinstance(value, Tensor) else value):
            return "cuda"
    return backend.default_device()


def _prepare_inputs(inputs):
    """float64 copies of the floating inputs, each requiring grad; others as they are.

    Array inputs (Tensors, NumPy or CuPy arrays, numbers, lists) are copied to
    one device, the GPU if any input is there or the backend is 'cupy'.
    """
    device = _device_for(inputs)
    prepared = []
    for value in inputs:
        if isinstance(value, Tensor):
            array, name = value.numpy(), value.name
        elif backend.is_gpu_array(value):
            array, name = backend.to_device(value, "cpu"), None
        elif isinstance(value, (np.ndarray, np.generic, float, int, list)):
            array, name = np.asarray(value), None
        else:
            prepared.append(value)  # options such as None or strings pass through
            continue
        floating = array.dtype.kind == "f"
        prepared.append(Tensor(backend.to_device(array, device), requires_grad=floating,
                               dtype=np.float64 if floating else None, name=name))
    return prepared


def _on_device_of(tensor, array):
    """A host (NumPy) array as a float64 Tensor on `tensor`'s device: how the values
    gradcheck makes itself (directions, one-hot seeds, weightings) reach the device."""
    return Tensor._wrap(backend.to_device(np.asarray(array, dtype=np.float64), tensor.device))


def _outputs_as_tuple(outputs):
    return tuple(outputs) if isinstance(outputs, (tuple, list)) else (outputs,)


def _floating_outputs(fn, inputs):
    """fn's floating outputs (integer ones, like argmax, have no gradient to check)."""
    return [o for o in _outputs_as_tuple(fn(*inputs)) if o.dtype.kind == "f"]


def _flat_outputs(fn, inputs):
    """Every floating output element, flattened into one float64 vector."""
    with no_grad():
        outputs = _floating_outputs(fn, inputs)
    if not outputs:
        return np.zeros(0)
    return np.concatenate([o.numpy().astype(np.float64).ravel() for o in outputs])


def _moved(fn, inputs, tensor, direction, eps):
    """(f(x + eps d) - f(x - eps d)) / (2 eps) for every output element.

    `direction` is a host array; the outputs come back to the host.
    """
    original = tensor.data
    direction = _on_device_of(tensor, direction).data
    try:
        tensor.data = original + eps * direction
        plus = _flat_outputs(fn, inputs)
        tensor.data = original - eps * direction
        minus = _flat_outputs(fn, inputs)
    finally:
        tensor.data = original
    return (plus - minus) / (2 * eps)


def _excess(analytic, numeric, atol, rtol):
    """How far each analytic value lies outside its tolerance (> 0: wrong).

    NaN compares false with everything, so it is decided here explicitly: a
    NaN on one side only is wrong, a NaN on both sides agrees.
    """
    analytic, numeric = np.asarray(analytic, dtype=float), np.asarray(numeric, dtype=float)
    with np.errstate(invalid="ignore"):
        excess = np.abs(analytic - numeric) - (atol + rtol * np.abs(numeric))
    one_sided_nan = np.isnan(analytic) != np.isnan(numeric)
    return np.where(np.isnan(excess), np.where(one_sided_nan, np.inf, -np.inf), excess)


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

    mode: 'full' compares the whole Jacobian; 'random' compares directional
    derivatives along `num_directions` random directions; 'auto' picks 'full'
    when the inputs and the outputs each have at most `max_full_elements`
    elements in total.
    """
    rng = np.random.default_rng(seed)
    inputs = _prepare_inputs(inputs)
    differentiable = [(i, t) for i, t in enumerate(inputs) if isinstance(t, Tensor) and t.requires_grad]
    if not differentiable:
        raise ValueError("gradcheck: none of the inputs is a floating tensor or array")
    with no_grad():
        output_shapes = [o.shape for o in _floating_outputs(fn, inputs)]
    if mode == "auto":
        input_elements = sum(t.size for _, t in differentiable)
        output_elements = sum(int(np.prod(shape)) for shape in output_shapes)
        small = input_elements <= max_full_elements and output_elements <= max_full_elements
        mode = "full" if small else "random"
    if mode == "full":
        _check_jacobians(fn, inputs, differentiable, eps, atol, rtol)
    elif mode == "random":
        weights = [rng.standard_normal(shape) for shape in output_shapes]
        _check_directions(fn, inputs, differentiable, weights, eps, atol, rtol, num_directions, rng)
    else:
        raise ValueError(f"gradcheck: mode must be 'auto', 'full' or 'random', got {mode!r}")
    return True


# ----------------------------------------------------------------------------
# Full mode: the whole Jacobian
# ----------------------------------------------------------------------------
def _analytic_jacobians(fn, inputs, differentiable):
    """One (output elements, input elements) matrix per differentiable input.

    Row r is the gradient of output element r: one backward pass seeded with
    a one-hot gradient, through a graph kept alive for all of them.
    """
    tensors = [t for _, t in differentiable]
    with enable_grad():
        outputs = _floating_outputs(fn, inputs)
    total = sum(o.size for o in outputs)
    jacobians = [np.zeros((total, t.size)) for t in tensors]
    row = 0
    for output in outputs:
        for position in np.ndindex(*output.shape):
            if output.requires_grad:
                one_hot = np.zeros(output.shape)
                one_hot[position] = 1
                seed = _on_device_of(output, one_hot).astype(output.dtype)
                grads = grad(output, tensors, grad_outputs=seed, retain_graph=True)
                for jacobian, g in zip(jacobians, grads):
                    if g is not None:
                        jacobian[row] = g.numpy().astype(np.float64).ravel()
            row += 1
    return jacobians


def _numeric_jacobian(fn, inputs, tensor, eps):
    """Column c: how every output element moves when input element c moves."""
    columns = []
    for position in np.ndindex(*tensor.shape):
        direction = np.zeros(tensor.shape)
        direction[position] = 1.0
        columns.append(_moved(fn, inputs, tensor, direction, eps))
    output_elements = _flat_outputs(fn, inputs).size
    if not columns:
        return np.zeros((output_elements, 0))
    return np.stack(columns, axis=1)


def _check_jacobians(fn, inputs, differentiable, eps, atol, rtol):
    analytic = _analytic_jacobians(fn, inputs, differentiable)
    for (index, tensor), analytic_jacobian in zip(differentiable, analytic):
        numeric_jacobian = _numeric_jacobian(fn, inputs, tensor, eps)
        excess = _excess(analytic_jacobian, numeric_jacobian, atol, rtol)
        if excess.size and np.max(excess) > 0:
            row, column = np.unravel_index(np.argmax(excess), excess.shape)
            element = np.unravel_index(column, tensor.shape)
            raise GradcheckError(
                f"gradient of {_describe(index, tensor.name)} is wrong at index "
                f"{tuple(int(i) for i in element)} (for output element {int(row)} of the "
                f"flattened outputs): analytic {analytic_jacobian[row, column]:.10g}, "
                f"numeric {numeric_jacobian[row, column]:.10g} (atol={atol}, rtol={rtol})"
            )


# ----------------------------------------------------------------------------
# Random mode: directional derivatives
# ----------------------------------------------------------------------------
def _weighted_sum(outputs, weights):
    total = None
    for output, weight in zip(outputs, weights):
        term = (output * _on_device_of(output, weight)).sum()
        total = term if total is None else total + term
    return total


def _weighted_gradients(fn, inputs, tensors, weights):
    """Gradient of sum_k <output_k, weight_k> with respect to each of `tensors`."""
    with enable_grad():
        scalar = _weighted_sum(_floating_outputs(fn, inputs), weights)
        if scalar is None or not scalar.requires_grad:
            return [np.zeros(t.shape) for t in tensors]
        grads = grad(scalar, tensors)
    return [np.zeros(t.shape) if g is None else g.numpy().astype(np.float64)
            for g, t in zip(grads, tensors)]


def _weighted_numeric(fn, inputs, tensor, direction, weights, eps):
    flat_weights = np.concatenate([w.ravel() for w in weights]) if weights else np.zeros(0)
    return float(np.dot(_moved(fn, inputs, tensor, direction, eps), flat_weights))


# Past this many elements a failing input is not searched element by element
# for the index to blame (that costs two evaluations of fn per element).
MAX_ELEMENTS_TO_LOCATE = 20000


def _check_directions(fn, inputs, differentiable, weights, eps, atol, rtol, num_directions, rng):
    analytic = _weighted_gradients(fn, inputs, [t for _, t in differentiable], weights)
    for (index, tensor), analytic_grad in zip(differentiable, analytic):
        for k in range(num_directions):
            direction = rng.standard_normal(tensor.shape)
            numeric = _weighted_numeric(fn, inputs, tensor, direction, weights, eps)
            expected = float(np.vdot(analytic_grad, direction))
            if _excess(expected, numeric, atol, rtol) > 0:
                if tensor.size <= MAX_ELEMENTS_TO_LOCATE:
                    _locate_wrong_element(fn, inputs, index, tensor, analytic_grad, weights,
                                          eps, atol, rtol)
                raise GradcheckError(
                    f"gradient of {_describe(index, tensor.name)} is wrong along random "
                    f"direction {k}: analytic {expected:.10g}, numeric {numeric:.10g} "
                    f"(atol={atol}, rtol={rtol})"
                )


def _locate_wrong_element(fn, inputs, index, tensor, analytic_grad, weights, eps, atol, rtol):
    """A direction mixes every element; to name the wrong one, try them one at a time."""
    numeric = np.zeros(tensor.shape)
    for position in np.ndindex(*tensor.shape):
        direction = np.zeros(tensor.shape)
        direction[position] = 1.0
        numeric[position] = _weighted_numeric(fn, inputs, tensor, direction, weights, eps)
    excess = _excess(analytic_grad, numeric, atol, rtol)
    if excess.size and np.max(excess) > 0:
        worst = np.unravel_index(np.argmax(excess), excess.shape)
        raise GradcheckError(
            f"gradient of {_describe(index, tensor.name)} is wrong at index "
            f"{tuple(int(i) for i in worst)} (random weighting of the outputs): "
            f"analytic {analytic_grad[worst]:.10g}, numeric {numeric[worst]:.10g} "
            f"(atol={atol}, rtol={rtol})"
        )


def gradgradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, mode="auto", seed=0, **options):
    """Check second derivatives: gradcheck of the (create_graph) gradient of fn.

    The gradient of sum(fn(x) * v) with respect to x, for a fixed random v,
    is itself a function of x; its gradient must match finite differences too.
    """
    rng = np.random.default_rng(seed + 1)
    inputs = _prepare_inputs(inputs)
    with no_grad():
        weights = [rng.standard_normal(o.shape) for o in _floating_outputs(fn, inputs)]
    positions = [i for i, t in enumerate(inputs) if isinstance(t, Tensor) and t.requires_grad]

    def first_gradients(*values):
        wanted = [values[i] for i in positions]
        with enable_grad():
            scalar = _weighted_sum(_floating_outputs(fn, values), weights)
            if scalar is None or not scalar.requires_grad:
                grads = [None] * len(wanted)  # fn ignores its inputs: gradients are zero
            else:
                grads = grad(scalar, wanted, create_graph=True)
        # An input that does not affect the output has a zero gradient.
        return tuple(g if g is not None else _on_device_of(t, np.zeros(t.shape))
                     for g, t in zip(grads, wanted))

    return gradcheck(first_gradients, inputs, eps=eps, atol=atol, rtol=rtol, mode=mode,
                     seed=seed, **options)


__all__ = ["gradcheck", "gradgradcheck", "GradcheckError"]
