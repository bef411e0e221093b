"""Recipes as data (evaluator/recipes.py): the built-in table, declared recipes, overrides and the resolver."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from imagenet_factory import real_imagenet_dir

from evaluator.cli import main
from evaluator.errors import RecipeError
from evaluator.pipeline import artifact_key
from evaluator.preprocess import geometry
from evaluator.recipes import (
    BUILTIN,
    FAMILIES,
    OVERRIDE_OPTIONS,
    RECIPES,
    apply_overrides,
    build_recipes,
    get_recipe,
    resolve_recipe,
)
from evaluator.run_spec import RunSpec


def test_builtin_entries_name_a_known_base_and_only_recipe_fields():
    assert set(BUILTIN) == set(RECIPES)
    for name, entry in BUILTIN.items():
        assert entry.get("base") in (None, *FAMILIES, *BUILTIN), name
        assert entry["summary"] == RECIPES[name].summary


def test_a_base_passes_every_field_it_does_not_override():
    legacy, keras = get_recipe("efficientnetlite0_keras_legacy"), get_recipe("resnet50_keras")
    assert dataclasses.replace(legacy, name=keras.name, summary=keras.summary) == keras
    assert get_recipe("mobilenetv2_keras_legacy").exif_transpose  # from the ailia_tflite family, two bases up


def test_declared_recipe_with_base_and_overrides():
    table = {"inception_torch": {"base": "resnet50_pytorch", "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]},
             "inception_bgr": {"base": "inception_torch", "colour": "BGR"}}
    recipes = build_recipes(table, RECIPES)
    assert recipes["inception_bgr"].mean == (0.5, 0.5, 0.5) and recipes["inception_bgr"].colour == "BGR"
    assert recipes["inception_bgr"].scale == RECIPES["resnet50_pytorch"].scale
    assert "inception_torch" in recipes["inception_bgr"].summary
    complete = build_recipes({"mine": {"layout": "NHWC", "scale": 0.5}}, RECIPES)["mine"]
    assert (complete.layout, complete.scale, complete.mean) == ("NHWC", 0.5, (0.0, 0.0, 0.0))


@pytest.mark.parametrize("table, message", [
    ({"x": {"base": "resnet50_pytorh"}}, "recipes.x.base: unknown base recipe 'resnet50_pytorh'; did you mean "
                                         "resnet50_pytorch?"),
    ({"x": {"base": "resnet50_pytorch", "meen": [1, 2, 3]}}, "recipes.x.meen: unknown recipe field 'meen'; did you "
                                                             "mean mean?"),
    ({"x": {"base": "y"}, "y": {"base": "x"}}, "recipes.x.base: cycle x -> y -> x"),
    ({"x": {"scale": 2.0}}, "recipes.x: layout is required"),
    ({"x": {"base": "resnet50_pytorch", "layout": "NCWH"}}, "recipes.x.layout: layout must be one of NCHW, NHWC"),
    ({"x": {"base": "resnet50_pytorch", "crop_fraction": "0.9"}}, "crop_fraction must be in (0, 1]"),
    ({"x": {"base": "tf_slim_mobilenet_quant", "resize_short_side": 256}}, "crop_geometry short-side"),
])
def test_bad_declared_recipe_is_one_line_with_its_key_path(table, message):
    with pytest.raises(RecipeError) as error:
        build_recipes(table, RECIPES)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_resize_short_side_and_interpolation_change_the_geometry():
    image = np.random.default_rng(0).integers(0, 256, (300, 400, 3), dtype=np.uint8)
    base = get_recipe("resnet50_pytorch")
    timm = apply_overrides(base, {"resize_short_side": 232})
    resized = cv2.resize(image, (int(400 * 232 / 300), 232), interpolation=cv2.INTER_LINEAR)
    top, left = (232 - 224) // 2, (resized.shape[1] - 224) // 2
    np.testing.assert_array_equal(geometry(image, timm, "1-crop"), resized[top:top + 224, left:left + 224])
    assert "short side to 232" in timm.describe("1-crop")
    np.testing.assert_array_equal(geometry(image, timm, "keep-aspect"), geometry(image, base, "keep-aspect"))
    bicubic = apply_overrides(base, {"interpolation": "cv2-bicubic"})
    assert not np.array_equal(geometry(image, bicubic, "1-crop"), geometry(image, base, "1-crop"))
    with pytest.raises(RecipeError, match="resize_short_side 200 is smaller than the 224x224 crop"):
        geometry(image, apply_overrides(base, {"resize_short_side": 200}), "1-crop")


OVERRIDE_VALUES = {"mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5], "scale": 0.5, "resize_short_side": 240,
                   "crop_size": 192, "input_size": 200, "crop_fraction": 0.9, "interpolation": "cv2-bicubic",
                   "channel_order": "BGR", "layout": "NHWC", "class_offset": 1}


def test_every_override_changes_the_recipe_and_the_artifact_key():
    assert set(OVERRIDE_VALUES) == set(OVERRIDE_OPTIONS)
    base = get_recipe("resnet50_pytorch")
    info, dataset = SimpleNamespace(sha256="0" * 64, runtime_version="x", input_size=224), SimpleNamespace(
        fingerprint="f", ids_key="k")

    def key(recipe):
        return artifact_key(RunSpec(Path("m.onnx"), recipe, "1-crop", "onnxruntime"), info, dataset)

    keys = {key(base)}
    for option, value in OVERRIDE_VALUES.items():
        recipe = apply_overrides(base, {option: value})
        field = OVERRIDE_OPTIONS[option]
        assert getattr(recipe, field) == (tuple(value) if isinstance(value, list) else value), option
        assert recipe.name == f"resnet50_pytorch+{field}"
        keys.add(key(recipe))
    assert len(keys) == len(OVERRIDE_VALUES) + 1
    # every field of the recipe is in the key, not only those the command line can reach
    other_values = {"none_geometry": "letterbox", "crop_geometry": "central-fraction", "normalize_before_resize": True,
                    "exif_transpose": True, "clip": (-1.0, 1.0), "arithmetic": "numpy", "quantize": "raw-uint8",
                    "quantize_rounding": "round", "cast_before_quantize": True, "ranking": "numpy-argsort",
                    "ailia_classifier_range": "U_INT8"}
    for field, value in other_values.items():
        assert getattr(base, field) != value
        assert key(dataclasses.replace(base, **{field: value}, scale=1.0, mean=(0.0,) * 3, std=(1.0,) * 3)) != \
            key(dataclasses.replace(base, scale=1.0, mean=(0.0,) * 3, std=(1.0,) * 3)), field


def test_resolver_precedence_flag_over_declared_over_base():
    declared = build_recipes({"half": {"base": "resnet50_pytorch", "mean": [0.5, 0.5, 0.5]}}, RECIPES)
    recipes = {**RECIPES, **declared}
    assert resolve_recipe("half", recipes).mean == (0.5, 0.5, 0.5)
    assert resolve_recipe("half", recipes).std == RECIPES["resnet50_pytorch"].std  # from the base
    flagged = resolve_recipe("half", recipes, {"mean": [0.1, 0.2, 0.3], "std": None})
    assert flagged.mean == (0.1, 0.2, 0.3) and flagged.std == RECIPES["resnet50_pytorch"].std
    with pytest.raises(RecipeError, match="did you mean half"):
        resolve_recipe("halff", recipes)
    with pytest.raises(RecipeError, match="--input-size 200 contradicts"):
        apply_overrides(RECIPES["resnet50_pytorch"], {"crop_size": 224, "input_size": 200})


# --- Done when: an inception-normalised ONNX model through --mean/--std ------------------------------------------

INCEPTION_MEAN, INCEPTION_STD = 0.498, 0.502


def random_classifier(path: Path, seed: int = 0) -> Path:
    """A float NCHW ONNX classifier with generated weights: 16x16 patches -> 8 channels -> ReLU -> 1000 scores."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    conv = rng.normal(0, 0.1, (8, 3, 16, 16)).astype(np.float32)
    bias = rng.normal(0, 0.5, (8,)).astype(np.float32)  # a ReLU threshold: the input's offset changes the ranking
    dense = rng.normal(0, 0.05, (8 * 14 * 14, 1000)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["input", "w", "b"], ["c"], kernel_shape=[16, 16], strides=[16, 16]),
         helper.make_node("Relu", ["c"], ["r"]), helper.make_node("Flatten", ["r"], ["f"]),
         helper.make_node("MatMul", ["f", "d"], ["scores"])],
        "inception_like", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 224, 224])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N", 1000])],
        [numpy_helper.from_array(conv, "w"), numpy_helper.from_array(bias, "b"), numpy_helper.from_array(dense, "d")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


def independent_top5(model: Path, image_paths: list[Path]) -> np.ndarray:
    """Torch-style eval preprocessing written out plainly: short side 256 (int truncation, OpenCV bilinear), centre
    224, x/255, (x - 0.498) / 0.502, NCHW; ONNX Runtime called directly; top five by descending score."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    rows = []
    for path in image_paths:
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
        rgb = bgr[:, :, ::-1]
        h, w = rgb.shape[:2]
        new_w, new_h = (int(w * 256 / h), 256) if h < w else (256, int(h * 256 / w))
        resized = cv2.resize(np.ascontiguousarray(rgb), (new_w, new_h), interpolation=cv2.INTER_LINEAR)
        top, left = (new_h - 224) // 2, (new_w - 224) // 2
        crop = resized[top:top + 224, left:left + 224].astype(np.float64)
        values = ((crop / 255.0 - INCEPTION_MEAN) / INCEPTION_STD).astype(np.float32)
        scores = session.run(None, {"input": values.transpose(2, 0, 1)[None]})[0][0]
        rows.append(np.argsort(-scores, kind="stable")[:5])
    return np.array(rows)


def test_inception_normalised_model_agrees_with_an_independent_implementation(tmp_path, capsys):
    from evaluator.cli_run import load_predictions

    imagenet = real_imagenet_dir()
    model = random_classifier(tmp_path / "inception_like.onnx")
    common = ["predict", "--model-path", str(model), "--recipe", "resnet50_pytorch", "--imagenet-dir",
              str(imagenet), "--limit", "150", "--artifacts-dir", str(tmp_path / "artifacts"), "--runtime",
              "onnxruntime", "--json"]
    assert main(common + ["--mean", "0.498", "0.498", "0.498", "--std", "0.502", "0.502", "0.502"]) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert result["recipe"]["mean"] == [0.498] * 3 and result["recipe"]["std"] == [0.502] * 3
    assert result["recipe"]["name"] == "resnet50_pytorch+mean+std"
    assert "recipe resnet50_pytorch+mean+std: input_size=224" in captured.err  # the header, every field
    ours = load_predictions(Path(result["predictions"]))
    paths = [imagenet / "ILSVRC" / "Data" / "CLS-LOC" / "val" / f"{i}.JPEG" for i in ours.image_ids]
    theirs = independent_top5(model, paths)
    same_top5 = (ours.top5_ids == theirs).all(axis=1)
    assert same_top5.mean() >= 0.99, f"{(~same_top5).sum()} of {len(paths)} images differ"
    labels = ours.labels
    for k in (1, 5):
        ours_acc = (ours.top5_ids[:, :k] == labels[:, None]).any(axis=1).mean()
        theirs_acc = (theirs[:, :k] == labels[:, None]).any(axis=1).mean()
        assert abs(ours_acc - theirs_acc) <= 0.005

    # the overrides matter: the plain recipe (ImageNet mean/std) ranks these images differently, and runs apart
    assert main(common) == 0
    plain = json.loads(capsys.readouterr().out)
    assert plain["predictions"] != result["predictions"]
    plain_top5 = load_predictions(Path(plain["predictions"])).top5_ids
    assert (plain_top5 == theirs).all(axis=1).mean() < 0.5


def test_yaml_integers_make_the_same_recipe_as_floats():
    from_ints = build_recipes({"x": {"base": "resnet50_chainer", "scale": 1, "crop_fraction": 1}}, RECIPES)["x"]
    from_floats = build_recipes({"x": {"base": "resnet50_chainer", "scale": 1.0, "crop_fraction": 1.0}}, RECIPES)["x"]
    assert from_ints == from_floats and type(from_ints.scale) is float and type(from_ints.crop_fraction) is float


def test_predict_refuses_an_input_size_that_contradicts_a_fixed_model(tmp_path, capsys):
    from imagenet_factory import make_imagenet

    make_imagenet(tmp_path / "imagenet", n_images=2)
    model = random_classifier(tmp_path / "fixed224.onnx")
    assert main(["predict", "--model-path", str(model), "--recipe", "resnet50_pytorch", "--crop-size", "192",
                 "--imagenet-dir", str(tmp_path / "imagenet"), "--artifacts-dir", str(tmp_path / "artifacts")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("the model's input is fixed at 224x224; --input-size/--crop-size 192 does not fit it")
    assert not (tmp_path / "artifacts" / "predictions").exists()
