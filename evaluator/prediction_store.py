"""A predictions artifact on disk: one directory per run, filled chunk by chunk and finalized into one table.

    <artifacts>/predictions/<model stem>-<tta>-<runtime>-<key>[.shard-K-of-N][.recompute]/
        parts/part-<first image id>-<n>.npy   chunks written while predicting (resume = skip their ids)
        predictions.csv                        the merged table, sorted by image id (predictions.py)
        stamps.npy                             what each row of predictions.csv was computed from (stamps.py)
        meta.json                              how it was made; written last, so its presence marks completion

The parts alone are not fsynced: they only save recomputation, and one that a power loss left empty or zero-filled is
recognised and predicted again.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import shutil
from pathlib import Path

import numpy as np

from . import stamps as stamps_module
from .errors import ArtifactError
from .fileio import atomic_write_array, atomic_write_bytes, cache_key, read_array, read_json, write_json_atomic
from .predictions import Predictions, predictions_csv_bytes, read_predictions_csv

log = logging.getLogger(__name__)

PREDICTIONS_DIR = "predictions"  # under the artifacts directory
PREDICTIONS_CSV = "predictions.csv"
META_JSON = "meta.json"
PARTS_DIR = "parts"
STAMPS_NPY = "stamps.npy"  # int64 (N, 4), the stamp of each row of predictions.csv, in its order
# meta.json key under which finalize() records what it wrote, so load() can detect a damaged or edited table.
TABLE_META_KEY = "predictions_csv"


def run_dir(artifacts_dir: str | os.PathLike, model_path: str | os.PathLike, tta: str, runtime: str, key: str) -> Path:
    """Directory of the predictions artifact of this model file, TTA and runtime with this cache key."""
    return Path(artifacts_dir) / PREDICTIONS_DIR / f"{Path(model_path).stem}-{tta}-{runtime}-{key}"


def is_run_dir(path: str | os.PathLike) -> bool:
    """True for the directory of a finished predictions artifact."""
    return PredictionStore(path).is_complete()


_SAFE_ID = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")
_PART_FIELDS = ("image_id", "label", "top5_ids", "top5_scores", "error", "stamp")


def _part_name(predictions: Predictions) -> str:
    first_id = str(predictions.image_ids[0])
    # An id that is unsafe in a file name is replaced by its hash, keeping the name deterministic and unique.
    stem = first_id if _SAFE_ID.fullmatch(first_id) and len(first_id) <= 100 else cache_key(first_id=first_id)
    return f"part-{stem}-{len(predictions)}.npy"


def _part_record(predictions: Predictions) -> np.ndarray:
    """One chunk as a structured array: a single .npy holds it, loaded without pickle or zip parsing."""
    record = np.empty(len(predictions), dtype=[
        ("image_id", predictions.image_ids.dtype), ("label", "<i4"), ("top5_ids", "<i4", (5,)),
        ("top5_scores", "<f4", (5,)), ("error", predictions.errors.dtype), ("stamp", "<i8", (4,))])
    stamps = predictions.stamps if predictions.stamps is not None else stamps_module.empty(len(predictions))
    for field, values in zip(_PART_FIELDS, (predictions.image_ids, predictions.labels, predictions.top5_ids,
                                            predictions.top5_scores, predictions.errors, stamps)):
        record[field] = values
    return record


class PredictionStore:
    """One predictions artifact directory: chunks while predicting, then a finalized CSV + meta.json."""

    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory)
        self.parts_dir = self.directory / PARTS_DIR
        self.csv_path = self.directory / PREDICTIONS_CSV
        self.meta_path = self.directory / META_JSON
        self.stamps_path = self.directory / STAMPS_NPY
        self._written: dict[str, Predictions] = {}  # parts this store wrote, by file name: finalize re-reads none
        self._held: list[Predictions] = []  # finished chunks kept in memory until the next checkpoint()

    def __repr__(self) -> str:
        return f"PredictionStore({str(self.directory)!r})"

    def is_complete(self) -> bool:
        """True once finalize() has written both predictions.csv and meta.json."""
        return self.meta_path.is_file() and self.csv_path.is_file()

    def clear(self) -> None:
        """Remove everything this store wrote (completion marker first), so the next run predicts from scratch."""
        self._written.clear()
        self._held.clear()
        try:
            for path in (self.meta_path, self.csv_path, self.stamps_path):
                path.unlink(missing_ok=True)
            if self.parts_dir.exists():
                shutil.rmtree(self.parts_dir)
        except OSError as exc:
            raise ArtifactError(f"cannot clear {self.directory}: {exc.strerror or exc}") from exc

    def write_chunk(self, predictions: Predictions) -> Path | None:
        """Store one chunk as a part now (keep + checkpoint)."""
        self.keep(predictions)
        return self.checkpoint()

    def keep(self, predictions: Predictions) -> None:
        """Hold a finished chunk in memory; the next checkpoint() writes it, or finalize() merges it directly."""
        if len(predictions):
            self._held.append(predictions)

    def checkpoint(self) -> Path | None:
        """Write the held chunks atomically as one part, parts/part-<first id>-<n>.npy (None if nothing is held).

        The held chunks are let go either way: after an ArtifactError they are predicted again by the next run, and a
        failing disk is not written to twice.
        """
        held, self._held = self._held, []
        if not held:
            return None
        if self.is_complete():
            raise ArtifactError(f"{self.directory}: already finalized; delete the directory to predict again")
        predictions = Predictions.concat(held) if len(held) > 1 else held[0]
        try:
            self.parts_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ArtifactError(f"cannot write {self.parts_dir}: {exc.strerror or exc}") from exc
        path = self.parts_dir / _part_name(predictions)
        # Not fsynced: a part only saves recomputation, and _read_part drops one that a power loss left damaged.
        # (An fsync per part costs ~4% of a fast model's run here when parts are frequent, and more on network storage.)
        atomic_write_array(path, _part_record(predictions), durable=False)
        self._written[path.name] = predictions
        return path

    def _part_paths(self) -> list[Path]:
        # Temporary files start with a dot and never match.
        return sorted(self.parts_dir.glob("part-*.npy")) if self.parts_dir.is_dir() else []

    def _read_part(self, path: Path) -> Predictions | None:
        if path.name in self._written:
            return self._written[path.name]
        try:
            with open(path, "rb") as file:
                record = np.load(file, allow_pickle=False)
            if record.dtype.names != _PART_FIELDS:
                raise ValueError(f"fields {record.dtype.names}, expected {_PART_FIELDS}")
            part = Predictions(*(record[field] for field in _PART_FIELDS))
            if not part.image_ids.size or not all(part.image_ids) or _part_name(part) != path.name:
                raise ValueError("its image ids do not match its name (zero-filled or renamed)")
            return part
        except Exception as exc:  # noqa: BLE001 - any unreadable part is recomputed, whatever the reason
            log.warning("ignoring damaged predictions chunk %s (%s); its images will be predicted again", path, exc)
            return None

    def done_ids(self) -> set[str]:
        """Ids already predicted: all rows of a finalized artifact, else the rows of every readable part and held
        chunk."""
        if self.is_complete():
            return set(self.load().image_ids.tolist())
        done: set[str] = set()
        for part in [*map(self._read_part, self._part_paths()), *self._held]:
            if part is not None:
                done.update(part.image_ids.tolist())
        return done

    def load_parts(self) -> Predictions:
        """All readable parts and the held chunks merged, sorted by image id, one row per id."""
        parts = [part for part in map(self._read_part, self._part_paths()) if part is not None]
        merged = Predictions.concat(parts + self._held)
        _, first_rows = np.unique(merged.image_ids, return_index=True)
        return merged.take(np.sort(first_rows)).sorted_by_id()

    def finalize(self, meta: dict) -> Predictions:
        """Merge the chunks into predictions.csv, then write meta.json (the completion marker) and remove parts/.

        Returns the table as load() will read it back (scores are written with SCORE_FORMAT, exact for float32).
        """
        if not self._held and not self.parts_dir.is_dir() and self.csv_path.exists():
            raise ArtifactError(f"{self.directory}: nothing to finalize (no parts/ directory, predictions.csv exists)")
        if TABLE_META_KEY in meta:
            raise ArtifactError(f"finalize: meta key {TABLE_META_KEY!r} is reserved for the artifact itself")
        predictions = self.load_parts()
        csv_bytes = predictions_csv_bytes(predictions)
        try:
            with contextlib.suppress(FileNotFoundError):
                self.meta_path.unlink()
            self.directory.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(self.csv_path, csv_bytes)
            stamps = predictions.stamps if predictions.stamps is not None else stamps_module.empty(len(predictions))
            atomic_write_array(self.stamps_path, stamps)
            table = {"rows": len(predictions), "sha256": hashlib.sha256(csv_bytes).hexdigest()}
            write_json_atomic(self.meta_path, {**meta, TABLE_META_KEY: table})
        except BaseException:
            with contextlib.suppress(ArtifactError):
                self.checkpoint()  # the held chunks are kept for the next run where the disk still takes them
            raise
        shutil.rmtree(self.parts_dir, ignore_errors=True)
        self._held.clear()
        return predictions

    def meta(self) -> dict:
        """Contents of meta.json (ArtifactError if missing or damaged)."""
        meta = read_json(self.meta_path)
        if not isinstance(meta, dict):
            raise ArtifactError(f"{self.meta_path}: expected a JSON object, found {type(meta).__name__}")
        return meta

    def load(self) -> Predictions:
        """Read the finalized predictions.csv; a damaged or edited table raises ArtifactError naming the problem."""
        if not self.is_complete():
            missing = self.meta_path if not self.meta_path.is_file() else self.csv_path
            raise ArtifactError(f"{self.directory}: not a finished predictions artifact ({missing.name} missing)")
        table = self.meta().get(TABLE_META_KEY)
        try:
            csv_bytes = self.csv_path.read_bytes()
        except OSError as exc:
            raise ArtifactError(f"cannot read {self.csv_path}: {exc.strerror or exc}") from exc
        if isinstance(table, dict) and hashlib.sha256(csv_bytes).hexdigest() != table.get("sha256"):
            raise ArtifactError(f"{self.csv_path}: contents differ from the sha256 recorded in {self.meta_path.name}"
                                " (file damaged or edited); delete the directory to predict again")
        predictions = read_predictions_csv(self.csv_path, csv_bytes)
        if isinstance(table, dict) and len(predictions) != table.get("rows"):
            raise ArtifactError(f"{self.csv_path}: {len(predictions)} rows, "
                                f"{self.meta_path.name} says {table.get('rows')}")
        try:
            predictions.stamps = read_array(self.stamps_path, (len(predictions), 4), np.int64)
        except (OSError, ValueError):
            predictions.stamps = stamps_module.empty(len(predictions))  # unknown origin: every row is predicted again
        return predictions

    def drop(self, image_ids) -> None:
        """Forget the rows of these images (their files changed): the rest becomes one part, the next run predicts
        the dropped images and finalizes again. Nothing else is recomputed."""
        current = self.load() if self.is_complete() else self.load_parts()
        keep = ~np.isin(current.image_ids, np.asarray(list(image_ids), dtype=str))
        self.clear()
        self.keep(current.take(np.flatnonzero(keep)))
        self.checkpoint()
