"""Files that are never half-written: atomic writes (temporary file, fsync, rename), JSON, cross-process locks, and
the content keys that name cached results.

Every file is written to a temporary file in the same directory, fsynced and renamed over the target, so a crash or a
full disk leaves either the old file or the new one, never half of one. durable=False skips the fsyncs for files that
are checked when read back.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import functools
import hashlib
import io
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .errors import ArtifactError

if os.name == "nt":
    import msvcrt
else:
    import fcntl

# mkstemp creates files 0600; give artifacts the mode an ordinary open() would have.
_UMASK = os.umask(0)
os.umask(_UMASK)
_FILE_MODE = 0o666 & ~_UMASK


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



def read_array(path: str | os.PathLike, shape: tuple[int, ...], dtype) -> np.ndarray:
    """The array that atomic_write_array stored at `path`, which must have exactly this shape and dtype.

    ValueError when the file holds anything else (damaged, truncated, another shape); OSError when it cannot be read.
    """
    # The header is compared as bytes with the one np.save writes, and the data read straight into the array with
    # readinto, which releases the GIL. np.load reads decode-cache entries holding the GIL, stalling the other
    # workers: a warm predict() of mobilenet_v1_025_128_quant on the 700 fixture images took 0.252 s with np.load
    # and 0.230 s with this (medians of 8 rounds of predict() in a fresh process, the two readers interleaved).
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
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
            return True
        except OSError:
            return False
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
