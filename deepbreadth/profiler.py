"""Where does a training step spend its time? `deepbreadth.profile(model, x, y)`.

    report = deepbreadth.profile(model, x_batch, y_batch, loss="sparse_categorical_crossentropy")
    print(report.table())
    report.as_dict()["conv2d"]["forward_gflops_per_second"]

The profiler runs one training step (forward, loss, backward; no weight
update) inside `deepbreadth.trace()` a few times and adds up the ops of each
layer: time, FLOPs and the rate of work (GFLOP/s), for the forward and the
backward pass, with the names of the backend kernels the layer's ops called
(e.g. 'cpu.conv2d_forward'). The ops of the loss form a row of their own.

- Time is the sum of the layer's op times, so the Python code of the layer
  between ops (argument checks, reshapes of Python tuples) is not in it.
- Each row keeps the fastest of the `repeats` runs: the other runs differ
  only by what else the machine was doing. A first, untimed step builds the
  model and compiles the Numba kernels.
- FLOPs come from the trace's formulas (see `deepbreadth.tracer`).
"""
from dataclasses import asdict, dataclass, field

from . import losses
from .tracer import format_count, format_seconds, trace

LOSS_ROW = "(loss)"


@dataclass
class LayerProfile:
    """The cost of one layer (or of the loss) in one training step."""

    layer: str
    layer_type: str
    forward_seconds: float = 0.0
    backward_seconds: float = 0.0
    forward_flops: int = 0
    backward_flops: int = 0
    ops: list = field(default_factory=list)       # the layer's forward ops, in order
    kernels: list = field(default_factory=list)   # kernels its ops called, both phases

    @property
    def forward_gflops_per_second(self):
        return _rate(self.forward_flops, self.forward_seconds)

    @property
    def backward_gflops_per_second(self):
        return _rate(self.backward_flops, self.backward_seconds)

    def as_dict(self):
        return {**asdict(self),
                "forward_gflops_per_second": self.forward_gflops_per_second,
                "backward_gflops_per_second": self.backward_gflops_per_second}


def _rate(flops, seconds):
    return flops / seconds / 1e9 if seconds > 0 else 0.0


class Profile:
    """The per-layer rows of `profile()`: `.rows`, `.as_dict()`, `.table()`."""

    def __init__(self, rows):
        self.rows = rows

    def as_dict(self):
        """{layer name: {'forward_seconds': ..., 'forward_flops': ..., ...}}."""
        return {row.layer: row.as_dict() for row in self.rows}

    def table(self):
        header = ("layer", "type", "fwd time", "fwd FLOPs", "fwd GFLOP/s",
                  "bwd time", "bwd FLOPs", "bwd GFLOP/s", "kernels")
        lines = [header]
        for row in self.rows:
            lines.append((row.layer, row.layer_type, format_seconds(row.forward_seconds),
                          format_count(row.forward_flops), f"{row.forward_gflops_per_second:.2f}",
                          format_seconds(row.backward_seconds), format_count(row.backward_flops),
                          f"{row.backward_gflops_per_second:.2f}", " ".join(row.kernels)))
        widths = [max(len(line[column]) for line in lines) for column in range(len(header))]
        text = ["  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip()
                for line in lines]
        text.insert(1, "-" * len(max(text, key=len)))
        return "\n".join(text)

    def __repr__(self):
        return self.table()


# ----------------------------------------------------------------------------
# Running and measuring
# ----------------------------------------------------------------------------
def _loss_function(model, loss):
    if loss is not None:
        return losses.get(loss)
    compiled = getattr(model, "loss", None)
    if compiled is None:
        raise ValueError(
            f"profile: model '{model.name}' has no compiled loss; pass loss=... (e.g. "
            "loss='sparse_categorical_crossentropy') or compile the model first"
        )
    return compiled


def _training_step(model, x, y, loss_function):
    """Forward, loss, backward: the part of a training step made of ops."""
    loss = loss_function(y, model(x, training=True))
    loss.backward()


def _rows_of(recorded, loss_type):
    """One LayerProfile per layer, in the order the layers ran forward."""
    rows = {}
    for record in recorded.ops:
        name = record.layer or LOSS_ROW
        row = rows.get(name)
        if row is None:
            row = rows[name] = LayerProfile(name, record.layer_type or loss_type)
        if record.phase == "forward":
            row.forward_seconds += record.seconds
            row.forward_flops += record.flops
            row.ops.append(record.op)
        else:
            row.backward_seconds += record.seconds
            row.backward_flops += record.flops
        row.kernels += [kernel for kernel in record.kernels if kernel not in row.kernels]
    return list(rows.values())


def _fastest(runs):
    """Rows of the first run, with each layer's fastest time over all runs."""
    rows = runs[0]
    for other in runs[1:]:
        for row, again in zip(rows, other):
            row.forward_seconds = min(row.forward_seconds, again.forward_seconds)
            row.backward_seconds = min(row.backward_seconds, again.backward_seconds)
    return rows


def profile(model, x, y, loss=None, repeats=3):
    """Time, FLOPs and GFLOP/s per layer of one training step on (x, y).

    `model` is a model or a layer; `loss` a loss name or object (default: the
    model's compiled loss). The weights are not changed, and each weight's
    `.grad` is left as it was. Returns a `Profile`.
    """
    if repeats < 1:
        raise ValueError(f"profile: repeats must be at least 1, got {repeats}")
    loss_function = _loss_function(model, loss)
    # The steps add into .grad; put back what was there (None for new weights).
    grads_before = {id(weight): weight.grad for weight in model.weights}
    runs = []
    try:
        _training_step(model, x, y, loss_function)  # builds the model, compiles kernels
        for _ in range(repeats):
            with trace() as recorded:
                _training_step(model, x, y, loss_function)
            runs.append(_rows_of(recorded, type(loss_function).__name__))
    finally:
        for weight in model.weights:
            weight.grad = grads_before.get(id(weight))
    return Profile(_fastest(runs))
