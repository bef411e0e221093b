"""The model catalogue (the `models:` section of baselines.yaml): files, URLs, sha256, recipe, class count."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .errors import ModelError, did_you_mean
from .locations import model_search_dirs

# Which runtimes can open which file format; the first one is the default where ailia is not licensed.
FORMAT_RUNTIMES = {"onnx": ("onnxruntime", "ailia"), "tflite": ("litert", "ailia")}


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


def check_keys(entry, where: str, allowed: set, required: set, problems: list[str]) -> bool:
    """Append unknown-key and missing-key problems of one YAML mapping; False when it cannot be used at all."""
    if not isinstance(entry, dict):
        problems.append(f"{where}: expected a mapping")
        return False
    for key in sorted(set(entry) - allowed):
        problems.append(f"{where}.{key}: unknown key (allowed: {', '.join(sorted(allowed))})")
    missing = sorted(required - set(entry))
    problems.extend(f"{where}: missing key {key!r}" for key in missing)
    return not missing


def parse_models(raw: dict, problems: list[str]) -> dict[str, ModelEntry]:
    """Build the catalogue from the raw `models:` mapping, appending every problem found (key path: what)."""
    from .preprocess import RECIPES

    models = {}
    for name, entry in (raw or {}).items():
        where = f"models.{name}"
        check_keys(entry, where, _MODEL_KEYS | _OPTIONAL_MODEL_KEYS, _MODEL_KEYS, problems)
        if not isinstance(entry, dict):
            continue
        if not isinstance(entry.get("large", False), bool):
            problems.append(f"{where}.large: {entry['large']!r} must be true or false")
        if entry.get("format") not in FORMAT_RUNTIMES:
            problems.append(f"{where}.format: {entry.get('format')!r} is not one of {', '.join(FORMAT_RUNTIMES)}")
        if entry.get("classes") not in (1000, 1001):
            problems.append(f"{where}.classes: {entry.get('classes')!r} must be 1000 or 1001")
        files = {}
        for precision, spec in (entry.get("files") or {}).items():
            fwhere = f"{where}.files.{precision}"
            check_keys(spec, fwhere, _FILE_KEYS, {"file"}, problems)
            if not isinstance(spec, dict):
                continue
            recipe = spec.get("recipe", entry.get("recipe"))
            if recipe not in RECIPES:
                problems.append(f"{fwhere}: " + did_you_mean("recipe", str(recipe), RECIPES))
            elif entry.get("classes") in (1000, 1001) and entry["classes"] - RECIPES[recipe].class_offset != 1000:
                problems.append(f"{fwhere}: recipe {recipe} has class offset {RECIPES[recipe].class_offset}, "
                                f"which does not fit {entry['classes']} classes")
            _check_file_spec(spec, fwhere, entry.get("format"), problems)
            files[precision] = ModelFile(
                file=str(spec.get("file")), url=spec.get("url"), sha256=spec.get("sha256"),
                recipe=str(recipe), prototxt=spec.get("prototxt"),
            )
        if not files:
            problems.append(f"{where}.files: at least one precision is needed")
        models[name] = ModelEntry(
            name=name, summary=str(entry.get("summary", "")), format=str(entry.get("format")),
            classes=int(entry.get("classes") or 0), files=files, large=entry.get("large") is True,
        )
    return models


def _check_file_spec(spec: dict, where: str, fmt: str | None, problems: list[str]) -> None:
    file = spec.get("file")
    if not isinstance(file, str) or "/" in file or file.startswith("."):
        problems.append(f"{where}.file: {file!r} must be a plain file name")
    elif fmt in FORMAT_RUNTIMES and not file.endswith("." + fmt):
        problems.append(f"{where}.file: {file!r} does not end in .{fmt}")
    url = spec.get("url")
    if url is not None and not (isinstance(url, str) and url.startswith("https://")):
        problems.append(f"{where}.url: {url!r} must be an https URL or null")
    sha = spec.get("sha256")
    if sha is not None and not (isinstance(sha, str) and len(sha) == 64 and all(c in "0123456789abcdef" for c in sha)):
        problems.append(f"{where}.sha256: {sha!r} must be 64 lowercase hex digits or null")


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
