"""Default places: one resolver, relative to the project directory whatever the working directory."""

import shutil

import pytest

from evaluator.dataset import load_dataset
from evaluator.errors import DatasetError
from evaluator.locations import (
    SAMPLE_DIR,
    default_artifacts_dir,
    default_imagenet_dir,
    default_models_dir,
    model_search_dirs,
    project_dir,
)
from evaluator.sample import check_sample


@pytest.fixture
def bare_project(tmp_path, monkeypatch):
    """A project directory with baselines.yaml only: no data/imagenet, no shared fixtures, no environment."""
    (tmp_path / "baselines.yaml").write_text("schema: 1\n")
    (tmp_path / "tests").mkdir()
    for name in ("EVALUATOR_IMAGENET_DIR", "EVALUATOR_MODELS_DIR", "EVALUATOR_ARTIFACTS_DIR", "EVALUATOR_PROJECT_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("EVALUATOR_FIXTURES", str(tmp_path / "no-fixtures"))
    monkeypatch.chdir(tmp_path / "tests")
    return tmp_path


def test_places_are_relative_to_the_project_not_the_working_directory(bare_project):
    assert project_dir() == bare_project
    assert default_artifacts_dir() == bare_project / "artifacts"
    assert default_models_dir() == bare_project / "data" / "models"


def test_imagenet_precedence_env_then_local_then_fixtures_then_sample(bare_project, monkeypatch):
    assert default_imagenet_dir() == SAMPLE_DIR / "imagenet"
    fixtures = bare_project / "no-fixtures"
    (fixtures / "imagenet").mkdir(parents=True)
    assert default_imagenet_dir() == fixtures / "imagenet"
    (bare_project / "data" / "imagenet").mkdir(parents=True)
    assert default_imagenet_dir() == bare_project / "data" / "imagenet"
    monkeypatch.setenv("EVALUATOR_IMAGENET_DIR", str(bare_project / "elsewhere"))
    assert default_imagenet_dir() == bare_project / "elsewhere"


def test_models_are_found_in_the_sample_last(bare_project):
    assert model_search_dirs(bare_project / "m") == [bare_project / "m", bare_project / "no-fixtures" / "models",
                                                     SAMPLE_DIR / "models"]


def test_the_shipped_sample_is_intact_and_small():
    check_sample()
    dataset = load_dataset(SAMPLE_DIR / "imagenet")
    assert len(dataset) == 50
    assert dataset.n_missing == 0 and not dataset.unlisted_files
    total = sum(p.stat().st_size for p in SAMPLE_DIR.rglob("*") if p.is_file())
    assert total < 8_000_000, f"data/sample holds {total:,} bytes; it must stay a few MB"


def test_a_damaged_sample_is_refused_naming_the_file(tmp_path):
    copy = tmp_path / "sample"
    shutil.copytree(SAMPLE_DIR, copy)
    victim = copy / "imagenet" / "ILSVRC" / "Data" / "CLS-LOC" / "val" / "ILSVRC2012_val_00000007.JPEG"
    victim.chmod(0o644)
    victim.write_bytes(victim.read_bytes()[:-10] + b"\0" * 10)
    with pytest.raises(DatasetError, match="ILSVRC2012_val_00000007.JPEG: sha256 .* expected"):
        check_sample(copy)


def test_main_command_offline_without_fixtures_evaluates_the_sample(tmp_path):
    """The README's main command on a machine with no ImageNet, no shared fixtures and no network."""
    import os
    import subprocess
    import sys

    from evaluator.locations import REPO_ROOT

    env = {k: v for k, v in os.environ.items() if not k.startswith(("EVALUATOR_", "PYTEST_"))}
    env.update(EVALUATOR_FIXTURES=str(tmp_path / "no-fixtures"), EVALUATOR_PROJECT_DIR=str(tmp_path))
    result = subprocess.run([sys.executable, "-m", "pytest", "-m", "regression", "-p", "no:cacheprovider"],
                            cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "mobilenet_v1_025_128_quant-uint8-1-crop-litert" in result.stdout
    report = tmp_path / "artifacts" / "report" / "report.html"
    assert f"report: {report}" in result.stdout and report.is_file()
    assert "| 50 of 50 |" in (report.parent / "report.md").read_text(encoding="utf-8")
