"""The model catalogue (the `models:` section of baselines.yaml): files, URLs, sha256, recipe, class count."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path

from .errors import ModelError, did_you_mean, shown
from .locations import is_plain_name, model_search_dirs
from .recipes import RECIPES
from .runtimes import FORMAT_RUNTIMES

PLAIN_NAME_RULE = "letters, digits, _ . + -; no '/', no '..'"



@dataclass(frozen=True)
class ModelFile:
    """One file of a catalogue model: a precision (float, int8, int8-recalib, uint8)."""

    file: str
    url: str | None
    sha256: str | None
    recipe: str
    prototxt: str | None = None


@dataclass(frozen=True)
class ModelEntry:
    """A catalogue model with its files per precision."""

    name: str
    summary: str
    format: str
    classes: int
    files: dict[str, ModelFile]
    # evaluated in image shards by the nightly (cases marked `large` in pytest), not as one case per job
    large: bool = False

    @property
    def runtimes(self) -> tuple[str, ...]:
        return FORMAT_RUNTIMES[self.format]

    def file_for(self, precision: str) -> ModelFile:
        """The file of one precision; an unknown precision names the valid ones."""
        if precision not in self.files:
            raise ModelError(f"model {self.name}: " + did_you_mean("precision", precision, self.files))
        return self.files[precision]


_MODEL_KEYS = {"summary", "format", "recipe", "classes", "files"}
_OPTIONAL_MODEL_KEYS = {"large"}
_FILE_KEYS = {"file", "url", "sha256", "prototxt", "recipe"}


def key_name(key) -> str:
    """A mapping key as it appears in a key path: a short name as itself, anything else shortened."""
    return key if isinstance(key, str) and len(key) <= 60 and key.isprintable() else shown(key)


def unknown_key(key, allowed) -> str:
    """ "unknown key; did you mean recipe? (allowed: ...)", the wording of the parser and the schema alike."""
    close = difflib.get_close_matches(str(key), sorted(allowed), n=1)
    hint = f"; did you mean {close[0]}?" if close else ""
    return f"unknown key{hint} (allowed: {', '.join(sorted(allowed))})"


def check_keys(entry, where: str, allowed: set, required: set, problems: list[str]) -> bool:
    """Append unknown-key and missing-key problems of one YAML mapping; False when it cannot be used at all."""
    if not isinstance(entry, dict):
        problems.append(f"{where}: expected a mapping, found {'nothing' if entry is None else shown(entry)}")
        return False
    for key in sorted(set(entry) - allowed, key=str):
        problems.append(f"{where}.{key_name(key)}: " + unknown_key(key, allowed))
    missing = sorted(required - set(entry))
    problems.extend(f"{where}: missing key {key!r}" for key in missing)
    return not missing


def parse_models(raw: dict, problems: list[str], recipes: dict | None = None,
                 broken_recipes: set = frozenset()) -> dict[str, ModelEntry]:
    """Build the catalogue from the raw `models:` mapping, appending every problem found (key path: what).

    Args:
        recipes: the recipes a model may name (built-in and declared); default: the built-in ones.
        broken_recipes: declared recipes already reported as broken: naming one is not reported again.
    """
    if recipes is None:
        recipes = RECIPES
    models = {}
    for name, entry in (raw or {}).items():
        where = f"models.{key_name(name)}"
        if not is_plain_name(name):
            problems.append(f"{where}: a model name must be a plain name ({PLAIN_NAME_RULE}); it names files")
            continue
        check_keys(entry, where, _MODEL_KEYS | _OPTIONAL_MODEL_KEYS, _MODEL_KEYS, problems)
        if not isinstance(entry, dict):
            continue
        if not isinstance(entry.get("large", False), bool):
            problems.append(f"{where}.large: {shown(entry['large'])} must be true or false")
        fmt, classes = entry.get("format"), entry.get("classes")
        if not isinstance(fmt, str) or fmt not in FORMAT_RUNTIMES:
            problems.append(f"{where}.format: {shown(fmt)} is not one of {', '.join(FORMAT_RUNTIMES)}")
            fmt = None
        if isinstance(classes, bool) or classes not in (1000, 1001):
            problems.append(f"{where}.classes: {shown(classes)} must be 1000 or 1001")
            classes = None
        before = len(problems)
        files = _parse_files(entry, where, fmt, classes, (recipes, broken_recipes), problems)
        if not files and len(problems) == before:
            problems.append(f"{where}.files: at least one precision is needed")
        models[name] = ModelEntry(name=name, summary=str(entry.get("summary", ""))[:200], format=str(fmt),
                                  classes=classes or 0, files=files, large=entry.get("large") is True)
    return models


def _parse_files(entry: dict, where: str, fmt: str | None, classes: int | None, known_recipes: tuple,
                 problems: list[str]) -> dict[str, ModelFile]:
    recipes, broken_recipes = known_recipes
    raw = entry.get("files")
    if not isinstance(raw, dict):
        if raw is not None:
            problems.append(f"{where}.files: expected a mapping of precision: file, found {shown(raw)}")
        return {}
    files = {}
    for precision, spec in raw.items():
        fwhere = f"{where}.files.{key_name(precision)}"
        if not is_plain_name(precision):
            problems.append(f"{fwhere}: a precision must be a plain name ({PLAIN_NAME_RULE})")
            continue
        before = len(problems)
        check_keys(spec, fwhere, _FILE_KEYS, {"file"}, problems)
        if not isinstance(spec, dict):
            continue
        recipe = spec.get("recipe", entry.get("recipe"))
        if isinstance(recipe, str) and recipe in broken_recipes:
            problems.append(f"{fwhere}: recipe {recipe} is broken (reported above)")
        elif not isinstance(recipe, str) or recipe not in recipes:
            problems.append(f"{fwhere}: " + did_you_mean("recipe", recipe, recipes))
        elif classes is not None and classes - recipes[recipe].class_offset != 1000:
            problems.append(f"{fwhere}: recipe {recipe} has class offset {recipes[recipe].class_offset}, "
                            f"which does not fit {classes} classes")
        _check_file_spec(spec, fwhere, fmt, problems)
        if len(problems) == before:
            files[precision] = ModelFile(file=spec["file"], url=spec.get("url"), sha256=spec.get("sha256"),
                                         recipe=recipe, prototxt=spec.get("prototxt"))
    return files


def _check_file_spec(spec: dict, where: str, fmt: str | None, problems: list[str]) -> None:
    file = spec.get("file")
    if not is_plain_name(file):
        problems.append(f"{where}.file: {shown(file)} must be a plain file name ({PLAIN_NAME_RULE})")
    elif fmt in FORMAT_RUNTIMES and not file.endswith("." + fmt):
        problems.append(f"{where}.file: {file!r} does not end in .{fmt}")
    prototxt = spec.get("prototxt")
    if prototxt is not None and not is_plain_name(prototxt):
        problems.append(f"{where}.prototxt: {shown(prototxt)} must be a plain file name ({PLAIN_NAME_RULE}) or null")
    url = spec.get("url")
    if url is not None and not (isinstance(url, str) and url.startswith("https://") and len(url) < 2000):
        problems.append(f"{where}.url: {shown(url)} must be an https URL or null")
    sha = spec.get("sha256")
    if sha is not None and not (isinstance(sha, str) and len(sha) == 64 and all(c in "0123456789abcdef" for c in sha)):
        problems.append(f"{where}.sha256: {shown(sha)} must be 64 lowercase hex digits or null")


def locate_model_file(model_file: ModelFile, models_dir: Path) -> Path | None:
    """The first existing copy of a catalogue file, or None."""
    for directory in model_search_dirs(models_dir):
        path = directory / model_file.file
        if path.is_file():
            return path
    return None


def missing_model_message(entry: ModelEntry, precision: str, models_dir: Path) -> str:
    """Why a model file is absent and what to do: its URL and the fetch command."""
    model_file = entry.file_for(precision)
    where = Path(models_dir) / model_file.file
    if model_file.url:
        return (f"model file {where} not found; download it from {model_file.url} with "
                f"`python -m evaluator fetch -m {entry.name} --precision {precision}`")
    searched = ", ".join(str(d) for d in model_search_dirs(models_dir))
    return (f"model file {model_file.file} not found in {searched}; "
            f"it has no single-file download URL: put it in {models_dir}")
