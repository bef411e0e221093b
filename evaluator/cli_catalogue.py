"""The commands that read the catalogue (baselines.yaml): `list` and `validate`."""

from __future__ import annotations

import dataclasses
import json

from .baselines import DEFAULT_BASELINES, Baselines, list_cases, load_baselines
from .locations import default_models_dir
from .models import locate_model_file
from .recipes import RECIPES


def catalogue(args) -> Baselines:
    """The catalogue named by --baselines, else the repository's."""
    return load_baselines(args.baselines or DEFAULT_BASELINES)


def cmd_list(args) -> int:
    baselines = catalogue(args)
    if args.json:
        print(json.dumps(_catalogue_json(baselines, args.models_dir or default_models_dir()), indent=1))
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


def _catalogue_json(baselines: Baselines, models_dir) -> dict:
    """Models (each file: present where, sha256 verified or not), recipes with every field, and the cases."""
    # model_hash brings the artifacts module (~15 ms of a ~0.4 s `list`); only --json hashes files.
    from .model_hash import file_sha256

    models = {}
    for name, entry in baselines.models.items():
        files = {}
        for precision, model_file in entry.files.items():
            path = locate_model_file(model_file, models_dir)
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
    # dataset.py brings the artifacts and sample modules (~25 ms of a ~0.4 s `list`), which only validate needs.
    from .dataset import load_dataset

    baselines = catalogue(args)
    print(f"{baselines.path}: follows the schema (evaluator/baselines.schema.json); {len(baselines.models)} models, "
          f"{len(baselines.recipes) - len(RECIPES)} declared recipes, {len(baselines.documented)} documented, "
          f"{len(baselines.official)} official, {len(baselines.measured)} measured entries")
    print(load_dataset(args.imagenet_dir).describe())
    return 0
