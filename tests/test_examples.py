"""Each example runs end to end in --quick mode and reports sensible numbers.

Every example is run as a user runs it, `python examples/NAME.py --quick
--out DIR`, in a subprocess, and its results JSON is checked: the loss went
down from the untrained model's first batch, accuracy is well above chance
(10% for ten digits), the files were written whole (no temporary file left
behind), and the plots exist where matplotlib is installed.
"""
import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parent.parent
EXAMPLES = REPOSITORY / "examples"

# A quick run takes seconds once Numba's kernels are cached; the first run on
# a fresh checkout also compiles the kernels it uses.
TIMEOUT_SECONDS = 180

HAS_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None


def run_quick(name, out_dir):
    """Run examples/NAME.py --quick --out out_dir; return its printed output."""
    # The examples import the installed deepbreadth (`pip install -e .`), as a
    # user's scripts do: its kernels are the subpackage deepbreadth.kernels
    # only once installed. The environment is the user's too, threads included.
    completed = subprocess.run(
        [sys.executable, str(EXAMPLES / f"{name}.py"), "--quick", "--out", str(out_dir)],
        cwd=REPOSITORY, capture_output=True, text=True,
        timeout=TIMEOUT_SECONDS)
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, f"{name} --quick failed:\n{output[-4000:]}"
    return output


def read_results(out_dir, name):
    leftovers = [path.name for path in Path(out_dir).iterdir() if path.suffix == ".tmp"]
    assert not leftovers, f"temporary files left behind: {leftovers}"
    with open(Path(out_dir) / f"{name}.json") as file:
        results = json.load(file)
    assert results["example"] == name
    assert results["quick"] is True
    assert results["machine"]["backend"] in ("numpy", "numba", "cupy")
    return results


def check_training(results, min_accuracy=None):
    """The loss fell below the untrained first batch's; accuracy beat chance."""
    first, last = results["first_batch_loss"], results["history"]["loss"][-1]
    assert math.isfinite(first) and math.isfinite(last)
    assert last < first, f"the loss did not decrease: first batch {first}, last epoch {last}"
    assert all(seconds > 0 for seconds in results["seconds_per_epoch"])
    assert len(results["seconds_per_epoch"]) == results["epochs"]
    if min_accuracy is not None:
        assert results["test_accuracy"] > min_accuracy


@pytest.mark.parametrize("name, min_accuracy, output_name", [
    ("mnist_mlp", 0.6, "mnist_mlp"),
    ("mnist_cnn", 0.5, "mnist_cnn"),
    ("mnist_lstm", 0.25, "mnist_lstm_32"),   # --quick trains 32 units
    ("training_loop", 0.6, "training_loop"),
])
def test_classifier_examples(tmp_path, name, min_accuracy, output_name):
    output = run_quick(name, tmp_path)
    assert "test accuracy" in output
    results = read_results(tmp_path, output_name)
    check_training(results, min_accuracy)
    if "reached_target" in results:
        assert results["reached_target"] is None  # targets are for full runs only


def test_custom_op(tmp_path):
    output = run_quick("custom_op", tmp_path)
    assert "gradcheck: first derivatives match" in output
    results = read_results(tmp_path, "custom_op")
    assert results["checks"]["gradcheck"] is True
    assert results["checks"]["gradgradcheck"] is True
    # The deliberately wrong backward was caught, and the message says where.
    assert "input 0" in results["checks"]["wrong_backward_caught"]
    check_training(results, min_accuracy=0.6)


def test_char_lstm(tmp_path):
    output = run_quick("char_lstm", tmp_path)
    results = read_results(tmp_path, "char_lstm")
    check_training(results)
    # The untrained model guesses about evenly among 76 characters: ln 76 nats.
    assert abs(results["first_batch_loss"] - math.log(76)) < 0.5
    bpc = results["validation_bits_per_character"]
    assert math.isfinite(bpc) and bpc < math.log2(76)
    # The baselines: knowing the previous character helps.
    assert 3.0 < results["unigram_bits_per_character"] < math.log2(76)
    assert results["bigram_bits_per_character"] < results["unigram_bits_per_character"]
    for temperature, text in results["samples"].items():
        assert text.startswith("ROMEO:\n")
        assert len(text) == len("ROMEO:\n") + 100
        assert text in output


def test_depth_vs_breadth(tmp_path):
    run_quick("depth_vs_breadth", tmp_path)
    results = read_results(tmp_path, "depth_vs_breadth")
    grid = results["grid"]
    assert {(r["depth"], r["breadth"]) for r in grid} == {(1, 16), (1, 64), (2, 16), (2, 64)}
    for result in grid:
        assert result["history"]["loss"][-1] < result["first_batch_loss"]
        assert result["seconds_per_epoch"] > 0
    assert max(r["test_accuracy"] for r in grid) > 0.5
    # Parameters: 784*w + w, (w*w + w) per extra hidden layer, then 10*w + 10.
    for r in grid:
        w, d = r["breadth"], r["depth"]
        assert r["parameters"] == 785 * w + (d - 1) * (w * w + w) + 10 * w + 10

    # Vanishing gradients: through 4 sigmoid layers the first layer gets a far
    # smaller share of the gradient than through 4 ReLU layers.
    per_layer = results["gradient_norms"]["per_layer"]
    sigmoid, relu = per_layer["sigmoid"]["4"], per_layer["relu"]["4"]
    assert len(sigmoid) == len(relu) == 5
    assert sigmoid[0] / sigmoid[-1] < 0.1 * (relu[0] / relu[-1])

    if not HAS_MATPLOTLIB:
        pytest.skip("matplotlib is not installed, so the example skips its plots")
    for filename in ("depth_vs_breadth.png", "gradient_norms.png"):
        png = tmp_path / filename
        assert png.exists() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert results["plots"] == {"grid": "depth_vs_breadth.png", "gradients": "gradient_norms.png"}
