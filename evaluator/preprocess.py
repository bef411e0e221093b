"""TTA geometry and per-model normalisation recipes: decoded RGB uint8 image -> model-ready input.

A `Recipe` is data: geometry, colour order, values, layout, quantization and class offset of one model family,
reproducing the scripts that produced the documented numbers (REFERENCE.md §3, §4, §8). Stages, in order:

    geometry()        TTA crop / resize (and letterbox padding) on the uint8 image (cacheable, see geometry_is_cacheable)
    normalize()       colour order + values: clip((x * scale - mean) / std)
    from_geometry()   normalize() of a geometry() output
    preprocess()      all of the above for one image, in the order the reference scripts use
    to_input()        batch layout (NCHW/NHWC) and input quantization for the model's input tensor
    inputs_from_geometry()  the model input for a stack of size x size geometry() outputs, in one pass

For every recipe without normalize_before_resize, from_geometry(geometry(image, r, tta), r, tta) == preprocess(...).

Integer geometry follows the scripts exactly: `int()` truncation for resized sizes, floor division for offsets.
Values: inputs_from_geometry() reproduces each script's own numpy arithmetic (dtypes included, see
`Recipe.arithmetic` and script_values()), so every input value is bit-identical to the script's. normalize() and
preprocess() compute in float32 (the 'Caffe' scripts' own arithmetic; for "numpy" recipes equal to the script's
values up to float32 rounding, which to_input()'s quantization can turn into one step).
"""

from __future__ import annotations

import difflib
import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np

from evaluator.errors import ImageDecodeError, RecipeError, did_you_mean
from evaluator.recipes import IMAGENET_MEAN as _IMAGENET_MEAN, IMAGENET_STD as _IMAGENET_STD

if TYPE_CHECKING:
    from evaluator.runtimes.base import TensorSpec

TTA_MODES = ("none", "keep-aspect", "1-crop")

_NONE_GEOMETRIES = ("stretch", "letterbox")
_CROP_GEOMETRIES = ("short-side", "central-fraction")
_RESIZES = ("cv2-bilinear", "cv2-bicubic", "pil-bilinear-antialias", "pil-bicubic-antialias")
# Largest image a recipe may create on the way to the model's input (2**25 pixels, 100 MB as uint8 RGB): a 1x300 image
# resized to a short side of 256 (76,800 x 256) passes, as in the scripts; a 1x3000 or 1x40000 one would need gigabytes.
MAX_INTERMEDIATE_PIXELS = 1 << 25
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
                 "pil-bilinear-antialias": "PIL bilinear, antialiased", "pil-bicubic-antialias": "PIL bicubic, antialiased"}


@dataclass(frozen=True, kw_only=True)
class Recipe:
    """How one model family turns a decoded image into its input; see the module docstring for the stages."""

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
        size = _checked_size(self, size)
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


# --- the recipes: data in evaluator/recipes.py -----------------------------------------------------------------

def _builtin_recipes() -> dict[str, Recipe]:
    from evaluator.recipes import BUILTIN, build_recipes

    return build_recipes(BUILTIN, where="built-in recipes")


RECIPES: dict[str, Recipe] = _builtin_recipes()


def get_recipe(name: str) -> Recipe:
    """The recipe called `name`; RecipeError listing the known names otherwise."""
    try:
        return RECIPES[name]
    except KeyError:
        raise RecipeError(did_you_mean("recipe", name, RECIPES)) from None


def check_tta(tta: str) -> str:
    """`tta` if it is one of TTA_MODES, else RecipeError naming the choices."""
    if tta not in TTA_MODES:
        raise RecipeError(did_you_mean("TTA", str(tta), TTA_MODES))
    return tta


def geometry_is_cacheable(recipe: Recipe, tta: str | None = None) -> bool:
    """True when geometry() gives a size x size uint8 image from which from_geometry() reproduces preprocess().

    Args:
        tta: the TTA mode; None answers for every mode at once (False if any mode cannot be cached).
    """
    # these recipes resize float values; a cached uint8 resize would round differently
    return not recipe.normalize_before_resize


def geometry_key(recipe: Recipe, tta: str, size: int | None = None) -> str:
    """Text naming everything geometry() output depends on, for cache keys; equal keys give equal images."""
    check_tta(tta)
    size = _checked_size(recipe, size)
    if tta == "none":
        shape = recipe.none_geometry
    else:
        fraction = recipe.crop_fraction if tta == "1-crop" else 1.0
        shape = f"{recipe.crop_geometry} {fraction!r}"
        if tta == "1-crop" and recipe.resize_short_side is not None:
            shape = f"{recipe.crop_geometry} to {recipe.resize_short_side}"
    return f"{tta}: {shape}, {recipe.resize}, size {size}"


# --- geometry -----------------------------------------------------------------------------------------------------

def geometry(image_rgb_u8: np.ndarray, recipe: Recipe, tta: str, size: int | None = None) -> np.ndarray:
    """TTA crop/resize of an HxWx3 uint8 image to size x size (a letterbox is padded with black pixels).

    Args:
        size: model input size; defaults to recipe.input_size.
    """
    check_tta(tta)
    return _geometry(_checked_image(image_rgb_u8), recipe, tta, _checked_size(recipe, size))


def _geometry(image: np.ndarray, recipe: Recipe, tta: str, size: int) -> np.ndarray:
    if tta == "none" and recipe.none_geometry == "stretch":
        # whole image, aspect ignored: nothing is lost, shapes are distorted
        return _resize(image, size, size, recipe.resize)
    if tta == "none":
        # letterbox: long side to `size`, aspect kept, nothing lost. Padded with 0 in the domain of `image`, as
        # the scripts' cv2.copyMakeBorder does: a black uint8 pixel, or 0 after 'Caffe' normalise-before-resize.
        return _pad_to_square(_letterbox_resize(image, size, recipe.resize), size)
    fraction = recipe.crop_fraction if tta == "1-crop" else 1.0
    if recipe.crop_geometry == "short-side":
        # short side to size/fraction, centre crop: aspect kept, the long side's ends are lost
        return _short_side_crop(image, size, _short_side(recipe, tta, size), recipe.resize)
    # central fraction of each side (tf.image.central_crop), then stretch to size x size
    return _resize(_central_fraction_crop(image, fraction), size, size, recipe.resize)


def _short_side(recipe: Recipe, tta: str, size: int) -> int:
    if tta == "1-crop" and recipe.resize_short_side is not None:
        if recipe.resize_short_side < size:
            raise RecipeError(f"recipe {recipe.name!r}: resize_short_side {recipe.resize_short_side} is smaller "
                              f"than the {size}x{size} crop")
        return recipe.resize_short_side
    return int(size / (recipe.crop_fraction if tta == "1-crop" else 1.0))


def _short_side_crop(image: np.ndarray, size: int, short_side: int, method: str) -> np.ndarray:
    height, width = image.shape[:2]
    if height < width:
        new_width, new_height = int(width * short_side / height), short_side
    else:
        new_width, new_height = short_side, int(height * short_side / width)
    resized = _resize(image, new_width, new_height, method)
    top, left = (new_height - size) // 2, (new_width - size) // 2
    return np.ascontiguousarray(resized[top:top + size, left:left + size])


def _central_fraction_crop(image: np.ndarray, fraction: float) -> np.ndarray:
    # the integer arithmetic of tf.image.central_crop (static shapes): start truncated, size = side - 2 * start
    if fraction == 1.0:
        return image
    height, width = image.shape[:2]
    top = int((float(height) - float(height) * fraction) / 2)
    left = int((float(width) - float(width) * fraction) / 2)
    return image[top:height - top, left:width - left]


def _letterbox_resize(image: np.ndarray, size: int, method: str) -> np.ndarray:
    # numpy float64 arithmetic of the tflite resize_image(): the long side can come out size - 1 (REFERENCE §9.4)
    shape = np.array(image.shape[:2])
    scale_long_side = np.max(shape / np.array([size, size]))
    new_height, new_width = (shape / scale_long_side).astype(int)
    # the script would crash on a side that rounds to 0 (e.g. 1x1000); keep one pixel instead
    return _resize(image, max(int(new_width), 1), max(int(new_height), 1), method)


def _resize(image: np.ndarray, width: int, height: int, method: str) -> np.ndarray:
    check_intermediate_size(image.shape, width, height)
    if method == "cv2-bilinear":
        return cv2.resize(np.ascontiguousarray(image), (width, height), interpolation=cv2.INTER_LINEAR)
    if method == "cv2-bicubic":
        return cv2.resize(np.ascontiguousarray(image), (width, height), interpolation=cv2.INTER_CUBIC)
    from PIL import Image  # only PIL recipes (the ONNX zoo's) resize with Pillow

    resample = Image.Resampling.BILINEAR if method == "pil-bilinear-antialias" else Image.Resampling.BICUBIC
    return np.asarray(Image.fromarray(image).resize((width, height), resample))


def check_intermediate_size(shape: tuple[int, ...], width: int, height: int) -> None:
    """ImageDecodeError (recorded per image, as damaged) when resizing an image of `shape` to width x height would
    create an empty image or one above MAX_INTERMEDIATE_PIXELS."""
    if width < 1 or height < 1 or width * height > MAX_INTERMEDIATE_PIXELS:
        raise ImageDecodeError(f"a {shape[1]}x{shape[0]} image would be resized to {width}x{height} on the way to "
                               f"the model input (limit: 1 to {MAX_INTERMEDIATE_PIXELS:,} pixels); "
                               "extreme aspect ratio")


# --- values -------------------------------------------------------------------------------------------------------

def normalize(image_u8: np.ndarray, recipe: Recipe) -> np.ndarray:
    """Colour order and values of an HxWx3 uint8 RGB image: float32 (uint8 unchanged for raw-uint8 recipes)."""
    image = _checked_image(image_u8)
    if recipe.colour == "BGR":
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    if recipe.quantize == "raw-uint8":
        return np.ascontiguousarray(image)
    # Each output value depends only on its uint8 input and channel, so a 256-entry table per channel holding
    # normalize_values() of every level gives exactly the same floats, in one pass that releases the GIL.
    return cv2.LUT(np.ascontiguousarray(image), _value_table(recipe))


def normalize_values(values_u8: np.ndarray, recipe: Recipe) -> np.ndarray:
    """The scripts' float32 arithmetic on (already colour-ordered) uint8 values: scale, mean, std, clip."""
    values = values_u8.astype(np.float32)
    if recipe.scale != 1.0:
        # the scripts divide (x / 255, x / 127.5); dividing by the reciprocal keeps their float32 rounding
        values /= np.float32(1.0 / recipe.scale)
    values -= np.asarray(recipe.mean, dtype=np.float32)
    values /= np.asarray(recipe.std, dtype=np.float32)
    if recipe.clip is not None:
        np.clip(values, recipe.clip[0], recipe.clip[1], out=values)
    return values


def script_values(values_u8: np.ndarray, recipe: Recipe, input_dtype) -> np.ndarray:
    """The values a model with input dtype `input_dtype` is handed before quantization, for colour-ordered uint8
    values, in the recipe's arithmetic: float32 (normalize_values) or the ailia TFLite scripts' numpy dtypes."""
    if recipe.quantize == "raw-uint8":
        return values_u8
    if recipe.arithmetic == "float32":
        return normalize_values(values_u8, recipe)
    # load_image(output_type=...) returns uint8 for an integer model and float32 for a float model; the script's
    # own operators then promote as numpy does (a Python float keeps float32, turns uint8 into float64)
    values = values_u8 if np.dtype(input_dtype).kind in "iu" else values_u8.astype(np.float32)
    if recipe.scale != 1.0:
        values = values / round(1.0 / recipe.scale, 9)  # x / 127.5, x / 255 with the script's Python float
    if recipe.std == (1.0, 1.0, 1.0) and len(set(recipe.mean)) == 1:
        if recipe.mean[0]:
            values = values - recipe.mean[0]  # x / 127.5 - 1: a Python float again
    else:  # per-channel constants are numpy arrays in the scripts: float32 for 'Caffe', float64 for ImageNet
        constant_dtype = np.float32 if recipe.clip is not None else np.float64
        values = (values - np.asarray(recipe.mean, dtype=constant_dtype)) / np.asarray(recipe.std, dtype=constant_dtype)
    if recipe.clip is not None:
        values = np.maximum(np.minimum(values, recipe.clip[1]), recipe.clip[0])
    return values


_LEVELS = np.repeat(np.arange(256, dtype=np.uint8)[None, :, None], 3, axis=2)  # (1, 256, 3): every uint8 level


@functools.lru_cache(maxsize=None)
def _value_table(recipe: Recipe) -> np.ndarray:
    return normalize_values(_LEVELS, recipe)


def from_geometry(image_u8: np.ndarray, recipe: Recipe, tta: str, size: int | None = None) -> np.ndarray:
    """Model values (float32, uint8 for raw-uint8) of a size x size geometry() output: normalize()."""
    check_tta(tta)
    size = _checked_size(recipe, size)
    values = normalize(image_u8, recipe)
    if values.shape[:2] != (size, size):
        raise ValueError(f"from_geometry: expected a {size}x{size} geometry() output for recipe {recipe.name!r} "
                         f"TTA {tta}; got {values.shape[1]}x{values.shape[0]}")
    return values


def _pad_to_square(values: np.ndarray, size: int) -> np.ndarray:
    height, width = values.shape[:2]
    if (height, width) == (size, size):
        return values
    padded = np.zeros((size, size, values.shape[2]), dtype=values.dtype)
    top, left = (size - height) // 2, (size - width) // 2
    padded[top:top + height, left:left + width] = values
    return padded


def preprocess(image_rgb_u8: np.ndarray, recipe: Recipe, tta: str, size: int | None = None) -> np.ndarray:
    """Model values (HxWxC float32, uint8 for raw-uint8) of one decoded RGB image, in the reference scripts' order."""
    check_tta(tta)
    image = _checked_image(image_rgb_u8)
    size = _checked_size(recipe, size)
    if recipe.normalize_before_resize:
        # the ailia TFLite 'Caffe' scripts normalise and clip the full image, then resize the float32 values
        return _geometry(normalize(image, recipe), recipe, tta, size)
    return from_geometry(_geometry(image, recipe, tta, size), recipe, tta, size)


# --- model input --------------------------------------------------------------------------------------------------

def to_input(batch_nhwc: np.ndarray, recipe: Recipe, spec: TensorSpec) -> np.ndarray:
    """Lay out (NCHW/NHWC) and quantize a batch of preprocess() outputs for the model input tensor `spec`."""
    batch = np.asarray(batch_nhwc)
    if batch.ndim != 4:
        raise RecipeError(f"recipe {recipe.name!r}: expected a NHWC batch (4 dimensions); got shape {batch.shape}")
    batch = _input_values(batch, recipe, spec)
    if recipe.layout == "NCHW":
        batch = batch.transpose(0, 3, 1, 2)
    _check_shape(batch, recipe, spec)
    return np.ascontiguousarray(batch)


def inputs_from_geometry(images_u8: np.ndarray, recipe: Recipe, spec: TensorSpec) -> np.ndarray:
    """to_input() of the normalize()d images, for an (N, size, size, 3) uint8 RGB stack of geometry() outputs.

    Each input value depends only on its pixel's uint8 level and channel (normalisation and quantization are
    per-value), so one 256-entry table per channel, holding to_input(normalize()) of every level, gives exactly the
    same values; OpenCV applies it and writes the model's layout directly, without float temporaries.
    """
    images = np.ascontiguousarray(images_u8)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[3] != 3:
        raise ValueError(f"expected an (N, H, W, 3) uint8 stack; got {images.dtype} {images.shape}")
    n, height, width, _ = images.shape
    table = _input_table(recipe, np.dtype(spec.dtype), spec.scale, spec.zero_point)
    if recipe.layout == "NCHW":
        batch = np.empty((n, 3, height, width), dtype=table.dtype)
        planes = list(np.empty((3, height, width), dtype=np.uint8))  # reused: a fresh split per image costs 2x
        for image, planes_out in zip(images, batch):
            cv2.split(image, planes)
            for channel, source in enumerate(table.sources):
                cv2.LUT(planes[source], table.columns[channel], dst=planes_out[channel])
    elif table.identity:
        batch = images  # raw uint8 pixels in RGB order: nothing to do
    else:
        rows = images.reshape(n * height, width, 3)
        if table.sources != (0, 1, 2):
            rows = cv2.cvtColor(rows, cv2.COLOR_RGB2BGR)
        batch = cv2.LUT(rows, table.interleaved).reshape(n, height, width, 3)
    _check_shape(batch, recipe, spec)
    return batch


@dataclass(frozen=True)
class _InputTable:
    """to_input(normalize(level)) for every uint8 level, per input channel, in the forms OpenCV takes."""

    dtype: np.dtype
    sources: tuple[int, int, int]  # the RGB channel that feeds each input channel (reversed for BGR recipes)
    columns: tuple[np.ndarray, ...]  # per input channel, (256,) contiguous
    interleaved: np.ndarray  # (1, 256, 3)
    identity: bool  # uint8 levels unchanged in RGB order: the images are the input


@functools.lru_cache(maxsize=None)
def _input_table(recipe: Recipe, dtype: np.dtype, scale: float | None, zero_point: int | None) -> _InputTable:
    from evaluator.runtimes.base import TensorSpec

    spec = TensorSpec("table", (None, 256, 3), dtype, scale, zero_point)
    # _LEVELS has equal levels in every channel, so it is already in the recipe's colour order
    table = _input_values(script_values(_LEVELS, recipe, dtype)[None], recipe, spec)[0, 0]  # (256, 3)
    sources = (2, 1, 0) if recipe.colour == "BGR" else (0, 1, 2)
    identity = (table.dtype == np.uint8 and sources == (0, 1, 2)
                and bool((table == np.arange(256, dtype=np.uint8)[:, None]).all()))
    columns = tuple(np.ascontiguousarray(table[:, channel]) for channel in range(3))
    return _InputTable(table.dtype, sources, columns, np.ascontiguousarray(table[None]), identity)


def _input_values(batch: np.ndarray, recipe: Recipe, spec: TensorSpec) -> np.ndarray:
    dtype = np.dtype(spec.dtype)
    if dtype in (np.uint8, np.int8):
        if recipe.cast_before_quantize and batch.dtype.kind == "f":
            batch = batch.astype(dtype)  # load_image's astype: truncation toward zero
        return _quantize(batch, recipe, spec, dtype)
    if dtype.kind == "f":
        return batch.astype(dtype, copy=False)
    raise RecipeError(f"recipe {recipe.name!r}: input tensor {spec.name!r} has dtype {dtype}; "
                      "only float, uint8 and int8 inputs are supported")


def _quantize(batch: np.ndarray, recipe: Recipe, spec: TensorSpec, dtype: np.dtype) -> np.ndarray:
    if recipe.quantize == "raw-uint8":
        if dtype != np.uint8 or batch.dtype != np.uint8:
            raise RecipeError(f"recipe {recipe.name!r} feeds raw uint8 pixels, but input tensor {spec.name!r} "
                              f"is {dtype} and the batch is {batch.dtype}")
        return batch
    if spec.scale is None or spec.zero_point is None or not spec.scale > 0:
        raise RecipeError(f"recipe {recipe.name!r}: input tensor {spec.name!r} is {dtype} but has no usable "
                          f"quantization (scale={spec.scale!r}, zero_point={spec.zero_point!r})")
    # REFERENCE §4.3: q = x / scale + zero_point, clipped to the dtype's range, then astype (truncation). The
    # model's scale is a float32 array and its zero point an int32 array: numpy divides integer and float32 inputs
    # in float32 and float64 inputs in float64, then adds the zero point in float64, as the scripts do.
    limits = np.iinfo(dtype)
    q = batch / np.asarray([spec.scale], dtype=np.float32) + np.asarray([spec.zero_point], dtype=np.int32)
    q = np.clip(q, limits.min, limits.max)
    if recipe.quantize_rounding == "round":
        q = np.rint(q)
    return q.astype(dtype)


def _check_shape(batch: np.ndarray, recipe: Recipe, spec: TensorSpec) -> None:
    expected = tuple(spec.shape)[1:]
    got = batch.shape[1:]
    if len(expected) == 3 and any(e is not None and e > 0 and e != g for e, g in zip(expected, got)):
        raise RecipeError(f"recipe {recipe.name!r} ({recipe.layout}) gives input shape {got} but tensor "
                          f"{spec.name!r} expects {expected}: wrong layout or input size for this model?")


# --- checks and descriptions --------------------------------------------------------------------------------------

def _checked_image(image: np.ndarray) -> np.ndarray:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3 \
            or image.shape[0] < 1 or image.shape[1] < 1:
        got = f"{image.dtype} array of shape {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
        raise ValueError(f"expected an HxWx3 uint8 RGB image; got {got}")
    return image


def _checked_size(recipe: Recipe, size: int | None) -> int:
    if size is None:
        return recipe.input_size
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
        raise RecipeError(f"recipe {recipe.name!r}: input size must be a positive integer; got {size!r}")
    return int(size)


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
        return f"{before}short side to {_short_side(recipe, tta, size)} ({how}), centre crop {size}"
    if fraction == 1.0:
        return f"{before}whole image stretched to {size}x{size} ({how}; keep-aspect = no central crop)"
    return f"{before}central {fraction:.1%} crop, stretched to {size}x{size} ({how})"


def _describe_values(recipe: Recipe) -> str:
    if recipe.quantize == "raw-uint8":
        return "raw uint8 pixels"
    term = "x" if recipe.scale == 1.0 else f"x/{1.0 / recipe.scale:g}"
    mean = recipe.mean
    if (mean, recipe.std) == (_IMAGENET_MEAN, _IMAGENET_STD):
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
