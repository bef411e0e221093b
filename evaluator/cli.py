"""`python -m evaluator ...`: predict, accuracy, fetch, list, validate, report, merge, diff."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .errors import EvaluatorError, RuntimeUnavailable

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
  python -m evaluator add-model my_mobilenet --model-path ../shared/fixtures/models/mobilenet_v1_0.25_128_quant.tflite \\
      --recipe tf_slim_mobilenet_quant --documented 0.395 0.644 --source "TFLite hosted models table"
  python -m evaluator add-model my_inception --model-path model.onnx --recipe resnet50_pytorch \\
      --mean 0.498 0.498 0.498 --std 0.502 0.502 0.502
"""


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number")
    return value


def image_shard(text: str):
    """argparse type: K/N, an image shard."""
    from .shard import parse_shard

    try:
        return parse_shard(text)
    except EvaluatorError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _non_negative_float(text: str) -> float:
    """argparse type: a finite number >= 0."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number >= 0")
    return value


def add_override_options(group) -> None:
    """--mean, --std, ... (recipes.OVERRIDE_OPTIONS) on an argparse group or a pytest option group."""
    add = getattr(group, "addoption", None) or group.add_argument
    add("--mean", type=float, nargs=3, metavar=("R", "G", "B"), help="mean per channel, in the recipe's colour order")
    add("--std", type=float, nargs=3, metavar=("R", "G", "B"), help="std per channel")
    add("--scale", type=float, help="value = (x * scale - mean) / std; e.g. 0.00392156862745098 (1/255)")
    add("--resize-short-side", type=int, metavar="N", help="1-crop: resize the short side to N, then crop")
    add("--crop-size", type=int, metavar="N", help="crop size = model input size (same field as --input-size)")
    add("--input-size", type=int, metavar="N", help="model input size (for a dynamic-size model; a fixed one must match)")
    add("--crop-fraction", type=float, metavar="F", help="1-crop keeps this central fraction (e.g. 0.875)")
    add("--interpolation", metavar="NAME",
        help="cv2-bilinear, cv2-bicubic, pil-bilinear-antialias or pil-bicubic-antialias")
    add("--channel-order", metavar="RGB|BGR", help="input channel order")
    add("--layout", metavar="NCHW|NHWC", help="input tensor layout")
    add("--class-offset", type=int, metavar="K", help="1 for 1001-output models (index 0 = background)")


def recipe_overrides(get) -> dict:
    """The override options that were given, by option name; `get(name)` reads one (args or pytest config)."""
    from .recipes import OVERRIDE_OPTIONS

    return {name: get(name) for name in OVERRIDE_OPTIONS if get(name) is not None}


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
    data.add_argument("--imagenet-dir", type=Path, help="Kaggle ImageNet root (default: $EVALUATOR_IMAGENET_DIR or data/imagenet)")
    data.add_argument("--models-dir", type=Path, help="model files (default: $EVALUATOR_MODELS_DIR or data/models)")
    data.add_argument("--artifacts-dir", type=Path, help="predictions and caches (default: $EVALUATOR_ARTIFACTS_DIR or artifacts)")
    data.add_argument("--baselines", type=Path, help="baselines.yaml (default: the repository's)")
    data.add_argument("--limit", type=positive_int, help="evaluate a deterministic class-stratified subset of N images")
    speed = parser.add_argument_group("speed (never changes results)")
    speed.add_argument("--workers", type=positive_int, help="worker threads (default: the cores available)")
    speed.add_argument("--batch-size", type=positive_int, default=4,
                       help="images per model call (default 4: larger batches leave the CPU caches and run slower)")
    speed.add_argument("--chunk-size", type=positive_int, default=32, help="images per resumable, cached chunk")
    speed.add_argument("--checkpoint-s", type=_non_negative_float, default=1.0,
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
    p.add_argument("--results", type=Path, help="results.json written by pytest (default: artifacts/report/results.json)")
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
                       epilog="examples:\n  python -m evaluator diff artifacts/predictions/RUN_A artifacts/predictions/RUN_B\n"
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
    p.add_argument("--imagenet-dir", type=Path)
    p = sub.add_parser("cache", help="size of the decode cache; --max-gb deletes least recently used geometries",
                       epilog="examples:\n  python -m evaluator cache\n  python -m evaluator cache --max-gb 20",
                       formatter_class=fmt)
    p.add_argument("--artifacts-dir", type=Path, help="default: $EVALUATOR_ARTIFACTS_DIR or artifacts")
    p.add_argument("--max-gb", type=_non_negative_float,
                   help="delete whole geometries, least recently used first, until the cache holds at most this")
    for subparser in sub.choices.values():  # --debug also works after the subcommand
        subparser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point: map flags to library calls; user errors print one line, not a traceback."""
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    for arg in argv:
        # argparse turns `--option=--` into an empty list instead of refusing it; refuse it like any other bad value
        if arg.startswith("--") and arg.endswith("=--"):
            parser.error(f"argument {arg[:-3]}: expected a value, got '--'")
    args = parser.parse_args(argv)
    try:
        return COMMANDS[args.command](args)
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
        from .errors import clipped

        where = f"{clipped(str(exc.filename), 200)}: " if exc.filename else ""
        print(f"error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 2


# --- commands ---------------------------------------------------------------------------------------------


def _baselines(args):
    from .baselines import DEFAULT_BASELINES, load_baselines

    return load_baselines(args.baselines or DEFAULT_BASELINES)


def _dataset(args):
    from .dataset import load_dataset, subset

    dataset = load_dataset(args.imagenet_dir)
    if getattr(args, "limit", None):
        dataset = subset(dataset, args.limit)
    return dataset


def _run_spec(args):
    from .evaluate import catalogue_spec, check_runtime, resolve_runtime
    from .locations import default_artifacts_dir, default_models_dir
    from .run_spec import RunSpec
    from .preprocess import TTA_MODES
    from .recipes import resolve_recipe
    from .errors import RecipeError, did_you_mean

    if args.tta not in TTA_MODES:
        raise RecipeError(did_you_mean("TTA mode", args.tta, TTA_MODES))
    knobs = dict(workers=args.workers, batch_size=args.batch_size, chunk_size=args.chunk_size,
                 checkpoint_s=args.checkpoint_s, decode_cache=not args.no_decode_cache, verify_data=args.verify_data)
    overrides = recipe_overrides(lambda name: getattr(args, name))
    if args.model_path:
        recipes = _baselines(args).recipes  # built-in and declared
        if not args.recipe:
            raise RecipeError(f"--model-path needs --recipe: a model file does not imply its preprocessing "
                              f"(recipes: {', '.join(sorted(recipes))})")
        fmt = "onnx" if args.model_path.suffix == ".onnx" else "tflite"
        spec = RunSpec(model_path=args.model_path, recipe=resolve_recipe(args.recipe, recipes, overrides),
                       tta=args.tta, runtime=resolve_runtime(args.runtime, fmt), **knobs)
    elif args.model:
        spec = catalogue_spec(_baselines(args), args.model, args.precision, args.tta, args.runtime,
                              args.models_dir or default_models_dir(),
                              hash_cache_dir=args.artifacts_dir or default_artifacts_dir(), recipe=args.recipe,
                              overrides=overrides, **knobs)
    else:
        raise EvaluatorError("say what to run: -m MODEL (see `python -m evaluator list`) or --model-path FILE --recipe NAME")
    check_runtime(spec.runtime)
    return spec


def _inspect(args, spec, runtimes=None):
    """The model's input size and hash; a fixed input size that contradicts --input-size/--crop-size is an error."""
    from .errors import ModelError
    from .locations import default_artifacts_dir
    from .model_runtime import inspect_model

    info = inspect_model(spec, args.artifacts_dir or default_artifacts_dir(), runtimes)
    wanted = args.input_size or args.crop_size
    if wanted and info.input_size != wanted:
        raise ModelError(f"{spec.model_path}: the model's input is fixed at {info.input_size}x{info.input_size}; "
                         f"--input-size/--crop-size {wanted} does not fit it")
    return info


def _printer(args):
    """print for human lines: to stderr with --json, so that stdout holds the JSON document alone."""
    stream = sys.stderr if getattr(args, "json", False) else sys.stdout
    return lambda text="": print(text, file=stream)


def _scores_json(scores, n_listed: int) -> dict:
    return {"n": scores.n, "n_listed": n_listed, "n_failed": scores.n_failed,
            "top1": scores.top1, "top1_interval": list(scores.top1_interval),
            "top5": scores.top5, "top5_interval": list(scores.top5_interval)}


def cmd_predict(args) -> int:
    import dataclasses

    from .prediction_store import PREDICTIONS_CSV
    from .seed import write_prediction_texts
    from .evaluate import failed_image_lines, score
    from .locations import default_artifacts_dir
    from .model_runtime import RuntimePool
    from .pipeline import predict
    from .recipes import describe_fields

    say = _printer(args)
    spec = _run_spec(args)
    dataset = _dataset(args)
    say(dataset.describe())
    with RuntimePool() as runtimes:  # the runtime that inspects the model becomes a worker's
        input_size = _inspect(args, spec, runtimes).input_size  # the model's own size (128, 160, ...)
        say(f"model {spec.model_path} on {spec.runtime}; {spec.recipe.describe(spec.tta, size=input_size)}")
        say(f"recipe {describe_fields(spec.recipe)}")
        run = predict(dataset, spec, args.artifacts_dir or default_artifacts_dir(), recompute=args.recompute,
                      shard=args.shard, runtimes=runtimes)
    if args.shard:
        say(f"image shard {args.shard}: {len(run.predictions):,} of {len(dataset):,} images; join the shards with "
            f"`python -m evaluator merge`")
    if run.reused:
        say(f"reused {run.reused} images from an earlier run, predicted {run.computed}")
    say(f"predictions: {run.artifact_dir / PREDICTIONS_CSV}")
    if args.write_texts:
        write_prediction_texts(run.predictions, args.write_texts, dataset.class_names)
        say(f"per-image text files: {args.write_texts}")
    scores = score(run.predictions)
    for line in scores.lines(dataset.n_listed):
        say(line)
    for line in failed_image_lines(run.predictions, run.artifact_dir / PREDICTIONS_CSV):
        say(line)
    if args.json:
        print(json.dumps({
            **_scores_json(scores, dataset.n_listed), "model_path": str(spec.model_path), "runtime": spec.runtime,
            "runtime_version": run.meta.get("runtime_version"), "tta": spec.tta, "input_size": input_size,
            "recipe": dataclasses.asdict(spec.recipe), "dataset_fingerprint": dataset.fingerprint,
            "predictions": str(run.artifact_dir / PREDICTIONS_CSV), "reused": run.reused,
            "computed": run.computed}, indent=1))
    return 0


def cmd_accuracy(args) -> int:
    from .fileio import atomic_write_text
    from .prediction_store import PredictionStore, is_run_dir
    from .evaluate import failed_image_lines, score

    say = _printer(args)
    dataset = _dataset(args)
    recipe = None
    if args.predictions:
        predictions, where = _load_any_predictions(args.predictions, dataset)
    else:
        from .pipeline import changed_images

        run_dir = _stored_run_dir(args, dataset)
        predictions, changed = changed_images(PredictionStore(run_dir), dataset, None)
        if changed:
            raise EvaluatorError(f"{len(changed)} image(s) changed since {run_dir} was predicted (e.g. {changed[0]}); "
                                 "run `python -m evaluator predict` with the same options to predict them again")
        where = run_dir
        say(f"predictions: {run_dir}")
    if is_run_dir(where):
        recipe = PredictionStore(where).meta().get("recipe_fields")
        if recipe:  # the header of the run that made them: the recipe with every field
            say("recipe " + recipe["name"] + ": " + ", ".join(f"{k}={v}" for k, v in recipe.items()
                                                            if k not in ("name", "summary")))
    scores = score(predictions)
    lines = scores.lines(dataset.n_listed)
    table = PredictionStore(where).csv_path if Path(where).is_dir() else where
    lines += failed_image_lines(predictions, table)
    for line in lines:
        say(line)
    verdict = _verdict_lines(args, dataset, predictions, scores)
    for line in verdict:
        say(line)
    output = args.output or (Path(where) / "results.txt")
    atomic_write_text(output, "\n".join(lines) + "\n")
    say(f"results: {output}")
    if args.json:
        print(json.dumps({**_scores_json(scores, dataset.n_listed), "dataset_fingerprint": dataset.fingerprint,
                          "predictions": str(where), "recipe": recipe, "verdict": verdict}, indent=1))
    return 0


def _verdict_lines(args, dataset, predictions, scores) -> list[str]:
    """The pass/fail rule's verdict (verdict.judge_case) when -m names a catalogue model with a documented case."""
    if not args.model or args.predictions:
        return []
    if args.recipe or recipe_overrides(lambda name: getattr(args, name)):
        return ["recipe overridden: not judged against the catalogue's numbers, which belong to its own recipe"]
    from .baselines import list_cases
    from .evaluate import resolve_runtime
    from .verdict import Measurement, judge_case

    baselines = _baselines(args)
    entry = baselines.model(args.model)
    key = (args.model, args.precision or next(iter(entry.files)), args.tta, resolve_runtime(args.runtime, entry.format))
    case = next((c for c in list_cases(baselines)
                 if (c.model, c.precision, c.tta, c.runtime) == key and c.kind == "documented"), None)
    if case is None:
        return [f"no documented case for {'-'.join(key)}: nothing to judge against"]
    measurement = Measurement(top1=scores.top1, top5=scores.top5, n=scores.n, n_failed=scores.n_failed,
                              fingerprint=dataset.fingerprint, predictions=predictions)
    return judge_case(measurement, baselines, case).lines(dataset.class_names)


def _stored_run_dir(args, dataset) -> Path:
    """The finished predictions artifact of this model/recipe/TTA/runtime/dataset, without running anything."""
    from .locations import default_artifacts_dir
    from .pipeline import artifact_key
    from .prediction_store import is_run_dir, run_dir

    spec = _run_spec(args)
    key = artifact_key(spec, _inspect(args, spec), dataset)
    directory = run_dir(args.artifacts_dir or default_artifacts_dir(), spec.model_path, spec.tta,
                                spec.runtime, key)
    if not is_run_dir(directory):
        raise EvaluatorError(f"no finished predictions for this model, recipe, TTA, runtime and dataset "
                             f"(looked in {directory}); run `python -m evaluator predict` with the same options first")
    return directory


def _load_any_predictions(path: Path, dataset):
    """A predictions artifact directory/CSV, or a directory of the seed's per-image text files, with labels."""
    from .prediction_store import PREDICTIONS_CSV, PredictionStore, is_run_dir
    from .predictions import Predictions
    from .seed import read_prediction_texts
    import numpy as np

    path = Path(path)
    if is_run_dir(path) or path.name == PREDICTIONS_CSV:
        return PredictionStore(path if path.is_dir() else path.parent).load(), path
    image_ids, top5_ids = read_prediction_texts(path)
    label_of = dict(zip(dataset.image_ids, dataset.labels))
    unknown = [i for i in image_ids if i not in label_of]
    if unknown:
        raise EvaluatorError(f"{path}: {len(unknown)} prediction file(s) name images not in the dataset "
                             f"(first: {unknown[0]})")
    labels = np.asarray([label_of[i] for i in image_ids], dtype=np.int32)
    n = len(image_ids)
    predictions = Predictions(image_ids=np.asarray(image_ids), labels=labels, top5_ids=top5_ids,
                              top5_scores=np.full((n, 5), np.nan, dtype=np.float32),
                              errors=np.full(n, "", dtype=str))
    return predictions, path


def cmd_add_model(args) -> int:
    from .add_model import NewModel, add_model
    from .baselines import DEFAULT_BASELINES
    from .locations import default_models_dir
    from .preprocess import check_tta

    if (args.documented is None) != (args.source is None):
        raise EvaluatorError("--documented TOP1 TOP5 and --source TEXT go together")
    new = NewModel(name=args.name, model_path=args.model_path, recipe=args.recipe,
                   overrides=recipe_overrides(lambda name: getattr(args, name)), precision=args.precision,
                   summary=args.summary, url=args.url, source=args.source, tta=check_tta(args.tta),
                   documented=tuple(args.documented) if args.documented else None)
    for line in add_model(args.baselines or DEFAULT_BASELINES, new, args.models_dir or default_models_dir()):
        print(line)
    return 0


def cmd_fetch(args) -> int:
    from .errors import FetchError
    from .fetch import FETCH_LOCK_FILE, fetch_model
    from .locations import default_models_dir, inside

    baselines = _baselines(args)
    models_dir = args.models_dir or default_models_dir()
    lock = models_dir / FETCH_LOCK_FILE
    fetched, failures = [], []
    for name in [args.model] if args.model else list(baselines.models):
        entry = baselines.model(name)
        for precision in [args.precision] if args.precision else list(entry.files):
            model_file = entry.file_for(precision)
            if not model_file.url:
                print(f"{name} {precision}: no download URL ({model_file.file} ships with the fixtures)")
                continue
            urls = [(model_file.url, model_file.file, model_file.sha256)]
            if model_file.prototxt:
                urls.append((model_file.url.rsplit("/", 1)[0] + "/" + model_file.prototxt, model_file.prototxt, None))
            for url, file, sha256 in urls:
                progress = _DownloadProgress(f"{name} {precision} {file}")
                try:
                    dest = inside(models_dir, models_dir / file)  # names are plain (validated); links are not
                    fetched.append(fetch_model(url, dest, sha256, lock_file=lock, progress=progress))
                    print(f"{name} {precision}: {fetched[-1]}")
                except FetchError as exc:  # one unreachable file does not stop the others
                    failures.append(f"{name} {precision} {file}: {exc}")
                    print(f"{name} {precision}: {exc}", file=sys.stderr)
                finally:
                    progress.close()
    if failures:
        where = f"; the {len(fetched)} that succeeded are in {models_dir}" if fetched else ""
        raise EvaluatorError(f"{len(failures)} of {len(failures) + len(fetched)} downloads failed{where}:\n  "
                             + "\n  ".join(failures))
    return 0


class _DownloadProgress:
    """fetch_model's progress callback shown as bytes, rate and ETA (evaluator.progress)."""

    def __init__(self, desc: str):
        self.desc, self.progress = desc, None

    def __call__(self, received: int, total: int | None) -> None:
        from .progress import Progress

        if self.progress is None:
            self.progress = Progress(total, self.desc, sys.stderr, unit="B")
        self.progress.update(received - self.progress.done)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.close()


def cmd_list(args) -> int:
    from .baselines import list_cases

    baselines = _baselines(args)
    if args.json:
        print(json.dumps(_catalogue_json(baselines, args.models_dir), indent=1))
        return 0
    print("models:")
    for name, entry in baselines.models.items():
        print(f"  {name:28s} {entry.format:6s} {', '.join(entry.files)}  {entry.summary}")
    print("recipes:")
    for name, recipe in sorted(baselines.recipes.items()):
        print(f"  {name:28s} {recipe.summary}")
    print("cases:")
    for case in list_cases(baselines):
        print(f"  {case.case_id}")
    return 0


def _catalogue_json(baselines, models_dir) -> dict:
    """Models (each file: present where, sha256 verified or not), recipes with every field, and the cases."""
    import dataclasses

    from .baselines import list_cases
    from .locations import default_models_dir
    from .models import locate_model_file
    from .model_hash import file_sha256

    models = {}
    for name, entry in baselines.models.items():
        files = {}
        for precision, model_file in entry.files.items():
            path = locate_model_file(model_file, models_dir or default_models_dir())
            actual = file_sha256(path) if path is not None else None
            files[precision] = {
                "file": model_file.file, "recipe": model_file.recipe, "url": model_file.url,
                "sha256": model_file.sha256, "present": path is not None, "path": str(path) if path else None,
                # True/False: the file's hash against the catalogue's; None: absent, or no hash recorded
                "sha256_verified": None if actual is None or model_file.sha256 is None else actual == model_file.sha256,
            }
        models[name] = {"summary": entry.summary, "format": entry.format, "classes": entry.classes, "files": files}
    return {"baselines": str(baselines.path), "models": models,
            "recipes": {name: dataclasses.asdict(r) for name, r in sorted(baselines.recipes.items())},
            "cases": [case.case_id for case in list_cases(baselines)]}


def cmd_validate(args) -> int:
    from .dataset import load_dataset

    baselines = _baselines(args)
    from .preprocess import RECIPES

    print(f"{baselines.path}: follows the schema (evaluator/baselines.schema.json); {len(baselines.models)} models, "
          f"{len(baselines.recipes) - len(RECIPES)} declared recipes, {len(baselines.documented)} documented, "
          f"{len(baselines.official)} official, {len(baselines.measured)} measured entries")
    print(load_dataset(args.imagenet_dir).describe())
    return 0


def cmd_report(args) -> int:
    from .history import plot_history, read_history
    from .locations import default_artifacts_dir
    from .report import read_results, write_report

    report_dir = default_artifacts_dir() / "report"
    if args.merge:
        from .report_merge import write_merged_report

        if args.results or args.history:
            raise EvaluatorError("--merge takes the results files or directories itself: drop --results/--history")
        results, paths = write_merged_report(args.merge, args.out or report_dir)
        counts = {v: sum(r.verdict == v for r in results) for v in ("pass", "fail", "xfail", "error", "skip")}
        print(f"{len(results)} cases: " + ", ".join(f"{n} {v}" for v, n in counts.items() if n))
        print("\n".join(f"{name}: {path}" for name, path in paths.items()))
        return 0
    if args.history:
        history = (args.results.parent if args.results else report_dir) / "history.csv"
        if not history.is_file():
            raise EvaluatorError(f"{history} not found: it is written by every pytest run with regression cases")
        trend = plot_history(read_history(history), (args.out or history.parent) / "trend.png")
        print(f"trend: {trend}")
        return 0
    results_path = args.results or report_dir / "results.json"
    if not results_path.is_file():
        raise EvaluatorError(f"{results_path} not found: run the regression cases first (`python -m pytest -m regression`)")
    results, meta = read_results(results_path)
    paths = write_report(results, args.out or results_path.parent, meta)
    print("\n".join(f"{name}: {path}" for name, path in paths.items()))
    return 0


def load_predictions(path: Path):
    """Predictions from an artifact directory, its predictions.csv, or a per-image record (.csv.gz)."""
    from .prediction_store import META_JSON, PredictionStore, is_run_dir
    from .predictions import read_predictions_record

    path = Path(path)
    if path.suffix == ".gz":
        return read_predictions_record(path)
    directory = path if path.is_dir() else path.parent
    if not is_run_dir(directory):
        raise EvaluatorError(f"{path}: not a finished predictions artifact (no {META_JSON}) nor a .csv.gz record")
    return PredictionStore(directory).load()


def cmd_diff(args) -> int:
    from .evaluate import class_change_lines, score
    from .metrics import paired_compare

    baseline, candidate = load_predictions(args.baseline), load_predictions(args.candidate)
    names = None
    if args.imagenet_dir:
        from .dataset import load_dataset

        names = load_dataset(args.imagenet_dir).class_names
    for label, predictions in (("baseline", baseline), ("candidate", candidate)):
        scores = score(predictions)
        print(f"{label:9s} n={scores.n}  TOP1 {scores.top1:.4f} [{scores.top1_interval[0]:.4f}, "
              f"{scores.top1_interval[1]:.4f}]  TOP5 {scores.top5:.4f}")
    print(paired_compare(baseline, candidate).summary(worst=5, class_names=names))
    for line in class_change_lines(baseline, candidate, names, k=args.classes):
        print("  " + line)
    return 0


def cmd_cache(args) -> int:
    import time

    from .decode_cache import CACHE_DIR, geometry_caches, prune
    from .locations import default_artifacts_dir

    artifacts_dir = args.artifacts_dir or default_artifacts_dir()
    if args.max_gb is not None:
        for removed in prune(artifacts_dir, int(args.max_gb * 1e9)):
            print(f"deleted {removed.n_bytes / 1e9:.2f} GB: {removed.path.name} ({removed.description})")
    caches = geometry_caches(artifacts_dir)
    total = sum(cache.n_bytes for cache in caches)
    print(f"{artifacts_dir / CACHE_DIR}: {len(caches)} geometries, {total / 1e9:.2f} GB")
    for cache in reversed(caches):  # most recently used first
        used = time.strftime("%Y-%m-%d %H:%M", time.localtime(cache.last_used))
        print(f"  {cache.n_bytes / 1e9:7.2f} GB  {cache.n_entries:6,} chunks  used {used}  {cache.path.name}  "
              f"{cache.description}")
    return 0


def cmd_merge(args) -> int:
    from .merge import merge_artifacts

    for merged in merge_artifacts(args.inputs, args.artifacts_dir):
        how = f"{merged.shards} shards" if merged.shards else "complete artifact"
        print(f"{merged.action} ({how}, {merged.n_images:,} images): {merged.directory}")
    return 0


COMMANDS = {"add-model": cmd_add_model, "predict": cmd_predict, "merge": cmd_merge, "accuracy": cmd_accuracy,
            "fetch": cmd_fetch, "list": cmd_list,
            "validate": cmd_validate, "report": cmd_report, "diff": cmd_diff, "cache": cmd_cache}


if __name__ == "__main__":
    sys.exit(main())
