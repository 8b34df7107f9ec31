"""Every differentiable op, on shapes drawn by hypothesis, against two oracles:

- NumPy computes the same forward values;
- finite differences in float64 agree with its gradient (gradcheck) and with
  the gradient of its gradient (gradgradcheck, through create_graph).

Each op is one `Case`: how to draw its input shapes and options, which values
its inputs need (positive for log, away from 0 for relu...), our function and
NumPy's. A last test builds random expressions out of many ops at once.
"""
import math
import warnings
from dataclasses import dataclass, field

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import deepbreadth as db
import deepbreadth.functional as F

MAX_SIDE = 3
MAX_DIMS = 3


# ----------------------------------------------------------------------------
# Input values: each kind keeps the op away from the points where it is not
# differentiable, and where finite differences would straddle a kink.
# ----------------------------------------------------------------------------
def away_from(values, points, margin):
    """Push values that lie within `margin` of any of `points` out to that distance."""
    for point in points:
        offset = values - point
        too_close = np.abs(offset) < margin
        values = np.where(too_close, point + margin * np.where(offset < 0, -1.0, 1.0), values)
    return values


def lower_band(rng, shape):
    """k + u, u in [0.05, 0.45]: never within 0.1 of an `upper_band` value."""
    return rng.integers(-2, 3, shape) + rng.uniform(0.05, 0.45, shape)


def upper_band(rng, shape):
    return rng.integers(-2, 3, shape) + rng.uniform(0.55, 0.95, shape)


def spaced(rng, shape):
    """Distinct values at least 0.1 apart, in random order: no ties for max/min."""
    size = int(np.prod(shape))
    return (rng.permutation(size) * 0.1 - 0.05 * size).reshape(shape) + rng.uniform(0, 0.01)


VALUES = {
    "any": lambda rng, shape: rng.uniform(-2, 2, shape),
    "positive": lambda rng, shape: rng.uniform(0.5, 2.0, shape),
    "nonzero": lambda rng, shape: away_from(rng.uniform(-2, 2, shape), [0.0], 0.2),
    "clip": lambda rng, shape: away_from(rng.uniform(-2, 2, shape), [-0.5, 0.8], 0.1),
    "lower": lower_band,
    "upper": upper_band,
    "spaced": spaced,
    "mask": lambda rng, shape: rng.uniform(size=shape) < 0.5,
}


def make_inputs(seed, shapes, kinds):
    rng = np.random.default_rng(seed)
    return [np.asarray(VALUES[kind](rng, shape)) for shape, kind in zip(shapes, kinds)]


# ----------------------------------------------------------------------------
# Shapes and options
# ----------------------------------------------------------------------------
def shapes_of(min_dims=0, min_side=0, max_dims=MAX_DIMS):
    return hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=min_side, max_side=MAX_SIDE)


def one_input(min_dims=0, min_side=0):
    """((shape,), {}) for an op of one tensor and no options."""
    return shapes_of(min_dims, min_side).map(lambda shape: ((shape,), {}))


def broadcast_inputs(count=2):
    """Shapes that broadcast together: size-1 axes, missing leading axes, 0-d, empty."""
    shapes = hnp.mutually_broadcastable_shapes(num_shapes=count, min_dims=0, max_dims=MAX_DIMS,
                                               min_side=0, max_side=MAX_SIDE)
    return shapes.map(lambda result: (result.input_shapes, {}))


def axis_options(ndim, allow_tuple=True):
    """None, one axis (negative too) or a tuple of axes."""
    if ndim == 0:
        return st.none()
    choices = [st.none(), st.integers(-ndim, ndim - 1)]
    if allow_tuple:
        choices.append(hnp.valid_tuple_axes(ndim, min_size=1))
    return st.one_of(*choices)


@st.composite
def reduction_inputs(draw, nonempty_reduced_axes=False, ddof=False):
    """A shape, axis/axes and keepdims; optionally every reduced axis non-empty
    (max, min and logsumexp have no value over nothing, as in NumPy)."""
    shape = list(draw(shapes_of()))
    axis = draw(axis_options(len(shape)))
    if nonempty_reduced_axes:
        reduced = range(len(shape)) if axis is None else np.atleast_1d(axis)
        for a in reduced:
            shape[a] = max(shape[a], 1)
    options = {"axis": axis, "keepdims": draw(st.booleans())}
    if ddof:
        options["ddof"] = draw(st.integers(0, 1))
    return (tuple(shape),), options


@st.composite
def softmax_inputs(draw):
    shape = list(draw(shapes_of(min_dims=1)))
    axis = draw(st.integers(-len(shape), len(shape) - 1))
    shape[axis] = max(shape[axis], 1)
    return (tuple(shape),), {"axis": axis}


@st.composite
def matmul_inputs(draw):
    """NumPy's matmul shapes: batched, broadcast batch axes, 1-D on either side."""
    result = draw(hnp.mutually_broadcastable_shapes(signature=np.matmul.signature, max_dims=2,
                                                    min_side=0, max_side=MAX_SIDE))
    return result.input_shapes, {}


@st.composite
def reshape_inputs(draw):
    shape = draw(shapes_of())
    size = int(np.prod(shape))
    target = draw(st.sampled_from([(size,), (1, size), tuple(reversed(shape)), (size, 1, 1)]
                                  + ([(-1,)] if size else [])))
    return (shape,), {"shape": target}


@st.composite
def transpose_inputs(draw):
    shape = draw(shapes_of())
    return (shape,), {"axes": tuple(draw(st.permutations(range(len(shape)))))}


@st.composite
def expand_dims_inputs(draw):
    shape = draw(shapes_of())
    return (shape,), {"axis": draw(st.integers(-len(shape) - 1, len(shape)))}


@st.composite
def squeeze_inputs(draw):
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=MAX_DIMS, min_side=1, max_side=2))
    ones = [i for i, n in enumerate(shape) if n == 1]
    axis = draw(st.one_of(st.none(), st.sampled_from(ones))) if ones else None
    return (shape,), {"axis": axis}


@st.composite
def flatten_inputs(draw):
    shape = draw(shapes_of(min_side=1))
    return (shape,), {"start_axis": draw(st.integers(0, len(shape)))}


@st.composite
def concatenate_inputs(draw):
    base = list(draw(shapes_of(min_dims=1)))
    axis = draw(st.integers(-len(base), len(base) - 1))
    sizes = draw(st.lists(st.integers(0, MAX_SIDE), min_size=1, max_size=3))
    shapes = tuple(tuple(base[:axis % len(base)] + [n] + base[axis % len(base) + 1:]) for n in sizes)
    return shapes, {"axis": axis}


@st.composite
def stack_inputs(draw):
    shape = draw(shapes_of())
    count = draw(st.integers(1, 3))
    return (shape,) * count, {"axis": draw(st.integers(-len(shape) - 1, len(shape)))}


@st.composite
def split_inputs(draw):
    shape = draw(shapes_of(min_dims=1, min_side=1))
    axis = draw(st.integers(-len(shape), len(shape) - 1))
    length = shape[axis]
    sections = [n for n in range(1, length + 1) if length % n == 0]
    points = st.lists(st.integers(0, length), max_size=3).map(sorted)
    return (shape,), {"indices_or_sections": draw(st.one_of(st.sampled_from(sections), points)),
                      "axis": axis}


@st.composite
def pad_inputs(draw):
    shape = draw(shapes_of())
    widths = tuple((draw(st.integers(0, 2)), draw(st.integers(0, 2))) for _ in shape)
    return (shape,), {"pad_width": widths, "constant_value": draw(st.sampled_from([0.0, -1.5]))}


@st.composite
def basic_index_inputs(draw):
    shape = draw(shapes_of(min_dims=1))
    index = draw(hnp.basic_indices(shape, allow_newaxis=True, allow_ellipsis=True))
    return (shape,), {"index": index}


@st.composite
def integer_array_index_inputs(draw):
    """Integer arrays pick elements, often the same one twice (backward must add both)."""
    shape = draw(shapes_of(min_dims=1, min_side=1))
    index = draw(hnp.integer_array_indices(shape, result_shape=hnp.array_shapes(min_dims=1, max_dims=2,
                                                                                max_side=4)))
    return (shape,), {"index": index}


@st.composite
def mask_index_inputs(draw):
    shape = draw(shapes_of(min_dims=1))
    mask = draw(hnp.arrays(np.bool_, shape))
    return (shape,), {"index": mask}


@st.composite
def where_inputs(draw):
    condition_shape, a_shape, b_shape = draw(broadcast_inputs(3))[0]
    return (condition_shape, a_shape, b_shape), {}


# ----------------------------------------------------------------------------
# The cases
# ----------------------------------------------------------------------------
def erf(values):
    return np.vectorize(math.erf, otypes=[float])(values)


def numpy_split(a, indices_or_sections, axis):
    return tuple(np.split(a, indices_or_sections, axis=axis))


def numpy_pad(a, pad_width, constant_value):
    if a.ndim == 0:
        return a.copy()  # np.pad refuses a scalar; there is no axis to pad
    return np.pad(a, pad_width, constant_values=constant_value)


def numpy_logsumexp(a, axis, keepdims):
    shift = np.max(a, axis=axis, keepdims=True)
    out = np.log(np.exp(a - shift).sum(axis=axis, keepdims=True)) + shift
    return out if keepdims else np.squeeze(out, axis=axis)


def numpy_softmax(a, axis):
    e = np.exp(a - a.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


@dataclass
class Case:
    name: str
    ours: object                        # f(*tensors, **options) -> Tensor or tuple
    numpy: object                       # the same on arrays
    inputs: object = field(default_factory=lambda: one_input())  # -> (shapes, options)
    kinds: tuple = ("any",)             # VALUES kind of each input (the last repeats)
    second_order: bool = True           # run gradgradcheck too

    def __repr__(self):
        return self.name


def unary(name, ours, numpy, kind="any", **extra):
    return Case(name, lambda a: ours(a), lambda a: numpy(a), one_input(), (kind,), **extra)


def binary(name, ours, numpy, kinds=("any", "any")):
    return Case(name, ours, numpy, broadcast_inputs(2), kinds)


SQRT_2 = math.sqrt(2.0)

CASES = [
    # -- arithmetic, as operators, with tensors or numbers on either side --------
    binary("add", lambda a, b: a + b, np.add),
    binary("sub", lambda a, b: a - b, np.subtract),
    binary("mul", lambda a, b: a * b, np.multiply),
    binary("div", lambda a, b: a / b, np.divide, ("any", "nonzero")),
    binary("pow", lambda a, b: a ** b, np.power, ("positive", "any")),
    binary("F.add", F.add, np.add),
    binary("F.mul", F.mul, np.multiply),
    binary("F.div", F.div, np.divide, ("any", "nonzero")),
    unary("neg", lambda a: -a, np.negative),
    unary("F.neg", F.neg, np.negative),
    unary("number + a", lambda a: 2.5 + a, lambda a: 2.5 + a),
    unary("a - number", lambda a: a - 1.25, lambda a: a - 1.25),
    unary("number - a", lambda a: 2.5 - a, lambda a: 2.5 - a),
    unary("number * a", lambda a: 3.0 * a, lambda a: 3.0 * a),
    unary("a / number", lambda a: a / 4.0, lambda a: a / 4.0),
    unary("number / a", lambda a: 3.0 / a, lambda a: 3.0 / a, "nonzero"),
    unary("number ** a", lambda a: 2.0 ** a, lambda a: 2.0 ** a),
    unary("a ** 2", lambda a: a ** 2, lambda a: a ** 2),
    unary("a ** 3", lambda a: a ** 3, lambda a: a ** 3),
    unary("a ** 0.5", lambda a: a ** 0.5, np.sqrt, "positive"),
    unary("a ** -1.5", lambda a: a ** -1.5, lambda a: a ** -1.5, "positive"),
    unary("a ** 0", lambda a: a ** 0, lambda a: a ** 0),
    # -- elementwise math ----------------------------------------------------------
    unary("exp", db.exp, np.exp),
    unary("log", db.log, np.log, "positive"),
    unary("sqrt", db.sqrt, np.sqrt, "positive"),
    unary("abs", db.abs, np.abs, "nonzero"),
    unary("tanh", db.tanh, np.tanh),
    unary("sigmoid", db.sigmoid, lambda a: 1 / (1 + np.exp(-a))),
    unary("relu", db.relu, lambda a: np.maximum(a, 0), "nonzero"),
    unary("leaky_relu", lambda a: db.leaky_relu(a, negative_slope=0.1),
          lambda a: np.where(a > 0, a, 0.1 * a), "nonzero"),
    unary("elu", lambda a: db.elu(a, alpha=1.3), lambda a: np.where(a > 0, a, 1.3 * np.expm1(a)),
          "nonzero"),
    unary("gelu", db.gelu, lambda a: 0.5 * a * (1 + erf(a / SQRT_2))),
    unary("gelu approximate", lambda a: db.gelu(a, approximate=True),
          lambda a: 0.5 * a * (1 + np.tanh(np.sqrt(2 / np.pi) * (a + 0.044715 * a**3)))),
    unary("softplus", db.softplus, lambda a: np.log1p(np.exp(a))),
    unary("clip", lambda a: db.clip(a, -0.5, 0.8), lambda a: np.clip(a, -0.5, 0.8), "clip"),
    unary("clip low only", lambda a: db.clip(a, low=-0.5), lambda a: np.maximum(a, -0.5), "clip"),
    unary("clip high only", lambda a: db.clip(a, high=0.8), lambda a: np.minimum(a, 0.8), "clip"),
    binary("maximum", db.maximum, np.maximum, ("lower", "upper")),
    binary("minimum", db.minimum, np.minimum, ("upper", "lower")),
    Case("where", lambda c, a, b: db.where(c, a, b), np.where, where_inputs(), ("mask", "any", "any")),
    Case("matmul", lambda a, b: a @ b, np.matmul, matmul_inputs(), ("any", "any")),
    Case("F.matmul", F.matmul, np.matmul, matmul_inputs(), ("any", "any")),
    # -- reductions ----------------------------------------------------------------
    Case("sum", lambda a, **o: a.sum(**o), lambda a, **o: np.sum(a, **o), reduction_inputs()),
    Case("mean", lambda a, **o: db.mean(a, **o), lambda a, **o: np.mean(a, **o), reduction_inputs()),
    Case("var", lambda a, **o: a.var(**o), lambda a, **o: np.var(a, **o), reduction_inputs(ddof=True)),
    Case("max", lambda a, **o: a.max(**o), lambda a, **o: np.max(a, **o),
         reduction_inputs(nonempty_reduced_axes=True), ("spaced",)),
    Case("min", lambda a, **o: db.min(a, **o), lambda a, **o: np.min(a, **o),
         reduction_inputs(nonempty_reduced_axes=True), ("spaced",)),
    Case("logsumexp", lambda a, **o: db.logsumexp(a, **o), numpy_logsumexp,
         reduction_inputs(nonempty_reduced_axes=True)),
    Case("softmax", lambda a, **o: db.softmax(a, **o), numpy_softmax, softmax_inputs()),
    Case("log_softmax", lambda a, **o: a.log_softmax(**o), lambda a, axis: np.log(numpy_softmax(a, axis)),
         softmax_inputs()),
    # -- shapes --------------------------------------------------------------------
    Case("reshape", lambda a, shape: a.reshape(shape), lambda a, shape: a.reshape(shape),
         reshape_inputs()),
    Case("transpose", lambda a, axes: db.transpose(a, axes), np.transpose, transpose_inputs()),
    unary(".T", lambda a: a.T, lambda a: a.T),
    Case("expand_dims", lambda a, axis: a.expand_dims(axis), np.expand_dims, expand_dims_inputs()),
    Case("squeeze", lambda a, axis: db.squeeze(a, axis), np.squeeze, squeeze_inputs()),
    Case("flatten", lambda a, start_axis: a.flatten(start_axis),
         lambda a, start_axis: a.reshape(a.shape[:start_axis] + (-1,)), flatten_inputs()),
    Case("concatenate", lambda *ts, axis: db.concatenate(ts, axis=axis),
         lambda *arrays, axis: np.concatenate(arrays, axis=axis), concatenate_inputs()),
    Case("stack", lambda *ts, axis: db.stack(ts, axis=axis),
         lambda *arrays, axis: np.stack(arrays, axis=axis), stack_inputs()),
    Case("split", lambda a, **o: tuple(db.split(a, **o)), numpy_split, split_inputs()),
    Case("pad", lambda a, **o: db.pad(a, **o), numpy_pad, pad_inputs()),
    Case("index: basic", lambda a, index: a[index], lambda a, index: a[index], basic_index_inputs()),
    Case("index: integer arrays", lambda a, index: a[index], lambda a, index: a[index],
         integer_array_index_inputs()),
    Case("index: boolean mask", lambda a, index: a[index], lambda a, index: a[index],
         mask_index_inputs()),
    Case("index: integer tensor", lambda a, index: a[db.tensor(index)], lambda a, index: a[index],
         integer_array_index_inputs().map(lambda args: (args[0], {"index": args[1]["index"][0]}))),
]


def draw_case_inputs(data, case):
    shapes, options = data.draw(case.inputs, label="shapes and options")
    seed = data.draw(st.integers(0, 2**32 - 1), label="seed")
    kinds = case.kinds + (case.kinds[-1],) * (len(shapes) - len(case.kinds))
    return make_inputs(seed, shapes, kinds), options


def as_tuple(values):
    return tuple(values) if isinstance(values, (tuple, list)) else (values,)


@pytest.mark.parametrize("case", CASES, ids=repr)
@given(data=st.data())
def test_forward_matches_numpy(device, case, data):
    arrays, options = draw_case_inputs(data, case)
    tensors = [db.tensor(a, dtype="float64" if a.dtype.kind == "f" else None) for a in arrays]
    ours = as_tuple(case.ours(*tensors, **options))
    with warnings.catch_warnings():
        # NumPy warns about the mean of an empty axis; the NaN it gives is the answer.
        warnings.simplefilter("ignore", RuntimeWarning)
        expected = as_tuple(case.numpy(*arrays, **options))
    assert len(ours) == len(expected)
    for mine, reference in zip(ours, expected):
        assert mine.shape == np.shape(reference)
        assert mine.dtype == np.float64
        np.testing.assert_allclose(mine.numpy(), reference, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", CASES, ids=repr)
@given(data=st.data())
def test_gradcheck(device, case, data):
    arrays, options = draw_case_inputs(data, case)
    assert db.gradcheck(lambda *ts: case.ours(*ts, **options), arrays)


@pytest.mark.parametrize("case", [c for c in CASES if c.second_order], ids=repr)
@given(data=st.data())
def test_gradgradcheck(device, case, data):
    arrays, options = draw_case_inputs(data, case)
    assert db.gradgradcheck(lambda *ts: case.ours(*ts, **options), arrays)


@pytest.mark.parametrize("case", CASES, ids=repr)
@given(data=st.data())
def test_float32_stays_float32_forward_and_backward(device, case, data):
    """Python numbers, counts and constants inside an op must not widen float32."""
    arrays, options = draw_case_inputs(data, case)
    tensors = [db.tensor(a, requires_grad=True) if a.dtype.kind == "f" else db.tensor(a) for a in arrays]
    outputs = as_tuple(case.ours(*tensors, **options))
    assert all(output.dtype == np.float32 for output in outputs)
    total = sum((output * 1.5).sum() for output in outputs)
    if total.requires_grad:
        total.backward()
    for tensor in tensors:
        assert tensor.grad is None or tensor.grad.dtype == np.float32


def test_every_public_op_has_a_case():
    """A new op added to deepbreadth's namespace without a case here fails this test."""
    covered = " ".join(case.name for case in CASES)
    for name in ["exp", "log", "sqrt", "abs", "tanh", "sigmoid", "relu", "leaky_relu", "elu", "gelu",
                 "softplus", "clip", "maximum", "minimum", "where", "matmul", "sum", "mean", "var",
                 "max", "min", "logsumexp", "softmax", "log_softmax", "reshape", "transpose",
                 "expand_dims", "squeeze", "flatten", "concatenate", "stack", "split", "pad"]:
        assert hasattr(db, name) and name in covered, name


# ----------------------------------------------------------------------------
# Ops without a gradient, and ops that must stay finite
# ----------------------------------------------------------------------------
@given(data=st.data())
def test_argmax_and_argmin_match_numpy_and_carry_no_gradient(device, data):
    shape = data.draw(shapes_of(min_side=1))
    axis = data.draw(axis_options(len(shape), allow_tuple=False))
    values = spaced(np.random.default_rng(data.draw(st.integers(0, 100))), shape)
    x = db.tensor(values, dtype="float64", requires_grad=True)
    for ours, reference in ((db.argmax, np.argmax), (db.argmin, np.argmin),
                             (lambda t, axis: t.argmax(axis=axis), np.argmax)):
        result = ours(x, axis=axis)
        assert result.dtype.kind == "i" and not result.requires_grad and result.grad_fn is None
        np.testing.assert_array_equal(result.numpy(), reference(values, axis=axis))


@pytest.mark.parametrize("scale", [1e4, -1e4])
def test_softmax_family_is_stable_for_large_inputs(device, scale):
    values = np.array([[1.0, 0.0, -1.0], [0.5, 0.5, 0.0]]) * scale
    for dtype in ("float32", "float64"):
        x = db.tensor(values, dtype=dtype, requires_grad=True)
        probabilities = db.softmax(x, axis=-1)
        log_probabilities = db.log_softmax(x, axis=-1)
        total = db.logsumexp(x, axis=-1)
        (probabilities.sum() + log_probabilities.sum() + total.sum()).backward()
        for result in (probabilities, log_probabilities, total, x.grad):
            assert np.all(np.isfinite(result.numpy())), (dtype, result)
        np.testing.assert_allclose(probabilities.numpy().sum(axis=-1), 1.0, rtol=1e-6)
        np.testing.assert_allclose(total.numpy(), numpy_logsumexp(values, -1, False), rtol=1e-6)


def test_sigmoid_and_softplus_are_stable_for_large_inputs(device):
    values = np.array([-1e4, -50.0, 0.0, 50.0, 1e4])
    x = db.tensor(values, requires_grad=True)
    (db.sigmoid(x).sum() + db.softplus(x).sum()).backward()
    np.testing.assert_allclose(db.sigmoid(x).numpy(), [0.0, 0.0, 0.5, 1.0, 1.0], atol=1e-7)
    np.testing.assert_allclose(db.softplus(x).numpy(), np.logaddexp(0.0, values), rtol=1e-6)
    assert np.all(np.isfinite(x.grad.numpy()))


def test_repeated_integer_index_adds_both_gradients(device):
    x = db.tensor([1.0, 2.0, 3.0], requires_grad=True)
    x[[0, 0, 2, 0]].sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [3.0, 0.0, 1.0])


def test_methods_and_functions_are_the_same_op(device):
    values = np.random.default_rng(0).uniform(0.5, 2.0, (2, 3))
    x = db.tensor(values, dtype="float64")
    pairs = [(x.exp(), db.exp(x)), (x.log(), db.log(x)), (x.sqrt(), db.sqrt(x)), (x.abs(), db.abs(x)),
             (x.tanh(), db.tanh(x)), (x.sigmoid(), db.sigmoid(x)), (x.relu(), db.relu(x)),
             (x.clip(0.7, 1.5), db.clip(x, 0.7, 1.5)), (x.sum(axis=1), db.sum(x, axis=1)),
             (x.mean(0), db.mean(x, 0)), (x.max(axis=(0, 1)), db.max(x)), (x.min(1), db.min(x, 1)),
             (x.softmax(0), db.softmax(x, 0)), (x.logsumexp(1), db.logsumexp(x, 1)),
             (x.reshape(3, 2), db.reshape(x, (3, 2))), (x.transpose(1, 0), x.T),
             (x.squeeze(), db.squeeze(x)), (x.pad(((1, 0), (0, 1))), db.pad(x, ((1, 0), (0, 1)))),
             (x.flatten(), db.flatten(x)), (x.expand_dims(0), db.expand_dims(x, 0))]
    for method_result, function_result in pairs:
        np.testing.assert_array_equal(method_result.numpy(), function_result.numpy())


# ----------------------------------------------------------------------------
# Random compositions of ops
# ----------------------------------------------------------------------------
# Unary and binary ops that are smooth everywhere on modest inputs, so any
# tree of them is differentiable at the points drawn.
UNARY_OPS = {
    "tanh": db.tanh, "sigmoid": db.sigmoid, "softplus": db.softplus, "neg": lambda a: -a,
    "square": lambda a: a ** 2, "exp": lambda a: db.exp(db.tanh(a)), "gelu": db.gelu,
    "sum last keepdims": lambda a: a.sum(axis=-1, keepdims=True) if a.ndim else a,
    "mean last keepdims": lambda a: a.mean(axis=-1, keepdims=True) if a.ndim else a,
    "softmax last": lambda a: db.softmax(a, axis=-1), "log1p square": lambda a: db.log(1 + a * a),
    "transpose twice": lambda a: a.T.T,
}
BINARY_OPS = {
    "add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b,
    "safe div": lambda a, b: a / (1 + b * b), "maximum of shifted": lambda a, b: db.maximum(a, b + 10),
}


def expression_trees(leaf_count):
    leaves = st.integers(0, leaf_count - 1).map(lambda index: ("input", index))

    def grow(children):
        return st.one_of(
            st.tuples(st.just("unary"), st.sampled_from(sorted(UNARY_OPS)), children),
            st.tuples(st.just("binary"), st.sampled_from(sorted(BINARY_OPS)), children, children),
        )

    return st.recursive(leaves, grow, max_leaves=6)


def evaluate(tree, inputs):
    kind = tree[0]
    if kind == "input":
        return inputs[tree[1]]
    if kind == "unary":
        return UNARY_OPS[tree[1]](evaluate(tree[2], inputs))
    return BINARY_OPS[tree[1]](evaluate(tree[2], inputs), evaluate(tree[3], inputs))


def describe(tree):
    if tree[0] == "input":
        return f"x{tree[1]}"
    return f"{tree[1]}({', '.join(describe(child) for child in tree[2:])})"


@given(data=st.data())
def test_random_compositions_pass_gradcheck(device, data):
    shapes = data.draw(hnp.mutually_broadcastable_shapes(num_shapes=3, min_dims=0, max_dims=2,
                                                         min_side=1, max_side=3)).input_shapes
    tree = data.draw(expression_trees(len(shapes)), label="expression")
    seed = data.draw(st.integers(0, 2**32 - 1))
    arrays = make_inputs(seed, shapes, ("any", "any", "any"))

    def expression(*tensors):
        return evaluate(tree, tensors)

    note = describe(tree)
    assert db.gradcheck(expression, arrays), note
    assert db.gradgradcheck(expression, arrays), note
