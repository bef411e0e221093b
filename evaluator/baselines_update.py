"""--update-baselines and add-model's writes to baselines.yaml: round-trip YAML (comments, order and quoting kept),
one writer at a time (a lock beside the file), measured entries added, updated, listed as unused or pruned."""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from pathlib import Path

from ruamel.yaml.comments import CommentedMap, CommentedSeq

from .baselines import list_cases, parse_raw
from .case import CaseId
from .catalogue_yaml import dump, read_yaml, round_trip_yaml
from .errors import BaselinesError
from .fileio import atomic_write_text, file_lock


def update_lock_path(path: Path) -> Path:
    """The lock that serialises updates of one baselines file: a hidden file beside it (`.baselines.yaml.lock`,
    ignored by git), so that every write stays in the catalogue's own directory."""
    path = Path(path)
    return path.parent / f".{path.name}"


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
    path = Path(path)
    today = today or _dt.date.today().isoformat()
    changes, unchanged = [], 0
    with file_lock(update_lock_path(path)):
        data = round_trip_yaml().load(path.read_text(encoding="utf-8"))
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
            text = dump(data)
            problems: list[str] = []
            parse_raw(path, read_yaml(path, text), problems)
            if problems:  # never leave a file the next run cannot read
                raise BaselinesError(f"{path}: update refused, it would produce: " + "; ".join(problems))
            atomic_write_text(path, text)
        for entry in pruned:
            if entry.startswith("per-image record "):
                (path.parent / entry.removeprefix("per-image record ")).unlink(missing_ok=True)
    return UpdateSummary(changes, unchanged, unused, pruned)


def _apply_record(measured, existing, record: MeasuredRecord, today: str) -> str | None:
    """Add or update one entry in place; the 'old -> new' line, or None when nothing changed."""
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
    parsed = parse_raw(path, read_yaml(path, dump(data)), problems)
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
