"""Results of a run (CaseResult, results.json) as a markdown report, a PNG plot of measured vs expected TOP1/TOP5 and
a junit summary; report_files.write_report writes them with the history and the HTML page into one directory.

Cases are grouped as in the product README (ONNX, tflite, TensorFlow, official, then any other group alphabetically);
inside a group they keep the order they were given in (the catalogue order).
"""

from __future__ import annotations

import io
import re
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

from . import __version__
from .errors import ArtifactError, clipped
from .fileio import atomic_write_bytes, read_json, write_json_atomic
from .metrics import wilson_interval

GROUP_ORDER = ("ONNX", "tflite", "TensorFlow", "official")
VERDICTS = ("pass", "fail", "xfail", "skip", "error")
VERDICT_COLOURS = {"pass": "#2ca02c", "fail": "#d62728", "xfail": "#8c8c8c", "error": "#9467bd", "skip": "#c7c7c7"}
COLUMNS = (
    "Model", "Precision", "TTA", "TOP1", "TOP5", "Runtime", "Expected TOP1", "Expected TOP5", "ΔTOP1", "Band",
    "Baseline TOP1 (Δ, band)", "n", "Verdict",
)


@dataclass(frozen=True)
class CaseResult:
    """One regression case as it ended: what ran, what it measured, what was expected, and the verdict."""

    # identity
    case_id: str
    model: str
    precision: str
    tta: str
    runtime: str
    group: str  # report section: "ONNX", "tflite", "TensorFlow", "official", "fixtures", ...
    # measured (None when the case did not run)
    top1: float | None
    top5: float | None
    n: int  # images scored
    n_population: int | None  # images in the set the subset was drawn from (50,000 for ImageNet val)
    # expected and verdict
    expected_top1: float | None
    expected_top5: float | None  # None where the source gives no number (official TOP5 "N/A")
    band_top1: float | None  # half-width of the pass band of the documented/official anchor (evaluator/verdict.py)
    band_top5: float | None
    verdict: str  # one of VERDICTS
    note: str = ""  # skip reason, error message or paired-comparison summary
    # provenance
    runtime_version: str = ""
    dataset_fingerprint: str = ""
    date: str = ""  # ISO 8601
    recipe: str = ""  # "name: one-sentence description" of the preprocessing that ran
    # the second anchor: the measured baseline of this runtime and image set, and a documented gap accepted on purpose
    baseline_top1: float | None = None
    baseline_band_top1: float | None = None
    accepted_gap: str = ""

    def __post_init__(self):
        if self.verdict not in VERDICTS:
            raise ValueError(f"case {self.case_id}: verdict {self.verdict!r} is not one of {', '.join(VERDICTS)}")


def group_results(results) -> list[tuple[str, list[CaseResult]]]:
    """Results by group in report order: ONNX, tflite, TensorFlow, official, then other groups alphabetically."""
    groups: dict[str, list[CaseResult]] = {}
    for result in results:
        groups.setdefault(result.group, []).append(result)
    order = [g for g in GROUP_ORDER if g in groups] + sorted(g for g in groups if g not in GROUP_ORDER)
    return [(g, groups[g]) for g in order]


# ---- markdown --------------------------------------------------------------------------------------------------------


def _fraction(value: float | None) -> str:
    return "N/A" if value is None else f"{value:.4f}"


def _top1_with_interval(result: CaseResult) -> str:
    if result.top1 is None:
        return "N/A"
    if result.n <= 0:
        return f"{result.top1:.4f}"
    lo, hi = wilson_interval(round(result.top1 * result.n), result.n)
    return f"{result.top1:.4f} [{lo:.4f}, {hi:.4f}]"


def _delta(measured: float | None, expected: float | None) -> str:
    return "" if measured is None or expected is None else f"{measured - expected:+.4f}"


def _band(result: CaseResult) -> str:
    if result.band_top1 is None and result.band_top5 is None:
        return ""
    top1 = "N/A" if result.band_top1 is None else f"±{result.band_top1:.4f}"
    return top1 if result.band_top5 is None else f"{top1} / ±{result.band_top5:.4f}"


def _baseline(result: CaseResult) -> str:
    if result.baseline_top1 is None:
        return ""
    text = f"{result.baseline_top1:.4f}"
    if result.top1 is not None:
        text += f" ({result.top1 - result.baseline_top1:+.4f}"
        text += f", ±{result.baseline_band_top1:.4f})" if result.baseline_band_top1 is not None else ")"
    return text


def _images(result: CaseResult) -> str:
    return f"{result.n:,}" if result.n_population is None else f"{result.n:,} of {result.n_population:,}"


def _runtime(result: CaseResult) -> str:
    version = result.runtime_version
    if not version:
        return result.runtime
    return version if result.runtime in version else f"{result.runtime} {version}"


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def row_cells(result: CaseResult) -> tuple[str, ...]:
    """The report table's cells of one case, in COLUMNS order (plain text)."""
    return (
        result.model, result.precision, result.tta, _top1_with_interval(result), _fraction(result.top5),
        _runtime(result), _fraction(result.expected_top1), _fraction(result.expected_top5),
        _delta(result.top1, result.expected_top1), _band(result), _baseline(result), _images(result), result.verdict,
    )


def _row(result: CaseResult) -> str:
    cells = list(row_cells(result))
    if result.verdict in ("fail", "error"):
        cells[-1] = f"**{result.verdict}**"
    return "| " + " | ".join(_cell(c) for c in cells) + " |"


_PATH_OR_URL = re.compile(r"\S*[/\\]\S*")


def _reason_key(note: str) -> str:
    """A skip note without its file names, paths and URLs, up to its first ';': the reason shared by many cases."""
    return _PATH_OR_URL.sub("…", note.split(";", 1)[0]).strip() or "no reason given"


def skip_reasons(results) -> list[tuple[str, list[CaseResult]]]:
    """(reason, the cases skipped for it) per distinct reason, most frequent first."""
    cases: dict[str, list[CaseResult]] = {}
    for result in results:
        if result.verdict == "skip":
            cases.setdefault(_reason_key(result.note), []).append(result)
    return sorted(cases.items(), key=lambda item: (-len(item[1]), item[0]))


def skip_line(reason: str, cases: list[CaseResult], shown: int = 3) -> str:
    """"3 × reason (a, b, c)", naming at most `shown` cases."""
    names = ", ".join(r.case_id for r in cases[:shown])
    more = f" and {len(cases) - shown} more" if len(cases) > shown else ""
    return f"{len(cases)} × {reason} ({names}{more})"


def report_header(meta: dict | None) -> dict:
    """The key/value lines over a report: date, evaluator version, dataset, then whatever meta adds."""
    meta = dict(meta or {})
    return {
        "date": meta.pop("date", datetime.now(timezone.utc).isoformat(timespec="seconds")),
        "evaluator version": meta.pop("evaluator_version", __version__),
        "dataset": meta.pop("dataset", "unknown"),
        **meta,
    }


def markdown_report(results, title: str = "ImageNet accuracy report", meta: dict | None = None) -> str:
    """Markdown report: a header block, one table per group, notes per case, skipped cases with their reasons."""
    results = list(results)
    header = report_header(meta)
    counts = {v: sum(r.verdict == v for r in results) for v in VERDICTS}
    lines = [f"# {title}", ""]
    lines += [f"- {key}: {value}" for key, value in header.items()]
    lines += [
        "- verdicts: " + ", ".join(f"{counts[v]} {v}" for v in VERDICTS if counts[v]),
        "",
        "TOP1 shows the Wilson 95% interval in brackets. Band: a case passes when |measured - expected| <= band, "
        "band = tolerance + z × binomial SE of the expected accuracy on n images (z = 1.96 for 95%), with the "
        "finite-population correction for n of N (TOP1 / TOP5). ΔTOP1 = measured - expected. Expected is the "
        "documented or official number; the measured baseline (recorded by --update-baselines for this runtime and "
        "image set) is a second, tighter check. The rule: README \"Pass/fail rule\" (evaluator/verdict.py).",
    ]
    for group, members in group_results(r for r in results if r.verdict != "skip"):
        lines += ["", f"## {group}", "", "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
        lines += [_row(r) for r in members]
        notes = [r for r in members if r.note or r.accepted_gap]
        if notes:
            lines += [""] + [f"- `{r.case_id}` ({r.verdict}): {_cell(r.note)}"
                             + (f" **Documented gap accepted:** {_cell(r.accepted_gap)}" if r.accepted_gap else "")
                             for r in notes]
    reasons = skip_reasons(results)
    if reasons:
        lines += ["", "## Skipped", ""]
        for reason, cases in reasons:  # one line each; every case's own reason folded away beneath it
            lines += [f"- {_cell(skip_line(reason, cases))}", "  <details><summary>each case</summary>", ""]
            lines += [f"  - `{r.case_id}`: {_cell(r.note) or 'no reason given'}" for r in cases] + ["", "  </details>"]
    return "\n".join(lines) + "\n"


# ---- plot ------------------------------------------------------------------------------------------------------------


def _plot_rows(results) -> list[CaseResult]:
    return [r for _, members in group_results(results) for r in members if r.top1 is not None and r.n > 0]


def plot_results(results, path: Path) -> Path:
    """PNG of measured TOP1 and TOP5 (Wilson 95% bars) against expected (diamonds, pass band shaded), one row per
    measured case: absolute values on the left, measured - expected on the right."""
    # Figure + Agg canvas directly: no pyplot, so no global backend switch and no figures left open.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch
    from matplotlib.ticker import MaxNLocator

    rows = _plot_rows(results)
    height = 1.8 + 0.45 * max(len(rows), 1)
    figure = Figure(figsize=(12, height), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    absolute, deviation = figure.subplots(1, 2, sharey=True, width_ratios=(3, 2))
    if not rows:
        absolute.text(0.5, 0.5, "no measured cases", ha="center", va="center", transform=absolute.transAxes)
    for y, result in enumerate(rows):
        colour = VERDICT_COLOURS[result.verdict]
        for metric, shift_y, marker in (("top1", -0.17, "o"), ("top5", 0.17, "s")):
            _plot_metric(absolute, deviation, result, metric, y + shift_y, marker, colour)
    absolute.set_yticks(range(len(rows)), [r.case_id for r in rows], fontsize=8)
    absolute.set_ylim(max(len(rows), 1) - 0.5, -0.5)  # first case on top
    absolute.set_xlabel("accuracy (circle TOP1, square TOP5)")
    deviation.set_xlabel("measured - expected")
    deviation.axvline(0.0, color="black", linewidth=0.8)
    deviation.xaxis.set_major_locator(MaxNLocator(5))
    for axes in (absolute, deviation):
        axes.grid(axis="x", alpha=0.3)
    _mark_groups(rows, absolute, deviation)
    verdicts = [v for v in VERDICTS if any(r.verdict == v for r in rows)]
    handles = [Patch(color=VERDICT_COLOURS[v], label=v) for v in verdicts]
    handles += [
        Line2D([], [], marker="o", color="black", linestyle="", label="TOP1"),
        Line2D([], [], marker="s", color="black", linestyle="", label="TOP5"),
        Line2D([], [], marker="D", color="black", markerfacecolor="none", linestyle="", label="expected"),
        Patch(color="grey", alpha=0.25, label="pass band"),
    ]
    figure.legend(handles=handles, loc="outside upper center", ncol=len(handles), fontsize=8, frameon=False)
    return save_figure(figure, path)


def _plot_metric(absolute, deviation, result: CaseResult, metric: str, y: float, marker: str, colour: str) -> None:
    measured, expected = getattr(result, metric), getattr(result, f"expected_{metric}")
    band = getattr(result, f"band_{metric}")
    if measured is None:
        return
    lo, hi = wilson_interval(round(measured * result.n), result.n)
    if expected is not None and band is not None:
        for axes, centre in ((absolute, expected), (deviation, 0.0)):
            axes.fill_betweenx([y - 0.15, y + 0.15], centre - band, centre + band, color=colour, alpha=0.2,
                               linewidth=0)
    shifts = ((absolute, 0.0),) if expected is None else ((absolute, 0.0), (deviation, expected))
    for axes, shift in shifts:
        axes.errorbar(measured - shift, y, xerr=[[measured - lo], [hi - measured]], fmt=marker, color=colour,
                      markersize=5, capsize=2, elinewidth=1.1)
    if expected is not None:
        absolute.plot(expected, y, marker="D", color="black", markersize=5, markerfacecolor="none", linestyle="")


def _mark_groups(rows: list[CaseResult], absolute, deviation) -> None:
    for y, result in enumerate(rows):
        if y == 0 or rows[y - 1].group != result.group:
            if y:
                for axes in (absolute, deviation):
                    axes.axhline(y - 0.5, color="grey", linewidth=0.6, linestyle="--")
            deviation.annotate(
                result.group, xy=(1.0, y - 0.5), xycoords=("axes fraction", "data"), xytext=(4, -2),
                textcoords="offset points", ha="left", va="top", fontsize=8, style="italic", color="dimgrey",
                annotation_clip=False,
            )


def save_figure(figure, path: Path) -> Path:
    """Render a matplotlib Figure to PNG and write it atomically."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, buffer.getvalue())
    return Path(path)


# ---- results.json ----------------------------------------------------------------------------------------------------


def write_results(path: Path, results, meta: dict) -> None:
    """results.json: the report's meta (dataset, baselines, session start) and one object per case."""
    write_json_atomic(path, {"meta": meta, "results": [asdict(r) for r in results]})


def read_results(path: Path) -> tuple[list[CaseResult], dict]:
    """(results, meta) from results.json; the first format (a bare list of cases) has no meta."""
    data = read_json(path)
    try:
        rows, meta = (data, {}) if isinstance(data, list) else (data.get("results"), data.get("meta") or {})
        return [CaseResult(**row) for row in rows], dict(meta)
    except (AttributeError, TypeError, ValueError) as exc:
        raise ArtifactError(f"{path}: not a results file written by the suite ({clipped(str(exc), 200)})") from None


def merge_results(previous, current, case_ids) -> list[CaseResult]:
    """The report of a run of some cases: this run's results, plus the earlier results of the other cases that the
    catalogue still has (a `-k` run updates its cases instead of replacing the report)."""
    ran = {r.case_id for r in current}
    kept = [r for r in previous if r.case_id not in ran and r.case_id in set(case_ids)]
    return sorted([*kept, *current], key=lambda r: r.case_id)


def junit_summary(results, suite_name: str = "imagenet-accuracy") -> str:
    """One junit XML test case per regression case (fail -> failure, error -> error, skip and xfail -> skipped),
    with measured, expected, band and n as properties."""
    results = list(results)
    suite = ET.Element("testsuite", name=suite_name, tests=str(len(results)),
                       failures=str(sum(r.verdict == "fail" for r in results)),
                       errors=str(sum(r.verdict == "error" for r in results)),
                       skipped=str(sum(r.verdict in ("skip", "xfail") for r in results)))
    for result in results:
        case = ET.SubElement(suite, "testcase", classname="regression", name=result.case_id)
        properties = ET.SubElement(case, "properties")
        for name, value in (("TOP1_measured", result.top1), ("TOP1_expected", result.expected_top1),
                            ("TOP1_band", result.band_top1), ("TOP5_measured", result.top5),
                            ("TOP5_expected", result.expected_top5), ("n_images", result.n)):
            if value is not None:
                ET.SubElement(properties, "property", name=name, value=str(value))
        tag = {"fail": "failure", "error": "error", "skip": "skipped", "xfail": "skipped"}.get(result.verdict)
        if tag:
            ET.SubElement(case, tag, message=(f"xfail: {result.note}" if result.verdict == "xfail" else result.note))
    return ET.tostring(suite, encoding="unicode", xml_declaration=True) + "\n"
