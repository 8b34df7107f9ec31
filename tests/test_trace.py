"""deepbreadth.trace(): which ops ran, in which order, on which shapes, at what cost."""
import json
import math

import numpy as np
import pytest

import deepbreadth as db
from deepbreadth import autograd, backend
from deepbreadth.layers import LSTM, Conv2D, Dense
from deepbreadth.models import Sequential
from deepbreadth.tracer import backward_flops, forward_flops, running_layers, trace

BATCH, FEATURES, HIDDEN, CLASSES = 16, 4, 8, 3


def two_layer_mlp():
    db.set_seed(0)
    hidden = Dense(HIDDEN, activation="relu", name="hidden")
    output = Dense(CLASSES, name="output")
    x = np.random.default_rng(0).normal(size=(BATCH, FEATURES)).astype("float32")
    output(hidden(x))  # build the weights outside the trace
    return hidden, output, x


@pytest.fixture
def traced_step():
    """The trace of forward + backward of sum(mlp(x)**2), and the model's output."""
    hidden, output, x = two_layer_mlp()
    with trace() as recorded:
        out = output(hidden(x))
        loss = (out * out).sum()
        loss.backward()
    return recorded, out


def summary(records):
    return [(r.op, r.input_shapes, r.output_shapes) for r in records]


def test_forward_ops_of_a_two_layer_mlp_in_order_with_shapes(traced_step):
    recorded, _ = traced_step
    assert summary(recorded.phase("forward")) == [
        # A Dense layer is one op: its product, bias and activation.
        ("DenseBiasActivation", [(BATCH, FEATURES), (FEATURES, HIDDEN), (HIDDEN,)],
         [(BATCH, HIDDEN)]),
        ("DenseBiasActivation", [(BATCH, HIDDEN), (HIDDEN, CLASSES), (CLASSES,)],
         [(BATCH, CLASSES)]),
        ("Mul", [(BATCH, CLASSES), (BATCH, CLASSES)], [(BATCH, CLASSES)]),
        ("Sum", [(BATCH, CLASSES)], [()]),
    ]
    layers = [(r.layer, r.layer_type) for r in recorded.phase("forward")]
    assert layers == [("hidden", "Dense"), ("output", "Dense")] + [(None, None)] * 2


def test_backward_visits_the_same_ops_in_reverse_after_the_forward(traced_step):
    recorded, _ = traced_step
    phases = [r.phase for r in recorded.ops]
    assert phases == ["forward"] * 4 + ["backward"] * 4
    assert summary(recorded.phase("backward")) == summary(recorded.phase("forward"))[::-1]
    # The backward knows the layers too (the trace wrote them on the graph).
    assert [r.layer for r in recorded.phase("backward")][-2:] == ["output", "hidden"]
    assert [r.index for r in recorded.ops] == list(range(8))


def test_backward_records_the_norm_of_the_gradient_arriving_at_each_op(traced_step):
    recorded, out = traced_step
    by_op = {r.op: r for r in recorded.phase("backward")}
    assert by_op["Sum"].grad_norm == pytest.approx(1.0)  # d loss / d loss
    assert by_op["Mul"].grad_norm == pytest.approx(math.sqrt(BATCH * CLASSES))  # ones
    output_layer = recorded.phase("backward")[2]
    assert (output_layer.op, output_layer.layer) == ("DenseBiasActivation", "output")
    # d sum(out^2) / d out = 2 out
    assert output_layer.grad_norm == pytest.approx(2 * np.linalg.norm(out.numpy()), rel=1e-5)
    assert all(r.grad_norm is None for r in recorded.phase("forward"))


def test_flops_bytes_and_times(traced_step):
    recorded, _ = traced_step
    forward, backward = recorded.phase("forward"), recorded.phase("backward")[::-1]
    hidden_bias_relu = 2 * BATCH * HIDDEN                # bias add + relu
    output_bias = BATCH * CLASSES                        # bias add, linear
    assert forward[0].flops == 2 * BATCH * FEATURES * HIDDEN + hidden_bias_relu
    assert forward[1].flops == 2 * BATCH * HIDDEN * CLASSES + output_bias
    # The first layer's input x wants no gradient: its backward is one product.
    assert backward[0].flops == forward[0].flops
    # The output layer's two products (kernel and input); its bias add once.
    assert backward[1].flops == 2 * (2 * BATCH * HIDDEN * CLASSES) + output_bias
    assert forward[0].bytes == 4 * (BATCH * FEATURES + FEATURES * HIDDEN + HIDDEN
                                    + BATCH * HIDDEN)
    assert forward[0].dtype == "float32"
    assert all(r.seconds > 0 for r in recorded.ops)


def test_kernel_names_are_recorded_per_op(traced_step):
    recorded, _ = traced_step
    kernel_set = backend.kernels_for(np.zeros(1)).__name__.rsplit(".", 1)[-1]
    forward, backward = recorded.phase("forward"), recorded.phase("backward")
    assert forward[0].kernels == [f"{kernel_set}.dense_bias_activation_forward"]
    assert backward[-1].kernels == [f"{kernel_set}.dense_bias_activation_backward"]
    assert forward[2].kernels == []  # Mul: an array call, no named kernel


def test_table_and_json(traced_step):
    recorded, _ = traced_step
    table = recorded.table()
    lines = table.splitlines()
    assert lines[0].split()[:4] == ["#", "phase", "op", "layer"]
    assert "DenseBiasActivation" in table and "16x4 4x8 8" in table
    assert lines[-2].startswith("forward: 4 ops") and lines[-1].startswith("backward: 4 ops")
    document = json.loads(recorded.to_json())
    assert len(document["ops"]) == 8
    assert document["ops"][0]["op"] == "DenseBiasActivation"
    assert document["ops"][0]["input_shapes"] == [[BATCH, FEATURES], [FEATURES, HIDDEN],
                                                  [HIDDEN]]


def test_a_matrix_product_counts_one_product_per_gradient_it_returns():
    rng = np.random.default_rng(1)
    x = db.Tensor(rng.normal(size=(BATCH, FEATURES)).astype("float32"))
    w = db.Tensor(rng.normal(size=(FEATURES, HIDDEN)).astype("float32"), requires_grad=True)
    with trace() as recorded:
        (x @ w).sum().backward()
    forward = recorded.phase("forward")[0]
    backward = recorded.phase("backward")[-1]
    assert (forward.op, backward.op) == ("MatMul", "MatMul")
    assert forward.flops == 2 * BATCH * FEATURES * HIDDEN
    assert backward.flops == forward.flops  # x wants no gradient: only x.T @ grad
    assert backward.kernels == []  # an array call, no named kernel


def test_the_trace_stops_watching_when_the_block_ends():
    real_kernel_lookup = backend.kernel
    with trace() as recorded:
        assert autograd._op_observers == [recorded]
        assert backend.kernel is not real_kernel_lookup
    assert autograd._op_observers == []
    assert backend.kernel is real_kernel_lookup
    (db.tensor([1.0, 2.0], requires_grad=True) * 3).sum()
    assert recorded.ops == []


def test_public_name_and_ops_without_layers():
    x = db.tensor([1.0, 2.0, 3.0], requires_grad=True)
    with db.trace() as recorded:
        (x.exp() * x).sum().backward()
    assert [r.op for r in recorded.ops] == ["Exp", "Mul", "Sum", "Sum", "Mul", "Exp"]
    assert {r.layer for r in recorded.ops} == {None}


def test_nested_layers_are_read_from_the_call_stack():
    model = Sequential([Dense(2, name="inner_dense")], name="outer_model")
    x = np.ones((1, 3), dtype="float32")
    model(x)
    with trace() as recorded:
        out = model(x)
    assert out.grad_fn.layer_path == (("outer_model", "Sequential"), ("inner_dense", "Dense"))
    assert recorded.ops[0].layer == "inner_dense"
    assert running_layers() == ()


def test_flop_formulas_for_convolution_and_recurrences():
    db.set_seed(0)
    conv = Conv2D(5, 3, activation="relu")
    x = np.ones((2, 8, 8, 3), dtype="float32")
    conv(x)
    with trace() as recorded:
        conv(x)
    convolution = recorded.ops[0]
    assert convolution.op == "Convolution"
    # The product, plus the fused bias add and relu (one FLOP each per output).
    assert convolution.flops == 2 * (2 * 6 * 6 * 5) * (3 * 3 * 3) + 2 * (2 * 6 * 6 * 5)

    plain = Conv2D(5, 3, use_bias=False)
    plain(x)
    with trace() as recorded:
        plain(x)
    assert recorded.ops[0].op == "Convolution"
    assert recorded.ops[0].flops == 2 * (2 * 6 * 6 * 5) * (3 * 3 * 3)

    lstm = LSTM(4)
    sequence = np.ones((2, 7, 3), dtype="float32")
    lstm(sequence)
    with trace() as recorded:
        lstm(sequence)
    (lstm_record,) = [r for r in recorded.ops if r.op == "LSTMSequence"]
    per_step = 2 * (3 + 4) * 16 + 4 * 16
    assert lstm_record.flops == 2 * 7 * per_step


def test_data_movement_ops_cost_no_flops():
    shapes_in, shapes_out = [(4, 6)], [(6, 4)]
    assert forward_flops("Transpose", None, shapes_in, shapes_out) == 0
    assert backward_flops("Reshape", None, shapes_in, shapes_out) == 0
    assert forward_flops("SomeNewElementwiseOp", None, shapes_in, shapes_out) == 24
