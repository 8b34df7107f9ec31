"""Pictures of the computation graph behind a tensor.

    with deepbreadth.trace():                 # optional: exact layer boxes
        loss = loss_function(y, model(x))
    loss.backward(retain_graph=True)          # keep the graph, to draw it with gradients
    deepbreadth.viz.draw_graph(loss, "graph.svg")

The picture has one node per op (a box named after its Function) and one per
tensor (shape, dtype, and the L2 norm of its gradient once backward has run:
`.grad` of the leaves, and of intermediate tensors that called
`retain_grad()`). Arrows follow the forward pass, from inputs to outputs;
backward sends gradients against them.

Layers collapse into one box each, listing the layer's weights inside;
`expand_layers=True` draws every op, grouped in a frame per layer. Which op
belongs to which layer is written on the graph by `deepbreadth.trace()` when
the forward ran inside one (the layer whose call was running, read from the
Python call stack); without a trace it is guessed from the weights an op
reads (a weight is named 'layer_name/weight_name'), so an op that reads no
weight, such as an activation applied after the bias, is drawn outside.

`to_dot` gives the Graphviz DOT text and needs nothing installed;
`draw_graph` also writes SVG, PNG or PDF through Graphviz's `dot` program.
"""
import os
import shutil
import subprocess

from .autograd import Tensor
from .datasets.atomic import atomic_output
from .tracer import l2_norm, layer_of

PICTURE_FORMATS = ("svg", "png", "pdf")

# Colours: parameters blue, other inputs grey, ops yellow, layers green.
PARAMETER_COLOUR = "#dae8fc"
INPUT_COLOUR = "#eeeeee"
OP_COLOUR = "#fff2cc"
LAYER_COLOUR = "#d5e8d4"


# ----------------------------------------------------------------------------
# Walking the graph
# ----------------------------------------------------------------------------
class _Graph:
    """The ops behind a tensor and the tensors they read, in the order first met."""

    def __init__(self, root):
        self.root = root
        self.ops = []          # graph nodes (autograd.Node)
        self.tensors = [root]  # every tensor drawn: the root and every op input
        self.consumers = {}    # id(tensor) -> ops that read it
        self._walk()

    def _walk(self):
        seen_tensors = {id(self.root)}
        seen_ops = set()
        stack = [self.root.grad_fn] if self.root.grad_fn is not None else []
        while stack:  # an explicit stack, as in backward: deep graphs need no recursion
            op = stack.pop()
            if op in seen_ops:
                continue
            seen_ops.add(op)
            _check_not_freed(op)
            self.ops.append(op)
            for tensor in op.inputs:
                self.consumers.setdefault(id(tensor), []).append(op)
                if id(tensor) not in seen_tensors:
                    seen_tensors.add(id(tensor))
                    self.tensors.append(tensor)
                if tensor.grad_fn is not None:
                    stack.append(tensor.grad_fn)


def _check_not_freed(op):
    if op.freed:
        raise ValueError(
            f"the graph behind this tensor was freed by backward() (at op "
            f"{op.function.__name__}), so it cannot be drawn. Draw it before backward, "
            "or call backward(retain_graph=True) to keep it and see the gradients too."
        )


# ----------------------------------------------------------------------------
# Which layer owns each op and tensor
# ----------------------------------------------------------------------------
def _op_layers(graph):
    """id(op) -> (layer name, class name or None), for ops inside a layer."""
    owners = {}
    for op in graph.ops:
        layer = layer_of(op)
        if layer is not None:
            owners[id(op)] = layer
    return owners


def _tensor_layer(tensor, graph, op_layers):
    """The layer a tensor lies inside, or None when it passes between layers.

    A weight (named 'layer/...') lies inside its layer when only that layer's
    ops read it; an intermediate result lies inside a layer when that layer's
    ops both make it and are its only readers. The root, model inputs and the
    tensors that flow from one layer to the next stay outside.
    """
    readers = graph.consumers.get(id(tensor), [])
    if not readers:
        return None
    reader_layers = {op_layers.get(id(op)) for op in readers}
    if len(reader_layers) != 1:
        return None
    (layer,) = reader_layers
    if layer is None:
        return None
    if tensor.grad_fn is None:
        is_its_weight = bool(tensor.name) and tensor.name.rsplit("/", 1)[0] == layer[0]
        return layer if is_its_weight else None
    return layer if op_layers.get(id(tensor.grad_fn)) == layer else None


# ----------------------------------------------------------------------------
# Labels
# ----------------------------------------------------------------------------
def _quote(text):
    """A DOT string literal: backslashes and quotes escaped, newlines as \\n."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def _grad_norm_text(tensor):
    if tensor.grad is None:
        return None
    return f"|grad| {l2_norm([tensor.grad.data]):.3g}"


def _tensor_text(tensor):
    """One line per fact: name, shape and dtype, value (of a scalar), gradient norm."""
    lines = [tensor.name] if tensor.name else []
    lines.append(f"{tuple(tensor.shape)} {tensor.dtype}")
    if tensor.size == 1 and tensor.dtype.kind == "f":
        lines.append(f"value {tensor.item():.4g}")
    grad = _grad_norm_text(tensor)
    if grad:
        lines.append(grad)
    return "\n".join(lines)


def _tensor_style(tensor, graph):
    if tensor is graph.root:
        return "style=\"rounded,bold\""
    if tensor.grad_fn is None:
        colour = PARAMETER_COLOUR if tensor.requires_grad else INPUT_COLOUR
        return f'style="rounded,filled", fillcolor="{colour}"'
    return 'style="rounded"'


def _layer_title(layer):
    name, class_name = layer
    return f"{name} ({class_name})" if class_name else name


# ----------------------------------------------------------------------------
# DOT text
# ----------------------------------------------------------------------------
class _DotWriter:
    """Assigns each op, tensor and collapsed layer a DOT id and writes the lines."""

    def __init__(self, graph, expand_layers):
        self.graph = graph
        self.expand_layers = expand_layers
        self.op_layers = _op_layers(graph)
        self.tensor_layers = {id(t): _tensor_layer(t, graph, self.op_layers) for t in graph.tensors}
        self.layer_ids = {}
        for layer in list(self.op_layers.values()):
            self.layer_ids.setdefault(layer, f"layer{len(self.layer_ids)}")
        self.op_ids = {id(op): f"op{n}" for n, op in enumerate(graph.ops)}
        self.tensor_ids = {id(t): f"t{n}" for n, t in enumerate(graph.tensors)}

    # Where an op or tensor is drawn: its own node, or its collapsed layer's box.
    def op_target(self, op):
        layer = self.op_layers.get(id(op))
        if layer is not None and not self.expand_layers:
            return self.layer_ids[layer]
        return self.op_ids[id(op)]

    def tensor_target(self, tensor):
        layer = self.tensor_layers[id(tensor)]
        if layer is not None and not self.expand_layers:
            return self.layer_ids[layer]
        return self.tensor_ids[id(tensor)]

    def write(self):
        lines = ["digraph computation {", "  rankdir=TB;",
                 '  graph [fontname="Helvetica"];',
                 '  node [fontname="Helvetica", fontsize=10, shape=box];']
        by_layer = {layer: [] for layer in self.layer_ids}
        outside = by_layer.setdefault(None, [])
        for tensor in self.graph.tensors:
            by_layer[self.tensor_layers[id(tensor)]].append(self._tensor_line(tensor))
        for op in self.graph.ops:
            by_layer[self.op_layers.get(id(op))].append(self._op_line(op))
        lines += ["  " + line for line in outside]
        for layer, layer_id in self.layer_ids.items():
            if self.expand_layers:
                lines.append(f"  subgraph cluster_{layer_id} {{")
                lines.append(f'    label={_quote(_layer_title(layer))}; style="rounded,filled"; '
                             f'fillcolor="{LAYER_COLOUR}";')
                lines += ["    " + line for line in by_layer[layer]]
                lines.append("  }")
            else:
                lines.append("  " + self._layer_box_line(layer, layer_id))
        lines += ["  " + line for line in self._edge_lines()]
        lines.append("}")
        return "\n".join(lines) + "\n"

    def _tensor_line(self, tensor):
        return (f"{self.tensor_ids[id(tensor)]} [label={_quote(_tensor_text(tensor))}, "
                f"{_tensor_style(tensor, self.graph)}];")

    def _op_line(self, op):
        return (f"{self.op_ids[id(op)]} [label={_quote(op.function.__name__)}, "
                f'style=filled, fillcolor="{OP_COLOUR}"];')

    def _layer_box_line(self, layer, layer_id):
        """A collapsed layer: its title, its ops, and its weights with their gradients."""
        ops = [op.function.__name__ for op in self.graph.ops if self.op_layers.get(id(op)) == layer]
        weights = [t for t in self.graph.tensors
                   if t.grad_fn is None and self.tensor_layers[id(t)] == layer]
        lines = [_layer_title(layer), "ops: " + ", ".join(reversed(ops))]
        for weight in weights:
            lines.append(_tensor_text(weight).replace("\n", "  "))
        return (f"{layer_id} [label={_quote(chr(10).join(lines))}, "
                f'style="filled,bold", fillcolor="{LAYER_COLOUR}"];')

    def _edge_lines(self):
        """Tensor -> op that reads it, op -> tensor it made; once each, no loops."""
        edges = []
        for op in reversed(self.graph.ops):  # roughly in forward order
            for tensor in op.inputs:
                edges.append((self.tensor_target(tensor), self.op_target(op)))
                if tensor.grad_fn is not None:
                    edges.append((self.op_target(tensor.grad_fn), self.tensor_target(tensor)))
        root = self.graph.root
        if root.grad_fn is not None:
            edges.append((self.op_target(root.grad_fn), self.tensor_target(root)))
        unique = dict.fromkeys(edge for edge in edges if edge[0] != edge[1])
        return [f"{start} -> {end};" for start, end in unique]


def to_dot(tensor, expand_layers=False):
    """The Graphviz DOT text of the computation graph behind `tensor`."""
    if not isinstance(tensor, Tensor):
        raise TypeError(f"to_dot draws the graph behind a Tensor, got {type(tensor).__name__}")
    return _DotWriter(_Graph(tensor), expand_layers).write()


# ----------------------------------------------------------------------------
# Files
# ----------------------------------------------------------------------------
def _with_suffix(path, format):
    path = os.fspath(path)
    return path if os.path.splitext(path)[1] else f"{path}.{format}"


def render_dot(dot_text, format):
    """The picture (bytes) that Graphviz's `dot` program makes of `dot_text`."""
    program = shutil.which("dot")
    if program is None:
        raise RuntimeError(
            f"drawing {format.upper()} needs Graphviz's 'dot' program, which is not on the "
            "PATH. Install Graphviz (apt-get install graphviz, brew install graphviz, or "
            "conda install graphviz), or use format='dot' / to_dot() for the text alone."
        )
    result = subprocess.run([program, f"-T{format}"], input=dot_text.encode(),
                            capture_output=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"dot failed: {result.stderr.decode(errors='replace').strip()}")
    return result.stdout


def draw_graph(tensor, path=None, format="svg", expand_layers=False):
    """Draw the computation graph behind `tensor`; returns its DOT text.

    With `path`, also write the picture there ('.svg', '.png' or '.pdf' is
    added when the path has no suffix), or the DOT text with format='dot'.
    The file is complete or absent, never half-written.
    """
    if format not in PICTURE_FORMATS + ("dot",):
        raise ValueError(f"format must be one of {PICTURE_FORMATS + ('dot',)}, got {format!r}")
    dot_text = to_dot(tensor, expand_layers=expand_layers)
    if path is not None:
        content = dot_text.encode() if format == "dot" else render_dot(dot_text, format)
        with atomic_output(_with_suffix(path, format)) as file:
            file.write(content)
    return dot_text
