"""The nightly history: one CSV row per case per session, and a trend plot of TOP1/TOP5 per case over the sessions.

A session is one pytest run (or one `report` run): its rows carry the session's start time, so a case reported twice
in the same session (a rerun of the report, several xdist workers) keeps one row, the last.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from .errors import ArtifactError
from .fileio import atomic_write_text, file_lock
from .report import VERDICT_COLOURS, save_figure

COLUMNS = (
    "session_start", "case_id", "runtime", "runtime_version", "evaluator_version", "recipe", "dataset_fingerprint",
    "n", "top1", "top5", "expected_top1", "expected_top5", "band_top1", "band_top5", "verdict",
)
_RENAMED = {"date": "session_start"}  # columns of the first history format


def history_row(result, session_start: str, evaluator_version: str) -> dict:
    """The CSV row of one CaseResult."""
    return {
        "session_start": session_start,
        "case_id": result.case_id,
        "runtime": result.runtime,
        "runtime_version": result.runtime_version,
        "evaluator_version": evaluator_version,
        "recipe": result.recipe,
        "dataset_fingerprint": result.dataset_fingerprint,
        "n": result.n,
        **{name: _fraction_6(getattr(result, name)) for name in
           ("top1", "top5", "expected_top1", "expected_top5", "band_top1", "band_top5")},
        "verdict": result.verdict,
    }


def _fraction_6(value: float | None) -> str:
    return "" if value is None else f"{value:.6f}"  # accuracy.py prints %f


def read_history(csv_path: Path) -> list[dict]:
    """All rows, oldest first; rows of the first format get the new columns empty."""
    csv_path = Path(csv_path)
    if not csv_path.exists():
        return []
    try:
        with open(csv_path, newline="", encoding="utf-8") as stream:
            reader = csv.DictReader(stream)
            header = reader.fieldnames or []
            unknown = [c for c in header if _RENAMED.get(c, c) not in COLUMNS]
            if unknown:
                raise ArtifactError(f"{csv_path}: line 1 has unknown columns {unknown}; expected {list(COLUMNS)}: "
                                    "move the file away to start a new history")
            return [{column: row.get(column, "") or "" for column in COLUMNS}
                    | {new: row.get(old, "") for old, new in _RENAMED.items() if old in row} for row in reader]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ArtifactError(f"cannot read {csv_path}: {exc}") from None


def record_session(results, csv_path: Path, session_start: str, evaluator_version: str) -> int:
    """Put one row per case of this session into the history (replacing the session's earlier rows of the same
    cases); returns the number of rows written for the session."""
    csv_path = Path(csv_path)
    new_rows = {r.case_id: history_row(r, session_start, evaluator_version) for r in results}
    with file_lock(csv_path):
        kept = [row for row in read_history(csv_path)
                if not (row["session_start"] == session_start and row["case_id"] in new_rows)]
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(kept + list(new_rows.values()))
        try:
            atomic_write_text(csv_path, buffer.getvalue())
        except OSError as exc:
            raise ArtifactError(f"cannot write {csv_path}: {exc.strerror or exc}") from None
    return len(new_rows)


def _number(text: str) -> float | None:
    return float(text) if text not in ("", None) else None


def plot_history(rows: list[dict], path: Path, max_cases: int = 24) -> Path:
    """PNG with one panel per measured case: TOP1 and TOP5 over the sessions, points coloured by verdict, the
    expected values as dashed lines with their pass bands (as of the last session) shaded."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    by_case: dict[str, list[dict]] = {}
    for row in rows:
        if _number(row["top1"]) is not None:
            by_case.setdefault(row["case_id"], []).append(row)
    cases = sorted(by_case)[:max_cases]
    columns = 2 if len(cases) > 1 else 1
    n_rows = max(1, -(-len(cases) // columns))
    figure = Figure(figsize=(6.5 * columns, 1.2 + 2.3 * n_rows), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    axes_grid = figure.subplots(n_rows, columns, squeeze=False)
    for index, axes in enumerate(axes_grid.flat):
        if index >= len(cases):
            axes.set_visible(bool(cases))
            if not cases:
                axes.text(0.5, 0.5, "no measured cases in the history", ha="center", va="center")
            continue
        _plot_case(axes, cases[index], by_case[cases[index]], VERDICT_COLOURS)
    handles = [Patch(color=VERDICT_COLOURS[v], label=v) for v in ("pass", "fail", "xfail")]
    handles += [Line2D([], [], marker="o", color="black", label="TOP1"),
                Line2D([], [], marker="s", color="black", linestyle=":", label="TOP5"),
                Line2D([], [], color="black", linestyle="--", label="expected"),
                Patch(color="grey", alpha=0.25, label="pass band")]
    figure.legend(handles=handles, loc="outside upper center", ncol=len(handles), fontsize=8, frameon=False)
    return save_figure(figure, path)


def _plot_case(axes, case_id: str, rows: list[dict], colours: dict) -> None:
    x = list(range(len(rows)))
    last = rows[-1]
    for metric, marker, style in (("top1", "o", "-"), ("top5", "s", ":")):
        values = [_number(r[metric]) for r in rows]
        expected, band = _number(last[f"expected_{metric}"]), _number(last[f"band_{metric}"])
        if expected is not None:
            axes.axhline(expected, color="black", linestyle="--", linewidth=0.8)
            if band is not None:
                axes.axhspan(expected - band, expected + band, color="grey", alpha=0.18, linewidth=0)
        axes.plot(x, values, color="dimgrey", linestyle=style, linewidth=0.9)
        axes.scatter(x, values, marker=marker, s=22, zorder=3,
                     c=[colours.get(r["verdict"], "black") for r in rows])
    axes.set_title(case_id, fontsize=8)
    labels = [r["session_start"][:10] for r in rows]
    step = max(1, len(x) // 6)
    axes.set_xticks(x[::step], labels[::step], fontsize=7)
    axes.tick_params(axis="y", labelsize=7)
    axes.grid(alpha=0.3)
