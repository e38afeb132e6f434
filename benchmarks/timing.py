"""Timing shared by the benchmark scripts (run as `python benchmarks/NAME.py`, which puts this
folder on sys.path)."""

import statistics
import time


def median_seconds(function, repeat: int) -> float:
    """Median wall-clock seconds of `repeat` calls, after one warm-up call."""
    function()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)
