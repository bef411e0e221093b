"""Tests for evaluator/predictions.py: the per-image table and its one format, predictions.csv."""

import io
from pathlib import Path

import numpy as np
import pytest

from evaluator.errors import ArtifactError
from evaluator.predictions import CSV_COLUMNS, SCORE_FORMAT, Predictions, predictions_csv_bytes, read_predictions_csv


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


IDS = [f"ILSVRC2012_val_{i:08d}" for i in range(1, 31)]


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
