"""Arithmetic ops: + - * / ** @, exp, log, sqrt, abs, clip, maximum, minimum, where.

Each op is a Function whose forward works on arrays and whose backward is
written with Tensor operations (so it can be differentiated again). None of
them undoes broadcasting: the engine sums each gradient back to its input's
shape once, for every op.

`np.exp(a)` works on CuPy arrays too (NumPy hands the call to CuPy), so these
ops run unchanged on the GPU.
"""
import numpy as np

from .. import backend
from ..autograd import Function, ShapeError, Tensor, as_tensor, is_grad_enabled


class Add(Function):
    @staticmethod
    def forward(ctx, a, b):
        return a + b

    @staticmethod
    def backward(ctx, grad):
        return grad, grad


class Sub(Function):
    @staticmethod
    def forward(ctx, a, b):
        return a - b

    @staticmethod
    def backward(ctx, grad):
        return grad, -grad


class Mul(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a * b

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved_tensors
        grad_a = grad * b if ctx.needs_input_grad[0] else None
        grad_b = grad * a if ctx.needs_input_grad[1] else None
        return grad_a, grad_b


class Div(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a / b

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved_tensors
        grad_a = grad / b if ctx.needs_input_grad[0] else None
        grad_b = -grad * a / (b * b) if ctx.needs_input_grad[1] else None
        return grad_a, grad_b


class Neg(Function):
    @staticmethod
    def forward(ctx, a):
        return -a

    @staticmethod
    def backward(ctx, grad):
        return -grad


class PowScalar(Function):
    """a ** p for a constant exponent p (the common case: squares, roots)."""

    @staticmethod
    def forward(ctx, a, exponent):
        ctx.save_for_backward(a)
        ctx.exponent = exponent
        return a ** exponent

    @staticmethod
    def backward(ctx, grad):
        (a,) = ctx.saved_tensors
        p = ctx.exponent
        if p == 0:
            return grad * 0
        return grad * p * pow_scalar(a, p - 1)


class Pow(Function):
    """a ** b where both are tensors: d/db a**b = a**b * log(a)."""

    @staticmethod
    def forward(ctx, a, b):
        out = a ** b
        ctx.save_for_backward(a, b, out)
        return out

    @staticmethod
    def backward(ctx, grad):
        a, b, out = ctx.saved_tensors
        grad_a = grad * b * a ** (b - 1) if ctx.needs_input_grad[0] else None
        grad_b = None
        if ctx.needs_input_grad[1]:
            # log(a) is undefined for a <= 0; there the exponent gets no gradient.
            positive = a.data > 0
            safe_a = where(positive, a, 1.0)
            grad_b = where(positive, grad * out * log(safe_a), 0.0)
        return grad_a, grad_b


class MatMul(Function):
    """a @ b with NumPy's rules: batched, broadcast batch axes, 1-D on either side."""

    @staticmethod
    def forward(ctx, a, b):
        if a.ndim == 0 or b.ndim == 0:
            raise ShapeError(f"matmul: scalars are not allowed (shapes {a.shape} and {b.shape}); use *")
        a_inner = a.shape[-1]
        b_inner = b.shape[-2] if b.ndim > 1 else b.shape[0]
        if a_inner != b_inner:
            raise ShapeError(
                f"matmul: shapes {a.shape} and {b.shape} do not align: the last axis of the "
                f"first ({a_inner}) must equal the {'second-to-last' if b.ndim > 1 else 'only'} "
                f"axis of the second ({b_inner})"
            )
        ctx.save_for_backward(a, b)
        return a @ b

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved_tensors
        if a.ndim == 2 and b.ndim == 2 and not is_grad_enabled():
            # A plain backward (no create_graph) of a matrix product records
            # nothing, so the two products are done on the arrays: no
            # transpose and product ops to run around them (-13 us a Dense).
            grad_a = Tensor._wrap(grad.data @ b.data.T) if ctx.needs_input_grad[0] else None
            grad_b = Tensor._wrap(a.data.T @ grad.data) if ctx.needs_input_grad[1] else None
            return grad_a, grad_b
        if a.ndim == 1 and b.ndim == 1:  # dot product: the output is a scalar
            return grad * b, grad * a
        # Give 1-D operands their missing matrix axis, so one rule covers all cases.
        a2 = a.expand_dims(0) if a.ndim == 1 else a
        b2 = b.expand_dims(-1) if b.ndim == 1 else b
        grad2 = grad
        if a.ndim == 1:
            grad2 = grad2.expand_dims(-2)
        if b.ndim == 1:
            grad2 = grad2.expand_dims(-1)
        grad_a = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_a = grad2 @ b2.swapaxes(-1, -2)
            if a.ndim == 1:
                grad_a = grad_a.squeeze(-2)
        if ctx.needs_input_grad[1]:
            grad_b = a2.swapaxes(-1, -2) @ grad2
            if b.ndim == 1:
                grad_b = grad_b.squeeze(-1)
        return grad_a, grad_b


class Exp(Function):
    @staticmethod
    def forward(ctx, a):
        out = np.exp(a)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad):
        (out,) = ctx.saved_tensors
        return grad * out


class Log(Function):
    @staticmethod
    def forward(ctx, a):
        ctx.save_for_backward(a)
        return np.log(a)

    @staticmethod
    def backward(ctx, grad):
        (a,) = ctx.saved_tensors
        return grad / a


class Sqrt(Function):
    @staticmethod
    def forward(ctx, a):
        out = np.sqrt(a)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad):
        (out,) = ctx.saved_tensors
        return grad / (2 * out)


class Abs(Function):
    @staticmethod
    def forward(ctx, a):
        ctx.save_for_backward(a)
        return np.abs(a)

    @staticmethod
    def backward(ctx, grad):
        (a,) = ctx.saved_tensors
        # sign(a) is a constant: its own derivative is zero almost everywhere.
        return grad * Tensor._wrap(np.sign(a.data))


class Clip(Function):
    """Values limited to [low, high]; the gradient passes where low <= a <= high."""

    @staticmethod
    def forward(ctx, a, low=None, high=None):
        ctx.save_for_backward(a)
        ctx.low, ctx.high = low, high
        return np.clip(a, low, high)

    @staticmethod
    def backward(ctx, grad):
        (a,) = ctx.saved_tensors
        inside = np.ones_like(a.data, dtype=bool)
        if ctx.low is not None:
            inside = inside & (a.data >= ctx.low)
        if ctx.high is not None:
            inside = inside & (a.data <= ctx.high)
        return where(inside, grad, 0.0)


class Maximum(Function):
    """Elementwise max; at ties each side gets half the gradient (symmetric)."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return np.maximum(a, b)

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved_tensors
        share_a = (a.data > b.data) + 0.5 * (a.data == b.data)
        share_a = Tensor._wrap(share_a.astype(grad.dtype))
        return grad * share_a, grad * (1 - share_a)


class Minimum(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return np.minimum(a, b)

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved_tensors
        share_a = (a.data < b.data) + 0.5 * (a.data == b.data)
        share_a = Tensor._wrap(share_a.astype(grad.dtype))
        return grad * share_a, grad * (1 - share_a)


class Where(Function):
    """Pick from `a` where `condition` holds, else from `b`."""

    @staticmethod
    def forward(ctx, condition, a, b):
        ctx.condition = condition.astype(bool)
        return np.where(ctx.condition, a, b)

    @staticmethod
    def backward(ctx, grad):
        condition = ctx.condition
        grad_a = where(condition, grad, 0.0) if ctx.needs_input_grad[1] else None
        grad_b = where(condition, 0.0, grad) if ctx.needs_input_grad[2] else None
        return None, grad_a, grad_b


# ----------------------------------------------------------------------------
# Public functions
# ----------------------------------------------------------------------------
def add(a, b):
    return Add.apply(a, b)


def sub(a, b):
    return Sub.apply(a, b)


def mul(a, b):
    return Mul.apply(a, b)


def div(a, b):
    return Div.apply(a, b)


def neg(a):
    return Neg.apply(a)


def pow_scalar(a, exponent):
    return PowScalar.apply(a, exponent=exponent)


def pow(a, b):  # noqa: A001 - the name users expect
    """a ** b; a constant Python-number exponent takes the cheaper path."""
    if isinstance(b, (int, float)) and not isinstance(b, bool):
        return pow_scalar(a, b)
    return Pow.apply(a, b)


def matmul(a, b):
    return MatMul.apply(a, b)


def exp(a):
    return Exp.apply(a)


def log(a):
    return Log.apply(a)


def sqrt(a):
    return Sqrt.apply(a)


def abs(a):  # noqa: A001
    return Abs.apply(a)


def clip(a, low=None, high=None):
    if low is None and high is None:
        raise ValueError("clip: give low, high or both")
    return Clip.apply(a, low=low, high=high)


def maximum(a, b):
    return Maximum.apply(a, b)


def minimum(a, b):
    return Minimum.apply(a, b)


def where(condition, a, b):
    """Elementwise choice; the gradient flows to `a` where condition holds, else to `b`."""
    if isinstance(condition, Tensor):
        condition = condition.data
    elif not backend.is_gpu_array(condition):
        # A list or a NumPy array of booleans goes to the device of the tensor operands.
        device = next((t.device for t in (a, b) if isinstance(t, Tensor)), "cpu")
        condition = backend.to_device(np.asarray(condition), device)
    return Where.apply(Tensor._wrap(condition), a, b)


def sign(a):
    """-1, 0 or 1 elementwise; a constant (no gradient)."""
    return Tensor._wrap(np.sign(as_tensor(a).data))
