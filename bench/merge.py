"""Time `python -m evaluator merge` on the image shards of a 50,000-image artifact.

    python bench/merge.py                 # 3 and 8 shards of 50,000 generated predictions
    python bench/merge.py --shards 16 --images 50000

The shards are written as `predict --shard K/N` writes them (a predictions.csv and meta.json each, with plausible
top-5 ids and float32 scores and a few failed images), then merged into an empty directory: the whole command
in-process (find, check, read and verify every table, interleave, write predictions.csv and meta.json), best of
three after one warm-up, and as a whole command from a fresh interpreter, best of three. The merged table is checked
against the same predictions written unsharded.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from evaluator.merge import merge_artifacts
from evaluator.prediction_store import PredictionStore
from evaluator.predictions import Predictions
from evaluator.shard import Shard

REPO = Path(__file__).resolve().parents[1]

TARGET_S = 2.0  # issue 18: merging the shards of a 50,000-image artifact, on two cores


def synthetic_predictions(n_images: int, seed: int = 0) -> Predictions:
    rng = np.random.default_rng(seed)
    scores = np.sort(rng.random((n_images, 5), dtype=np.float32), axis=1)[:, ::-1]
    ids = rng.integers(0, 1000, (n_images, 5), dtype=np.int32)
    errors = np.full(n_images, "", dtype=object)
    failed = rng.choice(n_images, size=max(1, n_images // 10_000), replace=False)
    errors[failed] = "truncated JPEG: ILSVRC2012_val (premature end of data)"
    ids[failed], scores[failed] = -1, np.nan
    return Predictions([f"ILSVRC2012_val_{i:08d}" for i in range(1, n_images + 1)],
                       rng.integers(0, 1000, n_images, dtype=np.int32), ids, scores, errors.astype(str))


def meta(n_images: int) -> dict:
    return {"artifact_key": "0123456789abcdef", "model_path": "/models/resnet50.opt.onnx", "model_sha256": "ab" * 32,
            "runtime": "onnxruntime", "runtime_version": "1.17.0", "recipe": "resnet50_chainer",
            "recipe_summary": "", "tta": "1-crop", "input_size": 224, "dataset_root": "/data/imagenet",
            "dataset_fingerprint": "fedcba9876543210", "n_images": n_images, "n_listed": 50_000, "elapsed_s": 1.0,
            "reused_images": 0, "date": "2026-12-01T02:00:00+00:00", "evaluator_version": "bench"}


def write_shards(predictions: Predictions, count: int, root: Path) -> list[Path]:
    """Shard artifacts as predict(shard=...) writes them, each in its own artifacts directory."""
    n = len(predictions)
    roots = []
    for k in range(1, count + 1):
        shard = Shard(k, count)
        rows = np.arange(k - 1, n, count)
        part = Predictions(predictions.image_ids[rows], predictions.labels[rows], predictions.top5_ids[rows],
                           predictions.top5_scores[rows], predictions.errors[rows])
        directory = (root / f"shard-{k}" / "predictions"
                     / f"resnet50.opt-1-crop-onnxruntime-0123456789abcdef{shard.dir_suffix}")
        store = PredictionStore(directory)
        store.keep(part)
        store.finalize({**meta(len(rows)), **shard.meta(n)})
        roots.append(root / f"shard-{k}")
    return roots


def time_merge(roots: list[Path], work: Path, repeats: int = 3) -> float:
    best = float("inf")
    for attempt in range(repeats + 1):  # the first is a warm-up (imports, page cache)
        out = work / f"merged-{attempt}"
        started = time.perf_counter()
        merge_artifacts(roots, out)
        elapsed = time.perf_counter() - started
        if attempt:
            best = min(best, elapsed)
        shutil.rmtree(out)
    return best


def time_command(roots: list[Path], work: Path, repeats: int = 3) -> float:
    """The same merge as a whole command from a fresh interpreter (imports included), best of `repeats`."""
    best = float("inf")
    for attempt in range(repeats):
        out = work / f"merged-cli-{attempt}"
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "evaluator", "merge", "--artifacts-dir", str(out), *map(str, roots)],
                       cwd=REPO, check=True, capture_output=True)
        best = min(best, time.perf_counter() - started)
        shutil.rmtree(out)
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=50_000)
    parser.add_argument("--shards", type=int, nargs="+", default=[3, 8])
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"merge of {args.images:,} predictions; {cores} cores, Python {platform.python_version()}, "
          f"{platform.system()}")
    predictions = synthetic_predictions(args.images)
    with tempfile.TemporaryDirectory(prefix="bench-merge-") as tmp:
        work = Path(tmp)
        unsharded = PredictionStore(work / "unsharded")
        unsharded.keep(predictions)
        unsharded.finalize(meta(args.images))
        expected = unsharded.csv_path.read_bytes()
        worst = 0.0
        for count in args.shards:
            roots = write_shards(predictions, count, work / f"shards-{count}")
            elapsed = time_merge(roots, work)
            merge_artifacts(roots, work / "check")
            [merged_csv] = (work / "check" / "predictions").glob("*/predictions.csv")
            identical = merged_csv.read_bytes() == expected
            shutil.rmtree(work / "check")
            command = time_command(roots, work)
            worst = max(worst, elapsed, command)
            print(f"  {count:3d} shards: {elapsed:.3f} s in-process, {command:.3f} s as `python -m evaluator merge` "
                  f"(best of 3 each)  byte-identical to unsharded: {identical}  target < {TARGET_S} s: "
                  f"{'met' if max(elapsed, command) < TARGET_S else 'MISSED'} ({max(elapsed, command) / TARGET_S:.2f} "
                  f"of it)")
            if not identical:
                return 1
    return 0 if worst < TARGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
