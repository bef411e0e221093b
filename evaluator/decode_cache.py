"""The decode cache on disk: one directory per geometry under artifacts/decode-cache/, its entries, its size, and
pruning.

A geometry's directory holds one entry per chunk of images: the uint8 TTA geometry of its images, what each was
decoded from and the decode errors (read_entry, EntryWriter.write). The pipeline marks the directory used at the
start of every run; nothing is ever evicted by a run. `prune` removes whole geometries, least recently used first, so
that a nightly job can bound the disk the cache takes (`python -m evaluator cache --max-gb`).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import stamps
from .errors import ArtifactError
from .fileio import atomic_write_array, atomic_write_bytes, read_array, read_json

CACHE_DIR = "decode-cache"
USED_MARKER = "last-used.json"  # its mtime is the last run that used the geometry; its content says what geometry it is


@dataclass(frozen=True)
class GeometryCache:
    path: Path
    n_bytes: int
    n_entries: int  # cached chunks
    last_used: float  # seconds since the epoch
    description: str  # the geometry, as preprocess.geometry_key() names it


@dataclass
class Entry:
    """One chunk's decoded geometry: what a cache entry holds, and what a chunk without one computes."""

    images: np.ndarray  # uint8 (n, size, size, 3) RGB; zeros where decoding failed
    errors: list[str]   # per image, '' when it decoded
    stamps: np.ndarray  # int64 (n, 4) what each image was decoded from (stamps.py)

    @classmethod
    def empty(cls, n: int, size: int) -> Entry:
        """An entry of n images of which none is decoded yet (every stamp stale)."""
        return cls(np.zeros((n, size, size, 3), np.uint8), [""] * n, stamps.empty(n))


# An entry is `<chunk>.npy` (the images), whose presence marks the entry complete, preceded by `<chunk>.stamps.npy`
# and, only when an image failed, `<chunk>.errors.json` (a JSON list of strings). Plain .npy, not .npz: it loads
# without zip parsing and checksumming, which matters when the model is fast.
def _entry_files(directory: Path, chunk_key: str) -> tuple[Path, Path, Path]:
    return (directory / f"{chunk_key}.npy", directory / f"{chunk_key}.stamps.npy",
            directory / f"{chunk_key}.errors.json")


def read_entry(directory: Path, chunk_key: str, n: int, size: int) -> Entry | None:
    """The entry of this chunk, None when there is none or it is damaged (it is then computed and replaced)."""
    images_file, stamps_file, errors_file = _entry_files(directory, chunk_key)
    try:
        images = read_array(images_file, (n, size, size, 3), np.uint8)
        entry_stamps = read_array(stamps_file, (n, 4), np.int64)
        errors = [str(error) for error in read_json(errors_file)] if errors_file.is_file() else [""] * n
    except (OSError, ValueError, TypeError, ArtifactError):
        return None
    return Entry(images, errors, entry_stamps) if len(errors) == n else None


class EntryWriter:
    """Writes decode-cache entries in order on one thread of its own, so that its fsyncs never leave a core idle.

    close() waits for the writes; close(check=True) raises the first that failed (ArtifactError names the file).
    """

    def __init__(self):
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="evaluator-cache-writer")
        self._writes: list[Future] = []

    def write(self, directory: Path, chunk_key: str, entry: Entry, replacing: bool) -> None:
        """Store the entry (its arrays are never modified afterwards: the writer reads them directly).

        replacing: an entry is there already; it is removed first, so old pixels never pair with new stamps.
        """
        images_file, stamps_file, errors_file = _entry_files(directory, chunk_key)
        if replacing:
            self._submit(_unlink, images_file)
        if any(entry.errors):
            self._submit(atomic_write_bytes, errors_file, json.dumps(entry.errors).encode("utf-8"))
        else:  # a stale list from a damaged entry must not outlive it (an unusable directory fails the write below)
            self._submit(_unlink, errors_file)
        self._submit(atomic_write_array, stamps_file, entry.stamps)
        self._submit(atomic_write_array, images_file, entry.images)

    def _submit(self, write, *args) -> None:
        self._writes.append(self._executor.submit(write, *args))

    def close(self, check: bool = True) -> None:
        self._executor.shutdown(wait=True)
        if check:
            for write in self._writes:
                write.result()


def _unlink(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()


def mark_used(directory: Path, description: str) -> None:
    """Record that a run uses this geometry's directory now (creating it and its marker on first use)."""
    marker = directory / USED_MARKER
    try:
        os.utime(marker)
    except FileNotFoundError:
        atomic_write_bytes(marker, json.dumps({"geometry": description}).encode("utf-8"))
    except OSError as exc:
        raise ArtifactError(f"cannot write {marker}: {exc.strerror or exc}") from exc


def geometry_caches(artifacts_dir: Path) -> list[GeometryCache]:
    """Every geometry directory of the cache, least recently used first."""
    root = Path(artifacts_dir) / CACHE_DIR
    if not root.is_dir():
        return []
    found = []
    for directory in sorted(path for path in root.iterdir() if path.is_dir()):
        n_bytes = n_entries = 0
        last_used = directory.stat().st_mtime
        with os.scandir(directory) as entries:
            for entry in entries:
                if entry.is_file(follow_symlinks=False):
                    n_bytes += entry.stat(follow_symlinks=False).st_size
                    n_entries += (entry.name.endswith(".npy") and not entry.name.endswith(".stamps.npy")
                                  and not entry.name.startswith("."))
        marker = directory / USED_MARKER
        description = "(unknown geometry: written before usage was recorded)"
        if marker.is_file():
            last_used = max(last_used, marker.stat().st_mtime)
            try:
                description = str(read_json(marker)["geometry"])
            except (ArtifactError, KeyError, TypeError):
                description = "(unreadable marker)"
        found.append(GeometryCache(directory, n_bytes, n_entries, last_used, description))
    return sorted(found, key=lambda cache: cache.last_used)


def prune(artifacts_dir: Path, max_bytes: int) -> list[GeometryCache]:
    """Delete whole geometries, least recently used first, until the cache holds at most max_bytes; returns them.

    A run using a deleted geometry at the same time decodes its chunks again and writes them back.
    """
    caches = geometry_caches(artifacts_dir)
    total = sum(cache.n_bytes for cache in caches)
    removed = []
    for cache in caches:
        if total <= max_bytes:
            break
        try:
            shutil.rmtree(cache.path)
        except OSError as exc:
            raise ArtifactError(f"cannot delete {cache.path}: {exc.strerror or exc}") from exc
        total -= cache.n_bytes
        removed.append(cache)
    return removed
