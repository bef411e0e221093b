"""The evaluator reproduces the scripts image by image: its top-5 equals tests/oracle.py's on every image.

For every recipe x TTA, on the real fixture images (a deterministic subset by default, all 700 with
EVALUATOR_ORACLE_ALL=1, as the nightly workflow sets) and on generated edge images (EXIF orientation, grayscale,
CMYK, 1-pixel-wide, very elongated), through the real fixture models where the recipe fits and random-weight
generated models otherwise (TFLite from ../shared/fixtures/models/generated, ONNX built here): any difference in
decoding, geometry, values, quantization or ranking changes their top-5.
"""

from __future__ import annotations

import os
import zlib
from dataclasses import replace
from pathlib import Path

import numpy as np
import oracle
import pytest
from imagenet_factory import IMAGE_SUBDIR, image_id, synset_lines, wnid
from PIL import Image

from evaluator.dataset import load_dataset, subset
from evaluator.locations import fixtures_dir
from evaluator.pipeline import predict
from evaluator.recipes import RECIPES, TTA_MODES, get_recipe
from evaluator.run_spec import RunSpec

N_DEFAULT = 12  # fixture images per case in the default run; EVALUATOR_ORACLE_ALL=1 compares all 700
GENERATED = "generated/"
# recipe -> models it is checked through: real fixture models where the recipe fits, generated ones otherwise
# ("onnx:<kind>" is built by onnx_model(), "generated/<file>" is in ../shared/fixtures/models/generated).
RECIPE_MODELS = {
    "resnet50_pytorch": ["onnx:unit-float", "onnx:unit-int8"],
    "resnet50_chainer": ["onnx:sint8-float", "onnx:sint8-int8"],
    "resnet50_keras": [GENERATED + "gen_float32_caffe_1000.tflite", GENERATED + "gen_int8_caffe_1000.tflite"],
    "efficientnetlite0_keras_legacy": [GENERATED + "gen_int8_caffe_1000.tflite"],
    "mobilenet_keras": [GENERATED + "gen_float32_1000.tflite", GENERATED + "gen_int8_unit_1000.tflite",
                        GENERATED + "gen_uint8_unit_1000.tflite"],
    "efficientnetlite0_keras": [GENERATED + "gen_float32_1000.tflite", GENERATED + "gen_int8_unit_1000.tflite"],
    "mobilenetv2_keras_legacy": [GENERATED + "gen_uint8_unit_1000.tflite", GENERATED + "gen_int8_unit_1000.tflite"],
    "efficientnetlite0_torch": [GENERATED + "gen_float32_1000.tflite", GENERATED + "gen_int8_torch_1000.tflite"],
    "tf_slim_mobilenet_quant": ["mobilenet_v1_0.25_128_quant.tflite", "mobilenet_v1_0.5_160_quant.tflite",
                                "mobilenet_v1_0.75_192_quant.tflite", "mobilenet_v2_1.0_224_quant.tflite",
                                GENERATED + "gen_uint8_unit_1001.tflite", GENERATED + "gen_float32_1001.tflite"],
    "onnx_zoo_mobilenetv2": ["mobilenetv2-12-int8.onnx", "onnx:unit-float"],
}
CASES = [(recipe, model, tta) for recipe, models in RECIPE_MODELS.items() for model in models for tta in TTA_MODES]


def case_id(recipe: str, model: str, tta: str) -> str:
    # "recipe-resnet50-chainer-...": recipe names double as catalogue model names, which `pytest -k` must select
    # only among the regression cases
    return f"recipe-{recipe.replace('_', '-')}-{Path(model).name}-{tta}"


def test_every_recipe_is_checked_by_the_oracle():
    assert set(RECIPE_MODELS) == set(RECIPES) == set(oracle.SCRIPTS)
    from ruamel.yaml import YAML

    catalogue = YAML(typ="safe").load((Path(__file__).parents[1] / "baselines.yaml").read_text())["models"]
    used = {spec.get("recipe", entry["recipe"]) for entry in catalogue.values() for spec in entry["files"].values()}
    assert used <= set(RECIPE_MODELS)


# --- data ------------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def fixture_images():
    root = fixtures_dir() / "imagenet"
    if not (root / "LOC_val_solution.csv").is_file():
        pytest.skip(f"real fixtures absent at {fixtures_dir()}: put ../shared/fixtures there or set EVALUATOR_FIXTURES")
    dataset = load_dataset(root)
    return dataset if os.environ.get("EVALUATOR_ORACLE_ALL") == "1" else subset(dataset, N_DEFAULT)


def _edge_images(root: Path) -> None:
    """A Kaggle-layout set of unusual JPEGs the evaluator has never seen."""
    image_dir = root / IMAGE_SUBDIR
    image_dir.mkdir(parents=True)
    rng = np.random.default_rng(12)

    def pixels(height, width):  # smooth structure plus noise, so that geometry changes show in the outputs
        ys, xs = np.mgrid[0:height, 0:width]
        base = np.stack([(xs * 7 + ys * 3) % 256, (ys * 5) % 256, (xs * ys) % 256], axis=2)
        return np.clip(base + rng.integers(-40, 40, (height, width, 3)), 0, 255).astype(np.uint8)

    images = []
    for orientation in (3, 6, 8):
        exif = Image.Exif()
        exif[0x0112] = orientation
        images.append((Image.fromarray(pixels(300, 420)), {"exif": exif.tobytes()}))
    images.append((Image.fromarray(pixels(333, 500)).convert("L"), {}))  # grayscale
    images.append((Image.fromarray(pixels(280, 360)).convert("CMYK"), {}))  # CMYK JPEG
    images.append((Image.fromarray(pixels(300, 1)), {}))  # 1 pixel wide
    images.append((Image.fromarray(pixels(1, 300)), {}))  # 1 pixel high
    images.append((Image.fromarray(pixels(40, 1200)), {}))  # very elongated
    images.append((Image.fromarray(pixels(900, 30)), {}))
    images.append((Image.fromarray(pixels(224, 224)), {}))
    rows = []
    for number, (image, options) in enumerate(images, start=1):
        image.save(image_dir / f"{image_id(number)}.JPEG", "JPEG", quality=92, **options)
        rows.append(f"{image_id(number)},{wnid(number)} 1 2 3 4")
    (root / "LOC_synset_mapping.txt").write_text("\n".join(synset_lines()) + "\n")
    (root / "LOC_val_solution.csv").write_text("ImageId,PredictionString\n" + "\n".join(rows) + "\n")


@pytest.fixture(scope="module")
def edge_images(tmp_path_factory):
    root = tmp_path_factory.mktemp("edge") / "imagenet"
    _edge_images(root)
    return load_dataset(root)


# --- models ----------------------------------------------------------------------------------------------------------

def onnx_model(path: Path, kind: str) -> Path:
    """A random-weight ONNX classifier (NCHW float input 224, 1000 softmax outputs) sampling every 16th pixel.

    kind: "<range>-<precision>": range unit (inputs of about -2..2) or sint8 (-128..127); precision float, or
    int8 (QuantizeLinear/DequantizeLinear on input and output, so outputs tie as real int8 models' do).
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    value_range, precision = kind.split("-")
    rng = np.random.default_rng(zlib.crc32(kind.encode()))
    input_scale = 1.0 if value_range == "unit" else 1 / 64
    weights = (rng.standard_normal((3 * 14 * 14, 1000)) * 2.5 / np.sqrt(588)).astype(np.float32)
    init = [numpy_helper.from_array(np.array(v, dtype=dtype), name) for name, v, dtype in (
        ("starts", [0, 0], np.int64), ("ends", [224, 224], np.int64), ("axes", [2, 3], np.int64),
        ("steps", [16, 16], np.int64), ("scale", input_scale, np.float32),
        ("in_s", 0.02 if value_range == "unit" else 1.0, np.float32), ("in_z", 0, np.int8),
        ("out_s", 1 / 256, np.float32), ("out_z", -128, np.int8))]
    bias = rng.standard_normal(1000).astype(np.float32) * 0.1
    init += [numpy_helper.from_array(weights, "w"), numpy_helper.from_array(bias, "b")]
    nodes, x = [], "input"
    if precision == "int8":
        nodes += [helper.make_node("QuantizeLinear", [x, "in_s", "in_z"], ["xq"]),
                  helper.make_node("DequantizeLinear", ["xq", "in_s", "in_z"], ["xd"])]
        x = "xd"
    nodes += [helper.make_node("Slice", [x, "starts", "ends", "axes", "steps"], ["sampled"]),
              helper.make_node("Mul", ["sampled", "scale"], ["scaled"]),
              helper.make_node("Flatten", ["scaled"], ["flat"], axis=1),
              helper.make_node("MatMul", ["flat", "w"], ["logits0"]),
              helper.make_node("Add", ["logits0", "b"], ["logits"])]
    if precision == "int8":
        nodes += [helper.make_node("Softmax", ["logits"], ["probs"], axis=1),
                  helper.make_node("QuantizeLinear", ["probs", "out_s", "out_z"], ["pq"]),
                  helper.make_node("DequantizeLinear", ["pq", "out_s", "out_z"], ["output"])]
    else:
        nodes.append(helper.make_node("Softmax", ["logits"], ["output"], axis=1))
    graph = helper.make_graph(nodes, "generated",
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 224, 224])],
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", 1000])], init)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    made: dict[str, Path] = {}

    def resolve(name: str) -> Path:
        if name.startswith("onnx:"):
            if name not in made:
                made[name] = onnx_model(tmp_path_factory.mktemp("onnx") / f"{name[5:]}.onnx", name[5:])
            return made[name]
        path = fixtures_dir() / "models" / name
        if not path.is_file():
            pytest.skip(f"fixture model {path} absent: put ../shared/fixtures there or set EVALUATOR_FIXTURES")
        return path

    return resolve


# --- the comparison --------------------------------------------------------------------------------------------------

def evaluator_top5(dataset, model: Path, recipe, tta: str, artifacts: Path) -> dict[str, list[int]]:
    runtime = "onnxruntime" if model.suffix == ".onnx" else "litert"
    spec = RunSpec(model_path=model, recipe=recipe, tta=tta, runtime=runtime, workers=1, decode_cache=False)
    predictions = predict(dataset, spec, artifacts).predictions
    assert (predictions.errors == "").all(), predictions.errors
    return {str(i): [int(c) for c in ids] for i, ids in zip(predictions.image_ids, predictions.top5_ids)}


def mismatches(dataset, model: Path, recipe, tta: str, artifacts: Path, ranking: str | None = None) -> list[str]:
    """One line per image whose evaluator top-5 differs from the oracle's: image id, recipe, TTA, both lists."""
    measured = evaluator_top5(dataset, model, recipe, tta, artifacts)
    script = oracle.open_model(model)
    lines = []
    for image, path in zip(dataset.image_ids, dataset.image_files()):
        expected = oracle.oracle_top5(recipe.name, script, path, tta, ranking=ranking)
        if measured[str(image)] != expected:
            lines.append(f"{image} recipe {recipe.name} ({model.name}) TTA {tta}: evaluator {measured[str(image)]} "
                         f"oracle {expected}")
    return lines


@pytest.mark.parametrize("recipe_name, model, tta", CASES, ids=[case_id(*case) for case in CASES])
def test_evaluator_top5_equals_the_oracle_on_fixture_images(recipe_name, model, tta, fixture_images, model_path,
                                                             tmp_path):
    problems = mismatches(fixture_images, model_path(model), get_recipe(recipe_name), tta, tmp_path)
    assert not problems, f"{len(problems)} of {len(fixture_images.image_ids)} images differ:\n" + "\n".join(problems)


EDGE_CASES = [(recipe, models[-1 if recipe != "tf_slim_mobilenet_quant" else -2], tta)
              for recipe, models in RECIPE_MODELS.items() for tta in TTA_MODES]


@pytest.mark.parametrize("recipe_name, model, tta", EDGE_CASES, ids=[case_id(*case) for case in EDGE_CASES])
def test_evaluator_top5_equals_the_oracle_on_edge_images(recipe_name, model, tta, edge_images, model_path, tmp_path):
    problems = mismatches(edge_images, model_path(model), get_recipe(recipe_name), tta, tmp_path)
    assert not problems, "\n".join(problems)


def test_exif_orientation_reaches_the_tflite_recipes_only(edge_images, model_path, tmp_path):
    """The edge set's EXIF images change the TFLite scripts' input (IMREAD_COLOR rotates) but not the ONNX ones'."""
    rotated = edge_images.image_files()[1]  # orientation 6: 90 degrees
    assert oracle.ailia_imread(rotated).shape[:2] == (300, 420)
    assert oracle.cv2.imread(rotated, 1).shape[:2] == (420, 300)
    model = model_path(GENERATED + "gen_float32_1000.tflite")
    recipe = get_recipe("mobilenet_keras")
    unrotated = evaluator_top5(edge_images, model, replace(recipe, exif_transpose=False), "1-crop", tmp_path / "a")
    applied = evaluator_top5(edge_images, model, recipe, "1-crop", tmp_path / "b")
    exif_ids = [str(i) for i in edge_images.image_ids[:3]]
    assert all(unrotated[i] != applied[i] for i in exif_ids)


# --- the oracle has teeth --------------------------------------------------------------------------------------------

def test_the_oracle_catches_a_crop_one_pixel_off(fixture_images, model_path, tmp_path, monkeypatch):
    import evaluator.preprocess as preprocess

    original = preprocess._short_side_crop

    def shifted(image, size, short_side, method):  # the same crop window, one pixel further down/right
        full = original(image, size + 2, short_side, method)  # two pixels larger, same centre
        return np.ascontiguousarray(full[2:2 + size, 2:2 + size]) if full.shape[0] >= size + 2 else full[:size, :size]

    monkeypatch.setattr(preprocess, "_short_side_crop", shifted)
    problems = mismatches(fixture_images, model_path(GENERATED + "gen_float32_1000.tflite"),
                          get_recipe("mobilenet_keras"), "1-crop", tmp_path)
    assert len(problems) >= len(fixture_images.image_ids) // 2, problems


def test_the_oracle_catches_a_changed_tie_rule(fixture_images, model_path, tmp_path):
    altered = replace(get_recipe("mobilenet_keras"), ranking="argmax-lowest-id")
    problems = mismatches(fixture_images, model_path(GENERATED + "gen_int8_unit_1000.tflite"), altered, "1-crop",
                          tmp_path)
    assert problems, "a tie rule other than numpy argsort went unnoticed"
    # and the oracle with that same rule agrees again: the only difference was the ranking
    assert not mismatches(fixture_images, model_path(GENERATED + "gen_int8_unit_1000.tflite"), altered, "1-crop",
                          tmp_path / "again", ranking="stable")


def test_cli_predict_on_a_tf_slim_mobilenet_and_unseen_images_equals_the_oracle(edge_images, model_path, tmp_path,
                                                                                 capsys, monkeypatch):
    from evaluator.cli import main
    from evaluator.seed import read_prediction_texts

    model = model_path("mobilenet_v1_0.25_128_quant.tflite")
    monkeypatch.setenv("EVALUATOR_ARTIFACTS_DIR", str(tmp_path / "artifacts"))
    texts = tmp_path / "texts"
    assert main(["predict", "-m", "mobilenet_v1_025_128_quant", "--tta", "1-crop", "--imagenet-dir",
                 str(edge_images.root), "--write-texts", str(texts)]) == 0
    printed = capsys.readouterr().out
    # the header names the model's real input size, not the recipe's default 224
    assert "central 87.5% crop, stretched to 128x128" in printed and "224" not in printed.split("\n")[1]
    image_ids, top5_ids = read_prediction_texts(texts)
    script = oracle.open_model(model)
    by_id = dict(zip(edge_images.image_ids, edge_images.image_files()))
    for image, ids in zip(image_ids, top5_ids):
        assert ids.tolist() == oracle.oracle_top5("tf_slim_mobilenet_quant", script, by_id[image], "1-crop"), image
