"""Reverse-mode automatic differentiation: Tensor, Function and backward().

How it works, in four sentences:

1. A `Tensor` wraps an array. When an op runs on tensors that require grad,
   `Function.apply` records a `Node`: which Function ran, on which input
   tensors, and what its forward saved for the backward pass.
2. The output tensor points at that node, so every tensor carries the recipe
   of how it was computed: a directed acyclic graph.
3. `tensor.backward()` orders the graph's nodes so that each node comes after
   every node that uses its outputs (a topological order, built with an
   explicit stack, never recursion), then walks it once, calling each
   Function's `backward` with the gradient of its output and routing the
   returned gradients to the node's inputs.
4. A tensor used twice receives two gradients; they are added.

`Function.backward` is written with differentiable Tensor operations, so the
backward pass can itself be recorded (`create_graph=True`): that is how
second derivatives, Hessian-vector products and `gradgradcheck` work. Ops
whose backward calls a raw kernel set `once_differentiable = True` and refuse
`create_graph` with a clear error instead of returning a wrong answer.
"""
import time
import weakref

import numpy as np

from . import backend


class ShapeError(ValueError):
    """Shapes that an op cannot combine; the message names the op and the shapes."""


class BackendError(ValueError):
    """Tensors on different devices (NumPy vs CuPy) met in one op."""


# ----------------------------------------------------------------------------
# Grad mode
# ----------------------------------------------------------------------------
_grad_mode = {"enabled": True}


def is_grad_enabled():
    return _grad_mode["enabled"]


class _GradMode:
    """Context manager and decorator that sets grad recording on or off."""

    enabled = None

    def __enter__(self):
        self._previous = _grad_mode["enabled"]
        _grad_mode["enabled"] = self.enabled

    def __exit__(self, *exc_info):
        _grad_mode["enabled"] = self._previous
        return False

    def __call__(self, function):
        mode_class = type(self)

        def wrapper(*args, **kwargs):
            with mode_class():
                return function(*args, **kwargs)

        wrapper.__name__ = getattr(function, "__name__", "wrapper")
        wrapper.__doc__ = getattr(function, "__doc__", None)
        wrapper.__wrapped__ = function
        return wrapper


class no_grad(_GradMode):
    """Do not record operations: `with no_grad(): ...` or `@no_grad()`."""

    enabled = False


class enable_grad(_GradMode):
    """Record operations again inside a `no_grad` block."""

    enabled = True


# ----------------------------------------------------------------------------
# Tensor
# ----------------------------------------------------------------------------
def _as_array(data, dtype):
    """Turn user data into an array, applying the default float dtype."""
    if isinstance(data, Tensor):
        data = data.data
    if backend.is_gpu_array(data):
        array = data
    else:
        array = np.asarray(data)
    if dtype is not None:
        return array.astype(dtype, copy=False)
    if array.dtype.kind == "f" and array.dtype != backend.floatx():
        # Floating input becomes the default float dtype (float32 unless
        # set_floatx says otherwise); ask for dtype='float64' to keep float64.
        return array.astype(backend.floatx())
    return array


class Tensor:
    """An array that remembers how it was computed, so it can be differentiated.

    `requires_grad=True` marks a leaf whose gradient you want; after
    `loss.backward()` it is in `.grad` (a Tensor). Tensors computed from it
    carry `.grad_fn`, the node of the op that produced them.
    """

    __slots__ = ("data", "requires_grad", "grad", "grad_fn", "output_index",
                 "name", "_hooks", "_retains_grad", "__weakref__")
    # Make `ndarray * tensor` call Tensor.__rmul__ instead of NumPy treating
    # the tensor as an opaque object.
    __array_ufunc__ = None

    def __init__(self, data, requires_grad=False, dtype=None, name=None):
        array = _as_array(data, dtype)
        if requires_grad and array.dtype.kind not in "fc":
            raise TypeError(
                f"only floating tensors can require grad; this one is {array.dtype}. "
                "Pass a float array or dtype='float32'."
            )
        self.data = array
        self.requires_grad = bool(requires_grad)
        self.grad = None
        self.grad_fn = None
        self.output_index = 0
        self.name = name
        self._hooks = None
        self._retains_grad = False

    @classmethod
    def _wrap(cls, array, requires_grad=False):
        """Wrap an array as-is (no dtype conversion): the fast path for op outputs."""
        tensor = cls.__new__(cls)
        tensor.data = array
        tensor.requires_grad = requires_grad
        tensor.grad = None
        tensor.grad_fn = None
        tensor.output_index = 0
        tensor.name = None
        tensor._hooks = None
        tensor._retains_grad = False
        return tensor

    # -- array-like properties --------------------------------------------------
    @property
    def shape(self):
        return self.data.shape

    @property
    def ndim(self):
        return self.data.ndim

    @property
    def size(self):
        return self.data.size

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def device(self):
        return backend.device_of(self.data)

    @property
    def is_leaf(self):
        return self.grad_fn is None

    def __len__(self):
        return len(self.data)

    def __repr__(self):
        body = np.array2string(self.numpy(), separator=", ", prefix="tensor(")
        extras = [f"dtype={self.dtype}"]
        if self.device != "cpu":
            extras.append(f"device='{self.device}'")
        if self.grad_fn is not None:
            extras.append(f"grad_fn={self.grad_fn.function.__name__}")
        elif self.requires_grad:
            extras.append("requires_grad=True")
        return f"tensor({body}, {', '.join(extras)})"

    def __array__(self, dtype=None, copy=None):
        array = self.numpy()
        return array if dtype is None else array.astype(dtype)

    __hash__ = object.__hash__

    def __bool__(self):
        if self.size != 1:
            raise ValueError(
                f"the truth value of a tensor with {self.size} elements is ambiguous; "
                "use .any() or .all() on .numpy()"
            )
        return bool(self.data)

    # -- conversions -------------------------------------------------------------
    def numpy(self):
        """The values as a NumPy array (copied from the GPU if needed)."""
        return backend.to_device(self.data, "cpu")

    def item(self):
        """The value of a one-element tensor as a Python number."""
        if self.size != 1:
            raise ValueError(f"item() needs a tensor with one element, this one has shape {self.shape}")
        return self.data.item()

    def tolist(self):
        return self.numpy().tolist()

    def detach(self):
        """The same values, cut from the graph (no grad_fn, no requires_grad)."""
        return Tensor._wrap(self.data)

    def to(self, device):
        """A copy on 'cpu' or 'cuda' (differentiable: gradients flow back)."""
        if device == self.device:
            return self
        from .functional.shape import to_device

        return to_device(self, device)

    def cpu(self):
        return self.to("cpu")

    def requires_grad_(self, requires_grad=True):
        if self.grad_fn is not None and not requires_grad:
            raise RuntimeError("requires_grad can only be turned off on a leaf; use .detach()")
        self.requires_grad = requires_grad
        return self

    def zero_grad(self):
        self.grad = None

    # -- hooks and non-leaf gradients --------------------------------------------
    def register_hook(self, hook):
        """Call `hook(grad)` when this tensor's gradient is computed.

        The hook may return a Tensor to replace the gradient. Returns a handle
        whose `.remove()` unregisters the hook.
        """
        if not self.requires_grad:
            raise RuntimeError("register_hook on a tensor that does not require grad")
        if self._hooks is None:
            self._hooks = {}
        handle = RemovableHandle(self._hooks)
        self._hooks[handle.id] = hook
        return handle

    def retain_grad(self):
        """Keep `.grad` on this non-leaf tensor after backward (leaves always keep it)."""
        if not self.requires_grad:
            raise RuntimeError("retain_grad on a tensor that does not require grad")
        self._retains_grad = True

    def _apply_hooks(self, grad):
        if self._hooks:
            for hook in list(self._hooks.values()):
                replaced = hook(grad)
                if replaced is not None:
                    # An array a hook returns keeps the gradient's dtype.
                    grad = replaced if isinstance(replaced, Tensor) else Tensor(replaced, dtype=grad.dtype)
        return grad

    # -- backward ----------------------------------------------------------------
    def backward(self, grad=None, retain_graph=None, create_graph=False):
        """Compute the gradient of this tensor with respect to every leaf.

        For a scalar the starting gradient is 1. For a tensor of any other shape
        pass `grad` of the same shape (the vector in a vector-Jacobian product).
        The graph is freed afterwards unless `retain_graph=True`; with
        `create_graph=True` it is kept by default, because the gradient's own
        graph runs through it.
        """
        backward([self], [grad], retain_graph=retain_graph, create_graph=create_graph)


class RemovableHandle:
    """Returned by register_hook: call `.remove()` to take the hook away."""

    _next_id = 0

    def __init__(self, hooks):
        self._hooks = hooks
        self.id = RemovableHandle._next_id
        RemovableHandle._next_id += 1

    def remove(self):
        self._hooks.pop(self.id, None)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.remove()


def as_tensor(value, like=None):
    """A Tensor for `value`; Python numbers take the dtype of `like` if given.

    Values that are not Tensors are data: they go to the device of `like`, so
    `gpu_tensor * numpy_array` works. A Tensor is returned as it is.
    """
    if isinstance(value, Tensor):
        return value
    if like is not None and isinstance(value, (int, float, bool)):
        like_dtype = like.data.dtype
        dtype = like_dtype if like_dtype.kind in "fc" or isinstance(value, int) else backend.floatx()
        xp = np if type(like.data) is np.ndarray else backend.array_module(like.data)
        return Tensor._wrap(xp.asarray(value, dtype=dtype))
    tensor = Tensor._wrap(value) if backend.is_gpu_array(value) else Tensor(value)
    if like is not None and tensor.device != like.device:
        tensor.data = backend.to_device(tensor.data, like.device)
    return tensor


# ----------------------------------------------------------------------------
# Op observers: how deepbreadth.trace and the profiler watch ops run
# ----------------------------------------------------------------------------
# An observer has two methods, called for every op while it is in this list:
#   op_started(phase, node)
#   op_finished(phase, node, received, produced, seconds)
# phase is "forward" or "backward". Forward: received are the input tensors,
# produced the output tensor(s). Backward: received are the gradients of the
# op's outputs, produced the gradients it returns for its inputs. The list is
# empty in normal use, so an op pays one truthiness check for this feature.
_op_observers = []


def _notify_op_started(phase, node):
    for observer in _op_observers:
        observer.op_started(phase, node)
    # Read the clock after the observers ran, so their work is not timed.
    return time.perf_counter()


def _notify_op_finished(phase, node, received, produced, started):
    seconds = time.perf_counter() - started
    for observer in _op_observers:
        observer.op_finished(phase, node, received, produced, seconds)


# ----------------------------------------------------------------------------
# Function and the graph nodes it records
# ----------------------------------------------------------------------------
class Node:
    """One recorded op in the graph: the `ctx` of a Function call.

    Forward code uses it to save what backward needs (`save_for_backward`) and
    to stash small values as attributes (`ctx.axis = axis`). Backward code
    reads `ctx.saved_tensors` and `ctx.needs_input_grad`.
    """

    # Defaults live on the class, so making a node costs one attribute: under
    # no_grad (every op of a plain backward pass) a node is made, used as the
    # forward's ctx and thrown away.
    inputs = ()
    needs_input_grad = ()
    output_arrays = ()
    _outputs = ()
    _saved = ()
    freed = False

    def __init__(self, function):
        self.function = function

    def record(self, inputs, outputs):
        """Link this node into the graph: it consumed `inputs` and produced `outputs`."""
        self.inputs = inputs
        # tuple([...]) rather than tuple(... for ...): this runs for every recorded
        # op, and a list comprehension is the faster of the two.
        self.needs_input_grad = tuple([t.requires_grad for t in inputs])
        self.output_arrays = tuple([output.data for output in outputs])
        # Weak references: an output the caller dropped must not be kept alive
        # by its own node (that would be a reference cycle holding every array).
        self._outputs = tuple([weakref.ref(output) for output in outputs])
        for index, output in enumerate(outputs):
            if output.data.dtype.kind in "fc":
                output.grad_fn = self
                output.output_index = index
            else:
                # Integer and boolean results (argmax, comparisons) have no gradient.
                output.requires_grad = False

    def save_for_backward(self, *values):
        """Keep arrays for backward. Inputs and outputs come back as Tensors linked
        to the graph, so a backward written with Tensor ops is differentiable."""
        self._saved = values

    @property
    def saved_tensors(self):
        if self.freed:
            raise RuntimeError(
                f"{self.function.__name__}: trying to backward through the graph a second "
                "time, but its saved values were freed after the first backward. "
                "Pass retain_graph=True to the first backward() to keep them."
            )
        return tuple(self._resolve_saved(value) for value in self._saved)

    def _resolve_saved(self, value):
        if value is None or not hasattr(value, "shape"):
            return value
        for tensor in self.inputs:
            if tensor.data is value:
                return tensor
        for index, array in enumerate(self.output_arrays):
            if array is value:
                return self._live_output(index)
        return Tensor._wrap(value)

    def _live_output(self, index):
        """Output `index` as a tensor linked to this node, even if the caller dropped it.

        A dropped output is made again, pointing at this node, so that a
        create_graph backward through a saved output (exp, tanh, softmax...)
        still reaches this node's inputs.
        """
        output = self._outputs[index]()
        if output is None:
            output = Tensor._wrap(self.output_arrays[index], requires_grad=True)
            output.grad_fn = self
            output.output_index = index
        return output

    def output_tensor(self, index):
        """The live output tensor `index` of this node, or None if it was dropped."""
        return self._outputs[index]() if index < len(self._outputs) else None

    @property
    def num_outputs(self):
        return len(self.output_arrays)

    def release(self):
        """Drop saved values and graph edges after backward (unless retain_graph)."""
        self._saved = ()
        self.inputs = ()
        self.freed = True


class Function:
    """Base class of every differentiable op.

    Subclasses define two static methods side by side:

        forward(ctx, *arrays, **options) -> array or tuple of arrays
        backward(ctx, *grads) -> one gradient (Tensor, array or None) per array input

    Positional arguments of `apply` are tensors (Python numbers are accepted and
    become constants); keyword arguments are plain options such as `axis`.
    """

    # Set True when backward is not written with differentiable Tensor ops
    # (it calls a raw kernel): create_graph through it then raises.
    once_differentiable = False
    # Set False for an op whose outputs are constants, whatever its inputs (the
    # zero initial states of a recurrent layer, shaped after its input): it is
    # never linked into the graph, so no gradient is asked of it.
    differentiable = True

    @staticmethod
    def forward(ctx, *arrays, **options):
        raise NotImplementedError

    @staticmethod
    def backward(ctx, *grads):
        raise NotImplementedError

    @classmethod
    def apply(cls, *inputs, **options):
        tensors = _to_tensors(inputs)
        ctx = Node(cls)
        if not _op_observers:
            return cls._forward_and_link(ctx, tensors, options)
        started = _notify_op_started("forward", ctx)
        result = cls._forward_and_link(ctx, tensors, options)
        # Observers that replay the op later (deepbreadth/replay.py) need its options.
        ctx.apply_options = options
        _notify_op_finished("forward", ctx, tensors, result, started)
        return result

    @classmethod
    def _forward_and_link(cls, ctx, tensors, options):
        """forward() on the tensors' arrays; its outputs as Tensors, linked to
        `ctx` in the graph when a gradient will flow back through them."""
        try:
            outputs = cls.forward(ctx, *[t.data for t in tensors], **options)
        except ShapeError:
            raise  # already names the op and the shapes
        except ValueError as error:
            raise _explain_value_error(cls, tensors, error) from None

        records = cls._links(tensors)
        if type(outputs) is not tuple:  # the common single-output op
            result = Tensor._wrap(outputs, records)
            if records:
                ctx.record(tensors, (result,))
        else:
            result = tuple(Tensor._wrap(output, records) for output in outputs)
            if records:
                ctx.record(tensors, result)
        return result


    @classmethod
    def _links(cls, tensors):
        """True when this op, run on `tensors`, is linked into the graph: gradients
        are being recorded, the op is differentiable, and an input wants one.
        (A replayed step links its ops by this rule too, deepbreadth/replay.py.)"""
        if not (_grad_mode["enabled"] and cls.differentiable):
            return False
        for t in tensors:  # a plain loop: this runs for every op
            if t.requires_grad:
                return True
        return False


def _to_tensors(inputs):
    """Tensors for the positional inputs of an op, all on one device.

    Python numbers become constants with the dtype of a floating tensor
    neighbour, so `x * 2` stays float32 and `x64 * 0.5` stays float64.
    """
    tensors = inputs
    for x in inputs:  # a plain loop: this runs for every op, generators cost more
        if type(x) is not Tensor:
            tensors = _numbers_as_tensors(inputs)
            break
    if len(tensors) > 1:
        _check_one_device(tensors)
    return tensors


def _numbers_as_tensors(inputs):
    """Numbers take the dtype of the first floating tensor (else of the first tensor)."""
    tensors_given = [x for x in inputs if isinstance(x, Tensor)]
    floating = [t for t in tensors_given if t.data.dtype.kind == "f"]
    like = (floating or tensors_given or [None])[0]
    return tuple([x if isinstance(x, Tensor) else as_tensor(x, like=like) for x in inputs])


def _check_one_device(tensors):
    first_type = type(tensors[0].data)
    for t in tensors:
        if type(t.data) is not first_type:
            break
    else:
        return  # one array type, so one device (the cheap test, true almost always)
    on_gpu = [backend.is_gpu_array(t.data) for t in tensors]
    if any(on_gpu) and not all(on_gpu):
        devices = ", ".join(t.device for t in tensors)
        raise BackendError(
            f"an op got tensors on different devices ({devices}); move them to one "
            "device first with .to('cuda') or .to('cpu')"
        )


def _explain_value_error(function, tensors, error):
    """Re-raise NumPy's shape errors with the op's name and the shapes involved."""
    message = str(error)
    if "broadcast" in message or "mismatch" in message or "shape" in message or "align" in message:
        shapes = " and ".join(str(tuple(t.shape)) for t in tensors)
        return ShapeError(f"{function.__name__}: cannot combine shapes {shapes} ({message})")
    return error


# ----------------------------------------------------------------------------
# The backward pass
# ----------------------------------------------------------------------------
def _topological_order(root_nodes):
    """Nodes reachable from the roots, each after every node that consumes it.

    An explicit stack replaces recursion, so a chain of 100,000 ops works.
    Returned in reverse: the roots first, the leaves' consumers last.
    """
    order = []
    visited = set()
    for root in root_nodes:
        if root in visited:
            continue
        visited.add(root)
        stack = [(root, iter(root.inputs))]
        while stack:
            node, children = stack[-1]
            for child in children:
                child_node = child.grad_fn
                if child_node is not None and child_node not in visited:
                    visited.add(child_node)
                    stack.append((child_node, iter(child_node.inputs)))
                    break
            else:
                stack.pop()
                order.append(node)
    order.reverse()
    return order


def _gradient_for(tensor, grad):
    """`grad` made fit for `tensor`: a Tensor of its shape and dtype.

    Undoing broadcasting (summing down to the input's shape) is done here,
    once, for every op. A raw array from a custom backward is wrapped as it is
    (never converted to the default float dtype), and a gradient that a
    mixed-dtype op made wider is cast back, so `.grad` has its tensor's dtype.
    """
    if not isinstance(grad, Tensor):
        # A NumPy array from a custom backward goes to the device of its tensor.
        array = grad if backend.is_gpu_array(grad) else np.asarray(grad)
        grad = Tensor._wrap(backend.to_device(array, tensor.device))
    if grad.shape != tensor.shape:
        grad = grad.sum_to_shape(tensor.shape)
    if grad.data.dtype != tensor.data.dtype:
        grad = grad.astype(tensor.data.dtype)
    return grad


def _add_gradients(total, new):
    """total + new, where total may be None (no gradient yet)."""
    if total is None:
        return new
    if total.requires_grad or new.requires_grad:
        return total + new  # create_graph: the sum is part of the recorded graph
    # Plain gradients are constants: add their arrays, no op to record.
    return Tensor._wrap(total.data + new.data)


def _starting_gradient(tensor, grad):
    if grad is None:
        if tensor.size != 1:
            raise RuntimeError(
                f"backward() on a tensor of shape {tensor.shape} needs a `grad` argument "
                "of the same shape; only a single-element tensor has the implicit "
                "starting gradient 1 (did you mean loss.sum().backward() or loss.mean()?)"
            )
        return Tensor._wrap(backend.array_module(tensor.data).ones(tensor.shape, tensor.dtype))
    if not isinstance(grad, Tensor):
        # An array or a number (NumPy, as users pass it) goes to the tensor's device.
        array = grad if backend.is_gpu_array(grad) else np.asarray(grad)
        grad = Tensor(backend.to_device(array, tensor.device), dtype=tensor.dtype)
    elif grad.device != tensor.device:
        raise BackendError(
            f"backward: grad is a Tensor on {grad.device} but the tensor is on "
            f"{tensor.device}; move it with .to('{tensor.device}')"
        )
    if grad.shape != tensor.shape:
        raise ShapeError(f"backward: grad has shape {grad.shape} but the tensor has shape {tensor.shape}")
    return grad


def backward(tensors, grad_tensors=None, retain_graph=None, create_graph=False, inputs=None):
    """Backpropagate from `tensors`, adding into `.grad` of the leaves.

    With `inputs` (a list of tensors) the gradients of those tensors are
    returned instead, and no `.grad` is touched: that is `deepbreadth.grad`.
    """
    if retain_graph is None:
        # A gradient built with create_graph is differentiated later through
        # this same graph, so its saved values must survive this pass.
        retain_graph = create_graph
    if grad_tensors is None:
        grad_tensors = [None] * len(tensors)
    for tensor in tensors:
        if not tensor.requires_grad:
            raise RuntimeError(
                "backward() on a tensor that does not require grad: none of the tensors it "
                "was computed from has requires_grad=True (or it was computed under no_grad)"
            )
    # Gradients waiting to be passed back, per node and output index.
    pending = {}
    leaf_grads = {}
    roots = []
    for tensor, grad in zip(tensors, grad_tensors):
        grad = _starting_gradient(tensor, grad)
        if tensor.grad_fn is None:
            leaf_grads[tensor] = _add_gradients(leaf_grads.get(tensor), grad)
        else:
            slots = pending.setdefault(tensor.grad_fn, [None] * tensor.grad_fn.num_outputs)
            slots[tensor.output_index] = _add_gradients(slots[tensor.output_index], grad)
            roots.append(tensor.grad_fn)
    wanted = None if inputs is None else {id(t): t for t in inputs}
    captured = {}

    with (enable_grad() if create_graph else no_grad()):
        for node in _topological_order(roots):
            output_grads = pending.pop(node, None)
            if output_grads is None:
                continue
            started = _notify_op_started("backward", node) if _op_observers else None
            output_grads = _finish_output_grads(node, output_grads, wanted, captured)
            input_grads = _call_backward(node, output_grads, create_graph)
            for tensor, grad in zip(node.inputs, input_grads):
                if grad is None or not tensor.requires_grad:
                    continue
                grad = _gradient_for(tensor, grad)
                if tensor.grad_fn is None:
                    leaf_grads[tensor] = _add_gradients(leaf_grads.get(tensor), grad)
                else:
                    slots = pending.setdefault(tensor.grad_fn, [None] * tensor.grad_fn.num_outputs)
                    slots[tensor.output_index] = _add_gradients(slots[tensor.output_index], grad)
            if started is not None:
                _notify_op_finished("backward", node, output_grads, input_grads, started)
            if not retain_graph:
                node.release()

    for leaf, grad in leaf_grads.items():
        if wanted is not None and id(leaf) not in wanted:
            continue  # deepbreadth.grad: a leaf nobody asked for keeps its .grad, runs no hook
        grad = leaf._apply_hooks(grad)
        if wanted is not None:
            captured[id(leaf)] = grad
        else:
            leaf.grad = _add_gradients(leaf.grad, grad)
    if wanted is not None:
        return [captured.get(id(t)) for t in inputs]
    return None


def _finish_output_grads(node, output_grads, wanted, captured):
    """Apply hooks, keep retained grads, capture requested ones, fill in zeros."""
    finished = []
    for index, grad in enumerate(output_grads):
        output = node.output_tensor(index)
        if grad is not None and output is not None:
            grad = output._apply_hooks(grad)
            if wanted is not None:
                if id(output) in wanted:
                    captured[id(output)] = grad
            elif output._retains_grad:  # .grad is filled by backward(), never by grad()
                output.grad = _add_gradients(output.grad, grad)
        if grad is None:
            # An unused output of a multi-output op contributes a zero gradient.
            array = node.output_arrays[index]
            grad = Tensor._wrap(backend.array_module(array).zeros_like(array))
        finished.append(grad)
    return finished


def _call_backward(node, output_grads, create_graph):
    function = node.function
    if node.freed:
        node.saved_tensors  # raises the "backward a second time" error
    if create_graph and function.once_differentiable:
        raise RuntimeError(
            f"{function.__name__} is only once differentiable (its backward is a fused "
            "kernel), so create_graph=True cannot differentiate through it. Compute "
            "higher-order gradients with ops built from differentiable primitives."
        )
    input_grads = function.backward(node, *output_grads)
    if not isinstance(input_grads, tuple):
        input_grads = (input_grads,)
    if len(input_grads) != len(node.inputs):
        raise RuntimeError(
            f"{function.__name__}.backward returned {len(input_grads)} gradients for "
            f"{len(node.inputs)} inputs"
        )
    return input_grads


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False):
    """Gradients of `outputs` with respect to `inputs`, returned, not stored in `.grad`.

    Like torch.autograd.grad. With `create_graph=True` the returned gradients
    are themselves differentiable (for Hessian-vector products).
    """
    outputs = [outputs] if isinstance(outputs, Tensor) else list(outputs)
    single = isinstance(inputs, Tensor)
    inputs = [inputs] if single else list(inputs)
    if grad_outputs is None or isinstance(grad_outputs, Tensor):
        grad_outputs = [grad_outputs] * len(outputs)
    if retain_graph is None:
        retain_graph = create_graph
    results = backward(outputs, grad_outputs, retain_graph=retain_graph,
                       create_graph=create_graph, inputs=inputs)
    return results[0] if single else results
