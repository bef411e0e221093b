"""Recipes as data: the built-in table, recipes declared in baselines.yaml, command-line overrides, one resolver.

Every recipe is a mapping of `Recipe` fields (evaluator/preprocess.py; README "Recipe fields" lists each field with
its allowed values). An entry is either complete or names a `base` (a family or another recipe) plus the fields it
changes, like the `_cfg(...)` entries of timm's model files. Precedence, highest first, applied by resolve_recipe():

    command-line override (--mean, --std, ...)  >  the recipe the catalogue entry names (built-in or declared)
    >  its base recipe(s)  >  its family  >  the `Recipe` dataclass defaults
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from .errors import RecipeError, did_you_mean

if TYPE_CHECKING:
    from .preprocess import Recipe

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)

# Families: bases that are not recipes themselves (no model is evaluated with a bare family).
FAMILIES: dict[str, dict] = {
    # ailia-models ONNX scripts (REFERENCE §3): short-side crops for 1-crop / keep-aspect, plain stretch for none, NCHW.
    # IMREAD_UNCHANGED: no EXIF orientation. Ranking: the documented numbers were ranked by ailia.Classifier inside
    # the SDK (tie rule unpublished); float scores rarely tie, and a tie goes to the lower id here.
    "ailia_onnx": {"summary": "ailia-models ONNX classifier", "layout": "NCHW"},
    # ailia-models-tflite scripts (REFERENCE §4.2): same crops, but none is a letterbox padded with black in the
    # loaded image's domain, NHWC; IMREAD_COLOR applies EXIF; the documented numbers were ranked with numpy's default
    # argsort.
    "ailia_tflite": {"summary": "ailia-models-tflite classifier", "layout": "NHWC", "none_geometry": "letterbox",
                     "exif_transpose": True, "arithmetic": "numpy", "ranking": "numpy-argsort"},
}

# The built-in recipes, each reproducing the script behind its documented numbers (tests/test_oracle.py).
BUILTIN: dict[str, dict] = {
    "resnet50_pytorch": {
        "base": "ailia_onnx", "summary": "torchvision ResNet50 exported to ONNX (ailia-models resnet50_pytorch)",
        "scale": 1 / 255, "mean": IMAGENET_MEAN, "std": IMAGENET_STD, "ailia_classifier_range": "IMAGENET"},
    "resnet50_chainer": {
        "base": "ailia_onnx", "summary": "Chainer ResNet50 exported to ONNX (ailia-models resnet50.opt)",
        # ailia's S_INT8 range formula is unpublished; x - 128 is the likely mapping (REFERENCE §9.1)
        "mean": (128.0, 128.0, 128.0), "ailia_classifier_range": "S_INT8"},
    "resnet50_keras": {
        "base": "ailia_tflite", "summary": "tf.keras ResNet50 (ailia TFLite, 'Caffe' normalisation)",
        "normalize_before_resize": True, "colour": "BGR", "mean": CAFFE_MEAN_BGR,
        # the script clips to the int8 range even for the float model (bright pixels saturate, unlike Keras) §9.5.
        # Its values are float32 throughout (uint8 minus a float32 mean), so "numpy" arithmetic changes nothing here.
        "clip": (-128.0, 127.0), "cast_before_quantize": True},
    "mobilenet_keras": {
        "base": "ailia_tflite", "summary": "Keras MobileNet v1/v2 float and recalibrated int8 (ailia TFLite)",
        # load_image keeps uint8 ('None'), resizes uint8, and only then the script applies x/127.5 - 1
        "scale": 1 / 127.5, "mean": (1.0, 1.0, 1.0)},
    "mobilenetv2_keras_legacy": {
        "base": "mobilenet_keras", "summary": "Keras MobileNetV2 int8, 4-image calibration (legacy)",
        # the legacy v2 script skips x/127.5 - 1 and quantizes raw 0..255 values (REFERENCE §4.4): this is why the
        # documented TOP1 is 0.0014; reproducing it keeps the expected failure honest
        "scale": 1.0, "mean": (0.0, 0.0, 0.0)},
    "efficientnetlite0_keras": {
        "base": "mobilenet_keras", "summary": "EfficientNet-Lite0 Keras float / recalibrated int8"},
    "efficientnetlite0_keras_legacy": {
        "base": "resnet50_keras",
        "summary": "EfficientNet-Lite0 Keras int8, 4-image calibration (legacy, 'Caffe' normalisation)"},
    "efficientnetlite0_torch": {
        "base": "ailia_tflite", "summary": "timm EfficientNet-Lite0 converted to TFLite (--torch)",
        # the script's float64 result is cast to float32 for the float model, which only accepts float32
        "scale": 1 / 255, "mean": IMAGENET_MEAN, "std": IMAGENET_STD},
    "tf_slim_mobilenet_quant": {
        "summary": "TF-slim quantization-aware MobileNets (TFLite hosted models, uint8 in, 1001 outputs)",
        "layout": "NHWC",
        # tf.image.central_crop(0.875) then bilinear resize to the model's size (128/160/192/224, passed as `size`).
        # keep-aspect means central fraction 1.0 (no crop, stretch) and none is the same stretch. TF's legacy
        # resize_bilinear has no half-pixel centres and OpenCV has: a sub-pixel shift, within noise. (The TFLite
        # evaluation tool behind the published numbers rounds crop size and offset: <= 1 px apart.)
        "crop_geometry": "central-fraction",
        "quantize": "raw-uint8",  # input quantization (1/128, 128) maps 0..255 to [-1, 1) inside the model
        # tf.image.decode_jpeg ignores EXIF; the TFLite evaluation tool ranks with std::stable_sort by descending
        # score (ties: lower id; its 2018 version used std::sort, whose tie order is unspecified)
        "class_offset": 1},
    "onnx_zoo_mobilenetv2": {
        "summary": "ONNX model zoo MobileNetV2-1.0 int8 (float input, QLinear ops inside)",
        "layout": "NCHW",
        # the zoo's imagenet_preprocess.py resizes with PIL Image.resize(BILINEAR), which antialiases when
        # downscaling; OpenCV bilinear does not. (It rounds the long side where we truncate: at most 1 px.)
        "resize": "pil-bilinear-antialias",
        # Image.open ignores EXIF; the zoo's scripts rank with np.argsort(-scores), ties within noise
        "scale": 1 / 255, "mean": IMAGENET_MEAN, "std": IMAGENET_STD},
}

# Command-line overrides (predict, accuracy, add-model, pytest): option name -> Recipe field. --crop-size and
# --input-size name the same field: the crop is the model input.
OVERRIDE_OPTIONS = {
    "mean": "mean", "std": "std", "scale": "scale", "resize_short_side": "resize_short_side",
    "crop_size": "input_size", "input_size": "input_size", "crop_fraction": "crop_fraction",
    "interpolation": "resize", "channel_order": "colour", "layout": "layout", "class_offset": "class_offset",
}


def recipe_fields() -> tuple[str, ...]:
    """The fields a recipe entry may set (besides `base` and `summary`)."""
    from .preprocess import Recipe

    return tuple(f.name for f in dataclasses.fields(Recipe) if f.name not in ("name", "summary"))


def build_recipes(table: dict[str, dict], known: dict[str, Recipe] | None = None,
                  where: str = "recipes") -> dict[str, Recipe]:
    """Recipes of a table of entries (complete, or `base` + the fields that differ), resolved against `known`
    recipes, FAMILIES and each other. RecipeError naming the key path on an unknown base, field or a cycle."""
    return {name: build_recipe(name, table, known or {}, where) for name in table}


def build_recipe(name: str, table: dict[str, dict], known: dict[str, Recipe], where: str = "recipes") -> Recipe:
    """The recipe `table[name]`, its `base` chain followed through `table`, `known` recipes and FAMILIES."""

    def fields_of(entry_name: str, chain: tuple[str, ...]) -> dict:
        if entry_name in chain:
            raise RecipeError(f"{where}.{chain[0]}.base: cycle {' -> '.join((*chain, entry_name))}")
        if entry_name in table:
            entry = table[entry_name]
            if not isinstance(entry, dict):
                raise RecipeError(f"{where}.{entry_name}: expected a mapping of recipe fields")
            allowed = {"base", "summary", *recipe_fields()}
            for key in entry:
                if key not in allowed:
                    raise RecipeError(f"{where}.{entry_name}.{key}: " + did_you_mean("recipe field", str(key), allowed))
            base = entry.get("base")
            inherited = fields_of(base, (*chain, entry_name)) if base is not None else {}
            return {**inherited, **{k: v for k, v in entry.items() if k != "base"}}
        if entry_name in known:
            return {k: v for k, v in dataclasses.asdict(known[entry_name]).items() if k != "name"}
        if entry_name in FAMILIES:
            return dict(FAMILIES[entry_name])
        choices = [*table, *known, *FAMILIES]
        raise RecipeError(f"{where}.{chain[-1]}.base: " + did_you_mean("base recipe", str(entry_name), choices))

    fields = fields_of(name, ())
    base = table[name].get("base")
    fields["summary"] = table[name].get("summary") or f"{name}: {base} with " + (
        ", ".join(k for k in table[name] if k not in ("base", "summary")) or "no changes")
    return make_recipe(name, fields, where=f"{where}.{name}")


def make_recipe(name: str, fields: dict, where: str, key_paths: bool = True) -> Recipe:
    """A Recipe from a mapping of fields; RecipeError naming `where` (plus the field, as a key path, with
    key_paths) when a field is missing or out of range."""
    from .preprocess import Recipe

    fields = {k: tuple(v) if isinstance(v, list) else v for k, v in fields.items() if k != "name"}
    if "layout" not in fields:
        raise RecipeError(f"{where}: layout is required (NCHW or NHWC; a wrong guess still runs and silently costs "
                          "accuracy), directly or through `base`")
    try:
        return Recipe(name=name, **fields)
    except (RecipeError, TypeError) as exc:
        # "recipe 'x': mean must be ..." -> "recipes.x.mean: mean must be ...": the key path of the field
        problem = str(exc).split(": ", 1)[-1] if isinstance(exc, RecipeError) else str(exc)
        field = problem.split()[0] if problem else ""
        in_field = key_paths and field in fields
        raise RecipeError(f"{where}.{field}: {problem}" if in_field else f"{where}: {problem}") from None


def apply_overrides(recipe: Recipe, overrides: dict) -> Recipe:
    """`recipe` with command-line overrides (option name -> value, None = not given) applied on top.

    The result is named after its recipe plus the fields that changed, e.g. "resnet50_pytorch+mean+std", so a
    header or report never shows an overridden recipe under its built-in name.
    """
    changes: dict = {}
    for option, value in overrides.items():
        if value is None:
            continue
        field = OVERRIDE_OPTIONS[option]
        if field in changes and changes[field] != value:
            raise RecipeError(f"--{option.replace('_', '-')} {value} contradicts another override of {field} "
                              f"({changes[field]}): --crop-size and --input-size set the same size")
        changes[field] = tuple(value) if isinstance(value, list) else value
    if not changes:
        return recipe
    name = recipe.name + "".join(f"+{field}" for field in changes)
    summary = f"{recipe.summary}, overridden: " + ", ".join(f"{k}={v}" for k, v in changes.items())
    return make_recipe(name, {**dataclasses.asdict(recipe), "summary": summary, **changes},
                       where=f"recipe {recipe.name} with the overrides", key_paths=False)


def describe_fields(recipe: Recipe) -> str:
    """Every field of a resolved recipe on one line, for run headers: "name: field=value, ..."."""
    parts = [f"{k}={v}" for k, v in dataclasses.asdict(recipe).items() if k not in ("name", "summary")]
    return f"{recipe.name}: " + ", ".join(parts)


def resolve_recipe(name: str, recipes: dict[str, Recipe], overrides: dict | None = None) -> Recipe:
    """The one resolver: the named recipe (built-in or declared in baselines.yaml, itself resolved through its
    bases and family) with the command-line overrides on top. An unknown name lists the recipes."""
    if name not in recipes:
        raise RecipeError(did_you_mean("recipe", str(name), recipes))
    return apply_overrides(recipes[name], overrides or {})
