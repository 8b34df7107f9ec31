"""deepbreadth.viz: DOT text of the computation graph, layer boxes, pictures, the example."""
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import deepbreadth as db
from deepbreadth import viz
from deepbreadth.layers import Dense
from deepbreadth.tracer import l2_norm

REPOSITORY = Path(__file__).resolve().parent.parent
HAS_DOT = shutil.which("dot") is not None


def mlp_loss(traced=True, retain=True):
    """sum(output(hidden(x))**2) through two named Dense layers, after backward."""
    db.set_seed(0)
    hidden, output = Dense(8, activation="relu", name="hidden"), Dense(3, name="output")
    x = np.random.default_rng(0).normal(size=(5, 4)).astype("float32")
    output(hidden(x))
    if traced:
        with db.trace():
            loss = (output(hidden(x)) ** 2).sum()
    else:
        loss = (output(hidden(x)) ** 2).sum()
    loss.backward(retain_graph=retain)
    return loss, hidden, output


def declared_nodes(dot):
    return dict(re.findall(r'^\s*(\w+) \[label="((?:[^"\\]|\\.)*)"', dot, re.MULTILINE))


def edges(dot):
    return re.findall(r"^\s*(\w+) -> (\w+);", dot, re.MULTILINE)


def test_expanded_graph_has_a_node_per_op_and_per_tensor_and_consistent_edges():
    loss, hidden, _ = mlp_loss()
    dot = viz.to_dot(loss, expand_layers=True)
    assert dot.startswith("digraph computation {") and dot.rstrip().endswith("}")
    nodes = declared_nodes(dot)
    op_labels = sorted(label for name, label in nodes.items() if name.startswith("op"))
    assert op_labels == sorted(["DenseBiasActivation", "DenseBiasActivation",
                                "PowScalar", "Sum"])
    # Tensors: x, 4 weights, 3 intermediate results, the loss.
    assert len([name for name in nodes if name.startswith("t")]) == 9
    assert "(5, 4) float32" in dot and "(5, 8) float32" in dot
    for start, end in edges(dot):
        assert start in nodes and end in nodes
    # One edge per tensor an op reads (3 per Dense op: input, kernel, bias; 1 for
    # the power and the sum) and one per tensor an op makes.
    assert len(edges(dot)) == 8 + 4
    assert "subgraph cluster_layer0" in dot and 'label="hidden (Dense)"' in dot


def test_gradient_norms_of_weights_appear_after_backward():
    loss, hidden, _ = mlp_loss()
    dot = viz.to_dot(loss, expand_layers=True)
    expected = f"|grad| {l2_norm([hidden.kernel.grad.data]):.3g}"
    assert f"hidden/kernel\\n(4, 8) float32\\n{expected}" in dot
    # The loss shows its value.
    assert f"value {loss.item():.4g}" in dot


def test_layers_collapse_into_one_box_each():
    loss, _, _ = mlp_loss()
    dot = viz.to_dot(loss)
    nodes = declared_nodes(dot)
    boxes = {name: label for name, label in nodes.items() if name.startswith("layer")}
    assert len(boxes) == 2
    hidden_box = next(label for label in boxes.values() if label.startswith("hidden (Dense)"))
    assert "ops: DenseBiasActivation" in hidden_box and "hidden/bias" in hidden_box
    # Only the ops outside layers stay as op nodes; weights live inside the boxes.
    op_labels = sorted(label for name, label in nodes.items() if name.startswith("op"))
    assert op_labels == ["PowScalar", "Sum"]
    tensor_labels = [label for name, label in nodes.items() if name.startswith("t")]
    assert not any("hidden/kernel" in label for label in tensor_labels)
    # Data flows x -> hidden -> (5, 8) tensor -> output.
    flow = edges(dot)
    hidden_id = next(n for n, label in boxes.items() if label.startswith("hidden"))
    output_id = next(n for n, label in boxes.items() if label.startswith("output"))
    between = [end for start, end in flow if start == hidden_id]
    assert len(between) == 1 and (between[0], output_id) in flow


def test_without_a_trace_layers_are_found_by_their_weights_names():
    loss, _, _ = mlp_loss(traced=False)
    boxes = [label for name, label in declared_nodes(viz.to_dot(loss)).items()
             if name.startswith("layer")]
    assert sorted(label.split("\\n")[0] for label in boxes) == ["hidden", "output"]


def test_a_freed_graph_gives_a_clear_error():
    loss, _, _ = mlp_loss(retain=False)
    with pytest.raises(ValueError, match="retain_graph=True"):
        viz.to_dot(loss)


def test_a_tensor_without_history_is_one_node():
    dot = viz.to_dot(db.tensor([1.0, 2.0]))
    assert len(declared_nodes(dot)) == 1 and edges(dot) == []
    with pytest.raises(TypeError, match="Tensor"):
        viz.to_dot(np.ones(2))


def test_draw_graph_writes_dot_text_without_graphviz(tmp_path):
    loss, _, _ = mlp_loss()
    text = viz.draw_graph(loss, tmp_path / "graph", format="dot")
    assert (tmp_path / "graph.dot").read_text() == text
    with pytest.raises(ValueError, match="format"):
        viz.draw_graph(loss, tmp_path / "graph", format="jpeg")


def test_draw_graph_says_what_to_install_when_dot_is_missing(tmp_path, monkeypatch):
    loss, _, _ = mlp_loss()
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(RuntimeError, match="install graphviz"):
        viz.draw_graph(loss, tmp_path / "graph.svg")
    assert not (tmp_path / "graph.svg").exists()


@pytest.mark.skipif(not HAS_DOT, reason="Graphviz's dot program is not installed")
def test_dot_renders_the_text_to_svg_and_png(tmp_path):
    loss, _, _ = mlp_loss()
    viz.draw_graph(loss, tmp_path / "graph.svg", expand_layers=True)
    svg = (tmp_path / "graph.svg").read_text()
    assert "<svg" in svg and "hidden (Dense)" in svg and "DenseBiasActivation" in svg
    viz.draw_graph(loss, tmp_path / "graph", format="png")
    assert (tmp_path / "graph.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_inside_backprop_example_writes_its_pictures(tmp_path):
    pytest.importorskip("matplotlib")
    result = subprocess.run(
        [sys.executable, str(REPOSITORY / "examples" / "inside_backprop.py"), "--quick",
         "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=300, cwd=REPOSITORY,
        env={**os.environ, "MPLBACKEND": "Agg"})
    assert result.returncode == 0, result.stderr
    graph = tmp_path / ("lstm_graph.png" if HAS_DOT else "lstm_graph.dot")
    assert graph.stat().st_size > 0
    assert (tmp_path / "gradient_flow.png").read_bytes()[:4] == b"\x89PNG"
    assert "backward" in result.stdout and "DenseBiasActivation" in result.stdout
