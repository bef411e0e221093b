"""baselines.yaml: load and validate, list the regression cases, pick each case's expected values, judge, update.

The pass/fail rule lives here and only here (`judge`); tests, CLI and report call it.
"""

from __future__ import annotations

import datetime as _dt
import io
import math
from dataclasses import dataclass
from pathlib import Path

from .errors import BaselinesError, clipped, did_you_mean, shown
from .locations import REPO_ROOT, is_plain_name
from .metrics import band as band_half_width
from .models import ModelEntry, check_keys, key_name, parse_models
from .preprocess import TTA_MODES

DEFAULT_BASELINES = REPO_ROOT / "baselines.yaml"
KINDS = ("documented", "official", "measured")
_TOP_KEYS = {"schema", "policy", "sources", "models", "documented", "official", "measured"}
_SOURCE_KEYS = {"kind", "runtime", "runtime_version", "n", "date", "reference"}
_ENTRY_KEYS = {"model", "precision", "tta", "top1", "top5", "source", "tolerance", "known_bad", "why"}
_MEASURED_KEYS = {"model", "precision", "tta", "runtime", "runtime_version", "top1", "top5", "n", "fingerprint",
                  "date", "evaluator_version", "predictions"}


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


@dataclass(frozen=True)
class Policy:
    z: float
    documented: float
    cross_runtime: float
    measured: float
    paired_alpha: float  # McNemar p-value below which a paired TOP1 loss fails a case even inside the band


@dataclass(frozen=True)
class Case:
    """One regression case: model x precision x TTA x runtime, judged against documented or official numbers."""

    model: str
    precision: str
    tta: str
    runtime: str
    kind: str  # documented | official

    @property
    def case_id(self) -> str:
        suffix = "-official" if self.kind == "official" else ""
        return f"{self.model}-{self.precision}-{self.tta}-{self.runtime}{suffix}"


@dataclass(frozen=True)
class Baselines:
    path: Path
    policy: Policy
    models: dict[str, ModelEntry]
    documented: tuple[Expected, ...]
    official: tuple[Expected, ...]
    measured: tuple[Expected, ...]

    def model(self, name: str) -> ModelEntry:
        if name not in self.models:
            raise BaselinesError(did_you_mean("model", name, self.models))
        return self.models[name]


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
    problems: list[str] = []
    baselines = _parse(path, raw, problems)
    if len(problems) == 1:
        raise BaselinesError(f"{path}: {problems[0]}")
    if problems:
        listing = "\n  ".join(problems)
        raise BaselinesError(f"{path}: {len(problems)} problem(s):\n  {listing}")
    return baselines


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
    """The lock that serialises updates of one baselines file: in the temporary directory, keyed by the file's
    resolved path, so no lock file is left beside baselines.yaml in the repository."""
    import hashlib
    import tempfile

    key = hashlib.sha256(str(Path(path).resolve()).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"evaluator-baselines-{key}"


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
    raw_models = _mapping(raw.get("models"), "models", problems)
    models = parse_models(raw_models or {}, problems)
    known = _Known(models, broken_models=set(map(str, raw_models or {})) - set(models), all_models=raw_models is None)
    raw_sources = _mapping(raw.get("sources"), "sources", problems)
    sources, broken_sources = _parse_sources(raw_sources or {}, problems)
    known.sources, known.broken_sources, known.all_sources = sources, broken_sources, raw_sources is None
    documented = tuple(_parse_entries(_sequence(raw.get("documented"), "documented", problems), "documented",
                                      known, problems))
    official = tuple(_parse_entries(_sequence(raw.get("official"), "official", problems), "official",
                                    known, problems))
    measured = tuple(_parse_measured(_sequence(raw.get("measured"), "measured", problems), known, problems))
    return Baselines(path, policy, models, documented, official, measured)


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
        if not check_keys(entry, where, _MEASURED_KEYS, _MEASURED_KEYS - {"predictions", "evaluator_version"},
                          problems):
            continue
        usable = _check_case_keys(entry, where, known, problems)
        if entry.get("top5") is None:
            problems.append(f"{where}.top5: a measured entry needs top5")
        if not isinstance(entry["n"], int) or isinstance(entry["n"], bool) or entry["n"] <= 0:
            problems.append(f"{where}.n: {shown(entry['n'])} must be a positive number of images")
        for key in ("runtime", "runtime_version", "fingerprint"):
            _check_text(entry, key, where, problems)
        _check_text(entry, "evaluator_version", where, problems, optional=True)
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


@dataclass(frozen=True)
class Choice:
    """The expected values a case is judged against, with the tolerance and why it was chosen."""

    expected: Expected
    tolerance: float
    basis: str  # e.g. "measured on litert, same 700 images"


def choose_expected(baselines: Baselines, case: Case, fingerprint: str | None) -> Choice:
    """Measured for this runtime and image set (tight), else documented for this runtime, else cross-runtime."""
    policy = baselines.policy
    if case.kind == "official":
        entry = next(e for e in baselines.official if (e.model, e.precision, e.tta) == (case.model, case.precision, case.tta))
        return Choice(entry, _tol(entry, policy.documented), f"official benchmark ({entry.reference})")
    combo = (case.model, case.precision, case.tta)
    for entry in baselines.measured:
        if (entry.model, entry.precision, entry.tta, entry.runtime, entry.fingerprint) == (*combo, case.runtime, fingerprint):
            return Choice(entry, policy.measured, f"measured on {entry.runtime_version}, same {entry.n} images")
    documented = [e for e in baselines.documented if (e.model, e.precision, e.tta) == combo]
    for entry in documented:
        if entry.runtime == case.runtime:
            return Choice(entry, _tol(entry, policy.documented), f"documented for {entry.runtime_version}")
    entry = documented[0]
    return Choice(entry, max(_tol(entry, policy.documented), policy.cross_runtime),
                  f"documented for {entry.runtime_version}, another runtime: cross-runtime tolerance")


def _tol(entry: Expected, default: float) -> float:
    return default if entry.tolerance is None else entry.tolerance


# --- the pass/fail rule --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Judgement:
    metric: str
    measured: float
    expected: float
    band: float
    n: int
    n_population: int

    @property
    def delta(self) -> float:
        return self.measured - self.expected

    @property
    def passed(self) -> bool:
        # A tiny epsilon keeps a value printed at 4 decimals exactly on the band edge from flipping.
        return abs(self.delta) <= self.band + 1e-9

    def describe(self) -> str:
        sign = "+" if self.delta >= 0 else ""
        return (f"{self.metric} measured {self.measured:.4f}, expected {self.expected:.4f} "
                f"(delta {sign}{self.delta:.4f}, band ±{self.band:.4f}, n={self.n:,} of {self.n_population:,})")


def judge(metric: str, measured: float, expected: float, n: int, n_population: int, tolerance: float,
          z: float) -> Judgement:
    """DESIGN's rule: |measured - expected| <= tolerance + z * SE(expected, n) * sqrt((N - n) / (N - 1)), two-sided."""
    if n <= 0:
        raise ValueError(f"cannot judge {metric} on {n} images")
    n_population = max(n_population, n)
    band = band_half_width(expected, n, n_population, tolerance, z)
    if math.isnan(measured):
        band = float("nan")
    return Judgement(metric, measured, expected, band, n, n_population)


def case_verdict(judgements: list[Judgement], paired=None, failed_images: int = 0,
                 alpha: float = 0.01) -> tuple[bool, str]:
    """The whole pass/fail rule of a case: (passed, why).

    Damaged images fail the case. With a per-image baseline, identical predictions pass whatever the band says,
    and a significant paired TOP1 loss (exact McNemar p < alpha) fails even inside the band.
    """
    if failed_images:
        return False, f"{failed_images} image(s) could not be evaluated"
    if paired is not None and paired.n_common and paired.identical_predictions:
        return True, f"identical per-image predictions on {paired.n_common} images"
    if paired is not None and paired.top1_lost > paired.top1_gained and paired.top1_p < alpha:
        return False, f"significant paired TOP1 loss (p={paired.top1_p:.2g} < {alpha})"
    failed = [j.metric for j in judgements if not j.passed]
    if failed:
        return False, f"{' and '.join(failed)} outside the band"
    return True, "inside the band"


# --- update -----------------------------------------------------------------------------------------------


def record_relpath(model: str, precision: str, tta: str, runtime: str, fingerprint: str) -> str:
    """Where a measured baseline's per-image record lives, relative to baselines.yaml."""
    return f"baselines/{model}-{precision}-{tta}-{runtime}-{fingerprint}.csv.gz"


@dataclass(frozen=True)
class MeasuredRecord:
    """What --update-baselines writes for one case that ran."""

    model: str
    precision: str
    tta: str
    runtime: str
    runtime_version: str
    top1: float
    top5: float
    n: int
    fingerprint: str
    evaluator_version: str
    predictions: str | None = None


def update_measured(path: str | Path, records: list[MeasuredRecord], today: str | None = None) -> list[str]:
    """Record measured baselines in baselines.yaml; returns one 'old -> new' line per value. Writes atomically.

    Documented and official entries, comments and order are kept; only the `measured:` list changes.
    """
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    from .artifacts import atomic_write_text, file_lock

    path = Path(path)
    today = today or _dt.date.today().isoformat()
    changes = []
    with file_lock(update_lock_path(path)):
        yaml = _yaml()
        data = yaml.load(path.read_text(encoding="utf-8"))
        if not data.get("measured"):
            data["measured"] = CommentedSeq()
        measured = data["measured"]
        for record in sorted(records, key=lambda r: (r.model, r.precision, r.tta, r.runtime)):
            key = (record.model, record.precision, record.tta, record.runtime, record.fingerprint)
            existing = next((m for m in measured if (m["model"], str(m["precision"]), m["tta"], m["runtime"],
                                                     str(m["fingerprint"])) == key), None)
            case = f"{record.model}-{record.precision}-{record.tta}-{record.runtime} [{record.fingerprint}, n={record.n}]"
            values = {"top1": round(record.top1, 6), "top5": round(record.top5, 6)}
            if existing is None:
                entry = CommentedMap()
                for field in ("model", "precision", "tta", "runtime", "runtime_version"):
                    entry[field] = getattr(record, field)
                entry.update(values)
                entry.update(n=record.n, fingerprint=record.fingerprint, date=today,
                             evaluator_version=record.evaluator_version)
                if record.predictions:
                    entry["predictions"] = record.predictions
                measured.append(entry)
                changes.append(f"{case}: new top1 {values['top1']:.4f}, top5 {values['top5']:.4f}")
                continue
            for metric, new in values.items():
                old = existing[metric]
                if float(old) != new:
                    changes.append(f"{case}: {metric} {float(old):.4f} -> {new:.4f}")
                existing[metric] = new
            existing.update(runtime_version=record.runtime_version, n=record.n, date=today,
                            evaluator_version=record.evaluator_version)
            if record.predictions:
                existing["predictions"] = record.predictions
        buffer = io.StringIO()
        yaml.dump(data, buffer)
        problems: list[str] = []
        _parse(path, _yaml().load(buffer.getvalue()), problems)
        if problems:  # never leave a file the next run cannot read
            raise BaselinesError(f"{path}: update refused, it would produce: " + "; ".join(problems))
        atomic_write_text(path, buffer.getvalue())
    return changes
