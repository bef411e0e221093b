"""The seed README's commands: prediction.py / accuracy.py flags, output places and scores."""

import re

import pytest

from evaluator.locations import fixtures_dir
from evaluator.seed import SeedRun, accuracy_main, output_name, prediction_main, translate


@pytest.mark.parametrize("model, tflite, params, expected", [
    ("resnet50", False, [], SeedRun("resnet50_chainer", "float", "none", "auto")),
    ("resnet50", False, ["a=resnet50_pytorch", "t=1_crop"], SeedRun("resnet50_pytorch", "float", "1-crop", "auto")),
    ("resnet50", False, ["a=resnet50.opt", "t=keep_aspect"], SeedRun("resnet50_chainer", "float", "keep-aspect", "auto")),
    ("resnet50", True, ["float", "t=1_crop"], SeedRun("resnet50_keras", "float", "1-crop", "auto")),
    ("resnet50", True, ["float", "tflite"], SeedRun("resnet50_keras", "float", "none", "litert")),
    ("resnet50", True, ["legacy", "t=1_crop"], SeedRun("resnet50_keras", "int8", "1-crop", "auto")),
    ("resnet50", True, ["t=1_crop"], SeedRun("resnet50_keras", "int8-recalib", "1-crop", "auto")),
    ("mobilenetv2", True, ["recalib", "t=1_crop"], SeedRun("mobilenetv2_keras", "int8-recalib", "1-crop", "auto")),
    ("efficientnet_lite", True, ["float", "t=1_crop", "torch"], SeedRun("efficientnetlite0_torch", "float", "1-crop", "auto")),
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
    texts = sorted((tmp_path / "evaluation" / "mobilenet_v1_05_160_quant" / "imagenet__t_1_crop" / "predictions").glob("*.txt"))
    assert len(texts) == 700
    first_line = texts[0].read_text().splitlines()[0]
    assert re.fullmatch(r"\S+ \d+ \d+\.\d{6}", first_line)

    assert accuracy_main(["-m", "mobilenet_v1_05_160_quant", "-d", "imagenet__t_1_crop"]) == 0
    scored = capsys.readouterr().out
    top1 = re.search(r"^TOP1 (\S+)", predicted, re.M).group(1)
    assert re.search(rf"^TOP1 {top1}", scored, re.M)  # the text files score exactly like the artifact
    assert "DATA CNT 700 of 50,000" in scored
    assert (tmp_path / "results" / "mobilenet_v1_05_160_quant" / "imagenet__t_1_crop" / "results.txt").is_file()


def test_accuracy_without_predictions_says_what_to_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        accuracy_main(["-m", "resnet50"])
    assert exit_info.value.code == 2
