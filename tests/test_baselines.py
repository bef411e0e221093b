"""baselines.yaml: schema validation of the whole catalogue, case listing, expected-value choice, judge, update."""

import math
import shutil
from pathlib import Path

import pytest

from evaluator.baselines import (
    DEFAULT_BASELINES, Case, MeasuredRecord, choose_expected, judge, list_cases, load_baselines, update_measured,
)
from evaluator.errors import BaselinesError

SEED_DOCUMENTED_ROWS = 6 + 12 + 3 + 3  # ONNX table, tflite table, hidden known-bad rows, TensorFlow 2.7 table


def test_repository_catalogue_is_valid_and_complete():
    baselines = load_baselines(DEFAULT_BASELINES)
    seed_rows = [e for e in baselines.documented if not e.model.startswith(("mobilenet_v", "onnxzoo"))]
    assert len(seed_rows) == SEED_DOCUMENTED_ROWS
    assert len(baselines.official) == 5
    assert {e.known_bad is not None for e in baselines.documented} == {True, False}
    assert sum(e.known_bad is not None for e in baselines.documented) == 3
    for entry in (*baselines.documented, *baselines.official):
        assert entry.n == 50000 and entry.reference and entry.runtime_version and entry.date


def test_every_documented_row_and_official_benchmark_has_a_case():
    baselines = load_baselines(DEFAULT_BASELINES)
    ids = {case.case_id for case in list_cases(baselines)}
    for entry in baselines.documented:
        runtime = entry.runtime
        assert f"{entry.model}-{entry.precision}-{entry.tta}-{runtime}" in ids
    for entry in baselines.official:
        assert any(i.startswith(f"{entry.model}-{entry.precision}-{entry.tta}-") and i.endswith("-official")
                   for i in ids)
    assert "resnet50_chainer-float-1-crop-ailia" in ids
    assert "resnet50_chainer-float-1-crop-onnxruntime" in ids
    assert len(ids) == len(list_cases(baselines))  # no duplicate ids


def _copy(tmp_path: Path) -> Path:
    path = tmp_path / "baselines.yaml"
    shutil.copy(DEFAULT_BASELINES, path)
    return path


@pytest.mark.parametrize("edit, expected", [
    (("top1: 0.6852", "top1: 6.852"), "documented[0].top1: 6.852 must be an accuracy fraction in [0, 1]"),
    (("top1: 0.6852", "top1: 0.6852, colour: red"), "documented[0].colour: unknown key"),
    (("{model: resnet50_pytorch, precision: float, tta: none, top1: 0.6852",
      "{model: resnet50_pytorch, precision: float, tta: none, top1: 0.6852, top5: 0.8869, source: ailia-sdk-onnx}\n"
      "  - {model: resnet50_pytorch, precision: float, tta: none, top1: 0.6852"), "duplicate of documented[0]"),
    (("{model: resnet50_pytorch, precision: float, tta: none, ", "{model: resnet50_pytorch, precision: float, "),
     "documented[0]: missing key 'tta'"),
    (("tta: keep-aspect, top1: 0.7444", "tta: keep_aspect, top1: 0.7444"), "did you mean keep-aspect?"),
    (("recipe: resnet50_chainer", "recipe: resnet50_chainr"), "did you mean resnet50_chainer?"),
    (("classes: 1001", "classes: 10"), "must be 1000 or 1001"),
    (("recipe: onnx_zoo_mobilenetv2\n    classes: 1000", "recipe: onnx_zoo_mobilenetv2\n    classes: 1001"),
     "recipe onnx_zoo_mobilenetv2 has class offset 0, which does not fit 1001 classes"),
    (("schema: 1", "schema: 1\nextra: true"), "extra: unknown top-level key"),
    (("classes: 1000\n    large: true", "classes: 1000\n    large: sometimes"),
     "models.resnet50_pytorch.large: 'sometimes' must be true or false"),
])
def test_malformed_file_names_the_key_path(tmp_path, edit, expected):
    path = _copy(tmp_path)
    text = path.read_text()
    assert edit[0] in text
    path.write_text(text.replace(edit[0], edit[1], 1))
    with pytest.raises(BaselinesError) as error:
        load_baselines(path)
    assert expected in str(error.value)
    assert str(path) in str(error.value)


def test_all_problems_are_listed_at_once(tmp_path):
    path = _copy(tmp_path)
    text = path.read_text().replace("top1: 0.6852", "top1: 1.5", 1).replace("top5: 0.9265", "top5: -1", 1)
    path.write_text(text)
    with pytest.raises(BaselinesError) as error:
        load_baselines(path)
    message = str(error.value)
    assert "3 problem(s)" in message
    assert "documented[0].top1: 1.5 must be" in message and "documented[0]: top5 0.8869 is below top1 1.5" in message
    assert "documented[4].top5: -1 must be" in message


def test_judge_full_set_uses_plain_tolerance():
    verdict = judge("TOP1", 0.7450, 0.7444, n=50000, n_population=50000, tolerance=0.002, z=1.96)
    assert verdict.band == pytest.approx(0.002)
    assert verdict.passed
    assert not judge("TOP1", 0.7470, 0.7444, 50000, 50000, 0.002, 1.96).passed
    assert not judge("TOP1", 0.7410, 0.7444, 50000, 50000, 0.002, 1.96).passed  # two-sided


def test_judge_subset_band_reflects_sampling_error():
    verdict = judge("TOP1", 0.70, 0.7444, n=1000, n_population=50000, tolerance=0.002, z=1.96)
    se = math.sqrt(0.7444 * 0.2556 / 1000) * math.sqrt((50000 - 1000) / (50000 - 1))
    assert verdict.band == pytest.approx(0.002 + 1.96 * se)
    assert not verdict.passed  # 4.4 points off is outside a ±2.9-point band
    assert judge("TOP1", 0.73, 0.7444, 1000, 50000, 0.002, 1.96).passed
    text = verdict.describe()
    assert "measured 0.7000" in text and "expected 0.7444" in text and "n=1,000 of 50,000" in text


def test_choose_expected_prefers_measured_then_same_runtime_then_cross_runtime(tmp_path):
    path = _copy(tmp_path)
    baselines = load_baselines(path)
    ort = Case("resnet50_chainer", "float", "1-crop", "onnxruntime", "documented")
    choice = choose_expected(baselines, ort, fingerprint="abc")
    assert choice.expected.runtime == "ailia" and choice.tolerance == baselines.policy.cross_runtime
    ailia = Case("resnet50_chainer", "float", "1-crop", "ailia", "documented")
    assert choose_expected(baselines, ailia, "abc").tolerance == baselines.policy.documented
    tf = Case("resnet50_keras", "float", "1-crop", "litert", "documented")
    assert choose_expected(baselines, tf, "abc").expected.runtime_version == "TensorFlow 2.7"

    update_measured(path, [MeasuredRecord("resnet50_chainer", "float", "1-crop", "onnxruntime", "onnxruntime 1.0",
                                          0.75, 0.93, 700, "abc", "0.1.0")])
    baselines = load_baselines(path)
    measured = choose_expected(baselines, ort, fingerprint="abc")
    assert measured.expected.kind == "measured" and measured.tolerance == baselines.policy.measured
    assert choose_expected(baselines, ort, fingerprint="other").expected.kind == "documented"
    official = Case("resnet50_pytorch", "float", "1-crop", "onnxruntime", "official")
    assert choose_expected(baselines, official, "abc").expected.kind == "official"


def test_update_measured_keeps_comments_and_documented_numbers(tmp_path):
    path = _copy(tmp_path)
    before = path.read_text()
    record = MeasuredRecord("mobilenet_v1_025_128_quant", "uint8", "1-crop", "litert", "ai-edge-litert 2.3.0",
                            0.41, 0.66, 700, "f00d", "0.1.0")
    changes = update_measured(path, [record], today="2026-11-28")
    assert changes == ["mobilenet_v1_025_128_quant-uint8-1-crop-litert [f00d, n=700]: new top1 0.4100, top5 0.6600"]
    after = path.read_text()
    head = before.split("measured: []")[0]
    assert after.startswith(head)  # every comment and documented/official number is untouched
    changes = update_measured(path, [MeasuredRecord(**{**record.__dict__, "top1": 0.42})], today="2026-11-29")
    assert changes == ["mobilenet_v1_025_128_quant-uint8-1-crop-litert [f00d, n=700]: top1 0.4100 -> 0.4200"]
    measured = load_baselines(path).measured
    assert len(measured) == 1 and measured[0].top1 == 0.42 and measured[0].date == "2026-11-29"


def test_update_refuses_to_write_an_invalid_file(tmp_path):
    path = _copy(tmp_path)
    before = path.read_text()
    bad = MeasuredRecord("mobilenet_v1_025_128_quant", "uint8", "1-crop", "litert", "x", 1.5, 0.66, 700, "f", "0")
    with pytest.raises(BaselinesError, match="update refused"):
        update_measured(path, [bad])
    assert path.read_text() == before
