"""Turning the subprocesses' raw results into one document, a Markdown report and a chart.

Ratios are deepbreadth's median time over a reference framework's median time,
both measured in the same run on the same thread count (< 1: deepbreadth is
faster). Next to each ratio, the JSON keeps a deliberately wide range: the
ratio of the quartiles taken the unfavourable way round each side
(q1_db / q3_ref .. q3_db / q1_ref).
"""
import io
import statistics

from .workloads import KERNELS, MODELS, kernel_flop, model_flop


def _name(request):
    framework, backend, device = request.get("framework"), request.get("backend"), request.get(
        "device")
    if framework == "deepbreadth":
        return f"deepbreadth-{backend}"
    return framework if device == "cpu" else f"{framework}-cuda"


def _is_deepbreadth(name):
    return name.startswith("deepbreadth")


# ----------------------------------------------------------------------------
# Documents
# ----------------------------------------------------------------------------
def build_document(suite, common, peaks, raw):
    document = {"suite": suite, **common}
    if suite == "startup":
        document.update(raw)
        document["errors"] = [f"{s['framework']} {s['workload']}: {s['error']}"
                              for s in raw["first_steps"] if "error" in s]
        return document
    document["gemm_peak"] = peaks
    rows, frameworks, errors, skipped = [], {}, [], list(common.get("skipped", []))
    loads = []
    for result in raw:
        request = result.get("request", {})
        name = _name(request)
        threads = request.get("threads")
        if "skipped" in result:
            skipped.append({"framework": name, "threads": threads, "reason": result["skipped"]})
            continue
        if "error" in result:
            errors.append(f"{name} ({threads} thread(s)): {result['error']}")
            continue
        for key in ("load_average_before", "load_average_after"):
            if result.get(key) is not None:
                loads.append(result[key])
        info = dict(result.get("info", {}))
        info["blas_in_process"] = result.get("blas")
        frameworks.setdefault(name, {})[str(threads)] = info
        items = result.get("workloads") if suite == "models" else result.get("kernels")
        for item in items or []:
            label = item.get("workload") or item.get("kernel")
            if "error" in item:
                errors.append(f"{name} {label} ({threads} thread(s)): {item['error']}")
                rows.append({"framework": name, "threads": threads, "item": label,
                             "error": item["error"], "traceback": item.get("traceback")})
                continue
            for phase, stats in item["phases"].items():
                flop = model_flop(label, phase) if suite == "models" else kernel_flop(label, phase)
                row = {"framework": name, "threads": threads, "item": label, "phase": phase,
                       **{k: v for k, v in stats.items() if k != "memory"}, "flop": flop}
                if flop:
                    row["gflops"] = flop / (stats["median_ms"] / 1000.0) / 1e9
                    peak = (peaks or {}).get(str(threads), {}).get("gflops")
                    if peak:
                        row["percent_of_gemm_peak"] = 100.0 * row["gflops"] / peak
                if suite == "models":
                    row["memory"] = {**stats.get("memory", {}),
                                     "rss_peak_mb": item.get("rss_peak_mb"),
                                     "rss_peak_over_import_mb": item.get("rss_peak_over_import_mb"),
                                     "rss_shared_by_workloads": result.get(
                                         "rss_shared_by_workloads", False)}
                    row["build_s"] = item.get("build_s")
                for warning in item.get("warnings", []):
                    errors.append(f"{name} {label} ({threads} thread(s)): {warning}")
                rows.append(row)
    document["load_average_1min"] = ({"min": min(loads), "median": statistics.median(loads),
                                      "max": max(loads)} if loads else None)
    document["frameworks"] = frameworks
    document["results"] = _best_rounds(rows)
    document["ratios"] = ratios(document["results"])
    document["skipped"] = skipped
    document["errors"] = errors
    return document


def _best_rounds(rows):
    """With --rounds, one row per measurement: the round with the lowest median, and all medians."""
    best, order = {}, []
    for row in rows:
        key = (row["framework"], row["threads"], row["item"], row.get("phase"))
        if key not in best:
            order.append(key)
            best[key] = dict(row, round_medians_ms=[])
        if "median_ms" in row:
            kept = best[key]
            medians = kept["round_medians_ms"] + [row["median_ms"]]
            if "median_ms" not in kept or row["median_ms"] < kept["median_ms"]:
                kept = best[key] = dict(row)
            kept["round_medians_ms"] = medians
    return [best[key] for key in order]


def ratios(rows):
    timed = [r for r in rows if "median_ms" in r]
    out = []
    for mine in timed:
        if not _is_deepbreadth(mine["framework"]):
            continue
        for ref in timed:
            if _is_deepbreadth(ref["framework"]):
                continue
            if (ref["item"], ref["phase"], ref["threads"]) != (
                    mine["item"], mine["phase"], mine["threads"]):
                continue
            out.append({
                "item": mine["item"], "phase": mine["phase"], "threads": mine["threads"],
                "deepbreadth": mine["framework"], "reference": ref["framework"],
                "ratio": mine["median_ms"] / ref["median_ms"],
                "ratio_range": [mine["q1_ms"] / ref["q3_ms"], mine["q3_ms"] / ref["q1_ms"]],
            })
    return out


# ----------------------------------------------------------------------------
# Markdown
# ----------------------------------------------------------------------------
def _fmt(value, digits=3):
    if value is None:
        return "–"
    if value == 0:
        return "0"
    magnitude = abs(value)
    if magnitude >= 100:
        return f"{value:.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 1:
        return f"{value:.2f}"
    return f"{value:.{digits}f}"


def _table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _order(document):
    names = []
    for row in document["results"]:
        if row["framework"] not in names:
            names.append(row["framework"])
    return sorted(names, key=lambda n: (not _is_deepbreadth(n), n != "deepbreadth-numba",
                                        n != "deepbreadth-cupy", n))


def _environment_lines(document):
    machine = document["machine"]
    lines = [f"- created {document['created']}: `{document['command']}`",
             f"- CPU: {machine['cpu_model']} ({machine['cpu_cores']} cores usable; "
             f"{', '.join(machine['cpu_flags']) or 'no AVX'}); {machine['platform']}; "
             f"Python {machine['python']}",
             f"- device: {document['device']}" + (f" ({', '.join(machine['gpus'])})"
                                                 if machine.get("gpus") else "")]
    seen = machine.get("openblas_workaround_variables_unset_for_benchmarks")
    lines.append("- OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE: " + (
        f"unset in the benchmark subprocesses (set here: {seen})" if seen
        else "not set in this environment (the subprocesses would unset them)"))
    peaks = document.get("gemm_peak") or {}
    if peaks:
        parts = []
        for threads, peak in peaks.items():
            if peak.get("gflops"):
                others = ", ".join(f"{k} {_fmt(v)}" for k, v in peak.get("by_library", {}).items())
                parts.append(f"{threads} thread(s): **{_fmt(peak['gflops'])} GFLOP/s** ({others})")
        size = next(iter(peaks.values())).get("size")
        lines.append(f"- float32 GEMM peak, {size}x{size}x{size}, best of repeated calls: "
                     + "; ".join(parts))
        blas = next((p.get("blas") for p in peaks.values() if p.get("blas")), None)
        if blas:
            from .environment import short_blas
            lines.append(f"- NumPy's BLAS: {short_blas(blas)}")
    for name, by_threads in document.get("frameworks", {}).items():
        info = next(iter(by_threads.values()))
        keys = [k for k in ("version", "keras", "jaxlib", "numba", "cupy", "numpy", "execution",
                            "api", "onednn", "adam", "mkldnn", "blas", "device_name",
                            "numba_threading_layer") if info.get(k) is not None]
        details = "; ".join(f"{k} {info[k]}" for k in keys)
        threads = ", ".join(
            f"{t}: " + "/".join(str(v) for v in (
                i.get("intra_op_threads"), i.get("numba_threads")) if v is not None)
            for t, i in by_threads.items()
            if i.get("intra_op_threads") is not None or i.get("numba_threads") is not None)
        lines.append(f"- {name}: {details}" + (f"; threads seen ({threads})" if threads else ""))
        notes = sorted({n for i in by_threads.values() for n in i.get("notes", [])})
        for note in notes:
            lines.append(f"  - note: {note}")
    load = document.get("load_average_1min")
    if load:
        lines.append(f"- 1-minute load average seen by the measurement processes: "
                     f"{load['min']:.1f}–{load['max']:.1f} (median {load['median']:.1f}) on "
                     f"{machine['cpu_cores']} cores; above the core count, other processes "
                     "competed for the CPU (multi-threaded runs suffer most)")
    timing = document["timing"]
    lines.append(
        f"- timing: warm-up {timing['warmup_reps']} steps (and at least "
        f"{timing['warmup_seconds']} s), then at least {timing['min_reps']} timed steps and "
        f"{timing['seconds']} s per phase (at most {timing['max_reps']}); 4 different batches "
        "cycled; each step timed alone after the device synchronized"
        + ("; **--quick: smoke numbers, not measurements**" if document.get("quick") else ""))
    for skip in document.get("skipped", []):
        lines.append(f"- skipped {skip['framework']}: {skip['reason']}")
    return lines


def markdown(document):
    suite = document["suite"]
    out = io.StringIO()
    out.write(f"# deepbreadth benchmarks: {suite}\n\n")
    if suite == "startup":
        out.write(_startup_markdown(document))
    else:
        out.write(_timed_markdown(document))
    out.write("\n\n## Environment\n\n" + "\n".join(_environment_lines(document)) + "\n")
    if document.get("errors"):
        out.write("\n## Errors\n\n" + "\n".join(f"- {e}" for e in document["errors"]) + "\n")
    return out.getvalue()


def _timed_markdown(document):
    suite = document["suite"]
    names = _order(document)
    rows = document["results"]
    index = {(r["framework"], r["item"], r.get("phase"), r["threads"]): r for r in rows
             if "median_ms" in r}
    keys = []
    for r in rows:
        key = (r["item"], r.get("phase"), r["threads"])
        if "median_ms" in r and key not in keys:
            keys.append(key)
    catalogue = MODELS if suite == "models" else KERNELS
    item_order = list(catalogue)
    keys.sort(key=lambda k: (item_order.index(k[0]) if k[0] in item_order else 99, k[2],
                             0 if k[1] in ("train", "fwd") else 1))
    parts = []
    what = ("one training step (forward + backward + Adam), or one inference batch, batch 128"
            if suite == "models" else "one kernel call (fwd) or forward then backward (fwd+bwd)")
    parts.append(f"Milliseconds per {what}: median [q1–q3] over the timed repetitions.\n")
    header = ["workload" if suite == "models" else "kernel", "phase", "threads"] + names
    table = []
    for item, phase, threads in keys:
        cells = [item, phase, threads]
        for name in names:
            r = index.get((name, item, phase, threads))
            cells.append("–" if r is None else
                         f"{_fmt(r['median_ms'])} [{_fmt(r['q1_ms'])}–{_fmt(r['q3_ms'])}]")
        table.append(cells)
    parts.append(_table(header, table))

    pairs = []
    for ratio in document["ratios"]:
        pair = (ratio["deepbreadth"], ratio["reference"])
        if pair not in pairs:
            pairs.append(pair)
    pairs.sort(key=lambda p: (names.index(p[0]), names.index(p[1])))
    if pairs:
        ratio_index = {(r["deepbreadth"], r["reference"], r["item"], r["phase"], r["threads"]): r
                       for r in document["ratios"]}
        parts.append("\n\n## Ratios: deepbreadth time / reference time, same run "
                     "(< 1: deepbreadth is faster)\n")
        header = ["workload" if suite == "models" else "kernel", "phase", "threads"] + [
            f"{a.replace('deepbreadth-', '')} ÷ {b}" for a, b in pairs]
        table = []
        for item, phase, threads in keys:
            cells = [item, phase, threads]
            for a, b in pairs:
                r = ratio_index.get((a, b, item, phase, threads))
                cells.append("–" if r is None else f"**{r['ratio']:.2f}**" if r["ratio"] < 1
                             else f"{r['ratio']:.2f}")
            table.append(cells)
        parts.append(_table(header, table))
        geomeans = []
        for a, b in pairs:
            values = [r["ratio"] for r in document["ratios"]
                      if (r["deepbreadth"], r["reference"]) == (a, b)]
            if values:
                geomeans.append(f"{a} ÷ {b} {statistics.geometric_mean(values):.2f}")
        parts.append("\n\nGeometric mean of the ratios: " + "; ".join(geomeans) + ".")

    flop_keys = [k for k in keys if any(index.get((n,) + k, {}).get("gflops") for n in names)]
    if flop_keys:
        parts.append("\n\n## Throughput: GFLOP/s (% of the measured float32 GEMM peak "
                     "at that thread count)\n")
        parts.append("FLOP counted analytically from the GEMM/conv/LSTM multiply-adds "
                     "(benchmarks/workloads.py); training = 3 x forward.\n")
        header = ["workload" if suite == "models" else "kernel", "phase", "threads",
                  "GFLOP/step"] + names
        table = []
        for item, phase, threads in flop_keys:
            flop = next(index[(n, item, phase, threads)]["flop"] for n in names
                        if (n, item, phase, threads) in index)
            cells = [item, phase, threads, _fmt(flop / 1e9)]
            for name in names:
                r = index.get((name, item, phase, threads))
                if r is None or not r.get("gflops"):
                    cells.append("–")
                else:
                    pct = r.get("percent_of_gemm_peak")
                    cells.append(f"{_fmt(r['gflops'])}" + (f" ({pct:.0f}%)" if pct else ""))
            table.append(cells)
        parts.append(_table(header, table))

    if suite == "models":
        parts.append("\n\n## Memory (MB)\n")
        parts.append("rss: the subprocess's peak resident set (ru_maxrss: interpreter, "
                     "framework libraries and all, after the timed steps), and in brackets its "
                     "growth over the resident set right after importing the framework. "
                     "trace: tracemalloc's peak over one training step, i.e. the NumPy "
                     "arrays allocated from Python (deepbreadth on the CPU; Numba's own "
                     "allocations inside compiled kernels and other frameworks' allocators are "
                     "not traced). GPU: the framework's own allocator counters.\n")
        header = ["workload", "threads"] + names
        table = []
        seen = []
        for item, phase, threads in keys:
            if (item, threads) in seen:
                continue
            seen.append((item, threads))
            cells = [item, threads]
            for name in names:
                r = index.get((name, item, "train", threads))
                if r is None:
                    cells.append("–")
                    continue
                m = r.get("memory", {})
                text = f"rss {_fmt(m.get('rss_peak_mb'))} (+{_fmt(m.get('rss_peak_over_import_mb'))})"
                if m.get("tracemalloc_peak_mb") is not None:
                    text += f", trace {_fmt(m['tracemalloc_peak_mb'])}"
                for key in ("gpu_peak_allocated_mb", "gpu_pool_total_mb"):
                    if m.get(key) is not None:
                        text += f", gpu {_fmt(m[key])}"
                if m.get("rss_shared_by_workloads"):
                    text += "*"
                cells.append(text)
            table.append(cells)
        parts.append(_table(header, table))
        if any(r.get("memory", {}).get("rss_shared_by_workloads") for r in rows):
            parts.append("\n\n\\* all workloads ran in one process (--quick): rss is the "
                         "peak so far.")
    return "".join(parts)


def _startup_markdown(document):
    parts = [f"Fresh subprocesses, {document['threads']} thread(s). Import times: median of "
             "the fresh processes (min–max).\n"]
    table = []
    for entry in document["imports"]:
        times = entry["import_s"]
        if times:
            table.append([f"`import {entry['module']}`", f"{statistics.median(times):.3f}",
                          f"{min(times):.3f}–{max(times):.3f}", len(times)])
        else:
            table.append([f"`import {entry['module']}`", "failed", "", 0])
    parts.append(_table(["import", "seconds (median)", "min–max", "processes"], table))
    parts.append("\n\n## First steps in a fresh process (seconds)\n\n"
                 "import: the framework (for deepbreadth: deepbreadth and its backend); "
                 "build: model and optimizer objects; first train step: includes lazy weight "
                 "creation, Numba compilation or loading from its cache, tf.function tracing, "
                 "XLA compilation. Numba cold: NUMBA_CACHE_DIR is a new empty folder; warm: the "
                 "same folder, second process.\n")
    table = []
    for s in document["first_steps"]:
        label = s["framework"] + (f" ({s['numba_cache']} Numba cache)" if s.get("numba_cache")
                                  else "")
        if "error" in s or "skipped" in s:
            table.append([s["workload"], label, s.get("error") or s.get("skipped"),
                          "", "", "", "", ""])
            continue
        table.append([s["workload"], label] + [
            f"{s[k]:.3f}" if s.get(k) is not None else "–"
            for k in ("import_s", "build_s", "first_train_s", "second_train_s",
                      "first_infer_s", "wall_s")])
    parts.append(_table(["workload", "framework", "import", "build", "first train step",
                         "second train step", "first inference", "process wall"], table))
    return "".join(parts)


# ----------------------------------------------------------------------------
# Chart
# ----------------------------------------------------------------------------
def chart(document, path, write_atomic):
    """A bar chart of the ratios (log scale, 1 = parity). Returns False without matplotlib."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    ratios_ = document.get("ratios") or []
    if not ratios_:
        return False
    pairs = []
    for r in ratios_:
        pair = (r["deepbreadth"], r["reference"])
        if pair not in pairs:
            pairs.append(pair)
    thread_counts = sorted({r["threads"] for r in ratios_})
    groups = []
    for r in ratios_:
        group = (r["item"], r["phase"])
        if group not in groups:
            groups.append(group)
    lookup = {(r["deepbreadth"], r["reference"], r["item"], r["phase"], r["threads"]): r["ratio"]
              for r in ratios_}
    width = 0.8 / len(pairs)
    figure, all_axes = plt.subplots(
        len(thread_counts), 1, squeeze=False, sharey=True,
        figsize=(min(18.0, max(8.0, 0.28 * len(groups) * len(pairs) + 2)),
                 3.6 * len(thread_counts) + 0.8))
    for row, threads in enumerate(thread_counts):
        axes = all_axes[row][0]
        for k, (a, b) in enumerate(pairs):
            xs, ys = [], []
            for g, (item, phase) in enumerate(groups):
                value = lookup.get((a, b, item, phase, threads))
                if value is not None:
                    xs.append(g - 0.4 + width * (k + 0.5))
                    ys.append(value)
            axes.bar(xs, ys, width=width, label=f"{a} / {b}")
        axes.axhline(1.0, color="black", linewidth=0.8)
        axes.set_yscale("log")
        axes.set_xticks(range(len(groups)))
        axes.set_xticklabels([f"{item} {phase}" for item, phase in groups], fontsize=8)
        axes.set_ylabel(f"{threads} thread(s)\ntime ratio (log)", fontsize=9)
        axes.grid(axis="y", which="both", alpha=0.25)
        if row == 0:
            axes.set_title(f"deepbreadth {document['suite']}: deepbreadth time / reference time, "
                           f"same run (< 1: deepbreadth faster); {document['created']}, "
                           f"{document['device']}", fontsize=10)
            axes.legend(fontsize=7, ncol=min(3, len(pairs)))
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    plt.close(figure)
    write_atomic(path, buffer.getvalue(), mode="wb")
    return True


def main(argv=None):
    """`python -m benchmarks.report RESULTS.json`: redo the ratios, Markdown and chart of a
    results file (written next to it, same name)."""
    import json
    import os
    import sys
    from .cli import _write_atomic
    paths = sys.argv[1:] if argv is None else argv
    if not paths:
        print(main.__doc__, file=sys.stderr)
        return 2
    for path in paths:
        with open(path, encoding="utf-8") as handle:
            document = json.load(handle)
        if document["suite"] != "startup":
            document["ratios"] = ratios(document["results"])
        stem = os.path.splitext(path)[0]
        _write_atomic(path, json.dumps(document, indent=1, default=str))
        _write_atomic(stem + ".md", markdown(document))
        if document["suite"] != "startup":
            chart(document, stem + ".png", _write_atomic)
        print(f"rewrote {stem}.json, .md" + (", .png" if document["suite"] != "startup" else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
