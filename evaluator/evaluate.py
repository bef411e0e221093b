"""One evaluation, end to end, as the CLI and the pytest cases both run it: resolve, predict, score, judge."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .artifacts import Predictions
from .baselines import Baselines, Case, Choice, Judgement, choose_expected, judge
from .dataset import Dataset
from .errors import EvaluatorError, RuntimeUnavailable
from .metrics import accuracy, topk_hits, wilson_interval
from .models import locate_model_file, missing_model_message
from .pipeline import RunResult, RunSpec, predict
from .preprocess import get_recipe


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
    """RuntimeUnavailable with the one-line reason when a runtime cannot be used here."""
    from .runtimes import runtime_available

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
    failed_images: dict[str, str] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return all(j.passed for j in self.judgements) and not self.failed_images


def evaluate_case(baselines: Baselines, case: Case, dataset: Dataset, models_dir: Path, artifacts_dir: Path,
                  *, recompute: bool = False, **knobs) -> CaseOutcome:
    """Run (or reuse) one case's predictions and judge them with the pass/fail rule."""
    check_runtime(case.runtime)
    spec = catalogue_spec(baselines, case.model, case.precision, case.tta, case.runtime, models_dir, **knobs)
    run = predict(dataset, spec, artifacts_dir, recompute=recompute)
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
    return CaseOutcome(case, run, scores, choice, judgements, failed)


def failure_message(outcome: CaseOutcome, reproduce: str) -> str:
    """Measured, expected, band, n, basis and the command to reproduce, for a failed case."""
    lines = [f"{outcome.case.case_id}: accuracy outside the band ({outcome.choice.basis})"]
    lines += ["  " + j.describe() + ("" if j.passed else "  <-- FAIL") for j in outcome.judgements]
    if outcome.failed_images:
        shown = list(outcome.failed_images.items())[:10]
        lines.append(f"  {len(outcome.failed_images)} image(s) could not be evaluated:")
        lines += [f"    {image_id}: {reason}" for image_id, reason in shown]
    lines.append(f"  recipe: {outcome.run.meta.get('recipe_summary', '')}")
    lines.append(f"  reproduce: {reproduce}")
    return "\n".join(lines)
