"""The seed's formats and commands: prediction.py / accuracy.py flags, output places and scores, and the
per-image prediction text files (seed.py, seed_commands.py)."""

import re

import numpy as np
import pytest
from test_predictions import IDS, make_predictions

from evaluator.errors import ArtifactError
from evaluator.locations import fixtures_dir
from evaluator.seed import SeedRun, output_name, read_prediction_texts, translate, write_prediction_texts
from evaluator.seed_commands import accuracy_main, prediction_main


@pytest.mark.parametrize("model, tflite, params, expected", [
    ("resnet50", False, [], SeedRun("resnet50_chainer", "float", "none", "auto")),
    ("resnet50", False, ["a=resnet50_pytorch", "t=1_crop"], SeedRun("resnet50_pytorch", "float", "1-crop", "auto")),
    ("resnet50", False, ["a=resnet50.opt", "t=keep_aspect"],
     SeedRun("resnet50_chainer", "float", "keep-aspect", "auto")),
    ("resnet50", True, ["float", "t=1_crop"], SeedRun("resnet50_keras", "float", "1-crop", "auto")),
    ("resnet50", True, ["float", "tflite"], SeedRun("resnet50_keras", "float", "none", "litert")),
    ("resnet50", True, ["legacy", "t=1_crop"], SeedRun("resnet50_keras", "int8", "1-crop", "auto")),
    ("resnet50", True, ["t=1_crop"], SeedRun("resnet50_keras", "int8-recalib", "1-crop", "auto")),
    ("mobilenetv2", True, ["recalib", "t=1_crop"], SeedRun("mobilenetv2_keras", "int8-recalib", "1-crop", "auto")),
    ("efficientnet_lite", True, ["float", "t=1_crop", "torch"],
     SeedRun("efficientnetlite0_torch", "float", "1-crop", "auto")),
    ("efficientnet_lite", True, ["t=1_crop", "torch"], SeedRun("efficientnetlite0_torch", "int8", "1-crop", "auto")),
])
def test_seed_parameters_map_to_catalogue_cases(model, tflite, params, expected):
    assert translate(model, tflite, params) == expected


def test_output_directory_names_follow_the_measurement_scripts():
    assert output_name("imagenet", [], False) == "imagenet"
    assert output_name("imagenet", ["a=resnet50.opt", "t=1_crop"], False) == "imagenet__a_resnet50_opt_t_1_crop"
    assert output_name("imagenet", ["float", "t=1_crop", "torch"], True) == "imagenet__float_t_1_crop_torch_tflite"


def test_prediction_then_accuracy_on_the_fixture_slice(tmp_path, monkeypatch, capsys):
    imagenet = fixtures_dir() / "imagenet"
    if not imagenet.is_dir():
        pytest.skip(f"real fixtures absent at {fixtures_dir()}: put ../shared/fixtures there or set EVALUATOR_FIXTURES")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "imagenet").symlink_to(imagenet)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("EVALUATOR_ARTIFACTS_DIR", str(tmp_path / "artifacts"))

    assert prediction_main(["-m", "mobilenet_v1_05_160_quant", "-p", "t=1_crop"]) == 0
    predicted = capsys.readouterr().out
    run_dir = tmp_path / "evaluation" / "mobilenet_v1_05_160_quant" / "imagenet__t_1_crop" / "predictions"
    texts = sorted(run_dir.glob("*.txt"))
    assert len(texts) == 700
    first_line = texts[0].read_text().splitlines()[0]
    assert re.fullmatch(r"\S+ \d+ \d+\.\d{6}", first_line)

    assert accuracy_main(["-m", "mobilenet_v1_05_160_quant", "-d", "imagenet__t_1_crop"]) == 0
    scored = capsys.readouterr().out
    top1, top5 = (re.search(rf"^{k} (\S+)", predicted, re.M).group(1) for k in ("TOP1", "TOP5"))
    # byte for byte what measurement accuracy.py prints and writes (REFERENCE 1.3); the text files score exactly
    # like the artifact
    assert scored == (f"DATASETS: imagenet__t_1_crop\nMODEL: mobilenet_v1_05_160_quant\n\n"
                      f"DATA CNT : 700\nTOP1 : {top1}\nTOP5 : {top5}\n")
    results = tmp_path / "results" / "mobilenet_v1_05_160_quant" / "imagenet__t_1_crop" / "results.txt"
    assert results.read_bytes() == f"Accuracy\nDATA CNT : 700\n\\TOP1 : {top1}\n\\TOP5 : {top5}".encode()

    # -d DIRECTORY: an existing directory holding predictions/; results go to results/<m>/<its last component>
    assert accuracy_main(["-m", "other", "-d", "evaluation/mobilenet_v1_05_160_quant/imagenet__t_1_crop"]) == 0
    assert capsys.readouterr().out.startswith(
        "DATA DIRECTORY: evaluation/mobilenet_v1_05_160_quant/imagenet__t_1_crop\n\nDATA CNT : 700\n")
    assert (tmp_path / "results" / "other" / "imagenet__t_1_crop" / "results.txt").read_bytes() == results.read_bytes()


def _tiny_imagenet(tmp_path):
    from imagenet_factory import make_imagenet

    make_imagenet(tmp_path / "elsewhere", n_images=3)
    return tmp_path / "elsewhere"


def test_accuracy_counts_as_the_original_script(tmp_path, monkeypatch, capsys):
    from imagenet_factory import image_id

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("EVALUATOR_IMAGENET_DIR", str(_tiny_imagenet(tmp_path)))  # labels 0, 1, 2
    predictions = tmp_path / "evaluation" / "resnet50" / "mine" / "predictions"
    predictions.mkdir(parents=True)
    lines = {1: [0, 5], 2: [7, 1], 3: [9, 8]}  # image 1: TOP1 hit; image 2: TOP5 hit; image 3: miss
    for number, ids in lines.items():
        (predictions / f"{image_id(number)}.txt").write_text("".join(f"x {i} 0.100000\n" for i in ids))
    assert accuracy_main(["-m", "resnet50", "-d", "mine"]) == 0
    assert capsys.readouterr().out == ("DATASETS: mine\nMODEL: resnet50\n\nDATA CNT : 3\n"
                                       "TOP1 : 0.333333\nTOP5 : 0.666667\n")
    assert (tmp_path / "results" / "resnet50" / "mine" / "results.txt").read_text() == (
        "Accuracy\nDATA CNT : 3\n\\TOP1 : 0.333333\n\\TOP5 : 0.666667")


@pytest.mark.parametrize("data", ["../../escape", "a/../../../escape", ".."])
def test_a_dotted_or_nested_d_never_writes_outside(tmp_path, monkeypatch, data):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    with pytest.raises(SystemExit) as exit_info:
        prediction_main(["-m", "mobilenet_v1_05_160_quant", "-d", data])
    assert exit_info.value.code == 2
    with pytest.raises(SystemExit):  # '.' becomes '_' as in the original: no such run, nothing written
        accuracy_main(["-m", "resnet50", "-d", data])
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["work"]


def test_prediction_reads_evaluator_imagenet_dir(tmp_path, monkeypatch, capsys):
    fixture_model = fixtures_dir() / "models" / "mobilenet_v1_0.25_128_quant.tflite"
    if not fixture_model.is_file():
        pytest.skip(f"fixture model {fixture_model} absent: put ../shared/fixtures there or set EVALUATOR_FIXTURES")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("EVALUATOR_IMAGENET_DIR", str(_tiny_imagenet(tmp_path)))
    monkeypatch.setenv("EVALUATOR_ARTIFACTS_DIR", str(tmp_path / "artifacts"))
    assert prediction_main(["-m", "mobilenet_v1_025_128_quant"]) == 0
    run_dir = tmp_path / "evaluation" / "mobilenet_v1_025_128_quant" / "imagenet" / "predictions"
    assert len(list(run_dir.glob("*.txt"))) == 3
    assert accuracy_main(["-m", "mobilenet_v1_025_128_quant"]) == 0
    assert "DATA CNT : 3\n" in capsys.readouterr().out


@pytest.mark.parametrize("model, tflite, params, named", [
    ("resnet50", False, ["a=resnet50_pytorch", "x=1"], "a=ARCH, t=TTA"),
    ("resnet50", False, ["float"], "a=ARCH, t=TTA"),
    ("mobilenetv1", True, ["t=1_crop", "shape=160"], "t=TTA, float, legacy, recalib, tflite, torch"),
    ("mobilenet_v1_025_128_quant", False, ["tta=1_crop"], "t=TTA, precision=PRECISION"),
])
def test_unknown_parameters_are_an_error_naming_the_accepted_ones(model, tflite, params, named):
    from evaluator.errors import EvaluatorError

    with pytest.raises(EvaluatorError, match=f"unknown -p parameter '{params[-1]}'.*accepted: {re.escape(named)}$"):
        translate(model, tflite, params)


def test_accuracy_without_predictions_says_what_to_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        accuracy_main(["-m", "resnet50"])
    assert exit_info.value.code == 2


# --- per-image prediction text files --------------------------------------------------------------------------------


CLASS_NAMES = [f"class {k}" for k in range(1000)]
CLASS_NAMES[0] = "tench, Tinca tinca"


def test_prediction_texts_round_trip_in_seed_format(tmp_path):
    predictions = make_predictions(IDS[:4], failed={IDS[2]})
    predictions.top5_ids[0] = [0, 5, 6, 7, 8]
    predictions.top5_scores[0] = [0.5, 0.25, 0.125, 0.0625, 1e-7]
    write_prediction_texts(predictions, tmp_path / "pred", CLASS_NAMES)
    first = (tmp_path / "pred" / f"{IDS[0]}.txt").read_text()
    assert first.splitlines() == ["tench,_Tinca_tinca 0 0.500000", "class_5 5 0.250000", "class_6 6 0.125000",
                                  "class_7 7 0.062500", "class_8 8 0.000000"]
    assert (tmp_path / "pred" / f"{IDS[2]}.txt").read_text() == ""
    image_ids, top5_ids = read_prediction_texts(tmp_path / "pred")
    assert image_ids.tolist() == IDS[:4]
    np.testing.assert_array_equal(top5_ids, predictions.top5_ids)
    assert top5_ids.dtype == np.int32


def test_read_prediction_texts_handles_res_suffix_and_short_files(tmp_path):
    (tmp_path / "ILSVRC2012_val_00000002_res.txt").write_text("a 3 0.9\nb 4 0.1\n")
    (tmp_path / "ILSVRC2012_val_00000001.txt").write_text("a 7 1.000000")
    (tmp_path / "notes.md").write_text("not a prediction")
    image_ids, top5_ids = read_prediction_texts(tmp_path)
    assert image_ids.tolist() == ["ILSVRC2012_val_00000001", "ILSVRC2012_val_00000002"]
    np.testing.assert_array_equal(top5_ids, [[7, -1, -1, -1, -1], [3, 4, -1, -1, -1]])


@pytest.mark.parametrize("body, problem", [
    ("a 1 0.5\nb two 0.3\n", "line 2: class id or score is not a number"),
    ("a 1 0.5\n\nb 2 0.25 extra\n", "line 3: expected 'label class_id score'"),
    ("a -1 0.5\n", "line 1: class id -1 out of range"),
    ("".join(f"c {k} 0.1\n" for k in range(6)), "6 predictions, at most 5"),
])
def test_read_prediction_texts_malformed_names_file_and_line(tmp_path, body, problem):
    (tmp_path / "ILSVRC2012_val_00000005.txt").write_text(body)
    with pytest.raises(ArtifactError, match=f"ILSVRC2012_val_00000005.txt: {problem}"):
        read_prediction_texts(tmp_path)


def test_read_prediction_texts_refuses_two_files_for_one_image(tmp_path):
    (tmp_path / "X.txt").write_text("a 1 0.5\n")
    (tmp_path / "X_res.txt").write_text("a 2 0.5\n")
    with pytest.raises(ArtifactError, match="X_res.txt: image id X also predicted by X.txt"):
        read_prediction_texts(tmp_path)
    with pytest.raises(ArtifactError, match="prediction directory not found"):
        read_prediction_texts(tmp_path / "absent")
