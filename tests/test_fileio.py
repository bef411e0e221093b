"""Tests for evaluator/fileio.py: atomic writes, JSON, .npy arrays, cache keys, cross-process locks."""

import errno
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from evaluator import fileio
from evaluator.errors import ArtifactError
from evaluator.fileio import (
    LockTimeout,
    atomic_write_array,
    atomic_write_bytes,
    atomic_write_text,
    cache_key,
    file_lock,
    read_array,
    read_json,
    write_json_atomic,
)


def leftover_temp_files(directory: Path):
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("."))


def test_atomic_write_replaces_content_and_leaves_no_temp_file(tmp_path):
    target = tmp_path / "a.txt"
    atomic_write_text(target, "old")
    atomic_write_text(target, "néw")
    assert target.read_text(encoding="utf-8") == "néw"
    assert leftover_temp_files(tmp_path) == []
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask  # as open() would create it, not mkstemp's 0600


@pytest.mark.parametrize("failing", ["os.replace", "os.fsync"])
def test_atomic_write_failure_keeps_old_file_and_removes_temp(tmp_path, monkeypatch, failing):
    target = tmp_path / "result.json"
    atomic_write_bytes(target, b"previous")

    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(failing, no_space)
    with pytest.raises(ArtifactError, match=r"cannot write .*result\.json: No space left on device"):
        atomic_write_bytes(target, b"new content")
    monkeypatch.undo()
    assert target.read_bytes() == b"previous"
    assert leftover_temp_files(tmp_path) == []


def test_atomic_write_into_unwritable_directory_raises_artifact_error(tmp_path, monkeypatch):
    # Tests run as root, where chmod does not stop writes: simulate the refused temp file instead.
    def refused(*args, **kwargs):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))

    monkeypatch.setattr(fileio.tempfile, "mkstemp", refused)
    with pytest.raises(ArtifactError, match="cannot write .*out.txt: Permission denied"):
        atomic_write_text(tmp_path / "out.txt", "x")
    assert list(tmp_path.iterdir()) == []


def test_write_json_atomic_sorted_and_read_back(tmp_path):
    path = tmp_path / "meta.json"
    write_json_atomic(path, {"b": 1, "a": [1.5, "x"]})
    text = path.read_text()
    assert text.index('"a"') < text.index('"b"')
    assert text.startswith('{\n  "a"')
    assert read_json(path) == {"a": [1.5, "x"], "b": 1}


def test_read_json_damaged_or_missing_names_the_file(tmp_path):
    path = tmp_path / "meta.json"
    path.write_text('{"a": 1,\n "b": }')
    with pytest.raises(ArtifactError, match=r"meta\.json: line 2 column \d+: invalid JSON"):
        read_json(path)
    with pytest.raises(ArtifactError, match=r"cannot read .*absent\.json"):
        read_json(tmp_path / "absent.json")


def test_read_array_reads_what_atomic_write_array_stored_and_nothing_else(tmp_path):
    array = np.arange(2 * 3 * 4 * 3, dtype=np.uint8).reshape(2, 3, 4, 3)
    path = tmp_path / "entry.npy"
    atomic_write_array(path, array)
    np.testing.assert_array_equal(read_array(path, (2, 3, 4, 3), np.uint8), array)

    for shape, dtype in [((2, 3, 4, 4), np.uint8), ((2, 3, 4, 3), np.int8), ((1, 3, 4, 3), np.uint8)]:
        with pytest.raises(ValueError, match="entry.npy: not an .npy file of"):
            read_array(path, shape, dtype)
    stored = path.read_bytes()
    for damaged in (stored[:-1], stored + b"\0", b"\0" * len(stored)):  # truncated, trailing bytes, zero-filled
        path.write_bytes(damaged)
        with pytest.raises(ValueError):
            read_array(path, (2, 3, 4, 3), np.uint8)
    with pytest.raises(FileNotFoundError):
        read_array(tmp_path / "missing.npy", (2, 3, 4, 3), np.uint8)


def test_cache_key_is_stable_and_order_independent(tmp_path):
    key = cache_key(model="resnet50", tta="1-crop", n=1000, sizes=(224, 256))
    assert key == cache_key(sizes=[224, 256], n=1000, tta="1-crop", model="resnet50")
    assert len(key) == 16 and int(key, 16) >= 0
    assert key != cache_key(model="resnet50", tta="none", n=1000, sizes=(224, 256))
    assert cache_key(path=tmp_path / "m.onnx", n=np.int64(3)) == cache_key(path=(tmp_path / "m.onnx").as_posix(), n=3)
    # A fixed value guards against accidental changes of the encoding (which would orphan every cache).
    assert cache_key(a=1) == "015abd7f5cc57a2d"
    with pytest.raises(TypeError, match="cache_key"):
        cache_key(thing=object())


LOCK_HOLDER = textwrap.dedent("""
    import sys
    from evaluator.fileio import file_lock
    with file_lock(sys.argv[1]):
        print("locked", flush=True)
        sys.stdin.read()
""")


def test_file_lock_excludes_another_process(tmp_path):
    target = tmp_path / "store"
    with subprocess.Popen([sys.executable, "-c", LOCK_HOLDER, str(target)], stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE, text=True) as holder:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(LockTimeout, match="still locked"):
            with file_lock(target, timeout=0.2):
                pass
        holder.stdin.close()
        assert holder.wait(timeout=30) == 0
    with file_lock(target, timeout=5) as lock:  # free again once the holder has gone
        assert lock == Path(str(target) + ".lock")
