"""TTA geometry, values and model input: decoded RGB uint8 image -> model-ready input, as a recipe says.

What a recipe is lives in evaluator/recipes.py; this module applies one. Stages, in order:

    geometry()        TTA crop / resize (and letterbox padding) on the uint8 image (see geometry_is_cacheable)
    normalize()       colour order + values: clip((x * scale - mean) / std)
    preprocess()      both for one image, in the order the reference scripts use
    to_input()        batch layout (NCHW/NHWC) and input quantization for the model's input tensor
    inputs_from_geometry()  the model input for a stack of size x size geometry() outputs, in one pass

For every recipe without normalize_before_resize, normalize(geometry(image, r, tta), r) == preprocess(image, r, tta).

Integer geometry follows the scripts exactly: `int()` truncation for resized sizes, floor division for offsets.
Values: inputs_from_geometry() reproduces each script's own numpy arithmetic (dtypes included, see
`Recipe.arithmetic` and script_values()), so every input value is bit-identical to the script's. normalize() and
preprocess() compute in float32 (the 'Caffe' scripts' own arithmetic; for "numpy" recipes equal to the script's
values up to float32 rounding, which to_input()'s quantization can turn into one step).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np

from evaluator.errors import ImageDecodeError, RecipeError
from evaluator.recipes import Recipe, check_tta, checked_size, short_side
from evaluator.runtimes.base import TensorSpec

# Largest image a recipe may create on the way to the model's input (2**25 pixels, 100 MB as uint8 RGB): a 1x300 image
# resized to a short side of 256 (76,800 x 256) passes, as in the scripts; a 1x3000 or 1x40000 one would need gigabytes.
MAX_INTERMEDIATE_PIXELS = 1 << 25


def geometry_is_cacheable(recipe: Recipe, tta: str | None = None) -> bool:
    """True when geometry() gives a size x size uint8 image from which normalize() reproduces preprocess().

    Args:
        tta: the TTA mode; None answers for every mode at once (False if any mode cannot be cached).
    """
    # these recipes resize float values; a cached uint8 resize would round differently
    return not recipe.normalize_before_resize


def geometry_key(recipe: Recipe, tta: str, size: int | None = None) -> str:
    """Text naming everything geometry() output depends on, for cache keys; equal keys give equal images."""
    check_tta(tta)
    size = checked_size(recipe, size)
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
    return _geometry(_checked_image(image_rgb_u8), recipe, tta, checked_size(recipe, size))


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
        return _short_side_crop(image, size, short_side(recipe, tta, size), recipe.resize)
    # central fraction of each side (tf.image.central_crop), then stretch to size x size
    return _resize(_central_fraction_crop(image, fraction), size, size, recipe.resize)


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
    return normalize_values(image, recipe)


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
    size = checked_size(recipe, size)
    if recipe.normalize_before_resize:
        # the ailia TFLite 'Caffe' scripts normalise and clip the full image, then resize the float32 values
        return _geometry(normalize(image, recipe), recipe, tta, size)
    return normalize(_geometry(image, recipe, tta, size), recipe)


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
    """to_input(script_values()) of an (N, size, size, 3) uint8 RGB stack of geometry() outputs: the model input of
    every recipe whose geometry is cacheable.

    Each input value depends only on its pixel's uint8 level and channel (normalisation and quantization are
    per-value), so one 256-entry table per channel, holding to_input(script_values()) of every level, gives exactly
    the same values; OpenCV applies it and writes the model's layout directly, without float temporaries.
    """
    # Worth 14.7% of a warm and 6.6% of a cold predict() run of onnxzoo_mobilenetv2_int8 (float NCHW 224 input) over
    # to_input(script_values()) per batch of 4; 0% for mobilenet_v1_025_128_quant, whose raw uint8 input is the
    # geometry itself either way. Measured in one process on the 700 fixture images, interleaved, best of 5 (issue 17).
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


_LEVELS = np.repeat(np.arange(256, dtype=np.uint8)[None, :, None], 3, axis=2)  # (1, 256, 3): every uint8 level


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


