"""Results of a run as a markdown and an HTML report, a PNG plot of measured vs expected TOP1, a junit summary and a
history CSV.

Cases are grouped as in the product README (ONNX, tflite, TensorFlow, official, then any other group alphabetically);
inside a group they keep the order they were given in (the catalogue order).
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from . import __version__
from .artifacts import atomic_write_bytes, atomic_write_text, file_lock
from .errors import ArtifactError
from .metrics import wilson_interval

GROUP_ORDER = ("ONNX", "tflite", "TensorFlow", "official")
VERDICTS = ("pass", "fail", "xfail", "skip", "error")
VERDICT_COLOURS = {"pass": "#2ca02c", "fail": "#d62728", "xfail": "#8c8c8c", "error": "#9467bd", "skip": "#c7c7c7"}
HISTORY_COLUMNS = (
    "date", "case_id", "runtime", "runtime_version", "evaluator_version", "dataset_fingerprint",
    "n", "top1", "top5", "verdict",
)
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
    """The texts of a case's table row, one per COLUMNS entry (markdown and HTML reports alike)."""
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


def _header(meta: dict | None) -> dict:
    """The report's header block: date, evaluator version, dataset, then whatever else meta holds."""
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
    header = _header(meta)
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
    skipped = [r for r in results if r.verdict == "skip"]
    if skipped:
        lines += ["", "## Skipped", ""] + [f"- `{r.case_id}`: {_cell(r.note) or 'no reason given'}" for r in skipped]
    return "\n".join(lines) + "\n"


# ---- HTML and junit ------------------------------------------------------------------------------------------------


def html_report(results, title: str = "ImageNet accuracy report", meta: dict | None = None) -> str:
    """The markdown report's content as one HTML page (tables per group, notes, skips, the plot beside it)."""
    from html import escape

    results = list(results)
    counts = {v: sum(r.verdict == v for r in results) for v in VERDICTS}
    parts = [f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{escape(title)}</title>",
             "<style>body{font-family:sans-serif}table{border-collapse:collapse}td,th{border:1px solid #ccc;"
             "padding:2px 6px;text-align:right}td:first-child{text-align:left}"
             + "".join(f".{v}{{color:{colour}}}" for v, colour in VERDICT_COLOURS.items()) + "</style></head><body>",
             f"<h1>{escape(title)}</h1><ul>"]
    parts += [f"<li>{escape(str(key))}: {escape(str(value))}</li>" for key, value in _header(meta).items()]
    parts.append("<li>verdicts: " + ", ".join(f"{counts[v]} {v}" for v in VERDICTS if counts[v]) + "</li></ul>")
    for group, members in group_results(r for r in results if r.verdict != "skip"):
        parts.append(f"<h2>{escape(group)}</h2><table><tr>" + "".join(f"<th>{escape(c)}</th>" for c in COLUMNS)
                     + "</tr>")
        for result in members:
            cells = "".join(f"<td>{escape(str(c))}</td>" for c in row_cells(result)[:-1])
            parts.append(f"<tr>{cells}<td class=\"{result.verdict}\"><b>{result.verdict}</b></td></tr>")
        parts.append("</table>")
        parts += [f"<p><code>{escape(r.case_id)}</code> ({r.verdict}): {escape(r.note)}</p>" for r in members if r.note]
    skipped = [r for r in results if r.verdict == "skip"]
    if skipped:
        parts.append("<h2>Skipped</h2><ul>" + "".join(f"<li><code>{escape(r.case_id)}</code>: {escape(r.note)}</li>"
                                                        for r in skipped) + "</ul>")
    parts.append('<p><img src="accuracy.png" alt="measured vs expected TOP1 per case"></p></body></html>')
    return "\n".join(parts) + "\n"


def junit_summary(results, suite_name: str = "imagenet-accuracy") -> str:
    """One junit XML test case per regression case (fail -> failure, error -> error, skip and xfail -> skipped),
    with measured, expected, band and n as properties."""
    import xml.etree.ElementTree as ET

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


# ---- plot ------------------------------------------------------------------------------------------------------------


def _plot_rows(results) -> list[CaseResult]:
    return [r for _, members in group_results(results) for r in members if r.top1 is not None and r.n > 0]


def plot_results(results, path: Path) -> Path:
    """PNG of measured TOP1 (Wilson 95% bar) vs expected (diamond, pass band shaded), one row per measured case."""
    # Figure + Agg canvas directly: no pyplot, so no global backend switch and no figures left open.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    rows = _plot_rows(results)
    height = 1.6 + 0.32 * max(len(rows), 1)
    figure = Figure(figsize=(12, height), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    absolute, deviation = figure.subplots(1, 2, sharey=True, width_ratios=(3, 2))
    if not rows:
        absolute.text(0.5, 0.5, "no measured cases", ha="center", va="center", transform=absolute.transAxes)
    for y, result in enumerate(rows):
        colour = VERDICT_COLOURS[result.verdict]
        lo, hi = wilson_interval(round(result.top1 * result.n), result.n)
        expected = result.expected_top1
        offset = 0.0 if expected is None else expected  # right panel: measured - expected
        if expected is not None and result.band_top1 is not None:
            for axes, centre in ((absolute, expected), (deviation, 0.0)):
                axes.fill_betweenx(
                    [y - 0.38, y + 0.38], centre - result.band_top1, centre + result.band_top1, color=colour,
                    alpha=0.18, linewidth=0,
                )
        for axes, shift in ((absolute, 0.0), (deviation, offset)):
            axes.errorbar(
                result.top1 - shift, y, xerr=[[result.top1 - lo], [hi - result.top1]], fmt="o", color=colour,
                markersize=5, capsize=3, elinewidth=1.2,
            )
        if expected is not None:
            absolute.plot(expected, y, marker="D", color="black", markersize=5, markerfacecolor="none", linestyle="")
    absolute.set_yticks(range(len(rows)), [r.case_id for r in rows], fontsize=8)
    absolute.set_ylim(max(len(rows), 1) - 0.5, -0.5)  # first case on top
    absolute.set_xlabel("TOP1 accuracy")
    deviation.set_xlabel("measured - expected TOP1")
    deviation.axvline(0.0, color="black", linewidth=0.8)
    for axes in (absolute, deviation):
        axes.grid(axis="x", alpha=0.3)
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
    verdicts = [v for v in VERDICTS if any(r.verdict == v for r in rows)]
    handles = [Line2D([], [], marker="o", color=VERDICT_COLOURS[v], linestyle="", label=v) for v in verdicts]
    handles += [
        Line2D([], [], marker="D", color="black", markerfacecolor="none", linestyle="", label="expected"),
        Patch(color="grey", alpha=0.25, label="pass band"),
    ]
    figure.legend(handles=handles, loc="outside upper center", ncol=len(handles), fontsize=8, frameon=False)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, buffer.getvalue())
    return Path(path)


# ---- history ---------------------------------------------------------------------------------------------------------


def _history_row(result: CaseResult, evaluator_version: str) -> dict:
    return {
        "date": result.date or datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "case_id": result.case_id,
        "runtime": result.runtime,
        "runtime_version": result.runtime_version,
        "evaluator_version": evaluator_version,
        "dataset_fingerprint": result.dataset_fingerprint,
        "n": result.n,
        "top1": _fraction_6(result.top1),
        "top5": _fraction_6(result.top5),
        "verdict": result.verdict,
    }


def _fraction_6(value: float | None) -> str:
    return "" if value is None else f"{value:.6f}"  # accuracy.py prints %f


def append_history(results, csv_path: Path, evaluator_version: str = __version__) -> int:
    """Append one row per case (ran, failed, errored or skipped) to the history CSV; returns the rows written."""
    csv_path = Path(csv_path)
    rows = [_history_row(r, evaluator_version) for r in results]
    with file_lock(csv_path):
        try:
            is_new = not csv_path.exists() or csv_path.stat().st_size == 0
            if not is_new:
                with open(csv_path, newline="", encoding="utf-8") as existing:
                    header = next(csv.reader(existing), [])
                if tuple(header) != HISTORY_COLUMNS:
                    raise ArtifactError(
                        f"{csv_path}: line 1 has columns {header}, expected {list(HISTORY_COLUMNS)}; "
                        "move the old file away to start a new history"
                    )
            with open(csv_path, "a", newline="", encoding="utf-8") as stream:
                writer = csv.DictWriter(stream, fieldnames=HISTORY_COLUMNS)
                if is_new:
                    writer.writeheader()
                writer.writerows(rows)
                stream.flush()
                os.fsync(stream.fileno())
        except (OSError, UnicodeDecodeError) as exc:
            raise ArtifactError(f"cannot append to {csv_path}: {exc}") from exc
    return len(rows)


# ---- everything ------------------------------------------------------------------------------------------------------


def write_report(results, out_dir: Path, meta: dict | None = None) -> dict[str, Path]:
    """Write report.md, report.html and accuracy.png (atomically) and append history.csv in out_dir; returns their
    paths."""
    out_dir = Path(out_dir)
    meta = dict(meta or {})
    results = list(results)
    paths = {
        "report": out_dir / "report.md",
        "html": out_dir / "report.html",
        "plot": out_dir / "accuracy.png",
        "history": out_dir / "history.csv",
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(paths["report"], markdown_report(results, meta=meta))
    atomic_write_text(paths["html"], html_report(results, meta=meta))
    plot_results(results, paths["plot"])
    append_history(results, paths["history"], meta.get("evaluator_version", __version__))
    return paths
