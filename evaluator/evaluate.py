"""One evaluation, end to end, as the CLI and the pytest cases both run it: resolve, predict, score, judge."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .baselines import Baselines, Case
from .dataset import Dataset
from .errors import EvaluatorError, FetchError, ModelError, RuntimeUnavailable, did_you_mean
from .fetch import FETCH_LOCK_FILE, recorded_sha256
from .metrics import accuracy, largest_class_changes, topk_hits, wilson_interval
from .model_hash import file_sha256
from .model_runtime import RuntimePool
from .models import locate_model_file, missing_model_message
from .pipeline import RunResult, predict
from .predictions import Predictions
from .recipes import resolve_recipe
from .report import CaseResult
from .run_spec import RunSpec
from .runtimes import FORMAT_RUNTIMES, RUNTIMES, runtime_available
from .shard import Shard
from .verdict import Measurement, Verdict, judge_case


class ModelFileMissing(EvaluatorError):
    """A catalogue model file is not on disk; the message says where it comes from and how to fetch it."""


@dataclass(frozen=True)
class Scores:
    """TOP1/TOP5 of a predictions table, with n and Wilson 95% intervals."""

    n: int
    n_failed: int
    top1: float
    top5: float
    top1_interval: tuple[float, float]
    top5_interval: tuple[float, float]

    def lines(self, n_listed: int) -> list[str]:
        return [
            f"DATA CNT {self.n} of {n_listed:,}"
            + (f" ({self.n_failed} images failed, counted wrong)" if self.n_failed else ""),
            f"TOP1 {self.top1:f}  95% CI [{self.top1_interval[0]:.4f}, {self.top1_interval[1]:.4f}]",
            f"TOP5 {self.top5:f}  95% CI [{self.top5_interval[0]:.4f}, {self.top5_interval[1]:.4f}]",
        ]


def score(predictions: Predictions) -> Scores:
    """Score a predictions table; failed images count as misses (they are listed separately by the caller)."""
    top1_hits, top5_hits = topk_hits(predictions.top5_ids, predictions.labels)
    n = len(predictions.labels)
    k1, k5 = int(top1_hits.sum()), int(top5_hits.sum())
    return Scores(n=n, n_failed=int((predictions.errors != "").sum()), top1=accuracy(top1_hits),
                  top5=accuracy(top5_hits), top1_interval=wilson_interval(k1, n), top5_interval=wilson_interval(k5, n))


def failed_image_lines(predictions: Predictions, full_list, shown: int = 10) -> list[str]:
    """The first `shown` failed images with their reasons, and where the full list is; [] when none failed."""
    failed = np.flatnonzero(predictions.errors != "")
    if not len(failed):
        return []
    lines = [f"failed images ({len(failed)}; the first {min(shown, len(failed))}):"]
    lines += [f"  {predictions.image_ids[i]}: {predictions.errors[i]}" for i in failed[:shown]]
    lines.append(f"every failed image and its reason: the error column of {full_list}")
    return lines


def resolve_runtime(name: str, model_format: str | None) -> str:
    """'auto' picks ailia where it is installed and licensed, else ONNX Runtime or LiteRT by file format."""
    if name != "auto":
        return name
    if model_format not in FORMAT_RUNTIMES:
        raise EvaluatorError(f"--runtime auto picks a runtime for {', '.join(FORMAT_RUNTIMES)} model files only; "
                             f"name the runtime with --runtime")
    fallback, preferred = FORMAT_RUNTIMES[model_format]
    return preferred if runtime_available(preferred) is None else fallback


def catalogue_spec(baselines: Baselines, model: str, precision: str | None, tta: str, runtime: str,
                   models_dir: Path, hash_cache_dir: Path | None = None, *, recipe: str | None = None,
                   overrides: dict | None = None, **knobs) -> RunSpec:
    """RunSpec of a catalogue model; ModelFileMissing (with URL and fetch command) when its file is absent, ModelError
    when it is not the catalogued file (see check_pinned_sha256).

    Args:
        recipe: another recipe name instead of the catalogue entry's (--recipe).
        overrides: command-line recipe overrides (recipes.OVERRIDE_OPTIONS), applied on top (recipes.resolve_recipe).
    """
    entry = baselines.model(model)
    precision = precision or next(iter(entry.files))
    model_file = entry.file_for(precision)
    path = locate_model_file(model_file, models_dir)
    if path is None:
        raise ModelFileMissing(missing_model_message(entry, precision, models_dir))
    pin = f"{baselines.path} (models.{model}.files.{precision}.sha256)"
    check_pinned_sha256(path, model_file.sha256, pin, Path(models_dir) / FETCH_LOCK_FILE, hash_cache_dir)
    return RunSpec(model_path=path, recipe=resolve_recipe(recipe or model_file.recipe, baselines.recipes, overrides),
                   tta=tta,
                   runtime=resolve_runtime(runtime, entry.format), **knobs)


def check_pinned_sha256(path: Path, catalogue_sha256: str | None, pin: str, lock_file: Path,
                        hash_cache_dir: Path | None) -> None:
    """ModelError, one line naming both hashes, when the file's sha256 differs from the catalogue's or, where the
    catalogue has none, from the one the first fetch recorded in the lock file. A file pinned nowhere is not checked
    (README: "Pinning model files")."""
    expected, where = catalogue_sha256, pin
    if expected is None:
        try:
            expected, where = recorded_sha256(lock_file, path.name), str(lock_file)
        except (FetchError, EvaluatorError) as exc:
            raise ModelError(f"cannot check {path}: {exc}") from None
    if expected is None:
        return
    actual = file_sha256(path, hash_cache_dir)
    if actual != expected:
        raise ModelError(f"{path}: sha256 {actual} differs from {expected} pinned in {where}; this is not the "
                         "catalogued model (fetch it again, or correct the pin if the model changed on purpose)")


def check_runtime(runtime: str) -> None:
    """EvaluatorError listing the runtimes for an unknown name; RuntimeUnavailable with the reason when unusable."""
    if runtime not in RUNTIMES:  # a typo is the user's error (exit 2), not a runtime to skip
        raise EvaluatorError(did_you_mean("runtime", runtime, [*RUNTIMES, "auto"]))
    reason = runtime_available(runtime)
    if reason is not None:
        raise RuntimeUnavailable(reason)


@dataclass
class CaseOutcome:
    """A judged case: what ran, what it scored, and the verdict of the pass/fail rule."""

    case: Case
    run: RunResult
    scores: Scores
    verdict: Verdict
    failed_images: dict[str, str] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.verdict.passed


def predict_case(baselines: Baselines, case: Case, dataset: Dataset, models_dir: Path, artifacts_dir: Path,
                 *, recompute: bool = False, progress=None, shard: Shard | None = None, stored_only: bool = False,
                 runtimes: RuntimePool | None = None, **knobs) -> RunResult:
    """Run (or reuse) one case's predictions, of every image or of one image shard, without judging them.

    Args:
        runtimes: keeps opened runtimes for the caller's next case (pipeline.predict).
        knobs: RunSpec fields, and `overrides`: ad-hoc recipe overrides (pytest --mean ...) on the catalogue's recipe.
    """
    check_runtime(case.runtime)
    spec = catalogue_spec(baselines, case.model, case.precision, case.tta, case.runtime, models_dir,
                          hash_cache_dir=artifacts_dir, **knobs)
    return predict(dataset, spec, artifacts_dir, recompute=recompute, progress=progress, shard=shard,
                   stored_only=stored_only, runtimes=runtimes)


def evaluate_case(baselines: Baselines, case: Case, dataset: Dataset, models_dir: Path, artifacts_dir: Path,
                  *, recompute: bool = False, progress=None, stored_only: bool = False,
                  runtimes: RuntimePool | None = None, **knobs) -> CaseOutcome:
    """Run (or reuse) one case's predictions and judge them with the pass/fail rule (verdict.judge_case)."""
    run = predict_case(baselines, case, dataset, models_dir, artifacts_dir, recompute=recompute, progress=progress,
                       stored_only=stored_only, runtimes=runtimes, **knobs)
    scores = score(run.predictions)
    measurement = Measurement(top1=scores.top1, top5=scores.top5, n=scores.n, n_failed=scores.n_failed,
                              fingerprint=dataset.fingerprint, predictions=run.predictions)
    errors = run.predictions.errors
    failed = {str(i): str(e) for i, e in zip(run.predictions.image_ids[errors != ""], errors[errors != ""])}
    return CaseOutcome(case, run, scores, judge_case(measurement, baselines, case), failed)


def failure_message(outcome: CaseOutcome, reproduce: str, class_names=None) -> str:
    """Both anchors' measured, expected, band, n, the paired numbers and the command to reproduce."""
    verdict = outcome.verdict
    lines = verdict.lines(class_names)
    measured = verdict.measured
    if measured is not None and measured.baseline_predictions is not None:
        lines += ["    " + line for line in class_change_lines(measured.baseline_predictions,
                                                               outcome.run.predictions, class_names, k=3)]
    if outcome.failed_images:
        shown = list(outcome.failed_images.items())[:10]
        lines.append(f"  {len(outcome.failed_images)} image(s) could not be evaluated:")
        lines += [f"    {image_id}: {reason}" for image_id, reason in shown]
    lines.append(f"  recipe {outcome.run.meta.get('recipe', '')}: {outcome.run.meta.get('recipe_summary', '')}")
    lines.append(f"  reproduce: {reproduce}")
    return "\n".join(lines)


def class_change_lines(baseline: Predictions, candidate: Predictions, class_names=None, k: int = 10) -> list[str]:
    """The classes whose TOP1 changed most between two runs, on the images both share."""
    common = np.intersect1d(baseline.image_ids, candidate.image_ids)
    if not len(common):
        return []
    a, b = baseline.select(common), candidate.select(common)
    changes = largest_class_changes(a.labels, topk_hits(a.top5_ids, a.labels)[0],
                                    b.labels, topk_hits(b.top5_ids, b.labels)[0], k=k)
    lines = []
    for class_index, acc_a, acc_b, n in changes:
        name = f" {class_names[class_index]}" if class_names is not None else ""
        lines.append(f"class {class_index}{name}: TOP1 {acc_a:.2f} -> {acc_b:.2f} ({n} images)")
    return lines


def report_group(baselines: Baselines, case: Case, expected_runtime_version: str = "") -> str:
    """The seed README's section a case belongs to: ONNX, tflite, TensorFlow or official."""
    if case.kind == "official":
        return "official"
    if baselines.models[case.model].format == "onnx":
        return "ONNX"
    return "TensorFlow" if expected_runtime_version.startswith("TensorFlow") else "tflite"


def case_result(baselines: Baselines, outcome: CaseOutcome) -> CaseResult:
    """The report row of a case that ran: the documented/official anchor in the expected columns, the measured
    baseline and an accepted gap beside it."""
    verdict, meta = outcome.verdict, outcome.run.meta
    anchor, measured = verdict.anchor, verdict.measured
    top5 = anchor.metric("TOP5")
    note = verdict.reason
    if measured is not None and measured.paired is not None:
        note += "; paired: " + measured.paired.summary()
    return CaseResult(
        case_id=outcome.case.case_id, **dataclasses.asdict(outcome.case.identity),
        group=report_group(baselines, outcome.case, anchor.expected.runtime_version),
        top1=outcome.scores.top1, top5=outcome.scores.top5, n=outcome.scores.n,
        n_population=meta.get("n_listed"), expected_top1=anchor.expected.top1, expected_top5=anchor.expected.top5,
        band_top1=anchor.metric("TOP1").band, band_top5=top5.band if top5 is not None else None,
        verdict=verdict.outcome, note=note, runtime_version=meta.get("runtime_version", ""),
        dataset_fingerprint=meta.get("dataset_fingerprint", ""), date=meta.get("date", ""),
        baseline_top1=measured.expected.top1 if measured is not None else None,
        baseline_band_top1=measured.metric("TOP1").band if measured is not None else None,
        accepted_gap=verdict.accepted_gap or "",
        recipe=f"{meta.get('recipe', '')}: {meta.get('recipe_summary', '')}" if meta.get("recipe") else "",
    )


def unrun_result(baselines: Baselines, case: Case, verdict: str, reason: str) -> CaseResult:
    """The report row of a case that did not produce a measurement: skipped, or stopped by an error."""
    return CaseResult(case_id=case.case_id, **dataclasses.asdict(case.identity), group=report_group(baselines, case),
                      top1=None, top5=None, n=0,
                      n_population=None, expected_top1=None, expected_top5=None, band_top1=None, band_top5=None,
                      verdict=verdict, note=reason)
