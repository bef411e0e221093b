"""`python -m evaluator add-model`: inspect a model file, check that it fits its recipe, and write its catalogue entry
(and a declared recipe for overrides, and a documented number) into baselines.yaml, keeping comments and order."""

from __future__ import annotations

import datetime as _dt
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from .baselines import list_cases, load_baselines, validate_raw
from .baselines_update import update_lock_path
from .catalogue_yaml import dump, read_yaml, round_trip_yaml
from .errors import BaselinesError, ModelError
from .fileio import atomic_write_text, file_lock
from .locations import model_search_dirs
from .model_runtime import inspect_model
from .recipes import OVERRIDE_OPTIONS, resolve_recipe
from .run_spec import RunSpec
from .runtimes import FORMAT_RUNTIMES, file_format, open_runtime, runtime_for_file


@dataclass(frozen=True)
class ModelFacts:
    """What add-model reads from a model file."""

    path: Path
    format: str
    input: str  # the input tensor described: "uint8 (N, 224, 224, 3) scale 0.0078 zero point 128"
    input_dtype: str
    input_size: int
    n_outputs: int
    sha256: str


@dataclass(frozen=True)
class NewModel:
    """What add-model asks for (the command line's flags)."""

    name: str
    model_path: Path
    recipe: str
    overrides: dict
    precision: str | None = None
    summary: str | None = None
    url: str | None = None
    documented: tuple[float, float] | None = None
    source: str | None = None
    tta: str = "1-crop"


def inspect_file(path: Path, recipe) -> ModelFacts:
    """Open the model with its default runtime and check it against `recipe`: layout and channels, input size,
    dtype and quantization, 1000 + class_offset outputs. ModelError, one line, naming what does not fit."""
    path = Path(path)
    fmt = file_format(path)
    if fmt is None:
        known = ", ".join("." + fmt for fmt in FORMAT_RUNTIMES)
        raise ModelError(f"{path}: unknown model file type {path.suffix or '(no suffix)'!r}; expected one of {known}")
    runtime_name = runtime_for_file(path)
    info = inspect_model(RunSpec(path, recipe, "1-crop", runtime_name, workers=1))
    runtime = open_runtime(runtime_name, path, num_threads=1)
    try:
        spec = runtime.input_spec
    finally:
        runtime.close()
    dtype = np.dtype(spec.dtype)
    problem = None
    if dtype.kind not in "fiu" or (dtype.kind in "iu" and dtype not in (np.uint8, np.int8)):
        problem = f"input dtype {dtype} (only float, uint8 and int8 inputs are supported)"
    elif recipe.quantize == "raw-uint8" and dtype != np.uint8:
        problem = f"recipe {recipe.name} feeds raw uint8 pixels but the input is {dtype}"
    elif dtype.kind in "iu" and recipe.quantize == "from-model" and not (spec.scale and spec.zero_point is not None):
        problem = f"the {dtype} input has no quantization parameters for recipe {recipe.name} to quantize with"
    if problem:
        raise ModelError(f"{path}: does not fit recipe {recipe.name}: {problem}")
    return ModelFacts(path, fmt, spec.describe(), str(dtype), info.input_size, info.n_outputs, info.sha256)


def add_model(baselines_path: Path, new: NewModel, models_dir: Path) -> list[str]:
    """Write the catalogue entry of `new` into baselines.yaml (atomically, under its lock); the lines to print.

    Refused with one line (BaselinesError/ModelError/RecipeError) when the name is taken, the file does not fit the
    recipe, or the result would not validate; nothing is written then.
    """
    baselines_path = Path(baselines_path)
    current = load_baselines(baselines_path)
    if new.name in current.models:
        raise BaselinesError(f"{baselines_path}: model {new.name!r} is already in the catalogue")
    recipe = resolve_recipe(new.recipe, current.recipes, new.overrides)
    facts = inspect_file(new.model_path, recipe)
    wanted_size = new.overrides.get("input_size") or new.overrides.get("crop_size")
    if wanted_size and wanted_size != facts.input_size:
        raise ModelError(f"{new.model_path}: does not fit: its input is fixed at {facts.input_size}x"
                         f"{facts.input_size}, not {wanted_size}")
    if facts.n_outputs not in (1000, 1001):
        raise ModelError(f"{new.model_path}: {facts.n_outputs} outputs; a catalogue model has 1000 or 1001")
    precision = new.precision or {"float32": "float", "float16": "float"}.get(facts.input_dtype, facts.input_dtype)
    lines = [f"{facts.path}: {facts.format}, input {facts.input}, {facts.n_outputs} outputs, sha256 {facts.sha256}"]
    recipe_name = new.recipe
    changes = {OVERRIDE_OPTIONS[k]: v for k, v in new.overrides.items() if v is not None}
    if changes:
        recipe_name = new.name
        if recipe_name in current.recipes:
            raise BaselinesError(f"{baselines_path}: a recipe named {recipe_name!r} exists; the overrides would be "
                                 f"declared under the model's name")
    with file_lock(update_lock_path(baselines_path)):  # the lock of --update-baselines: one writer at a time
        data = round_trip_yaml().load(baselines_path.read_text(encoding="utf-8"))
        if changes:
            _declare_recipe(data, recipe_name, new.recipe, changes)
            lines.append(f"declared recipe {recipe_name}: base {new.recipe} with "
                         + ", ".join(f"{k}={v}" for k, v in changes.items()))
        _add_entry(data, new, facts, recipe_name, precision)
        if new.documented is not None:
            lines += _add_documented(data, new, facts, precision)
        text = dump(data)
        problems = validate_raw(baselines_path, read_yaml(baselines_path, text))
        if problems:
            raise BaselinesError(f"{baselines_path}: add-model refused, the entry would give: " + "; ".join(problems))
        lines += _place_file(facts.path, models_dir)
        atomic_write_text(baselines_path, text)
    added = load_baselines(baselines_path)
    cases = [c.case_id for c in list_cases(added) if c.model == new.name]
    lines.append(f"added model {new.name} ({precision}, recipe {recipe_name}) to {baselines_path}")
    if cases:
        lines += ["regression cases (run them with `pytest -k " + new.name + "`):"] + [f"  {c}" for c in cases]
    else:
        lines.append("no regression case yet: give --documented TOP1 TOP5 --source TEXT (and --tta) to judge it")
    return lines


def _flow(values):
    node = CommentedSeq(values) if isinstance(values, (list, tuple)) else CommentedMap(values)
    node.fa.set_flow_style()
    return node


def _block(data, key: str):
    """data[key] as a block mapping (an empty `{}` in the file is flow style)."""
    if not data.get(key):
        old = data.get(key)
        data[key] = CommentedMap()
        if old is not None and getattr(old, "ca", None) is not None:
            data[key].ca.comment = old.ca.comment
    data[key].fa.set_block_style()
    return data[key]


def _declare_recipe(data, name: str, base: str, changes: dict) -> None:
    entry = CommentedMap(base=base)
    for field, value in changes.items():
        entry[field] = _flow(list(value)) if isinstance(value, (list, tuple)) else value
    _append(_block(data, "recipes"), name, entry)


def _add_entry(data, new: NewModel, facts: ModelFacts, recipe_name: str, precision: str) -> None:
    entry = CommentedMap()
    entry["summary"] = new.summary or f"{facts.path.name}, added with add-model"
    entry["format"] = facts.format
    entry["recipe"] = recipe_name
    entry["classes"] = facts.n_outputs
    entry["files"] = CommentedMap({precision: _flow({"file": facts.path.name, "url": new.url,
                                                     "sha256": facts.sha256})})
    _append(_block(data, "models"), new.name, entry)


def _add_documented(data, new: NewModel, facts: ModelFacts, precision: str) -> list[str]:
    lines = []
    source = new.source
    if source not in (data.get("sources") or {}):
        name = f"{new.name}-documented"
        _append(_block(data, "sources"), name, CommentedMap(
            kind="documented", runtime=FORMAT_RUNTIMES[facts.format][0], runtime_version="not stated", n=50000,
            date=_dt.date.today(), reference=str(source)))
        lines.append(f"source {name}: {source} (documented, {FORMAT_RUNTIMES[facts.format][0]}, n=50000)")
        source = name
    top1, top5 = new.documented
    if not data.get("documented"):
        data["documented"] = CommentedSeq()
    documented = data["documented"]
    entry = _flow({"model": new.name, "precision": precision, "tta": new.tta, "top1": top1, "top5": top5,
                   "source": source})
    trailing = documented.ca.items.pop(len(documented) - 1, None) if len(documented) else None
    documented.append(entry)
    if trailing is not None:
        documented.ca.items[len(documented) - 1] = trailing
    return lines


def _append(mapping, key: str, value) -> None:
    """Add `key` at the end of a block mapping; a blank line or comment that followed the old last entry (it
    separates the section from the next one) moves to follow the new one."""
    last = next(reversed(mapping), None) if len(mapping) else None
    trailing = mapping.ca.items.pop(last, None) if last is not None else None
    mapping[key] = value
    if trailing is not None:
        mapping.ca.items[key] = trailing


def _place_file(path: Path, models_dir: Path) -> list[str]:
    """The catalogue names files by plain name: a file outside the model directories is copied into models_dir."""
    for directory in model_search_dirs(models_dir):
        candidate = Path(directory) / path.name
        if candidate.is_file() and candidate.resolve() == path.resolve():
            return []
        if candidate.is_file():
            raise ModelError(f"{path}: another file named {path.name} is already in {directory}; rename one")
    Path(models_dir).mkdir(parents=True, exist_ok=True)
    temporary = Path(models_dir) / f".{path.name}.part"
    shutil.copyfile(path, temporary)
    temporary.replace(Path(models_dir) / path.name)
    return [f"copied {path} to {Path(models_dir) / path.name} (the catalogue names files by plain name)"]
