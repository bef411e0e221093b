"""README's first two commands are what a new user runs; CI must run exactly the test command."""

import re
import shlex
from pathlib import Path

from evaluator.cli import EPILOG_ACCURACY, EPILOG_MERGE, EPILOG_PREDICT, build_parser

ROOT = Path(__file__).resolve().parents[1]


def _readme_commands() -> list[str]:
    return re.findall(r"```\n(.+?)\n```", (ROOT / "README.md").read_text())[:2]


def test_ci_runs_the_readme_test_command():
    install_and_run, test_command = _readme_commands()
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert test_command in ci_lines
    assert "pip install" in install_and_run and "pytest" in install_and_run


def test_cli_epilog_examples_parse():
    parser = build_parser()
    for epilog in (EPILOG_PREDICT, EPILOG_ACCURACY, EPILOG_MERGE):
        for example in epilog.replace("\\\n", " ").splitlines():
            if example.strip().startswith("python -m evaluator"):
                args = parser.parse_args(shlex.split(example)[3:])
                assert args.command in ("predict", "accuracy", "merge")
