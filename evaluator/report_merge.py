"""One report from the results of several jobs: `python -m evaluator report --merge DIR... [--out OUT]`.

Each job's pytest run leaves results.json (one row per case it collected) in its report directory. The rows of all
jobs become one set, one row per case, and are written as report.md, report.html, accuracy.png, results.json and
junit.xml, with one history.csv row per case, however many jobs there were. A case that ran in two
jobs is refused (one line naming both files): the jobs were not split, and one of the two verdicts would be hidden.
A case skipped in one job and measured in another keeps the measured row.
"""

from __future__ import annotations

from pathlib import Path

from .errors import EvaluatorError
from .fileio import atomic_write_text
from .report import CaseResult, junit_summary, read_results, write_results
from .report_files import REPORT_DIR, RESULTS_JSON, write_report


def find_results(roots: list[Path]) -> list[Path]:
    """results.json files under each root: the root itself, root/results.json, root/report/results.json, or one
    level down (a directory of downloaded job artifacts). A root without any is an error naming it."""
    found = []
    for root in map(Path, roots):
        if root.is_file():
            found.append(root)
            continue
        patterns = (RESULTS_JSON, f"{REPORT_DIR}/{RESULTS_JSON}", f"*/{RESULTS_JSON}", f"*/{REPORT_DIR}/{RESULTS_JSON}")
        paths = next((sorted(root.glob(pattern)) for pattern in patterns if list(root.glob(pattern))), [])
        if not paths:
            raise EvaluatorError(f"{root}: no {RESULTS_JSON} (looked in {root}, {root}/{REPORT_DIR} and one level "
                                 "down); run the regression cases there first")
        found += paths
    return found


def combine(results_by_file: dict[Path, list[CaseResult]]) -> list[CaseResult]:
    """One row per case over all files, sorted by case id; a case measured in two files is an error."""
    chosen: dict[str, tuple[Path, CaseResult]] = {}
    for path, results in results_by_file.items():
        for result in results:
            earlier = chosen.get(result.case_id)
            if earlier is None or earlier[1].verdict == "skip":
                chosen[result.case_id] = (path, result)
            elif result.verdict != "skip":
                raise EvaluatorError(f"case {result.case_id} ran in two jobs ({earlier[0]} and {path}): split the "
                                     "cases so that each runs in exactly one, or merge the predictions instead")
    return [chosen[case_id][1] for case_id in sorted(chosen)]


def write_merged_report(roots: list[Path], out_dir: Path) -> tuple[list[CaseResult], dict[str, Path]]:
    """Combine the results under `roots` and write every report file into out_dir; returns the rows and paths.

    The history rows are stamped with the earliest session start among the jobs (the night's), so running the
    merge again replaces them instead of adding a second night.
    """
    files = find_results(roots)
    read = {path: read_results(path) for path in files}
    results = combine({path: rows for path, (rows, _) in read.items()})
    metas = [meta for _, meta in read.values()]
    starts = sorted(m["session_start"] for m in metas if m.get("session_start"))
    fingerprints = sorted({r.dataset_fingerprint for r in results if r.dataset_fingerprint})
    meta = {**(metas[0] if metas else {}), "jobs merged": len(files)}
    meta.setdefault("dataset", ", ".join(fingerprints) or "unknown")
    meta.pop("session_start", None)
    if starts:
        meta["session_start"] = starts[0]
    out_dir = Path(out_dir)
    paths = write_report(results, out_dir, meta)
    paths["results"] = out_dir / RESULTS_JSON
    write_results(paths["results"], results, meta)
    paths["junit"] = out_dir / "junit.xml"
    atomic_write_text(paths["junit"], junit_summary(results))
    return results, paths
