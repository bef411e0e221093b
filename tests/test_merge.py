"""`python -m evaluator merge`: shards that belong together become the unsharded artifact, byte for byte; anything
else is refused with one line naming the shards and counts."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from imagenet_factory import make_imagenet

from evaluator.cli import main
from evaluator.dataset import load_dataset, select
from evaluator.locations import fixtures_dir
from evaluator.pipeline import StoredPredictionsMissing, predict
from evaluator.recipes import get_recipe
from evaluator.run_spec import RunSpec
from evaluator.runtimes.fake import FakeModel
from evaluator.shard import Shard

ROOT = Path(__file__).resolve().parents[1]
N_IMAGES = 11


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("imagenet")
    make_imagenet(root, n_images=N_IMAGES, n_classes=3)
    return load_dataset(root)


def _spec(tmp_path, model=FakeModel(input_shape=(None, 8, 8, 3), mean_scale=2000.0, mean_offset=500.0)):
    return RunSpec(model.save(tmp_path / "model.fake.json"), get_recipe("mobilenet_keras"), "1-crop", "fake", workers=1)


@pytest.fixture
def shards(dataset, tmp_path):
    """Artifacts directories of shards 1/3, 2/3, 3/3 of one case, and the unsharded run's artifact."""
    spec = _spec(tmp_path)
    dirs = [tmp_path / f"shard-{k}" for k in (1, 2, 3)]
    for k, directory in enumerate(dirs, start=1):
        predict(dataset, spec, directory, shard=Shard(k, 3))
    return dirs, predict(dataset, spec, tmp_path / "unsharded")


def _merge(capsys, out, *inputs):
    code = main(["merge", "--artifacts-dir", str(out), *map(str, inputs)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_merged_shards_are_byte_identical_to_an_unsharded_run_and_reused(shards, dataset, tmp_path, capsys):
    dirs, unsharded = shards
    code, out, _ = _merge(capsys, tmp_path / "merged", *reversed(dirs))  # any order
    assert code == 0 and f"merged (3 shards, {N_IMAGES} images)" in out
    merged_dir = tmp_path / "merged" / "predictions" / unsharded.artifact_dir.name
    assert (merged_dir / "predictions.csv").read_bytes() == (unsharded.artifact_dir / "predictions.csv").read_bytes()

    rerun = predict(dataset, _spec(tmp_path), tmp_path / "merged")
    assert rerun.computed == 0 and rerun.reused == N_IMAGES  # the merged artifact is a finished run

    code, out, _ = _merge(capsys, tmp_path / "merged", *dirs)  # merging again changes nothing
    assert code == 0 and out.startswith("unchanged (3 shards")


def test_stored_only_judges_what_is_stored_and_never_predicts(shards, dataset, tmp_path):
    dirs, _ = shards
    with pytest.raises(StoredPredictionsMissing, match="--stored-only forbids predicting"):
        predict(dataset, _spec(tmp_path), dirs[0], stored_only=True)  # only a shard is stored there
    assert not list((dirs[0] / "predictions").glob("*/parts"))


def test_a_missing_shard_is_refused_in_one_line(shards, tmp_path, capsys):
    dirs, _ = shards
    code, out, err = _merge(capsys, tmp_path / "merged", dirs[0], dirs[2])
    assert code == 2 and len(err.splitlines()) == 1
    assert re.search(r"cannot merge model\.fake-1-crop-fake: 2 of 3 shards found \(1/3 in \S+shard-1, 3/3 in "
                     r"\S+shard-3\); missing shard 2/3 \(4 images\); 11 images in all", err)
    assert not (tmp_path / "merged" / "predictions").exists()


def test_a_duplicated_shard_is_refused_in_one_line(shards, tmp_path, capsys):
    dirs, _ = shards
    code, _, err = _merge(capsys, tmp_path / "merged", *dirs, dirs[1])
    assert code == 2 and len(err.splitlines()) == 1
    assert "shard 2/3 found 2 times" in err and "3 of 3 shards found" in err


def test_a_shard_of_another_model_is_refused_in_one_line(shards, dataset, tmp_path, capsys):
    dirs, _ = shards
    other = _spec(tmp_path / "other" if (tmp_path / "other").mkdir() is None else None,
                  FakeModel(input_shape=(None, 8, 8, 3), mean_scale=1000.0, mean_offset=100.0))
    predict(dataset, other, tmp_path / "other-shard-3", shard=Shard(3, 3))
    code, _, err = _merge(capsys, tmp_path / "merged", dirs[0], dirs[1], tmp_path / "other-shard-3")
    assert code == 2 and len(err.splitlines()) == 1
    assert re.search(r"refusing to merge model\.fake-1-crop-fake: shard 3/3 in \S+other-shard-3 has model sha256 "
                     r"[0-9a-f]{16}\.\.\., shards 1/3, 2/3 have [0-9a-f]{16}\.\.\.", err)


def test_shards_of_another_image_list_are_refused(shards, dataset, tmp_path, capsys):
    dirs, _ = shards
    fewer = select(dataset, dataset.image_ids[:-1])
    predict(fewer, _spec(tmp_path), tmp_path / "fewer", shard=Shard(3, 3))
    code, _, err = _merge(capsys, tmp_path / "merged", dirs[0], dirs[1], tmp_path / "fewer")
    assert code == 2 and "shard 3/3 in" in err and "has dataset fingerprint" in err


def test_complete_artifacts_of_other_jobs_are_copied_and_a_conflict_is_refused(shards, tmp_path, capsys):
    dirs, unsharded = shards
    code, out, _ = _merge(capsys, tmp_path / "merged", tmp_path / "unsharded")
    assert code == 0 and out.startswith(f"copied (complete artifact, {N_IMAGES} images)")
    copied = tmp_path / "merged" / "predictions" / unsharded.artifact_dir.name
    assert (copied / "meta.json").read_bytes() == (unsharded.artifact_dir / "meta.json").read_bytes()

    (unsharded.artifact_dir / "predictions.csv").write_bytes(b"image_id\n")  # damaged in the job's download
    code, _, err = _merge(capsys, tmp_path / "merged2", tmp_path / "unsharded")
    assert code == 2 and "contents differ from the sha256" in err
    assert not (tmp_path / "merged2" / "predictions").exists()


@pytest.mark.parametrize("edit", [lambda meta: meta.pop("model_path"), lambda meta: meta["shard"].pop("count"),
                                  lambda meta: meta["shard"].update(index=7)])
def test_a_damaged_shard_meta_is_one_line(shards, tmp_path, capsys, edit):
    dirs, _ = shards
    [meta_path] = (dirs[1] / "predictions").glob("*/meta.json")
    meta = json.loads(meta_path.read_text())
    edit(meta)
    meta_path.write_text(json.dumps(meta))
    code, _, err = _merge(capsys, tmp_path / "merged", *dirs)
    assert code == 2 and len(err.splitlines()) == 1 and f"{meta_path}: " in err


def test_an_input_without_artifacts_is_one_line(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    code, _, err = _merge(capsys, tmp_path / "merged", tmp_path / "empty")
    assert code == 2 and err.startswith(f"error: {tmp_path / 'empty'}: no finished predictions artifact")


# --- the real fixture case, as three separate processes ---------------------------------------------------------

CASE = "mobilenet_v1_025_128_quant-uint8-1-crop-litert"
MODEL_FILE = "mobilenet_v1_0.25_128_quant.tflite"


@pytest.fixture(scope="module")
def real_fixtures():
    root = fixtures_dir()
    if not (root / "imagenet").is_dir() or not (root / "models" / MODEL_FILE).is_file():
        pytest.skip(f"real fixtures absent at {root}: put ../shared/fixtures there or set EVALUATOR_FIXTURES")
    return root


def _pytest(*args, cwd=ROOT) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "pytest", "tests/test_regression.py", "-p", "no:cacheprovider",
                             "-m", "regression", "-k", CASE, f"--imagenet-dir={fixtures_dir() / 'imagenet'}", *args],
                            cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _finish(process: subprocess.Popen) -> tuple[int, str]:
    out, _ = process.communicate(timeout=600)
    return process.returncode, out


def _verdict_lines(output: str) -> list[str]:
    return re.findall(rf"^{CASE}\s+[\d./]+\s.*$", output, re.M)  # the accuracy table's rows


def test_three_shard_processes_merge_into_the_unsharded_artifact_and_judge_without_inference(real_fixtures, tmp_path):
    shard_dirs = [tmp_path / f"shard-{k}" for k in (1, 2, 3)]
    # `=` forms: options of the root conftest.py are not known yet when pytest picks its rootdir
    processes = [_pytest(f"--image-shard={k}/3", f"--artifacts-dir={d}", "--strict-data")  # as the nightly runs them
                 for k, d in enumerate(shard_dirs, 1)]
    processes.append(_pytest(f"--artifacts-dir={tmp_path / 'unsharded'}"))
    results = [_finish(p) for p in processes]
    for code, out in results[:3]:
        assert code == 0, out
        assert "no verdicts; join the shards" in out
    assert re.search(r"^234 images predicted, 0 reused", results[0][1], re.M)
    unsharded_code, unsharded_out = results[3]
    assert "700 images predicted, 0 reused" in unsharded_out

    merge = subprocess.run([sys.executable, "-m", "evaluator", "merge", "--artifacts-dir", str(tmp_path / "merged"),
                            *map(str, shard_dirs)], cwd=ROOT, capture_output=True, text=True)
    assert merge.returncode == 0, merge.stderr
    [merged_csv] = (tmp_path / "merged" / "predictions").glob("*/predictions.csv")
    [unsharded_csv] = (tmp_path / "unsharded" / "predictions").glob("*/predictions.csv")
    assert merged_csv.parent.name == unsharded_csv.parent.name  # the normal cache key
    assert merged_csv.read_bytes() == unsharded_csv.read_bytes()

    # judged from the merged predictions, with the measured values recorded (into a copy of baselines.yaml)
    shutil.copy(ROOT / "baselines.yaml", tmp_path / "baselines.yaml")
    code, out = _finish(_pytest(f"--artifacts-dir={tmp_path / 'merged'}", "--stored-only", "--update-baselines",
                                f"--baselines={tmp_path / 'baselines.yaml'}"))
    assert "0 images predicted, 700 reused" in out
    assert code == unsharded_code
    assert _verdict_lines(out) and _verdict_lines(out) == _verdict_lines(unsharded_out)
    assert re.search(rf"{CASE} \[[0-9a-f]{{16}}, n=700\]: new top1 0\.\d{{4}}", out)
    assert list((tmp_path / "baselines").glob("*.csv.gz"))  # the per-image record of the merged predictions

    # refusals, one line each: a missing shard, and a shard of another model under the same file name
    missing = subprocess.run([sys.executable, "-m", "evaluator", "merge", "--artifacts-dir", str(tmp_path / "m2"),
                              str(shard_dirs[0]), str(shard_dirs[2])], cwd=ROOT, capture_output=True, text=True)
    assert missing.returncode == 2 and len(missing.stderr.splitlines()) == 1
    assert "missing shard 2/3 (233 images); 700 images in all" in missing.stderr

    other_model = tmp_path / "other" / MODEL_FILE
    other_model.parent.mkdir()
    shutil.copy(real_fixtures / "models" / "mobilenet_v1_0.5_160_quant.tflite", other_model)
    subprocess.run([sys.executable, "-m", "evaluator", "predict", "--model-path", str(other_model), "--recipe",
                    "tf_slim_mobilenet_quant", "--runtime", "litert", "--tta", "1-crop", "--shard", "3/3",
                    "--imagenet-dir", str(real_fixtures / "imagenet"), "--artifacts-dir", str(tmp_path / "other-3")],
                   cwd=ROOT, check=True, capture_output=True)
    refused = subprocess.run([sys.executable, "-m", "evaluator", "merge", "--artifacts-dir", str(tmp_path / "m3"),
                              str(shard_dirs[0]), str(shard_dirs[1]), str(tmp_path / "other-3")],
                             cwd=ROOT, capture_output=True, text=True)
    assert refused.returncode == 2 and len(refused.stderr.splitlines()) == 1
    assert re.search(r"refusing to merge mobilenet_v1_0\.25_128_quant-1-crop-litert: shard 3/3 in \S+other-3 has "
                     r"model sha256 3cc6d2ca460abd2e\.\.\., shards 1/3, 2/3 have cb273c23ee76374b\.\.\.",
                     refused.stderr)
