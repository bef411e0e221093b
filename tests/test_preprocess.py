"""Tests for evaluator/preprocess.py: exact integer geometry, values per recipe, ordering, quantization, errors."""

import dataclasses

import cv2
import numpy as np
import pytest
from PIL import Image

from evaluator.dataset import IMAGE_SUBDIR
from evaluator.errors import RecipeError
from evaluator.locations import fixtures_dir
from evaluator.preprocess import (
    geometry,
    geometry_is_cacheable,
    geometry_key,
    inputs_from_geometry,
    normalize,
    preprocess,
    script_values,
    to_input,
)
from evaluator.recipes import RECIPES, TTA_MODES, Recipe, get_recipe
from evaluator.runtimes.base import TensorSpec

CAFFE_MEAN_BGR = np.array([103.939, 116.779, 123.68], dtype=np.float32)


def random_image(height, width, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def coordinate_image(height, width):
    """Pixel (y, x) holds (y % 256, x % 256, x // 256): a crop box can be read back from any output pixel."""
    rows, cols = np.mgrid[0:height, 0:width]
    return np.stack([rows % 256, cols % 256, cols // 256], axis=-1).astype(np.uint8)


def cv2_resize(image, width, height):
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)


# --- short-side geometry (REFERENCE §3.3) --------------------------------------------------------------------------

# (H, W, tta, size) -> resized (width, height) and crop box (top, left), worked out by hand from
# R = int(size / fraction); H < W: (int(W*R/H), R) else (R, int(H*R/W)); offsets (new - size) // 2.
SHORT_SIDE_CASES = [
    (375, 500, "1-crop", 224, (341, 256), (16, 58)),  # landscape: 500*256/375 = 341.33
    (500, 375, "1-crop", 224, (256, 341), (58, 16)),  # portrait
    (300, 300, "1-crop", 224, (256, 256), (16, 16)),  # square takes the H >= W branch
    (333, 517, "1-crop", 224, (397, 256), (16, 86)),  # odd sizes: 517*256/333 = 397.45
    (517, 333, "1-crop", 224, (256, 397), (86, 16)),
    (1, 3, "1-crop", 224, (768, 256), (16, 272)),  # a 1-pixel-high strip
    (7, 2, "1-crop", 224, (256, 896), (336, 16)),
    (375, 500, "keep-aspect", 224, (298, 224), (0, 37)),  # 500*224/375 = 298.67
    (500, 375, "keep-aspect", 224, (224, 298), (37, 0)),
    (333, 517, "keep-aspect", 224, (347, 224), (0, 61)),  # 517*224/333 = 347.77
    (375, 500, "1-crop", 128, (194, 146), (9, 33)),  # R = int(128/0.875) = 146
    (500, 375, "1-crop", 160, (182, 242), (41, 11)),  # R = int(160/0.875) = 182
    (375, 500, "keep-aspect", 160, (213, 160), (0, 26)),
]


@pytest.mark.parametrize("height, width, tta, size, resized, box", SHORT_SIDE_CASES)
def test_short_side_geometry_is_exact(height, width, tta, size, resized, box):
    image = random_image(height, width)
    out = geometry(image, get_recipe("resnet50_pytorch"), tta, size)
    top, left = box
    expected = cv2_resize(image, *resized)[top:top + size, left:left + size]
    assert out.shape == (size, size, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, expected)


def test_short_side_crop_box_read_back_from_coordinates():
    # short side already 256: the resize is the identity, so the output pixels name their source coordinates
    image = coordinate_image(256, 400)
    out = geometry(image, get_recipe("resnet50_chainer"), "1-crop")
    assert tuple(out[0, 0]) == (16, 88, 0)  # rows [16, 240), cols [(400-224)//2, +224)
    assert tuple(out[-1, -1]) == (239, 311 % 256, 1)
    portrait = geometry(coordinate_image(300, 224), get_recipe("resnet50_chainer"), "keep-aspect")
    assert tuple(portrait[0, 0]) == (38, 0, 0) and tuple(portrait[-1, -1]) == (261 % 256, 223, 0)


def test_short_side_offsets_differ_from_rounding_to_nearest():
    # 341 - 224 = 117: floor division gives 58 where round(58.5) in other libraries could give 58 or 59;
    # the crop must start at 58 exactly
    image = random_image(375, 500, seed=3)
    out = geometry(image, get_recipe("resnet50_pytorch"), "1-crop")
    shifted = cv2_resize(image, 341, 256)[16:240, 59:283]
    assert not np.array_equal(out, shifted)


def test_size_defaults_to_recipe_input_size_and_rejects_nonsense():
    recipe = get_recipe("mobilenet_keras")
    assert geometry(random_image(50, 60), recipe, "1-crop").shape == (224, 224, 3)
    with pytest.raises(RecipeError, match="input size must be a positive integer"):
        geometry(random_image(50, 60), recipe, "1-crop", size=0)


# --- stretch and letterbox ------------------------------------------------------------------------------------------

def test_stretch_none_ignores_aspect():
    image = random_image(375, 500)
    out = geometry(image, get_recipe("resnet50_pytorch"), "none")
    np.testing.assert_array_equal(out, cv2_resize(image, 224, 224))


@pytest.mark.parametrize("height, width, new_hw, pad_top_left", [
    (499, 333, (223, 149), (0, 37)),  # float64 rounding: 499 / (499/224) = 223.99999 -> 223 (REFERENCE §9.4)
    (375, 500, (168, 224), (28, 0)),
    (500, 375, (224, 168), (0, 28)),
    (300, 300, (224, 224), (0, 0)),
])
def test_letterbox_size_and_black_padding_before_normalisation(height, width, new_hw, pad_top_left):
    recipe = get_recipe("mobilenet_keras")
    image = random_image(height, width)
    padded = geometry(image, recipe, "none")
    new_h, new_w = new_hw
    top, left = pad_top_left
    assert padded.shape == (224, 224, 3) and padded.dtype == np.uint8
    np.testing.assert_array_equal(padded[top:top + new_h, left:left + new_w], cv2_resize(image, new_w, new_h))
    padding = np.ones((224, 224), bool)
    padding[top:top + new_h, left:left + new_w] = False
    assert padding.sum() == 224 * 224 - new_h * new_w
    assert np.all(padded[padding] == 0)  # black uint8 pixels, as the script's copyMakeBorder pads load_image's uint8
    out = preprocess(image, recipe, "none")
    assert out.shape == (224, 224, 3) and out.dtype == np.float32
    np.testing.assert_array_equal(out, normalize(padded, recipe))
    assert np.all(out[padding] == -1.0)  # x/127.5 - 1 of a black pixel


def test_letterbox_padding_is_black_for_uint8_scripts_and_zero_for_caffe():
    white = np.full((499, 333, 3), 255, np.uint8)
    # 'None'-loaded scripts pad black uint8 pixels, normalised afterwards: -1, or -mean/std for the torch recipe
    assert np.all(preprocess(white, get_recipe("mobilenet_keras"), "none")[:, :37] == -1.0)
    torch_pad = preprocess(white, get_recipe("efficientnetlite0_torch"), "none")[0, 0]
    np.testing.assert_allclose(torch_pad, -np.array([0.485, 0.456, 0.406]) / np.array([0.229, 0.224, 0.225]), rtol=1e-6)
    # 'Caffe' normalises before resizing: its padding is 0 in the normalised domain (the mean colour)
    caffe = preprocess(white, get_recipe("resnet50_keras"), "none")
    assert np.all(caffe[:, :37] == 0.0) and np.all(caffe[:, 37 + 149:] == 0.0) and np.all(caffe[223:] == 0.0)
    assert np.all(caffe[:223, 37:37 + 149] > 100)
    raw = preprocess(white - 248, get_recipe("mobilenetv2_keras_legacy"), "none")
    assert raw[0, 0].tolist() == [0.0, 0.0, 0.0] and raw[0, 40].tolist() == [7.0, 7.0, 7.0]


def test_normalize_of_geometry_reproduces_preprocess():
    image = random_image(499, 333, seed=5)
    for name, recipe in RECIPES.items():
        if recipe.normalize_before_resize:
            continue
        for tta in TTA_MODES:
            cached = geometry(image, recipe, tta, 192)
            assert (cached.shape == (192, 192, 3)) == geometry_is_cacheable(recipe, tta), (name, tta)
            np.testing.assert_array_equal(normalize(cached, recipe), preprocess(image, recipe, tta, 192),
                                          err_msg=f"{name} {tta}")


# --- central fraction (tf.image.central_crop) -----------------------------------------------------------------------

@pytest.mark.parametrize("height, width, rows, cols", [
    (375, 500, (23, 352), (31, 469)),  # (375 - 328.125)/2 = 23.44 -> 23, size 375 - 46 = 329
    (333, 517, (20, 313), (32, 485)),  # (333 - 291.375)/2 = 20.81 -> 20; (517 - 452.375)/2 = 32.31 -> 32
    (256, 300, (16, 240), (18, 282)),  # (300 - 262.5)/2 = 18.75 -> 18, size 264
])
def test_central_fraction_crop_box(height, width, rows, cols):
    image = random_image(height, width, seed=1)
    recipe = get_recipe("tf_slim_mobilenet_quant")
    for size in (128, 160, 224):
        expected = cv2_resize(image[rows[0]:rows[1], cols[0]:cols[1]], size, size)
        np.testing.assert_array_equal(geometry(image, recipe, "1-crop", size), expected)


def test_central_fraction_read_back_and_keep_aspect_means_no_crop():
    recipe = get_recipe("tf_slim_mobilenet_quant")
    out = geometry(coordinate_image(256, 256), recipe, "1-crop")  # crop 224 of 256: identity resize
    assert tuple(out[0, 0]) == (16, 16, 0) and tuple(out[-1, -1]) == (239, 239, 0)
    image = random_image(375, 500)
    whole = cv2_resize(image, 160, 160)
    np.testing.assert_array_equal(geometry(image, recipe, "keep-aspect", 160), whole)
    np.testing.assert_array_equal(geometry(image, recipe, "none", 160), whole)


# --- PIL resize -----------------------------------------------------------------------------------------------------

def test_pil_recipe_resizes_with_antialiasing():
    image = random_image(375, 500, seed=2)
    out = geometry(image, get_recipe("onnx_zoo_mobilenetv2"), "1-crop")
    expected = np.asarray(Image.fromarray(image).resize((341, 256), Image.Resampling.BILINEAR))[16:240, 58:282]
    np.testing.assert_array_equal(out, expected)
    assert not np.array_equal(out, cv2_resize(image, 341, 256)[16:240, 58:282])


# --- values ---------------------------------------------------------------------------------------------------------

PIXEL_RGB = (255, 0, 128)
IMAGENET_VALUES = [(1 - 0.485) / 0.229, (0 - 0.456) / 0.224, (128 / 255 - 0.406) / 0.225]
CAFFE_VALUES_BGR = [128 - 103.939, 0 - 116.779, 127.0]  # R: 255 - 123.68 = 131.32, clipped to 127


@pytest.mark.parametrize("name, expected", [
    ("resnet50_pytorch", IMAGENET_VALUES),
    ("onnx_zoo_mobilenetv2", IMAGENET_VALUES),
    ("efficientnetlite0_torch", IMAGENET_VALUES),
    ("resnet50_chainer", [127.0, -128.0, 0.0]),
    ("resnet50_keras", CAFFE_VALUES_BGR),
    ("efficientnetlite0_keras_legacy", CAFFE_VALUES_BGR),
    ("mobilenet_keras", [1.0, -1.0, 128 / 127.5 - 1]),
    ("efficientnetlite0_keras", [1.0, -1.0, 128 / 127.5 - 1]),
    ("mobilenetv2_keras_legacy", [255.0, 0.0, 128.0]),
    ("tf_slim_mobilenet_quant", [255, 0, 128]),
])
def test_values_of_a_known_pixel(name, expected):
    recipe = get_recipe(name)
    image = np.full((40, 60, 3), PIXEL_RGB, np.uint8)
    values = normalize(image[:2, :2], recipe)
    assert values[0, 0].tolist() == pytest.approx(expected, rel=1e-6, abs=1e-6)
    for tta in TTA_MODES:  # a uniform image keeps its values through any geometry (padding aside)
        out = preprocess(image, recipe, tta)
        assert out[112, 112].tolist() == pytest.approx(expected, rel=1e-5, abs=1e-5)
    assert values.dtype == (np.uint8 if recipe.quantize == "raw-uint8" else np.float32)


def test_values_match_the_scripts_float32_arithmetic_bit_for_bit():
    levels = np.arange(256, dtype=np.uint8).reshape(16, 16, 1).repeat(3, axis=2)
    x = levels.astype(np.float32)
    # ailia TFLite float path: astype(float32), then x / 127.5 - 1 (a division, not a reciprocal multiply)
    np.testing.assert_array_equal(normalize(levels, get_recipe("mobilenet_keras")), x / np.float32(127.5) - 1)
    # 'Caffe': uint8 - float32 mean, clipped, channels reversed to BGR
    np.testing.assert_array_equal(normalize(levels, get_recipe("resnet50_keras")),
                                  np.clip(x[..., ::-1] - CAFFE_MEAN_BGR, -128, 127))


def test_caffe_normalises_before_resizing():
    # a saturated red half beside a black half: clipping before the resize changes the blended column
    image = np.zeros((256, 320, 3), np.uint8)
    image[:, :160, 0] = 255
    recipe = get_recipe("resnet50_keras")
    bgr = image[..., ::-1].astype(np.float32)
    clipped = np.clip(bgr - CAFFE_MEAN_BGR, -128, 127)
    out = preprocess(image, recipe, "1-crop", 160)
    # size 160: R = 182, H < W: (int(320*182/256), 182) = (227, 182), crop rows [11, 171), cols [33, 193)
    expected = cv2_resize(clipped, 227, 182)[11:171, 33:193]
    np.testing.assert_array_equal(out, expected)
    resize_first = normalize(geometry(image, recipe, "1-crop", 160), recipe)
    assert not np.array_equal(out, resize_first)
    assert np.abs(out - resize_first).max() > 1.0  # the red edge column differs by several units
    assert out[..., 2].max() == 127.0


def test_geometry_is_cacheable_flags():
    caffe = {"resnet50_keras", "efficientnetlite0_keras_legacy"}
    assert {name for name, recipe in RECIPES.items() if not geometry_is_cacheable(recipe, "1-crop")} == caffe
    # the letterbox is padded in uint8, so it is a cacheable size x size image like any other geometry
    assert {name for name, recipe in RECIPES.items() if not geometry_is_cacheable(recipe, "none")} == caffe
    assert {name for name, recipe in RECIPES.items() if not geometry_is_cacheable(recipe)} == caffe


def test_geometry_key_names_what_changes_the_image():
    pytorch, mobilenet, zoo = (get_recipe(n) for n in ("resnet50_pytorch", "mobilenet_keras", "onnx_zoo_mobilenetv2"))
    assert geometry_key(pytorch, "1-crop") == "1-crop: short-side 0.875, cv2-bilinear, size 224"
    assert geometry_key(pytorch, "1-crop") == geometry_key(mobilenet, "1-crop")  # values differ, geometry does not
    assert geometry_key(pytorch, "none") != geometry_key(mobilenet, "none")  # stretch vs letterbox
    assert geometry_key(pytorch, "1-crop") != geometry_key(zoo, "1-crop")  # OpenCV vs PIL
    assert geometry_key(pytorch, "1-crop", 160) != geometry_key(pytorch, "1-crop")
    assert geometry_key(pytorch, "keep-aspect") != geometry_key(pytorch, "1-crop")


# --- to_input -------------------------------------------------------------------------------------------------------

def spec(dtype, shape=(None, 1, 1, 1), scale=None, zero_point=None, name="input_1"):
    return TensorSpec(name=name, shape=shape, dtype=np.dtype(dtype), scale=scale, zero_point=zero_point)


@pytest.mark.parametrize("x, dtype, zero_point, truncated, rounded", [
    (0.4995, np.uint8, 128, 191, 192),  # 63.936 + 128
    (0.999, np.int8, -1, 126, 127),  # 127.872 - 1
    (-0.999, np.int8, 0, -127, -128),  # truncation goes toward zero
    (5.0, np.int8, 0, 127, 127),  # clipped to the int8 range
    (-5.0, np.int8, 0, -128, -128),
    (-1.5, np.uint8, 128, 0, 0),  # clipped to 0
])
def test_to_input_quantizes_by_truncation(x, dtype, zero_point, truncated, rounded):
    recipe = get_recipe("mobilenet_keras")
    batch = np.full((1, 1, 1, 1), x, np.float32)
    input_spec = spec(dtype, scale=1 / 128, zero_point=zero_point)
    q = to_input(batch, recipe, input_spec)
    assert q.dtype == dtype and int(q[0, 0, 0, 0]) == truncated
    rounding = dataclasses.replace(recipe, quantize_rounding="round")
    assert int(to_input(batch, rounding, input_spec)[0, 0, 0, 0]) == rounded


def test_to_input_raw_uint8_passes_pixels_through():
    recipe = get_recipe("tf_slim_mobilenet_quant")
    batch = random_image(128, 128)[None]
    out = to_input(batch, recipe, spec(np.uint8, (1, 128, 128, 3), scale=1 / 128, zero_point=128))
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, batch)
    with pytest.raises(RecipeError, match=r"tf_slim_mobilenet_quant.*'input_1'.*int8"):
        to_input(batch, recipe, spec(np.int8, (1, 128, 128, 3), scale=1 / 128, zero_point=0))


def test_to_input_transposes_nchw_and_casts_float():
    recipe = get_recipe("resnet50_pytorch")
    batch = np.random.default_rng(0).normal(size=(2, 5, 7, 3))  # float64 in, float32 out
    out = to_input(batch, recipe, spec(np.float32, (None, 3, 5, 7)))
    assert out.shape == (2, 3, 5, 7) and out.dtype == np.float32 and out.flags.c_contiguous
    assert out[1, 2, 4, 6] == np.float32(batch[1, 4, 6, 2])
    with pytest.raises(RecipeError, match="wrong layout"):
        to_input(batch, get_recipe("mobilenet_keras"), spec(np.float32, (None, 3, 5, 7)))


def test_to_input_without_quantization_parameters_names_recipe_and_tensor():
    with pytest.raises(RecipeError, match=r"resnet50_keras.*'serving_default_input'.*scale=None"):
        to_input(np.zeros((1, 2, 2, 3), np.float32), get_recipe("resnet50_keras"),
                 spec(np.int8, (1, 2, 2, 3), name="serving_default_input"))


INPUT_TENSORS = [(np.float32, None, None), (np.float16, None, None), (np.uint8, 1 / 128, 128), (np.int8, 0.0186, -14)]


@pytest.mark.parametrize("name", sorted(n for n, r in RECIPES.items() if not r.normalize_before_resize))
@pytest.mark.parametrize("colour", ["RGB", "BGR"])
def test_inputs_from_geometry_equal_to_input_of_normalize(name, colour):
    recipe = dataclasses.replace(get_recipe(name), colour=colour)
    images = np.random.default_rng(0).integers(0, 256, (3, 6, 6, 3), dtype=np.uint8)
    tensors = [(np.uint8, 1 / 128, 128)] if recipe.quantize == "raw-uint8" else INPUT_TENSORS
    shape = (None, 3, 6, 6) if recipe.layout == "NCHW" else (None, 6, 6, 3)
    for dtype, scale, zero_point in tensors:
        input_spec = spec(dtype, shape, scale, zero_point)
        # script_values() is the recipe's exact arithmetic (normalize() is its float32 view)
        ordered = np.ascontiguousarray(images[..., ::-1]) if colour == "BGR" else images
        expected = to_input(script_values(ordered, recipe, dtype), recipe, input_spec)
        if recipe.arithmetic == "float32":
            np.testing.assert_array_equal(
                expected, to_input(np.stack([normalize(image, recipe) for image in images]), recipe, input_spec))

        got = inputs_from_geometry(images, recipe, input_spec)

        assert got.dtype == expected.dtype and got.flags.c_contiguous, (dtype, got.dtype)
        np.testing.assert_array_equal(got, expected)


def test_inputs_from_geometry_check_the_model_shape():
    images = np.zeros((2, 6, 6, 3), np.uint8)
    with pytest.raises(RecipeError, match="wrong layout"):
        inputs_from_geometry(images, get_recipe("mobilenet_keras"), spec(np.float32, (None, 3, 6, 6)))


# --- names and recipe data ------------------------------------------------------------------------------------------

def test_unknown_recipe_suggests_the_close_name():
    with pytest.raises(RecipeError, match=r"unknown recipe 'resnet50_pytorh'; did you mean resnet50_pytorch\?"):
        get_recipe("resnet50_pytorh")


def test_unknown_tta_lists_the_modes():
    with pytest.raises(RecipeError) as error:
        preprocess(random_image(10, 10), get_recipe("resnet50_pytorch"), "1_crop")
    message = str(error.value)
    assert "did you mean 1-crop?" in message and all(mode in message for mode in TTA_MODES)


def test_recipe_catalogue_is_consistent():
    assert all(recipe.name == name for name, recipe in RECIPES.items())
    assert get_recipe("resnet50_pytorch").describe("1-crop") == (
        "short side to 256 (OpenCV bilinear), centre crop 224; RGB; (x/255 - ImageNet mean)/std; "
        "NCHW float32, trunc-quantized if the model input is integer")
    assert "letterbox" in get_recipe("mobilenet_keras").describe("none")
    assert get_recipe("tf_slim_mobilenet_quant").class_offset == 1
    assert {RECIPES[n].ailia_classifier_range for n in ("resnet50_pytorch", "resnet50_chainer")} == {
        "IMAGENET", "S_INT8"}


def test_recipe_rejects_bad_values_and_normalises_lists():
    base = get_recipe("mobilenet_keras")
    with pytest.raises(RecipeError, match=r"'mobilenet_keras': layout must be one of NCHW, NHWC; got 'NWHC'"):
        dataclasses.replace(base, layout="NWHC")
    with pytest.raises(RecipeError, match="raw-uint8 feeds pixels unchanged"):
        dataclasses.replace(base, quantize="raw-uint8")
    with pytest.raises(RecipeError, match="std must not contain 0"):
        dataclasses.replace(base, std=[1, 0, 1])
    from_yaml = dataclasses.replace(base, mean=[1, 1, 1])  # catalogue overrides arrive as lists
    assert from_yaml == base and hash(from_yaml) == hash(base)
    with pytest.raises(TypeError):
        Recipe(name="x", summary="layout is required")


def test_rejects_images_that_are_not_hxwx3_uint8():
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        preprocess(np.zeros((10, 10), np.uint8), get_recipe("resnet50_pytorch"), "none")
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        geometry(np.zeros((10, 10, 3), np.float32), get_recipe("resnet50_pytorch"), "none")


# --- one real validation image --------------------------------------------------------------------------------------

def test_every_recipe_and_tta_on_a_real_image():
    path = fixtures_dir() / "imagenet" / IMAGE_SUBDIR / "ILSVRC2012_val_00000001.JPEG"
    if not path.is_file():
        pytest.skip(f"{path} absent: put the ImageNet fixture slice there (see SOURCES.md)")
    image = cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    for name, recipe in RECIPES.items():
        for tta in TTA_MODES:
            out = preprocess(image, recipe, tta)
            assert out.shape == (224, 224, 3), (name, tta)
            assert np.isfinite(out.astype(np.float32)).all()
