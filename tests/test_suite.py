"""The regression suite end to end on the real fixtures: verdicts, --update-baselines, xdist, caching, paired checks."""

import dataclasses
import re
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from evaluator.locations import fixtures_dir

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[1]
CASE = "mobilenet_v1_025_128_quant-uint8-1-crop-litert"
DOCUMENTED = "{model: mobilenet_v1_025_128_quant, precision: uint8, tta: 1-crop, top1: 0.395"


@pytest.fixture
def fixtures():
    root = fixtures_dir()
    if not (root / "imagenet").is_dir() or not (root / "models").is_dir():
        pytest.skip(f"real fixtures absent at {root}: put ../shared/fixtures there or set EVALUATOR_FIXTURES")
    return root


@pytest.fixture
def project(pytester, fixtures, tmp_path):
    """A copy of the suite's pytest files and baselines.yaml, with the documented TOP1 of one case made wrong."""
    shutil.copy(ROOT / "pytest.ini", pytester.path / "pytest.ini")
    (pytester.path / "tests").mkdir()
    shutil.copy(ROOT / "tests" / "test_regression.py", pytester.path / "tests" / "test_regression.py")
    text = (ROOT / "baselines.yaml").read_text()
    assert DOCUMENTED in text
    (pytester.path / "baselines.yaml").write_text(text.replace(DOCUMENTED, DOCUMENTED.replace("0.395", "0.300")))
    return pytester


def _run(pytester, tmp_path, *args):
    junit = tmp_path / f"junit-{len(list(tmp_path.glob('junit-*')))}.xml"
    result = pytester.runpytest_subprocess(
        "-k", CASE, "-p", "no:cacheprovider", "--baselines", str(pytester.path / "baselines.yaml"),
        "--imagenet-dir", str(fixtures_dir() / "imagenet"), "--artifacts-dir", str(tmp_path / "artifacts"),
        f"--junitxml={junit}", *args)
    properties = {p.get("name"): p.get("value") for p in ET.parse(junit).iter("property")}
    return result, properties


def test_update_never_hides_a_documented_gap_unless_accepted_with_a_reason(project, tmp_path):
    result, properties = _run(project, tmp_path)
    result.assert_outcomes(failed=1)
    output = result.stdout.str()
    assert re.search(r"TOP1 measured 0\.\d{4}, expected 0\.3000 \(delta \+0\.\d{4}, band ±0\.\d{4}, n=700 of 50,000\)",
                     output)
    assert f"reproduce: pytest -k '{CASE} and not official' --imagenet-dir=" in output
    assert properties["images_predicted"] == "700"

    # The documented check fails: --update-baselines records nothing and says how to record on purpose.
    before = (project.path / "baselines.yaml").read_text()
    result, _ = _run(project, tmp_path, "--update-baselines")
    result.assert_outcomes(failed=1)
    assert f"not recorded: {CASE} fails its documented check (TOP1 measured" in result.stdout.str()
    assert "--accept-documented-gap" in result.stdout.str()
    assert (project.path / "baselines.yaml").read_text() == before

    result, _ = _run(project, tmp_path, "--update-baselines", "--accept-documented-gap", "fixture slice, see SOURCES")
    assert re.search(rf"{CASE} \[[0-9a-f]{{16}}, n=700\]: new top1 0\.\d{{4}}, top5 0\.\d{{4}} "
                     r"\(documented gap accepted: fixture slice, see SOURCES\)", result.stdout.str())
    after = (project.path / "baselines.yaml").read_text()
    assert after.startswith(before.split("measured: []")[0])  # comments, documented and official values intact
    assert "measured:\n  - model: mobilenet_v1_025_128_quant" in after
    assert "accepted_gap: fixture slice, see SOURCES" in after
    assert list((project.path / "baselines").glob("*.csv.gz"))  # the per-image record beside baselines.yaml

    result, properties = _run(project, tmp_path, "-n", "2")
    result.assert_outcomes(passed=1)
    assert properties["images_predicted"] == "0"  # nothing changed: no inference
    assert "identical per-image predictions on 700 images" in properties["verdict_reason"]
    assert "gap accepted: fixture slice, see SOURCES" in properties["verdict_reason"]
    report = (tmp_path / "artifacts" / "report" / "report.md").read_text()
    assert "**Documented gap accepted:** fixture slice, see SOURCES" in report

    # Nothing changed: the file is not rewritten, its date stays.
    recorded = (project.path / "baselines.yaml").read_text()
    result, _ = _run(project, tmp_path, "--update-baselines", "--accept-documented-gap", "fixture slice, see SOURCES")
    assert "1 measured entry unchanged" in result.stdout.str()
    assert (project.path / "baselines.yaml").read_text() == recorded

    # Without the acceptance the gap is back: a value recorded once never retires the documented number.
    (project.path / "baselines.yaml").write_text(recorded.replace("    accepted_gap: fixture slice, see SOURCES\n", ""))
    result, _ = _run(project, tmp_path)
    result.assert_outcomes(failed=1)
    assert "documented check: TOP1 outside the band" in result.stdout.str()


def test_xdist_and_serial_give_the_same_verdicts(project, tmp_path):
    serial, _ = _run(project, tmp_path, "-n", "0", "--recompute")
    parallel, _ = _run(project, tmp_path, "-n", "2", "--recompute")
    serial.assert_outcomes(failed=1)
    parallel.assert_outcomes(failed=1)
    line = re.compile(rf"^{CASE}\s+.*$", re.M)
    assert line.findall(serial.stdout.str()) == line.findall(parallel.stdout.str())


def test_changed_recipe_fails_with_paired_numbers_and_restoring_passes(fixtures, tmp_path, monkeypatch):
    from evaluator import recipes
    from evaluator.baselines import Case, load_baselines
    from evaluator.baselines_update import MeasuredRecord, record_relpath, update_measured
    from evaluator.dataset import load_dataset
    from evaluator.evaluate import evaluate_case, failure_message
    from evaluator.predictions import write_predictions_record

    baselines_path = tmp_path / "baselines.yaml"
    shutil.copy(ROOT / "baselines.yaml", baselines_path)
    dataset = load_dataset(fixtures / "imagenet")
    case = Case("mobilenet_v1_025_128_quant", "uint8", "1-crop", "litert", "documented")
    run = dict(models_dir=tmp_path / "models", artifacts_dir=tmp_path / "artifacts", workers=1)

    first = evaluate_case(load_baselines(baselines_path), case, dataset, **run)
    relpath = record_relpath(case, dataset.fingerprint)
    write_predictions_record(first.run.predictions, tmp_path / relpath)
    update_measured(baselines_path, [MeasuredRecord(
        case.model, case.precision, case.tta, case.runtime, first.run.meta["runtime_version"], first.scores.top1,
        first.scores.top5, first.scores.n, dataset.fingerprint, "test", relpath)])

    recipe = recipes.RECIPES["tf_slim_mobilenet_quant"]
    monkeypatch.setitem(recipes.RECIPES, "tf_slim_mobilenet_quant",
                        dataclasses.replace(recipe, resize="pil-bilinear-antialias"))
    changed = evaluate_case(load_baselines(baselines_path), case, dataset, **run)
    paired = changed.verdict.measured.paired
    assert paired is not None and not paired.identical_predictions
    assert paired.top1_lost + paired.top1_gained > 0
    assert not changed.passed
    message = failure_message(changed, "pytest -k x", dataset.class_names)
    assert re.search(r"per image against the recorded baseline: top1 lost \d+, gained \d+, p=", message)

    monkeypatch.setitem(recipes.RECIPES, "tf_slim_mobilenet_quant", recipe)
    restored = evaluate_case(load_baselines(baselines_path), case, dataset, **run)
    assert restored.passed and restored.verdict.measured.paired.identical_predictions
    assert restored.run.computed == 0  # the first run's artifact is reused
