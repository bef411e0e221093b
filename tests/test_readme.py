"""README's first two commands are what a new user runs; CI must run exactly the test command."""

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from evaluator.cli import EPILOG_ACCURACY, EPILOG_ADD_MODEL, EPILOG_MERGE, EPILOG_PREDICT, build_parser
from evaluator.locations import fixtures_dir

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
    for epilog in (EPILOG_PREDICT, EPILOG_ACCURACY, EPILOG_MERGE, EPILOG_ADD_MODEL):
        for example in epilog.replace("\\\n", " ").splitlines():
            if example.strip().startswith("python -m evaluator"):
                args = parser.parse_args(shlex.split(example)[3:])
                assert args.command in ("predict", "accuracy", "merge", "add-model")


def _walkthrough() -> list[list[str]]:
    section = (ROOT / "README.md").read_text().split("## Adding a model", 1)[1]
    return [shlex.split(line) for line in re.search(r"```\n(.+?)\n```", section, re.S).group(1).splitlines()]


def test_adding_a_model_walkthrough_runs_as_written(tmp_path):
    """The README's "Adding a model" commands, verbatim, on a copy of baselines.yaml and a temporary artifacts dir."""
    if not (fixtures_dir() / "models" / "mobilenet_v1_0.25_128_quant.tflite").is_file():
        pytest.skip(f"fixtures absent at {fixtures_dir()}: the walkthrough uses its model and images")
    catalogue = tmp_path / "baselines.yaml"
    catalogue.write_text((ROOT / "baselines.yaml").read_text())
    extra = {"predict": ["--artifacts-dir", str(tmp_path / "artifacts")],
             "add-model": ["--baselines", str(catalogue), "--models-dir", str(tmp_path / "models")],
             "list": ["--baselines", str(catalogue), "--models-dir", str(tmp_path / "models")],
             "pytest": [f"--baselines={catalogue}", f"--artifacts-dir={tmp_path / 'artifacts'}", "-p",
                        "no:cacheprovider", "tests/test_regression.py"]}
    outputs = []
    for command in _walkthrough():
        if command[0] == "pytest":
            argv, key = [sys.executable, "-m", *command], "pytest"
        else:
            assert command[:3] == ["python", "-m", "evaluator"], command
            argv, key = [sys.executable, *command[1:]], command[3]
        result = subprocess.run(argv + extra[key], cwd=ROOT, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, f"{shlex.join(command)}:\n{result.stdout}\n{result.stderr}"
        outputs.append(result.stdout)
    predicted, added, listed, judged = outputs
    predicted = json.loads(predicted)
    assert predicted["n"] == 700 and predicted["recipe"]["name"] == "tf_slim_mobilenet_quant"
    assert "  my_mobilenet-uint8-1-crop-litert" in added
    (file,) = json.loads(listed)["models"]["my_mobilenet"]["files"].values()
    assert file["present"] and file["sha256_verified"] is True
    assert "1 passed" in judged and "my_mobilenet" in catalogue.read_text()
    assert "my_mobilenet" not in (ROOT / "baselines.yaml").read_text()
