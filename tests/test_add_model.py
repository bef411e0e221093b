"""`python -m evaluator add-model` (evaluator/add_model.py): inspect, check against the recipe, write the entry with
comments and order kept; the new case then runs under `pytest -k NAME`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from imagenet_factory import real_imagenet_dir
from test_recipes import random_classifier

from evaluator.baselines import DEFAULT_BASELINES, load_baselines
from evaluator.cli import main
from evaluator.locations import fixtures_dir

ROOT = Path(__file__).resolve().parents[1]
SLIM = "mobilenet_v1_0.25_128_quant.tflite"


def _catalogue(tmp_path) -> Path:
    path = tmp_path / "baselines.yaml"
    path.write_text(DEFAULT_BASELINES.read_text())
    return path


def _fixture_model(name: str) -> Path:
    path = fixtures_dir() / "models" / name
    if not path.is_file():
        pytest.skip(f"fixture model {path} absent: put ../shared/fixtures there or set EVALUATOR_FIXTURES")
    return path


def _added_lines(before: str, after: str) -> list[str]:
    """The lines of `after` that are not in `before`, checking that every line of `before` is kept in order."""
    old, new = before.splitlines(), after.splitlines()
    kept, added = 0, []
    for line in new:
        if kept < len(old) and line == old[kept]:
            kept += 1
        else:
            added.append(line)
    assert kept == len(old), f"line {kept + 1} of the old file was changed or dropped: {old[kept]!r}"
    return added


def test_add_model_writes_an_entry_keeping_comments_and_order(tmp_path, capsys):
    model = _fixture_model(SLIM)
    catalogue = _catalogue(tmp_path)
    before = catalogue.read_text()
    assert main(["add-model", "slim_quarter", "--model-path", str(model), "--recipe", "tf_slim_mobilenet_quant",
                 "--documented", "0.395", "0.644", "--source", "tflite-hosted-models", "--baselines",
                 str(catalogue), "--models-dir", str(tmp_path / "models")]) == 0
    out = capsys.readouterr().out
    assert "input uint8 (1, 128, 128, 3) scale 0.0078125 zero point 128, 1001 outputs" in out
    assert "  slim_quarter-uint8-1-crop-litert" in out
    added = _added_lines(before, catalogue.read_text())
    assert added == [
        "  slim_quarter:",
        f"    summary: {SLIM}, added with add-model",
        "    format: tflite",
        "    recipe: tf_slim_mobilenet_quant",
        "    classes: 1001",
        "    files:",
        f"      uint8: {{file: {SLIM}, url: null, sha256: "
        "cb273c23ee76374b05b9583177e28aa19744858a7679c56a250e83d0333da785}",
        "  - {model: slim_quarter, precision: uint8, tta: 1-crop, top1: 0.395, top5: 0.644, "
        "source: tflite-hosted-models}",
    ]
    entry = load_baselines(catalogue).models["slim_quarter"]
    assert (entry.classes, entry.files["uint8"].sha256[:8]) == (1001, "cb273c23")
    assert not (tmp_path / "models").exists()  # found in the fixtures' model directory: nothing copied


def test_overrides_become_a_declared_recipe_and_a_file_from_elsewhere_is_copied(tmp_path, capsys):
    model = random_classifier(tmp_path / "inception_like.onnx")
    catalogue = _catalogue(tmp_path)
    before = catalogue.read_text()
    assert main(["add-model", "inception_like", "--model-path", str(model), "--recipe", "resnet50_pytorch",
                 "--mean", "0.498", "0.498", "0.498", "--std", "0.502", "0.502", "0.502", "--baselines",
                 str(catalogue), "--models-dir", str(tmp_path / "models")]) == 0
    out = capsys.readouterr().out
    assert "declared recipe inception_like: base resnet50_pytorch with mean=[0.498, 0.498, 0.498]" in out
    assert "no regression case yet" in out and (tmp_path / "models" / "inception_like.onnx").is_file()
    added = _added_lines(before.replace("recipes: {}", "recipes:"), catalogue.read_text())
    assert added[:4] == ["  inception_like:", "    base: resnet50_pytorch",
                         "    mean: [0.498, 0.498, 0.498]", "    std: [0.502, 0.502, 0.502]"]
    baselines = load_baselines(catalogue)
    recipe = baselines.recipe(baselines.models["inception_like"].files["float"].recipe)
    assert (recipe.mean, recipe.std, recipe.scale) == ((0.498,) * 3, (0.502,) * 3, 1 / 255)


@pytest.mark.parametrize("recipe, message", [
    (["mobilenet_keras"], "input shape (None, 3, 224, 224) does not fit recipe mobilenet_keras (NHWC, 3 channels)"),
    (["resnet50_pytorch", "--class-offset", "1"],
     "model has 1000 outputs but recipe resnet50_pytorch+class_offset expects 1001 (class offset 1)"),
])
def test_a_model_that_does_not_fit_its_recipe_is_refused_in_one_line(tmp_path, capsys, recipe, message):
    model = random_classifier(tmp_path / "nchw.onnx")
    catalogue = _catalogue(tmp_path)
    before = catalogue.read_text()
    assert main(["add-model", "misfit", "--model-path", str(model), "--recipe", *recipe, "--baselines",
                 str(catalogue)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err
    assert catalogue.read_text() == before


def test_raw_uint8_recipe_refuses_a_float_input_and_names_are_unique(tmp_path, capsys):
    model = random_classifier(tmp_path / "float_nchw.onnx")
    catalogue = _catalogue(tmp_path)
    assert main(["add-model", "raw", "--model-path", str(model), "--recipe", "tf_slim_mobilenet_quant",
                 "--layout", "NCHW", "--class-offset", "0", "--baselines", str(catalogue)]) == 2
    assert "does not fit recipe tf_slim_mobilenet_quant+layout+class_offset: recipe tf_slim_mobilenet_quant+layout+" \
           "class_offset feeds raw uint8 pixels but the input is float32" in capsys.readouterr().err
    assert main(["add-model", "resnet50_pytorch", "--model-path", str(model), "--recipe", "resnet50_pytorch",
                 "--baselines", str(catalogue)]) == 2
    assert "model 'resnet50_pytorch' is already in the catalogue" in capsys.readouterr().err
    assert main(["add-model", "fixed", "--model-path", str(model), "--recipe", "resnet50_pytorch", "--input-size",
                 "256", "--baselines", str(catalogue)]) == 2
    assert "its input is fixed at 224x224, not 256" in capsys.readouterr().err
    assert catalogue.read_text() == DEFAULT_BASELINES.read_text()


def test_a_file_of_unknown_format_is_refused_naming_the_known_endings(tmp_path, capsys):
    model = tmp_path / "model.pt"
    model.write_bytes(b"not a model")
    catalogue = _catalogue(tmp_path)
    assert main(["add-model", "torch", "--model-path", str(model), "--recipe", "resnet50_pytorch", "--baselines",
                 str(catalogue)]) == 2
    assert f"{model}: unknown model file type '.pt'; expected one of .onnx, .tflite" in capsys.readouterr().err
    assert catalogue.read_text() == DEFAULT_BASELINES.read_text()


def _pytest_k(name: str, catalogue: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "tests/test_regression.py", "-k", name,
         "--runtime", "litert", f"--baselines={catalogue}", f"--imagenet-dir={real_imagenet_dir()}",
         f"--artifacts-dir={tmp_path / 'artifacts'}", "-q"],
        cwd=ROOT, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("declared", [False, True], ids=["builtin-recipe", "declared-recipe"])
def test_pytest_k_runs_and_judges_the_added_model(tmp_path, capsys, declared):
    model = _fixture_model(SLIM)
    catalogue = _catalogue(tmp_path)
    recipe = "tf_slim_mobilenet_quant"
    if declared:  # a recipe declared in baselines.yaml by hand, then named by add-model
        catalogue.write_text(catalogue.read_text().replace(
            "recipes: {}", "recipes:\n  slim_declared:\n    base: tf_slim_mobilenet_quant\n"
                           "    summary: TF-slim central crop, declared for this test\n"))
        recipe = "slim_declared"
    assert main(["add-model", "newslim", "--model-path", str(model), "--recipe", recipe, "--documented", "0.395",
                 "0.644", "--source", "TFLite hosted models table (quantized MobileNets)", "--baselines",
                 str(catalogue)]) == 0
    capsys.readouterr()
    result = _pytest_k("newslim", catalogue, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout
    (row,) = [r for r in json.loads((tmp_path / "artifacts" / "report" / "results.json").read_text())["results"]
              if r["case_id"] == "newslim-uint8-1-crop-litert"]
    assert row["verdict"] == "pass" and row["n"] == 700 and row["expected_top1"] == 0.395
    meta = [json.loads(p.read_text()) for p in (tmp_path / "artifacts" / "predictions").glob("*/meta.json")]
    assert [m["recipe"] for m in meta] == [recipe]


def test_list_json_says_whether_each_file_is_present_and_its_hash_verified(tmp_path, capsys):
    model = _fixture_model(SLIM)
    catalogue = _catalogue(tmp_path)
    recorded = "cb273c23ee76374b05b9583177e28aa19744858a7679c56a250e83d0333da785"
    catalogue.write_text(catalogue.read_text().replace(recorded, "f" * 64))
    assert main(["list", "--json", "--baselines", str(catalogue), "--models-dir", str(tmp_path / "none")]) == 0
    listed = json.loads(capsys.readouterr().out)
    slim = listed["models"]["mobilenet_v1_025_128_quant"]["files"]["uint8"]
    assert (slim["present"], slim["path"], slim["sha256_verified"]) == (True, str(model), False)
    absent = listed["models"]["resnet50_pytorch"]["files"]["float"]
    assert (absent["present"], absent["sha256_verified"]) == (False, None)
    assert listed["recipes"]["resnet50_pytorch"]["mean"] == [0.485, 0.456, 0.406]
    assert "mobilenet_v1_025_128_quant-uint8-1-crop-litert" in listed["cases"]


def test_predict_and_accuracy_json_carry_n_intervals_and_the_recipe(tmp_path, capsys):
    model = _fixture_model(SLIM)
    run = ["-m", "mobilenet_v1_025_128_quant", "--crop-fraction", "0.8",
           "--imagenet-dir", str(real_imagenet_dir()), "--limit", "60", "--artifacts-dir", str(tmp_path), "--json"]
    assert main(["predict", *run]) == 0
    predicted = json.loads(capsys.readouterr().out)
    assert main(["accuracy", *run]) == 0
    scored = json.loads(capsys.readouterr().out)
    for result in (predicted, scored):
        assert result["n"] == 60 and result["n_listed"] == 50000
        low, high = result["top1_interval"]
        assert low <= result["top1"] <= high and 0 < high - low < 0.5
        assert result["recipe"]["crop_fraction"] == 0.8 and result["recipe"]["name"] == \
            "tf_slim_mobilenet_quant+crop_fraction"
    assert (scored["top1"], scored["top5"]) == (predicted["top1"], predicted["top5"])
    assert predicted["model_path"] == str(model)
    # the catalogue's documented number belongs to its own recipe: an overridden run is not judged against it
    assert scored["verdict"] == ["recipe overridden: not judged against the catalogue's numbers, which belong to "
                                 "its own recipe"]
