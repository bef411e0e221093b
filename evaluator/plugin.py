"""The accuracy regression suite's pytest plugin: options, the `regression_case` parameters, fixtures, hooks.

Installed under the `pytest11` entry point (pyproject.toml), so pytest knows its options before it chooses the
rootdir: `pytest -m regression --imagenet-dir /data/imagenet` works from any directory. The cases come from
baselines.yaml (`--baselines`, default: the nearest baselines.yaml); collection only reads that file, and no
model, runtime or image is opened before a case runs. The plugin stays inactive where no baselines file exists.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pytest

from .cli import image_shard, positive_int
from .errors import EvaluatorError, did_you_mean

CASE_FIXTURE = "regression_case"
SUITE_KEY = pytest.StashKey["Suite | None"]()
STATE_KEY = pytest.StashKey["SessionState"]()


@dataclass
class SessionState:
    """What the session collects for its end: items shared by (xdist) workers, summary lines, the exit code."""

    shared: dict[str, list[dict]] = field(default_factory=dict)
    summary: dict[str, list[str]] = field(default_factory=dict)  # terminal section title -> lines
    dataset_checked: bool = False
    started: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))


def pytest_addoption(parser):
    group = parser.getgroup("evaluator", "ImageNet accuracy regression suite (evaluator.plugin)")
    group.addoption("--imagenet-dir", type=Path, help="Kaggle ImageNet root. Default: $EVALUATOR_IMAGENET_DIR, "
                    "else data/imagenet if present, else the 700-image slice in ../shared/fixtures/imagenet")
    group.addoption("--models-dir", type=Path, help="model files (default: $EVALUATOR_MODELS_DIR or data/models)")
    group.addoption("--artifacts-dir", type=Path, help="predictions, caches and the report "
                    "(default: $EVALUATOR_ARTIFACTS_DIR or artifacts/)")
    group.addoption("--baselines", type=Path, help="baselines file (default: baselines.yaml in the current directory or "
                    "its parents, else this package's repository)")
    group.addoption("--runtime", action="append", default=[],
                    help="only cases on this runtime (repeatable), e.g. onnxruntime, litert, ailia")
    group.addoption("--model", action="append", default=[], help="only cases of this catalogue model (repeatable)")
    group.addoption("--tta", action="append", default=[], help="only cases with this TTA mode (repeatable): "
                    "none, keep-aspect, 1-crop")
    group.addoption("--limit", "--subset", dest="limit", type=positive_int,
                    help="evaluate a deterministic class-stratified subset of N images (N >= 1)")
    group.addoption("--recompute", action="store_true", help="ignore stored predictions and run inference again")
    group.addoption("--verify-data", action="store_true",
                    help="also check each image's content hash against the one recorded when it was decoded "
                         "(reads every image; catches a changed copy that kept size and mtime)")
    group.addoption("--strict-data", action="store_true",
                    help="nightly mode: a missing model file, runtime or dataset fails its case instead of "
                         "skipping, and a session in which no regression case ran exits non-zero")
    group.addoption("--update-baselines", action="store_true",
                    help="record the TOP1/TOP5 of every documented case that ran as a *measured* baseline for its "
                         "runtime and exact image set (dataset fingerprint) in baselines.yaml, with its per-image "
                         "record under baselines/. Writes only entries whose values changed and prints old -> new; "
                         "documented and official numbers are never changed and stay a check; a value that fails "
                         "its documented check is not recorded without --accept-documented-gap")
    group.addoption("--accept-documented-gap", metavar="REASON",
                    help="with --update-baselines: also record values that fail their documented check, storing "
                         "REASON in the measured entry (the report shows it); the case then passes its documented "
                         "check by this explicit acceptance")
    group.addoption("--prune-baselines", action="store_true",
                    help="with --update-baselines: remove measured entries and per-image records no case uses")
    group.addoption("--image-shard", metavar="K/N", type=image_shard,
                    help="predict only image shard K of N of each case (every N-th image in id order) and judge "
                         "nothing; `python -m evaluator merge` joins the shards for a run that judges them")
    group.addoption("--stored-only", action="store_true",
                    help="judge stored predictions only (e.g. a directory written by `python -m evaluator merge`): "
                         "a case without them is an error instead of predicting")

    from .cli import add_override_options

    add_override_options(parser.getgroup(
        "evaluator-recipe", "ImageNet accuracy regression suite: ad-hoc recipe overrides (applied to every selected "
        "case's recipe; not with --update-baselines)"))

# --- configuration ------------------------------------------------------------------------------------------------


def _baselines_path(config) -> Path | None:
    """--baselines, else the first baselines.yaml in the invocation directory or its parents, the rootdir, or
    this package's repository; None (plugin inactive) when there is none.

    The rootdir is not enough: pytest picks it before any plugin is loaded, so in `pytest --imagenet-dir /data/x`
    it takes /data/x for a test path and may choose a rootdir outside the repository.
    """
    from .baselines import DEFAULT_BASELINES

    option = config.getoption("baselines")
    if option is not None:
        return Path(option)
    invocation_dir = Path(config.invocation_params.dir)
    candidates = [d / "baselines.yaml" for d in (invocation_dir, *invocation_dir.parents)]
    candidates += [Path(config.rootpath) / "baselines.yaml", DEFAULT_BASELINES]
    return next((path for path in candidates if path.is_file()), None)


def pytest_configure(config):
    config.stash[STATE_KEY] = SessionState()
    config.stash[SUITE_KEY] = None
    config.addinivalue_line("markers", "regression: accuracy regression case from baselines.yaml")
    config.addinivalue_line("markers", "large: regression case of a model marked `large: true` in baselines.yaml "
                                       "(split by image in the nightly: -m \"regression and large\" --image-shard K/N)")
    for flag in ("accept_documented_gap", "prune_baselines"):
        if config.getoption(flag) and not config.getoption("update_baselines"):
            raise pytest.UsageError(f"--{flag.replace('_', '-')} only works with --update-baselines")
    if config.getoption("accept_documented_gap") is not None and not config.getoption("accept_documented_gap").strip():
        raise pytest.UsageError("--accept-documented-gap needs a reason, e.g. --accept-documented-gap "
                                "\"OpenCV 4.10 resize differs from the SDK's; see issue 123\"")
    path = _baselines_path(config)
    if path is None:
        return
    try:
        config.stash[SUITE_KEY] = Suite(config, path)
    except EvaluatorError as exc:  # a malformed baselines.yaml or a name that matches nothing stops the run
        raise pytest.UsageError(str(exc)) from None


def _overrides(config, baselines, cases) -> dict:
    """The recipe overrides given (--mean ...), checked against the recipe of every selected case."""
    from .cli import recipe_overrides
    from .recipes import apply_overrides

    overrides = recipe_overrides(config.getoption)
    if overrides and config.getoption("update_baselines"):
        raise EvaluatorError("--update-baselines with recipe overrides: a measured baseline belongs to the "
                             "catalogue's recipe; declare the changed recipe in baselines.yaml instead")
    for case in cases:
        apply_overrides(baselines.recipe(baselines.models[case.model].file_for(case.precision).recipe), overrides)
    return overrides


def _suite(config) -> Suite | None:
    return config.stash.get(SUITE_KEY, None)


def _state(config) -> SessionState:
    return config.stash[STATE_KEY]


def pytest_report_header(config):
    suite = _suite(config)
    if suite is None:
        return None
    header = (f"evaluator: ImageNet {suite.imagenet_dir}, models {suite.models_dir}, artifacts {suite.artifacts_dir}, "
              f"baselines {suite.baselines.path}")
    if suite.overrides:
        header += "\nevaluator: recipe overrides on every case: " + ", ".join(
            f"{k}={v}" for k, v in suite.overrides.items())
    return header


# --- collection: one case per model x precision x TTA x runtime -------------------------------------------------


def pytest_generate_tests(metafunc):
    if CASE_FIXTURE not in metafunc.fixturenames:
        return
    suite = _suite(metafunc.config)
    cases = suite.cases if suite is not None else []
    large = {name for name, entry in suite.baselines.models.items() if entry.large} if suite is not None else set()
    params = [pytest.param(c, marks=[pytest.mark.large] if c.model in large else []) for c in cases]
    metafunc.parametrize(CASE_FIXTURE, params, ids=[c.case_id for c in cases])


def _regression_ids(suite: Suite) -> set[str]:
    return {case.case_id for case in suite.cases}


@pytest.hookimpl(trylast=True)  # after -k and -m have deselected
def pytest_collection_modifyitems(session, config, items):
    suite = _suite(config)
    # xdist workers: the controller checks once; --collect-only reads baselines.yaml and nothing else
    if suite is None or hasattr(config, "workerinput") or config.option.collectonly:
        return
    if any(getattr(item, "callspec", None) and CASE_FIXTURE in item.callspec.params for item in items):
        message = suite.session_data_problem()
        if message:
            raise pytest.UsageError(message)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_node_collection_finished(node, ids):
    """xdist controller: one clear error for the session when the dataset is unusable (the workers would each fail)."""
    config = node.config
    suite, state = _suite(config), _state(config)
    if suite is None or state.dataset_checked:
        return
    state.dataset_checked = True
    case_ids = _regression_ids(suite)
    if any(node_id.endswith("]") and node_id.rsplit("[", 1)[-1][:-1] in case_ids for node_id in ids):
        message = suite.session_data_problem()
        if message:
            pytest.exit(f"ERROR: {message}", returncode=pytest.ExitCode.USAGE_ERROR)


# --- session state -------------------------------------------------------------------------------------------------


def _imagenet_dir(config) -> Path:
    """--imagenet-dir, else locations.default_imagenet_dir()."""
    from .locations import default_imagenet_dir

    option = config.getoption("imagenet_dir")
    return Path(option).expanduser() if option else default_imagenet_dir()


def _select(cases, attribute: str, wanted: list[str], kind: str):
    """Keep the cases whose attribute is one of `wanted`; a value that matches no case is a usage error."""
    if not wanted:
        return cases
    valid = sorted({getattr(c, attribute) for c in cases})
    for value in wanted:
        if value not in valid:
            raise EvaluatorError(f"--{attribute} {value}: " + did_you_mean(kind, value, valid))
    return [c for c in cases if getattr(c, attribute) in wanted]


class Suite:
    """What every regression case of a session shares: catalogue, cases, dataset, directories, options."""

    def __init__(self, config, baselines_path: Path):
        from .baselines import list_cases, load_baselines
        from .locations import default_artifacts_dir, default_models_dir
        from .model_runtime import RuntimePool

        self.config = config
        self.baselines = load_baselines(baselines_path)
        cases = list_cases(self.baselines)
        for attribute, kind in (("runtime", "runtime"), ("model", "model"), ("tta", "TTA mode")):
            cases = _select(cases, attribute, config.getoption(attribute), kind)
        self.cases = cases
        self.imagenet_dir = _imagenet_dir(config).absolute()
        self.models_dir = Path(config.getoption("models_dir") or default_models_dir()).absolute()
        self.artifacts_dir = Path(config.getoption("artifacts_dir") or default_artifacts_dir()).absolute()
        self.limit = config.getoption("limit")
        self.strict = config.getoption("strict_data")
        self.image_shard = config.getoption("image_shard")
        self.stored_only = config.getoption("stored_only")
        self.overrides = _overrides(config, self.baselines, cases)
        self._dataset = None
        self.runtimes = RuntimePool()  # the last model's runtimes, kept for its next case; closed at unconfigure

    def session_data_problem(self) -> str | None:
        """Why no case can use the dataset (malformed, empty, or an --imagenet-dir that does not exist), as one
        message; None when it is usable or the default location is simply absent (a skip per case)."""
        from .errors import DatasetError

        if not self.imagenet_dir.exists() and not self.strict and self.config.getoption("imagenet_dir") is None:
            return None
        try:
            self.dataset()
        except DatasetError as exc:
            return f"--imagenet-dir {self.imagenet_dir}: {exc}"
        return None

    def dataset(self):
        """The evaluated image set (loaded once per process); DatasetError when unusable."""
        from .dataset import load_dataset, subset

        if self._dataset is None:
            dataset = load_dataset(self.imagenet_dir)
            self._dataset = subset(dataset, self.limit) if self.limit else dataset
        return self._dataset

    def reproduce(self, case) -> str:
        """A command that runs this case again from the repository or its tests/ (absolute paths).

        Paths are given as --option=value: pytest chooses its rootdir (and so pytest.ini) before it knows the
        plugin's options, and would take the value of `--imagenet-dir /x` for a test path.
        """
        from .baselines import DEFAULT_BASELINES

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
        from .evaluate import unrun_result

        verdict = "fail" if self.strict else "skip"
        record_result(self.config, unrun_result(self.baselines, case, verdict, detail))
        if self.strict:
            pytest.fail(f"--strict-data: {detail}", pytrace=False)
        pytest.skip(group)

    def check(self, case, record_property) -> None:
        """Run one regression case and turn its verdict into the pytest outcome (fail, xfail, skip or pass)."""
        __tracebackhide__ = True
        from .errors import RuntimeUnavailable
        from .evaluate import ModelFileMissing, case_result, evaluate_case, failure_message, unrun_result
        from .pipeline import StoredPredictionsMissing

        if not self.imagenet_dir.exists():
            self._unavailable(case, f"ImageNet not found at {self.imagenet_dir}", f"ImageNet not found at "
                              f"{self.imagenet_dir}: put the Kaggle val images, LOC_val_solution.csv and "
                              f"LOC_synset_mapping.txt there (see data/README.md) or pass --imagenet-dir")
        if self.image_shard:
            return self._predict_shard(case, record_property)
        missing = None  # --stored-only found no predictions: failed below, outside the except (no chained traceback)
        try:
            workers = max(1, _cores() // int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))
            outcome = evaluate_case(self.baselines, case, self.dataset(), self.models_dir, self.artifacts_dir,
                                    recompute=self.config.getoption("recompute"), workers=workers,
                                    verify_data=self.config.getoption("verify_data"),
                                    progress=_TerminalStream(self.config), stored_only=self.stored_only,
                                    overrides=self.overrides, runtimes=self.runtimes)
        except StoredPredictionsMissing as exc:
            record_result(self.config, unrun_result(self.baselines, case, "error", str(exc)))
            missing = f"{case.case_id}: {exc}"
        except ModelFileMissing as exc:
            self._unavailable(case, str(exc), f"model file not in {self.models_dir} (nor the shared fixtures): "
                              f"`python -m evaluator fetch` downloads them; report.md names each file")
        except RuntimeUnavailable as exc:
            self._unavailable(case, str(exc), f"runtime {case.runtime} unavailable: {exc}")
        except Exception as exc:  # the case is reported as an error row, then pytest shows the exception
            record_result(self.config, unrun_result(self.baselines, case, "error", f"{type(exc).__name__}: {exc}"))
            raise
        if missing:
            pytest.fail(missing, pytrace=False)
        record_run(self.config, case, outcome.run)
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
            _share_measured(self.config, outcome)
        record_result(self.config, case_result(self.baselines, outcome))
        if verdict.outcome == "fail":
            names = self.dataset().class_names
            pytest.fail(failure_message(outcome, self.reproduce(case), names), pytrace=False)
        if verdict.outcome == "xfail":
            pytest.xfail(verdict.reason)


    def _predict_shard(self, case, record_property) -> None:
        """--image-shard: predict this case's shard of the images for `python -m evaluator merge`; no verdict."""
        from .errors import RuntimeUnavailable
        from .evaluate import ModelFileMissing, predict_case

        try:
            workers = max(1, _cores() // int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))
            run = predict_case(self.baselines, case, self.dataset(), self.models_dir, self.artifacts_dir,
                               recompute=self.config.getoption("recompute"), workers=workers,
                               progress=_TerminalStream(self.config), shard=self.image_shard,
                               stored_only=self.stored_only, overrides=self.overrides, runtimes=self.runtimes)
        except ModelFileMissing as exc:
            self._unavailable(case, str(exc), f"model file not in {self.models_dir} (nor the shared fixtures): "
                              f"`python -m evaluator fetch` downloads them")
        except RuntimeUnavailable as exc:
            self._unavailable(case, str(exc), f"runtime {case.runtime} unavailable: {exc}")
        record_property("image_shard", str(self.image_shard))
        record_property("images_predicted", run.computed)
        record_run(self.config, case, run)


def _cores() -> int:
    from .run_spec import available_cores

    return available_cores()


@pytest.fixture(scope="session")
def evaluator_suite(request) -> Suite:
    """Shared state of the regression cases (catalogue, dataset, directories); runs and judges one case.

    Example:
        @pytest.mark.regression
        def test_accuracy(regression_case, evaluator_suite, record_property):
            evaluator_suite.check(regression_case, record_property)
    """
    suite = _suite(request.config)
    if suite is None:
        pytest.skip(f"no baselines file: pass --baselines or put baselines.yaml in {request.config.rootpath}")
    return suite


# --- what cases report to the controller (xdist-safe): measured values and report rows -----------------------


def _share(config, key: str, item: dict) -> None:
    """Keep an item for the controller; an xdist worker sends its list along when it finishes."""
    shared = _state(config).shared
    shared.setdefault(key, []).append(item)
    if hasattr(config, "workeroutput"):
        config.workeroutput[key] = json.dumps(shared[key])


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    """xdist controller: collect what a worker measured and reported."""
    for key, payload in getattr(node, "workeroutput", {}).items():
        if key.startswith("evaluator_"):
            _state(node.config).shared.setdefault(key, []).extend(json.loads(payload))


def record_result(config, result) -> None:
    """Remember a case's report row (report.CaseResult) for the end-of-run summary and report."""
    _share(config, "evaluator_results", asdict(result))


def record_run(config, case, run) -> None:
    """Remember how many images a case predicted and reused, for the terminal summary."""
    _share(config, "evaluator_runs", {"case_id": case.case_id, "computed": run.computed, "reused": run.reused})


def _share_measured(config, outcome) -> None:
    """Remember what --update-baselines may record for this case; the controller writes at the end."""
    from . import __version__

    case, meta, verdict = outcome.case, outcome.run.meta, outcome.verdict
    gap = None if verdict.anchor.passed else "; ".join(m.describe() for m in verdict.anchor.metrics if not m.passed)
    _share(config, "evaluator_measured", dict(
        model=case.model, precision=case.precision, tta=case.tta, runtime=case.runtime,
        runtime_version=meta["runtime_version"], top1=outcome.scores.top1, top5=outcome.scores.top5,
        n=outcome.scores.n, fingerprint=meta["dataset_fingerprint"], evaluator_version=__version__,
        artifact_dir=str(outcome.run.artifact_dir), documented_gap=gap, case_id=case.case_id,
    ))


# --- end of session: baselines, report, strict-data --------------------------------------------------------------


def pytest_unconfigure(config):
    suite = config.stash.get(SUITE_KEY, None)
    if suite is not None:
        suite.runtimes.close()


def pytest_sessionfinish(session, exitstatus):
    config = session.config
    suite = _suite(config)
    if suite is None or hasattr(config, "workerinput"):
        return
    state = _state(config)
    results = state.shared.get("evaluator_results", [])
    runs = state.shared.get("evaluator_runs", [])
    if runs:
        state.summary["predictions"] = _predictions_summary(suite, runs)
    if config.getoption("update_baselines"):
        try:
            state.summary["--update-baselines"] = _update_baselines(config, suite, state)
        except (OSError, EvaluatorError) as exc:  # e.g. a full disk: one line, the old file stays as it was
            state.summary["--update-baselines"] = [f"error: baselines not updated: {exc}"]
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
    if results:
        try:
            state.summary["accuracy"] = _write_report(suite, results, state.started)
        except (OSError, EvaluatorError) as exc:
            state.summary["accuracy"] = [f"error: report not written: {exc}"]
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
    if suite.strict and not runs and not any(r["top1"] is not None for r in results):
        state.summary["--strict-data"] = [
            f"no regression case ran ({len(results)} case(s) skipped or failed before measuring): "
            f"--strict-data makes this session fail"]
        if session.exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
            session.exitstatus = pytest.ExitCode.TESTS_FAILED


def _predictions_summary(suite: Suite, runs: list[dict]) -> list[str]:
    computed, reused = sum(r["computed"] for r in runs), sum(r["reused"] for r in runs)
    lines = [f"{computed} images predicted, {reused} reused from stored predictions "
             f"({len(runs)} case{'' if len(runs) == 1 else 's'}, {suite.artifacts_dir})"]
    if suite.image_shard:
        lines.append(f"image shard {suite.image_shard}: no verdicts; join the shards with `python -m evaluator merge "
                     f"--artifacts-dir MERGED DIR...`, then run `pytest -m regression --stored-only "
                     f"--artifacts-dir=MERGED`")
    return lines


def _update_baselines(config, suite: Suite, state: SessionState) -> list[str]:
    """Write the changed per-image records and measured entries; lines for the terminal."""
    from .fileio import atomic_write_bytes
    from .prediction_store import PredictionStore
    from .predictions import predictions_record_bytes
    from .baselines import MeasuredRecord, record_relpath, update_measured

    accept = config.getoption("accept_documented_gap")
    lines, records = [], {}
    for item in state.shared.get("evaluator_measured", []):
        if item["documented_gap"] and not accept:
            lines.append(f"not recorded: {item['case_id']} fails its documented check ({item['documented_gap']}); "
                         f"record it only on purpose with --accept-documented-gap \"REASON\"")
            continue
        key = tuple(item[k] for k in ("model", "precision", "tta", "runtime", "fingerprint"))
        if key in records:
            continue
        relpath = record_relpath(*key)
        target = Path(suite.baselines.path).parent / relpath
        data = predictions_record_bytes(PredictionStore(Path(item["artifact_dir"])).load())
        changed = not target.is_file() or target.read_bytes() != data
        if changed:
            atomic_write_bytes(target, data)
        fields = {k: item[k] for k in ("model", "precision", "tta", "runtime", "runtime_version", "top1", "top5",
                                       "n", "fingerprint", "evaluator_version")}
        records[key] = MeasuredRecord(**fields, predictions=relpath,
                                      accepted_gap=accept if item["documented_gap"] else None,
                                      record_changed=changed)
    summary = update_measured(suite.baselines.path, list(records.values()), prune=config.getoption("prune_baselines"))
    if not records and not lines:
        lines.append("no documented regression case ran: nothing to record")
    return lines + summary.lines()


def _write_report(suite: Suite, rows: list[dict], session_start: str) -> list[str]:
    """Update the report with this session's cases (other cases keep their last result) and record the session's
    rows in the history; lines for the terminal."""
    from .baselines import list_cases
    from .report import CaseResult, merge_results, read_results, write_report, write_results

    out_dir = suite.artifacts_dir / "report"
    results_path = out_dir / "results.json"
    current = [CaseResult(**row) for row in rows]
    try:
        previous = read_results(results_path)[0] if results_path.is_file() else []
    except EvaluatorError:  # a damaged results.json is replaced by this session's cases
        previous = []
    results = merge_results(previous, current, [c.case_id for c in list_cases(suite.baselines)])
    meta = {"dataset": str(suite.imagenet_dir), "baselines": str(suite.baselines.path), "session_start": session_start}
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


def _two(top1: float | None, top5: float | None, sign: str = "") -> str:
    """'0.7444/0.9226': a TOP1/TOP5 pair, N/A for a missing number."""
    return "/".join("N/A" if x is None else f"{x:{sign}.4f}" for x in (top1, top5))


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if _suite(config) is None:
        return
    for title, lines in _state(config).summary.items():
        terminalreporter.section(title)
        for line in lines:
            terminalreporter.write_line(line)
