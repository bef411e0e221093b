"""Tests for evaluator/report.py: markdown layout, PNG plot, history CSV."""

import dataclasses
import json
import struct
import sys

import pytest

from evaluator.errors import ArtifactError
from evaluator.history import history_row, plot_history, read_history, record_session
from evaluator.report import (
    CaseResult,
    markdown_report,
    merge_results,
    plot_results,
    read_results,
    write_results,
)
from evaluator.report_files import write_report

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def case(case_id, group, verdict="pass", top1=0.7, top5=0.9, expected_top1=0.7052, expected_top5=0.8956, **fields):
    model, precision, tta, runtime = case_id.split("/")
    values = dict(
        case_id=case_id.replace("/", "-"), model=model, precision=precision, tta=tta, runtime=runtime, group=group,
        top1=top1, top5=top5, n=700, n_population=50_000, expected_top1=expected_top1, expected_top5=expected_top5,
        band_top1=0.0412, band_top5=0.0287, verdict=verdict, runtime_version=f"{runtime} 1.2.3",
        dataset_fingerprint="ab12cd34", date="2025-01-02T03:04:05+00:00",
    )
    values.update(fields)
    return CaseResult(**values)


@pytest.fixture
def results():
    return [
        case("mobilenetv1_keras/float/1-crop/litert", "tflite", top1=0.7, top5=0.9),
        case("mystery_net/float/1-crop/onnxruntime", "fixtures", top1=0.5, top5=0.75),
        case("resnet50_pytorch/float/1-crop/onnxruntime", "ONNX", verdict="fail", top1=0.65,
             note="top1 lost 37, gained 12, p=1.2e-04"),
        case("resnet50_keras/float/1-crop/litert", "official", expected_top5=None, band_top5=None),
        case("resnet50_keras/float/none/litert", "TensorFlow", top1=0.68, top5=0.88),
        case("resnet50_chainer/float/1-crop/ailia", "ONNX", verdict="skip", top1=None, top5=None, n=0,
             band_top1=None, band_top5=None, note="ailia licence not found: ~/.shalo/AILIA.lic"),
    ]


def test_case_result_refuses_unknown_verdict():
    with pytest.raises(ValueError, match="'passed' is not one of"):
        case("m/float/none/fake", "ONNX", verdict="passed")


def test_markdown_groups_in_readme_order_with_the_columns(results):
    text = markdown_report(results, meta={"date": "2025-01-02", "dataset": "700 of 50,000 images (ab12cd34)"})
    headings = [line for line in text.splitlines() if line.startswith("## ")]
    assert headings == ["## ONNX", "## tflite", "## TensorFlow", "## official", "## fixtures", "## Skipped"]
    assert ("| Model | Precision | TTA | TOP1 | TOP5 | Runtime | Expected TOP1 | Expected TOP5 | ΔTOP1 | Band "
            "| Baseline TOP1 (Δ, band) | n | Verdict |") in text
    assert "- date: 2025-01-02" in text and "- dataset: 700 of 50,000 images (ab12cd34)" in text
    assert "- evaluator version: " in text and "Band: a case passes" in text
    # 490/700: the roots of (0.7 - p)^2 = z^2 p (1 - p) / 700 are 0.66504 and 0.73278
    assert ("| mobilenetv1_keras | float | 1-crop | 0.7000 [0.6650, 0.7328] | 0.9000 | litert 1.2.3 | 0.7052 | 0.8956 "
            "| -0.0052 | ±0.0412 / ±0.0287 |  | 700 of 50,000 | pass |") in text
    assert "| 0.7052 | N/A | -0.0052 | ±0.0412 |  | 700 of 50,000 | pass |" in text  # official: no TOP5 number
    assert "| -0.0552 | ±0.0412 / ±0.0287 |  | 700 of 50,000 | **fail** |" in text
    assert "- `resnet50_pytorch-float-1-crop-onnxruntime` (fail): top1 lost 37, gained 12, p=1.2e-04" in text


def test_markdown_lists_skipped_cases_only_at_the_end(results):
    text = markdown_report(results)
    skipped_section = text.split("## Skipped")[1]
    assert "- 1 × ailia licence not found: … (resnet50_chainer-float-1-crop-ailia)" in skipped_section
    assert "  - `resnet50_chainer-float-1-crop-ailia`: ailia licence not found: ~/.shalo/AILIA.lic" in skipped_section
    assert "resnet50_chainer" not in text.split("## Skipped")[0].split("- verdicts")[1]
    assert "- verdicts: 4 pass, 1 fail, 1 skip" in text


def test_markdown_shows_the_measured_baseline_and_an_accepted_gap():
    row = case("resnet50_chainer/float/1-crop/onnxruntime", "ONNX", top1=0.7044, expected_top1=0.7444,
               baseline_top1=0.7040, baseline_band_top1=0.003, accepted_gap="SDK resize differs")
    text = markdown_report([row])
    assert "| -0.0400 | ±0.0412 / ±0.0287 | 0.7040 (+0.0004, ±0.0030) | 700 of 50,000 |" in text
    assert "**Documented gap accepted:** SDK resize differs" in text


def test_markdown_escapes_pipes_in_cells():
    text = markdown_report([case("odd|name/float/none/fake", "ONNX", note="a | b\nc")])
    assert "| odd\\|name | float |" in text
    assert "a \\| b c" in text


def test_wilson_interval_is_wilson_of_the_count():
    text = markdown_report([case("m/float/none/fake", "ONNX", top1=81 / 263, n=263, n_population=None)])
    assert "0.3080 [0.2553, 0.3662]" in text and "| 263 |" in text


def test_plot_writes_a_png_without_leaving_pyplot_figures(results, tmp_path):
    pyplot_was_loaded = "matplotlib.pyplot" in sys.modules
    figures_before = sys.modules["matplotlib.pyplot"].get_fignums() if pyplot_was_loaded else None
    path = plot_results(results, tmp_path / "plots" / "accuracy.png")
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE) and len(data) > 10_000
    assert ("matplotlib.pyplot" in sys.modules) == pyplot_was_loaded
    if pyplot_was_loaded:
        assert sys.modules["matplotlib.pyplot"].get_fignums() == figures_before
    assert [p.name for p in path.parent.iterdir()] == ["accuracy.png"]  # no temporary file left behind


def test_plot_height_grows_with_the_number_of_cases(tmp_path):
    def png_height(path):
        return struct.unpack(">I", path.read_bytes()[20:24])[0]

    few = plot_results([case("a/float/none/fake", "ONNX")], tmp_path / "few.png")
    many = plot_results([case(f"m{i}/float/none/fake", "ONNX") for i in range(30)], tmp_path / "many.png")
    empty = plot_results([], tmp_path / "empty.png")
    assert png_height(many) > 3 * png_height(few)
    assert empty.read_bytes().startswith(PNG_SIGNATURE)


def test_skips_are_one_line_per_reason_with_a_count(results):
    more = [case(f"m{i}/float/none/litert", "tflite", verdict="skip", top1=None, top5=None, n=0,
                 note=f"model file /data/models/m{i}.tflite not found; download it from https://x/m{i}.tflite")
            for i in range(3)]
    text = markdown_report(results + more)
    skipped = [line for line in text.split("## Skipped", 1)[1].strip().splitlines() if line.startswith("- ")]
    assert skipped == ["- 3 × model file … not found "
                       "(m0-float-none-litert, m1-float-none-litert, m2-float-none-litert)",
                       "- 1 × ailia licence not found: … (resnet50_chainer-float-1-crop-ailia)"]


def test_write_report_writes_every_file_and_one_history_row_per_case_per_session(results, tmp_path):
    out_dir = tmp_path / "report"
    meta = {"dataset": "fixtures", "evaluator_version": "9.9", "session_start": "2025-01-02T00:00:00+00:00"}
    paths = write_report(results, out_dir, meta)
    assert set(paths) == {"report", "plot", "history", "trend", "html"}
    assert "- evaluator version: 9.9" in paths["report"].read_text(encoding="utf-8")
    assert all(paths[k].read_bytes().startswith(PNG_SIGNATURE) for k in ("plot", "trend"))
    write_report(results, out_dir, meta)  # the same session reported again: rows replaced, not added
    rows = read_history(paths["history"])
    assert len(rows) == len(results)  # every case, the skipped one too, without numbers
    assert [(r["top1"], r["n"]) for r in rows if r["verdict"] == "skip"] == [("", "0")]
    write_report(results[:2], out_dir, {**meta, "session_start": "2025-01-03T00:00:00+00:00"})
    rows = read_history(paths["history"])
    assert len(rows) == len(results) + 2
    assert [r["session_start"][:10] for r in rows[-2:]] == ["2025-01-03"] * 2
    assert rows[0]["evaluator_version"] == "9.9" and rows[0]["expected_top1"] == "0.705200"
    assert rows[0]["band_top1"] == "0.041200" and rows[0]["session_start"] == "2025-01-02T00:00:00+00:00"


def test_history_of_the_first_format_is_carried_over(results, tmp_path):
    path = tmp_path / "history.csv"
    path.write_text("date,case_id,runtime,runtime_version,evaluator_version,dataset_fingerprint,n,top1,top5,verdict\n"
                    "2024-05-01T00:00:00+00:00,old-case,litert,2.0,0.1.0,ab,700,0.500000,0.700000,pass\n")
    record_session(results, path, "2025-01-02T00:00:00+00:00", "1.0")
    rows = read_history(path)
    assert rows[0]["session_start"] == "2024-05-01T00:00:00+00:00" and rows[0]["top1"] == "0.500000"
    assert len(rows) == 1 + len(results)


def test_history_refuses_a_file_with_other_columns(results, tmp_path):
    path = tmp_path / "history.csv"
    path.write_text("when,what\n2024,x\n", encoding="utf-8")
    with pytest.raises(ArtifactError, match="history.csv: line 1 has unknown columns"):
        record_session(results, path, "2025", "1.0")
    assert path.read_text(encoding="utf-8") == "when,what\n2024,x\n"


def test_html_report_is_self_contained_with_every_case_and_the_plots(results, tmp_path):
    paths = write_report(results, tmp_path, {"dataset": "fixtures <700>"})
    page = paths["html"].read_text(encoding="utf-8")
    assert page.count("data:image/png;base64,") == 2
    assert "http://" not in page and "https://" not in page and "src=\"/" not in page
    assert "fixtures &lt;700&gt;" in page  # escaped
    for result in results:
        if result.verdict != "skip":
            assert f"<td>{result.model}</td>" in page
    assert "1 × ailia licence not found" in page and "1 fail" in page and "4 pass" in page


def test_trend_plot_has_a_panel_per_measured_case(results, tmp_path):
    def png_height(path):
        return struct.unpack(">I", path.read_bytes()[20:24])[0]

    rows = [history_row(r, f"2025-01-0{day}T00:00:00+00:00", "1.0") for day in (1, 2, 3) for r in results]
    one = plot_history(rows[:1], tmp_path / "one.png")
    all_ = plot_history(rows, tmp_path / "all.png")
    empty = plot_history([], tmp_path / "empty.png")
    assert png_height(all_) > 2 * png_height(one)
    assert empty.read_bytes().startswith(PNG_SIGNATURE)


def test_a_subset_run_updates_its_cases_and_keeps_the_others(results):
    catalogue = [r.case_id for r in results]
    rerun = [dataclasses.replace(results[0], top1=0.71)]
    merged = merge_results(results, rerun, catalogue)
    assert [r.case_id for r in merged] == sorted(catalogue)
    assert next(r for r in merged if r.case_id == results[0].case_id).top1 == 0.71
    # a case the catalogue no longer has leaves the report
    assert len(merge_results(results, rerun, catalogue[:3])) == 3


def test_report_command_reproduces_what_pytest_wrote(results, tmp_path, capsys):
    from evaluator.cli import main

    meta = {"dataset": "/data/imagenet", "baselines": "baselines.yaml", "session_start": "2025-01-02T00:00:00+00:00"}
    write_results(tmp_path / "results.json", results, meta)
    written = write_report(results, tmp_path, dict(meta))
    before = {name: path.read_bytes() for name, path in written.items() if name in ("report", "history", "html")}
    for name in ("report", "html"):
        written[name].unlink()
    assert main(["report", "--results", str(tmp_path / "results.json")]) == 0
    assert {name: written[name].read_bytes() for name in before} == before
    assert "- dataset: /data/imagenet" in written["report"].read_text(encoding="utf-8")
    assert main(["report", "--history", "--results", str(tmp_path / "results.json")]) == 0
    assert f"trend: {tmp_path / 'trend.png'}" in capsys.readouterr().out


def test_results_file_of_the_first_format_still_reads(results, tmp_path):
    path = tmp_path / "results.json"
    path.write_text(json.dumps([dataclasses.asdict(r) for r in results]))
    assert read_results(path) == (results, {})
    path.write_text('{"results": [{"case_id": 1}]}')
    with pytest.raises(ArtifactError, match="results.json: not a results file"):
        read_results(path)
