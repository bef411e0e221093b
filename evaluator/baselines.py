"""baselines.yaml: load and validate, list the regression cases, record measured baselines.

The pass/fail rule that compares a case with these numbers lives in evaluator/verdict.py (`judge_case`).
"""

from __future__ import annotations

import datetime as _dt
import io
import math
from dataclasses import dataclass
from pathlib import Path

from .case import CaseId
from .errors import BaselinesError, EvaluatorError, clipped, did_you_mean, shown
from .locations import REPO_ROOT, is_plain_name
from .models import ModelEntry, check_keys, key_name, parse_models
from .preprocess import RECIPES, TTA_MODES, Recipe

DEFAULT_BASELINES = REPO_ROOT / "baselines.yaml"
KINDS = ("documented", "official", "measured")
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


def _yaml():
    from ruamel.yaml import YAML

    yaml = YAML(typ="rt")  # round-trip, safe: only plain YAML types are constructed
    yaml.preserve_quotes = True
    yaml.width = 4096
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.representer.add_representer(
        type(None), lambda representer, _: representer.represent_scalar("tag:yaml.org,2002:null", "null"))
    return yaml


# A catalogue has a few thousand YAML nodes; aliases that expand beyond this are refused before anything is built.
MAX_EXPANDED_NODES = 100_000


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
    try:
        # The safe loader builds plain types only: a tag such as !!python/object is refused, never constructed.
        from ruamel.yaml import YAML

        _check_alias_expansion(path, YAML(typ="safe", pure=True).parse(text))
        raw = YAML(typ="safe", pure=True).load(text)
    except BaselinesError:
        raise
    except Exception as exc:  # ruamel raises many parser error types
        raise _yaml_error(path, exc) from None
    problems = validate_raw(path, raw)
    if len(problems) == 1:
        raise BaselinesError(f"{path}: {problems[0]}")
    if problems:
        listing = "\n  ".join(problems)
        raise BaselinesError(f"{path}: {len(problems)} problem(s):\n  {listing}")
    return _parse(path, raw, problems)


def validate_raw(path: Path, raw) -> list[str]:
    """Every problem of a loaded document, one line each with its key path: this module's checks (types, names of
    recipes, bases, models, precisions, sources; duplicates), then what else the JSON Schema finds (evaluator/
    baselines.schema.json, the same rules editors apply) at places not already reported."""
    from .schema import schema_problems

    problems: list[str] = []
    _parse(path, raw, problems)
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


def _check_alias_expansion(path: Path, events) -> None:
    """Refuse a document whose aliases expand to more than MAX_EXPANDED_NODES nodes (a "billion laughs" bomb),
    counting from the parser's events, before any value is built."""
    from ruamel.yaml.events import AliasEvent, CollectionEndEvent, CollectionStartEvent, ScalarEvent

    size_of_anchor: dict[str, int] = {}
    open_collections: list[list] = [[0, None]]  # [nodes so far, anchor] per open collection
    for event in events:
        if isinstance(event, AliasEvent):
            open_collections[-1][0] += size_of_anchor.get(event.anchor, 1)
        elif isinstance(event, ScalarEvent):
            open_collections[-1][0] += 1
            if event.anchor:
                size_of_anchor[event.anchor] = 1
        elif isinstance(event, CollectionStartEvent):
            open_collections.append([1, event.anchor])
        elif isinstance(event, CollectionEndEvent):
            nodes, anchor = open_collections.pop()
            if anchor:
                size_of_anchor[anchor] = nodes
            open_collections[-1][0] += nodes
        if open_collections[-1][0] > MAX_EXPANDED_NODES:
            line = event.start_mark.line + 1 if getattr(event, "start_mark", None) else "?"
            raise BaselinesError(f"{path}, line {line}: YAML aliases expand to more than {MAX_EXPANDED_NODES:,} "
                                 "values; refused (an alias bomb?)")


def _yaml_error(path: Path, exc: Exception) -> BaselinesError:
    """One line naming the file, the line and the parser's problem (e.g. a duplicate key or an unsafe tag)."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    where = f"{path}, line {mark.line + 1}" if mark is not None else str(path)
    if "constructor for the tag" in problem:
        problem += " (only plain YAML values are accepted; tags such as !!python/object are refused)"
    return BaselinesError(f"{where}: not valid YAML: {clipped(problem, 300)}")


def update_lock_path(path: Path) -> Path:
    """The lock that serialises updates of one baselines file: a hidden file beside it (`.baselines.yaml.lock`,
    ignored by git), so that every write stays in the catalogue's own directory."""
    path = Path(path)
    return path.parent / f".{path.name}"


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


def _parse(path: Path, raw, problems: list[str]) -> Baselines | None:
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
    from .recipes import build_recipe

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


# --- update -----------------------------------------------------------------------------------------------


def record_relpath(case: CaseId, fingerprint: str) -> str:
    """Where a measured baseline's per-image record lives, relative to baselines.yaml."""
    return f"baselines/{case}-{fingerprint}.csv.gz"


@dataclass(frozen=True)
class MeasuredRecord(CaseId):
    """What --update-baselines writes for one case that ran."""

    runtime_version: str
    top1: float
    top5: float
    n: int
    fingerprint: str
    evaluator_version: str
    predictions: str | None = None
    accepted_gap: str | None = None  # required when the value fails its documented check
    record_changed: bool = False  # the per-image record file was (re)written with other predictions

    @property
    def key(self) -> tuple[CaseId, str]:
        return (self.identity, self.fingerprint)


@dataclass
class UpdateSummary:
    """What update_measured did: one line per changed entry, the count left alone, entries no case uses."""

    changes: list[str]
    unchanged: int
    unused: list[str]  # measured entries whose model/precision/TTA/runtime no regression case has any more
    pruned: list[str]  # of those, the ones removed (--prune-baselines)

    def lines(self) -> list[str]:
        lines = list(self.changes) + [f"{self.unchanged} measured entr{'y' if self.unchanged == 1 else 'ies'} "
                                      f"unchanged (file and dates left as they were)"]
        lines += [f"pruned: {entry}" for entry in self.pruned]
        lines += [f"unused (no case uses it; --prune-baselines removes it): {entry}"
                  for entry in self.unused if entry not in self.pruned]
        return lines


def _measured_key(entry) -> tuple[CaseId, str]:
    return (CaseId(str(entry["model"]), str(entry["precision"]), str(entry["tta"]), str(entry["runtime"])),
            str(entry["fingerprint"]))


def unused_records(baselines_path: Path, referenced: set[str]) -> list[Path]:
    """Per-image record files under baselines/ that no measured entry refers to."""
    directory = Path(baselines_path).parent / "baselines"
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.glob("*.csv.gz") if f"baselines/{p.name}" not in referenced)


def update_measured(path: str | Path, records: list[MeasuredRecord], today: str | None = None,
                    prune: bool = False) -> UpdateSummary:
    """Record measured baselines in baselines.yaml, writing only entries whose values changed. Writes atomically.

    Documented and official entries, comments, order and the dates of unchanged entries are kept; only the
    `measured:` list changes. Entries (and per-image records) that no regression case uses any more are listed,
    and removed with prune=True.
    """
    from ruamel.yaml.comments import CommentedSeq

    from .fileio import atomic_write_text, file_lock

    path = Path(path)
    today = today or _dt.date.today().isoformat()
    changes, unchanged = [], 0
    with file_lock(update_lock_path(path)):
        yaml = _yaml()
        data = yaml.load(path.read_text(encoding="utf-8"))
        if not data.get("measured"):
            data["measured"] = CommentedSeq()
        measured = data["measured"]
        for record in sorted(records, key=lambda r: r.key):
            existing = next((m for m in measured if _measured_key(m) == record.key), None)
            change = _apply_record(measured, existing, record, today)
            if change:
                changes.append(change)
            else:
                unchanged += 1
        unused, pruned = _unused_entries(path, data, measured, prune)
        if changes or any(entry.startswith("measured ") for entry in pruned):
            text = _dump(data)
            problems: list[str] = []
            _parse(path, _yaml().load(text), problems)
            if problems:  # never leave a file the next run cannot read
                raise BaselinesError(f"{path}: update refused, it would produce: " + "; ".join(problems))
            atomic_write_text(path, text)
        for entry in pruned:
            if entry.startswith("per-image record "):
                (path.parent / entry.removeprefix("per-image record ")).unlink(missing_ok=True)
    return UpdateSummary(changes, unchanged, unused, pruned)


def _apply_record(measured, existing, record: MeasuredRecord, today: str) -> str | None:
    """Add or update one entry in place; the 'old -> new' line, or None when nothing changed."""
    from ruamel.yaml.comments import CommentedMap

    case = f"{record.identity} [{record.fingerprint}, n={record.n}]"
    values = {"top1": round(record.top1, 6), "top5": round(record.top5, 6)}
    if existing is None:
        entry = CommentedMap((name, getattr(record, name))
                             for name in ("model", "precision", "tta", "runtime", "runtime_version"))
        _store(entry, record, values, today)
        measured.append(entry)
        gap = f" (documented gap accepted: {record.accepted_gap})" if record.accepted_gap else ""
        return f"{case}: new top1 {values['top1']:.4f}, top5 {values['top5']:.4f}{gap}"
    parts = [f"{metric} {float(existing[metric]):.4f} -> {new:.4f}" for metric, new in values.items()
             if float(existing[metric]) != new]
    if int(existing["n"]) != record.n:
        parts.append(f"n {existing['n']} -> {record.n}")
    if str(existing["runtime_version"]) != record.runtime_version:
        parts.append(f"runtime_version {existing['runtime_version']} -> {record.runtime_version}")
    if existing.get("accepted_gap") != record.accepted_gap:
        parts.append(f"accepted_gap {existing.get('accepted_gap')!r} -> {record.accepted_gap!r}")
    if record.predictions and existing.get("predictions") != record.predictions:
        parts.append(f"per-image record {existing.get('predictions')} -> {record.predictions}")
    elif record.record_changed:
        parts.append("per-image record rewritten (other predictions, same totals)")
    if not parts:
        return None
    _store(existing, record, values, today)
    return f"{case}: " + ", ".join(parts)


def _store(entry, record: MeasuredRecord, values: dict, today: str) -> None:
    """Write a record's values into its entry; keys already there keep their place in the file."""
    entry.update(values)
    entry.update(runtime_version=record.runtime_version, n=record.n, fingerprint=record.fingerprint, date=today,
                 evaluator_version=record.evaluator_version)
    if record.predictions:
        entry["predictions"] = record.predictions
    if record.accepted_gap:
        entry["accepted_gap"] = record.accepted_gap
    elif "accepted_gap" in entry:
        del entry["accepted_gap"]


def _unused_entries(path: Path, data, measured, prune: bool) -> tuple[list[str], list[str]]:
    """Measured entries and record files no regression case uses: (listed, removed from `measured`)."""
    problems: list[str] = []
    parsed = _parse(path, _yaml().load(_dump(data)), problems)
    if parsed is None:
        return [], []
    cases = {c.identity for c in list_cases(parsed)}
    unused, pruned, keep = [], [], []
    for entry in measured:
        case, fingerprint = _measured_key(entry)
        if case in cases:
            keep.append(entry)
            continue
        unused.append(f"measured {case} [{fingerprint}]")
    referenced = {str(e.get("predictions")) for e in keep}
    unused += [f"per-image record {p.relative_to(path.parent)}" for p in unused_records(path, referenced)]
    if prune and len(keep) != len(measured):
        pruned = [u for u in unused if u.startswith("measured ")]
        measured[:] = keep
    if prune:
        pruned += [u for u in unused if u.startswith("per-image record ")]
    return unused, pruned


def _dump(data) -> str:
    buffer = io.StringIO()
    _yaml().dump(data, buffer)
    return buffer.getvalue()
