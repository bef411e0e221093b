"""baselines.yaml: schema validation of the whole catalogue, case listing, update (the rule: test_verdict.py)."""

import shutil
from pathlib import Path

import pytest

from evaluator.baselines import DEFAULT_BASELINES, list_cases, load_baselines
from evaluator.baselines_update import MeasuredRecord, update_measured
from evaluator.catalogue_yaml import round_trip_yaml
from evaluator.errors import BaselinesError

SEED_DOCUMENTED_ROWS = 6 + 12 + 3 + 3  # ONNX table, tflite table, hidden known-bad rows, TensorFlow 2.7 table


def test_repository_catalogue_is_valid_and_complete():
    baselines = load_baselines(DEFAULT_BASELINES)
    seed_rows = [e for e in baselines.documented if not e.model.startswith(("mobilenet_v", "onnxzoo"))]
    assert len(seed_rows) == SEED_DOCUMENTED_ROWS
    assert len(baselines.official) == 5
    assert {e.known_bad is not None for e in baselines.documented} == {True, False}
    assert sum(e.known_bad is not None for e in baselines.documented) == 3
    for entry in (*baselines.documented, *baselines.official):
        assert entry.n == 50000 and entry.reference and entry.runtime_version and entry.date


def test_every_documented_row_and_official_benchmark_has_a_case():
    baselines = load_baselines(DEFAULT_BASELINES)
    ids = {case.case_id for case in list_cases(baselines)}
    for entry in baselines.documented:
        runtime = entry.runtime
        assert f"{entry.model}-{entry.precision}-{entry.tta}-{runtime}" in ids
    for entry in baselines.official:
        assert any(i.startswith(f"{entry.model}-{entry.precision}-{entry.tta}-") and i.endswith("-official")
                   for i in ids)
    assert "resnet50_chainer-float-1-crop-ailia" in ids
    assert "resnet50_chainer-float-1-crop-onnxruntime" in ids
    assert len(ids) == len(list_cases(baselines))  # no duplicate ids


def _copy(tmp_path: Path) -> Path:
    path = tmp_path / "baselines.yaml"
    shutil.copy(DEFAULT_BASELINES, path)
    return path


@pytest.mark.parametrize("edit, expected", [
    (("top1: 0.6852", "top1: 6.852"), "documented[0].top1: 6.852 must be an accuracy fraction in [0, 1]"),
    (("top1: 0.6852", "top1: 0.6852, colour: red"), "documented[0].colour: unknown key"),
    (("{model: resnet50_pytorch, precision: float, tta: none, top1: 0.6852",
      "{model: resnet50_pytorch, precision: float, tta: none, top1: 0.6852, top5: 0.8869, source: ailia-sdk-onnx}\n"
      "  - {model: resnet50_pytorch, precision: float, tta: none, top1: 0.6852"), "duplicate of documented[0]"),
    (("{model: resnet50_pytorch, precision: float, tta: none, ", "{model: resnet50_pytorch, precision: float, "),
     "documented[0]: missing key 'tta'"),
    (("tta: keep-aspect, top1: 0.7444", "tta: keep_aspect, top1: 0.7444"), "did you mean keep-aspect?"),
    (("recipe: resnet50_chainer", "recipe: resnet50_chainr"), "did you mean resnet50_chainer?"),
    (("classes: 1001", "classes: 10"), "must be 1000 or 1001"),
    (("recipe: onnx_zoo_mobilenetv2\n    classes: 1000", "recipe: onnx_zoo_mobilenetv2\n    classes: 1001"),
     "recipe onnx_zoo_mobilenetv2 has class offset 0, which does not fit 1001 classes"),
    (("schema: 1", "schema: 1\nextra: true"), "extra: unknown top-level key"),
    (("classes: 1000\n    large: true", "classes: 1000\n    large: sometimes"),
     "models.resnet50_pytorch.large: 'sometimes' must be true or false"),
])
def test_malformed_file_names_the_key_path(tmp_path, edit, expected):
    path = _copy(tmp_path)
    text = path.read_text()
    assert edit[0] in text
    path.write_text(text.replace(edit[0], edit[1], 1))
    with pytest.raises(BaselinesError) as error:
        load_baselines(path)
    assert expected in str(error.value)
    assert str(path) in str(error.value)


def test_all_problems_are_listed_at_once(tmp_path):
    path = _copy(tmp_path)
    text = path.read_text().replace("top1: 0.6852", "top1: 1.5", 1).replace("top5: 0.9265", "top5: -1", 1)
    path.write_text(text)
    with pytest.raises(BaselinesError) as error:
        load_baselines(path)
    message = str(error.value)
    assert "3 problem(s)" in message
    assert "documented[0].top1: 1.5 must be" in message and "documented[0]: top5 0.8869 is below top1 1.5" in message
    assert "documented[4].top5: -1 must be" in message


def test_update_measured_keeps_comments_and_documented_numbers(tmp_path):
    path = _copy(tmp_path)
    before = path.read_text()
    record = MeasuredRecord("mobilenet_v1_025_128_quant", "uint8", "1-crop", "litert", "ai-edge-litert 2.3.0",
                            0.41, 0.66, 700, "f00d", "0.1.0")
    changes = update_measured(path, [record], today="2026-11-28").changes
    assert changes == ["mobilenet_v1_025_128_quant-uint8-1-crop-litert [f00d, n=700]: new top1 0.4100, top5 0.6600"]
    after = path.read_text()
    head = before.split("measured: []")[0]
    assert after.startswith(head)  # every comment and documented/official number is untouched
    changes = update_measured(path, [MeasuredRecord(**{**record.__dict__, "top1": 0.42})], today="2026-11-29").changes
    assert changes == ["mobilenet_v1_025_128_quant-uint8-1-crop-litert [f00d, n=700]: top1 0.4100 -> 0.4200"]
    measured = load_baselines(path).measured
    assert len(measured) == 1 and measured[0].top1 == 0.42 and measured[0].date == "2026-11-29"


def test_update_refuses_to_write_an_invalid_file(tmp_path):
    path = _copy(tmp_path)
    before = path.read_text()
    bad = MeasuredRecord("mobilenet_v1_025_128_quant", "uint8", "1-crop", "litert", "x", 1.5, 0.66, 700, "f", "0")
    with pytest.raises(BaselinesError, match="update refused"):
        update_measured(path, [bad])
    assert path.read_text() == before


# --- hostile and mistyped catalogues (issue 13): one line each, exit 2, never a traceback ----------------------------


def _first_with(entries, key):
    return next(entry for entry in entries if key in entry)


def _bomb_text(levels: int = 10, width: int = 10) -> str:
    lines = ["bomb:", "  a0: &a0 [" + ", ".join(["lol"] * width) + "]"]
    for level in range(1, levels):
        lines.append(f"  a{level}: &a{level} [" + ", ".join([f"*a{level - 1}"] * width) + "]")
    return "\n".join(lines) + "\n"


MISTYPED = {
    "top1 text": lambda d: d["documented"][0].__setitem__("top1", "abc"),
    "top1 null": lambda d: d["documented"][0].__setitem__("top1", None),
    "top1 list": lambda d: d["documented"][0].__setitem__("top1", [1, 2]),
    "tolerance text": lambda d: _first_with(d["documented"], "tolerance").__setitem__("tolerance", "lots"),
    "classes text": lambda d: d["models"]["resnet50_pytorch"].__setitem__("classes", "many"),
    "source n text": lambda d: d["sources"]["ailia-sdk-onnx"].__setitem__("n", "many"),
    "source without runtime": lambda d: d["sources"]["ailia-sdk-onnx"].pop("runtime"),
    "source without n": lambda d: d["sources"]["ailia-sdk-onnx"].pop("n"),
    "files list": lambda d: d["models"]["resnet50_pytorch"].__setitem__("files", ["resnet50_pytorch.onnx"]),
    "policy list": lambda d: d.__setitem__("policy", [1, 2]),
    "sources list": lambda d: d.__setitem__("sources", ["ailia-sdk-onnx"]),
    "documented number": lambda d: d.__setitem__("documented", 5),
    "model list": lambda d: d["documented"][0].__setitem__("model", ["a", "b"]),
    "precision list": lambda d: d["documented"][0].__setitem__("precision", ["float"]),
    "integer model key": lambda d: d["models"].__setitem__(5, dict(d["models"]["resnet50_pytorch"])),
    "prototxt number": lambda d: d["models"]["resnet50_pytorch"]["files"]["float"].__setitem__("prototxt", 5),
    "NUL in file": lambda d: d["models"]["resnet50_pytorch"]["files"]["float"].__setitem__("file", "a\0b.onnx"),
    # names that would become paths outside their directory (issue 13, item 11)
    "prototxt escapes": lambda d: d["models"]["resnet50_pytorch"]["files"]["float"].__setitem__(
        "prototxt", "../../conftest.py"),
    "file escapes": lambda d: d["models"]["resnet50_pytorch"]["files"]["float"].__setitem__(
        "file", "../elsewhere.onnx"),
    "model key escapes": lambda d: d["models"].__setitem__("../../outside", dict(d["models"]["resnet50_pytorch"])),
    "precision escapes": lambda d: d["models"]["resnet50_pytorch"]["files"].__setitem__(
        "../p", dict(d["models"]["resnet50_pytorch"]["files"]["float"])),
    "record escapes": lambda d: d.__setitem__("measured", [{
        "model": "resnet50_pytorch", "precision": "float", "tta": "none", "runtime": "onnxruntime",
        "runtime_version": "x", "top1": 0.5, "top5": 0.7, "n": 10, "fingerprint": "0123456789abcdef",
        "date": "2026-01-01", "predictions": "baselines/../../outside.csv.gz"}]),
}


def _validate(capsys, path: Path) -> tuple[int, str]:
    from evaluator.cli import main

    code = main(["validate", "--baselines", str(path), "--imagenet-dir", str(path.parent / "no-imagenet")])
    return code, capsys.readouterr().err


@pytest.mark.parametrize("case", sorted(MISTYPED))
def test_a_mistyped_catalogue_gives_one_line_and_exit_2(tmp_path, capsys, case):
    path = _copy(tmp_path)
    yaml = round_trip_yaml()
    data = yaml.load(path.read_text())
    MISTYPED[case](data)
    with path.open("w") as file:
        yaml.dump(data, file)

    code, err = _validate(capsys, path)

    assert code == 2 and err.startswith(f"error: {path}") and err.count("\n") == 1, err
    assert "Traceback" not in err and len(err) < 600


def test_an_alias_bomb_is_refused_quickly_in_one_line(tmp_path, capsys):
    path = _copy(tmp_path)
    path.write_text(path.read_text() + _bomb_text())
    assert path.stat().st_size - DEFAULT_BASELINES.stat().st_size < 2000  # a 1 KB bomb: 10**10 values expanded

    code, err = _validate(capsys, path)

    assert code == 2 and err.count("\n") == 1 and "aliases expand to more than 100,000 values" in err
    assert "lol" not in err


def test_an_alias_cycle_is_refused_in_one_line(tmp_path, capsys):
    path = _copy(tmp_path)
    lines = len(path.read_text().splitlines())
    path.write_text(path.read_text() + "loop: &loop [1, *loop]\n")

    code, err = _validate(capsys, path)

    assert code == 2 and err.count("\n") == 1, err
    assert f"line {lines + 1}: a YAML alias refers to a collection that contains it (a cycle); refused" in err


def test_a_long_value_is_shortened_in_messages(tmp_path, capsys):
    path = _copy(tmp_path)
    text = path.read_text().replace("top1: 0.6852", "top1: " + "x" * 100_000, 1)
    path.write_text(text)

    code, err = _validate(capsys, path)

    assert code == 2 and err.count("\n") == 1 and len(err) < 400 and "xxx..." in err


def test_an_update_locks_with_a_hidden_file_that_git_ignores(tmp_path):
    import subprocess

    path = _copy(tmp_path)
    record = MeasuredRecord("mobilenet_v1_025_128_quant", "uint8", "1-crop", "litert", "ai-edge-litert 2.3.0",
                            0.41, 0.66, 700, "f00d", "0.1.0")
    update_measured(path, [record], today="2026-11-28")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".baselines.yaml.lock", "baselines.yaml"]
    if shutil.which("git") is None or not (DEFAULT_BASELINES.parent / ".git").exists():
        pytest.skip("not a git checkout: cannot ask git whether the lock files are ignored")
    for name in (".baselines.yaml.lock", "baselines.yaml.lock"):  # the second: left by an older version
        ignored = subprocess.run(["git", "check-ignore", "-q", name], cwd=DEFAULT_BASELINES.parent)
        assert ignored.returncode == 0, f"{name} is not ignored by git"


def test_update_writes_only_changed_entries_and_keeps_dates_of_unchanged_ones(tmp_path):
    path = _copy(tmp_path)
    first = MeasuredRecord("mobilenet_v1_025_128_quant", "uint8", "1-crop", "litert", "litert 2", 0.41, 0.66, 700,
                           "f00d", "0.1.0")
    second = MeasuredRecord("mobilenet_v1_05_160_quant", "uint8", "1-crop", "litert", "litert 2", 0.55, 0.8, 700,
                            "f00d", "0.1.0")
    update_measured(path, [first, second], today="2026-11-28")
    written = path.read_text()

    summary = update_measured(path, [first, second], today="2026-11-30")
    assert summary.changes == [] and summary.unchanged == 2
    assert path.read_text() == written  # not even rewritten: the dates stay 2026-11-28
    assert "2 measured entries unchanged" in summary.lines()[-1]

    summary = update_measured(path, [first, MeasuredRecord(**{**second.__dict__, "top5": 0.81})], today="2026-12-01")
    assert summary.unchanged == 1 and summary.changes == [
        "mobilenet_v1_05_160_quant-uint8-1-crop-litert [f00d, n=700]: top5 0.8000 -> 0.8100"]
    dates = {e.model: e.date for e in load_baselines(path).measured}
    assert dates == {"mobilenet_v1_025_128_quant": "2026-11-28", "mobilenet_v1_05_160_quant": "2026-12-01"}


def test_update_stores_the_accepted_gap_and_lists_then_prunes_what_no_case_uses(tmp_path):
    path = _copy(tmp_path)
    records = tmp_path / "baselines"
    records.mkdir()
    (records / "orphan.csv.gz").write_bytes(b"x")
    gap = MeasuredRecord("mobilenet_v1_025_128_quant", "uint8", "1-crop", "litert", "litert 2", 0.30, 0.6, 700,
                         "f00d", "0.1.0", accepted_gap="fixture slice differs from the full set")
    # A measured entry whose runtime has no case (the model is TFLite: litert and ailia only).
    stray = MeasuredRecord("mobilenet_v1_025_128_quant", "uint8", "1-crop", "onnxruntime", "ort", 0.4, 0.6, 700,
                           "f00d", "0.1.0")
    summary = update_measured(path, [gap, stray], today="2026-11-28")
    assert summary.changes[0].endswith("(documented gap accepted: fixture slice differs from the full set)")
    (entry,) = [e for e in load_baselines(path).measured if e.runtime == "litert"]
    assert entry.accepted_gap == "fixture slice differs from the full set"
    assert summary.unused == ["measured mobilenet_v1_025_128_quant-uint8-1-crop-onnxruntime [f00d]",
                              "per-image record baselines/orphan.csv.gz"]
    assert summary.pruned == [] and (records / "orphan.csv.gz").exists()

    summary = update_measured(path, [], prune=True)
    assert summary.pruned == summary.unused and len(summary.pruned) == 2
    assert [e.runtime for e in load_baselines(path).measured] == ["litert"]
    assert not (records / "orphan.csv.gz").exists()
