"""The one timing helper of the bench scripts: the best of several runs, after optional warm-up runs."""

import time


def best_of(function, repeats: int = 5, warmup: int = 0) -> float:
    """Seconds of the fastest of `repeats` calls of function(), after `warmup` untimed calls."""
    for _ in range(warmup):
        function()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return min(times)
