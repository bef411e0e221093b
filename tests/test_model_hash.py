"""Model files are checked against their pinned sha256 before a case runs; the hash is remembered per file version."""

from __future__ import annotations

import json
import shutil

import pytest

from evaluator import model_hash
from evaluator.baselines import DEFAULT_BASELINES, load_baselines
from evaluator.cli import main
from evaluator.errors import ModelError
from evaluator.evaluate import catalogue_spec
from evaluator.locations import fixtures_dir

CATALOGUED = "mobilenet_v1_0.25_128_quant.tflite"
IMPOSTOR = "mobilenet_v1_0.5_160_quant.tflite"


@pytest.fixture
def fixture_models():
    models = fixtures_dir() / "models"
    if not (models / CATALOGUED).is_file() or not (models / IMPOSTOR).is_file():
        pytest.skip(f"fixture models absent: put them in {models} (see SOURCES.md) or set EVALUATOR_FIXTURES")
    return models


def test_another_model_under_a_catalogue_name_is_refused_naming_both_hashes(tmp_path, capsys, fixture_models):
    models_dir = tmp_path / "models"
    models_dir.mkdir()
    shutil.copy(fixture_models / IMPOSTOR, models_dir / CATALOGUED)
    expected = load_baselines(DEFAULT_BASELINES).model("mobilenet_v1_025_128_quant").files["uint8"].sha256
    actual = model_hash.file_sha256(models_dir / CATALOGUED)

    code = main(["predict", "-m", "mobilenet_v1_025_128_quant", "--models-dir", str(models_dir), "--artifacts-dir",
                 str(tmp_path / "artifacts"), "--imagenet-dir", str(fixtures_dir() / "imagenet"), "--limit", "5",
                 "--runtime", "litert"])
    err = capsys.readouterr().err

    assert code == 2 and err.count("\n") == 1
    assert f"{models_dir / CATALOGUED}: sha256 {actual} differs from {expected} pinned in " in err
    assert not (tmp_path / "artifacts" / "predictions").exists()  # refused before any image was touched


def test_a_hash_recorded_by_the_first_fetch_is_checked_when_the_catalogue_has_none(tmp_path, fixture_models):
    baselines_path = tmp_path / "baselines.yaml"
    text = DEFAULT_BASELINES.read_text()
    pinned = load_baselines(DEFAULT_BASELINES).model("mobilenet_v1_025_128_quant").files["uint8"].sha256
    baselines_path.write_text(text.replace(f"sha256: {pinned}", "sha256: null"))
    baselines = load_baselines(baselines_path)
    models_dir = tmp_path / "models"
    models_dir.mkdir()
    shutil.copy(fixture_models / IMPOSTOR, models_dir / CATALOGUED)

    spec = catalogue_spec(baselines, "mobilenet_v1_025_128_quant", None, "1-crop", "litert", models_dir)
    assert spec.model_path == models_dir / CATALOGUED  # pinned nowhere: not checked

    (models_dir / "models.lock.json").write_text(json.dumps({CATALOGUED: pinned}))
    with pytest.raises(ModelError, match=f"differs from {pinned} pinned in {models_dir / 'models.lock.json'}"):
        catalogue_spec(baselines, "mobilenet_v1_025_128_quant", None, "1-crop", "litert", models_dir)


def test_the_hash_is_remembered_per_file_version_across_processes(tmp_path, monkeypatch):
    model = tmp_path / "model.onnx"
    model.write_bytes(b"weights" * 1000)
    first = model_hash.file_sha256(model, tmp_path / "artifacts")

    def no_hashing(*args):
        raise AssertionError("rehashed a file version already remembered")

    with monkeypatch.context() as patch:
        patch.setattr(model_hash.hashlib, "sha256", no_hashing)
        assert model_hash.file_sha256(model, tmp_path / "artifacts") == first

    model.write_bytes(b"other weights" * 1000)  # a new version (size and mtime) is hashed again
    assert model_hash.file_sha256(model, tmp_path / "artifacts") != first
