"""Recipes as data: what a recipe is (`Recipe`, its checks and its one-sentence description), the built-in table,
recipes declared in baselines.yaml, command-line overrides, one resolver.

A `Recipe` holds geometry, colour order, values, layout, quantization and class offset of one model family,
reproducing the scripts that produced the documented numbers (REFERENCE.md §3, §4, §8); evaluator/preprocess.py
applies it. README "Recipe fields" lists each field with its allowed values. An entry is either complete or names a
`base` (a family or another recipe) plus the fields it changes, like the `_cfg(...)` entries of timm's model files.
Precedence, highest first, applied by resolve_recipe():

    command-line override (--mean, --std, ...)  >  the recipe the catalogue entry names (built-in or declared)
    >  its base recipe(s)  >  its family  >  the `Recipe` dataclass defaults
"""

from __future__ import annotations

import dataclasses
import difflib
import numbers
from dataclasses import dataclass

from .errors import RecipeError, did_you_mean

# The TTA modes: named geometries, each a branch of preprocess.geometry() (what it keeps and loses is said there).
TTA_MODES = ("none", "keep-aspect", "1-crop")

# The values each field accepts
_NONE_GEOMETRIES = ("stretch", "letterbox")
_CROP_GEOMETRIES = ("short-side", "central-fraction")
_RESIZES = ("cv2-bilinear", "cv2-bicubic", "pil-bilinear-antialias", "pil-bicubic-antialias")
_COLOURS = ("RGB", "BGR")
_LAYOUTS = ("NCHW", "NHWC")
_QUANTIZES = ("from-model", "raw-uint8")
_ROUNDINGS = ("trunc", "round")
_ARITHMETICS = ("float32", "numpy")
# How the top five are ranked. "numpy-argsort": numpy's default (unstable) argsort of the float32 score vector, last
# five reversed, as the ailia-models-tflite scripts rank (REFERENCE 2.3): ties fall wherever numpy's sort puts them.
# "argmax-lowest-id": a tie goes to the lower class id (a stable sort by descending score).
RANKINGS = ("argmax-lowest-id", "numpy-argsort")
# NETWORK_IMAGE_RANGE_* constants of ailia.Classifier (REFERENCE §5.1)
_AILIA_RANGES = ("U_INT8", "S_INT8", "U_FP32", "S_FP32", "IMAGENET")
_RESIZE_WORDS = {"cv2-bilinear": "OpenCV bilinear", "cv2-bicubic": "OpenCV bicubic",
                 "pil-bilinear-antialias": "PIL bilinear, antialiased",
                 "pil-bicubic-antialias": "PIL bicubic, antialiased"}


@dataclass(frozen=True, kw_only=True)
class Recipe:
    """How one model family turns a decoded image into its input; evaluator/preprocess.py lists the stages."""

    name: str
    summary: str
    # geometry
    input_size: int = 224  # models with their own input size pass `size` from the model instead
    none_geometry: str = "stretch"  # what TTA "none" means: "stretch" (aspect ignored) or "letterbox"
    crop_geometry: str = "short-side"  # how 1-crop / keep-aspect are realised: "short-side" or "central-fraction"
    crop_fraction: float = 0.875  # 1-crop keeps this fraction (224/256); keep-aspect uses 1.0
    # short-side 1-crop: resize the short side to this many pixels (timm's --resize); None: int(size / crop_fraction)
    resize_short_side: int | None = None
    resize: str = "cv2-bilinear"  # or cv2-bicubic, pil-bilinear-antialias, pil-bicubic-antialias (PIL: uint8 only)
    normalize_before_resize: bool = False  # the ailia TFLite 'Caffe' scripts normalise the full image, then resize
    # decoding: the ailia TFLite scripts read with cv2.IMREAD_COLOR, which applies the EXIF orientation; the ailia
    # ONNX scripts read with IMREAD_UNCHANGED, which does not (REFERENCE 3.2, 4.2, 9.6)
    exif_transpose: bool = False
    # colour and values: value = clip((x * scale - mean) / std, *clip), channels in `colour` order
    colour: str = "RGB"
    scale: float = 1.0
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    clip: tuple[float, float] | None = None
    # "float32": every step in float32 with float32 constants. "numpy": the ailia TFLite scripts' numpy dtypes after
    # load_image (uint8 for an integer model, float32 for a float one): uint8 / 127.5 is float64, float32 / 127.5
    # stays float32, an ImageNet mean/std array makes float64; a float model gets the result cast to float32.
    arithmetic: str = "float32"
    # layout and quantization
    layout: str  # "NCHW" or "NHWC"; required: a wrong guess still runs and silently costs accuracy
    quantize: str = "from-model"  # uint8/int8 inputs: q = x / scale + zero_point; "raw-uint8": pixels fed as they are
    quantize_rounding: str = "trunc"  # the tflite scripts truncate (astype); "round" for round-to-nearest-even
    # load_image(output_type=int8) truncates the values to the model's integer dtype before format_input_tensor
    # quantizes them again with the model's own scale and zero point (the 'Caffe' int8 scripts, REFERENCE 4.3)
    cast_before_quantize: bool = False
    # output
    class_offset: int = 0  # 1 for 1001-output models (index 0 = background)
    ranking: str = "argmax-lowest-id"  # one of RANKINGS: the rule the documented numbers were ranked with
    # ailia.Classifier path (ailia runtime, ONNX rows): NETWORK_IMAGE_RANGE_* name, or None when not offered
    ailia_classifier_range: str | None = None

    def __post_init__(self):
        # catalogue overrides arrive as YAML lists and ints: store floats and tuples of floats so that equal recipes
        # compare, hash and key caches alike (scale: 1 is scale: 1.0)
        for field in ("scale", "crop_fraction"):
            value = getattr(self, field)
            if isinstance(value, int) and not isinstance(value, bool):
                object.__setattr__(self, field, float(value))
        for field in ("mean", "std", "clip"):
            value = getattr(self, field)
            if value is None:
                continue
            try:
                object.__setattr__(self, field, tuple(float(v) for v in value))
            except (TypeError, ValueError):
                raise RecipeError(f"recipe {self.name!r}: {field} must be a list of numbers; got {value!r}") from None
        _validate(self)

    def describe(self, tta: str, size: int | None = None) -> str:
        """One sentence for reports and failures, e.g. "short side to 256 (OpenCV bilinear), centre crop 224; ..."."""
        check_tta(tta)
        size = checked_size(self, size)
        parts = [_describe_geometry(self, tta, size), self.colour, _describe_values(self)]
        if self.quantize == "raw-uint8":
            parts.append(f"{self.layout} uint8")
        else:
            parts.append(f"{self.layout} float32, {self.quantize_rounding}-quantized if the model input is integer")
        if self.cast_before_quantize:
            parts[-1] += " after truncation to the input dtype"
        if self.class_offset:
            parts.append(f"output index {self.class_offset} = class 0")
        if self.exif_transpose:
            parts.append("EXIF orientation applied")
        if self.ranking == "numpy-argsort":
            parts.append("ranked by numpy argsort")
        return "; ".join(parts)


def _validate(recipe: Recipe) -> None:
    def fail(problem: str):
        raise RecipeError(f"recipe {recipe.name!r}: {problem}")

    for field, choices in (("none_geometry", _NONE_GEOMETRIES), ("crop_geometry", _CROP_GEOMETRIES),
                           ("resize", _RESIZES), ("colour", _COLOURS), ("layout", _LAYOUTS),
                           ("quantize", _QUANTIZES), ("quantize_rounding", _ROUNDINGS),
                           ("arithmetic", _ARITHMETICS), ("ranking", RANKINGS)):
        value = getattr(recipe, field)
        if value not in choices:
            close = difflib.get_close_matches(str(value), choices, n=1)
            fail(f"{field} must be one of {', '.join(choices)}; got {value!r}"
                 + (f"; did you mean {close[0]}?" if close else ""))
    if recipe.ailia_classifier_range not in (None, *_AILIA_RANGES):
        fail(f"ailia_classifier_range must be one of {', '.join(_AILIA_RANGES)} or None; "
             f"got {recipe.ailia_classifier_range!r}")
    if not isinstance(recipe.input_size, int) or recipe.input_size < 1:
        fail(f"input_size must be a positive integer; got {recipe.input_size!r}")
    if recipe.resize_short_side is not None and (
            isinstance(recipe.resize_short_side, bool) or not isinstance(recipe.resize_short_side, int)
            or recipe.resize_short_side < 1 or recipe.crop_geometry != "short-side"):
        fail(f"resize_short_side must be a positive integer with crop_geometry short-side, or null; "
             f"got {recipe.resize_short_side!r} with {recipe.crop_geometry}")
    if isinstance(recipe.crop_fraction, bool) or not isinstance(recipe.crop_fraction, (int, float)) \
            or not 0.0 < recipe.crop_fraction <= 1.0:
        fail(f"crop_fraction must be in (0, 1]; got {recipe.crop_fraction!r}")
    if isinstance(recipe.scale, bool) or not isinstance(recipe.scale, (int, float)) or not recipe.scale > 0:
        fail(f"scale must be a positive number; got {recipe.scale!r}")
    for field in ("mean", "std"):
        if len(getattr(recipe, field)) != 3:
            fail(f"{field} needs 3 values (one per channel, in {recipe.colour} order); got {getattr(recipe, field)!r}")
    if any(s == 0 for s in recipe.std):
        fail(f"std must not contain 0; got {recipe.std!r}")
    if recipe.clip is not None and (len(recipe.clip) != 2 or recipe.clip[0] >= recipe.clip[1]):
        fail(f"clip must be (low, high) with low < high; got {recipe.clip!r}")
    for field in ("normalize_before_resize", "exif_transpose", "cast_before_quantize"):
        if not isinstance(getattr(recipe, field), bool):
            fail(f"{field} must be true or false; got {getattr(recipe, field)!r}")
    if isinstance(recipe.class_offset, bool) or recipe.class_offset not in (0, 1):
        fail(f"class_offset must be 0 or 1; got {recipe.class_offset!r}")
    if recipe.quantize == "raw-uint8" and (
            recipe.scale != 1.0 or any(recipe.mean) or recipe.std != (1.0, 1.0, 1.0) or recipe.clip is not None
            or recipe.normalize_before_resize):
        fail("raw-uint8 feeds pixels unchanged: scale 1, mean 0, std 1, no clip, no normalize_before_resize")
    if recipe.resize.startswith("pil-") and recipe.normalize_before_resize:
        fail(f"{recipe.resize} resizes uint8 images only; it cannot follow normalize_before_resize")


def check_tta(tta: str) -> str:
    """`tta` if it is one of TTA_MODES, else RecipeError naming the choices."""
    if tta not in TTA_MODES:
        raise RecipeError(did_you_mean("TTA", str(tta), TTA_MODES))
    return tta


def checked_size(recipe: Recipe, size: int | None) -> int:
    """The model input size: `size` (the model's own) if given, else the recipe's; RecipeError if not a positive
    integer."""
    if size is None:
        return recipe.input_size
    if isinstance(size, bool) or not isinstance(size, numbers.Integral) or size < 1:
        raise RecipeError(f"recipe {recipe.name!r}: input size must be a positive integer; got {size!r}")
    return int(size)


def short_side(recipe: Recipe, tta: str, size: int) -> int:
    """The short side a short-side crop resizes to before cutting the size x size centre."""
    if tta == "1-crop" and recipe.resize_short_side is not None:
        if recipe.resize_short_side < size:
            raise RecipeError(f"recipe {recipe.name!r}: resize_short_side {recipe.resize_short_side} is smaller "
                              f"than the {size}x{size} crop")
        return recipe.resize_short_side
    return int(size / (recipe.crop_fraction if tta == "1-crop" else 1.0))


def _describe_geometry(recipe: Recipe, tta: str, size: int) -> str:
    how = _RESIZE_WORDS[recipe.resize]
    before = "normalised, then " if recipe.normalize_before_resize else ""
    if tta == "none" and recipe.none_geometry == "stretch":
        return f"{before}whole image stretched to {size}x{size} ({how})"
    if tta == "none":
        pad = "0 (the mean colour)" if recipe.normalize_before_resize else "black pixels"
        return f"{before}letterbox: long side to {size} ({how}), padded to {size}x{size} with {pad}"
    fraction = recipe.crop_fraction if tta == "1-crop" else 1.0
    if recipe.crop_geometry == "short-side":
        return f"{before}short side to {short_side(recipe, tta, size)} ({how}), centre crop {size}"
    if fraction == 1.0:
        return f"{before}whole image stretched to {size}x{size} ({how}; keep-aspect = no central crop)"
    return f"{before}central {fraction:.1%} crop, stretched to {size}x{size} ({how})"


def _describe_values(recipe: Recipe) -> str:
    if recipe.quantize == "raw-uint8":
        return "raw uint8 pixels"
    term = "x" if recipe.scale == 1.0 else f"x/{1.0 / recipe.scale:g}"
    mean = recipe.mean
    if (mean, recipe.std) == (IMAGENET_MEAN, IMAGENET_STD):
        return f"({term} - ImageNet mean)/std"
    if any(mean):
        term += f" - {mean[0]:g}" if len(set(mean)) == 1 else f" - ({', '.join(f'{m:g}' for m in mean)})"
    if recipe.std != (1.0, 1.0, 1.0):
        term = f"({term})/({', '.join(f'{s:g}' for s in recipe.std)})"
    if term == "x":
        term = "x (0..255 as float)"
    if recipe.clip is not None:
        term += f" clipped to [{recipe.clip[0]:g}, {recipe.clip[1]:g}]"
    return term


# --- the recipes -------------------------------------------------------------------------------------------------

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


RECIPES: dict[str, Recipe] = build_recipes(BUILTIN, where="built-in recipes")


def get_recipe(name: str) -> Recipe:
    """The built-in recipe called `name`; RecipeError listing the known names otherwise."""
    try:
        return RECIPES[name]
    except KeyError:
        raise RecipeError(did_you_mean("recipe", name, RECIPES)) from None
