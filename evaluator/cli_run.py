"""The commands that run a model or score its predictions: `predict` and `accuracy` (cli.py builds the parser)."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import numpy as np

from .baselines import list_cases
from .case import CaseId
from .cli_catalogue import catalogue
from .dataset import Dataset, load_dataset, subset
from .errors import EvaluatorError, ModelError, RecipeError, did_you_mean
from .evaluate import (
    catalogue_spec,
    check_runtime,
    failed_image_lines,
    resolve_runtime,
    score,
)
from .fileio import atomic_write_text
from .locations import default_artifacts_dir, default_models_dir
from .model_runtime import RuntimePool, inspect_model
from .options import recipe_overrides
from .pipeline import artifact_key, changed_images, predict
from .prediction_store import META_JSON, PREDICTIONS_CSV, PredictionStore, is_run_dir, run_dir
from .predictions import Predictions, read_predictions_record
from .recipes import TTA_MODES, describe_fields, resolve_recipe
from .run_spec import RunSpec
from .runtimes import file_format
from .seed import read_prediction_texts, write_prediction_texts
from .verdict import Measurement, judge_case


def cmd_predict(args) -> int:
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
    say = _printer(args)
    dataset = _dataset(args)
    recipe = None
    if args.predictions:
        where = Path(args.predictions)
        predictions = load_predictions(where, dataset)
    else:
        where = _stored_run_dir(args, dataset)
        predictions, changed = changed_images(PredictionStore(where), dataset, None)
        if changed:
            raise EvaluatorError(f"{len(changed)} image(s) changed since {where} was predicted (e.g. {changed[0]}); "
                                 "run `python -m evaluator predict` with the same options to predict them again")
        say(f"predictions: {where}")
    if is_run_dir(where):
        recipe = PredictionStore(where).meta().get("recipe_fields")
        if recipe:  # the header of the run that made them: the recipe with every field
            say("recipe " + recipe["name"] + ": " + ", ".join(f"{k}={v}" for k, v in recipe.items()
                                                            if k not in ("name", "summary")))
    scores = score(predictions)
    lines = scores.lines(dataset.n_listed)
    table = where / PREDICTIONS_CSV if where.is_dir() else where
    lines += failed_image_lines(predictions, table)
    for line in lines:
        say(line)
    verdict = _verdict_lines(args, dataset, predictions, scores)
    for line in verdict:
        say(line)
    output = args.output or (where / "results.txt")
    atomic_write_text(output, "\n".join(lines) + "\n")
    say(f"results: {output}")
    if args.json:
        print(json.dumps({**_scores_json(scores, dataset.n_listed), "dataset_fingerprint": dataset.fingerprint,
                          "predictions": str(where), "recipe": recipe, "verdict": verdict}, indent=1))
    return 0


def load_predictions(path: Path, dataset: Dataset | None = None) -> Predictions:
    """Predictions from a predictions artifact directory or its predictions.csv, a per-image record (.csv.gz), or,
    given the dataset for the labels, a directory of the seed's per-image text files."""
    path = Path(path)
    if path.suffix == ".gz":
        return read_predictions_record(path)
    directory = path.parent if path.name == PREDICTIONS_CSV else path
    if is_run_dir(directory):
        return PredictionStore(directory).load()
    if dataset is None or not path.is_dir():
        raise EvaluatorError(f"{path}: not a finished predictions artifact (no {META_JSON}) nor a .csv.gz record"
                             + ("" if dataset is None else " nor a directory of per-image text files"))
    image_ids, top5_ids = read_prediction_texts(path)
    label_of = dict(zip(dataset.image_ids, dataset.labels))
    unknown = [i for i in image_ids if i not in label_of]
    if unknown:
        raise EvaluatorError(f"{path}: {len(unknown)} prediction file(s) name images not in the dataset "
                             f"(first: {unknown[0]})")
    n = len(image_ids)
    return Predictions(image_ids=np.asarray(image_ids), labels=np.asarray([label_of[i] for i in image_ids], np.int32),
                       top5_ids=top5_ids, top5_scores=np.full((n, 5), np.nan, dtype=np.float32),
                       errors=np.full(n, "", dtype=str))


def _dataset(args) -> Dataset:
    dataset = load_dataset(args.imagenet_dir)
    return subset(dataset, args.limit) if args.limit else dataset


def _run_spec(args) -> RunSpec:
    if args.tta not in TTA_MODES:
        raise RecipeError(did_you_mean("TTA mode", args.tta, TTA_MODES))
    knobs = dict(workers=args.workers, batch_size=args.batch_size, chunk_size=args.chunk_size,
                 checkpoint_s=args.checkpoint_s, decode_cache=not args.no_decode_cache, verify_data=args.verify_data)
    overrides = recipe_overrides(lambda name: getattr(args, name))
    if args.model_path:
        recipes = catalogue(args).recipes  # built-in and declared
        if not args.recipe:
            raise RecipeError(f"--model-path needs --recipe: a model file does not imply its preprocessing "
                              f"(recipes: {', '.join(sorted(recipes))})")
        spec = RunSpec(model_path=args.model_path, recipe=resolve_recipe(args.recipe, recipes, overrides),
                       tta=args.tta, runtime=resolve_runtime(args.runtime, file_format(args.model_path)), **knobs)
    elif args.model:
        spec = catalogue_spec(catalogue(args), args.model, args.precision, args.tta, args.runtime,
                              args.models_dir or default_models_dir(),
                              hash_cache_dir=args.artifacts_dir or default_artifacts_dir(), recipe=args.recipe,
                              overrides=overrides, **knobs)
    else:
        raise EvaluatorError("say what to run: -m MODEL (see `python -m evaluator list`) "
                             "or --model-path FILE --recipe NAME")
    check_runtime(spec.runtime)
    return spec


def _inspect(args, spec: RunSpec, runtimes: RuntimePool | None = None):
    """The model's input size and hash; a fixed input size that contradicts --input-size/--crop-size is an error."""
    info = inspect_model(spec, args.artifacts_dir or default_artifacts_dir(), runtimes)
    wanted = args.input_size or args.crop_size
    if wanted and info.input_size != wanted:
        raise ModelError(f"{spec.model_path}: the model's input is fixed at {info.input_size}x{info.input_size}; "
                         f"--input-size/--crop-size {wanted} does not fit it")
    return info


def _stored_run_dir(args, dataset: Dataset) -> Path:
    """The finished predictions artifact of this model/recipe/TTA/runtime/dataset, without running anything."""
    spec = _run_spec(args)
    key = artifact_key(spec, _inspect(args, spec), dataset)
    directory = run_dir(args.artifacts_dir or default_artifacts_dir(), spec.model_path, spec.tta, spec.runtime, key)
    if not is_run_dir(directory):
        raise EvaluatorError(f"no finished predictions for this model, recipe, TTA, runtime and dataset "
                             f"(looked in {directory}); run `python -m evaluator predict` with the same options first")
    return directory


def _printer(args):
    """print for human lines: to stderr with --json, so that stdout holds the JSON document alone."""
    stream = sys.stderr if args.json else sys.stdout
    return lambda text="": print(text, file=stream)


def _scores_json(scores, n_listed: int) -> dict:
    return {"n": scores.n, "n_listed": n_listed, "n_failed": scores.n_failed,
            "top1": scores.top1, "top1_interval": list(scores.top1_interval),
            "top5": scores.top5, "top5_interval": list(scores.top5_interval)}


def _verdict_lines(args, dataset: Dataset, predictions: Predictions, scores) -> list[str]:
    """The pass/fail rule's verdict (verdict.judge_case) when -m names a catalogue model with a documented case."""
    if not args.model or args.predictions:
        return []
    if args.recipe or recipe_overrides(lambda name: getattr(args, name)):
        return ["recipe overridden: not judged against the catalogue's numbers, which belong to its own recipe"]
    baselines = catalogue(args)
    entry = baselines.model(args.model)
    wanted = CaseId(args.model, args.precision or next(iter(entry.files)), args.tta,
                    resolve_runtime(args.runtime, entry.format))
    case = next((c for c in list_cases(baselines) if c.identity == wanted and c.kind == "documented"), None)
    if case is None:
        return [f"no documented case for {wanted}: nothing to judge against"]
    measurement = Measurement(top1=scores.top1, top5=scores.top5, n=scores.n, n_failed=scores.n_failed,
                              fingerprint=dataset.fingerprint, predictions=predictions)
    return judge_case(measurement, baselines, case).lines(dataset.class_names)
