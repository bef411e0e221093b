"""Every file of a report in one directory: report.md, accuracy.png, history.csv, trend.png and report.html."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from . import __version__
from .fileio import atomic_write_text
from .history import plot_history, read_history, record_session
from .report import markdown_report, plot_results
from .report_html import html_report

REPORT_DIR = "report"  # the report's directory under the artifacts directory
RESULTS_JSON = "results.json"  # every case's last result and the session's meta (report.write_results)
HISTORY_CSV = "history.csv"


def write_report(results, out_dir: Path, meta: dict | None = None, session_results=None) -> dict[str, Path]:
    """Write report.md, accuracy.png, trend.png and report.html (atomically) and record the session's rows in
    history.csv, all in out_dir; returns their paths. meta["session_start"] stamps the history rows of
    session_results (default: all results), the cases this session ran."""
    out_dir = Path(out_dir)
    meta = dict(meta or {})
    results = list(results)
    paths = {name: out_dir / file for name, file in (
        ("report", "report.md"), ("plot", "accuracy.png"), ("history", HISTORY_CSV), ("trend", "trend.png"),
        ("html", "report.html"))}
    out_dir.mkdir(parents=True, exist_ok=True)
    session_start = meta.pop("session_start", None) or datetime.now(timezone.utc).isoformat(timespec="seconds")
    meta.setdefault("date", session_start)
    atomic_write_text(paths["report"], markdown_report(results, meta=meta))
    plot_results(results, paths["plot"])
    record_session(results if session_results is None else session_results, paths["history"], session_start,
                   meta.get("evaluator_version", __version__))
    plot_history(read_history(paths["history"]), paths["trend"])
    plots = {"TOP1 and TOP5 against expected": paths["plot"], "Over the sessions": paths["trend"]}
    atomic_write_text(paths["html"], html_report(results, meta, plots))
    return paths
