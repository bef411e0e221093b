"""`python -m evaluator ...`: predict, accuracy, fetch, list, validate, report, merge, diff."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from pathlib import Path

from .errors import EvaluatorError, RuntimeUnavailable, clipped
from .locations import imagenet_dir_help
from .options import add_override_options, image_shard, non_negative_float, positive_int

EPILOG_PREDICT = """examples:
  python -m evaluator predict -m resnet50_chainer --tta 1-crop
  python -m evaluator predict -m mobilenet_v1_025_128_quant --imagenet-dir ../shared/fixtures/imagenet
  python -m evaluator predict --model-path ../shared/fixtures/models/mobilenet_v2_1.0_224_quant.tflite \\
      --recipe tf_slim_mobilenet_quant --tta 1-crop --imagenet-dir ../shared/fixtures/imagenet
"""
EPILOG_ACCURACY = """examples:
  python -m evaluator accuracy -m mobilenet_v1_025_128_quant --imagenet-dir ../shared/fixtures/imagenet
  python -m evaluator accuracy --predictions evaluation/resnet50/imagenet/predictions --imagenet-dir data/imagenet
"""
EPILOG_MERGE = """examples (shard K of 3 on machine K, then merge and judge on one machine):
  python -m evaluator predict -m mobilenet_v1_025_128_quant --shard 1/3 --artifacts-dir shard-1
  python -m evaluator merge --artifacts-dir merged shard-1 shard-2 shard-3
  python -m pytest -m regression --stored-only --artifacts-dir=merged
"""


class _Parser(argparse.ArgumentParser):
    """A usage error is one line (and exit code 2), like every other error of the command line."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


EPILOG_ADD_MODEL = """examples:
  python -m evaluator add-model my_mobilenet \\
      --model-path ../shared/fixtures/models/mobilenet_v1_0.25_128_quant.tflite --recipe tf_slim_mobilenet_quant \\
      --documented 0.395 0.644 --source "TFLite hosted models table"
  python -m evaluator add-model my_inception --model-path model.onnx --recipe resnet50_pytorch \\
      --mean 0.498 0.498 0.498 --std 0.502 0.502 0.502
"""


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    which = parser.add_argument_group("what to run")
    which.add_argument("-m", "--model", help="catalogue model name (see `python -m evaluator list`)")
    which.add_argument("--precision", help="catalogue precision (float, int8, int8-recalib, uint8); default: the first")
    which.add_argument("--model-path", type=Path, help="any ONNX/TFLite file instead of a catalogue model")
    which.add_argument("--recipe", help="preprocessing recipe name (required with --model-path)")
    which.add_argument("--tta", default="1-crop", help="none, keep-aspect or 1-crop (default: 1-crop)")
    which.add_argument("--runtime", default="auto",
                       help="ailia, onnxruntime, litert, or auto (ailia where licensed, else by file format)")
    add_override_options(parser.add_argument_group(
        "recipe overrides (applied on top of the recipe; README \"Recipe fields\")"))
    data = parser.add_argument_group("where")
    data.add_argument("--imagenet-dir", type=Path, help=imagenet_dir_help())
    data.add_argument("--models-dir", type=Path, help="model files (default: $EVALUATOR_MODELS_DIR or data/models)")
    data.add_argument("--artifacts-dir", type=Path,
                      help="predictions and caches (default: $EVALUATOR_ARTIFACTS_DIR or artifacts)")
    data.add_argument("--baselines", type=Path, help="baselines.yaml (default: the repository's)")
    data.add_argument("--limit", type=positive_int, help="evaluate a deterministic class-stratified subset of N images")
    speed = parser.add_argument_group("speed (never changes results)")
    speed.add_argument("--workers", type=positive_int, help="worker threads (default: the cores available)")
    speed.add_argument("--batch-size", type=positive_int, default=4,
                       help="images per model call (default 4: larger batches leave the CPU caches and run slower)")
    speed.add_argument("--chunk-size", type=positive_int, default=32, help="images per resumable, cached chunk")
    speed.add_argument("--checkpoint-s", type=non_negative_float, default=1.0,
                       help="write finished chunks to disk this often (default 1 s; 0: every chunk): a killed run "
                            "loses at most this much work and the chunks in flight")
    speed.add_argument("--no-decode-cache", action="store_true", help="do not cache decoded, cropped images")
    speed.add_argument("--recompute", action="store_true", help="ignore stored predictions and run again")
    checks = parser.add_argument_group("checks")
    checks.add_argument("--verify-data", action="store_true",
                        help="check each image's content hash against the one recorded when it was first decoded "
                             "(reads every image; catches a changed copy that kept size and mtime)")


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser with one subcommand per stage."""
    parser = _Parser(prog="python -m evaluator", description=__doc__)
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    loudness = parser.add_mutually_exclusive_group()
    loudness.add_argument("-v", "--verbose", action="store_true", help="also log debugging messages")
    loudness.add_argument("-q", "--quiet", action="store_true", help="log warnings and errors only")
    sub = parser.add_subparsers(dest="command", required=True)
    fmt = argparse.RawDescriptionHelpFormatter

    p = sub.add_parser("predict", help="predict top-5 for every image", epilog=EPILOG_PREDICT, formatter_class=fmt)
    _add_run_options(p)
    p.add_argument("--write-texts", type=Path, help="also write the seed's per-image text files to this directory")
    p.add_argument("--shard", metavar="K/N", type=image_shard,
                   help="predict only image shard K of N (every N-th image in id order), for `merge` to join")
    p.add_argument("--json", action="store_true", help="print the numbers (n, intervals, recipe) as one JSON document")

    p = sub.add_parser("accuracy", help="TOP1/TOP5 of stored predictions", epilog=EPILOG_ACCURACY, formatter_class=fmt)
    _add_run_options(p)
    p.add_argument("--predictions", type=Path,
                   help="a predictions artifact directory or a directory of the seed's per-image .txt files")
    p.add_argument("--output", type=Path, help="results file to write (default: results.txt beside the predictions)")
    p.add_argument("--json", action="store_true", help="print the numbers (n, intervals, recipe) as one JSON document")

    p = sub.add_parser("add-model", help="inspect a model file and add its catalogue entry to baselines.yaml",
                       epilog=EPILOG_ADD_MODEL, formatter_class=fmt)
    p.add_argument("name", help="the new catalogue name (letters, digits, _ . -)")
    p.add_argument("--model-path", type=Path, required=True, help="the ONNX or TFLite file")
    p.add_argument("--recipe", required=True, help="a built-in or declared recipe (`python -m evaluator list`)")
    add_override_options(p.add_argument_group(
        "recipe overrides (declared as a recipe named after the model, with `base:` the --recipe)"))
    p.add_argument("--precision", help="precision name (default: float, uint8 or int8 from the input dtype)")
    p.add_argument("--summary", help="one line describing the model")
    p.add_argument("--url", help="https download URL of the file (default: none)")
    p.add_argument("--documented", type=float, nargs=2, metavar=("TOP1", "TOP5"),
                   help="published accuracies on the 50,000 images (fractions); creates a regression case")
    p.add_argument("--source", help="with --documented: where the number comes from (a sources name or a text)")
    p.add_argument("--tta", default="1-crop", help="with --documented: the TTA mode of the number (default 1-crop)")
    p.add_argument("--baselines", type=Path)
    p.add_argument("--models-dir", type=Path, help="where a file from elsewhere is copied (default: data/models)")

    p = sub.add_parser("fetch", help="download catalogue model files and check their sha256",
                       epilog="examples:\n  python -m evaluator fetch -m resnet50_chainer\n  python -m evaluator fetch",
                       formatter_class=fmt)
    p.add_argument("-m", "--model", help="one catalogue model (default: all with a URL)")
    p.add_argument("--precision", help="one precision (default: all)")
    p.add_argument("--models-dir", type=Path)
    p.add_argument("--baselines", type=Path)

    p = sub.add_parser("list", help="catalogue models, recipes and regression cases",
                       epilog="examples:\n  python -m evaluator list\n  python -m evaluator list --json",
                       formatter_class=fmt)
    p.add_argument("--baselines", type=Path)
    p.add_argument("--models-dir", type=Path, help="where model files are looked for (default: data/models)")
    p.add_argument("--json", action="store_true",
                   help="one JSON document: models with each file's presence and sha256 check, recipes, cases")

    p = sub.add_parser("report", help="the report of the last pytest run again (report.md, report.html, plots), or "
                                      "one report of several jobs' results (--merge)",
                       epilog="examples:\n  python -m evaluator report\n"
                              "  python -m evaluator report --history      # trend.png: every case over the nights\n"
                              "  python -m evaluator report --results artifacts/report/results.json --out /tmp/report\n"
                              "  python -m evaluator report --merge jobs/cases-1 jobs/cases-2 --out report",
                       formatter_class=fmt)
    p.add_argument("--results", type=Path,
                   help="results.json written by pytest (default: artifacts/report/results.json)")
    p.add_argument("--merge", type=Path, nargs="+", metavar="DIR",
                   help="combine the results.json of several jobs (their report or artifacts directories) into one "
                        "report.md, report.html, plots, results.json and junit.xml, with one history.csv row per case")
    p.add_argument("--out", type=Path, help="output directory (default: beside the results; with --merge: "
                                            "artifacts/report)")
    p.add_argument("--history", action="store_true", help="only the trend plot of history.csv (TOP1/TOP5 per case "
                   "over the sessions, with the expected value and band)")

    p = sub.add_parser("merge", help="join image shards and other jobs' predictions into one artifacts directory",
                       epilog=EPILOG_MERGE, formatter_class=fmt)
    p.add_argument("--artifacts-dir", type=Path, required=True, help="output artifacts directory (OUT)")
    p.add_argument("inputs", type=Path, nargs="+", metavar="DIR",
                   help="artifacts directories of the jobs (or directories holding them, or artifact directories)")

    p = sub.add_parser("diff", help="image-by-image comparison of two runs (gained, lost, McNemar p, classes)",
                       epilog="examples:\n"
                              "  python -m evaluator diff artifacts/predictions/RUN_A artifacts/predictions/RUN_B\n"
                              "  python -m evaluator diff baselines/CASE-FINGERPRINT.csv.gz artifacts/predictions/RUN",
                       formatter_class=fmt)
    p.add_argument("baseline", type=Path, help="predictions artifact directory, predictions.csv or a .csv.gz record")
    p.add_argument("candidate", type=Path, help="the same, for the run compared with the baseline")
    p.add_argument("--imagenet-dir", type=Path, help="only for class names in the output")
    p.add_argument("--classes", type=positive_int, default=10, help="how many most-changed classes to list")

    p = sub.add_parser("validate", help="check baselines.yaml (its JSON Schema, then names and references; one line "
                                        "per problem, exit 2) and the ImageNet directory before a long run",
                       epilog="examples:\n  python -m evaluator validate --imagenet-dir ../shared/fixtures/imagenet",
                       formatter_class=fmt)
    p.add_argument("--baselines", type=Path)
    p.add_argument("--imagenet-dir", type=Path, help=imagenet_dir_help())
    p = sub.add_parser("cache", help="size of the decode cache; --max-gb deletes least recently used geometries",
                       epilog="examples:\n  python -m evaluator cache\n  python -m evaluator cache --max-gb 20",
                       formatter_class=fmt)
    p.add_argument("--artifacts-dir", type=Path, help="default: $EVALUATOR_ARTIFACTS_DIR or artifacts")
    p.add_argument("--max-gb", type=non_negative_float,
                   help="delete whole geometries, least recently used first, until the cache holds at most this")
    for subparser in sub.choices.values():  # --debug, -v and -q also work after the subcommand
        subparser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
        loudness = subparser.add_mutually_exclusive_group()
        loudness.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                              help="also log debugging messages")
        loudness.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                              help="log warnings and errors only")
    return parser

# Each command lives in the module of its kind and is imported when it runs: the commands need numpy, OpenCV or
# the runtimes, which `--help` and a usage error do not (imported at the top, they would cost `--help` ~0.3 s).
COMMANDS = {
    "predict": "cli_run:cmd_predict", "accuracy": "cli_run:cmd_accuracy",
    "list": "cli_catalogue:cmd_list", "validate": "cli_catalogue:cmd_validate",
    "add-model": "cli_models:cmd_add_model", "fetch": "cli_models:cmd_fetch",
    "report": "cli_artifacts:cmd_report", "diff": "cli_artifacts:cmd_diff", "cache": "cli_artifacts:cmd_cache",
    "merge": "cli_artifacts:cmd_merge",
}


def command(name: str):
    """The function that runs a subcommand (COMMANDS)."""
    module, function = COMMANDS[name].split(":")
    return getattr(importlib.import_module(f"{__package__}.{module}"), function)


def configure_logging(verbose: bool = False, quiet: bool = False) -> None:
    """The evaluator's own messages (e.g. fetch's resumed downloads) at INFO on stderr, DEBUG with -v, WARNING with
    -q; other libraries' loggers stay at WARNING. A handler already on the root logger (pytest's) is kept."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger(__package__).setLevel(logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO)


def main(argv: list[str] | None = None) -> int:
    """Entry point: map flags to library calls; user errors print one line, not a traceback."""
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    for arg in argv:
        # argparse turns `--option=--` into an empty list instead of refusing it; refuse it like any other bad value
        if arg.startswith("--") and arg.endswith("=--"):
            parser.error(f"argument {arg[:-3]}: expected a value, got '--'")
    args = parser.parse_args(argv)
    configure_logging(verbose=args.verbose, quiet=args.quiet)
    try:
        return command(args.command)(args)
    except RuntimeUnavailable as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 3
    except EvaluatorError as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished chunks are kept; run the same command again to resume", file=sys.stderr)
        return 130
    except OSError as exc:  # a path the system refuses (a 5,000-character name, a full disk) outside our checks
        if args.debug:
            raise
        where = f"{clipped(str(exc.filename), 200)}: " if exc.filename else ""
        print(f"error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
