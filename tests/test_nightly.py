"""The nightly's split: every regression case runs in exactly one job, as the workflow file configures it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from evaluator.baselines import list_cases, load_baselines

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / ".github" / "workflows" / "nightly.yml"


@pytest.fixture(scope="module")
def workflow() -> dict:
    return YAML(typ="safe").load(WORKFLOW.read_text())


def _steps_text(job: dict) -> str:
    return "\n".join(step.get("run", "") for step in job["steps"])


def test_matrices_list_every_group_and_shard_the_commands_use(workflow):
    groups, shards = int(workflow["env"]["CASE_GROUPS"]), int(workflow["env"]["IMAGE_SHARDS"])
    assert workflow["jobs"]["cases"]["strategy"]["matrix"]["group"] == list(range(1, groups + 1))
    assert workflow["jobs"]["images"]["strategy"]["matrix"]["shard"] == list(range(1, shards + 1))
    cases, images = _steps_text(workflow["jobs"]["cases"]), _steps_text(workflow["jobs"]["images"])
    assert '-m "regression and not large" --splits "$CASE_GROUPS" --group ${{ matrix.group }}' in cases
    assert '-m "regression and large" --image-shard=${{ matrix.shard }}/$IMAGE_SHARDS' in images
    assert cases.count("--strict-data") == images.count("--strict-data") == 1  # a missing model is never a skip
    report = _steps_text(workflow["jobs"]["report"])
    assert "python -m evaluator merge --artifacts-dir merged jobs" in report
    assert "pytest -m regression --stored-only --strict-data --artifacts-dir=merged" in report
    assert workflow["jobs"]["report"]["needs"] == ["cases", "images"] and workflow["jobs"]["report"]["if"] == "always()"


def _collect(*args: str) -> subprocess.Popen:
    # only the file that holds the cases: the selection is the same, and collecting the whole suite 5 times is slow
    return subprocess.Popen([sys.executable, "-m", "pytest", "tests/test_regression.py", "--collect-only", "-q", "-p",
                             "no:cacheprovider", *args],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _case_ids(process: subprocess.Popen) -> list[str]:
    out, _ = process.communicate(timeout=300)
    assert process.returncode == 0, out
    return re.findall(r"^tests/test_regression\.py::test_accuracy\[(.+)\]$", out, re.M)


def test_case_groups_and_image_shards_cover_every_regression_case_exactly_once(workflow):
    groups = int(workflow["env"]["CASE_GROUPS"])
    # the same selections as the workflow's jobs, collected in parallel; the durations file is the committed one
    every_case = _collect("-m", "regression")
    by_group = [_collect("-m", "regression and not large", "--splits", str(groups), "--group", str(k))
                for k in range(1, groups + 1)]
    all_ids, group_ids = _case_ids(every_case), [_case_ids(process) for process in by_group]
    baselines = load_baselines(ROOT / "baselines.yaml")
    large_ids = [case.case_id for case in list_cases(baselines) if baselines.models[case.model].large]

    assert len(all_ids) > 40 and large_ids and all(group_ids)  # every job has work
    assert all(re.match(r"resnet50_", case) for case in large_ids)
    ran = [case for ids in group_ids for case in ids] + large_ids
    assert sorted(ran) == sorted(all_ids)  # each case once: none twice, none left out
    sizes = [len(ids) for ids in group_ids]
    assert max(sizes) <= 3 * min(sizes)  # balanced by the recorded durations (or by count where none are recorded)


def test_recorded_durations_name_existing_cases():
    import json

    durations = json.loads((ROOT / ".test_durations").read_text())
    assert durations and all(seconds > 0 for seconds in durations.values())
    assert all(test_id.startswith("tests/test_regression.py::test_accuracy[") for test_id in durations)
