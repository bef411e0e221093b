"""The accuracy regression suite's pytest plugin: options, the `regression_case` parameters, fixtures, hooks.

Installed under the `pytest11` entry point (pyproject.toml), so pytest knows its options before it chooses the
rootdir: `pytest -m regression --imagenet-dir /data/imagenet` works from any directory. The cases come from
baselines.yaml (`--baselines`, default: the nearest baselines.yaml); collection only reads that file, and no
model, runtime or image is opened before a case runs. The plugin stays inactive where no baselines file exists.
The session's work (running and judging cases, sharing results between xdist workers, updating the baselines,
writing the report) is done by suite.Suite.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from .errors import EvaluatorError
from .locations import imagenet_dir_help
from .options import add_override_options, image_shard, positive_int

if TYPE_CHECKING:
    from .suite import Suite

CASE_FIXTURE = "regression_case"
SUITE_KEY = pytest.StashKey["Suite | None"]()


def pytest_addoption(parser):
    group = parser.getgroup("evaluator", "ImageNet accuracy regression suite (evaluator.plugin)")
    group.addoption("--imagenet-dir", type=Path, help=imagenet_dir_help())
    group.addoption("--models-dir", type=Path, help="model files (default: $EVALUATOR_MODELS_DIR or data/models)")
    group.addoption("--artifacts-dir", type=Path, help="predictions, caches and the report "
                    "(default: $EVALUATOR_ARTIFACTS_DIR or artifacts/)")
    group.addoption("--baselines", type=Path, help="baselines file (default: baselines.yaml in the current directory "
                    "or its parents, else this package's repository)")
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
    add_override_options(parser.getgroup(
        "evaluator-recipe", "ImageNet accuracy regression suite: ad-hoc recipe overrides (applied to every selected "
        "case's recipe; not with --update-baselines)"))


def pytest_configure(config):
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
    # suite.py brings numpy, OpenCV and ruamel: imported here, not at the top, so that `import evaluator.plugin`
    # (every pytest run where the package is installed, in any project) stays light.
    from .suite import Suite, baselines_path

    path = baselines_path(config)
    if path is None:
        return
    try:
        config.stash[SUITE_KEY] = Suite(config, path)
    except EvaluatorError as exc:  # a malformed baselines.yaml or a name that matches nothing stops the run
        raise pytest.UsageError(str(exc)) from None


def _suite(config) -> Suite | None:
    return config.stash.get(SUITE_KEY, None)


def pytest_report_header(config):
    suite = _suite(config)
    return None if suite is None else suite.header()


# --- collection: one case per model x precision x TTA x runtime -------------------------------------------------


def pytest_generate_tests(metafunc):
    if CASE_FIXTURE not in metafunc.fixturenames:
        return
    suite = _suite(metafunc.config)
    cases = suite.cases if suite is not None else []
    large = suite.large_models if suite is not None else set()
    params = [pytest.param(c, marks=[pytest.mark.large] if c.model in large else []) for c in cases]
    metafunc.parametrize(CASE_FIXTURE, params, ids=[c.case_id for c in cases])


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
    suite = _suite(node.config)
    if suite is None or suite.state.dataset_checked:
        return
    suite.state.dataset_checked = True
    case_ids = {case.case_id for case in suite.cases}
    if any(node_id.endswith("]") and node_id.rsplit("[", 1)[-1][:-1] in case_ids for node_id in ids):
        message = suite.session_data_problem()
        if message:
            pytest.exit(f"ERROR: {message}", returncode=pytest.ExitCode.USAGE_ERROR)


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


# --- xdist and the end of the session ----------------------------------------------------------------------------


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    """xdist controller: collect what a worker measured and reported."""
    suite = _suite(node.config)
    if suite is not None:
        suite.receive(getattr(node, "workeroutput", {}))


def pytest_unconfigure(config):
    suite = _suite(config)
    if suite is not None:
        suite.runtimes.close()


def pytest_sessionfinish(session, exitstatus):
    suite = _suite(session.config)
    if suite is not None and not hasattr(session.config, "workerinput"):
        suite.finish(session)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    suite = _suite(config)
    if suite is None:
        return
    for title, lines in suite.state.summary.items():
        terminalreporter.section(title)
        for line in lines:
            terminalreporter.write_line(line)
