"""The commands on what runs left on disk: `report`, `diff`, `cache`, `merge` (cli.py builds the parser)."""

from __future__ import annotations

import time

from .cli_run import load_predictions
from .dataset import load_dataset
from .decode_cache import CACHE_DIR, geometry_caches, prune
from .errors import EvaluatorError
from .evaluate import class_change_lines, score
from .history import plot_history, read_history
from .locations import default_artifacts_dir
from .merge import merge_artifacts
from .metrics import paired_compare
from .report import read_results
from .report_files import HISTORY_CSV, REPORT_DIR, RESULTS_JSON, write_report
from .report_merge import write_merged_report


def cmd_report(args) -> int:
    report_dir = default_artifacts_dir() / REPORT_DIR
    if args.merge:
        if args.results or args.history:
            raise EvaluatorError("--merge takes the results files or directories itself: drop --results/--history")
        results, paths = write_merged_report(args.merge, args.out or report_dir)
        counts = {v: sum(r.verdict == v for r in results) for v in ("pass", "fail", "xfail", "error", "skip")}
        print(f"{len(results)} cases: " + ", ".join(f"{n} {v}" for v, n in counts.items() if n))
        print("\n".join(f"{name}: {path}" for name, path in paths.items()))
        return 0
    if args.history:
        history = (args.results.parent if args.results else report_dir) / HISTORY_CSV
        if not history.is_file():
            raise EvaluatorError(f"{history} not found: it is written by every pytest run with regression cases")
        trend = plot_history(read_history(history), (args.out or history.parent) / "trend.png")
        print(f"trend: {trend}")
        return 0
    results_path = args.results or report_dir / RESULTS_JSON
    if not results_path.is_file():
        raise EvaluatorError(f"{results_path} not found: run the regression cases first "
                             "(`python -m pytest -m regression`)")
    results, meta = read_results(results_path)
    paths = write_report(results, args.out or results_path.parent, meta)
    print("\n".join(f"{name}: {path}" for name, path in paths.items()))
    return 0


def cmd_diff(args) -> int:
    baseline, candidate = load_predictions(args.baseline), load_predictions(args.candidate)
    names = load_dataset(args.imagenet_dir).class_names if args.imagenet_dir else None
    for label, predictions in (("baseline", baseline), ("candidate", candidate)):
        scores = score(predictions)
        print(f"{label:9s} n={scores.n}  TOP1 {scores.top1:.4f} [{scores.top1_interval[0]:.4f}, "
              f"{scores.top1_interval[1]:.4f}]  TOP5 {scores.top5:.4f}")
    print(paired_compare(baseline, candidate).summary(worst=5, class_names=names))
    for line in class_change_lines(baseline, candidate, names, k=args.classes):
        print("  " + line)
    return 0


def cmd_cache(args) -> int:
    artifacts_dir = args.artifacts_dir or default_artifacts_dir()
    if args.max_gb is not None:
        for removed in prune(artifacts_dir, int(args.max_gb * 1e9)):
            print(f"deleted {removed.n_bytes / 1e9:.2f} GB: {removed.path.name} ({removed.description})")
    caches = geometry_caches(artifacts_dir)
    total = sum(cache.n_bytes for cache in caches)
    print(f"{artifacts_dir / CACHE_DIR}: {len(caches)} geometries, {total / 1e9:.2f} GB")
    for cache in reversed(caches):  # most recently used first
        used = time.strftime("%Y-%m-%d %H:%M", time.localtime(cache.last_used))
        print(f"  {cache.n_bytes / 1e9:7.2f} GB  {cache.n_entries:6,} chunks  used {used}  {cache.path.name}  "
              f"{cache.description}")
    return 0


def cmd_merge(args) -> int:
    for merged in merge_artifacts(args.inputs, args.artifacts_dir):
        how = f"{merged.shards} shards" if merged.shards else "complete artifact"
        print(f"{merged.action} ({how}, {merged.n_images:,} images): {merged.directory}")
    return 0
