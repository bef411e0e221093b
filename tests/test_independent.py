"""The evaluator agrees with an independent, deliberately plain implementation on the real fixtures.

The independent side shares no code with the evaluator: PIL decoding and resizing, its own crop arithmetic, the
runtime libraries called directly, numpy argsort for the ranking. Different resize code moves a few images, so
the two must agree within one point, not exactly.
"""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from evaluator.locations import fixtures_dir


@pytest.fixture(scope="module")
def fixture_set():
    root = fixtures_dir()
    if not (root / "imagenet").is_dir() or not (root / "models").is_dir():
        pytest.skip(f"real fixtures absent at {root}: put ../shared/fixtures there or set EVALUATOR_FIXTURES")
    wnids = [line.split()[0] for line in (root / "imagenet" / "LOC_synset_mapping.txt").read_text().splitlines()]
    label_of = {}
    for line in (root / "imagenet" / "LOC_val_solution.csv").read_text().splitlines()[1:]:
        image_id, prediction = line.split(",", 1)
        label_of[image_id] = wnids.index(prediction.split()[0])
    paths = sorted((root / "imagenet" / "ILSVRC" / "Data" / "CLS-LOC" / "val").glob("*.JPEG"))
    return root, paths, np.array([label_of[p.stem] for p in paths])


def _resize_bilinear(image: np.ndarray, size: int) -> np.ndarray:
    """Bilinear resize with half-pixel centres and no antialias (what the recipe asks of OpenCV), in plain numpy."""
    h, w = image.shape[:2]
    ys = np.clip((np.arange(size) + 0.5) * (h / size) - 0.5, 0, None)
    xs = np.clip((np.arange(size) + 0.5) * (w / size) - 0.5, 0, None)
    y0, x0 = np.floor(ys).astype(int), np.floor(xs).astype(int)
    y1, x1 = np.minimum(y0 + 1, h - 1), np.minimum(x0 + 1, w - 1)
    fy, fx = (ys - y0)[:, None, None], (xs - x0)[None, :, None]
    img = image.astype(np.float64)
    top = img[y0][:, x0] * (1 - fx) + img[y0][:, x1] * fx
    bottom = img[y1][:, x0] * (1 - fx) + img[y1][:, x1] * fx
    return top * (1 - fy) + bottom * fy


def _top1_top5(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    top5 = np.argsort(-scores, axis=1)[:, :5]
    return float(np.mean(top5[:, 0] == labels)), float(np.mean((top5 == labels[:, None]).any(axis=1)))


def _evaluator(tmp_path, model: Path, recipe: str) -> tuple[float, float]:
    from evaluator.dataset import load_dataset
    from evaluator.evaluate import score
    from evaluator.pipeline import predict
    from evaluator.recipes import get_recipe
    from evaluator.run_spec import RunSpec
    from evaluator.runtimes import runtime_for_file

    spec = RunSpec(model_path=model, recipe=get_recipe(recipe), tta="1-crop", runtime=runtime_for_file(model))
    scores = score(predict(load_dataset(fixtures_dir() / "imagenet"), spec, tmp_path).predictions)
    return scores.top1, scores.top5


def test_tflite_mobilenet_matches_a_plain_litert_loop(fixture_set, tmp_path):
    from ai_edge_litert.interpreter import Interpreter

    root, paths, labels = fixture_set
    model = root / "models" / "mobilenet_v1_0.5_160_quant.tflite"
    interpreter = Interpreter(model_path=str(model))
    interpreter.allocate_tensors()
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    size = inp["shape"][1]
    scores = []
    for path in paths:
        image = Image.open(path).convert("RGB")
        w, h = image.size
        # tf.image.central_crop(0.875): the start is truncated, the size is what remains. Rounding the size
        # instead (one pixel less on some images) moves this 128-pixel model by 3 points on these images.
        left, top = int((w - w * 0.875) / 2), int((h - h * 0.875) / 2)
        crop = np.asarray(image.crop((left, top, w - left, h - top)))
        pixels = np.clip(np.rint(_resize_bilinear(crop, size)), 0, 255).astype(np.uint8)
        interpreter.set_tensor(inp["index"], pixels[None])
        interpreter.invoke()
        q = interpreter.get_tensor(out["index"])[0].astype(np.float32)
        scores.append(q[1:])  # index 0 is the background class
    independent = _top1_top5(np.stack(scores), labels)
    measured = _evaluator(tmp_path, model, "tf_slim_mobilenet_quant")
    assert abs(measured[0] - independent[0]) <= 0.01, (measured, independent)
    assert abs(measured[1] - independent[1]) <= 0.01, (measured, independent)


def test_onnx_mobilenet_matches_a_plain_onnxruntime_loop(fixture_set, tmp_path):
    import onnxruntime as ort

    root, paths, labels = fixture_set
    model = root / "models" / "mobilenetv2-12-int8.onnx"
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    batch, scores = [], []
    for path in paths:
        image = Image.open(path).convert("RGB")
        w, h = image.size
        scale = 256 / min(w, h)
        image = image.resize((max(256, round(w * scale)), max(256, round(h * scale))), Image.BILINEAR)
        w, h = image.size
        left, top = (w - 224) // 2, (h - 224) // 2
        x = np.asarray(image.crop((left, top, left + 224, top + 224)), dtype=np.float64) / 255
        batch.append(((x - mean) / std).transpose(2, 0, 1).astype(np.float32))
        if len(batch) == 50 or path == paths[-1]:
            scores.append(session.run(None, {name: np.stack(batch)})[0])
            batch = []
    independent = _top1_top5(np.concatenate(scores), labels)
    measured = _evaluator(tmp_path, model, "onnx_zoo_mobilenetv2")
    assert abs(measured[0] - independent[0]) <= 0.01, (measured, independent)
    assert abs(measured[1] - independent[1]) <= 0.01, (measured, independent)
