"""The decode cache's bookkeeping: which geometry was used when, how much disk it takes, and pruning by age."""

from __future__ import annotations

import os
from pathlib import Path

from test_faults import cli, fake_model, imagenet, predict_args

from evaluator.decode_cache import USED_MARKER, geometry_caches, mark_used, prune

DAY = 24 * 3600.0


def make_geometry(artifacts: Path, key: str, n_bytes: int, used_days_ago: float, now: float = 1.8e9) -> Path:
    """A geometry directory holding one chunk of n_bytes, last used the given number of days ago."""
    directory = artifacts / "decode-cache" / key
    mark_used(directory, f"geometry {key}")
    (directory / "dataset-00000-32.npy").write_bytes(b"\0" * n_bytes)
    when = now - used_days_ago * DAY
    for path in (directory, directory / USED_MARKER):
        os.utime(path, (when, when))
    return directory


def test_prune_deletes_the_least_recently_used_geometries_until_the_cache_fits(tmp_path):
    sizes = {"old": 3000, "middle": 2000, "new": 1000}
    for age, key in enumerate(["new", "middle", "old"]):
        make_geometry(tmp_path, key, sizes[key], used_days_ago=age)
    caches = geometry_caches(tmp_path)
    assert [cache.path.name for cache in caches] == ["old", "middle", "new"]
    assert [cache.n_entries for cache in caches] == [1, 1, 1]
    assert all(cache.n_bytes > sizes[cache.path.name] for cache in caches)  # the chunk and the marker

    removed = prune(tmp_path, max_bytes=3500)

    assert [cache.path.name for cache in removed] == ["old"]  # about 6,100 bytes in all; without it about 3,100
    assert [cache.path.name for cache in geometry_caches(tmp_path)] == ["middle", "new"]
    assert [cache.path.name for cache in prune(tmp_path, max_bytes=0)] == ["middle", "new"]
    assert geometry_caches(tmp_path) == [] and prune(tmp_path, max_bytes=0) == []


def test_a_run_marks_its_geometry_as_used_and_says_which_geometry_it_is(tmp_path, capsys):
    root, _ = imagenet(tmp_path, n_images=4)
    model, artifacts = fake_model(tmp_path / "tiny.fake.json"), tmp_path / "artifacts"
    assert cli(capsys, predict_args(root, model, artifacts))[0] == 0
    (cache,) = geometry_caches(artifacts)
    assert cache.description.startswith("1-crop: ") and cache.n_entries == 1
    os.utime(cache.path / USED_MARKER, (0, 0))
    os.utime(cache.path, (0, 0))

    assert cli(capsys, predict_args(root, model, artifacts, "--recompute"))[0] == 0  # decodes nothing, uses the cache

    (again,) = geometry_caches(artifacts)
    assert again.last_used > DAY and again.n_entries == 1


def test_cache_command_lists_geometries_and_prunes_them(tmp_path, capsys):
    make_geometry(tmp_path, "aaa", 2000, used_days_ago=2)
    make_geometry(tmp_path, "bbb", 1000, used_days_ago=1)

    code, out, _ = cli(capsys, ["cache", "--artifacts-dir", str(tmp_path)])
    assert code == 0
    listing = out.splitlines()
    assert listing[0] == f"{tmp_path / 'decode-cache'}: 2 geometries, 0.00 GB"
    assert "bbb  geometry bbb" in listing[1] and "aaa  geometry aaa" in listing[2]  # most recently used first

    code, out, _ = cli(capsys, ["cache", "--artifacts-dir", str(tmp_path), "--max-gb", "0"])
    assert code == 0
    assert out.splitlines()[:2] == ["deleted 0.00 GB: aaa (geometry aaa)", "deleted 0.00 GB: bbb (geometry bbb)"]
    assert out.splitlines()[2] == f"{tmp_path / 'decode-cache'}: 0 geometries, 0.00 GB"
