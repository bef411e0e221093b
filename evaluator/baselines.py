"""baselines.yaml: read and validate the catalogue, list the regression cases.

Recording measured baselines (--update-baselines) is evaluator/baselines_update.py; the pass/fail rule that compares a
case with these numbers is evaluator/verdict.py (`judge_case`).
"""

from __future__ import annotations

import datetime as _dt
import math
from dataclasses import dataclass
from pathlib import Path

from .case import CaseId
from .catalogue_yaml import read_yaml
from .errors import BaselinesError, EvaluatorError, clipped, did_you_mean, shown
from .locations import REPO_ROOT, is_plain_name
from .models import ModelEntry, check_keys, key_name, parse_models
from .recipes import RECIPES, TTA_MODES, Recipe, build_recipe
from .schema import schema_problems

DEFAULT_BASELINES = REPO_ROOT / "baselines.yaml"
_TOP_KEYS = {"schema", "policy", "recipes", "sources", "models", "documented", "official", "measured"}
_SOURCE_KEYS = {"kind", "runtime", "runtime_version", "n", "date", "reference"}
_ENTRY_KEYS = {"model", "precision", "tta", "top1", "top5", "source", "tolerance", "known_bad", "why"}
_MEASURED_KEYS = {"model", "precision", "tta", "runtime", "runtime_version", "top1", "top5", "n", "fingerprint",
                  "date", "evaluator_version", "predictions", "accepted_gap"}


@dataclass(frozen=True)
class Expected:
    """One expected pair of accuracies with its provenance."""

    model: str
    precision: str
    tta: str
    runtime: str              # the runtime that produced the number ("any" for official benchmarks)
    top1: float
    top5: float | None
    kind: str                 # documented | official | measured
    n: int                    # images the number was measured on (N of the pass/fail rule)
    runtime_version: str
    date: str
    reference: str
    tolerance: float | None = None   # per-entry override of the policy tolerance
    fingerprint: str | None = None   # measured only: the exact image set
    known_bad: str | None = None
    why: str | None = None
    predictions: str | None = None   # measured only: per-image record beside baselines.yaml
    accepted_gap: str | None = None  # measured only: why its documented gap was accepted (--accept-documented-gap)


@dataclass(frozen=True)
class Policy:
    z: float
    documented: float
    cross_runtime: float
    measured: float
    paired_alpha: float  # McNemar p-value below which a paired TOP1 loss fails a case even inside the band


@dataclass(frozen=True)
class Case(CaseId):
    """One regression case: a CaseId judged against documented or official numbers."""

    kind: str  # documented | official

    @property
    def case_id(self) -> str:
        return f"{self}-official" if self.kind == "official" else str(self)


@dataclass(frozen=True)
class Baselines:
    path: Path
    policy: Policy
    recipes: dict[str, Recipe]  # the built-in recipes and those declared in the file's `recipes:` section
    models: dict[str, ModelEntry]
    documented: tuple[Expected, ...]
    official: tuple[Expected, ...]
    measured: tuple[Expected, ...]

    def model(self, name: str) -> ModelEntry:
        if name not in self.models:
            raise BaselinesError(did_you_mean("model", name, self.models))
        return self.models[name]

    def recipe(self, name: str) -> Recipe:
        """A built-in or declared recipe; an unknown name lists them all."""
        if name not in self.recipes:
            raise BaselinesError(did_you_mean("recipe", name, self.recipes))
        return self.recipes[name]



def load_baselines(path: str | Path = DEFAULT_BASELINES) -> Baselines:
    """Read and validate baselines.yaml; every problem is listed in one BaselinesError with its key path (one line
    when there is one problem)."""
    path = Path(path)
    if not path.is_file():
        raise BaselinesError(f"{path}: baselines file not found")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BaselinesError(f"{path}: cannot read the file ({clipped(str(exc), 200)})") from None
    raw = read_yaml(path, text)
    problems = validate_raw(path, raw)
    if len(problems) == 1:
        raise BaselinesError(f"{path}: {problems[0]}")
    if problems:
        listing = "\n  ".join(problems)
        raise BaselinesError(f"{path}: {len(problems)} problem(s):\n  {listing}")
    return parse_raw(path, raw, problems)


def validate_raw(path: Path, raw) -> list[str]:
    """Every problem of a loaded document, one line each with its key path: this module's checks (types, names of
    recipes, bases, models, precisions, sources; duplicates), then what else the JSON Schema finds (evaluator/
    baselines.schema.json, the same rules editors apply) at places not already reported."""
    problems: list[str] = []
    parse_raw(path, raw, problems)
    reported = [line.split(": ", 1)[0] for line in problems]
    for line in schema_problems(raw):
        where = line.split(": ", 1)[0]
        if not any(_related(where, other) for other in reported):
            problems.append(line)
    return problems


def _related(path: str, other: str) -> bool:
    """The same key path, or one inside the other (models.x and models.x.files.float)."""
    if path == other or path == "top level" or other == "top level":
        return True
    return path.startswith((other + ".", other + "[")) or other.startswith((path + ".", path + "["))


def _kind(value) -> str:
    return "nothing" if value is None else f"a {type(value).__name__} {shown(value)}"


def _mapping(value, where: str, problems: list[str]) -> dict | None:
    """The value if it is a mapping, {} if absent; None (after reporting it) for anything else, so that nothing
    depending on it is reported again."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        problems.append(f"{where}: expected a mapping, found {_kind(value)}")
        return None
    return value


def _sequence(value, where: str, problems: list[str]) -> list:
    """The value if it is a list; [] (and a problem unless it is absent) otherwise."""
    if value is None:
        return []
    if not isinstance(value, list):
        problems.append(f"{where}: expected a list, found {_kind(value)}")
        return []
    return value


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_text(entry: dict, key: str, where: str, problems: list[str], optional: bool = False) -> None:
    value = entry.get(key)
    if not (isinstance(value, str) and value.strip()) and not (optional and value is None):
        problems.append(f"{where}.{key}: expected text, found {_kind(value)}")


def parse_raw(path: Path, raw, problems: list[str]) -> Baselines | None:
    """The catalogue of a loaded document, appending every problem the hand-written checks find (None when the top
    level is not a mapping)."""
    if not isinstance(raw, dict):
        problems.append(f"top level: expected a mapping, found {_kind(raw)}")
        return None
    for key in sorted(set(raw) - _TOP_KEYS, key=str):
        problems.append(f"{key_name(key)}: unknown top-level key (allowed: {', '.join(sorted(_TOP_KEYS))})")
    if raw.get("schema") != 1 or isinstance(raw.get("schema"), bool):
        problems.append(f"schema: {shown(raw.get('schema'))}, expected 1")
    # A section or entry already reported as broken is not reported again through what refers to it.
    policy = _parse_policy(_mapping(raw.get("policy"), "policy", problems), problems)
    raw_recipes = _mapping(raw.get("recipes"), "recipes", problems)
    recipes = parse_recipes(raw_recipes or {}, problems)
    raw_models = _mapping(raw.get("models"), "models", problems)
    broken_recipes = set(map(str, raw_recipes or {})) - set(recipes)
    models = parse_models(raw_models or {}, problems, recipes, broken_recipes)
    known = _Known(models, broken_models=set(map(str, raw_models or {})) - set(models), all_models=raw_models is None)
    raw_sources = _mapping(raw.get("sources"), "sources", problems)
    sources, broken_sources = _parse_sources(raw_sources or {}, problems)
    known.sources, known.broken_sources, known.all_sources = sources, broken_sources, raw_sources is None
    documented = tuple(_parse_entries(_sequence(raw.get("documented"), "documented", problems), "documented",
                                      known, problems))
    official = tuple(_parse_entries(_sequence(raw.get("official"), "official", problems), "official",
                                    known, problems))
    measured = tuple(_parse_measured(_sequence(raw.get("measured"), "measured", problems), known, problems))
    return Baselines(path, policy, recipes, models, documented, official, measured)


def parse_recipes(raw: dict, problems: list[str]) -> dict[str, Recipe]:
    """The built-in recipes plus the `recipes:` section's (each complete or `base` + overrides); problems listed."""
    recipes = dict(RECIPES)
    if not isinstance(raw, dict):
        problems.append("recipes: expected a mapping of recipe names to fields")
        return recipes
    for name in raw:
        if not is_plain_name(name):
            problems.append(f"recipes.{key_name(name)}: a recipe name must be a plain name")
            continue
        if name in RECIPES:
            problems.append(f"recipes.{name}: a built-in recipe has this name; declare it under another name "
                            f"with `base: {name}`")
            continue
        try:  # one at a time, so that every bad entry is listed
            recipes[name] = build_recipe(name, raw, RECIPES)
        except EvaluatorError as exc:
            problems.append(str(exc))
    return recipes


@dataclass
class _Known:
    """What entries may refer to, and what was already reported broken (references to it are not reported)."""

    models: dict[str, ModelEntry]
    broken_models: set[str]
    all_models: bool = False  # the models section itself is broken
    sources: dict = None
    broken_sources: set = None
    all_sources: bool = False

    def model_reported(self, model) -> bool:
        return self.all_models or model in self.broken_models or (
            model in self.models and not self.models[model].files)


def _parse_policy(raw: dict | None, problems: list[str]) -> Policy:
    if raw is None:  # reported; the defaults keep the rest of the file checkable
        return Policy(z=1.96, documented=0.0, cross_runtime=0.0, measured=0.0, paired_alpha=0.01)
    tolerance = _mapping(raw.get("tolerance"), "policy.tolerance", problems)
    if tolerance is None:
        tolerance = dict.fromkeys(("documented", "cross_runtime", "measured"), 0.0)
    values = {}
    for key in ("documented", "cross_runtime", "measured"):
        value = tolerance.get(key)
        if not _is_number(value) or not 0 <= value < 0.5:
            problems.append(f"policy.tolerance.{key}: {shown(value)} must be a fraction in [0, 0.5)")
            value = 0.0
        values[key] = float(value)
    z = raw.get("z")
    if not _is_number(z) or not 0 < z < 10:
        problems.append(f"policy.z: {shown(z)} must be a number in (0, 10)")
        z = 1.96
    alpha = raw.get("paired_alpha")
    if not isinstance(alpha, float) or not 0 < alpha < 0.5:
        problems.append(f"policy.paired_alpha: {shown(alpha)} must be a p-value in (0, 0.5)")
        alpha = 0.01
    return Policy(z=float(z), paired_alpha=alpha, **values)


def _parse_sources(raw: dict, problems: list[str]) -> tuple[dict[str, dict], set[str]]:
    """The usable sources by name, and the names of those with a problem (already reported)."""
    sources, broken = {}, set()
    for name, source in raw.items():
        where = f"sources.{key_name(name)}"
        before = len(problems)
        if not isinstance(name, str):
            problems.append(f"{where}: a source name must be text")
        elif check_keys(source, where, _SOURCE_KEYS, _SOURCE_KEYS, problems):
            if source.get("kind") not in ("documented", "official"):
                problems.append(f"{where}.kind: {shown(source.get('kind'))} must be documented or official")
            if not isinstance(source.get("n"), int) or isinstance(source.get("n"), bool) or source["n"] <= 0:
                problems.append(f"{where}.n: {shown(source.get('n'))} must be a positive number of images")
            for key in ("runtime", "runtime_version", "reference"):
                _check_text(source, key, where, problems)
            if not isinstance(source.get("date"), (str, _dt.date)):
                problems.append(f"{where}.date: expected a date, found {_kind(source.get('date'))}")
        if len(problems) == before:
            sources[name] = source
        elif isinstance(name, str):
            broken.add(name)
    return sources, broken


def _check_accuracy(value, where: str, problems: list[str], allow_null: bool = False) -> None:
    if value is None and allow_null:
        return
    if not _is_number(value) or not 0.0 <= value <= 1.0:
        problems.append(f"{where}: {shown(value)} must be an accuracy fraction in [0, 1]")


def _check_case_keys(entry: dict, where: str, known: _Known, problems: list[str]) -> bool:
    """Report the entry's problems; False also when it refers to something already reported broken."""
    before = len(problems)
    model, precision, tta = entry.get("model"), entry.get("precision"), entry.get("tta")
    models = known.models
    usable = not (isinstance(model, str) and known.model_reported(model))
    if not usable:
        pass
    elif not isinstance(model, str) or model not in models:
        problems.append(f"{where}.model: " + did_you_mean("model", model, models))
    elif not isinstance(precision, str) or precision not in models[model].files:
        problems.append(f"{where}.precision: " + did_you_mean("precision", precision, models[model].files))
    if not isinstance(tta, str) or tta not in TTA_MODES:
        problems.append(f"{where}.tta: " + did_you_mean("TTA mode", tta, TTA_MODES))
    _check_accuracy(entry.get("top1"), f"{where}.top1", problems)
    _check_accuracy(entry.get("top5"), f"{where}.top5", problems, allow_null=True)
    top1, top5 = entry.get("top1"), entry.get("top5")
    if isinstance(top1, float) and isinstance(top5, float) and top5 < top1:
        problems.append(f"{where}: top5 {top5} is below top1 {top1}")
    return usable and len(problems) == before


def _parse_entries(raw: list, section: str, known: _Known, problems: list[str]):
    seen = {}
    for i, entry in enumerate(raw):
        where = f"{section}[{i}]"
        before = len(problems)
        if not check_keys(entry, where, _ENTRY_KEYS, {"model", "precision", "tta", "top1", "source"}, problems):
            continue
        usable = _check_case_keys(entry, where, known, problems)
        name = entry.get("source")
        source = known.sources.get(name) if isinstance(name, str) else None
        if source is None:
            if not known.all_sources and not (isinstance(name, str) and name in known.broken_sources):
                # (a broken source was reported under sources)
                problems.append(f"{where}.source: " + did_you_mean("source", name, known.sources))
            continue
        if source.get("kind") != section:
            problems.append(f"{where}.source: {name} is of kind {source.get('kind')}, not {section}")
        tolerance = entry.get("tolerance")
        if tolerance is not None and (not _is_number(tolerance) or not 0 <= tolerance < 0.5):
            problems.append(f"{where}.tolerance: {shown(tolerance)} must be a fraction in [0, 0.5)")
        for key in ("known_bad", "why"):
            _check_text(entry, key, where, problems, optional=True)
        if len(problems) > before or not usable:
            continue
        key = (entry["model"], entry["precision"], entry["tta"], source["runtime"])
        if key in seen:
            problems.append(f"{where}: duplicate of {section}[{seen[key]}] ({'/'.join(map(str, key))})")
            continue
        seen[key] = i
        yield Expected(
            model=entry["model"], precision=entry["precision"], tta=entry["tta"], runtime=source["runtime"],
            top1=float(entry["top1"]), top5=None if entry.get("top5") is None else float(entry["top5"]),
            kind=section, n=int(source["n"]), runtime_version=str(source["runtime_version"]),
            date=str(source["date"]), reference=str(source["reference"]),
            tolerance=None if tolerance is None else float(tolerance),
            known_bad=entry.get("known_bad"), why=entry.get("why"),
        )


def _parse_measured(raw: list, known: _Known, problems: list[str]):
    seen = {}
    for i, entry in enumerate(raw):
        where = f"measured[{i}]"
        before = len(problems)
        if not check_keys(entry, where, _MEASURED_KEYS,
                          _MEASURED_KEYS - {"predictions", "evaluator_version", "accepted_gap"}, problems):
            continue
        usable = _check_case_keys(entry, where, known, problems)
        if entry.get("top5") is None:
            problems.append(f"{where}.top5: a measured entry needs top5")
        if not isinstance(entry["n"], int) or isinstance(entry["n"], bool) or entry["n"] <= 0:
            problems.append(f"{where}.n: {shown(entry['n'])} must be a positive number of images")
        for key in ("runtime", "runtime_version", "fingerprint"):
            _check_text(entry, key, where, problems)
        for key in ("evaluator_version", "accepted_gap"):
            _check_text(entry, key, where, problems, optional=True)
        record = entry.get("predictions")
        if record is not None and not (isinstance(record, str) and record.startswith("baselines/")
                                       and is_plain_name(record.removeprefix("baselines/"))):
            problems.append(f"{where}.predictions: {shown(record)} must be baselines/<plain file name>")
        if len(problems) > before or not usable:
            continue
        key = (entry["model"], entry["precision"], entry["tta"], entry["runtime"], entry["fingerprint"])
        if key in seen:
            problems.append(f"{where}: duplicate of measured[{seen[key]}]")
            continue
        seen[key] = i
        yield Expected(
            model=entry["model"], precision=entry["precision"], tta=entry["tta"], runtime=entry["runtime"],
            top1=float(entry["top1"]), top5=float(entry["top5"]), kind="measured", n=int(entry["n"]),
            runtime_version=str(entry["runtime_version"]), date=str(entry["date"]),
            reference="pytest --update-baselines", fingerprint=str(entry["fingerprint"]),
            predictions=entry.get("predictions"),
            accepted_gap=None if entry.get("accepted_gap") is None else str(entry["accepted_gap"]),
        )


# --- cases -------------------------------------------------------------------------------------------------


def list_cases(baselines: Baselines) -> list[Case]:
    """Every regression case: per documented (model, precision, TTA) and per official entry, one per runtime."""
    cases = []
    for kind, entries in (("documented", baselines.documented), ("official", baselines.official)):
        seen = set()
        for entry in entries:
            combo = (entry.model, entry.precision, entry.tta)
            if combo in seen:
                continue
            seen.add(combo)
            for runtime in baselines.models[entry.model].runtimes:
                cases.append(Case(entry.model, entry.precision, entry.tta, runtime, kind))
    return cases
