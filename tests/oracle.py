"""An independent, literal transcription of the scripts' per-image path, to check the evaluator image by image.

Written from ../shared/REFERENCE.md (sections 3.2-3.3, 4.2-4.4, 2.3 and 8) and the recipes' stated protocols, and
deliberately sharing no code with evaluator/ (this module must never import it): the scripts' own OpenCV flags,
normalisation before or after resizing as each script does, numpy's dtypes as the scripts get them (a uint8 array
divided by a Python float is float64), letterbox with cv2.copyMakeBorder, astype truncation, format_input_tensor,
dequantization, and ranking. One image at a time, batch size 1, as the scripts run.

    oracle_top5(recipe_name, model, image_path, tta) -> list of 5 class ids, best first
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406])
IMAGENET_STD = np.array([0.229, 0.224, 0.225])
CAFFE_MEAN = np.asarray([103.939, 116.779, 123.68], dtype=np.float32)
TTA_NAMES = {"none": "none", "1-crop": "1_crop", "keep-aspect": "keep_aspect"}


# --- models, driven directly -------------------------------------------------------------------------------------

@dataclass
class OracleModel:
    """A model opened with its own runtime library; `input` mimics tf.lite's input_details[0]."""

    path: Path
    input_dtype: np.dtype
    input_size: int
    input_scales: np.ndarray | None  # float32 array, as quantization_parameters['scales']
    input_zero_points: np.ndarray | None  # int32 array
    invoke: object  # callable: input tensor -> float32 score vector (dequantized like get_output_tensor)


def open_tflite(path: Path) -> OracleModel:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    interpreter.allocate_tensors()
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]

    def invoke(tensor):
        interpreter.set_tensor(inp["index"], tensor)
        interpreter.invoke()
        raw = interpreter.get_tensor(out["index"])[0]
        if out["dtype"] in (np.uint8, np.int8):  # get_output_tensor (REFERENCE 4.3)
            q = out["quantization_parameters"]
            return (raw.astype(np.int32) - q["zero_points"]).astype(np.float32) * q["scales"]
        return raw

    params = inp["quantization_parameters"]
    quantized = inp["dtype"] in (np.uint8, np.int8)
    return OracleModel(path, np.dtype(inp["dtype"]), int(inp["shape"][1]),
                       params["scales"] if quantized else None, params["zero_points"] if quantized else None, invoke)


def open_onnx(path: Path) -> OracleModel:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    size = session.get_inputs()[0].shape[2]
    return OracleModel(path, np.dtype(np.float32), int(size), None, None,
                       lambda tensor: session.run(None, {name: tensor})[0][0])


def open_model(path: Path) -> OracleModel:
    return open_onnx(path) if Path(path).suffix == ".onnx" else open_tflite(path)


# --- ailia-models resnet50.py (ONNX), REFERENCE 3.2-3.3 and 8A ---------------------------------------------------

def ailia_imread(path) -> np.ndarray:
    """util/image_utils.py imread: np.fromfile + cv2.imdecode(IMREAD_UNCHANGED): no EXIF orientation."""
    return cv2.imdecode(np.fromfile(str(path), dtype=np.int8), cv2.IMREAD_UNCHANGED)


def ailia_onnx_tensor(path, tta: str, value_range: str, size: int = 224) -> np.ndarray:
    img = ailia_imread(path)
    if img.ndim == 2:
        img = img[:, :, np.newaxis]
    if img.shape[2] == 3:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2BGRA)
    elif img.shape[2] == 1:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGRA)
    if tta == "1_crop":
        img = crop_tta(img, 256, 224)
    elif tta == "keep_aspect":
        img = crop_tta(img, 224, 224)
    else:  # 'none': ailia resizes inside the SDK; REFERENCE 8A: cv2 INTER_LINEAR stretch
        img = cv2.resize(img, (size, size))
    rgb = img[:, :, 2::-1].astype(np.float32)  # drop alpha, BGR -> RGB
    if value_range == "S_INT8":
        x = rgb - np.float32(128)
    else:  # IMAGENET, in float32 buffers
        x = (rgb / np.float32(255) - IMAGENET_MEAN.astype(np.float32)) / IMAGENET_STD.astype(np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1)[np.newaxis])


def crop_tta(img: np.ndarray, resize: int, crop: int) -> np.ndarray:
    """resnet50.py's 1_crop / keep_aspect (and ailia-models-tflite's 1_crop): short side to `resize`, centre crop."""
    h, w = img.shape[:2]
    pad = (resize - crop) // 2
    if h < w:
        img = cv2.resize(img, (int(w * resize / h), resize))
        o = (img.shape[1] - crop) // 2
        img = img[pad:pad + crop, o:o + crop]
    else:
        img = cv2.resize(img, (resize, int(h * resize / w)))
        o = (img.shape[0] - crop) // 2
        img = img[o:o + crop, pad:pad + crop]
    return img.copy()


# --- ailia-models-tflite image classification, REFERENCE 4.2-4.4 and 8B ------------------------------------------

def normalize_image(image, normalize_type):
    if normalize_type == "None":
        return image
    if normalize_type == "Caffe":
        image = image - CAFFE_MEAN
        image = np.minimum(image, 127)
        image = np.maximum(image, -128)
        return image
    raise ValueError(normalize_type)


def resize_image_letterbox(img, out_size):
    """resize_image(keep_aspect_ratio=True): long side to out_size (float64 arithmetic), constant 0 padding."""
    img_size = img.shape[:2]
    scale = img_size / np.array(out_size)
    scale_long_side = np.max(scale)
    size_new = (img_size / scale_long_side).astype(int)
    size_new = np.maximum(size_new, 1)  # departure: the script crashes on a side that rounds to 0 (1 x 1000 image)
    padding = np.array(out_size) - size_new
    padding = np.stack((padding // 2, padding - padding // 2), axis=1).flatten()
    resized = cv2.resize(img, (int(size_new[1]), int(size_new[0])))
    return cv2.copyMakeBorder(resized, *[int(p) for p in padding], cv2.BORDER_CONSTANT, 0)


def tflite_load_image(path, size, normalize_type, bgr_to_rgb, output_type, tta):
    img = cv2.imread(str(path), 1)  # IMREAD_COLOR: BGR, EXIF applied, gray/CMYK to BGR
    img = normalize_image(img, normalize_type)
    if tta == "1_crop":
        img = crop_tta(img, size + 32, size)
    elif tta == "keep_aspect":  # not in the tflite scripts; the ONNX script's geometry on this path
        img = crop_tta(img, size, size)
    img = resize_image_letterbox(img, (size, size))
    if bgr_to_rgb:
        img = img[:, :, ::-1]
    return img[np.newaxis].astype(output_type)


def format_input_tensor(tensor, model: OracleModel):
    if model.input_dtype in (np.uint8, np.int8):
        input_tensor = tensor / model.input_scales + model.input_zero_points
        if model.input_dtype == np.int8:
            input_tensor = input_tensor.clip(-128, 127)
        else:
            input_tensor = input_tensor.clip(0, 255)
        return input_tensor.astype(model.input_dtype)
    return tensor.astype(np.float32)  # the float64 torch result reaches set_tensor as float32 (REFERENCE 4.4)


def tflite_script_tensor(script: str, path, tta: str, model: OracleModel) -> np.ndarray:
    """The input tensor of resnet50.py / mobilenetv1.py / mobilenetv2.py / efficientnet_lite.py for one image."""
    is_float = model.input_dtype.kind == "f"
    size = model.input_size
    if script == "caffe":  # resnet50 (all), efficientnet_lite --legacy
        data = tflite_load_image(path, size, "Caffe", False, np.float32 if is_float else np.int8, tta)
    else:
        data = tflite_load_image(path, size, "None", True, np.float32 if is_float else np.uint8, tta)
        if script == "unit":  # mobilenetv1, mobilenetv2 (not legacy), efficientnet_lite keras
            data = data / 127.5 - 1
        elif script == "torch":  # efficientnet_lite --torch
            data = (data / 255 - IMAGENET_MEAN) / IMAGENET_STD
        # "raw": mobilenetv2 --legacy feeds the 0..255 values
    return format_input_tensor(data, model)


# --- the fixture models' publishers' protocols, as the recipes state them ----------------------------------------

def tf_slim_tensor(path, tta: str, model: OracleModel) -> np.ndarray:
    """TF-slim quantized MobileNets: central crop of 87.5% (tf.image.central_crop arithmetic), bilinear resize,
    RGB uint8 as it is. keep_aspect / none: no crop, whole image stretched. EXIF ignored (tf decode_jpeg)."""
    img = cv2.imread(str(path), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    if tta == "1_crop":
        h, w = img.shape[:2]
        top, left = int((h - h * 0.875) / 2), int((w - w * 0.875) / 2)
        img = img[top:h - top, left:w - left]
    img = cv2.resize(img, (model.input_size, model.input_size))
    return np.ascontiguousarray(img[:, :, ::-1][np.newaxis]).astype(model.input_dtype)  # a float model: as floats


def onnx_zoo_tensor(path, tta: str, model: OracleModel) -> np.ndarray:
    """ONNX model zoo MobileNetV2: PIL bilinear (antialiased) resize; short side 256 (truncated), centre 224."""
    from PIL import Image

    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    image = Image.fromarray(np.ascontiguousarray(bgr[:, :, ::-1]))
    w, h = image.size
    if tta == "none":
        image = image.resize((224, 224), Image.Resampling.BILINEAR)
    else:
        short = 256 if tta == "1_crop" else 224
        new_w, new_h = (int(w * short / h), short) if h < w else (short, int(h * short / w))
        image = image.resize((new_w, new_h), Image.Resampling.BILINEAR)
        left, top = (new_w - 224) // 2, (new_h - 224) // 2
        image = image.crop((left, top, left + 224, top + 224))
    x = np.asarray(image).astype(np.float32)
    x = (x / np.float32(255) - IMAGENET_MEAN.astype(np.float32)) / IMAGENET_STD.astype(np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1)[np.newaxis])


# --- per recipe: which script, which ranking ---------------------------------------------------------------------

def _ailia(value_range):
    return lambda path, tta, model: ailia_onnx_tensor(path, tta, value_range, model.input_size)


def _tflite(script):
    return lambda path, tta, model: tflite_script_tensor(script, path, tta, model)


# recipe name -> (input tensor function, ranking, class offset)
SCRIPTS = {
    "resnet50_pytorch": (_ailia("IMAGENET"), "stable", 0),
    "resnet50_chainer": (_ailia("S_INT8"), "stable", 0),
    "resnet50_keras": (_tflite("caffe"), "argsort", 0),
    "efficientnetlite0_keras_legacy": (_tflite("caffe"), "argsort", 0),
    "mobilenet_keras": (_tflite("unit"), "argsort", 0),
    "efficientnetlite0_keras": (_tflite("unit"), "argsort", 0),
    "mobilenetv2_keras_legacy": (_tflite("raw"), "argsort", 0),
    "efficientnetlite0_torch": (_tflite("torch"), "argsort", 0),
    "tf_slim_mobilenet_quant": (tf_slim_tensor, "stable", 1),
    "onnx_zoo_mobilenetv2": (onnx_zoo_tensor, "stable", 0),
}


def rank_top5(scores: np.ndarray, ranking: str) -> list[int]:
    """"argsort": classifier_utils.get_top_scores, np.argsort (default kind), last five reversed (REFERENCE 2.3).
    "stable": descending by score, ties to the lower class id."""
    if ranking == "argsort":
        return [int(i) for i in np.argsort(scores)[-5:][::-1]]
    return [int(i) for i in np.argsort(-scores, kind="stable")[:5]]


def oracle_top5(recipe_name: str, model: OracleModel, image_path, tta: str, ranking: str | None = None) -> list[int]:
    """Top-5 class ids of one image as the recipe's script would write them (`ranking` overrides the script's)."""
    make_tensor, script_ranking, class_offset = SCRIPTS[recipe_name]
    scores = np.asarray(model.invoke(make_tensor(image_path, TTA_NAMES[tta], model)), dtype=np.float32)
    return rank_top5(scores[class_offset:], ranking or script_ranking)
