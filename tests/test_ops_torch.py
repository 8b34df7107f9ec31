"""Every op of test_ops_gradcheck.py against PyTorch: forward values and
gradients on the same float64 inputs, to a tight tolerance.

The cases (shapes, options, input values) are the ones the gradcheck tests
use; this file only says what each op is called in PyTorch. An op added there
without a PyTorch twin here fails `test_every_case_has_a_torch_twin`.
"""
import os
import sys

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import deepbreadth as db

torch = pytest.importorskip("torch", reason="PyTorch is not installed: nothing to compare against")
TF = torch.nn.functional

# The cases live beside this file; make them importable however pytest was started.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_ops_gradcheck import CASES, draw_case_inputs  # noqa: E402

SAME = "same"  # the case's own function works on torch tensors as it is (operators)


def all_axes(a, axis):
    """Our axis=None means every axis; torch wants them listed."""
    return tuple(range(a.ndim)) if axis is None else axis


def torch_amax(a, axis, keepdims):
    return torch.amax(a, dim=all_axes(a, axis), keepdim=keepdims) if a.ndim else a.clone()


def torch_amin(a, axis, keepdims):
    return torch.amin(a, dim=all_axes(a, axis), keepdim=keepdims) if a.ndim else a.clone()


def torch_logsumexp(a, axis, keepdims):
    return torch.logsumexp(a, dim=all_axes(a, axis), keepdim=keepdims) if a.ndim else a.clone()


def torch_squeeze(a, axis):
    return a.squeeze() if axis is None else a.squeeze(axis)


def torch_pad(a, pad_width, constant_value):
    if a.ndim == 0:
        return a.clone()
    # torch lists (before, after) pairs from the last axis backwards.
    flat = [width for pair in reversed(pad_width) for width in pair]
    return TF.pad(a, flat, value=constant_value)


def torch_split(a, indices_or_sections, axis):
    return tuple(torch.tensor_split(a, indices_or_sections, dim=axis))


def torch_index(a, index):
    """Index arrays become tensors; a negative slice step has no torch equivalent."""
    parts = index if isinstance(index, tuple) else (index,)
    assume(not any(isinstance(p, slice) and p.step is not None and p.step < 0 for p in parts))
    converted = tuple(torch.as_tensor(p) if isinstance(p, np.ndarray) else p for p in parts)
    return a[converted if isinstance(index, tuple) else converted[0]]


TORCH_TWINS = {
    "add": SAME, "sub": SAME, "mul": SAME, "div": SAME, "pow": SAME,
    "F.add": torch.add, "F.mul": torch.mul, "F.div": torch.div,
    "neg": SAME, "F.neg": torch.neg,
    "number + a": SAME, "a - number": SAME, "number - a": SAME, "number * a": SAME,
    "a / number": SAME, "number / a": SAME, "number ** a": SAME, "a ** 2": SAME, "a ** 3": SAME,
    "a ** 0.5": SAME, "a ** -1.5": SAME, "a ** 0": SAME,
    "exp": torch.exp, "log": torch.log, "sqrt": torch.sqrt, "abs": torch.abs, "tanh": torch.tanh,
    "sigmoid": torch.sigmoid, "relu": torch.relu,
    "leaky_relu": lambda a: TF.leaky_relu(a, 0.1),
    "elu": lambda a: TF.elu(a, alpha=1.3),
    "gelu": TF.gelu,
    "gelu approximate": lambda a: TF.gelu(a, approximate="tanh"),
    "softplus": TF.softplus,
    "clip": lambda a: torch.clamp(a, -0.5, 0.8),
    "clip low only": lambda a: torch.clamp(a, min=-0.5),
    "clip high only": lambda a: torch.clamp(a, max=0.8),
    "maximum": torch.maximum, "minimum": torch.minimum,
    "where": torch.where,
    "matmul": torch.matmul, "F.matmul": torch.matmul,
    "sum": lambda a, axis, keepdims: torch.sum(a, dim=all_axes(a, axis), keepdim=keepdims),
    "mean": lambda a, axis, keepdims: torch.mean(a, dim=all_axes(a, axis), keepdim=keepdims),
    "var": lambda a, axis, keepdims, ddof: torch.var(a, dim=all_axes(a, axis), correction=ddof,
                                                     keepdim=keepdims),
    "max": torch_amax, "min": torch_amin, "logsumexp": torch_logsumexp,
    "softmax": lambda a, axis: torch.softmax(a, dim=axis),
    "log_softmax": lambda a, axis: torch.log_softmax(a, dim=axis),
    "reshape": lambda a, shape: a.reshape(shape),
    "transpose": lambda a, axes: a.permute(axes),
    ".T": lambda a: a.permute(tuple(reversed(range(a.ndim)))),
    "expand_dims": lambda a, axis: a.unsqueeze(axis),
    "squeeze": torch_squeeze,
    "flatten": lambda a, start_axis: a.reshape(tuple(a.shape[:start_axis]) + (-1,)),
    "concatenate": lambda *ts, axis: torch.cat(ts, dim=axis),
    "stack": lambda *ts, axis: torch.stack(ts, dim=axis),
    "split": torch_split,
    "pad": torch_pad,
    "index: basic": torch_index,
    "index: integer arrays": torch_index,
    "index: boolean mask": torch_index,
    "index: integer tensor": torch_index,
}


def test_every_case_has_a_torch_twin():
    assert sorted(case.name for case in CASES if case.name not in TORCH_TWINS) == []


def as_tuple(values):
    return tuple(values) if isinstance(values, (tuple, list)) else (values,)


def ours_with_gradients(case, arrays, options, upstream_seed):
    """Outputs, and the gradient of sum(output * random weight) for each float input."""
    tensors = [db.tensor(a, dtype="float64", requires_grad=True) if a.dtype.kind == "f" else db.tensor(a)
               for a in arrays]
    outputs = as_tuple(case.ours(*tensors, **options))
    weights = [np.random.default_rng(upstream_seed + k).standard_normal(o.shape)
               for k, o in enumerate(outputs)]
    total = sum((o * db.tensor(w, dtype="float64")).sum() for o, w in zip(outputs, weights))
    wanted = [t for t in tensors if t.requires_grad]
    grads = db.grad(total, wanted) if total.requires_grad else [None] * len(wanted)
    return [o.numpy() for o in outputs], weights, [None if g is None else g.numpy() for g in grads]


def torch_with_gradients(case, arrays, options, weights):
    twin = TORCH_TWINS[case.name]
    twin = case.ours if twin is SAME else twin
    tensors = [torch.tensor(a, dtype=torch.float64, requires_grad=True) if a.dtype.kind == "f"
               else torch.as_tensor(a) for a in arrays]
    outputs = as_tuple(twin(*tensors, **options))
    total = sum((o * torch.as_tensor(w)).sum() for o, w in zip(outputs, weights))
    wanted = [t for t in tensors if t.requires_grad]
    if total.requires_grad:
        grads = torch.autograd.grad(total, wanted, allow_unused=True)
    else:
        grads = [None] * len(wanted)
    return ([o.detach().numpy() for o in outputs],
            [None if g is None else g.numpy() for g in grads], [t.shape for t in wanted])


@pytest.mark.filterwarnings("ignore:var\\(\\)")  # torch warns of a NaN variance; ours is NaN too
@pytest.mark.parametrize("case", CASES, ids=repr)
@given(data=st.data())
def test_forward_and_gradient_match_torch(device, case, data):
    arrays, options = draw_case_inputs(data, case)
    upstream_seed = data.draw(st.integers(0, 1000), label="upstream seed")
    outputs, weights, grads = ours_with_gradients(case, arrays, options, upstream_seed)
    torch_outputs, torch_grads, shapes = torch_with_gradients(case, arrays, options, weights)

    assert len(outputs) == len(torch_outputs)
    for mine, reference in zip(outputs, torch_outputs):
        assert mine.shape == reference.shape
        np.testing.assert_allclose(mine, reference, rtol=1e-10, atol=1e-12)
    for mine, reference, shape in zip(grads, torch_grads, shapes):
        # Either side may say "no gradient" (None) where the other has zeros.
        mine = np.zeros(shape) if mine is None else mine
        reference = np.zeros(shape) if reference is None else reference
        assert mine.shape == reference.shape
        np.testing.assert_allclose(mine, reference, rtol=1e-10, atol=1e-12)
