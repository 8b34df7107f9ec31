"""The benchmark harness runs end to end (`python -m benchmarks --quick`) and its
bookkeeping (FLOP counts, ratios, reports) is right. The timings themselves are
not checked: CI machines are too noisy for that."""
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# benchmarks/ is not installed with deepbreadth: it is imported from the checkout.
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from benchmarks import report, workloads  # noqa: E402
from benchmarks.timing import Budget, measure, summarize  # noqa: E402


def test_quick_models_run_writes_positive_times_for_every_workload(tmp_path):
    command = [sys.executable, "-m", "benchmarks", "--suite", "models", "--quick",
               "--frameworks", "deepbreadth", "--threads", "1", "--out", str(tmp_path),
               "--no-chart"]
    completed = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=240,
                               check=False)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    with open(tmp_path / "latest_models.json", encoding="utf-8") as handle:
        document = json.load(handle)
    assert document["errors"] == []
    assert document["quick"] is True
    # deepbreadth-numba on a CPU machine; deepbreadth-cupy where a GPU is present.
    names = {row["framework"] for row in document["results"]}
    assert len(names) == 1 and names.pop().startswith("deepbreadth-")
    found = {(row["item"], row["phase"]): row for row in document["results"]}
    for workload in workloads.MODELS:
        for phase in workloads.MODEL_PHASES:
            row = found.get((workload, phase))
            assert row is not None, f"{workload} {phase} missing from the results"
            assert row["median_ms"] > 0 and row["min_ms"] > 0 and row["reps"] >= 1
            assert row["threads"] == 1
    assert document["gemm_peak"]["1"]["gflops"] > 0
    timestamped = [name for name in os.listdir(tmp_path)
                   if name.startswith("models_") and name.endswith(".json")]
    assert len(timestamped) == 1
    markdown = (tmp_path / "latest_models.md").read_text(encoding="utf-8")
    assert "| W4 | train | 1 |" in markdown
    assert not [name for name in os.listdir(tmp_path) if name.startswith(".tmp")]


def test_flop_counts_follow_the_formulas():
    # W1: 128 x 784 x 128 + 128 x 128 x 10 multiply-adds, 2 FLOP each.
    assert workloads.model_flop("W1", "infer") == 2 * (128 * 784 * 128 + 128 * 128 * 10)
    assert workloads.model_flop("W1", "train") == 3 * workloads.model_flop("W1", "infer")
    # One LSTM step of 128 units on 28 inputs: (28 + 128) x 512 per sample.
    assert workloads.lstm_mac(128, 1, 28, 128) == 128 * 156 * 512
    assert workloads.kernel_flop("maxpool", "fwd") == 0
    assert workloads.kernel_flop("conv2d", "fwd") == 2 * 128 * 11 * 11 * 9 * 32 * 64


def test_measure_respects_the_budget_and_summarize_orders_quantiles():
    calls = []
    times = measure(calls.append, lambda: None,
                    Budget(seconds=0.0, min_reps=4, max_reps=4, warmup_reps=2,
                           warmup_seconds=0.0))
    assert len(times) == 4 and len(calls) == 6 and calls == list(range(6))
    stats = summarize([0.004, 0.001, 0.003, 0.002])
    assert stats["min_ms"] <= stats["q1_ms"] <= stats["median_ms"] <= stats["q3_ms"]
    assert stats["median_ms"] == pytest.approx(2.5)
    assert stats["max_ms"] == pytest.approx(4.0)


def _row(framework, median, item="W1", phase="train", threads=1):
    return {"framework": framework, "item": item, "phase": phase, "threads": threads,
            "median_ms": median, "q1_ms": median * 0.9, "q3_ms": median * 1.1,
            "min_ms": median * 0.8, "max_ms": median * 1.2, "reps": 5, "flop": 1e9}


def test_ratios_pair_deepbreadth_with_references_of_the_same_measurement():
    rows = [_row("deepbreadth-numba", 2.0), _row("torch", 4.0), _row("jax", 1.0),
            _row("torch", 8.0, threads=2), _row("deepbreadth-numba", 2.0, phase="infer")]
    found = {(r["reference"], r["phase"], r["threads"]): r for r in report.ratios(rows)}
    assert set(found) == {("torch", "train", 1), ("jax", "train", 1)}
    assert found[("torch", "train", 1)]["ratio"] == pytest.approx(0.5)
    low, high = found[("jax", "train", 1)]["ratio_range"]
    assert low < 2.0 < high


def test_best_round_is_kept_with_every_round_median():
    rows = report._best_rounds([_row("torch", 5.0), _row("torch", 3.0), _row("torch", 4.0)])
    assert len(rows) == 1
    assert rows[0]["median_ms"] == 3.0
    assert rows[0]["round_medians_ms"] == [5.0, 3.0, 4.0]


def test_document_keeps_the_best_round_and_pairs_ratios_within_it():
    def worker_result(framework, backend, medians):
        train, infer = medians
        phase = lambda m: {"median_ms": m, "q1_ms": m, "q3_ms": m, "min_ms": m, "max_ms": m,  # noqa: E731
                           "mean_ms": m, "reps": 5, "first_call_ms": m, "memory": {}}
        return {"request": {"framework": framework, "backend": backend, "device": "cpu",
                            "threads": 1},
                "info": {"version": "x"},
                "workloads": [{"workload": "W1", "phases": {"train": phase(train),
                                                            "infer": phase(infer)}}]}

    raw = [worker_result("deepbreadth", "numba", (2.0, 1.0)), worker_result("torch", None, (4.0, 1.0)),
           worker_result("deepbreadth", "numba", (3.0, 0.5)), worker_result("torch", None, (1.0, 2.0))]
    common = {"machine": {}, "skipped": [], "timing": {}}
    document = report.build_document("models", common, {"1": {"gflops": 100.0}}, raw)
    assert len(document["results"]) == 4
    found = {(r["phase"]): r["ratio"] for r in document["ratios"]}
    assert len(document["ratios"]) == 2
    assert found["train"] == pytest.approx(2.0 / 1.0)
    assert found["infer"] == pytest.approx(0.5 / 1.0)
