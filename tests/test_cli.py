"""evaluator/cli.py: the parser and main(): commands imported on use, logging levels, running under python -OO."""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from evaluator.cli import COMMANDS, build_parser, command

ROOT = Path(__file__).resolve().parents[1]

# main() with fetch_model replaced by one that logs as fetch.py does: no network, the real logging set-up.
FETCH_LOGGING_SCRIPT = textwrap.dedent("""
    import logging, sys
    from evaluator import cli_models
    from evaluator.cli import main

    def fake_fetch(url, dest, sha256, *, lock_file, progress=None, **kwargs):
        logging.getLogger("evaluator.fetch").info("resuming download of %s at byte 5", url)
        logging.getLogger("evaluator.fetch").debug("range request for %s", url)
        logging.getLogger("urllib3.connectionpool").info("another library's chatter")
        return dest

    cli_models.fetch_model = fake_fetch
    sys.exit(main(sys.argv[1:]))
""")


def _fetch_stderr(tmp_path, *flags) -> str:
    argv = [sys.executable, "-c", FETCH_LOGGING_SCRIPT, *flags, "fetch", "-m", "resnet50_chainer", "--models-dir",
            str(tmp_path / "models")]
    result = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    return result.stderr


def test_fetch_progress_messages_show_at_info_by_default(tmp_path):
    err = _fetch_stderr(tmp_path)
    assert "INFO evaluator.fetch: resuming download of https://" in err
    assert "range request" not in err
    assert "another library's chatter" not in err  # only the evaluator's own loggers are raised to INFO


def test_verbose_shows_debug_messages_and_quiet_hides_info(tmp_path):
    verbose = _fetch_stderr(tmp_path, "-v")
    assert "DEBUG evaluator.fetch: range request for https://" in verbose
    assert "resuming download" in verbose
    quiet = _fetch_stderr(tmp_path, "-q")
    assert "resuming download" not in quiet and "range request" not in quiet


def test_verbose_and_quiet_also_work_after_the_subcommand_but_not_together():
    parser = build_parser()
    assert parser.parse_args(["list", "-v"]).verbose is True
    assert parser.parse_args(["-q", "list"]).quiet is True
    with pytest.raises(SystemExit) as exit_info:
        parser.parse_args(["-v", "-q", "list"])
    assert exit_info.value.code == 2


def test_every_subcommand_has_a_command_function():
    parser = build_parser()
    (subparsers,) = [action for action in parser._actions if action.dest == "command"]
    assert set(subparsers.choices) == set(COMMANDS)
    for name in COMMANDS:
        assert callable(command(name)), name


def test_python_OO_imports_the_package_and_runs_the_cli():
    """No logic may read a docstring: under -OO every docstring is None."""
    code = ("import evaluator, evaluator.cli, evaluator.cli_run, evaluator.cli_catalogue, evaluator.cli_models, "
            "evaluator.cli_artifacts, evaluator.plugin, evaluator.suite")
    result = subprocess.run([sys.executable, "-OO", "-c", code], cwd=ROOT, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr
    result = subprocess.run([sys.executable, "-OO", "-m", "evaluator", "list"], cwd=ROOT, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "resnet50_chainer-float-1-crop-" in result.stdout
