"""The regression suite of one pytest session (plugin.py holds the hooks): runs and judges the cases, shares what
they measured between xdist workers, and at the end updates the baselines and writes the report."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import sys
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pytest

from . import __version__
from .baselines import DEFAULT_BASELINES, list_cases, load_baselines
from .baselines_update import MeasuredRecord, record_relpath, update_measured
from .dataset import load_dataset, subset
from .errors import DatasetError, EvaluatorError, RuntimeUnavailable, did_you_mean
from .evaluate import ModelFileMissing, case_result, evaluate_case, failure_message, predict_case, unrun_result
from .fileio import atomic_write_bytes
from .locations import default_artifacts_dir, default_imagenet_dir, default_models_dir
from .model_runtime import RuntimePool
from .options import recipe_overrides
from .pipeline import StoredPredictionsMissing
from .prediction_store import PredictionStore
from .predictions import predictions_record_bytes
from .recipes import apply_overrides
from .report import CaseResult, merge_results, read_results, write_results
from .report_files import REPORT_DIR, RESULTS_JSON, write_report
from .run_spec import available_cores


def baselines_path(config) -> Path | None:
    """--baselines, else the first baselines.yaml in the invocation directory or its parents, the rootdir, or
    this package's repository; None (plugin inactive) when there is none.

    The rootdir is not enough: pytest picks it before any plugin is loaded, so in `pytest --imagenet-dir /data/x`
    it takes /data/x for a test path and may choose a rootdir outside the repository.
    """
    option = config.getoption("baselines")
    if option is not None:
        return Path(option)
    invocation_dir = Path(config.invocation_params.dir)
    candidates = [d / DEFAULT_BASELINES.name for d in (invocation_dir, *invocation_dir.parents)]
    candidates += [Path(config.rootpath) / DEFAULT_BASELINES.name, DEFAULT_BASELINES]
    return next((path for path in candidates if path.is_file()), None)


@dataclass
class SessionState:
    """What the session collects for its end: items shared by (xdist) workers, summary lines, the exit code."""

    shared: dict[str, list[dict]] = field(default_factory=dict)
    summary: dict[str, list[str]] = field(default_factory=dict)  # terminal section title -> lines
    dataset_checked: bool = False
    started: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))


def _select(cases, attribute: str, wanted: list[str], kind: str):
    """Keep the cases whose attribute is one of `wanted`; a value that matches no case is a usage error."""
    if not wanted:
        return cases
    valid = sorted({getattr(c, attribute) for c in cases})
    for value in wanted:
        if value not in valid:
            raise EvaluatorError(f"--{attribute} {value}: " + did_you_mean(kind, value, valid))
    return [c for c in cases if getattr(c, attribute) in wanted]


def _overrides(config, baselines, cases) -> dict:
    """The recipe overrides given (--mean ...), checked against the recipe of every selected case."""
    overrides = recipe_overrides(config.getoption)
    if overrides and config.getoption("update_baselines"):
        raise EvaluatorError("--update-baselines with recipe overrides: a measured baseline belongs to the "
                             "catalogue's recipe; declare the changed recipe in baselines.yaml instead")
    for case in cases:
        apply_overrides(baselines.recipe(baselines.models[case.model].file_for(case.precision).recipe), overrides)
    return overrides


class Suite:
    """What every regression case of a session shares: catalogue, cases, dataset, directories, options."""

    def __init__(self, config, baselines_path: Path):
        self.config = config
        self.state = SessionState()
        self.baselines = load_baselines(baselines_path)
        cases = list_cases(self.baselines)
        for attribute, kind in (("runtime", "runtime"), ("model", "model"), ("tta", "TTA mode")):
            cases = _select(cases, attribute, config.getoption(attribute), kind)
        self.cases = cases
        option = config.getoption("imagenet_dir")
        self.imagenet_dir = (Path(option).expanduser() if option else default_imagenet_dir()).absolute()
        self.models_dir = Path(config.getoption("models_dir") or default_models_dir()).absolute()
        self.artifacts_dir = Path(config.getoption("artifacts_dir") or default_artifacts_dir()).absolute()
        self.limit = config.getoption("limit")
        self.strict = config.getoption("strict_data")
        self.image_shard = config.getoption("image_shard")
        self.stored_only = config.getoption("stored_only")
        self.overrides = _overrides(config, self.baselines, cases)
        self._dataset = None
        self.runtimes = RuntimePool()  # the last model's runtimes, kept for its next case; closed at unconfigure

    @property
    def large_models(self) -> set[str]:
        """Catalogue models marked `large: true` (their cases get the `large` marker)."""
        return {name for name, entry in self.baselines.models.items() if entry.large}

    def header(self) -> str:
        header = (f"evaluator: ImageNet {self.imagenet_dir}, models {self.models_dir}, artifacts {self.artifacts_dir}, "
                  f"baselines {self.baselines.path}")
        if self.overrides:
            header += "\nevaluator: recipe overrides on every case: " + ", ".join(
                f"{k}={v}" for k, v in self.overrides.items())
        return header

    def session_data_problem(self) -> str | None:
        """Why no case can use the dataset (malformed, empty, or an --imagenet-dir that does not exist), as one
        message; None when it is usable or the default location is simply absent (a skip per case)."""
        if not self.imagenet_dir.exists() and not self.strict and self.config.getoption("imagenet_dir") is None:
            return None
        try:
            self.dataset()
        except DatasetError as exc:
            return f"--imagenet-dir {self.imagenet_dir}: {exc}"
        return None

    def dataset(self):
        """The evaluated image set (loaded once per process); DatasetError when unusable."""
        if self._dataset is None:
            dataset = load_dataset(self.imagenet_dir)
            self._dataset = subset(dataset, self.limit) if self.limit else dataset
        return self._dataset

    def reproduce(self, case) -> str:
        """A command that runs this case again from the repository or its tests/ (absolute paths).

        Paths are given as --option=value: pytest chooses its rootdir (and so pytest.ini) before it knows the
        plugin's options, and would take the value of `--imagenet-dir /x` for a test path.
        """
        # -k matches substrings: without "not official" it would also run the official case of the same run.
        selection = case.case_id if case.kind == "official" else f"{case.case_id} and not official"
        args = ["pytest", "-k", selection, f"--imagenet-dir={self.imagenet_dir}"]
        if self.limit:
            args.append(f"--limit={self.limit}")
        if Path(self.baselines.path).resolve() != DEFAULT_BASELINES.resolve():
            args.append(f"--baselines={Path(self.baselines.path).absolute()}")
        for option in ("models_dir", "artifacts_dir"):
            if self.config.getoption(option):
                args.append(f"--{option.replace('_', '-')}={getattr(self, option)}")
        for option, value in self.overrides.items():
            args += [f"--{option.replace('_', '-')}", *map(str, value if isinstance(value, list) else [value])]
        return shlex.join(args)

    def _unavailable(self, case, detail: str, group: str):
        """A missing model file, runtime or dataset: a skip grouped by `group`, or a failure with --strict-data."""
        verdict = "fail" if self.strict else "skip"
        record_result(self, unrun_result(self.baselines, case, verdict, detail))
        if self.strict:
            pytest.fail(f"--strict-data: {detail}", pytrace=False)
        pytest.skip(group)

    @contextlib.contextmanager
    def _skipped_when_unavailable(self, case, model_hint: str = ""):
        """A missing model file or runtime inside the block becomes the case's skip (or --strict-data failure)."""
        try:
            yield
        except ModelFileMissing as exc:
            self._unavailable(case, str(exc), f"model file not in {self.models_dir} (nor the shared fixtures): "
                              f"`python -m evaluator fetch` downloads them{model_hint}")
        except RuntimeUnavailable as exc:
            self._unavailable(case, str(exc), f"runtime {case.runtime} unavailable: {exc}")

    def _run_options(self) -> dict:
        """Per-run options of every case: xdist workers share the cores; progress goes past pytest's capture."""
        workers = max(1, available_cores() // int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))
        return dict(recompute=self.config.getoption("recompute"), workers=workers,
                    progress=_TerminalStream(self.config), stored_only=self.stored_only, overrides=self.overrides,
                    runtimes=self.runtimes)

    def check(self, case, record_property) -> None:
        """Run one regression case and turn its verdict into the pytest outcome (fail, xfail, skip or pass)."""
        __tracebackhide__ = True
        if not self.imagenet_dir.exists():
            self._unavailable(case, f"ImageNet not found at {self.imagenet_dir}", f"ImageNet not found at "
                              f"{self.imagenet_dir}: put the Kaggle val images, LOC_val_solution.csv and "
                              f"LOC_synset_mapping.txt there (see data/README.md) or pass --imagenet-dir")
        if self.image_shard:
            return self._predict_shard(case, record_property)
        missing = None  # --stored-only found no predictions: failed below, outside the except (no chained traceback)
        try:
            with self._skipped_when_unavailable(case, "; report.md names each file"):
                outcome = evaluate_case(self.baselines, case, self.dataset(), self.models_dir, self.artifacts_dir,
                                        verify_data=self.config.getoption("verify_data"), **self._run_options())
        except StoredPredictionsMissing as exc:
            record_result(self, unrun_result(self.baselines, case, "error", str(exc)))
            missing = f"{case.case_id}: {exc}"
        except Exception as exc:  # the case is reported as an error row, then pytest shows the exception
            record_result(self, unrun_result(self.baselines, case, "error", f"{type(exc).__name__}: {exc}"))
            raise
        if missing:
            pytest.fail(missing, pytrace=False)
        record_run(self, case, outcome.run)
        verdict = outcome.verdict
        for check in filter(None, (verdict.anchor, verdict.measured)):
            for metric in check.metrics:
                prefix = metric.metric if check is verdict.anchor else f"{metric.metric}_baseline"
                record_property(f"{prefix}_measured", round(metric.measured, 6))
                record_property(f"{prefix}_expected", metric.expected)
                record_property(f"{prefix}_band", round(metric.band, 6))
        record_property("n_images", outcome.scores.n)
        record_property("images_predicted", outcome.run.computed)
        record_property("verdict_reason", verdict.reason)
        if self.config.getoption("update_baselines") and case.kind == "documented" and not outcome.failed_images:
            _share_measured(self, outcome)
        record_result(self, case_result(self.baselines, outcome))
        if verdict.outcome == "fail":
            names = self.dataset().class_names
            pytest.fail(failure_message(outcome, self.reproduce(case), names), pytrace=False)
        if verdict.outcome == "xfail":
            pytest.xfail(verdict.reason)

    def _predict_shard(self, case, record_property) -> None:
        """--image-shard: predict this case's shard of the images for `python -m evaluator merge`; no verdict."""
        with self._skipped_when_unavailable(case):
            run = predict_case(self.baselines, case, self.dataset(), self.models_dir, self.artifacts_dir,
                               shard=self.image_shard, **self._run_options())
        record_property("image_shard", str(self.image_shard))
        record_property("images_predicted", run.computed)
        record_run(self, case, run)

    def receive(self, workeroutput: dict) -> None:
        """xdist controller: add what a finished worker shared (see `share`)."""
        for key, payload in workeroutput.items():
            if key.startswith("evaluator_"):
                self.state.shared.setdefault(key, []).extend(json.loads(payload))

    def finish(self, session) -> None:
        """End of the session (controller): update the baselines, write the report, apply --strict-data."""
        state, config = self.state, self.config
        results = state.shared.get("evaluator_results", [])
        runs = state.shared.get("evaluator_runs", [])
        if runs:
            state.summary["predictions"] = _predictions_summary(self, runs)
        if config.getoption("update_baselines"):
            try:
                state.summary["--update-baselines"] = _update_baselines(self)
            except (OSError, EvaluatorError) as exc:  # e.g. a full disk: one line, the old file stays as it was
                state.summary["--update-baselines"] = [f"error: baselines not updated: {exc}"]
                session.exitstatus = pytest.ExitCode.TESTS_FAILED
        if results:
            try:
                state.summary["accuracy"] = _write_report(self, results)
            except (OSError, EvaluatorError) as exc:
                state.summary["accuracy"] = [f"error: report not written: {exc}"]
                session.exitstatus = pytest.ExitCode.TESTS_FAILED
        if self.strict and not runs and not any(r["top1"] is not None for r in results):
            state.summary["--strict-data"] = [
                f"no regression case ran ({len(results)} case(s) skipped or failed before measuring): "
                f"--strict-data makes this session fail"]
            if session.exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
                session.exitstatus = pytest.ExitCode.TESTS_FAILED


# --- what cases report to the controller (xdist-safe): measured values and report rows -----------------------


def share(suite: Suite, key: str, item: dict) -> None:
    """Keep an item for the controller; an xdist worker sends its list along when it finishes."""
    shared = suite.state.shared
    shared.setdefault(key, []).append(item)
    if hasattr(suite.config, "workeroutput"):
        suite.config.workeroutput[key] = json.dumps(shared[key])


def record_result(suite: Suite, result: CaseResult) -> None:
    """Remember a case's report row for the end-of-run summary and report."""
    share(suite, "evaluator_results", asdict(result))


def record_run(suite: Suite, case, run) -> None:
    """Remember how many images a case predicted and reused, for the terminal summary."""
    share(suite, "evaluator_runs", {"case_id": case.case_id, "computed": run.computed, "reused": run.reused})


def _share_measured(suite: Suite, outcome) -> None:
    """Remember what --update-baselines may record for this case; the controller writes at the end."""
    case, meta, verdict = outcome.case, outcome.run.meta, outcome.verdict
    gap = None if verdict.anchor.passed else "; ".join(m.describe() for m in verdict.anchor.metrics if not m.passed)
    share(suite, "evaluator_measured", dict(
        **asdict(case.identity), runtime_version=meta["runtime_version"], top1=outcome.scores.top1,
        top5=outcome.scores.top5, n=outcome.scores.n, fingerprint=meta["dataset_fingerprint"],
        evaluator_version=__version__, artifact_dir=str(outcome.run.artifact_dir), documented_gap=gap,
        case_id=case.case_id,
    ))


# --- end of session: baselines, report -----------------------------------------------------------------------------


def _predictions_summary(suite: Suite, runs: list[dict]) -> list[str]:
    computed, reused = sum(r["computed"] for r in runs), sum(r["reused"] for r in runs)
    lines = [f"{computed} images predicted, {reused} reused from stored predictions "
             f"({len(runs)} case{'' if len(runs) == 1 else 's'}, {suite.artifacts_dir})"]
    if suite.image_shard:
        lines.append(f"image shard {suite.image_shard}: no verdicts; join the shards with `python -m evaluator merge "
                     f"--artifacts-dir MERGED DIR...`, then run `pytest -m regression --stored-only "
                     f"--artifacts-dir=MERGED`")
    return lines


def _update_baselines(suite: Suite) -> list[str]:
    """Write the changed per-image records and measured entries; lines for the terminal."""
    accept = suite.config.getoption("accept_documented_gap")
    lines, records = [], {}
    for item in suite.state.shared.get("evaluator_measured", []):
        if item["documented_gap"] and not accept:
            lines.append(f"not recorded: {item['case_id']} fails its documented check ({item['documented_gap']}); "
                         f"record it only on purpose with --accept-documented-gap \"REASON\"")
            continue
        fields = {k: item[k] for k in ("model", "precision", "tta", "runtime", "runtime_version", "top1", "top5",
                                       "n", "fingerprint", "evaluator_version")}
        record = MeasuredRecord(**fields)
        if record.key in records:
            continue
        relpath = record_relpath(record.identity, record.fingerprint)
        target = Path(suite.baselines.path).parent / relpath
        data = predictions_record_bytes(PredictionStore(Path(item["artifact_dir"])).load())
        changed = not target.is_file() or target.read_bytes() != data
        if changed:
            atomic_write_bytes(target, data)
        records[record.key] = MeasuredRecord(**fields, predictions=relpath,
                                             accepted_gap=accept if item["documented_gap"] else None,
                                             record_changed=changed)
    summary = update_measured(suite.baselines.path, list(records.values()),
                              prune=suite.config.getoption("prune_baselines"))
    if not records and not lines:
        lines.append("no documented regression case ran: nothing to record")
    return lines + summary.lines()


def _write_report(suite: Suite, rows: list[dict]) -> list[str]:
    """Update the report with this session's cases (other cases keep their last result) and record the session's
    rows in the history; lines for the terminal."""
    out_dir = suite.artifacts_dir / REPORT_DIR
    results_path = out_dir / RESULTS_JSON
    current = [CaseResult(**row) for row in rows]
    try:
        previous = read_results(results_path)[0] if results_path.is_file() else []
    except EvaluatorError:  # a damaged results.json is replaced by this session's cases
        previous = []
    results = merge_results(previous, current, [c.case_id for c in list_cases(suite.baselines)])
    meta = {"dataset": str(suite.imagenet_dir), "baselines": str(suite.baselines.path),
            "session_start": suite.state.started}
    write_results(results_path, results, meta)
    paths = write_report(results, out_dir, meta, session_results=current)
    lines = [f"{'case':58s} {'TOP1/TOP5':>15s} {'expected':>15s} {'delta':>15s} {'band':>15s} {'n':>6s}  verdict"]
    for r in current:
        if r.top1 is not None:
            delta = _two(_minus(r.top1, r.expected_top1), _minus(r.top5, r.expected_top5), "+")
            lines.append(f"{r.case_id:58s} {_two(r.top1, r.top5):>15s} {_two(r.expected_top1, r.expected_top5):>15s} "
                         f"{delta:>15s} {_two(r.band_top1, r.band_top5):>15s} {r.n:6d}  {r.verdict}")
    counts = {}
    for r in current:
        counts[r.verdict] = counts.get(r.verdict, 0) + 1
    lines.append("cases: " + ", ".join(f"{n} {verdict}" for verdict, n in sorted(counts.items())))
    if len(results) > len(current):
        lines.append(f"the report also keeps the last result of {len(results) - len(current)} case(s) not run now")
    lines.append(f"report: {paths['html']}  ({paths['report'].name}, {paths['plot'].name}, {paths['trend'].name}, "
                 f"{results_path.name}, {paths['history'].name} beside it)")
    return lines


def _minus(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def _two(top1: float | None, top5: float | None, sign: str = "") -> str:
    """'0.7444/0.9226': a TOP1/TOP5 pair, N/A for a missing number."""
    return "/".join("N/A" if x is None else f"{x:{sign}.4f}" for x in (top1, top5))


class _TerminalStream:
    """Where a running case shows its progress: the terminal, past pytest's output capture. Under xdist each worker
    writes whole lines (every 30 s) to the stderr it shares with the controller; a bar is kept for plain runs."""

    def __init__(self, config):
        self.capture = config.pluginmanager.getplugin("capturemanager")
        self.worker = hasattr(config, "workerinput")

    def write(self, text: str) -> None:
        if not self.isatty() and text.endswith("\n"):
            text = "\n" + text.rstrip("\n")  # a line of its own beside pytest's progress dots
        with self.capture.global_and_fixture_disabled():
            sys.stderr.write(text)
            sys.stderr.flush()

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return not self.worker and sys.__stderr__ is not None and sys.__stderr__.isatty()
