"""What one predict run is: a model file, its runtime, recipe and TTA mode, and the knobs that only change its speed."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .recipes import Recipe


@dataclass(frozen=True)
class RunSpec:
    """What to run: one model file through one runtime with one recipe and TTA mode."""

    model_path: Path
    recipe: Recipe
    tta: str
    runtime: str
    # throughput knobs; they never change the predictions
    workers: int | None = None        # worker threads; None: the cores this process may use
    threads_per_worker: int = 1
    batch_size: int = 4               # images per runtime.run() (a larger fixed batch of the model wins)
    chunk_size: int = 32              # images per resumable, cacheable unit of work
    checkpoint_s: float = 1.0         # finished chunks go to parts/ this often (0: each one); what a kill can lose
    decode_cache: bool = True
    # also compare each image's content hash with the one recorded when it was decoded (reads every image once)
    verify_data: bool = False


def available_cores() -> int:
    """Cores this process may run on (respects taskset/cgroup affinity)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1
