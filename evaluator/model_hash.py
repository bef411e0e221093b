"""sha256 of files, the one place that reads a file to hash it. A model's hash is computed once per file version
(path, size, mtime_ns) and remembered in <artifacts>/model-sha256.json, so a warm run checks a pinned hash without
reading the model again."""

from __future__ import annotations

import hashlib
from pathlib import Path

from .errors import ArtifactError
from .fileio import file_lock, read_json, write_json_atomic

CACHE_FILE = "model-sha256.json"
_MAX_REMEMBERED = 1000


def sha256_of(path: str | Path, hasher=None):
    """The sha256 hasher fed with the file's bytes, read in 1 MiB blocks (continuing `hasher` when given)."""
    hasher = hasher or hashlib.sha256()
    with open(path, "rb") as file:
        while block := file.read(1 << 20):
            hasher.update(block)
    return hasher


def file_sha256(path: str | Path, cache_dir: str | Path | None = None) -> str:
    """sha256 of a file; cache_dir (the artifacts directory) keeps it across processes."""
    path = Path(path)
    stat = path.stat()
    version = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    cache_file = Path(cache_dir) / CACHE_FILE if cache_dir is not None else None
    sha256 = _remembered(cache_file).get(version) if cache_file is not None else None
    if not (isinstance(sha256, str) and len(sha256) == 64):
        sha256 = sha256_of(path).hexdigest()
        if cache_file is not None:
            _remember(cache_file, version, sha256)
    return sha256


def _remembered(cache_file: Path) -> dict:
    try:
        remembered = read_json(cache_file) if cache_file.is_file() else {}
    except ArtifactError:
        return {}  # a damaged cache only costs a rehash
    return remembered if isinstance(remembered, dict) else {}


def _remember(cache_file: Path, version: str, sha256: str) -> None:
    try:
        with file_lock(cache_file):
            remembered = _remembered(cache_file)
            remembered[version] = sha256
            write_json_atomic(cache_file, dict(list(remembered.items())[-_MAX_REMEMBERED:]))
    except ArtifactError:
        pass  # an unwritable artifacts directory is reported by the run itself; the hash is still right
