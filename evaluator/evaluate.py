"""One evaluation, end to end, as the CLI and the pytest cases both run it: resolve, predict, score, judge."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .artifacts import Predictions, read_predictions_record
from .baselines import Baselines, Case, Choice, Judgement, case_verdict, choose_expected, judge
from .dataset import Dataset
from .errors import EvaluatorError, RuntimeUnavailable, did_you_mean
from .metrics import PairedComparison, accuracy, largest_class_changes, paired_compare, topk_hits, wilson_interval
from .models import locate_model_file, missing_model_message
from .pipeline import RunResult, RunSpec, predict
from .preprocess import get_recipe
from .shard import Shard


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
            f"DATA CNT {self.n} of {n_listed:,}" + (f" ({self.n_failed} images failed, counted wrong)" if self.n_failed else ""),
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


def resolve_runtime(name: str, model_format: str) -> str:
    """'auto' picks ailia where it is installed and licensed, else ONNX Runtime or LiteRT by file format."""
    from .models import FORMAT_RUNTIMES
    from .runtimes import runtime_available

    if name != "auto":
        return name
    preferred, fallback = FORMAT_RUNTIMES[model_format][1], FORMAT_RUNTIMES[model_format][0]
    return preferred if runtime_available(preferred) is None else fallback


def catalogue_spec(baselines: Baselines, model: str, precision: str | None, tta: str, runtime: str,
                   models_dir: Path, **knobs) -> RunSpec:
    """RunSpec of a catalogue model; ModelFileMissing (with URL and fetch command) when its file is absent."""
    entry = baselines.model(model)
    precision = precision or next(iter(entry.files))
    model_file = entry.file_for(precision)
    path = locate_model_file(model_file, models_dir)
    if path is None:
        raise ModelFileMissing(missing_model_message(entry, precision, models_dir))
    return RunSpec(model_path=path, recipe=get_recipe(model_file.recipe), tta=tta,
                   runtime=resolve_runtime(runtime, entry.format), **knobs)


def check_runtime(runtime: str) -> None:
    """EvaluatorError listing the runtimes for an unknown name; RuntimeUnavailable with the reason when unusable."""
    from .runtimes import RUNTIMES, runtime_available

    if runtime not in RUNTIMES:  # a typo is the user's error (exit 2), not a runtime to skip
        raise EvaluatorError(did_you_mean("runtime", runtime, [*RUNTIMES, "auto"]))
    reason = runtime_available(runtime)
    if reason is not None:
        raise RuntimeUnavailable(reason)


@dataclass
class CaseOutcome:
    """A judged case: what ran, what it scored, what it was compared with."""

    case: Case
    run: RunResult
    scores: Scores
    choice: Choice
    judgements: list[Judgement]
    alpha: float
    failed_images: dict[str, str] = field(default_factory=dict)
    paired: PairedComparison | None = None
    baseline_predictions: Predictions | None = None

    @property
    def verdict(self) -> tuple[bool, str]:
        return case_verdict(self.judgements, self.paired, len(self.failed_images), self.alpha)

    @property
    def passed(self) -> bool:
        return self.verdict[0]


def predict_case(baselines: Baselines, case: Case, dataset: Dataset, models_dir: Path, artifacts_dir: Path,
                 *, recompute: bool = False, shard: Shard | None = None, stored_only: bool = False,
                 **knobs) -> RunResult:
    """Run (or reuse) one case's predictions, of every image or of one image shard, without judging them."""
    check_runtime(case.runtime)
    spec = catalogue_spec(baselines, case.model, case.precision, case.tta, case.runtime, models_dir, **knobs)
    return predict(dataset, spec, artifacts_dir, recompute=recompute, shard=shard, stored_only=stored_only)


def evaluate_case(baselines: Baselines, case: Case, dataset: Dataset, models_dir: Path, artifacts_dir: Path,
                  *, recompute: bool = False, stored_only: bool = False, **knobs) -> CaseOutcome:
    """Run (or reuse) one case's predictions and judge them with the pass/fail rule."""
    run = predict_case(baselines, case, dataset, models_dir, artifacts_dir, recompute=recompute,
                       stored_only=stored_only, **knobs)
    scores = score(run.predictions)
    choice = choose_expected(baselines, case, dataset.fingerprint)
    expected = choice.expected
    # The expected value was measured on `expected.n` images; a measured baseline on these very images has N = n.
    n_population = expected.n if expected.kind != "measured" else scores.n
    judgements = [judge("TOP1", scores.top1, expected.top1, scores.n, n_population, choice.tolerance,
                        baselines.policy.z)]
    if expected.top5 is not None:
        judgements.append(judge("TOP5", scores.top5, expected.top5, scores.n, n_population, choice.tolerance,
                                baselines.policy.z))
    errors = run.predictions.errors
    failed = {str(i): str(e) for i, e in zip(run.predictions.image_ids[errors != ""], errors[errors != ""])}
    outcome = CaseOutcome(case, run, scores, choice, judgements, baselines.policy.paired_alpha, failed)
    if expected.predictions:
        outcome.baseline_predictions = read_predictions_record(baselines.path.parent / expected.predictions)
        outcome.paired = paired_compare(outcome.baseline_predictions, run.predictions)
    return outcome


def failure_message(outcome: CaseOutcome, reproduce: str, class_names=None) -> str:
    """Measured, expected, band, n, basis, paired numbers and the command to reproduce, for a failed case."""
    lines = [f"{outcome.case.case_id}: {outcome.verdict[1]} ({outcome.choice.basis})"]
    lines += ["  " + j.describe() + ("" if j.passed else "  <-- outside") for j in outcome.judgements]
    if outcome.paired is not None:
        lines.append("  per image against the recorded baseline: " + outcome.paired.summary(class_names=class_names))
        lines += ["  " + line for line in class_change_lines(outcome.baseline_predictions, outcome.run.predictions,
                                                             class_names, k=3)]
    if outcome.failed_images:
        shown = list(outcome.failed_images.items())[:10]
        lines.append(f"  {len(outcome.failed_images)} image(s) could not be evaluated:")
        lines += [f"    {image_id}: {reason}" for image_id, reason in shown]
    lines.append(f"  recipe: {outcome.run.meta.get('recipe_summary', '')}")
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


def case_result(baselines: Baselines, outcome: CaseOutcome, verdict: str):
    """The report row of a case that ran."""
    from .report import CaseResult

    by_metric = {j.metric: j for j in outcome.judgements}
    expected, meta = outcome.choice.expected, outcome.run.meta
    note = outcome.verdict[1]
    if outcome.paired is not None:
        note += "; " + outcome.paired.summary()
    return CaseResult(
        case_id=outcome.case.case_id, model=outcome.case.model, precision=outcome.case.precision,
        tta=outcome.case.tta, runtime=outcome.case.runtime,
        group=report_group(baselines, outcome.case, expected.runtime_version),
        top1=outcome.scores.top1, top5=outcome.scores.top5, n=outcome.scores.n,
        n_population=meta.get("n_listed"), expected_top1=expected.top1, expected_top5=expected.top5,
        band_top1=by_metric["TOP1"].band, band_top5=by_metric["TOP5"].band if "TOP5" in by_metric else None,
        verdict=verdict, note=note, runtime_version=meta.get("runtime_version", ""),
        dataset_fingerprint=meta.get("dataset_fingerprint", ""), date=meta.get("date", ""),
    )


def skipped_result(baselines: Baselines, case: Case, reason: str):
    """The report row of a case that could not run."""
    from .report import CaseResult

    return CaseResult(case_id=case.case_id, model=case.model, precision=case.precision, tta=case.tta,
                      runtime=case.runtime, group=report_group(baselines, case), top1=None, top5=None, n=0,
                      n_population=None, expected_top1=None, expected_top5=None, band_top1=None, band_top5=None,
                      verdict="skip", note=reason)
