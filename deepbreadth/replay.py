"""A training step recorded once, then replayed: the same ops without the Python around them.

An eager training step runs a lot of Python that decides the same thing at
every step of a model whose shapes do not change: each layer's call checks its
input and casts its dtype, each op wraps its arrays in Tensors and links them
into the graph, and the backward pass works out the graph's order again and
routes every gradient by dictionary.  In a small model that is a fifth of the
step (the MNIST MLP: about 0.2 of 0.85 ms on one core).  Keras with TensorFlow
traces a training step once into a graph and runs the graph from then on
(tf.function); Chainer's static_graph records the ops of one iteration.  This
module is the small version of that idea:

- `StepRecorder` watches one eager step, as `deepbreadth.trace()` does, and
  writes down each op: its Function, its options, and where each input came
  from: a model input, a target, a weight, or an earlier op's output.
- `RecordedStep.run` replays that step on a new batch: each op's `forward`
  in the recorded order, then each op's `backward` in the reverse order, with
  the values passed from op to op by their position in one list.  It leaves
  the weights' gradients in `.grad`, as `loss.backward()` does.

The ops are the same, called with the same arrays, so a replayed step computes
what the eager step would, to the bit in tests/test_replay.py.  (Where a value
feeds three ops or more, its gradients may be summed in another order than
autograd.backward's, which can change the last bit.)  What a replay
skips is everything outside the ops, so a step is replayed only when nothing
outside them matters (`Model._forward_and_backward` checks):

- every layer is of a class that declares `replays_exactly = True` (its call
  is ops only, with options fixed by its configuration and the input's shape),
  and so is the loss; a subclass must declare it again;
- every input of every op is traced to where it came from.  A tensor made
  outside the ops (a constant a layer builds on the fly, float labels converted to
  integers, a recurrent layer's input dropout mask) ends the recording, and
  the model goes on training eagerly.  (A recurrent layer's zero initial
  states are an op, `ZeroState`, for this reason);
- no hook is registered and no op observer (a trace) is watching: those want
  to see each layer and op run.

Randomness stays random: an op that draws random numbers draws them inside
its `forward` (Dropout draws its mask's seed there), so each replay draws anew.

A loss may read the model's output one way or another depending on its values
(a crossentropy on probabilities switches for good to logits when it sees
some): it then gives the recording a `check`, run on the output before the
loss's ops.  When the check fails, the step is finished eagerly on the
replayed output and the next step is recorded again.
"""
from . import autograd, backend
from .autograd import Node, Tensor, _add_gradients, _gradient_for, no_grad


def replays_exactly(obj):
    """True when the class of `obj` itself (not a base class) declares
    `replays_exactly = True`: a subclass may add Python that a replay skips,
    so it must declare it again."""
    return vars(type(obj)).get("replays_exactly", False) is True


class RecordedOp:
    """One op of a recorded step: what to call, with what, and where its outputs go."""

    def __init__(self, function, options, sources, first_output, output_count, needs_input_grad):
        self.function = function
        self.options = options
        self.sources = sources  # a position in the step's list of values, per input
        self.output_slots = tuple(range(first_output, first_output + output_count))
        # Which inputs wanted a gradient when recorded (a weight, or a value made from one).
        self.needs_input_grad = needs_input_grad


class RecordedStep:
    """A recorded forward pass and loss; `run` replays them and their backward pass.

    The step's values sit in one list: the model's inputs, the targets, the
    weights, then every output of every op in the order they were made.  The
    model's ops come first, then the loss's.
    """

    def __init__(self, ops, model_op_count, input_count, target_count, weights, output_slot,
                 loss_slot, layers, check):
        self.ops = ops
        self.model_ops, self.loss_ops = ops[:model_op_count], ops[model_op_count:]
        self.weights = weights
        self.weights_need_grad = [weight.requires_grad for weight in weights]
        self.first_weight_slot = input_count + target_count
        self.output_slot = output_slot
        self.loss_slot = loss_slot
        self.layers = layers  # checked for hooks before each replay
        # check(model output) -> False when the loss would not read the output
        # as it did when recorded (Loss.replay_check); None: no check needed.
        self.check = check
        self.value_count = self.first_weight_slot + len(weights) + sum(
            len(op.output_slots) for op in ops)
        self._starting_grad = None  # d loss / d loss = 1, made at the first run

    def still_fits(self):
        """False when a hook has been registered on a layer since, or a weight's
        requires_grad was changed by hand (the layers' `trainable` makes a new
        recording by itself): the step must then run eagerly."""
        return (not any(layer._has_hooks() for layer in self.layers)
                and [weight.requires_grad for weight in self.weights] == self.weights_need_grad)

    def run(self, inputs, targets):
        """(model output, loss) for this batch, with the weights' gradients
        added into their `.grad`, as an eager forward, loss and backward would.

        (model output, None) when `check` says the loss would now read the
        output another way: the output is then linked into the graph as after
        an eager forward pass, for the caller to finish the step eagerly.
        """
        values = [None] * self.value_count
        values[:self.first_weight_slot] = list(inputs) + list(targets)
        values[self.first_weight_slot:self.first_weight_slot + len(self.weights)] = self.weights
        nodes = self._forward(self.model_ops, values)
        output = values[self.output_slot]
        if self.check is not None and not self.check(output):
            _link(self.model_ops, nodes, values)
            return output, None
        nodes += self._forward(self.loss_ops, values)
        self._backward(values, nodes)
        return output, values[self.loss_slot]

    @staticmethod
    def _forward(ops, values):
        """Each op's forward, in the recorded order; returns the ops' contexts.

        The outputs are Tensors that are not linked into the graph (the
        backward below routes gradients by position instead), so each op is
        its Function's forward and little else.  Its context is told which
        inputs want a gradient, as linking it would have told it.
        """
        nodes = []
        for op in ops:
            node = Node(op.function)
            node.needs_input_grad = op.needs_input_grad
            produced = op.function.forward(node, *[values[slot].data for slot in op.sources],
                                           **op.options)
            if type(produced) is tuple:
                for slot, output in zip(op.output_slots, produced):
                    values[slot] = Tensor._wrap(output)
            else:
                values[op.output_slots[0]] = Tensor._wrap(produced)
            nodes.append(node)
        return nodes

    def _backward(self, values, nodes):
        """Each op's backward, from the loss back, as autograd.backward runs them.

        The reverse of the forward order is an order autograd.backward may
        take too: every op comes after all the ops that used its outputs.  A
        gradient waits in `grads`, at the position of the value it belongs to.
        """
        grads = [None] * self.value_count
        grads[self.loss_slot] = self._gradient_of_loss(values[self.loss_slot])
        with no_grad():
            for op, node in zip(reversed(self.ops), reversed(nodes)):
                if not any(op.needs_input_grad):
                    continue  # no input of this op wants a gradient
                output_grads = [grads[slot] for slot in op.output_slots]
                if all(grad is None for grad in output_grads):
                    continue  # no gradient reached this op
                output_grads = [_zeros_if_none(grad, values[slot].data)
                                for grad, slot in zip(output_grads, op.output_slots)]
                input_grads = op.function.backward(node, *output_grads)
                if type(input_grads) is not tuple:
                    input_grads = (input_grads,)
                for slot, wanted, grad in zip(op.sources, op.needs_input_grad, input_grads):
                    if grad is not None and wanted:
                        grads[slot] = _add_gradients(grads[slot], _gradient_for(values[slot], grad))
                node.release()
        for index, weight in enumerate(self.weights):
            grad = grads[self.first_weight_slot + index]
            if grad is not None:
                weight.grad = _add_gradients(weight.grad, weight._apply_hooks(grad))

    def _gradient_of_loss(self, loss):
        """The backward pass's first gradient, d loss / d loss = 1, made once: the
        loss has the same shape, dtype and device at every replay.  Read-only,
        so that no backward can change it for the next step."""
        if self._starting_grad is None:
            ones = backend.array_module(loss.data).ones(loss.shape, loss.dtype)
            if hasattr(ones, "setflags"):  # NumPy; CuPy arrays have no read-only flag
                ones.setflags(write=False)
            self._starting_grad = Tensor._wrap(ones)
        return self._starting_grad


def _link(ops, nodes, values):
    """Link the replayed ops' outputs into the graph, as eager ops link theirs
    (`Function._links`), so that a loss computed from them eagerly can run
    backward through them."""
    for op, node in zip(ops, nodes):
        inputs = tuple([values[slot] for slot in op.sources])
        if op.function._links(inputs):
            outputs = tuple([values[slot] for slot in op.output_slots])
            for output in outputs:
                output.requires_grad = True  # record() takes it back from integer outputs
            node.record(inputs, outputs)


def _zeros_if_none(grad, array):
    """An unused output of a multi-output op contributes a zero gradient (as in autograd)."""
    if grad is not None:
        return grad
    return Tensor._wrap(backend.array_module(array).zeros_like(array))


class StepRecorder:
    """Watches the ops of one eager forward pass and loss (an op observer, as a
    trace is), and makes a RecordedStep of them, or says why it cannot.

        with StepRecorder(inputs, targets, weights) as recorder:
            outputs = model(inputs, training=True)
            recorder.model_done()
            loss = loss_fn(targets, outputs)
        recording = recorder.recording(outputs, loss, layers)   # None: cannot replay
    """

    def __init__(self, inputs, targets, weights):
        self.input_count = len(inputs)
        self.target_count = len(targets)
        self.weights = list(weights)
        self.ops = []
        self.model_op_count = None  # set by model_done()
        self.why_not = None  # why the step cannot be replayed, once known
        # Where each value the ops may read sits in the step's list of values.
        # Inputs and targets are found by their arrays (the loss wraps the
        # targets' array in a Tensor of its own); weights and op outputs by
        # the Tensor itself, since a gradient goes to that Tensor.  The objects
        # are kept in the dicts so that their ids stay theirs.
        self._array_slots = {}
        for slot, tensor in enumerate(list(inputs) + list(targets)):
            self._array_slots[id(tensor.data)] = (slot, tensor.data)
        self._tensor_slots = {}
        self._next_slot = self.input_count + self.target_count
        for weight in self.weights:
            self._tensor_slots[id(weight)] = (self._take_slot(), weight)

    def _take_slot(self):
        slot = self._next_slot
        self._next_slot += 1
        return slot

    def model_done(self):
        """The model's output is made: the ops from here on are the loss's."""
        self.model_op_count = len(self.ops)

    def __enter__(self):
        autograd._op_observers.append(self)
        return self

    def __exit__(self, *exc_info):
        autograd._op_observers.remove(self)

    # -- the op observer's two methods (see autograd._op_observers) -------------------
    def op_started(self, phase, node):
        pass

    def op_finished(self, phase, node, received, produced, seconds):
        if phase != "forward" or self.why_not is not None:
            return
        name = node.function.__name__
        if not autograd.is_grad_enabled():
            self.why_not = f"{name} ran under no_grad"
            return
        sources = []
        for position, tensor in enumerate(received):
            slot = self._slot_of(tensor)
            if slot is None:
                self.why_not = (f"input {position} of {name} (shape {tuple(tensor.shape)}) was "
                                "made outside the ops")
                return
            sources.append(slot)
        outputs = produced if type(produced) is tuple else (produced,)
        first_output = self._next_slot
        for output in outputs:
            self._tensor_slots[id(output)] = (self._take_slot(), output)
        # An op none of whose inputs wants a gradient is not linked, and its
        # context keeps the class default ().
        needs_input_grad = node.needs_input_grad or (False,) * len(sources)
        self.ops.append(RecordedOp(node.function, node.apply_options, tuple(sources),
                                   first_output, len(outputs), needs_input_grad))

    def _slot_of(self, tensor):
        found = self._tensor_slots.get(id(tensor))
        if found is not None and found[1] is tensor:
            return found[0]
        found = self._array_slots.get(id(tensor.data))
        if found is not None and found[1] is tensor.data and not tensor.requires_grad:
            return found[0]
        return None

    def recording(self, output, loss, layers, check=None):
        """The RecordedStep, or None (with the reason in `why_not`); `check`:
        see RecordedStep."""
        if self.why_not is None:
            output_slot, loss_slot = self._output_slot(output), self._output_slot(loss)
            if output_slot is None or loss_slot is None:
                self.why_not = "the model's output or the loss is not the output of an op"
            elif loss.size != 1:
                self.why_not = f"the loss has shape {tuple(loss.shape)}, not one number"
        if self.why_not is not None:
            return None
        model_op_count = len(self.ops) if self.model_op_count is None else self.model_op_count
        return RecordedStep(self.ops, model_op_count, self.input_count, self.target_count,
                            self.weights, output_slot, loss_slot, list(layers), check)

    def _output_slot(self, tensor):
        """The slot of `tensor` if an op made it, else None."""
        slot = self._slot_of(tensor) if type(tensor) is Tensor else None
        first_op_output = self.input_count + self.target_count + len(self.weights)
        return slot if slot is not None and slot >= first_op_output else None
