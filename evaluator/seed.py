"""The seed README's commands, `prediction.py -m MODEL` and `accuracy.py -m MODEL`, over the library.

Flags and output places follow ailia-models-measurement (REFERENCE.md 1.2-1.3): predictions go to
evaluation/<m>/<name>/predictions/<image id>.txt, results to results/<m>/<name>/results.txt.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from . import cli

SEED_TTA = {"none": "none", "1_crop": "1-crop", "keep_aspect": "keep-aspect"}
# The script directory names of the ailia-models repositories and the catalogue model they run.
SEED_ONNX_ARCH = {"resnet50.opt": "resnet50_chainer", "resnet50_pytorch": "resnet50_pytorch"}
SEED_TFLITE_MODEL = {"resnet50": "resnet50_keras", "mobilenetv1": "mobilenetv1_keras",
                     "mobilenetv2": "mobilenetv2_keras", "efficientnet_lite": "efficientnetlite0_keras"}


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
    from .errors import EvaluatorError, did_you_mean

    values = dict(p.split("=", 1) for p in params if "=" in p)
    words = {p for p in params if "=" not in p}
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
        name = "efficientnetlite0_torch" if model == "efficientnet_lite" and "torch" in words else SEED_TFLITE_MODEL[model]
        if "float" in words:
            precision = "float"
        elif "legacy" in words or name == "efficientnetlite0_torch":
            precision = "int8"
        else:  # the scripts' default int8 file is the 50,000-image recalibration (also `recalib` before 2022-10)
            precision = "int8-recalib"
        return SeedRun(name, precision, tta, runtime)
    return SeedRun(model, values.get("precision", ""), tta, runtime)  # a catalogue name used directly


def _seed_parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog)
    parser.add_argument("-m", "--model", default="resnet50", help="seed script name (resnet50, mobilenetv1, ...) "
                        "or a catalogue model name")
    parser.add_argument("-d", "--data", default="imagenet", help="dataset name under data/ (default imagenet)")
    parser.add_argument("--debug", action="store_true")
    return parser


def prediction_main(argv: list[str] | None = None) -> int:
    """`python3 prediction.py -m MODEL [-t] [-p KEY=VALUE ...]`."""
    parser = _seed_parser("prediction.py")
    parser.add_argument("-t", "--tflite", action="store_true", help="run the ailia-models-tflite script's model")
    parser.add_argument("-p", "--param", nargs="*", default=[], help="script parameters, e.g. a=resnet50_pytorch t=1_crop")
    args = parser.parse_args(argv)
    try:
        run = translate(args.model, args.tflite, args.param)
    except cli.EvaluatorError as exc:
        parser.exit(2, f"error: {exc}\n")
    out = Path("evaluation") / args.model / output_name(args.data, args.param, args.tflite) / "predictions"
    command = ["--debug"] if args.debug else []
    command += ["predict", "-m", run.model, "--tta", run.tta, "--runtime", run.runtime,
                "--imagenet-dir", str(Path("data") / args.data), "--write-texts", str(out)]
    if run.precision:
        command += ["--precision", run.precision]
    return cli.main(command)


def accuracy_main(argv: list[str] | None = None) -> int:
    """`python3 accuracy.py -m MODEL [-d NAME]`: score evaluation/<m>/<name>/predictions/*.txt."""
    parser = _seed_parser("accuracy.py")
    args = parser.parse_args(argv)
    name = args.data.replace("=", "_").replace(".", "_")
    predictions = Path("evaluation") / args.model / name / "predictions"
    if not predictions.is_dir():
        parser.exit(2, f"error: {predictions} not found; run `python3 prediction.py -m {args.model}` first\n")
    dataset = name.split("__", 1)[0].removesuffix("_tflite")
    results = Path("results") / args.model / name / "results.txt"
    command = ["--debug"] if args.debug else []
    command += ["accuracy", "--predictions", str(predictions), "--imagenet-dir", str(Path("data") / dataset),
                "--output", str(results)]
    return cli.main(command)
