"""Property-based tests of the parsers and the command line (issue 13): whatever the input, a result or an error of
one line (exit code 2; 3 only for a runtime that cannot run here), never a traceback, and never a file written
outside the artifacts, models and dataset directories.

Profiles: the default `ci` runs a few dozen examples per property (seconds); HYPOTHESIS_PROFILE=nightly runs many
more (the nightly workflow sets it). Neither keeps an example database, which would be a write into the repository.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir
from imagenet_factory import IMAGE_SUBDIR, make_imagenet

from evaluator.cli import main
from evaluator.runtimes.fake import FakeModel

REPO = Path(__file__).resolve().parents[1]
# Hypothesis keeps caches in ./.hypothesis by default: a write into the repository, which these tests forbid
set_hypothesis_home_dir(tempfile.mkdtemp(prefix="evaluator-hypothesis-"))
# CI explores the same 20 examples every run (a red CI always means a regression, never an unlucky draw); the
# nightly profile draws 400 new ones.
settings.register_profile("ci", max_examples=20, deadline=None, database=None, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("nightly", max_examples=400, deadline=None, database=None,
                          suppress_health_check=[HealthCheck.too_slow])
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
# the catalogue of test_faults: one fake model, one documented number
CATALOGUE = (REPO / "tests" / "test_faults.py").read_text().split('CATALOGUE = """\\\n')[1].split('"""')[0] + \
    "documented:\n  - {model: tiny, precision: float, tta: 1-crop, top1: 0.5, top5: 0.9, source: card}\n"
ALLOWED = ("artifacts", "models", "imagenet")  # where a run may write


def file_tree(root: Path) -> dict[str, tuple[int, int]]:
    """Every file and directory under root (outside the allowed directories) with its size and mtime."""
    tree = {}
    for path in root.rglob("*"):
        relative = path.relative_to(root)
        if relative.parts[0] in ALLOWED:
            continue
        stat = path.lstat()
        tree[str(relative)] = (stat.st_size, stat.st_mtime_ns)
    return tree


def repo_tree() -> dict[str, int]:
    # artifacts/ is left out: the regression cases of another xdist worker write there at any moment.
    return {path.name: path.lstat().st_mtime_ns for path in REPO.iterdir() if path.name != "artifacts"}


def run_cli(sandbox: Path, args: list[str]) -> tuple[int, str]:
    """`python -m evaluator ARGS` in this process from inside the sandbox: (exit code, stderr). Fails the test when
    the command wrote anywhere in the sandbox but its artifacts, models and dataset directories, or in the repo."""
    before, repo_before = file_tree(sandbox), repo_tree()
    err, out = io.StringIO(), io.StringIO()
    cwd = Path.cwd()
    os.chdir(sandbox)  # so that a default location would land in the sandbox and be seen
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            try:
                code = main(args)
            except SystemExit as stop:  # argparse usage errors
                code = stop.code
    finally:
        os.chdir(cwd)
    assert file_tree(sandbox) == before, "a file was written outside the artifacts, models and dataset directories"
    assert repo_tree() == repo_before, "a file was written in the repository"
    return code, err.getvalue()


def check_outcome(code: int, err: str, allow_listing: bool = False) -> None:
    assert "Traceback" not in err, err
    if code == 0:
        return
    assert code in (2, 3), (code, err)
    lines = err.splitlines()
    assert lines and ("error: " in lines[0]), err
    if allow_listing:  # a catalogue lists every problem at once: "error: <file>: N problem(s):" then one per line
        assert all(line.startswith("  ") for line in lines[1:]), err
    else:
        assert len(lines) == 1, err


@contextlib.contextmanager
def sandbox():
    """A directory holding imagenet/, models/, the catalogue baselines.yaml and (once written) artifacts/."""
    with tempfile.TemporaryDirectory(prefix="evaluator-property-") as work:
        root = Path(work)
        make_imagenet(root / "imagenet", n_images=6)
        (root / "models").mkdir()
        FakeModel(input_shape=(None, 8, 8, 3), mean_scale=400.0, mean_offset=500.0).save(
            root / "models" / "tiny.fake.json")
        (root / "baselines.yaml").write_text(CATALOGUE)
        yield root


def mutated(data: bytes, draw) -> bytes:
    """data with a few random edits: bytes inserted, deleted or overwritten, a line duplicated or dropped."""
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data)))
        kind = draw(st.sampled_from(["insert", "delete", "overwrite", "duplicate line", "drop line"]))
        if kind == "insert":
            data = data[:at] + draw(st.binary(max_size=40) | st.text(max_size=40).map(str.encode)) + data[at:]
        elif kind == "delete":
            data = data[:at] + data[at + draw(st.integers(1, 200)):]
        elif kind == "overwrite":
            chunk = draw(st.binary(min_size=1, max_size=16))
            data = data[:at] + chunk + data[at + len(chunk):]
        else:
            lines = data.splitlines(keepends=True) or [b""]
            line = draw(st.integers(0, len(lines) - 1))
            lines[line:line + 1] = [lines[line]] * (2 if kind == "duplicate line" else 0)
            data = b"".join(lines)
    return data


def validate_args(root: Path) -> list[str]:
    return ["validate", "--imagenet-dir", str(root / "imagenet"), "--baselines", str(root / "baselines.yaml")]


@settings(settings.get_profile(PROFILE))
@given(st.data(), st.sampled_from(["LOC_val_solution.csv", "LOC_synset_mapping.txt"]))
def test_a_mutated_csv_or_synset_file_is_read_or_refused_in_one_line(data, name):
    with sandbox() as root:
        path = root / "imagenet" / name
        path.write_bytes(mutated(path.read_bytes(), data.draw))
        check_outcome(*run_cli(root, validate_args(root)))


YAML_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8) | st.integers(), children,
                                                                        max_size=3),
    max_leaves=8)


def _paths(node, prefix=()):
    """Every key path of a YAML document (mappings and lists)."""
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _paths(value, (*prefix, index))


@settings(settings.get_profile(PROFILE))
@given(st.data())
def test_a_mutated_catalogue_is_read_or_refused_with_its_problems(data):
    from evaluator.catalogue_yaml import round_trip_yaml

    with sandbox() as root:
        path = root / "baselines.yaml"
        if data.draw(st.booleans()):  # a value replaced somewhere in the structure
            yaml = round_trip_yaml()
            document = yaml.load(path.read_text())
            key_path = data.draw(st.sampled_from([p for p in _paths(document) if p]))
            parent = document
            for key in key_path[:-1]:
                parent = parent[key]
            parent[key_path[-1]] = data.draw(YAML_VALUES)
            with path.open("w") as file:
                yaml.dump(document, file)
        else:  # the text damaged
            path.write_bytes(mutated(path.read_bytes(), data.draw))
        check_outcome(*run_cli(root, validate_args(root)), allow_listing=True)


IMAGE_BYTES = (st.binary(max_size=300)
               | st.binary(max_size=300).map(lambda tail: b"\xff\xd8\xff\xe0" + tail)
               | st.binary(max_size=300).map(lambda tail: b"\x89PNG\r\n\x1a\n" + tail)
               | st.binary(max_size=300).map(lambda tail: b"BM" + tail))


@settings(settings.get_profile(PROFILE))
@given(st.lists(IMAGE_BYTES, min_size=1, max_size=3))
def test_random_bytes_named_jpeg_are_failed_images_not_crashes(contents):
    with sandbox() as root:
        images = sorted((root / "imagenet" / IMAGE_SUBDIR).iterdir())
        for path, content in zip(images, contents):
            path.write_bytes(content)
        code, err = run_cli(root, ["predict", "--model-path", str(root / "models" / "tiny.fake.json"), "--recipe",
                                   "mobilenet_keras", "--runtime", "fake", "--imagenet-dir", str(root / "imagenet"),
                                   "--artifacts-dir", str(root / "artifacts"), "--workers", "1"])
        check_outcome(code, err)
        assert code == 0  # damaged images are recorded per image; the run itself succeeds


OPTION_VALUES = st.one_of(st.integers(-3, 70).map(str), st.sampled_from(["0", "-0", "1e3", "nan", "inf", "", " ", "x",
                                                                         "--", "-1.5", "9" * 30]),
                          st.text(max_size=12))
OPTIONS = ["--limit", "--workers", "--batch-size", "--chunk-size", "--checkpoint-s", "--tta", "--runtime", "--recipe",
           "--precision", "-m"]


@settings(settings.get_profile(PROFILE))
@given(st.lists(st.tuples(st.sampled_from(OPTIONS), OPTION_VALUES), max_size=3),
       st.sampled_from(["predict", "accuracy"]))
def test_random_option_values_give_a_result_or_one_line(options, command):
    with sandbox() as root:
        args = [command, "--model-path", str(root / "models" / "tiny.fake.json"), "--recipe", "mobilenet_keras",
                "--runtime", "fake", "--imagenet-dir", str(root / "imagenet"), "--artifacts-dir",
                str(root / "artifacts"), "--models-dir", str(root / "models"), "--baselines",
                str(root / "baselines.yaml"), "--workers", "1"]
        for option, value in options:
            args += [f"{option}={value}"]
        check_outcome(*run_cli(root, args))


@settings(settings.get_profile(PROFILE))
@given(st.sampled_from(["--classes", "--imagenet-dir"]), OPTION_VALUES)
def test_diff_with_random_options_gives_a_result_or_one_line(option, value):
    with sandbox() as root:
        run_dir = root / "artifacts" / "run"
        code, err = run_cli(root, ["diff", str(run_dir), str(run_dir), f"{option}={value}"])
        check_outcome(code, err)


def test_the_property_tests_use_a_known_profile():
    assert PROFILE in ("ci", "nightly"), f"HYPOTHESIS_PROFILE={PROFILE!r}: use ci (default) or nightly"
    with pytest.raises(SystemExit):
        main(["diff"])  # the harness sees usage errors as exit codes


@pytest.mark.parametrize("command", ["predict", "accuracy"])
def test_an_option_given_the_value_double_dash_is_a_usage_error(command, capsys):
    # found by test_random_option_values_give_a_result_or_one_line: argparse gave `--chunk-size=--` as []
    with sandbox() as root, pytest.raises(SystemExit) as stop:
        main([command, "--model-path", str(root / "models" / "tiny.fake.json"), "--chunk-size=--"])
    assert stop.value.code == 2
    assert "argument --chunk-size: expected a value, got '--'" in capsys.readouterr().err
