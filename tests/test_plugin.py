"""evaluator/plugin.py, the installed pytest plugin: registration, selection, usage errors, session-level errors,
--strict-data, skip grouping, the report of every case, and the printed `reproduce:` command run verbatim.

Each end-to-end test builds a tiny world in tmp_path (outside the repository): a generated Kaggle-layout ImageNet,
a tiny ONNX model run by ONNX Runtime, and its own baselines file.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from imagenet_factory import make_imagenet
from test_runtimes import make_onnx

import evaluator.plugin
from evaluator.baselines import DEFAULT_BASELINES, load_baselines

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[1]
CASE = "tiny-float-1-crop-onnxruntime"
CATALOGUE = """\
schema: 1
policy:
  z: 1.96
  paired_alpha: 0.01
  tolerance: {documented: 0.002, cross_runtime: 0.01, measured: 0.003}
sources:
  card: {kind: documented, runtime: onnxruntime, runtime_version: model card, n: 50000, date: 2024-01-01,
         reference: test}
models:
  tiny:
    summary: tiny generated ONNX model
    format: onnx
    recipe: resnet50_pytorch
    classes: 1000
    files:
      float: {file: tiny.onnx}
  absent:
    summary: a catalogue model whose file nobody fetched
    format: onnx
    recipe: resnet50_pytorch
    classes: 1000
    files:
      float: {file: absent.onnx}
documented:
  - {model: tiny, precision: float, tta: 1-crop, top1: TOP1, top5: 0.999, source: card}
  - {model: absent, precision: float, tta: 1-crop, top1: 0.5, top5: 0.9, source: card}
"""


def _pytest(*args, cwd=ROOT, **kwargs) -> subprocess.CompletedProcess:
    """`python -m pytest ARGS` in a subprocess (the plugin loads from its entry point)."""
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=600, **kwargs)


def _collected(result: subprocess.CompletedProcess) -> list[str]:
    return [line for line in result.stdout.splitlines() if "::" in line]


@pytest.fixture
def world(tmp_path):
    """tmp_path/imagenet (8 images), tmp_path/models/tiny.onnx, tmp_path/baselines.yaml (documented TOP1 0.999:
    the case fails), and the options that point the plugin at them."""
    make_imagenet(tmp_path / "imagenet", n_images=8)
    (tmp_path / "models").mkdir()
    make_onnx(tmp_path / "models" / "tiny.onnx")
    (tmp_path / "baselines.yaml").write_text(CATALOGUE.replace("TOP1", "0.999"))
    # The = form: pytest picks its rootdir (and pytest.ini with -ra) before it knows these options.
    options = [f"--imagenet-dir={tmp_path / 'imagenet'}", f"--baselines={tmp_path / 'baselines.yaml'}",
               f"--models-dir={tmp_path / 'models'}", f"--artifacts-dir={tmp_path / 'artifacts'}"]
    return tmp_path, options


REGRESSION_FILE = "tests/test_regression.py"  # collecting only the cases keeps each subprocess short


# --- registration and selection ---------------------------------------------------------------------------------


def test_plugin_is_registered_once_from_its_entry_point(request):
    (entry,) = [e for e in importlib.metadata.entry_points(group="pytest11") if e.value == "evaluator.plugin"]
    assert entry.name == "evaluator"
    manager = request.config.pluginmanager
    assert manager.get_plugin("evaluator") is evaluator.plugin
    assert [p for p in manager.get_plugins() if p is evaluator.plugin] == [evaluator.plugin]
    assert "evaluator" not in (ROOT / "conftest.py").read_text().split('"""')[-1].split("import")[0]


def test_importing_the_plugin_loads_no_heavy_module():
    code = ("import sys, evaluator.plugin; "
            "print(sorted(m for m in ('numpy', 'pandas', 'cv2', 'onnxruntime', 'ruamel') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_nightly_workflow_runs_the_regression_cases_with_strict_data():
    workflow = (ROOT / ".github" / "workflows" / "nightly.yml").read_text()
    (line,) = [line for line in workflow.splitlines() if "pytest -m regression" in line]
    assert "--strict-data" in line


def test_k_model_name_selects_exactly_its_regression_cases():
    result = _pytest("-k", "resnet50_chainer", "--collect-only", "-q")
    assert result.returncode == 0, result.stdout + result.stderr
    assert _collected(result) == [f"tests/test_regression.py::test_accuracy[resnet50_chainer-float-{tta}-{runtime}]"
                                  for tta in ("none", "keep-aspect", "1-crop") for runtime in ("onnxruntime", "ailia")]


def test_no_other_test_id_contains_a_catalogue_model_name():
    names = list(load_baselines(DEFAULT_BASELINES).models)
    result = _pytest("--collect-only", "-q")
    ids = _collected(result)
    assert len(ids) > 100
    offenders = [i for i in ids if not i.startswith("tests/test_regression.py::")
                 and any(name in i.lower() for name in names)]
    assert offenders == []


@pytest.mark.parametrize("args, message", [
    (["--runtime", "tflite"], "--runtime tflite: unknown runtime 'tflite'; did you mean litert? "
                              "available: ailia, litert, onnxruntime"),
    (["--model", "resnet50_chainr"], "--model resnet50_chainr: unknown model 'resnet50_chainr'; "
                                     "did you mean resnet50_chainer?"),
    (["--tta", "1crop"], "--tta 1crop: unknown TTA mode '1crop'; did you mean 1-crop? "
                         "available: 1-crop, keep-aspect, none"),
    (["--limit", "0"], "argument --limit/--subset: '0' is not a positive whole number"),
    (["--limit", "-5"], "argument --limit/--subset: '-5' is not a positive whole number"),
    (["--accept-documented-gap", "why"], "--accept-documented-gap only works with --update-baselines"),
])
def test_selection_that_matches_nothing_is_a_usage_error(args, message):
    result = _pytest("--collect-only", "-q", *args)
    assert result.returncode == pytest.ExitCode.USAGE_ERROR
    assert message in result.stderr and "Traceback" not in result.stderr


def test_model_selection_keeps_only_that_model(world):
    tmp_path, options = world
    result = _pytest(REGRESSION_FILE, "--collect-only", "-q", "--model", "tiny", "--runtime", "onnxruntime",
                     *options)
    assert _collected(result) == [f"tests/test_regression.py::test_accuracy[{CASE}]"]


# --- session-level errors ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("workers", ["0", "2"])
@pytest.mark.parametrize("damage", ["malformed solution csv", "empty directory"])
def test_an_unusable_dataset_is_one_error_for_the_session(world, workers, damage):
    tmp_path, options = world
    if damage == "empty directory":
        shutil.rmtree(tmp_path / "imagenet")
        (tmp_path / "imagenet").mkdir()
        expected = "ImageNet data incomplete, missing"
    else:
        csv = tmp_path / "imagenet" / "LOC_val_solution.csv"
        csv.write_text(csv.read_text().replace("ImageId,PredictionString", "Image,Prediction"))
        expected = "LOC_val_solution.csv"
    result = _pytest(REGRESSION_FILE, "-m", "regression", "-n", workers, *options)
    output = result.stdout + result.stderr
    assert result.returncode == pytest.ExitCode.USAGE_ERROR, output
    assert output.count(expected) == 1 and "Traceback" not in output and "INTERNALERROR" not in output
    assert not (tmp_path / "artifacts" / "report").exists()


def test_a_full_disk_while_recording_baselines_is_one_line(world, tmp_path):
    tmp_path, options = world
    (tmp_path / "baselines.yaml").write_text(CATALOGUE.replace("TOP1", "0.0").replace("top5: 0.999", "top5: 0.0"))
    before = (tmp_path / "baselines.yaml").read_text()
    plugin_dir = tmp_path / "inject"
    plugin_dir.mkdir()
    (plugin_dir / "fulldisk.py").write_text(
        "import errno, os\nreal = os.replace\n"
        "def replace(source, target, **kwargs):\n"
        "    if str(target).endswith(('baselines.yaml', '.csv.gz')):\n"
        "        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))\n"
        "    return real(source, target, **kwargs)\n"
        "os.replace = replace\n")
    env = {**os.environ, "PYTHONPATH": str(plugin_dir)}
    result = _pytest(REGRESSION_FILE, "-p", "fulldisk", "-k", CASE, "--update-baselines",
                     "--accept-documented-gap", "test", *options, env=env)
    output = result.stdout + result.stderr
    assert "error: baselines not updated: cannot write" in output and "No space left on device" in output
    assert "Traceback" not in output and "INTERNALERROR" not in output
    assert result.returncode == pytest.ExitCode.TESTS_FAILED
    assert (tmp_path / "baselines.yaml").read_text() == before


def test_update_lists_then_prunes_entries_no_case_uses(world):
    tmp_path, options = world
    stray = ("measured:\n  - {model: tiny, precision: float, tta: 1-crop, runtime: litert, runtime_version: x, "
             "top1: 0.1, top5: 0.2, n: 8, fingerprint: f00d, date: 2024-01-01}\n")
    with open(tmp_path / "baselines.yaml", "a") as catalogue:
        catalogue.write(stray)
    update = (REGRESSION_FILE, "-k", CASE, "--update-baselines", "--accept-documented-gap", "tiny random model")
    listed = _pytest(*update, *options)
    assert "unused (no case uses it; --prune-baselines removes it): measured tiny-float-1-crop-litert [f00d]" \
        in listed.stdout
    assert "runtime: litert" in (tmp_path / "baselines.yaml").read_text()

    pruned = _pytest(*update, "--prune-baselines", *options)
    assert "pruned: measured tiny-float-1-crop-litert [f00d]" in pruned.stdout
    assert "1 measured entry unchanged" in pruned.stdout  # the tiny case's entry recorded by the first run
    text = (tmp_path / "baselines.yaml").read_text()
    assert "runtime: litert" not in text and "accepted_gap: tiny random model" in text


# --- strict data, skips, the report of every case ------------------------------------------------------------------


def test_without_strict_data_missing_files_are_grouped_skips_and_every_case_is_reported(world):
    tmp_path, options = world
    result = _pytest(REGRESSION_FILE, "-m", "regression", *options)
    assert result.returncode == pytest.ExitCode.TESTS_FAILED  # the tiny case fails its documented 0.999
    skips = [line for line in result.stdout.splitlines() if line.startswith("SKIPPED")]
    # both models on ailia (no licence here), the absent model on onnxruntime: one line per reason, with its count
    assert len(skips) == 2, result.stdout
    assert any(line.startswith("SKIPPED [2]") and "runtime ailia unavailable" in line for line in skips), skips
    assert any(line.startswith("SKIPPED [1]") and "model file not in" in line for line in skips), skips
    results = json.loads((tmp_path / "artifacts" / "report" / "results.json").read_text())["results"]
    assert sorted((r["case_id"], r["verdict"]) for r in results) == [
        ("absent-float-1-crop-ailia", "skip"), ("absent-float-1-crop-onnxruntime", "skip"),
        ("tiny-float-1-crop-ailia", "skip"), (CASE, "fail")]
    report = (tmp_path / "artifacts" / "report" / "report.md").read_text()
    assert "`absent-float-1-crop-onnxruntime`: model file " in report  # the per-case reason names the file
    history = (tmp_path / "artifacts" / "report" / "history.csv").read_text().splitlines()
    assert len(history) == 1 + 4


def test_strict_data_fails_missing_models_and_a_session_where_nothing_ran(world):
    tmp_path, options = world
    result = _pytest(REGRESSION_FILE, "-m", "regression", "--strict-data", "-k", "absent", *options)
    assert result.returncode == pytest.ExitCode.TESTS_FAILED
    assert "2 failed" in result.stdout and "--strict-data: model file" in result.stdout
    assert "no regression case ran" in result.stdout
    results = json.loads((tmp_path / "artifacts" / "report" / "results.json").read_text())["results"]
    assert {r["verdict"] for r in results} == {"fail"}

    relaxed = _pytest(REGRESSION_FILE, "-m", "regression", "-k", "absent", *options)
    assert relaxed.returncode == pytest.ExitCode.OK and "2 skipped" in relaxed.stdout
    # A session in which every case skipped still replaces the report: no stale report.md from another night.
    results = json.loads((tmp_path / "artifacts" / "report" / "results.json").read_text())["results"]
    assert {r["verdict"] for r in results} == {"skip"} and len(results) == 2


def test_strict_data_with_a_missing_imagenet_is_one_error(world):
    tmp_path, options = world
    shutil.rmtree(tmp_path / "imagenet")
    result = _pytest(REGRESSION_FILE, "-m", "regression", "--strict-data", *options)
    assert result.returncode == pytest.ExitCode.USAGE_ERROR
    assert "ImageNet directory not found" in result.stderr


def test_a_case_that_raises_is_an_error_row_in_the_report(world):
    tmp_path, options = world
    (tmp_path / "models" / "tiny.onnx").write_bytes(b"not an onnx model")
    result = _pytest(REGRESSION_FILE, "-k", CASE, *options)
    assert result.returncode == pytest.ExitCode.TESTS_FAILED
    results = json.loads((tmp_path / "artifacts" / "report" / "results.json").read_text())["results"]
    (row,) = [r for r in results if r["case_id"] == CASE]
    assert row["verdict"] == "error" and row["note"]
    assert CASE in (tmp_path / "artifacts" / "report" / "history.csv").read_text()


# --- reproduce: the printed command runs verbatim --------------------------------------------------------------


def _path_with_pytest() -> dict:
    return {**os.environ, "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", "")}


def test_printed_reproduce_command_runs_verbatim_from_root_and_tests_in_both_option_forms(world):
    tmp_path, options = world
    space = [part for option in options for part in option.split("=", 1)]
    first = _pytest("-k", CASE, *space)  # ImageNet outside the repository, options in the space form
    assert first.returncode == pytest.ExitCode.TESTS_FAILED, first.stdout + first.stderr
    # The failure section prints the command, and so does the short summary where pytest shows whole messages (CI=true)
    commands = set(re.findall(r"reproduce: (.+)$", first.stdout, re.M))
    assert len(commands) == 1, first.stdout + first.stderr
    printed = shlex.split(commands.pop())
    assert printed[:4] == ["pytest", "-k", f"{CASE} and not official", f"--imagenet-dir={tmp_path / 'imagenet'}"]
    assert f"--baselines={tmp_path / 'baselines.yaml'}" in printed
    space_form = [part for arg in printed for part in (arg.split("=", 1) if arg.startswith("--") else [arg])]
    assert space_form[3:5] == ["--imagenet-dir", str(tmp_path / "imagenet")]
    for argv in (printed, space_form):
        for cwd in (ROOT, ROOT / "tests"):
            result = subprocess.run([*argv, "-p", "no:cacheprovider"], cwd=cwd, capture_output=True, text=True,
                                    env=_path_with_pytest(), timeout=600)
            assert result.returncode == pytest.ExitCode.TESTS_FAILED, (cwd, argv, result.stdout + result.stderr)
            assert "1 failed" in result.stdout and "TOP1 measured 0.0000, expected 0.9990" in result.stdout


def test_space_form_from_the_repository_uses_the_repository_catalogue(tmp_path):
    make_imagenet(tmp_path / "imagenet", n_images=4)
    result = _pytest("-k", "resnet50_chainer", "--collect-only", "-q", "--imagenet-dir", str(tmp_path / "imagenet"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert len(_collected(result)) == 6


# --- the same overrides as pytest options ------------------------------------------------------------------------

def test_pytest_overrides_reach_the_case_its_header_and_its_reproduce_command(world):
    tmp_path, options = world
    result = _pytest(REGRESSION_FILE, "-m", "regression", "--model", "tiny", "--runtime", "onnxruntime",
                     "--mean", "0.5", "0.5", "0.5", "--resize-short-side", "240", *options)
    output = result.stdout + result.stderr
    assert "recipe overrides on every case: mean=[0.5, 0.5, 0.5], resize_short_side=240" in output
    assert "recipe resnet50_pytorch+mean+resize_short_side: short side to 240" in output  # the failure message
    assert "--mean 0.5 0.5 0.5 --resize-short-side 240" in output  # in reproduce:
    meta = [json.loads(p.read_text()) for p in (tmp_path / "artifacts" / "predictions").glob("*/meta.json")]
    assert [m["recipe_fields"]["mean"] for m in meta] == [[0.5, 0.5, 0.5]]

    refused = _pytest(REGRESSION_FILE, "--collect-only", "-q", "--update-baselines", "--std", "1", "1", "1",
                      *options)
    assert refused.returncode == pytest.ExitCode.USAGE_ERROR
    assert "--update-baselines with recipe overrides" in refused.stderr
    bad = _pytest(REGRESSION_FILE, "--collect-only", "-q", "--layout", "NWHC", *options)
    assert bad.returncode == pytest.ExitCode.USAGE_ERROR and "layout must be one of NCHW, NHWC" in bad.stderr
