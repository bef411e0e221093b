"""`python -m evaluator report --merge DIR...`: one report, one results.json, one junit and one history row per case,
whatever the number of jobs."""

from __future__ import annotations

import csv
import re
import xml.etree.ElementTree as ET

import pytest

from evaluator.cli import main
from evaluator.report import CaseResult, read_results, write_results


def result(case_id, verdict="pass", top1=0.7):
    measured = verdict != "skip"
    return CaseResult(case_id=case_id, model=case_id.split("-")[0], precision="float", tta="1-crop",
                      runtime="onnxruntime", group="ONNX", top1=top1 if measured else None,
                      top5=0.9 if measured else None, n=700 if measured else 0, n_population=50_000,
                      expected_top1=0.7, expected_top5=0.9, band_top1=0.04 if measured else None,
                      band_top5=0.03 if measured else None, verdict=verdict,
                      note="model file not found" if verdict == "skip" else "",
                      runtime_version="1.17", dataset_fingerprint="ab12cd34ab12cd34", date="2026-12-01T02:00:00+00:00")


def write_job(directory, rows, session_start="2026-12-01T02:00:00+00:00"):
    (directory / "report").mkdir(parents=True)
    write_results(directory / "report" / "results.json", rows, {"dataset": "/data/imagenet",
                                                                 "session_start": session_start})
    return directory


@pytest.fixture
def jobs(tmp_path):
    """Two case-group jobs: each measured its own cases; b-model is skipped in job 1 and measured in job 2."""
    one = write_job(tmp_path / "jobs" / "cases-1", [result("a_model-x"), result("b_model-x", "skip")])
    two = write_job(tmp_path / "jobs" / "cases-2", [result("b_model-x", "fail", top1=0.6), result("c_model-x", "xfail"),
                                                    result("d_model-x", "skip")], "2026-12-01T02:01:30+00:00")
    return one, two


def run_report(capsys, *args):
    code = main(["report", *map(str, args)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_two_jobs_become_one_report_with_one_row_per_case(jobs, tmp_path, capsys):
    out = tmp_path / "report"
    code, printed, _ = run_report(capsys, "--merge", *jobs, "--out", out)
    assert code == 0 and "4 cases: 1 pass, 1 fail, 1 xfail, 1 skip" in printed

    rows, meta = read_results(out / "results.json")
    assert meta["jobs merged"] == 2
    assert [(r.case_id, r.verdict) for r in rows] == [
        ("a_model-x", "pass"), ("b_model-x", "fail"), ("c_model-x", "xfail"), ("d_model-x", "skip")]
    suite = ET.parse(out / "junit.xml").getroot()
    assert suite.get("tests") == "4" and suite.get("failures") == "1" and suite.get("skipped") == "2"
    [failed] = [case for case in suite.iter("testcase") if case.find("failure") is not None]
    assert failed.get("name") == "b_model-x"
    assert {p.get("name"): p.get("value") for p in failed.iter("property")}["TOP1_measured"] == "0.6"
    html = (out / "report.html").read_text()
    assert re.search(r"<tr><td>b_model</td>.*?>fail</td></tr>", html) and html.count("<tr><td>") == 3  # measured
    assert "| b_model | float | 1-crop | 0.6000" in (out / "report.md").read_text()
    assert (out / "accuracy.png").read_bytes().startswith(b"\x89PNG")
    with open(out / "history.csv", newline="") as stream:
        history = list(csv.DictReader(stream))
    assert [row["case_id"] for row in history] == ["a_model-x", "b_model-x", "c_model-x", "d_model-x"]  # one a case


def test_merging_again_replaces_the_night_in_the_history(jobs, tmp_path, capsys):
    for _ in range(2):
        code, _, _ = run_report(capsys, "--merge", *jobs, "--out", tmp_path / "report")
        assert code == 0
    with open(tmp_path / "report" / "history.csv", newline="") as stream:
        history = list(csv.DictReader(stream))
    assert len(history) == 4 and {row["session_start"] for row in history} == {"2026-12-01T02:00:00+00:00"}


def test_the_directory_holding_all_jobs_gives_the_same_report(jobs, tmp_path, capsys):
    code, printed, _ = run_report(capsys, "--merge", tmp_path / "jobs", "--out", tmp_path / "report")
    assert code == 0 and "4 cases: 1 pass, 1 fail, 1 xfail, 1 skip" in printed


def test_a_case_measured_in_two_jobs_is_refused(jobs, tmp_path, capsys):
    three = write_job(tmp_path / "jobs" / "cases-3", [result("a_model-x", top1=0.71)])
    code, _, err = run_report(capsys, "--merge", *jobs, three, "--out", tmp_path / "report")
    assert code == 2 and len(err.splitlines()) == 1
    assert "case a_model-x ran in two jobs" in err and "cases-1" in err and "cases-3" in err
    assert not (tmp_path / "report").exists()


def test_a_directory_without_results_is_one_line(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    code, _, err = run_report(capsys, "--merge", tmp_path / "empty", "--out", tmp_path / "report")
    assert code == 2 and err.startswith(f"error: {tmp_path / 'empty'}: no results.json")
