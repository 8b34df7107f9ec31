"""The timing loop: warm-up, then time-bounded repetitions, reported as median and spread.

Each repetition is timed on its own with `time.perf_counter`, after the device
has finished its work (`sync`), so asynchronous frameworks (JAX's dispatch, CUDA
streams) are charged for the whole computation. The callable gets the repetition
index, and cycles through a few different input batches with it, so that no
framework is timed on data that already sits in its caches.
"""
import math
import statistics
import time


class Budget:
    """How long to measure: at least `min_reps`, then until `seconds` have passed."""

    def __init__(self, seconds=2.0, min_reps=5, max_reps=2000, warmup_reps=2,
                 warmup_seconds=0.3):
        self.seconds = seconds
        self.min_reps = min_reps
        self.max_reps = max_reps
        self.warmup_reps = warmup_reps
        self.warmup_seconds = warmup_seconds

    def as_dict(self):
        return dict(vars(self))


# --quick: the first call (timed apart) is the only warm-up, then two timed calls.
QUICK_BUDGET = Budget(seconds=0.0, min_reps=2, max_reps=2, warmup_reps=0, warmup_seconds=0.0)


def measure(step, sync, budget, start_index=0):
    """Run `step(i)` repeatedly; returns the list of seconds per call (after warm-up)."""
    index = start_index
    started = time.perf_counter()
    done = 0
    while done < budget.warmup_reps or time.perf_counter() - started < budget.warmup_seconds:
        step(index)
        sync()
        index += 1
        done += 1
        if done >= max(budget.warmup_reps, 1) * 50:
            break
    times = []
    started = time.perf_counter()
    while len(times) < budget.max_reps:
        begin = time.perf_counter()
        step(index)
        sync()
        times.append(time.perf_counter() - begin)
        index += 1
        if len(times) >= budget.min_reps and time.perf_counter() - started >= budget.seconds:
            break
    return times


def _quantile(sorted_values, q):
    """Linear interpolation between closest ranks (numpy's default)."""
    if len(sorted_values) == 1:
        return sorted_values[0]
    position = q * (len(sorted_values) - 1)
    low = math.floor(position)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (position - low)


def summarize(times):
    """Median, quartiles, min, max and mean, in milliseconds, and the count."""
    values = sorted(t * 1000.0 for t in times)
    return {
        "median_ms": statistics.median(values),
        "q1_ms": _quantile(values, 0.25),
        "q3_ms": _quantile(values, 0.75),
        "min_ms": values[0],
        "max_ms": values[-1],
        "mean_ms": statistics.fmean(values),
        "reps": len(values),
    }
