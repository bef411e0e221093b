"""evaluator/verdict.py: the one pass/fail rule, its two anchors, known-bad, accepted gaps and the paired test."""

import math
import shutil

import numpy as np
import pytest

from evaluator.baselines import DEFAULT_BASELINES, Case, load_baselines
from evaluator.baselines_update import MeasuredRecord, update_measured
from evaluator.predictions import Predictions, write_predictions_record
from evaluator.verdict import Measurement, judge_case, tolerance_for

CHAINER_ORT = Case("resnet50_chainer", "float", "1-crop", "onnxruntime", "documented")  # documented 0.7444 / 0.9226
CHAINER_AILIA = Case("resnet50_chainer", "float", "1-crop", "ailia", "documented")


def _baselines(tmp_path, *records: MeasuredRecord):
    path = tmp_path / "baselines.yaml"
    shutil.copy(DEFAULT_BASELINES, path)
    if records:
        update_measured(path, list(records))
    return load_baselines(path)


def _measured(top1, top5=0.9226, n=50_000, fingerprint="f00d", **extra) -> Measurement:
    return Measurement(top1=top1, top5=top5, n=n, n_failed=0, fingerprint=fingerprint, **extra)


def _record(top1, top5=0.9226, n=50_000, **extra) -> MeasuredRecord:
    return MeasuredRecord("resnet50_chainer", "float", "1-crop", "onnxruntime", "onnxruntime 1.0", top1, top5, n,
                          "f00d", "0.1.0", **extra)


def test_full_set_is_judged_by_the_plain_tolerance_in_both_directions(tmp_path):
    baselines = _baselines(tmp_path)
    verdict = judge_case(_measured(0.7450), baselines, CHAINER_AILIA)
    top1 = verdict.anchor.metric("TOP1")
    assert top1.band == pytest.approx(0.002) and top1.n_population == 50_000 and verdict.outcome == "pass"
    assert judge_case(_measured(0.7470), baselines, CHAINER_AILIA).outcome == "fail"
    assert judge_case(_measured(0.7410), baselines, CHAINER_AILIA).outcome == "fail"  # a gain fails too


def test_subset_band_reflects_sampling_error_with_the_finite_population_correction(tmp_path):
    baselines = _baselines(tmp_path)
    verdict = judge_case(_measured(0.70, n=1000), baselines, CHAINER_AILIA)
    se = math.sqrt(0.7444 * 0.2556 / 1000) * math.sqrt((50_000 - 1000) / (50_000 - 1))
    assert verdict.anchor.metric("TOP1").band == pytest.approx(0.002 + 1.96 * se)
    assert verdict.outcome == "fail" and "TOP1 outside the band" in verdict.reason
    assert judge_case(_measured(0.73, n=1000), baselines, CHAINER_AILIA).outcome == "pass"
    text = verdict.anchor.metric("TOP1").describe()
    assert "measured 0.7000" in text and "expected 0.7444" in text and "n=1,000 of 50,000" in text


def test_anchor_tolerance_and_its_origin(tmp_path):
    baselines = _baselines(tmp_path)
    entry, tolerance, origin, _ = tolerance_for(baselines, CHAINER_ORT)
    assert entry.runtime == "ailia" and tolerance == baselines.policy.cross_runtime
    assert origin == "policy.tolerance.cross_runtime"
    assert tolerance_for(baselines, CHAINER_AILIA)[1:3] == (baselines.policy.documented, "policy.tolerance.documented")
    keras = Case("resnet50_keras", "float", "1-crop", "litert", "documented")
    assert tolerance_for(baselines, keras)[0].runtime_version == "TensorFlow 2.7"
    official = Case("mobilenetv1_keras", "float", "1-crop", "litert", "official")
    entry, tolerance, origin, _ = tolerance_for(baselines, official)
    assert entry.kind == "official" and (tolerance, origin) == (0.045, "official entry")


def test_a_measured_baseline_never_replaces_the_documented_check(tmp_path):
    # Recorded 4 points below the documented 0.7444: the documented anchor still fails the case.
    baselines = _baselines(tmp_path, _record(0.7044))
    verdict = judge_case(_measured(0.7044), baselines, CHAINER_ORT)
    assert verdict.measured is not None and verdict.measured.passed
    assert verdict.outcome == "fail" and verdict.reason.startswith("documented check: TOP1 outside the band")
    assert verdict.anchor.expected.top1 == 0.7444
    text = "\n".join(verdict.lines())
    assert "documented anchor" in text and "measured anchor" in text and "delta -0.0400" in text


def test_an_accepted_gap_passes_the_documented_check_only_with_its_reason(tmp_path):
    baselines = _baselines(tmp_path, _record(0.7044, accepted_gap="SDK resize differs"))
    verdict = judge_case(_measured(0.7045), baselines, CHAINER_ORT)
    assert verdict.outcome == "pass" and verdict.accepted_gap == "SDK resize differs"
    assert "(gap accepted: SDK resize differs)" in verdict.reason
    assert not verdict.anchor.passed  # the gap stays visible
    # The measured anchor still guards the accepted value, tighter than the documented one.
    drifted = judge_case(_measured(0.7144), baselines, CHAINER_ORT)
    assert drifted.outcome == "fail" and "measured-baseline check: TOP1 outside the band" in drifted.reason
    # Another image set has no measured entry: the documented check fails again.
    assert judge_case(_measured(0.7044, fingerprint="other"), baselines, CHAINER_ORT).outcome == "fail"


def test_measured_anchor_is_tighter_than_documented(tmp_path):
    baselines = _baselines(tmp_path, _record(0.7444))
    verdict = judge_case(_measured(0.7484), baselines, CHAINER_ORT)  # inside cross-runtime 0.01, outside 0.003
    assert verdict.anchor.passed and not verdict.measured.passed and verdict.outcome == "fail"
    assert verdict.measured.metric("TOP1").band == pytest.approx(baselines.policy.measured)


def test_known_bad_reproduced_is_xfail_and_damaged_images_fail(tmp_path):
    baselines = _baselines(tmp_path)
    bad = Case("mobilenetv2_keras", "int8", "1-crop", "litert", "documented")
    verdict = judge_case(_measured(0.0014, 0.0064), baselines, bad)
    assert verdict.outcome == "xfail" and verdict.known_bad and verdict.passed
    assert judge_case(_measured(0.30, 0.5), baselines, bad).outcome == "fail"  # no longer the known number
    damaged = Measurement(0.7444, 0.9226, 50_000, 3, "f00d")
    assert judge_case(damaged, baselines, CHAINER_AILIA).reason == "3 image(s) could not be evaluated"


def _table(top1_ids) -> Predictions:
    n = len(top1_ids)
    top5 = np.stack([np.asarray(top1_ids)] + [np.full(n, 900 + k) for k in range(4)], axis=1).astype(np.int32)
    return Predictions(image_ids=np.array([f"img{i:04d}" for i in range(n)]), labels=np.zeros(n, np.int32),
                       top5_ids=top5, top5_scores=np.zeros((n, 5), np.float32), errors=np.full(n, "", dtype=str))


def test_paired_mcnemar_loss_fails_inside_the_band_and_identical_predictions_pass(tmp_path):
    n = 2000
    baseline = _table([0] * 1500 + [1] * 500)  # TOP1 0.75
    write_predictions_record(baseline, tmp_path / "baselines" / "chainer.csv.gz")
    baselines = _baselines(tmp_path, _record(0.75, n=n, predictions="baselines/chainer.csv.gz"))
    same = judge_case(_measured(0.75, n=n, predictions=baseline), baselines, CHAINER_ORT)
    assert same.measured.identical and "identical per-image predictions on 2000 images" in same.reason
    # Identical predictions never override the band: an entry whose numbers disagree with its record fails.
    tampered = _baselines(tmp_path, _record(0.70, n=n, predictions="baselines/chainer.csv.gz"))
    verdict = judge_case(_measured(0.75, n=n, predictions=baseline), tampered, CHAINER_ORT)
    assert verdict.measured.identical and verdict.outcome == "fail"
    # 30 images lost and 26 others gained: TOP1 0.748, inside the band, no significant loss.
    few = _table([1] * 30 + [0] * 1470 + [0] * 26 + [1] * 474)
    verdict = judge_case(_measured(0.748, n=n, predictions=few), baselines, CHAINER_ORT)
    assert verdict.measured.paired.top1_lost == 30 and not verdict.measured.paired_loss
    # 40 lost, none gained: TOP1 0.73; the measured band (0.003 + 0 SE on the same images) fails it, and McNemar too.
    lossy = _table([1] * 40 + [0] * 1460 + [1] * 500)
    verdict = judge_case(_measured(0.73, n=n, predictions=lossy), baselines, CHAINER_ORT)
    assert verdict.measured.paired_loss and "significant paired TOP1 loss" in verdict.reason


def test_cli_accuracy_prints_the_same_verdict(tmp_path, capsys):
    from imagenet_factory import make_imagenet
    from test_plugin import CATALOGUE
    from test_runtimes import make_onnx

    from evaluator.cli import main

    make_imagenet(tmp_path / "imagenet", n_images=4)
    make_onnx(tmp_path / "tiny.onnx")
    (tmp_path / "baselines.yaml").write_text(CATALOGUE.replace("TOP1", "0.999"))
    args = ["-m", "tiny", "--runtime", "onnxruntime", "--baselines", str(tmp_path / "baselines.yaml"),
            "--models-dir", str(tmp_path), "--imagenet-dir", str(tmp_path / "imagenet"),
            "--artifacts-dir", str(tmp_path / "artifacts"), "--workers", "1"]
    assert main(["predict", *args]) == 0
    capsys.readouterr()
    assert main(["accuracy", *args]) == 0
    out = capsys.readouterr().out
    assert "tiny-float-1-crop-onnxruntime: fail: documented check: TOP1 and TOP5 outside the band" in out
    assert "TOP1 measured 0.0000, expected 0.9990 (delta -0.9990, band ±" in out
