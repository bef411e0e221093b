"""Tests for the predictions artifact: fileio.py (atomic writes, locks, cache keys), predictions.py (the table and
predictions.csv), prediction_store.py (parts, finalize, meta.json) and seed.py's per-image text files."""

import errno
import io
import json
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from evaluator import fileio, prediction_store
from evaluator.fileio import (LockTimeout, atomic_write_array, atomic_write_bytes, atomic_write_text, cache_key,
                              file_lock, read_array, read_json, write_json_atomic)
from evaluator.prediction_store import PredictionStore
from evaluator.predictions import CSV_COLUMNS, SCORE_FORMAT, Predictions, predictions_csv_bytes, read_predictions_csv
from evaluator.seed import read_prediction_texts, write_prediction_texts
from evaluator.errors import ArtifactError


def make_predictions(ids, seed=0, failed=()):
    """Predictions for `ids` with random top-5s; ids listed in `failed` carry an error."""
    rng = np.random.default_rng(seed)
    n = len(ids)
    top5_ids = np.stack([rng.permutation(1000)[:5] for _ in range(n)]).astype(np.int32).reshape(n, 5)
    top5_scores = rng.random((n, 5)).astype(np.float32)
    errors = np.array([""] * n, dtype=object)
    for row, image_id in enumerate(ids):
        if image_id in failed:
            top5_ids[row] = -1
            top5_scores[row] = np.nan
            errors[row] = f'{image_id}: broken, "truncated"\nsecond line'
    return Predictions(np.array(ids), rng.integers(0, 1000, n), top5_ids, top5_scores, errors.astype(str))


def assert_same_predictions(actual, expected):
    np.testing.assert_array_equal(actual.image_ids, expected.image_ids)
    np.testing.assert_array_equal(actual.labels, expected.labels)
    np.testing.assert_array_equal(actual.top5_ids, expected.top5_ids)
    np.testing.assert_array_equal(actual.top5_scores, expected.top5_scores)  # nan == nan here, exact otherwise
    np.testing.assert_array_equal(actual.errors, expected.errors)
    assert actual.labels.dtype == np.int32 and actual.top5_ids.dtype == np.int32
    assert actual.top5_scores.dtype == np.float32


def leftover_temp_files(directory: Path):
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("."))


# ----------------------------------------------------------------------------------------------------------------
# atomic writes


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


# ----------------------------------------------------------------------------------------------------------------
# cache keys and locks


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


# ----------------------------------------------------------------------------------------------------------------
# Predictions


def test_predictions_csv_round_trip_select_and_sort():
    predictions = make_predictions(["c", "a", "b"], failed={"b"})
    assert len(predictions) == 3
    assert_same_predictions(read_predictions_csv(Path("t.csv"), predictions_csv_bytes(predictions)), predictions)
    assert predictions.sorted_by_id().image_ids.tolist() == ["a", "b", "c"]
    picked = predictions.select(["b", "c"])
    assert picked.image_ids.tolist() == ["b", "c"]
    np.testing.assert_array_equal(picked.top5_ids[1], predictions.top5_ids[0])
    with pytest.raises(KeyError, match="1 image ids not in the predictions, e.g. zz"):
        predictions.select(["a", "zz"])


def test_predictions_reject_inconsistent_shapes():
    with pytest.raises(ValueError, match=r"top5_ids has shape \(2, 4\), expected \(2, 5\)"):
        Predictions(["a", "b"], [0, 1], np.zeros((2, 4)), np.zeros((2, 5)), ["", ""])


# ----------------------------------------------------------------------------------------------------------------
# PredictionStore

IDS = [f"ILSVRC2012_val_{i:08d}" for i in range(1, 31)]


def test_store_resumes_from_chunks_and_finalizes_sorted(tmp_path):
    everything = make_predictions(IDS, failed={IDS[4]})
    chunks = [everything.select(IDS[start:start + 10]) for start in (0, 10, 20)]
    first = PredictionStore(tmp_path / "run")
    first.write_chunk(chunks[2])
    first.write_chunk(chunks[0])
    assert not first.is_complete()

    resumed = PredictionStore(tmp_path / "run")
    assert resumed.done_ids() == set(IDS[:10] + IDS[20:])
    resumed.write_chunk(chunks[1])
    assert sorted(p.name for p in resumed.parts_dir.iterdir()) == [
        f"part-{IDS[0]}-10.npy", f"part-{IDS[10]}-10.npy", f"part-{IDS[20]}-10.npy"]
    finalized = resumed.finalize({"model": "resnet50", "n_images": 30})

    assert resumed.csv_path == tmp_path / "run" / "predictions.csv"
    assert resumed.is_complete()
    assert not resumed.parts_dir.exists()
    assert resumed.meta()["model"] == "resnet50"
    loaded = PredictionStore(tmp_path / "run").load()
    assert_same_predictions(loaded, everything)
    assert_same_predictions(finalized, loaded)  # finalize returns exactly what is read back
    assert loaded.errors[4].endswith("second line")
    assert resumed.done_ids() == set(IDS)
    with pytest.raises(ArtifactError, match="already finalized"):
        resumed.write_chunk(chunks[0])

    resumed.clear()
    assert not resumed.is_complete() and resumed.done_ids() == set()
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == []


def test_store_scores_round_trip_exactly_through_csv(tmp_path):
    predictions = make_predictions(IDS[:5])
    predictions.top5_scores[0] = [1e-30, 3.4028235e38, np.float32(1 / 3), -0.0, np.inf]
    predictions.top5_scores[1] = np.nextafter(np.float32(0.1), np.float32(1), dtype=np.float32)
    store = PredictionStore(tmp_path / "run")
    store.write_chunk(predictions)
    store.finalize({})
    assert_same_predictions(store.load(), predictions)


@pytest.mark.parametrize("odd", [None, "error", "id with comma", "id with quote"])
def test_predictions_csv_is_what_the_csv_module_writes(odd):
    import csv

    predictions = make_predictions(IDS[:5])
    predictions.top5_scores[0] = [1e-30, 3.4028235e38, np.float32(1 / 3), -0.0, np.nan]
    if odd == "error":
        predictions.errors[2] = 'cannot decode "x.JPEG", truncated\nat byte 7'
    elif odd:
        ids = predictions.image_ids.astype(object)
        ids[1] = "a,b" if odd == "id with comma" else 'a"b'
        predictions.image_ids = ids.astype(str)
    expected = io.StringIO()
    writer = csv.writer(expected, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in range(len(predictions)):
        writer.writerow([predictions.image_ids[row], predictions.labels[row], *predictions.top5_ids[row].tolist(),
                         *(SCORE_FORMAT % score for score in predictions.top5_scores[row].tolist()),
                         predictions.errors[row]])

    assert predictions_csv_bytes(predictions) == expected.getvalue().encode("utf-8")


def test_read_array_reads_what_atomic_write_array_stored_and_nothing_else(tmp_path):
    array = np.arange(2 * 3 * 4 * 3, dtype=np.uint8).reshape(2, 3, 4, 3)
    path = tmp_path / "entry.npy"
    atomic_write_array(path, array)
    np.testing.assert_array_equal(read_array(path, (2, 3, 4, 3), np.uint8), array)

    for shape, dtype in [((2, 3, 4, 4), np.uint8), ((2, 3, 4, 3), np.int8), ((1, 3, 4, 3), np.uint8)]:
        with pytest.raises(ValueError, match="entry.npy: not an .npy file of"):
            read_array(path, shape, dtype)
    stored = path.read_bytes()
    for damaged in (stored[:-1], b"\0" * len(stored)):  # truncated, zero-filled
        path.write_bytes(damaged)
        with pytest.raises(ValueError):
            read_array(path, (2, 3, 4, 3), np.uint8)
    with pytest.raises(FileNotFoundError):
        read_array(tmp_path / "missing.npy", (2, 3, 4, 3), np.uint8)


def test_finalize_writes_meta_last(tmp_path, monkeypatch):
    store = PredictionStore(tmp_path / "run")
    store.write_chunk(make_predictions(IDS[:3]))
    replaced = []
    real_replace = os.replace
    monkeypatch.setattr(os, "replace", lambda src, dst: (replaced.append(Path(dst).name), real_replace(src, dst)))
    store.finalize({"a": 1})
    assert replaced == ["predictions.csv", "stamps.npy", "meta.json"]


def test_failed_meta_write_leaves_store_incomplete_and_resumable(tmp_path, monkeypatch):
    store = PredictionStore(tmp_path / "run")
    store.write_chunk(make_predictions(IDS[:3]))

    def fail_meta(path, obj):
        raise ArtifactError(f"cannot write {path}: No space left on device")

    monkeypatch.setattr(prediction_store, "write_json_atomic", fail_meta)
    with pytest.raises(ArtifactError, match="No space left"):
        store.finalize({})
    assert (tmp_path / "run" / "predictions.csv").exists()
    assert not store.is_complete()
    assert store.done_ids() == set(IDS[:3])


def test_stray_temp_files_damaged_and_duplicate_parts_are_handled(tmp_path, caplog):
    store = PredictionStore(tmp_path / "run")
    store.write_chunk(make_predictions(IDS[:4]))
    store.write_chunk(make_predictions(IDS[2:6]))  # overlaps the first chunk on two ids
    (store.parts_dir / ".part-x-3.npy.abc.tmp").write_bytes(b"half a chunk")
    (store.parts_dir / "part-ILSVRC2012_val_00000099-3.npy").write_bytes(b"\x93NUMPY not really an array")
    with caplog.at_level(logging.WARNING, logger="evaluator.prediction_store"):
        assert store.done_ids() == set(IDS[:6])
    assert "part-ILSVRC2012_val_00000099-3.npy" in caplog.text
    merged = store.load_parts()
    assert merged.image_ids.tolist() == IDS[:6]
    np.testing.assert_array_equal(merged.top5_ids[:4], make_predictions(IDS[:4]).top5_ids)


def test_a_chunk_zero_filled_by_a_power_loss_is_dropped_not_merged(tmp_path, caplog):
    # chunks are not fsynced (a kill keeps them; a power loss can leave a renamed file's data as zeros)
    store = PredictionStore(tmp_path / "run")
    kept, lost = store.write_chunk(make_predictions(IDS[:4])), store.write_chunk(make_predictions(IDS[4:8]))
    data = bytearray(lost.read_bytes())
    header_end = data.index(b"\n") + 1
    data[header_end:] = bytes(len(data) - header_end)  # a valid .npy header, its records zeros
    lost.write_bytes(bytes(data))
    renamed = kept.with_name(f"part-{IDS[20]}-4.npy")
    renamed.write_bytes(kept.read_bytes())  # a chunk under another chunk's name is not trusted either

    resumed = PredictionStore(tmp_path / "run")
    with caplog.at_level(logging.WARNING, logger="evaluator.prediction_store"):
        assert resumed.done_ids() == set(IDS[:4])
    assert lost.name in caplog.text and renamed.name in caplog.text
    assert resumed.load_parts().image_ids.tolist() == IDS[:4]


def test_unsafe_first_id_still_gives_a_deterministic_part_name(tmp_path):
    store = PredictionStore(tmp_path / "run")
    path = store.write_chunk(make_predictions(["../escape", "b"]))
    assert path.parent == store.parts_dir
    assert path.name == store.write_chunk(make_predictions(["../escape", "b"])).name
    assert store.done_ids() == {"../escape", "b"}


def test_damaged_csv_raises_artifact_error_naming_the_file(tmp_path):
    store = PredictionStore(tmp_path / "run")
    store.write_chunk(make_predictions(IDS[:5]))
    store.finalize({})
    data = store.csv_path.read_bytes()
    store.csv_path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ArtifactError, match=r"predictions\.csv: contents differ from the sha256"):
        store.load()


@pytest.mark.parametrize("content, problem", [
    ("", "damaged predictions table"),
    ("image_id,label\nA,1\n", "columns image_id, label, expected"),
    ("image_id,label,id1,id2,id3,id4,id5,score1,score2,score3,score4,score5,error\n"
     "A,1,2,3,x,5,6,0.1,0.2,0.3,0.4,0.5,\n", "damaged predictions table"),
    ("image_id,label,id1,id2,id3,id4,id5,score1,score2,score3,score4,score5,error\n"
     "A,1,2,3,4,5,6,0.1,0.2,0.3,0.4,0.5,\nA,1,2,3,4,5,6,0.1,0.2,0.3,0.4,0.5,\n", "duplicate image ids"),
])
def test_read_predictions_csv_rejects_damage(tmp_path, content, problem):
    path = tmp_path / "predictions.csv"
    path.write_text(content)
    with pytest.raises(ArtifactError, match=f"predictions.csv: .*{problem}"):
        read_predictions_csv(path)


def test_damaged_meta_json_raises_artifact_error(tmp_path):
    store = PredictionStore(tmp_path / "run")
    store.write_chunk(make_predictions(IDS[:2]))
    store.finalize({})
    store.meta_path.write_text('{"model": ')
    with pytest.raises(ArtifactError, match=r"meta\.json: line 1"):
        store.meta()
    with pytest.raises(ArtifactError, match=r"meta\.json"):
        store.load()


# ----------------------------------------------------------------------------------------------------------------
# seed prediction text files

CLASS_NAMES = [f"class {k}" for k in range(1000)]
CLASS_NAMES[0] = "tench, Tinca tinca"


def test_prediction_texts_round_trip_in_seed_format(tmp_path):
    predictions = make_predictions(IDS[:4], failed={IDS[2]})
    predictions.top5_ids[0] = [0, 5, 6, 7, 8]
    predictions.top5_scores[0] = [0.5, 0.25, 0.125, 0.0625, 1e-7]
    write_prediction_texts(predictions, tmp_path / "pred", CLASS_NAMES)
    first = (tmp_path / "pred" / f"{IDS[0]}.txt").read_text()
    assert first.splitlines() == ["tench,_Tinca_tinca 0 0.500000", "class_5 5 0.250000", "class_6 6 0.125000",
                                  "class_7 7 0.062500", "class_8 8 0.000000"]
    assert (tmp_path / "pred" / f"{IDS[2]}.txt").read_text() == ""
    image_ids, top5_ids = read_prediction_texts(tmp_path / "pred")
    assert image_ids.tolist() == IDS[:4]
    np.testing.assert_array_equal(top5_ids, predictions.top5_ids)
    assert top5_ids.dtype == np.int32


def test_read_prediction_texts_handles_res_suffix_and_short_files(tmp_path):
    (tmp_path / "ILSVRC2012_val_00000002_res.txt").write_text("a 3 0.9\nb 4 0.1\n")
    (tmp_path / "ILSVRC2012_val_00000001.txt").write_text("a 7 1.000000")
    (tmp_path / "notes.md").write_text("not a prediction")
    image_ids, top5_ids = read_prediction_texts(tmp_path)
    assert image_ids.tolist() == ["ILSVRC2012_val_00000001", "ILSVRC2012_val_00000002"]
    np.testing.assert_array_equal(top5_ids, [[7, -1, -1, -1, -1], [3, 4, -1, -1, -1]])


@pytest.mark.parametrize("body, problem", [
    ("a 1 0.5\nb two 0.3\n", "line 2: class id or score is not a number"),
    ("a 1 0.5\n\nb 2 0.25 extra\n", "line 3: expected 'label class_id score'"),
    ("a -1 0.5\n", "line 1: class id -1 out of range"),
    ("".join(f"c {k} 0.1\n" for k in range(6)), "6 predictions, at most 5"),
])
def test_read_prediction_texts_malformed_names_file_and_line(tmp_path, body, problem):
    (tmp_path / "ILSVRC2012_val_00000005.txt").write_text(body)
    with pytest.raises(ArtifactError, match=f"ILSVRC2012_val_00000005.txt: {problem}"):
        read_prediction_texts(tmp_path)


def test_read_prediction_texts_refuses_two_files_for_one_image(tmp_path):
    (tmp_path / "X.txt").write_text("a 1 0.5\n")
    (tmp_path / "X_res.txt").write_text("a 2 0.5\n")
    with pytest.raises(ArtifactError, match="X_res.txt: image id X also predicted by X.txt"):
        read_prediction_texts(tmp_path)
    with pytest.raises(ArtifactError, match="prediction directory not found"):
        read_prediction_texts(tmp_path / "absent")


def test_meta_json_is_plain_json_with_the_table_record(tmp_path):
    store = PredictionStore(tmp_path / "run")
    store.write_chunk(make_predictions(IDS[:2]))
    store.finalize({"n_images": 2})
    meta = json.loads(store.meta_path.read_text())
    assert meta["n_images"] == 2 and meta["predictions_csv"]["rows"] == 2
    with pytest.raises(ArtifactError, match="reserved"):
        PredictionStore(tmp_path / "other").finalize({"predictions_csv": 1})


def test_predictions_csv_reads_the_same_with_pandas_and_the_evaluator(tmp_path):
    import pandas as pd

    store = PredictionStore(tmp_path / "run")
    written = make_predictions(IDS, failed={IDS[1]})  # an error text with a comma, quotes and a newline
    store.write_chunk(written)
    store.finalize({})

    by_pandas = Predictions.from_frame(pd.read_csv(store.csv_path, keep_default_na=False, na_values=["nan"]))
    for table in (store.load(), by_pandas):
        np.testing.assert_array_equal(table.image_ids, written.image_ids)
        np.testing.assert_array_equal(table.top5_ids, written.top5_ids)
        np.testing.assert_array_equal(table.top5_scores, written.top5_scores)  # %.9g round-trips float32 exactly
        np.testing.assert_array_equal(table.errors, written.errors)
