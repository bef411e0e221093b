"""The pass/fail rule of a regression case, in one function (`judge_case`), called by pytest, the CLI and the report.

The rule (README "Pass/fail rule", DESIGN.md): a metric passes when |measured - expected| <= tolerance + z * SE, SE the
binomial standard error of the expected accuracy on the n images evaluated with the finite-population correction
sqrt((N - n) / (N - 1)) for N the images the expected value was measured on; both directions fail. A case has two
anchors: the documented (or official) number, checked for ever, and, where `--update-baselines` recorded one, the
measured baseline of the same runtime and image set (tighter tolerance plus the exact McNemar test on the per-image
record). A case fails when either anchor fails; a documented gap counts as passed only where the measured entry
carries the reason it was accepted with (`--accept-documented-gap`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from .baselines import Baselines, Case, Expected
from .case import CaseId
from .metrics import PairedComparison, band, paired_compare
from .predictions import read_predictions_record

# A value printed at 4 decimals exactly on the band edge must not flip with floating-point noise.
_EDGE_EPSILON = 1e-9


@dataclass(frozen=True)
class Measurement:
    """What a case measured: accuracies on n images of the image set `fingerprint`, and the per-image table."""

    top1: float
    top5: float
    n: int
    n_failed: int  # images that could not be evaluated (counted wrong); any of them fails the case
    fingerprint: str
    predictions: object = field(default=None, repr=False, compare=False)  # artifacts.Predictions, for the paired test


@dataclass(frozen=True)
class MetricCheck:
    """One metric against one expected value: every number of the rule."""

    metric: str  # TOP1 | TOP5
    measured: float
    expected: float
    tolerance: float
    z: float
    n: int  # images evaluated
    n_population: int  # N: images the expected value was measured on
    band: float  # tolerance + z * SE(expected, n, N)

    @property
    def delta(self) -> float:
        return self.measured - self.expected

    @property
    def passed(self) -> bool:
        return abs(self.delta) <= self.band + _EDGE_EPSILON

    def describe(self) -> str:
        return (f"{self.metric} measured {self.measured:.4f}, expected {self.expected:.4f} "
                f"(delta {self.delta:+.4f}, band ±{self.band:.4f}, n={self.n:,} of {self.n_population:,})")


@dataclass(frozen=True)
class AnchorCheck:
    """The case against one anchor (documented, official or measured), with where its tolerance came from."""

    expected: Expected
    tolerance_origin: str  # e.g. "policy.tolerance.cross_runtime (documented for ailia SDK 1.2.11)"
    basis: str  # one phrase for messages, e.g. "documented for ailia SDK 1.2.11"
    metrics: tuple[MetricCheck, ...]
    paired: PairedComparison | None = None  # measured anchor with a per-image record
    paired_alpha: float | None = None
    baseline_predictions: object = field(default=None, repr=False, compare=False)

    @property
    def kind(self) -> str:
        return self.expected.kind

    @property
    def identical(self) -> bool:
        return self.paired is not None and self.paired.n_common > 0 and self.paired.identical_predictions

    @property
    def paired_loss(self) -> bool:
        """A TOP1 loss against the per-image record that the exact McNemar test calls significant."""
        p = self.paired
        return p is not None and p.top1_lost > p.top1_gained and p.top1_p < self.paired_alpha

    @property
    def passed(self) -> bool:
        # Identical predictions do not override the band: a record that disagrees with its entry's numbers is a
        # damaged baseline, and one check never quietly replaces another.
        return not self.paired_loss and all(m.passed for m in self.metrics)

    def reason(self) -> str:
        outside = [m.metric for m in self.metrics if not m.passed]
        if self.identical and not outside:
            return f"identical per-image predictions on {self.paired.n_common} images"
        parts = [f"{' and '.join(outside)} outside the band"] if outside else []
        if self.paired_loss:
            parts.append(f"significant paired TOP1 loss (p={self.paired.top1_p:.2g} < {self.paired_alpha})")
        return "; ".join(parts) or "inside the band"

    def metric(self, name: str) -> MetricCheck | None:
        return next((m for m in self.metrics if m.metric == name), None)


@dataclass(frozen=True)
class Verdict:
    """A judged case: the outcome, why, and every number both anchors used."""

    case: Case
    outcome: str  # pass | fail | xfail
    reason: str
    anchor: AnchorCheck  # the documented or official number
    measured: AnchorCheck | None  # the measured baseline of this runtime and image set, when recorded
    accepted_gap: str | None  # reason stored with the measured entry for a documented gap accepted on purpose
    known_bad: str | None
    n_failed: int

    @property
    def passed(self) -> bool:
        return self.outcome != "fail"

    def lines(self, class_names=None) -> list[str]:
        """The verdict as message lines: reason, then each anchor's metrics and paired numbers."""
        lines = [f"{self.case.case_id}: {self.outcome}: {self.reason}"]
        for check in filter(None, (self.anchor, self.measured)):
            lines.append(f"  {check.kind} anchor ({check.basis}; tolerance {check.tolerance_origin}): "
                         f"{'passed' if check.passed else 'FAILED'}")
            lines += ["    " + m.describe() + ("" if m.passed else "  <-- outside") for m in check.metrics]
            if check.paired is not None:
                lines.append("    per image against the recorded baseline: "
                             + check.paired.summary(class_names=class_names))
        if self.accepted_gap:
            lines.append(f"  documented gap accepted: {self.accepted_gap}")
        return lines


def tolerance_for(baselines: Baselines, case: Case) -> tuple[Expected, float, str, str]:
    """The documented or official anchor of a case: (entry, tolerance, where the tolerance comes from, basis)."""
    policy = baselines.policy
    combo = (case.model, case.precision, case.tta)
    if case.kind == "official":
        entry = next(e for e in baselines.official if (e.model, e.precision, e.tta) == combo)
        return entry, *_entry_tolerance(entry, policy.documented), f"official benchmark ({entry.reference})"
    documented = [e for e in baselines.documented if (e.model, e.precision, e.tta) == combo]
    same_runtime = next((e for e in documented if e.runtime == case.runtime), None)
    if same_runtime is not None:
        return same_runtime, *_entry_tolerance(same_runtime, policy.documented), \
            f"documented for {same_runtime.runtime_version}"
    entry = documented[0]
    tolerance, origin = _entry_tolerance(entry, policy.documented)
    if policy.cross_runtime > tolerance:
        tolerance, origin = policy.cross_runtime, "policy.tolerance.cross_runtime"
    return entry, tolerance, origin, f"documented for {entry.runtime_version}, another runtime"


def _entry_tolerance(entry: Expected, default: float) -> tuple[float, str]:
    if entry.tolerance is not None:
        return entry.tolerance, f"{entry.kind} entry"
    return default, "policy.tolerance.documented"


def measured_entry(baselines: Baselines, case: Case, fingerprint: str) -> Expected | None:
    """The measured baseline recorded for this case's runtime and exact image set, if any."""
    return next((e for e in baselines.measured
                 if CaseId(e.model, e.precision, e.tta, e.runtime) == case.identity and e.fingerprint == fingerprint),
                None)


def _metric_checks(measurement: Measurement, expected: Expected, tolerance: float, z: float,
                   n_population: int) -> tuple[MetricCheck, ...]:
    checks = []
    for metric, measured, value in (("TOP1", measurement.top1, expected.top1),
                                    ("TOP5", measurement.top5, expected.top5)):
        if value is None:  # official TOP5 "N/A"
            continue
        if measurement.n <= 0:
            raise ValueError(f"cannot judge {metric} on {measurement.n} images")
        population = max(n_population, measurement.n)
        half_width = band(value, measurement.n, population, tolerance, z)
        if math.isnan(measured):
            half_width = float("nan")
        checks.append(MetricCheck(metric, measured, value, tolerance, z, measurement.n, population, half_width))
    return tuple(checks)


def judge_case(measurement: Measurement, baselines: Baselines, case: Case) -> Verdict:
    """The whole pass/fail rule of a case (module docstring); reads the measured entry's per-image record."""
    policy = baselines.policy
    expected, tolerance, origin, basis = tolerance_for(baselines, case)
    checks = _metric_checks(measurement, expected, tolerance, policy.z, expected.n)
    anchor = AnchorCheck(expected, origin, basis, checks)

    measured = None
    entry = measured_entry(baselines, case, measurement.fingerprint)
    if entry is not None:
        paired = baseline = None
        if entry.predictions and measurement.predictions is not None:
            baseline = read_predictions_record(Path(baselines.path).parent / entry.predictions)
            paired = paired_compare(baseline, measurement.predictions)
        # Same runtime, same images: N = n, so the band is the measured tolerance alone.
        measured = AnchorCheck(entry, "policy.tolerance.measured", f"measured on {entry.runtime_version}, same "
                               f"{entry.n:,} images", _metric_checks(measurement, entry, policy.measured, policy.z,
                                                                     measurement.n),
                               paired, policy.paired_alpha, baseline)
    accepted = entry.accepted_gap if entry is not None and case.kind == "documented" else None
    outcome, reason = _outcome(measurement, anchor, measured, accepted, expected.known_bad)
    return Verdict(case, outcome, reason, anchor, measured, accepted, expected.known_bad, measurement.n_failed)


def _outcome(measurement: Measurement, anchor: AnchorCheck, measured: AnchorCheck | None, accepted: str | None,
             known_bad: str | None) -> tuple[str, str]:
    if measurement.n_failed:
        return "fail", f"{measurement.n_failed} image(s) could not be evaluated"
    reasons = []
    if not anchor.passed:
        if accepted is None or measured is None:
            reasons.append(f"{anchor.kind} check: {anchor.reason()}")
    if measured is not None and not measured.passed:
        reasons.append(f"measured-baseline check: {measured.reason()}")
    if reasons:
        return "fail", "; ".join(reasons)
    if known_bad:
        return "xfail", f"known bad, reproduced: {known_bad}"
    parts = [f"{anchor.kind} check: {anchor.reason()}"]
    if not anchor.passed:
        parts[0] += f" (gap accepted: {accepted})"
    if measured is not None:
        parts.append(f"measured-baseline check: {measured.reason()}")
    return "pass", "; ".join(parts)
