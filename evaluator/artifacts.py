"""Artifacts on disk: atomic writes, cross-process locks, cache keys, the per-image predictions table.

A predictions artifact is one directory:
    parts/part-<first image id>-<n>.npy   chunks written while predicting (resume = skip their ids)
    predictions.csv                        the merged table, sorted by image id (pandas-readable)
    meta.json                              how it was made; written last, so its presence marks completion

Every file is written to a temporary file in the same directory, fsynced and renamed over the target, so a crash or a
full disk leaves either the old file or the new one, never half of one. The parts alone are not fsynced: they only
save recomputation, and one that a power loss left empty or zero-filled is recognised and predicted again.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import errno
import functools
import gzip
import hashlib
import io
import json
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from evaluator import stamps as stamps_module
from evaluator.errors import ArtifactError

log = logging.getLogger(__name__)

PREDICTIONS_CSV = "predictions.csv"
META_JSON = "meta.json"
PARTS_DIR = "parts"
STAMPS_NPY = "stamps.npy"  # int64 (N, 4), the stamp of each row of predictions.csv, in its order
# meta.json key under which finalize() records what it wrote, so load() can detect a damaged or edited table.
TABLE_META_KEY = "predictions_csv"
# 9 significant digits reproduce every float32 exactly.
SCORE_FORMAT = "%.9g"

# mkstemp creates files 0600; give artifacts the mode an ordinary open() would have.
_UMASK = os.umask(0)
os.umask(_UMASK)
_FILE_MODE = 0o666 & ~_UMASK


# --------------------------------------------------------------------------------------------------------------------
# Atomic files


def fsync_directory(directory: Path) -> None:
    """Make a rename inside `directory` durable (best effort where the filesystem cannot fsync directories)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as exc:
        # Some filesystems cannot fsync a directory; the rename itself has already happened.
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Replace `path` with `data` atomically (creating its directory); on failure the previous file stays as it was."""
    _atomic_write(path, lambda file: file.write(data))


def atomic_write_array(path: str | os.PathLike, array: np.ndarray, durable: bool = True) -> None:
    """Replace `path` with `array` as .npy (no pickle) atomically, streamed to the file without an in-memory copy.

    durable=False skips the fsyncs: the file survives the process being killed, but a power loss may leave it empty
    or zero-filled, so only files that are checked when read back (prediction chunks) may use it.
    """
    _atomic_write(path, lambda file: np.save(file, array, allow_pickle=False), durable)


def read_array_exactly(path: str | os.PathLike, shape: tuple[int, ...], dtype) -> np.ndarray:
    """The array that atomic_write_array stored at `path`, which must have exactly this shape and dtype.

    The .npy header is compared as bytes with the one np.save writes for them, not parsed, and the data is read
    straight into the array: next to a fast model, np.load's header parsing is a cost. ValueError when the file
    holds anything else (damaged, truncated, another shape); OSError when it cannot be read.
    """
    dtype = np.dtype(dtype)
    header = _npy_header(tuple(shape), dtype)
    array = np.empty(shape, dtype)
    with open(path, "rb") as file:
        if file.read(len(header)) != header or file.readinto(array) != array.nbytes or file.read(1):
            raise ValueError(f"{path}: not an .npy file of {dtype} {tuple(shape)}")
    return array


@functools.lru_cache(maxsize=64)
def _npy_header(shape: tuple[int, ...], dtype: np.dtype) -> bytes:
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": shape})
    return header.getvalue()


def _atomic_write(path: str | os.PathLike, write: Callable, durable: bool = True) -> None:
    # temporary file in the same directory, fsync, rename, fsync the directory: readers see the old or the new file
    path = Path(path)
    tmp_name = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as tmp_file:
            write(tmp_file)
            tmp_file.flush()
            os.fchmod(tmp_file.fileno(), _FILE_MODE)
            if durable:
                os.fsync(tmp_file.fileno())
        os.replace(tmp_name, path)
        tmp_name = None
        if durable:
            fsync_directory(path.parent)
    except OSError as exc:
        raise ArtifactError(f"cannot write {path}: {exc.strerror or exc}") from exc
    finally:
        if tmp_name is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp_name)


def replace_directory(source: Path, target: Path) -> None:
    """Put the finished directory `source` in the place of `target`: target is renamed aside, source renamed into
    place, then the old one removed. Until the first rename the old target is complete and untouched."""
    source, target = Path(source), Path(target)
    old = target.with_name(target.name + ".old")
    try:
        shutil.rmtree(old, ignore_errors=True)
        if target.exists():
            os.replace(target, old)
        os.replace(source, target)
        fsync_directory(target.parent)
    except OSError as exc:
        raise ArtifactError(f"cannot move {source} to {target}: {exc.strerror or exc}") from exc
    shutil.rmtree(old, ignore_errors=True)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Replace `path` with UTF-8 `text` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def write_json_atomic(path: str | os.PathLike, obj) -> None:
    """Write `obj` as JSON (sorted keys, indent 2) atomically."""
    atomic_write_text(path, json.dumps(obj, sort_keys=True, indent=2, ensure_ascii=False) + "\n")


def read_json(path: str | os.PathLike):
    """Read a JSON file; a missing, unreadable or malformed file raises ArtifactError naming it."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ArtifactError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ArtifactError(f"{path}: not UTF-8 text (byte {exc.start}); the file is damaged") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ArtifactError(f"{path}: line {exc.lineno} column {exc.colno}: invalid JSON ({exc.msg})") from exc


class LockTimeout(TimeoutError):
    """file_lock() could not take the lock within its timeout."""


@contextlib.contextmanager
def file_lock(path: str | os.PathLike, timeout: float | None = None):
    """Hold an exclusive cross-process lock on `<path>.lock` (LockTimeout after `timeout` seconds); yields its path.

    An advisory lock on an open file (flock; msvcrt on Windows): the operating system drops it when the holder
    exits or is killed, so a crashed run never leaves a stale lock behind. A directory that cannot be created or
    written raises ArtifactError naming the lock file.
    """
    lock_path = Path(str(path) + ".lock")
    try:
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, _FILE_MODE)
    except OSError as exc:
        raise ArtifactError(f"cannot write {lock_path}: {exc.strerror or exc}") from exc
    try:
        deadline = time.monotonic() + (float("inf") if timeout is None else timeout)
        while not _try_lock(fd, wait=timeout is None):
            if time.monotonic() >= deadline:
                raise LockTimeout(f"{lock_path}: still locked by another process after {timeout} s")
            time.sleep(0.05)
        yield lock_path
    finally:
        os.close(fd)  # closing the file releases the lock


def _try_lock(fd: int, wait: bool) -> bool:
    """Lock the open file; True when locked. `wait` blocks until then where the platform can (POSIX flock)."""
    if os.name == "nt":
        import msvcrt

        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
            return True
        except OSError:
            return False
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False


def _json_default(value):
    if isinstance(value, os.PathLike):
        return Path(value).as_posix()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    raise TypeError(f"cache_key: cannot use a {type(value).__name__} ({value!r}) as part of a key")


def cache_key(**parts) -> str:
    """Stable 16-hex-digit key (sha256 of the parts as sorted JSON); equal parts give equal keys in any order."""
    encoded = json.dumps(parts, sort_keys=True, default=_json_default, separators=(",", ":"))
    return hashlib.sha256(encoded.encode("utf-8")).hexdigest()[:16]


# --------------------------------------------------------------------------------------------------------------------
# Predictions table

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

    def ok_mask(self) -> np.ndarray:
        """True for images that were scored (no error)."""
        return self.errors == ""

    def to_frame(self):
        """The table as a pandas DataFrame with columns image_id, label, id1..id5, score1..score5, error."""
        import pandas as pd

        columns = {"image_id": self.image_ids, "label": self.labels}
        columns.update({name: self.top5_ids[:, k] for k, name in enumerate(ID_COLUMNS)})
        columns.update({name: self.top5_scores[:, k] for k, name in enumerate(SCORE_COLUMNS)})
        columns["error"] = self.errors
        return pd.DataFrame(columns, columns=list(CSV_COLUMNS))

    @classmethod
    def from_frame(cls, df) -> Predictions:
        """Inverse of to_frame()."""
        missing = [name for name in CSV_COLUMNS if name not in df.columns]
        if missing:
            raise ValueError(f"missing columns {', '.join(missing)}")
        errors = df["error"].fillna("").to_numpy(dtype=str)
        return cls(image_ids=df["image_id"].to_numpy(dtype=str), labels=df["label"].to_numpy(dtype=np.int32),
                   top5_ids=df[list(ID_COLUMNS)].to_numpy(dtype=np.int32),
                   top5_scores=df[list(SCORE_COLUMNS)].to_numpy(dtype=np.float32), errors=errors)

    def _take(self, index: np.ndarray) -> Predictions:
        return Predictions(self.image_ids[index], self.labels[index], self.top5_ids[index], self.top5_scores[index],
                           self.errors[index], None if self.stamps is None else self.stamps[index])

    def sorted_by_id(self) -> Predictions:
        """The same rows ordered by image id."""
        return self._take(np.argsort(self.image_ids, kind="stable"))

    def select(self, image_ids) -> Predictions:
        """The rows for `image_ids`, in that order; an id that is not present raises KeyError."""
        row_of = {image_id: row for row, image_id in enumerate(self.image_ids.tolist())}
        wanted = np.asarray(image_ids, dtype=str).reshape(-1).tolist()
        missing = [image_id for image_id in wanted if image_id not in row_of]
        if missing:
            raise KeyError(f"{len(missing)} image ids not in the predictions, e.g. {', '.join(missing[:3])}")
        return self._take(np.array([row_of[image_id] for image_id in wanted], dtype=np.intp))

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


# --------------------------------------------------------------------------------------------------------------------
# Predictions artifact

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

    def write_chunk(self, predictions, labels=None, top5_ids=None, top5_scores=None, errors=None) -> Path | None:
        """Store one chunk as a part now (keep + checkpoint); accepts a Predictions or its five arrays."""
        if not isinstance(predictions, Predictions):
            predictions = Predictions(predictions, labels, top5_ids, top5_scores, errors)
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
        return merged._take(np.sort(first_rows)).sorted_by_id()

    def finalize(self, meta: dict) -> Predictions:
        """Merge the chunks into predictions.csv, then write meta.json (the completion marker) and remove parts/.

        Returns the table as load() will read it back (scores are written with SCORE_FORMAT, exact for float32).
        """
        if not self._held and not self.parts_dir.is_dir() and self.csv_path.exists():
            raise ArtifactError(f"{self.directory}: nothing to finalize (no parts/ directory, predictions.csv exists)")
        if TABLE_META_KEY in meta:
            raise ArtifactError(f"finalize: meta key {TABLE_META_KEY!r} is reserved for the artifact itself")
        predictions = self.load_parts()
        csv_bytes = _csv_bytes(predictions)
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
            predictions.stamps = read_array_exactly(self.stamps_path, (len(predictions), 4), np.int64)
        except (OSError, ValueError):
            predictions.stamps = stamps_module.empty(len(predictions))  # unknown origin: every row is predicted again
        return predictions

    def drop(self, image_ids) -> None:
        """Forget the rows of these images (their files changed): the rest becomes one part, the next run predicts
        the dropped images and finalizes again. Nothing else is recomputed."""
        current = self.load() if self.is_complete() else self.load_parts()
        keep = ~np.isin(current.image_ids, np.asarray(list(image_ids), dtype=str))
        self.clear()
        self.keep(current._take(np.flatnonzero(keep)))
        self.checkpoint()


def _csv_bytes(predictions: Predictions) -> bytes:
    # The csv module, not pandas: the table is written at the end of every run and importing pandas costs more than
    # writing 50,000 rows. Quoting is minimal, as pandas writes it, and pandas.read_csv reads it back.
    header = ",".join(CSV_COLUMNS) + "\n"
    ids, errors = predictions.image_ids.tolist(), predictions.errors.tolist()
    columns = (ids, predictions.labels.tolist(), predictions.top5_ids.tolist(), predictions.top5_scores.tolist())
    if not any(errors) and not _NEEDS_QUOTES.search("".join(ids)):  # the usual table: one format per row, 2x faster
        return (header + "".join([_PLAIN_ROW % (image_id, label, *top5, *scores)
                                  for image_id, label, top5, scores in zip(*columns)])).encode("utf-8")
    buffer = io.StringIO()
    buffer.write(header)
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerows([image_id, label, *top5, *(SCORE_FORMAT % score for score in scores), error]
                     for (image_id, label, top5, scores), error in zip(zip(*columns), errors))
    return buffer.getvalue().encode("utf-8")


# What the csv module quotes in a field; a table without such ids and without errors is written with _PLAIN_ROW.
_NEEDS_QUOTES = re.compile(r'[,"\r\n]')
_PLAIN_ROW = ",".join(["%s", "%d", *["%d"] * len(ID_COLUMNS), *[SCORE_FORMAT] * len(SCORE_COLUMNS)]) + ",\n"


def write_predictions_record(predictions: Predictions, path: str | os.PathLike) -> None:
    """A compact, reproducible (gzip mtime 0) copy of a predictions table, e.g. beside baselines.yaml."""
    atomic_write_bytes(path, predictions_record_bytes(predictions))


def predictions_record_bytes(predictions: Predictions) -> bytes:
    """The bytes write_predictions_record stores: equal tables give equal bytes."""
    return gzip.compress(_csv_bytes(predictions.sorted_by_id()), mtime=0)


def read_predictions_record(path: str | os.PathLike) -> Predictions:
    """Read a table written by write_predictions_record (ArtifactError naming the file on damage)."""
    path = Path(path)
    try:
        data = gzip.decompress(path.read_bytes())
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise ArtifactError(f"{path}: cannot read per-image record: {exc}") from exc
    return read_predictions_csv(path, data)


def read_predictions_csv(path: Path, data: bytes | None = None) -> Predictions:
    """Parse a predictions table written by PredictionStore.finalize (ArtifactError naming the file on damage)."""
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


# --------------------------------------------------------------------------------------------------------------------
# Seed-compatible prediction text files (REFERENCE §2): one <image_id>.txt per image, lines "label class_id score"


def write_prediction_texts(predictions: Predictions, directory: str | os.PathLike, class_names) -> int:
    """Write one <image_id>.txt per image in the seed format; a failed image gets an empty file (counts as a miss)."""
    directory = Path(directory)
    labels = [name.replace(" ", "_") for name in class_names]
    try:
        directory.mkdir(parents=True, exist_ok=True)
        for row, image_id in enumerate(predictions.image_ids.tolist()):
            lines = []
            for class_id, score in zip(predictions.top5_ids[row].tolist(), predictions.top5_scores[row].tolist()):
                if class_id < 0:
                    continue
                if class_id >= len(labels):
                    raise ArtifactError(f"{image_id}: class id {class_id} has no name ({len(labels)} class names)")
                lines.append(f"{labels[class_id]} {class_id} {score:f}\n")
            # 50,000 small exported files: plain writes, an fsync each would dominate the run.
            (directory / f"{image_id}.txt").write_text("".join(lines), encoding="utf-8")
    except OSError as exc:
        raise ArtifactError(f"cannot write prediction texts in {directory}: {exc.strerror or exc}") from exc
    return len(predictions)


def _text_image_id(path: Path) -> str:
    return path.name.split(".", 1)[0].removesuffix("_res")


def read_prediction_texts(directory: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read seed prediction files (*.txt, sorted) -> (image ids, top-5 class ids int32 (N, 5) padded with -1)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ArtifactError(f"{directory}: prediction directory not found")
    paths = sorted(directory.glob("*.txt"))
    image_ids = [_text_image_id(path) for path in paths]
    top5_ids = np.full((len(paths), 5), -1, dtype=np.int32)
    first_file: dict[str, Path] = {}
    for row, path in enumerate(paths):
        image_id = image_ids[row]
        if image_id in first_file:
            raise ArtifactError(f"{path}: image id {image_id} also predicted by {first_file[image_id].name}")
        first_file[image_id] = path
        top5_ids[row] = _read_prediction_text(path)
    order = np.argsort(np.asarray(image_ids, dtype=str), kind="stable")
    return np.asarray(image_ids, dtype=str)[order], top5_ids[order]


def _read_prediction_text(path: Path) -> list[int]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"cannot read {path}: {exc}") from exc
    class_ids = []
    for line_number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        tokens = line.split()
        if len(tokens) != 3:
            raise ArtifactError(f"{path}: line {line_number}: expected 'label class_id score', got {line!r}")
        try:
            class_id = int(tokens[1])
            float(tokens[2])
        except ValueError:
            raise ArtifactError(f"{path}: line {line_number}: class id or score is not a number: {line!r}") from None
        if not 0 <= class_id < 2**31 - 1:
            raise ArtifactError(f"{path}: line {line_number}: class id {class_id} out of range")
        class_ids.append(class_id)
    if len(class_ids) > 5:
        raise ArtifactError(f"{path}: {len(class_ids)} predictions, at most 5 expected")
    return class_ids + [-1] * (5 - len(class_ids))
