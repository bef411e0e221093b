"""pytest options and shared fixtures of the accuracy regression suite (the only pytest-facing module).

Collection reads baselines.yaml only; no model, runtime or image is opened before a case runs.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
from dataclasses import asdict, replace
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent


def pytest_addoption(parser):
    group = parser.getgroup("evaluator", "ImageNet accuracy regression suite")
    group.addoption("--imagenet-dir", type=Path, help="Kaggle ImageNet root. Default: $EVALUATOR_IMAGENET_DIR, "
                    "else data/imagenet if present, else the 700-image slice in ../shared/fixtures/imagenet")
    group.addoption("--models-dir", type=Path, help="model files (default: $EVALUATOR_MODELS_DIR or data/models)")
    group.addoption("--artifacts-dir", type=Path, help="predictions and caches (default: artifacts/)")
    group.addoption("--baselines", type=Path, default=REPO_ROOT / "baselines.yaml", help="baselines file")
    group.addoption("--runtime", action="append", default=[],
                    help="only cases on this runtime (repeatable): ailia, onnxruntime, litert")
    group.addoption("--limit", "--subset", dest="limit", type=int,
                    help="evaluate a deterministic class-stratified subset of N images")
    group.addoption("--recompute", action="store_true", help="ignore stored predictions and run inference again")
    group.addoption("--update-baselines", action="store_true",
                    help="record the TOP1/TOP5 of every regression case that ran as a *measured* baseline for its "
                         "runtime and exact image set (dataset fingerprint) in baselines.yaml, printing old -> new. "
                         "Documented and official numbers are never changed; other entries are kept.")
    group.addoption("--stored-only", action="store_true",
                    help="judge stored predictions only (e.g. a directory written by `python -m evaluator merge`): "
                         "a case without them fails instead of predicting")
    group.addoption("--image-shard", metavar="K/N", type=_image_shard,
                    help="predict only image shard K of N of each case (every N-th image in id order) and judge "
                         "nothing; `python -m evaluator merge` joins the shards for a pytest run that judges them")


def _image_shard(text: str):
    from evaluator.errors import EvaluatorError
    from evaluator.shard import parse_shard

    try:
        return parse_shard(text)
    except EvaluatorError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


# --- collection -----------------------------------------------------------------------------------------------


def _load_baselines(config):
    from evaluator.baselines import load_baselines

    if not hasattr(config, "_evaluator_baselines"):
        config._evaluator_baselines = load_baselines(config.getoption("baselines"))
    return config._evaluator_baselines


def pytest_generate_tests(metafunc):
    if "regression_case" not in metafunc.fixturenames:
        return
    from evaluator.baselines import list_cases

    runtimes = set(metafunc.config.getoption("runtime"))
    baselines = _load_baselines(metafunc.config)
    cases = [c for c in list_cases(baselines) if not runtimes or c.runtime in runtimes]
    # `large` cases are split by image in the nightly (-m "regression and large" --image-shard K/N)
    params = [pytest.param(c, marks=[pytest.mark.large] if baselines.models[c.model].large else []) for c in cases]
    metafunc.parametrize("regression_case", params, ids=[c.case_id for c in cases])


# --- session state --------------------------------------------------------------------------------------------


def _imagenet_dir(config) -> Path:
    """--imagenet-dir, $EVALUATOR_IMAGENET_DIR, data/imagenet if present, else the shared fixture slice."""
    from evaluator.locations import fixtures_dir

    option = config.getoption("imagenet_dir")
    if option:
        return option
    if os.environ.get("EVALUATOR_IMAGENET_DIR"):
        return Path(os.environ["EVALUATOR_IMAGENET_DIR"])
    local = Path.cwd() / "data" / "imagenet"
    fixture = fixtures_dir() / "imagenet"
    return fixture if not local.exists() and fixture.exists() else local


class Suite:
    """What every regression case shares: baselines, dataset, directories, and the measured values to record."""

    def __init__(self, config):
        from evaluator.locations import default_artifacts_dir, default_models_dir

        self.config = config
        self.baselines = _load_baselines(config)
        self.imagenet_dir = _imagenet_dir(config)
        self.models_dir = config.getoption("models_dir") or default_models_dir()
        self.artifacts_dir = config.getoption("artifacts_dir") or default_artifacts_dir()
        self.limit = config.getoption("limit")
        self.image_shard = config.getoption("image_shard")
        self._dataset = None

    def dataset(self):
        """The evaluated image set; a missing ImageNet directory is a skip that says where the files go."""
        from evaluator.dataset import load_dataset, subset

        if self._dataset is None:
            if not self.imagenet_dir.exists():
                pytest.skip(f"ImageNet not found at {self.imagenet_dir}: put the Kaggle val images, "
                            f"LOC_val_solution.csv and LOC_synset_mapping.txt there (see data/README.md) "
                            f"or pass --imagenet-dir")
            dataset = load_dataset(self.imagenet_dir)
            self._dataset = subset(dataset, self.limit) if self.limit else dataset
        return self._dataset

    def reproduce(self, case) -> str:
        args = ["pytest", "-k", case.case_id, "--imagenet-dir", str(self.imagenet_dir)]
        if self.limit:
            args += ["--limit", str(self.limit)]
        if Path(self.baselines.path).resolve() != (REPO_ROOT / "baselines.yaml").resolve():
            args += ["--baselines", str(self.baselines.path)]
        return shlex.join(args)

    def run(self, case):
        """Evaluate a case (with --image-shard: predict its shard, judge nothing), turning a missing model file or
        runtime into a skip with the remedy."""
        from evaluator.errors import RuntimeUnavailable
        from evaluator.evaluate import ModelFileMissing, evaluate_case, predict_case
        from evaluator.pipeline import StoredPredictionsMissing

        dataset = self.dataset()
        workers = max(1, _cores() // int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))
        options = dict(recompute=self.config.getoption("recompute"), workers=workers,
                       stored_only=self.config.getoption("stored_only"))
        try:
            if self.image_shard:
                outcome = predict_case(self.baselines, case, dataset, self.models_dir, self.artifacts_dir,
                                       shard=self.image_shard, **options)
            else:
                outcome = evaluate_case(self.baselines, case, dataset, self.models_dir, self.artifacts_dir, **options)
        except StoredPredictionsMissing as exc:
            missing = str(exc)
        except (ModelFileMissing, RuntimeUnavailable) as exc:
            from evaluator.evaluate import skipped_result

            record_result(self.config, skipped_result(self.baselines, case, str(exc)))
            pytest.skip(str(exc))
        else:
            return outcome
        from evaluator.evaluate import skipped_result

        # an error row in the report, not a case that quietly went missing
        record_result(self.config, replace(skipped_result(self.baselines, case, missing), verdict="error"))
        pytest.fail(f"{case.case_id}: {missing}", pytrace=False)


def _cores() -> int:
    from evaluator.pipeline import available_cores

    return available_cores()


@pytest.fixture(scope="session")
def evaluator_suite(request) -> Suite:
    """Shared state of the regression cases.

    Example:
        def test_x(evaluator_suite, regression_case):
            outcome = evaluator_suite.run(regression_case)
    """
    return request.config._evaluator_suite


def pytest_configure(config):
    config._evaluator_suite = None
    config._evaluator_shared = {}


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session):
    try:
        session.config._evaluator_suite = Suite(session.config)
    except Exception as exc:  # a malformed baselines.yaml stops the run before any work
        from evaluator.errors import EvaluatorError

        if isinstance(exc, EvaluatorError):
            raise pytest.UsageError(str(exc)) from None
        raise


def pytest_report_header(config):
    if config._evaluator_suite is None:
        return None
    suite = config._evaluator_suite
    return f"evaluator: ImageNet {suite.imagenet_dir}, models {suite.models_dir}, artifacts {suite.artifacts_dir}"


# --- what cases report to the controller (xdist-safe): measured values and report rows -----------------------


def _share(config, key: str, item: dict) -> None:
    """Keep an item for the controller; an xdist worker sends its list along when it finishes."""
    config._evaluator_shared.setdefault(key, []).append(item)
    if hasattr(config, "workeroutput"):
        config.workeroutput[key] = json.dumps(config._evaluator_shared[key])


def pytest_testnodedown(node, error):
    """xdist controller: collect what a worker measured and reported."""
    for key, payload in getattr(node, "workeroutput", {}).items():
        if key.startswith("evaluator_"):
            node.config._evaluator_shared.setdefault(key, []).extend(json.loads(payload))


def record_result(config, result) -> None:
    """Remember a case's report row (CaseResult) for the end-of-run summary and report."""
    _share(config, "evaluator_results", asdict(result))


def record_run(config, case, run) -> None:
    """Remember how many images a case predicted and reused, for the terminal summary."""
    _share(config, "evaluator_runs", {"case_id": case.case_id, "computed": run.computed, "reused": run.reused})


def record_measured(config, suite, outcome) -> None:
    """Write the case's per-image record beside baselines.yaml and remember its measured values;
    the controller rewrites baselines.yaml once at the end."""
    from evaluator import __version__
    from evaluator.artifacts import write_predictions_record
    from evaluator.baselines import MeasuredRecord, record_relpath

    case, meta = outcome.case, outcome.run.meta
    relpath = record_relpath(case.model, case.precision, case.tta, case.runtime, meta["dataset_fingerprint"])
    write_predictions_record(outcome.run.predictions, Path(suite.baselines.path).parent / relpath)
    record = MeasuredRecord(
        model=case.model, precision=case.precision, tta=case.tta, runtime=case.runtime,
        runtime_version=meta["runtime_version"], top1=outcome.scores.top1, top5=outcome.scores.top5,
        n=outcome.scores.n, fingerprint=meta["dataset_fingerprint"], evaluator_version=__version__,
        predictions=relpath,
    )
    _share(config, "evaluator_measured", asdict(record))


def pytest_sessionfinish(session, exitstatus):
    config = session.config
    if hasattr(config, "workerinput"):
        return
    shared = config._evaluator_shared
    if config.getoption("update_baselines"):
        from evaluator.baselines import MeasuredRecord, update_measured

        records = {(r["model"], r["precision"], r["tta"], r["runtime"], r["fingerprint"]): MeasuredRecord(**r)
                   for r in shared.get("evaluator_measured", [])}
        changes = update_measured(config.getoption("baselines"), list(records.values())) if records else []
        config._evaluator_update_lines = changes or ["no regression case ran: nothing recorded"]
    results = shared.get("evaluator_results", [])
    if any(r["verdict"] != "skip" for r in results):
        config._evaluator_report = _write_report(config, results)


def _write_report(config, rows: list[dict]) -> dict:
    from evaluator.artifacts import write_json_atomic
    from evaluator.report import CaseResult, write_report

    suite = config._evaluator_suite
    results = sorted((CaseResult(**row) for row in rows), key=lambda r: r.case_id)
    out_dir = suite.artifacts_dir / "report"
    write_json_atomic(out_dir / "results.json", [asdict(r) for r in results])
    meta = {"dataset": str(suite.imagenet_dir), "baselines": str(suite.baselines.path)}
    paths = write_report(results, out_dir, meta)
    return {"results": results, "paths": paths}


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    lines = getattr(config, "_evaluator_update_lines", None)
    if lines:
        terminalreporter.section("--update-baselines")
        for line in lines:
            terminalreporter.write_line(line)
    runs = config._evaluator_shared.get("evaluator_runs", [])
    if runs:
        terminalreporter.section("predictions")
        suite = config._evaluator_suite
        computed, reused = sum(r["computed"] for r in runs), sum(r["reused"] for r in runs)
        terminalreporter.write_line(f"{computed} images predicted, {reused} reused from stored predictions "
                                    f"({len(runs)} case{'' if len(runs) == 1 else 's'}, {suite.artifacts_dir})")
        if suite.image_shard:
            terminalreporter.write_line(f"image shard {suite.image_shard}: no verdicts; join the shards with "
                                        f"`python -m evaluator merge --artifacts-dir MERGED DIR...`, then run "
                                        f"`pytest -m regression --artifacts-dir MERGED`")
    report = getattr(config, "_evaluator_report", None)
    if report:
        terminalreporter.section("accuracy")
        terminalreporter.write_line(f"{'case':58s} {'TOP1':>7s} {'expected':>8s} {'delta':>8s} {'band':>7s} "
                                    f"{'n':>6s}  verdict")
        for r in report["results"]:
            if r.verdict == "skip":
                continue
            if r.top1 is None:  # an error before anything was measured
                terminalreporter.write_line(f"{r.case_id:58s} {'not measured':>45s}  {r.verdict}")
                continue
            terminalreporter.write_line(
                f"{r.case_id:58s} {r.top1:7.4f} {r.expected_top1:8.4f} {r.top1 - r.expected_top1:+8.4f} "
                f"{r.band_top1:7.4f} {r.n:6d}  {r.verdict}")
        terminalreporter.write_line(f"report: {report['paths']['report']}  plot: {report['paths']['plot']}")
