"""The decode cache on disk: one directory per geometry under artifacts/decode-cache/, its size, and pruning.

The pipeline fills a geometry's directory with one .npy per chunk of images (and a .stamps.npy of what they were
decoded from) (see pipeline._cached_geometry) and marks
it used at the start of every run; nothing is ever evicted by a run. `prune` removes whole geometries, least
recently used first, so that a nightly job can bound the disk the cache takes (`python -m evaluator cache --max-gb`).
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from .artifacts import atomic_write_bytes, read_json
from .errors import ArtifactError

CACHE_DIR = "decode-cache"
USED_MARKER = "last-used.json"  # its mtime is the last run that used the geometry; its content says what geometry it is


@dataclass(frozen=True)
class GeometryCache:
    path: Path
    n_bytes: int
    n_entries: int  # cached chunks
    last_used: float  # seconds since the epoch
    description: str  # the geometry, as preprocess.geometry_key() names it


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
