"""The per-image predictions table and its one on-disk format, predictions.csv: its one writer and its one reader.

One row per image: image_id, label, id1..id5 (top-5 class ids, best first), score1..score5, error. A failed image has
ids -1, scores nan and its error text. Scores are written with 9 significant digits, which reproduce every float32
exactly, so a table read back equals the one written. A per-image record (.csv.gz beside baselines.yaml) is the same
bytes, gzipped reproducibly.
"""

from __future__ import annotations

import csv
import gzip
import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import ArtifactError
from .fileio import atomic_write_bytes

# 9 significant digits reproduce every float32 exactly.
SCORE_FORMAT = "%.9g"
ID_COLUMNS = tuple(f"id{k}" for k in range(1, 6))
SCORE_COLUMNS = tuple(f"score{k}" for k in range(1, 6))
CSV_COLUMNS = ("image_id", "label", *ID_COLUMNS, *SCORE_COLUMNS, "error")


@dataclass
class Predictions:
    """Per-image top-5 predictions, one row per image; failed images have ids -1, scores nan and an error text."""

    image_ids: np.ndarray  # str (N,)
    labels: np.ndarray  # int32 (N,) ground-truth class index
    top5_ids: np.ndarray  # int32 (N, 5), best first; -1 where the image failed
    top5_scores: np.ndarray  # float32 (N, 5); nan where the image failed
    errors: np.ndarray  # str (N,); '' when the image was scored
    # int64 (N, 4) what each row was computed from (see stamps.py); kept by a predictions artifact beside the table,
    # None for tables read from elsewhere
    stamps: np.ndarray | None = None

    def __post_init__(self):
        self.image_ids = np.asarray(self.image_ids, dtype=str).reshape(-1)
        self.labels = np.asarray(self.labels, dtype=np.int32).reshape(-1)
        self.top5_ids = np.asarray(self.top5_ids, dtype=np.int32)
        self.top5_scores = np.asarray(self.top5_scores, dtype=np.float32)
        self.errors = np.asarray(self.errors, dtype=str).reshape(-1)
        n = len(self.image_ids)
        if n == 0:
            self.top5_ids = self.top5_ids.reshape(0, 5)
            self.top5_scores = self.top5_scores.reshape(0, 5)
        shapes = {"labels": (self.labels.shape, (n,)), "top5_ids": (self.top5_ids.shape, (n, 5)),
                  "top5_scores": (self.top5_scores.shape, (n, 5)), "errors": (self.errors.shape, (n,))}
        if self.stamps is not None:
            self.stamps = np.asarray(self.stamps, dtype=np.int64).reshape(n, 4)
        for name, (shape, expected) in shapes.items():
            if shape != expected:
                raise ValueError(f"Predictions.{name} has shape {shape}, expected {expected} for {n} image ids")

    def __len__(self) -> int:
        return len(self.image_ids)

    @classmethod
    def from_frame(cls, df) -> Predictions:
        """The table held by a pandas DataFrame with columns image_id, label, id1..id5, score1..score5, error."""
        missing = [name for name in CSV_COLUMNS if name not in df.columns]
        if missing:
            raise ValueError(f"missing columns {', '.join(missing)}")
        errors = df["error"].fillna("").to_numpy(dtype=str)
        return cls(image_ids=df["image_id"].to_numpy(dtype=str), labels=df["label"].to_numpy(dtype=np.int32),
                   top5_ids=df[list(ID_COLUMNS)].to_numpy(dtype=np.int32),
                   top5_scores=df[list(SCORE_COLUMNS)].to_numpy(dtype=np.float32), errors=errors)

    def take(self, index: np.ndarray) -> Predictions:
        """The rows at these positions, in that order."""
        return Predictions(self.image_ids[index], self.labels[index], self.top5_ids[index], self.top5_scores[index],
                           self.errors[index], None if self.stamps is None else self.stamps[index])

    def sorted_by_id(self) -> Predictions:
        """The same rows ordered by image id."""
        return self.take(np.argsort(self.image_ids, kind="stable"))

    def select(self, image_ids) -> Predictions:
        """The rows for `image_ids`, in that order; an id that is not present raises KeyError."""
        row_of = {image_id: row for row, image_id in enumerate(self.image_ids.tolist())}
        wanted = np.asarray(image_ids, dtype=str).reshape(-1).tolist()
        missing = [image_id for image_id in wanted if image_id not in row_of]
        if missing:
            raise KeyError(f"{len(missing)} image ids not in the predictions, e.g. {', '.join(missing[:3])}")
        return self.take(np.array([row_of[image_id] for image_id in wanted], dtype=np.intp))

    @classmethod
    def concat(cls, parts: list[Predictions]) -> Predictions:
        """All rows of `parts`, in order."""
        if not parts:
            return cls.empty()
        stamps = None if any(p.stamps is None for p in parts) else np.concatenate([p.stamps for p in parts])
        return cls(np.concatenate([p.image_ids for p in parts]), np.concatenate([p.labels for p in parts]),
                   np.concatenate([p.top5_ids for p in parts]), np.concatenate([p.top5_scores for p in parts]),
                   np.concatenate([p.errors for p in parts]), stamps)

    @classmethod
    def empty(cls) -> Predictions:
        """A table with no rows."""
        return cls(np.array([], dtype=str), np.zeros(0, np.int32), np.zeros((0, 5), np.int32),
                   np.zeros((0, 5), np.float32), np.array([], dtype=str))



def predictions_csv_bytes(predictions: Predictions) -> bytes:
    """The table as predictions.csv holds it, rows in the table's order.

    The csv module, not pandas: the table is written at the end of every run and importing pandas costs more than
    writing 50,000 rows. Quoting is minimal, as pandas writes it, and pandas.read_csv reads it back.
    """
    buffer = io.StringIO()
    buffer.write(",".join(CSV_COLUMNS) + "\n")
    columns = (predictions.image_ids.tolist(), predictions.labels.tolist(), predictions.top5_ids.tolist(),
               predictions.top5_scores.tolist(), predictions.errors.tolist())
    csv.writer(buffer, lineterminator="\n").writerows(
        [image_id, label, *top5, *(SCORE_FORMAT % score for score in scores), error]
        for image_id, label, top5, scores, error in zip(*columns))
    return buffer.getvalue().encode("utf-8")


def write_predictions_record(predictions: Predictions, path: str | os.PathLike) -> None:
    """A compact, reproducible (gzip mtime 0) copy of a predictions table, e.g. beside baselines.yaml."""
    atomic_write_bytes(path, predictions_record_bytes(predictions))


def predictions_record_bytes(predictions: Predictions) -> bytes:
    """The bytes write_predictions_record stores: equal tables give equal bytes."""
    return gzip.compress(predictions_csv_bytes(predictions.sorted_by_id()), mtime=0)


def read_predictions_record(path: str | os.PathLike) -> Predictions:
    """Read a table written by write_predictions_record (ArtifactError naming the file on damage)."""
    path = Path(path)
    try:
        data = gzip.decompress(path.read_bytes())
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise ArtifactError(f"{path}: cannot read per-image record: {exc}") from exc
    return read_predictions_csv(path, data)


def read_predictions_csv(path: Path, data: bytes | None = None) -> Predictions:
    """Parse a predictions table written by predictions_csv_bytes (ArtifactError naming the file on damage)."""
    import pandas as pd

    dtypes = {"image_id": str, "label": np.int32, "error": str,
              **{name: np.int32 for name in ID_COLUMNS}, **{name: np.float32 for name in SCORE_COLUMNS}}
    source = io.BytesIO(data) if data is not None else path
    try:
        df = pd.read_csv(source, dtype=dtypes, engine="c", keep_default_na=False,
                         na_values={name: ["nan"] for name in SCORE_COLUMNS})
    except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError, OSError, UnicodeDecodeError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ArtifactError(f"{path}: damaged predictions table: {reason}") from exc
    if list(df.columns) != list(CSV_COLUMNS):
        raise ArtifactError(f"{path}: damaged predictions table: columns {', '.join(map(str, df.columns))}, "
                            f"expected {', '.join(CSV_COLUMNS)}")
    predictions = Predictions.from_frame(df)
    if len(np.unique(predictions.image_ids)) != len(predictions):
        raise ArtifactError(f"{path}: damaged predictions table: duplicate image ids")
    return predictions

