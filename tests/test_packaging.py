"""Packaging facts stated once: the Python versions claimed are the versions tested, and one version number."""

from __future__ import annotations

import importlib.metadata
import re
from pathlib import Path

from packaging.specifiers import SpecifierSet
from ruamel.yaml import YAML

import evaluator

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: pytest's own TOML reader
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
WORKFLOW = YAML(typ="safe").load((ROOT / ".github" / "workflows" / "nightly.yml").read_text())


def _python_version(job: dict) -> str:
    (version,) = [step["with"]["python-version"] for step in job["steps"]
                  if step.get("uses", "").startswith("actions/setup-python@")]
    return version


def test_every_supported_python_version_is_tested_in_ci_or_the_nightly():
    project = PYPROJECT["project"]
    classified = {c.rsplit(" :: ", 1)[1] for c in project["classifiers"]
                  if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c)}
    allowed = {f"3.{minor}" for minor in range(6, 20)
               if f"3.{minor}.0" in SpecifierSet(project["requires-python"])}
    ci_version = _python_version(WORKFLOW["jobs"]["cases"])  # as .ci/run's python3
    matrix = {str(v) for v in WORKFLOW["jobs"]["python-versions"]["strategy"]["matrix"]["python"]}

    assert classified == allowed, "requires-python and the classifiers name different versions"
    assert classified == matrix | {ci_version} and ci_version not in matrix, (
        "each supported version runs once: CI's and the nightly `python-versions` matrix")
    assert {_python_version(WORKFLOW["jobs"][name]) for name in ("cases", "images", "report")} == {ci_version}


def test_one_version_number_read_from_the_package_into_the_metadata():
    assert "version" not in PYPROJECT["project"] and "version" in PYPROJECT["project"]["dynamic"]
    assert PYPROJECT["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "evaluator.__version__"}
    assert importlib.metadata.version("imagenet-evaluator") == evaluator.__version__, (
        "the installed metadata is stale: pip install -e . again")
    literals = [path.relative_to(ROOT) for path in (ROOT / "evaluator").rglob("*.py")
                if re.search(r"^__version__ = ", path.read_text(), re.M)]
    assert literals == [Path("evaluator", "__init__.py")]


def test_ci_lints_before_it_tests():
    lines = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if not line.startswith("#")]

    assert lines.index("ruff check .") < lines.index("python -m pytest -n 2")
    assert "ruff" in " ".join(PYPROJECT["project"]["optional-dependencies"]["test"])


def test_the_schema_ships_as_package_data_and_jsonschema_is_a_dependency():
    assert "baselines.schema.json" in PYPROJECT["tool"]["setuptools"]["package-data"]["evaluator"]
    assert any(dep.startswith("jsonschema") for dep in PYPROJECT["project"]["dependencies"])


def test_the_licence_is_declared_and_its_text_ships():
    assert PYPROJECT["project"]["license"] == "MIT" and PYPROJECT["project"]["license-files"] == ["LICENSE"]
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")
    assert importlib.metadata.metadata("imagenet-evaluator")["License-Expression"] == "MIT"
