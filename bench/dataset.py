"""Time reading the ImageNet layout: LOC_val_solution.csv with 50,000 rows, and load_dataset on the fixture slice.

    python bench/dataset.py

The CSV reader is compared with the obvious peers on the same generated file (csv.reader and pandas.read_csv,
each reduced to the same id -> class-index dict); best of five after one warm-up. load_dataset is timed on
../shared/fixtures/imagenet (700 images, the complete 50,000-row CSV) where present.
"""

from __future__ import annotations

import csv
import sys
import tempfile
from pathlib import Path

from timing import best_of  # bench/ is the script's directory

from evaluator.dataset import N_FULL_VAL, load_dataset, read_val_solution
from evaluator.locations import fixtures_dir


def with_csv_module(path: Path, class_index: dict[str, int]) -> dict[str, int]:
    with open(path, newline="") as stream:
        rows = csv.reader(stream)
        next(rows)
        return {row[0]: class_index[row[1].split()[0]] for row in rows}


def with_pandas(path: Path, class_index: dict[str, int]) -> dict[str, int]:
    import pandas as pd

    frame = pd.read_csv(path)
    wnids = frame["PredictionString"].str.split(n=1).str[0]
    return dict(zip(frame["ImageId"], wnids.map(class_index)))


def main() -> int:
    wnids = [f"n{i:08d}" for i in range(1000)]
    class_index = {w: i for i, w in enumerate(wnids)}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "LOC_val_solution.csv"
        rows = [f"ILSVRC2012_val_{i + 1:08d},{wnids[i % 1000]} 85 1 499 272 {wnids[i % 1000]} 1 2 3 4"
                for i in range(N_FULL_VAL)]
        path.write_text("ImageId,PredictionString\n" + "\n".join(rows) + "\n")
        ours = best_of(lambda: read_val_solution(path, wnids), warmup=1)
        peers = {"csv.reader": best_of(lambda: with_csv_module(path, class_index), warmup=1),
                 "pandas.read_csv": best_of(lambda: with_pandas(path, class_index), warmup=1)}
    print(f"LOC_val_solution.csv, {N_FULL_VAL:,} rows: read_val_solution {ours * 1000:.1f} ms")
    for name, seconds in peers.items():
        print(f"  {name}: {seconds * 1000:.1f} ms  (ratio {seconds / ours:.2f}x the evaluator's time)")
    root = fixtures_dir() / "imagenet"
    if root.is_dir():
        seconds = best_of(lambda: load_dataset(root), warmup=1)
        print(f"load_dataset on {root} (700 images, 50,000-row CSV): {seconds * 1000:.1f} ms")
    else:
        print(f"fixtures absent at {root}: load_dataset not timed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
