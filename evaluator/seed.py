"""The seed's formats (REFERENCE.md 1.2-1.3, §2): its script names and -p parameters mapped to a catalogue model,
precision, TTA and runtime; its run directory names; its per-image prediction text files, one <image_id>.txt per
image with lines "label class_id score". The seed's commands over these are seed_commands.py.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import ArtifactError, EvaluatorError, did_you_mean
from .predictions import Predictions

SEED_TTA = {"none": "none", "1_crop": "1-crop", "keep_aspect": "keep-aspect"}
# The script directory names of the ailia-models repositories and the catalogue model they run.
SEED_ONNX_ARCH = {"resnet50.opt": "resnet50_chainer", "resnet50_pytorch": "resnet50_pytorch"}
SEED_TFLITE_MODEL = {"resnet50": "resnet50_keras", "mobilenetv1": "mobilenetv1_keras",
                     "mobilenetv2": "mobilenetv2_keras", "efficientnet_lite": "efficientnetlite0_keras"}
# The -p parameters each kind of script takes: key=value pairs, then bare words (REFERENCE 1.2, 4.1)
SEED_ONNX_PARAMS = ({"a": "ARCH", "t": "TTA"}, set())
SEED_TFLITE_PARAMS = ({"t": "TTA"}, {"float", "legacy", "recalib", "tflite", "torch"})
CATALOGUE_PARAMS = ({"t": "TTA", "precision": "PRECISION"}, set())


@dataclass(frozen=True)
class SeedRun:
    model: str
    precision: str
    tta: str
    runtime: str


def output_name(data: str, params: list[str], tflite: bool) -> str:
    """The seed's run directory name: `imagenet__a_resnet50_pytorch_t_1_crop`, `..._tflite` (REFERENCE 1.2)."""
    name = data if not params else data + "__" + "_".join(params).replace("=", "_").replace(".", "_")
    return name + ("_tflite" if tflite else "")


def translate(model: str, tflite: bool, params: list[str]) -> SeedRun:
    """Map the seed's script name, --tflite and -p parameters to a catalogue model, precision, TTA and runtime."""

    values = dict(p.split("=", 1) for p in params if "=" in p)
    words = {p for p in params if "=" not in p}
    if model == "resnet50" and not tflite:
        accepted = SEED_ONNX_PARAMS
    else:
        accepted = SEED_TFLITE_PARAMS if tflite else CATALOGUE_PARAMS
    unknown = [p for p in params if (p.split("=", 1)[0] not in accepted[0] if "=" in p else p not in accepted[1])]
    if unknown:
        names = [f"{key}={value}" for key, value in accepted[0].items()] + sorted(accepted[1])
        raise EvaluatorError(f"unknown -p parameter {unknown[0]!r} for {model}{' --tflite' if tflite else ''}; "
                             f"accepted: {', '.join(names)}")
    tta = SEED_TTA.get(values.get("t", "none"))
    if tta is None:
        raise EvaluatorError(did_you_mean("TTA", values["t"], SEED_TTA))
    runtime = "litert" if "tflite" in words else "auto"
    if not tflite and model == "resnet50":
        arch = values.get("a", "resnet50.opt")
        if arch not in SEED_ONNX_ARCH:
            raise EvaluatorError(did_you_mean("resnet50 arch", arch, SEED_ONNX_ARCH))
        return SeedRun(SEED_ONNX_ARCH[arch], "float", tta, runtime)
    if tflite:
        if model not in SEED_TFLITE_MODEL:
            raise EvaluatorError(did_you_mean("tflite model", model, SEED_TFLITE_MODEL))
        torch = model == "efficientnet_lite" and "torch" in words
        name = "efficientnetlite0_torch" if torch else SEED_TFLITE_MODEL[model]
        if "float" in words:
            precision = "float"
        elif "legacy" in words or name == "efficientnetlite0_torch":
            precision = "int8"
        else:  # the scripts' default int8 file is the 50,000-image recalibration (also `recalib` before 2022-10)
            precision = "int8-recalib"
        return SeedRun(name, precision, tta, runtime)
    return SeedRun(model, values.get("precision", ""), tta, runtime)  # a catalogue name used directly


# --------------------------------------------------------------------------------------------------------------------
# Per-image prediction text files


def write_prediction_texts(predictions: Predictions, directory: str | os.PathLike, class_names) -> int:
    """Write one <image_id>.txt per image in the seed format; a failed image gets an empty file (counts as a miss)."""
    directory = Path(directory)
    labels = [name.replace(" ", "_") for name in class_names]
    try:
        directory.mkdir(parents=True, exist_ok=True)
        for row, image_id in enumerate(predictions.image_ids.tolist()):
            lines = []
            for class_id, score in zip(predictions.top5_ids[row].tolist(), predictions.top5_scores[row].tolist()):
                if class_id < 0:
                    continue
                if class_id >= len(labels):
                    raise ArtifactError(f"{image_id}: class id {class_id} has no name ({len(labels)} class names)")
                lines.append(f"{labels[class_id]} {class_id} {score:f}\n")
            # 50,000 small exported files: plain writes, an fsync each would dominate the run.
            (directory / f"{image_id}.txt").write_text("".join(lines), encoding="utf-8")
    except OSError as exc:
        raise ArtifactError(f"cannot write prediction texts in {directory}: {exc.strerror or exc}") from exc
    return len(predictions)


def _text_image_id(path: Path) -> str:
    return path.name.split(".", 1)[0].removesuffix("_res")


def read_prediction_texts(directory: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read seed prediction files (*.txt, sorted) -> (image ids, top-5 class ids int32 (N, 5) padded with -1)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ArtifactError(f"{directory}: prediction directory not found")
    paths = sorted(directory.glob("*.txt"))
    image_ids = [_text_image_id(path) for path in paths]
    top5_ids = np.full((len(paths), 5), -1, dtype=np.int32)
    first_file: dict[str, Path] = {}
    for row, path in enumerate(paths):
        image_id = image_ids[row]
        if image_id in first_file:
            raise ArtifactError(f"{path}: image id {image_id} also predicted by {first_file[image_id].name}")
        first_file[image_id] = path
        top5_ids[row] = _read_prediction_text(path)
    order = np.argsort(np.asarray(image_ids, dtype=str), kind="stable")
    return np.asarray(image_ids, dtype=str)[order], top5_ids[order]


def _read_prediction_text(path: Path) -> list[int]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"cannot read {path}: {exc}") from exc
    class_ids = []
    for line_number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        tokens = line.split()
        if len(tokens) != 3:
            raise ArtifactError(f"{path}: line {line_number}: expected 'label class_id score', got {line!r}")
        try:
            class_id = int(tokens[1])
            float(tokens[2])
        except ValueError:
            raise ArtifactError(f"{path}: line {line_number}: class id or score is not a number: {line!r}") from None
        if not 0 <= class_id < 2**31 - 1:
            raise ArtifactError(f"{path}: line {line_number}: class id {class_id} out of range")
        class_ids.append(class_id)
    if len(class_ids) > 5:
        raise ArtifactError(f"{path}: {len(class_ids)} predictions, at most 5 expected")
    return class_ids + [-1] * (5 - len(class_ids))
