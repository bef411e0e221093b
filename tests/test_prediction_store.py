"""Tests for evaluator/prediction_store.py: parts while predicting, resume, finalize, meta.json, damage."""

import json
import logging
import os
from pathlib import Path

import numpy as np
import pytest
from test_predictions import IDS, assert_same_predictions, make_predictions

from evaluator import prediction_store
from evaluator.errors import ArtifactError
from evaluator.prediction_store import PredictionStore
from evaluator.predictions import Predictions


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


def test_damaged_meta_json_raises_artifact_error(tmp_path):
    store = PredictionStore(tmp_path / "run")
    store.write_chunk(make_predictions(IDS[:2]))
    store.finalize({})
    store.meta_path.write_text('{"model": ')
    with pytest.raises(ArtifactError, match=r"meta\.json: line 1"):
        store.meta()
    with pytest.raises(ArtifactError, match=r"meta\.json"):
        store.load()


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
