"""Fault injection through the user-facing entry points: predict, evaluate_case, `python -m evaluator`, pytest.

Each test damages one input (an image, the CSV, the synset file, the model, baselines.yaml, the artifacts directory)
and checks what the user sees: a per-image failure that fails the case, or one clear error before any inference.
Interruptions and concurrency are in test_faults_interrupt.py.
"""

from __future__ import annotations

import errno
import os
import re
import resource
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from imagenet_factory import IMAGE_SUBDIR, image_id, make_imagenet, write_image
from PIL import Image
from test_decode import png_header_only
from test_runtimes import make_onnx

from evaluator import prediction_store
from evaluator.baselines import Case, load_baselines
from evaluator.baselines_update import MeasuredRecord, update_measured
from evaluator.cli import main
from evaluator.dataset import load_dataset
from evaluator.errors import ArtifactError, ModelError, RecipeError
from evaluator.evaluate import evaluate_case, failure_message
from evaluator.pipeline import predict
from evaluator.prediction_store import PredictionStore
from evaluator.recipes import get_recipe
from evaluator.run_spec import RunSpec
from evaluator.runtimes.fake import FakeModel

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[1]
# NHWC, x / 127.5 - 1: a noise image averages about 0, a white one 1.0
FAKE_RECIPE = "mobilenet_keras"
# NCHW, 1000 outputs, for the (N, 3, 8, 8) ONNX models of test_runtimes.make_onnx
ONNX_RECIPE = "resnet50_pytorch"
DOCUMENTED = "documented:\n  - {model: tiny, precision: float, tta: 1-crop, top1: 0.5, top5: 0.9, source: card}\n"
CATALOGUE = """\
schema: 1
policy:
  z: 1.96
  paired_alpha: 0.01
  tolerance: {documented: 0.002, cross_runtime: 0.01, measured: 0.003}
sources:
  card: {kind: documented, runtime: litert, runtime_version: model card, n: 50000, date: 2024-01-01, reference: test}
models:
  tiny:
    summary: fake 8x8 model
    format: tflite
    recipe: mobilenet_keras
    classes: 1000
    files:
      float: {file: tiny.tflite}
""" + DOCUMENTED
CASE = Case("tiny", "float", "1-crop", "fake", "documented")


def fake_model(path: Path, **options) -> Path:
    """An 8x8 NHWC fake model whose top class is the image's mean model value * 400 + 500 (noise: about 500)."""
    return FakeModel(input_shape=(None, 8, 8, 3), mean_scale=400.0, mean_offset=500.0, **options).save(path)


def imagenet(tmp_path: Path, n_images: int = 8, **options) -> tuple[Path, Path]:
    """A Kaggle-layout ImageNet under tmp_path: (root, image directory)."""
    root = tmp_path / "imagenet"
    make_imagenet(root, n_images=n_images, **options)
    return root, root / IMAGE_SUBDIR


def image_file(image_dir: Path, number: int) -> Path:
    return image_dir / f"{image_id(number)}.JPEG"


def evaluate(tmp_path: Path, root: Path, **model_options):
    """evaluate_case of the catalogue's one fake model on the ImageNet at root."""
    models_dir = tmp_path / "models"
    models_dir.mkdir(exist_ok=True)
    fake_model(models_dir / "tiny.tflite", **model_options)
    (tmp_path / "baselines.yaml").write_text(CATALOGUE)
    return evaluate_case(load_baselines(tmp_path / "baselines.yaml"), CASE, load_dataset(root), models_dir,
                         tmp_path / "artifacts", workers=1)


def predict_args(root: Path, model: Path, artifacts: Path, *extra) -> list[str]:
    runtime = "onnxruntime" if model.suffix == ".onnx" else "fake"
    recipe = ONNX_RECIPE if runtime == "onnxruntime" else FAKE_RECIPE
    return ["predict", "--model-path", str(model), "--recipe", recipe, "--runtime", runtime,
            "--imagenet-dir", str(root), "--artifacts-dir", str(artifacts), "--workers", "1", *map(str, extra)]


def cli(capsys, args: list[str]) -> tuple[int, str, str]:
    """Run `python -m evaluator ARGS` in this process: (exit code, stdout, stderr)."""
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line_error(code: int, err: str, *fragments: str) -> None:
    __tracebackhide__ = True
    assert code == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    for fragment in fragments:
        assert fragment in err


def artifact_dir(out: str) -> Path:
    """The predictions artifact directory a `predict` command printed."""
    return Path(re.search(r"^predictions: (.+)$", out, re.M).group(1)).parent


def snapshot(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


# --- images ---------------------------------------------------------------------------------------------------------


def test_damaged_images_are_listed_and_fail_the_case_while_the_others_are_predicted(tmp_path):
    root, image_dir = imagenet(tmp_path)
    truncated = image_file(image_dir, 2)
    truncated.write_bytes(truncated.read_bytes()[:300])
    image_file(image_dir, 4).write_bytes(b"")
    image_file(image_dir, 7).write_text("<html>404 Not Found</html>")

    outcome = evaluate(tmp_path, root)

    reasons = {image_id(2): "truncated JPEG", image_id(4): "empty file (0 bytes)",
               image_id(7): "not a JPEG, PNG or BMP image"}
    assert sorted(outcome.failed_images) == sorted(reasons)
    for failed_id, reason in reasons.items():
        assert reason in outcome.failed_images[failed_id]
    predictions = outcome.run.predictions
    scored = predictions.errors == ""
    assert scored.sum() == 5 and (predictions.top5_ids[scored] >= 0).all()
    assert (predictions.top5_ids[~scored] == -1).all()
    assert not outcome.passed and outcome.verdict.reason == "3 image(s) could not be evaluated"
    message = failure_message(outcome, "pytest -k tiny")
    assert "3 image(s) could not be evaluated:" in message
    for failed_id, reason in reasons.items():
        assert re.search(rf"^    {failed_id}: .*{re.escape(reason)}", message, re.M)


def test_unusual_valid_images_are_decoded_by_the_policy_and_predicted(tmp_path):
    root, image_dir = imagenet(tmp_path, n_images=6)
    Image.fromarray(np.full((30, 40, 3), 90, np.uint8)).save(image_file(image_dir, 1), "PNG")  # PNG named .JPEG
    Image.new("CMYK", (32, 32), (0, 255, 255, 0)).save(image_file(image_dir, 2), "JPEG")
    Image.new("L", (24, 32), 60).save(image_file(image_dir, 3), "JPEG")
    Image.fromarray(np.full((32, 24), 0x8000, np.uint16)).save(image_file(image_dir, 4), "PNG")  # 16-bit gray
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees to display
    Image.new("RGB", (40, 30), (200, 30, 30)).save(image_file(image_dir, 5), "JPEG", exif=exif)
    spec = RunSpec(fake_model(tmp_path / "tiny.fake.json"), get_recipe(FAKE_RECIPE), "1-crop", "fake", workers=1)

    for exif_transpose in (False, True):
        run = predict(load_dataset(root), replace(spec, recipe=replace(spec.recipe, exif_transpose=exif_transpose)),
                      tmp_path / "artifacts")
        assert run.predictions.errors.tolist() == [""] * 6
        assert (run.predictions.top5_ids >= 0).all()
        # 16-bit 0x8000 keeps its high byte, 128 (model value 128 / 127.5 - 1): class 502; clipping would give 900
        assert run.predictions.top5_ids[3, 0] == 502


def test_decompression_bomb_is_refused_for_that_image_without_allocating_it(tmp_path):
    root, image_dir = imagenet(tmp_path, n_images=4)
    image_file(image_dir, 3).write_bytes(png_header_only(30_000, 30_000))  # 2.7 GB of RGB if decoded
    spec = RunSpec(fake_model(tmp_path / "tiny.fake.json"), get_recipe(FAKE_RECIPE), "1-crop", "fake", workers=1)

    peak_before_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    run = predict(load_dataset(root), spec, tmp_path / "artifacts")
    peak_growth_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before_kb) / 1024

    assert peak_growth_mb < 300
    errors = dict(zip(run.predictions.image_ids.tolist(), run.predictions.errors.tolist()))
    assert "30000x30000 = 900,000,000 pixels" in errors.pop(image_id(3))
    assert set(errors.values()) == {""}


# --- the image set --------------------------------------------------------------------------------------------------


def test_partial_copy_is_reported_and_not_judged_as_the_full_set(tmp_path):
    root, _ = imagenet(tmp_path, n_images=6, n_listed=50_000)

    outcome = evaluate(tmp_path, root)

    assert "6 of 50,000 images present (49,994 missing" in load_dataset(root).describe()
    assert outcome.scores.lines(outcome.run.meta["n_listed"])[0] == "DATA CNT 6 of 50,000"
    for check in outcome.verdict.anchor.metrics:
        assert (check.n, check.n_population) == (6, 50_000)
        p, z = check.expected, check.z
        sampling = z * np.sqrt(p * (1 - p) / 6) * np.sqrt((50_000 - 6) / (50_000 - 1))
        assert check.band == pytest.approx(check.tolerance + sampling)  # a complete set would get `tolerance` alone
        assert "n=6 of 50,000" in check.describe()


def test_unlisted_image_is_ignored_and_counted(tmp_path, capsys):
    root, image_dir = imagenet(tmp_path, n_images=5)
    write_image(image_dir / "ILSVRC2012_val_00000099.JPEG", seed=9)
    model = fake_model(tmp_path / "tiny.fake.json")

    code, out, _ = cli(capsys, predict_args(root, model, tmp_path / "artifacts"))

    assert code == 0
    assert "5 of 5 images present (0 missing, 1 unlisted files ignored)" in out
    table = pd.read_csv(artifact_dir(out) / "predictions.csv")
    assert table["image_id"].tolist() == [image_id(i) for i in range(1, 6)]


def _edit_csv(lines: list[str], problem: str) -> list[str]:
    """Damage a LOC_val_solution.csv (header + rows); every row problem is put on line 2 or 3."""
    header, first, *rest = lines
    bad_rows = {
        "wrong header": ["ImageId;PredictionString", first],
        "bad row": [header, "ILSVRC2012_val_00000001", first],
        "unknown wnid": [header, "ILSVRC2012_val_00000001,n99999999 1 2 3 4", first],
        "duplicate id": [header, first, first],
        "path traversal": [header, "../../etc/passwd,n00000000 1 2 3 4", first],
    }
    return bad_rows[problem] + rest


@pytest.mark.parametrize("problem, line, message", [
    ("wrong header", 1, "header is 'ImageId;PredictionString', expected 'ImageId,PredictionString'"),
    ("bad row", 2, "expected 2 columns"),
    ("unknown wnid", 2, "unknown synset 'n99999999'"),
    ("duplicate id", 3, "duplicate ImageId"),
    ("path traversal", 2, "ImageId '../../etc/passwd' is not a plain file name"),
])
def test_malformed_solution_csv_is_one_error_with_file_and_line_before_any_inference(tmp_path, capsys, problem,
                                                                                    line, message):
    root, _ = imagenet(tmp_path, n_images=4)
    csv_path = root / "LOC_val_solution.csv"
    csv_path.write_text("\n".join(_edit_csv(csv_path.read_text().splitlines(), problem)) + "\n")
    calls = tmp_path / "calls.txt"
    model = fake_model(tmp_path / "tiny.fake.json", calls_file=str(calls))

    code, _, err = cli(capsys, predict_args(root, model, tmp_path / "artifacts"))

    assert_one_line_error(code, err, f"{csv_path}, line {line}: ", message)
    assert not calls.exists() and not (tmp_path / "artifacts").exists()


def test_solution_csv_with_bom_and_crlf_is_accepted(tmp_path, capsys):
    root, _ = imagenet(tmp_path, n_images=4)
    csv_path = root / "LOC_val_solution.csv"
    csv_path.write_bytes(b"\xef\xbb\xbf" + csv_path.read_text().replace("\n", "\r\n").encode())

    code, out, _ = cli(capsys, predict_args(root, fake_model(tmp_path / "tiny.fake.json"), tmp_path / "artifacts"))

    assert code == 0 and "DATA CNT 4 of 4" in out


@pytest.mark.parametrize("problem, line, message", [
    ("999 lines", 999, "has 999 synset lines, expected exactly 1000"),
    ("unsorted", 11, "n00000009 comes after n00000010: lines must be sorted by wnid"),
    ("duplicate", 11, "duplicate wnid n00000009 (first on line 10)"),
])
def test_malformed_synset_file_is_one_error_before_any_inference(tmp_path, capsys, problem, line, message):
    root, _ = imagenet(tmp_path, n_images=4)
    synsets = root / "LOC_synset_mapping.txt"
    lines = synsets.read_text().splitlines()
    if problem == "999 lines":
        del lines[-1]
    elif problem == "unsorted":
        lines[9], lines[10] = lines[10], lines[9]
    else:
        lines[10] = lines[9]
    synsets.write_text("\n".join(lines) + "\n")
    calls = tmp_path / "calls.txt"
    model = fake_model(tmp_path / "tiny.fake.json", calls_file=str(calls))

    code, _, err = cli(capsys, predict_args(root, model, tmp_path / "artifacts"))

    assert_one_line_error(code, err, f"{synsets}, line {line}: ", message)
    assert not calls.exists() and not (tmp_path / "artifacts").exists()


# --- models ---------------------------------------------------------------------------------------------------------


def _damaged_model(path: Path, damage: str) -> Path:
    if damage == "missing":
        return path
    if damage == "not a model":
        path.write_text("this is a README, not a network\n")
    elif damage == "truncated":
        make_onnx(path)
        path.write_bytes(path.read_bytes()[:200])
    elif damage == "input rank 2":
        make_onnx(path, rank=2)
    elif damage == "10 outputs":
        make_onnx(path, n_classes=10)
    return path


MODEL_DAMAGE = [
    ("missing", "model file not found"),
    ("truncated", "not a valid ONNX model (truncated or another kind of file?)"),
    ("not a model", "not a valid ONNX model (truncated or another kind of file?)"),
    ("input rank 2", "has rank 2 float32 (N, 3), expected a rank-4 image batch"),
    ("10 outputs", "output has 10 classes, expected 1000 or 1001"),
]


@pytest.mark.parametrize("damage, message", MODEL_DAMAGE)
def test_unusable_model_is_refused_by_predict_before_the_image_loop(tmp_path, damage, message):
    root, _ = imagenet(tmp_path, n_images=2)
    model = _damaged_model(tmp_path / "net.onnx", damage)
    spec = RunSpec(model, get_recipe(ONNX_RECIPE), "1-crop", "onnxruntime", workers=1)

    with pytest.raises(ModelError) as error:
        predict(load_dataset(root), spec, tmp_path / "artifacts")

    assert str(error.value).startswith(f"{model}: ") and message in str(error.value)
    assert not (tmp_path / "artifacts").exists()


@pytest.mark.parametrize("damage, message", MODEL_DAMAGE)
def test_unusable_model_is_one_line_from_the_command_line(tmp_path, capsys, damage, message):
    root, _ = imagenet(tmp_path, n_images=2)
    model = _damaged_model(tmp_path / "net.onnx", damage)

    code, _, err = cli(capsys, predict_args(root, model, tmp_path / "artifacts"))

    assert_one_line_error(code, err, f"error: {model}: ", message)
    assert not (tmp_path / "artifacts").exists()


@pytest.mark.parametrize("value", ["nan", "inf"])
def test_non_finite_scores_fail_the_case_with_their_count_and_are_never_ranked(tmp_path, value):
    root, image_dir = imagenet(tmp_path, n_images=6)
    for number in (2, 5):
        Image.new("RGB", (32, 32), (255, 255, 255)).save(image_file(image_dir, number), "JPEG")

    outcome = evaluate(tmp_path, root, non_finite_above=0.99, non_finite_value=value)

    assert sorted(outcome.failed_images) == [image_id(2), image_id(5)]
    assert set(outcome.failed_images.values()) == {"model produced 1000 NaN/infinite scores"}
    predictions = outcome.run.predictions
    failed = np.isin(predictions.image_ids, [image_id(2), image_id(5)])
    assert (predictions.top5_ids[failed] == -1).all() and (predictions.top5_ids[~failed] >= 0).all()
    assert outcome.scores.n_failed == 2
    assert not outcome.passed and outcome.verdict.reason == "2 image(s) could not be evaluated"


# --- baselines.yaml and names ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("old, new, message", [
    ("source: card}", "source: card, colour: red}", "documented[0].colour: unknown key"),
    ("top1: 0.5", "top1: 50", "documented[0].top1: 50 must be an accuracy fraction in [0, 1]"),
    (", source: card}", "}", "documented[0]: missing key 'source'"),
    (DOCUMENTED, DOCUMENTED + DOCUMENTED.removeprefix("documented:\n"),
     "documented[1]: duplicate of documented[0] (tiny/float/1-crop/litert)"),
    ("    classes: 1000\n", "    classes: 1000\n    classes: 1001\n",
     "line 14: not valid YAML: found duplicate key \"classes\""),
    ("reference: test}", "reference: !!python/object/apply:os.system [touch {tmp}/PWNED]}",
     "line 7: not valid YAML: could not determine a constructor for the tag 'tag:yaml.org,2002:python/object/apply"),
])
def test_malformed_baselines_is_one_error_with_the_key_path_before_any_work(tmp_path, capsys, old, new, message):
    broken = tmp_path / "baselines.yaml"
    assert old in CATALOGUE
    broken.write_text(CATALOGUE.replace(old, new.replace("{tmp}", str(tmp_path))))

    code, _, err = cli(capsys, ["predict", "-m", "tiny", "--baselines", str(broken), "--imagenet-dir",
                                str(tmp_path / "absent"), "--artifacts-dir", str(tmp_path / "artifacts")])

    assert code == 2 and err.startswith(f"error: {broken}") and message in err, err
    assert len(err.splitlines()) <= 2 and "Traceback" not in err
    assert not (tmp_path / "artifacts").exists() and not (tmp_path / "PWNED").exists()


def test_catalogue_with_a_plain_http_url_is_refused_before_any_download(tmp_path, capsys):
    broken = tmp_path / "baselines.yaml"
    broken.write_text(CATALOGUE.replace("{file: tiny.tflite}", "{file: tiny.tflite, url: 'http://example.com/t'}"))

    code, _, err = cli(capsys, ["fetch", "--baselines", str(broken), "--models-dir", str(tmp_path / "models")])

    assert code == 2 and "models.tiny.files.float.url: 'http://example.com/t' must be an https URL or null" in err
    assert not (tmp_path / "models").exists()


def test_pytest_with_a_malformed_baselines_file_stops_with_a_usage_error(pytester, tmp_path):
    shutil.copy(ROOT / "pytest.ini", pytester.path / "pytest.ini")
    (pytester.path / "tests").mkdir()
    shutil.copy(ROOT / "tests" / "test_regression.py", pytester.path / "tests" / "test_regression.py")
    broken = pytester.path / "broken.yaml"
    broken.write_text(CATALOGUE.replace("top1: 0.5", "top1: 50"))

    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--baselines", str(broken),
                                           "--artifacts-dir", str(tmp_path / "artifacts"))

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    stderr = result.stderr.str()
    assert f"ERROR: {broken}: documented[0].top1: 50 must be an accuracy fraction in [0, 1]\n" in stderr
    assert "Traceback" not in stderr and not (tmp_path / "artifacts").exists()


@pytest.mark.parametrize("args, message", [
    (["-m", "tiyn"], "unknown model 'tiyn'; did you mean tiny? available: tiny"),
    (["-m", "tiny", "--precision", "flaot"], "unknown precision 'flaot'; did you mean float? available: float"),
    (["--model-path", "m.onnx", "--recipe", "mobilenet_kera"],
     "unknown recipe 'mobilenet_kera'; did you mean mobilenet_keras? available: "),
    (["-m", "tiny", "--runtime", "onnxruntim"],
     "unknown runtime 'onnxruntim'; did you mean onnxruntime? "
     "available: ailia, ailia-net, auto, fake, litert, onnxruntime"),
    (["-m", "tiny", "--tta", "1crop"], "unknown TTA mode '1crop'; did you mean 1-crop? available: 1-crop, keep-aspect"),
])
def test_unknown_name_is_one_line_listing_the_valid_names(tmp_path, capsys, args, message):
    (tmp_path / "baselines.yaml").write_text(CATALOGUE)
    fake_model(tmp_path / "tiny.tflite")

    code, _, err = cli(capsys, ["predict", *args, "--baselines", str(tmp_path / "baselines.yaml"),
                                "--models-dir", str(tmp_path), "--imagenet-dir", str(tmp_path / "absent")])

    assert_one_line_error(code, err, message)


def test_user_error_is_one_line_and_debug_shows_the_traceback(tmp_path, capsys):
    command = [sys.executable, "-m", "evaluator", "predict", "--model-path", "m.onnx", "--recipe", "nope"]

    plain = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, timeout=60)
    debug = subprocess.run([*command, "--debug"], capture_output=True, text=True, cwd=tmp_path, timeout=60)

    assert plain.returncode == 2 and plain.stdout == ""
    assert plain.stderr.startswith("error: unknown recipe 'nope'") and plain.stderr.count("\n") == 1
    assert debug.returncode == 1 and "Traceback (most recent call last)" in debug.stderr
    assert "evaluator.errors.RecipeError: unknown recipe 'nope'" in debug.stderr
    with pytest.raises(RecipeError):  # --debug before the subcommand too
        main(["--debug", "predict", "--model-path", "m.onnx", "--recipe", "nope"])


# --- artifacts directory --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fault", ["under a regular file", "permission denied"])
def test_unwritable_artifacts_directory_is_one_clear_error(tmp_path, capsys, monkeypatch, fault):
    root, _ = imagenet(tmp_path, n_images=2)
    model = fake_model(tmp_path / "tiny.fake.json")
    if fault == "under a regular file":
        (tmp_path / "occupied").write_text("a file where a directory should be")
        artifacts, reason = tmp_path / "occupied" / "artifacts", "Not a directory"
    else:
        artifacts, reason = tmp_path / "artifacts", "Permission denied"

        def refusing(real_mkdir):  # root ignores chmod, so the refusal is injected
            def mkdir(path, *args, **kwargs):
                if str(path).startswith(str(artifacts)):
                    raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
                return real_mkdir(path, *args, **kwargs)
            return mkdir

        # both: Python 3.10's Path.mkdir calls its own reference to os.mkdir, not the os module's
        monkeypatch.setattr(os, "mkdir", refusing(os.mkdir))
        monkeypatch.setattr(Path, "mkdir", refusing(Path.mkdir))

    code, _, err = cli(capsys, predict_args(root, model, artifacts))

    assert_one_line_error(code, err, f"error: cannot write {artifacts}", reason)


def test_unwritable_decode_cache_is_one_clear_error(tmp_path, capsys):
    root, _ = imagenet(tmp_path, n_images=2)
    model, artifacts = fake_model(tmp_path / "tiny.fake.json"), tmp_path / "artifacts"
    artifacts.mkdir()
    (artifacts / "decode-cache").write_text("a file where the decode cache directory should be")

    code, _, err = cli(capsys, predict_args(root, model, artifacts))

    assert_one_line_error(code, err, f"error: cannot write {artifacts / 'decode-cache'}", "Not a directory")


def _fail_writes(monkeypatch, should_fail) -> None:
    """Make os.replace raise ENOSPC (disk full) when should_fail(target path) is true."""
    real_replace = os.replace

    def replace(source, target, **kwargs):
        if should_fail(Path(target)):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_replace(source, target, **kwargs)

    monkeypatch.setattr(os, "replace", replace)


def _complete_other_artifact(root: Path, model: Path, artifacts: Path, capsys) -> tuple[Path, dict[str, bytes]]:
    code, out, _ = cli(capsys, predict_args(root, model, artifacts, "--tta", "none"))
    assert code == 0
    return artifact_dir(out), snapshot(artifact_dir(out))


def run_dir(artifacts: Path, tta: str) -> Path:
    """The one predictions artifact directory of the fake model with this TTA mode."""
    (directory,) = [p for p in artifacts.glob(f"predictions/tiny.fake-{tta}-fake-*") if p.is_dir()]
    return directory


def _no_temp_files(directory: Path) -> bool:
    # the update lock beside baselines.yaml (baselines_update.update_lock_path) is kept by design: no temporary file
    return not [p for p in directory.rglob(".*") if p.is_file() and p.name != ".baselines.yaml.lock"]


def test_disk_full_mid_run_keeps_finished_chunks_and_earlier_artifacts(tmp_path, capsys, monkeypatch):
    root, _ = imagenet(tmp_path, n_images=16)
    model, artifacts = fake_model(tmp_path / "tiny.fake.json"), tmp_path / "artifacts"
    earlier, earlier_files = _complete_other_artifact(root, model, artifacts, capsys)
    # a part per finished chunk; the third write fails (the last chunk would go straight into predictions.csv)
    args = predict_args(root, model, artifacts, "--chunk-size", 4, "--checkpoint-s", 0)
    _fail_writes(monkeypatch, lambda target: target.name.startswith("part-")
                 and len(list(target.parent.glob("part-*"))) >= 2)

    code, _, err = cli(capsys, args)

    assert_one_line_error(code, err, "/parts/part-", "No space left on device")
    assert snapshot(earlier) == earlier_files
    assert len(list((run_dir(artifacts, "1-crop") / "parts").glob("part-*.npy"))) == 2 and _no_temp_files(artifacts)
    monkeypatch.undo()
    code, out, _ = cli(capsys, args)
    assert code == 0 and "reused 8 images from an earlier run, predicted 8" in out


@pytest.mark.parametrize("failing_file", ["predictions.csv", "meta.json"])
def test_failed_finalize_leaves_no_finished_looking_artifact(tmp_path, capsys, monkeypatch, failing_file):
    root, _ = imagenet(tmp_path, n_images=8)
    model, artifacts = fake_model(tmp_path / "tiny.fake.json"), tmp_path / "artifacts"
    earlier, earlier_files = _complete_other_artifact(root, model, artifacts, capsys)
    args = predict_args(root, model, artifacts, "--chunk-size", 4)
    _fail_writes(monkeypatch, lambda target: target.name == failing_file)

    code, _, err = cli(capsys, args)

    assert_one_line_error(code, err, f"{failing_file}: No space left on device")
    assert snapshot(earlier) == earlier_files
    store = PredictionStore(run_dir(artifacts, "1-crop"))
    assert not store.is_complete() and _no_temp_files(artifacts)
    monkeypatch.undo()
    code, out, _ = cli(capsys, args)
    assert code == 0 and "reused 8 images from an earlier run, predicted 0" in out
    assert store.is_complete()


def test_failed_baselines_update_leaves_the_file_as_it_was(tmp_path, monkeypatch):
    path = tmp_path / "baselines.yaml"
    path.write_text(CATALOGUE)
    record = MeasuredRecord("tiny", "float", "1-crop", "fake", "fake 1", 0.25, 0.5, 8, "0123456789abcdef", "test")
    _fail_writes(monkeypatch, lambda target: target == path)

    with pytest.raises(ArtifactError, match="No space left on device"):
        update_measured(path, [record])

    assert path.read_text() == CATALOGUE and _no_temp_files(tmp_path)


# --- stored data is never unpickled ---------------------------------------------------------------------------------


def test_no_pickle_anywhere_on_stored_data():
    sources = {path: path.read_text() for path in (ROOT / "evaluator").rglob("*.py")}
    np_loads = [call for text in sources.values() for call in re.findall(r"np\.load\([^)]*\)", text)]
    assert np_loads and all("allow_pickle=False" in call for call in np_loads)
    for path, text in sources.items():
        assert "allow_pickle=True" not in text, path
        assert not re.search(r"^\s*(import|from)\s+(c?pickle|dill|joblib|shelve)\b", text, re.M), path
        assert not re.search(r"\b(read_pickle|pickle\.loads?)\b", text), path


# --- issue 13: a full disk during --recompute, failed images named, one-line errors ---------------------------------


def test_recompute_on_a_full_disk_keeps_the_finished_artifact(tmp_path, monkeypatch):
    root, _ = imagenet(tmp_path)
    dataset, model = load_dataset(root), fake_model(tmp_path / "tiny.fake.json")
    spec = RunSpec(model, get_recipe(FAKE_RECIPE), "1-crop", "fake", workers=1)
    first = predict(dataset, spec, tmp_path / "artifacts")
    csv_before = (first.artifact_dir / "predictions.csv").read_bytes()
    real_write = prediction_store.atomic_write_bytes

    def disk_full(path, data):
        if Path(path).name == "predictions.csv":
            raise ArtifactError(f"cannot write {path}: No space left on device")
        real_write(path, data)

    with monkeypatch.context() as patch:
        patch.setattr(prediction_store, "atomic_write_bytes", disk_full)
        with pytest.raises(ArtifactError, match="No space left on device"):
            predict(dataset, spec, tmp_path / "artifacts", recompute=True)
    old = PredictionStore(first.artifact_dir)
    assert old.is_complete() and (first.artifact_dir / "predictions.csv").read_bytes() == csv_before

    again = predict(dataset, spec, tmp_path / "artifacts", recompute=True)  # resumes the recomputation
    assert again.artifact_dir == first.artifact_dir
    assert (again.artifact_dir / "predictions.csv").read_bytes() == csv_before
    assert sorted(p.name for p in (tmp_path / "artifacts" / "predictions").iterdir()) == \
        sorted([first.artifact_dir.name, first.artifact_dir.name + ".lock"])


def test_predict_names_the_first_ten_failed_images_and_where_the_rest_are(tmp_path, capsys):
    root, image_dir = imagenet(tmp_path, n_images=14)
    for number in range(1, 13):
        image_file(image_dir, number).write_bytes(b"not an image at all")
    model = fake_model(tmp_path / "tiny.fake.json")

    code, out, _ = cli(capsys, predict_args(root, model, tmp_path / "artifacts"))

    listed = [line for line in out.splitlines() if line.startswith("  ILSVRC2012_val_")]
    assert code == 0 and "failed images (12; the first 10):" in out and len(listed) == 10
    assert listed[0] == (f"  {image_id(1)}: {image_file(image_dir, 1)}: "
                         "not a JPEG, PNG or BMP image (starts with b'not an i')")
    assert re.search(r"every failed image and its reason: the error column of .*predictions\.csv", out)
    code, out, _ = cli(capsys, ["accuracy", *predict_args(root, model, tmp_path / "artifacts")[1:]])
    assert code == 0 and "failed images (12; the first 10):" in out


@pytest.mark.parametrize("content", ["{not json", '{"a": 1}', '[{"case_id": "x"}]', "[1, 2]"])
def test_report_with_a_malformed_results_file_is_one_line(tmp_path, capsys, content):
    results = tmp_path / "results.json"
    results.write_text(content)

    code, _, err = cli(capsys, ["report", "--results", str(results), "--out", str(tmp_path / "out")])

    assert code == 2 and err.startswith(f"error: {results}") and err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.parametrize("args", [["diff", "a", "b", "--classes", "-3"], ["diff", "a", "b", "--classes", "many"]])
def test_bad_option_values_are_one_line_usage_errors(capsys, args):
    with pytest.raises(SystemExit) as stop:
        main(args)
    err = capsys.readouterr().err
    assert stop.value.code == 2 and err.count("\n") == 1 and "--classes" in err


def test_an_overlong_path_component_is_one_line(tmp_path, capsys):
    root = tmp_path / ("x" * 5000)

    code, _, err = cli(capsys, ["validate", "--imagenet-dir", str(root)])

    assert code == 2 and err.count("\n") == 1 and len(err) < 400 and "File name too long" in err


def test_verify_data_on_the_command_line_catches_a_change_that_kept_size_and_mtime(tmp_path, capsys):
    root, image_dir = imagenet(tmp_path, n_images=5)
    model = fake_model(tmp_path / "tiny.fake.json")
    assert cli(capsys, predict_args(root, model, tmp_path / "artifacts"))[0] == 0
    changed = image_file(image_dir, 3)
    stat = changed.stat()
    changed.write_bytes(bytes(stat.st_size))
    os.utime(changed, ns=(stat.st_atime_ns, stat.st_mtime_ns))

    trusted = cli(capsys, predict_args(root, model, tmp_path / "artifacts"))[1]
    code, verified, _ = cli(capsys, predict_args(root, model, tmp_path / "artifacts", "--verify-data"))

    assert "failed images" not in trusted and code == 0
    assert f"  {image_id(3)}: {changed}: not a JPEG, PNG or BMP image" in verified


def test_accuracy_refuses_stored_predictions_of_changed_images(tmp_path, capsys):
    root, image_dir = imagenet(tmp_path, n_images=5)
    model = fake_model(tmp_path / "tiny.fake.json")
    assert cli(capsys, predict_args(root, model, tmp_path / "artifacts"))[0] == 0
    write_image(image_file(image_dir, 2), seed=99)

    code, _, err = cli(capsys, ["accuracy", *predict_args(root, model, tmp_path / "artifacts")[1:]])

    assert code == 2 and err.count("\n") == 1
    assert "1 image(s) changed since" in err and image_id(2) in err and "python -m evaluator predict" in err
