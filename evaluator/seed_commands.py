"""The seed README's commands, `prediction.py -m MODEL` and `accuracy.py -m MODEL`, over the library.

Flags and output places follow ailia-models-measurement (REFERENCE.md 1.2-1.3): predictions go to
evaluation/<m>/<name>/predictions/<image id>.txt, results to results/<m>/<name>/results.txt. accuracy.py prints and
writes exactly what the original script does (anything that parses its output keeps working); the richer output,
with n of 50,000 and intervals, is `python -m evaluator accuracy`.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

from . import cli
from .dataset import SYNSET_MAPPING, VAL_SOLUTION, read_synset_mapping, read_val_solution
from .errors import EvaluatorError
from .fileio import atomic_write_text
from .locations import default_imagenet_dir
from .seed import output_name, read_prediction_texts, translate


def _seed_parser(prog: str, data_help: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog)
    parser.add_argument("-m", "--model", default="resnet50", help="seed script name (resnet50, mobilenetv1, ...) "
                        "or a catalogue model name")
    parser.add_argument("-d", "--data", help=data_help)
    parser.add_argument("--debug", action="store_true")
    return parser


def _plain_name(parser: argparse.ArgumentParser, what: str, name: str) -> str:
    """`name` if it is one path component (so evaluation/<m>/<name> stays inside evaluation/), else exit 2."""
    if not name or name in (".", "..") or "/" in name or os.sep in name or (os.altsep and os.altsep in name):
        parser.exit(2, f"error: {what} {name!r} must be a plain name, without '/' or '..'\n")
    return name


def prediction_main(argv: list[str] | None = None) -> int:
    """`python3 prediction.py -m MODEL [-t] [-p KEY=VALUE ...]`."""
    parser = _seed_parser("prediction.py", "dataset name under data/ (default: $EVALUATOR_IMAGENET_DIR, or "
                                           "data/imagenet); it also names the output directory")
    parser.add_argument("-t", "--tflite", action="store_true", help="run the ailia-models-tflite script's model")
    parser.add_argument("-p", "--param", nargs="*", default=[],
                        help="script parameters, e.g. a=resnet50_pytorch t=1_crop")
    args = parser.parse_args(argv)
    try:
        run = translate(args.model, args.tflite, args.param)
    except EvaluatorError as exc:
        parser.exit(2, f"error: {exc}\n")
    data = _plain_name(parser, "-d", args.data or "imagenet")
    images = Path("data") / data if args.data else default_imagenet_dir()
    name = _plain_name(parser, "output name", output_name(data, args.param, args.tflite))
    out = Path("evaluation") / _plain_name(parser, "-m", args.model) / name / "predictions"
    command = ["--debug"] if args.debug else []
    command += ["predict", "-m", run.model, "--tta", run.tta, "--runtime", run.runtime,
                "--imagenet-dir", str(images), "--write-texts", str(out)]
    if run.precision:
        command += ["--precision", run.precision]
    return cli.main(command)


def accuracy_main(argv: list[str] | None = None) -> int:
    """`python3 accuracy.py -m MODEL [-d NAME | -d DIRECTORY]`: score evaluation/<m>/<name>/predictions/*.txt.

    Prints and writes byte for byte what measurement accuracy.py does (REFERENCE 1.3): the header, DATA CNT, TOP1
    and TOP5 with %f over the prediction files found; results.txt has no final newline and a literal backslash
    before TOP1 and TOP5. Labels come from $EVALUATOR_IMAGENET_DIR, or data/imagenet as in the original.
    """
    parser = _seed_parser("accuracy.py", "the name prediction.py printed (e.g. imagenet__t_1_crop), or a directory "
                                         "holding predictions/")
    args = parser.parse_args(argv)
    model = _plain_name(parser, "-m", args.model)
    # as the original: '=' and '.' become '_' (so a '..' can never climb out of evaluation/ or results/)
    data = (args.data or "imagenet").replace("=", "_").replace(".", "_")
    if os.path.isdir(data):
        header = [f"DATA DIRECTORY: {data}"]
        predictions = Path(data) / "predictions"
        results = Path("results") / model / _plain_name(parser, "-d", Path(data).name)
    else:
        header = [f"DATASETS: {data}", f"MODEL: {model}"]
        predictions = Path("evaluation") / model / _plain_name(parser, "-d", data) / "predictions"
        results = Path("results") / model / data
    if not predictions.is_dir():
        parser.exit(2, f"error: {predictions} not found; run `python3 prediction.py -m {model}` first\n")
    try:
        count, top1_hits, top5_hits = _score_texts(predictions)
    except EvaluatorError as exc:
        if args.debug:
            raise
        parser.exit(2, f"error: {exc}\n")
    lines = [f"DATA CNT : {count}", "TOP1 : %f" % (top1_hits / count), "TOP5 : %f" % (top5_hits / count)]
    print("\n".join(header + [""] + lines))
    atomic_write_text(results / "results.txt", "Accuracy\n" + lines[0] + "\n\\" + lines[1] + "\n\\" + lines[2])
    return 0


def _score_texts(predictions: Path) -> tuple[int, int, int]:
    """(files, TOP1 hits, TOP5 hits) of a directory of seed prediction files, as measurement accuracy.py counts."""
    image_ids, top5_ids = read_prediction_texts(predictions)
    if not len(image_ids):
        raise EvaluatorError(f"{predictions}: no prediction files (*.txt)")
    root = default_imagenet_dir()
    wnids, _ = read_synset_mapping(root / SYNSET_MAPPING)
    label_of = read_val_solution(root / VAL_SOLUTION, wnids)
    unknown = [i for i in image_ids if i not in label_of]
    if unknown:
        raise EvaluatorError(f"{predictions}: {unknown[0]}.txt names an image that {root / VAL_SOLUTION} "
                             "does not list")
    labels = np.asarray([label_of[i] for i in image_ids])
    hits = top5_ids == labels[:, None]
    return len(image_ids), int(hits[:, 0].sum()), int(hits.any(axis=1).sum())
