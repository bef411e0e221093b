"""Tests for evaluator/report.py: markdown layout, PNG plot, history CSV."""

import csv
import sys

import pytest

from evaluator.errors import ArtifactError
from evaluator.report import HISTORY_COLUMNS, CaseResult, append_history, markdown_report, plot_results, write_report

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
    assert "- `resnet50_chainer-float-1-crop-ailia`: ailia licence not found: ~/.shalo/AILIA.lic" in skipped_section
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
    import struct

    def png_height(path):
        return struct.unpack(">I", path.read_bytes()[20:24])[0]

    few = plot_results([case("a/float/none/fake", "ONNX")], tmp_path / "few.png")
    many = plot_results([case(f"m{i}/float/none/fake", "ONNX") for i in range(30)], tmp_path / "many.png")
    empty = plot_results([], tmp_path / "empty.png")
    assert png_height(many) > 3 * png_height(few)
    assert empty.read_bytes().startswith(PNG_SIGNATURE)


def read_history(path):
    with open(path, newline="", encoding="utf-8") as stream:
        return list(csv.reader(stream))


def test_history_appends_a_row_per_case_with_one_header(results, tmp_path):
    path = tmp_path / "history.csv"
    assert append_history(results, path, "1.0") == 6  # the skipped case too, without numbers
    assert append_history(results[:2], path, "1.1") == 2
    rows = read_history(path)
    assert rows[0] == list(HISTORY_COLUMNS)
    assert len(rows) == 1 + 6 + 2
    skipped = [dict(zip(rows[0], row)) for row in rows[1:7] if row[-1] == "skip"]
    assert len(skipped) == 1 and skipped[0]["top1"] == "" and skipped[0]["n"] == "0"
    first = dict(zip(rows[0], rows[1]))
    assert first == {
        "date": "2025-01-02T03:04:05+00:00", "case_id": "mobilenetv1_keras-float-1-crop-litert", "runtime": "litert",
        "runtime_version": "litert 1.2.3", "evaluator_version": "1.0", "dataset_fingerprint": "ab12cd34",
        "n": "700", "top1": "0.700000", "top5": "0.900000", "verdict": "pass",
    }
    assert rows[-1][4] == "1.1"


def test_history_refuses_a_file_with_other_columns(results, tmp_path):
    path = tmp_path / "history.csv"
    path.write_text("when,what\n2024,x\n", encoding="utf-8")
    with pytest.raises(ArtifactError, match="history.csv: line 1 has columns"):
        append_history(results, path, "1.0")
    assert path.read_text(encoding="utf-8") == "when,what\n2024,x\n"


def test_write_report_writes_all_four_files(results, tmp_path):
    out_dir = tmp_path / "report"
    paths = write_report(results, out_dir, {"dataset": "fixtures", "evaluator_version": "9.9"})
    assert set(paths) == {"report", "html", "plot", "history"}
    assert "- evaluator version: 9.9" in paths["report"].read_text(encoding="utf-8")
    html = paths["html"].read_text(encoding="utf-8")
    assert "<li>evaluator version: 9.9</li>" in html and "<li>dataset: fixtures</li>" in html
    assert html.count("<tr>") == 5 + 5  # a header row per group, a row per measured case
    assert paths["plot"].read_bytes().startswith(PNG_SIGNATURE)
    write_report(results, out_dir, {"evaluator_version": "9.9"})
    history = read_history(paths["history"])
    assert len(history) == 1 + 2 * 6 and history[1][4] == "9.9"  # every case, the skipped one too
    assert sorted(p.name for p in out_dir.iterdir()) == ["accuracy.png", "history.csv", "history.csv.lock", "report.html",
                                                         "report.md"]
