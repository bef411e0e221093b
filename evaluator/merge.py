"""Merge the artifacts directories of several jobs into one: image shards become the artifact an unsharded run writes.

    python -m evaluator merge --artifacts-dir merged shards/images-1 shards/images-2 shards/images-3 shards/cases-1

Image shards (evaluator/shard.py) are grouped by case (model file name, TTA, runtime). A group is merged only when
its shards belong together (same model sha256, recipe, runtime and version, TTA, input size, dataset fingerprint,
cache key and shard count) and cover every image exactly once; the result is written under the normal cache key,
byte-identical to the predictions.csv of an unsharded run, so a later `pytest -m regression --artifacts-dir merged`
reuses it and predicts nothing. Complete artifacts found among the inputs (case-sharded jobs) are copied as they are.
Every refused group is one line naming its shards and counts; the other groups are still written.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import ArtifactError, EvaluatorError
from .fileio import atomic_write_bytes, file_lock
from .prediction_store import META_JSON, PREDICTIONS_CSV, PREDICTIONS_DIR, TABLE_META_KEY, PredictionStore, run_dir
from .predictions import Predictions
from .shard import SHARD_META_KEY, Shard, shard_of

# meta.json fields on which all shards of one case must agree: (key, how a message names it)
SAME_FIELDS = (
    ("model_sha256", "model sha256"), ("recipe", "recipe"), ("runtime", "runtime"),
    ("runtime_version", "runtime version"), ("tta", "TTA"), ("input_size", "input size"),
    ("dataset_fingerprint", "dataset fingerprint"), ("artifact_key", "cache key"),
)


@dataclass(frozen=True)
class Found:
    """A finished predictions artifact among the inputs."""

    directory: Path
    meta: dict
    root: Path  # the input directory it was found under (what messages name)

    @property
    def shard(self) -> Shard | None:
        return shard_of(self.meta)

    @property
    def case(self) -> str:
        """Model file name, TTA and runtime: what one case's shards share even when something else differs."""
        return f"{Path(self.meta['model_path']).stem}-{self.meta['tta']}-{self.meta['runtime']}"


@dataclass(frozen=True)
class Merged:
    """One artifact written (or found already there) in the output directory."""

    directory: Path
    n_images: int
    shards: int  # 0 for a complete artifact copied as it was
    action: str  # "merged", "copied" or "unchanged"


def find_artifacts(roots: list[Path]) -> list[Found]:
    """Finished artifacts under each root: the root itself, root/predictions/*, or root/*/predictions/* (a directory
    of downloaded job artifacts). A root without any is an error naming it."""
    found = []
    for root in map(Path, roots):
        if not root.is_dir():
            raise EvaluatorError(f"{root}: not a directory")
        metas = ([root / META_JSON] if (root / META_JSON).is_file() else
                 sorted(root.glob(f"predictions/*/{META_JSON}")) + sorted(root.glob(f"*/predictions/*/{META_JSON}")))
        if not metas:
            raise EvaluatorError(f"{root}: no finished predictions artifact (looked for {META_JSON} in "
                                 f"{root}, {root}/predictions/* and {root}/*/predictions/*)")
        found += [Found(path.parent, _checked_meta(path.parent), root) for path in metas]
    return found


def _checked_meta(directory: Path) -> dict:
    """meta.json of an artifact, with what merging needs; ArtifactError naming the file otherwise."""
    meta = PredictionStore(directory).meta()
    missing = [key for key in ("model_path", "tta", "runtime", "artifact_key", TABLE_META_KEY) if key not in meta]
    if missing:
        raise ArtifactError(f"{directory / META_JSON}: no {', '.join(missing)}; not a predictions artifact this "
                            "version of the evaluator wrote")
    try:
        shard_of(meta)
    except EvaluatorError as exc:
        raise ArtifactError(f"{directory / META_JSON}: {exc}") from None
    return meta


def merge_artifacts(roots: list[Path], out_dir: Path) -> list[Merged]:
    """Merge the shards and copy the complete artifacts found under `roots` into out_dir/predictions.

    Every group that checks out is written; the refused ones raise one EvaluatorError at the end, a line each.
    """
    found = find_artifacts(roots)
    groups: dict[str, list[Found]] = defaultdict(list)
    complete: dict[str, Found] = {}
    for artifact in found:
        if artifact.shard is None:
            complete.setdefault(artifact.directory.name, artifact)
        else:
            groups[artifact.case].append(artifact)
    merged, problems = [], []
    for case, shards in sorted(groups.items()):
        problem = check_shards(case, shards)
        if problem:
            problems.append(problem)
            continue
        try:
            merged.append(_write_merged(shards, out_dir))
        except EvaluatorError as exc:
            problems.append(f"{case}: {exc}")
    for name, artifact in sorted(complete.items()):
        try:
            merged.append(_copy_complete(artifact, out_dir))
        except EvaluatorError as exc:
            problems.append(f"{name}: {exc}")
    if problems:
        raise EvaluatorError("\n".join(problems))
    return merged


def check_shards(case: str, shards: list[Found]) -> str | None:
    """One line saying why these shards cannot be merged, or None when they belong together and cover every image."""
    shards = sorted(shards, key=lambda s: (s.shard.index, str(s.directory)))
    reference = shards[0]
    for key, name in SAME_FIELDS + ((SHARD_META_KEY, "shard count"),):
        odd = [s for s in shards if _field(s, key) != _field(reference, key)]
        if odd:
            others = [s for s in shards if _field(s, key) == _field(reference, key)]
            return (f"refusing to merge {case}: {_names(odd)} in {', '.join(str(s.root) for s in odd)} "
                    f"{'has' if len(odd) == 1 else 'have'} {name} {_short(_field(odd[0], key))}, "
                    f"{_names(others)} {'has' if len(others) == 1 else 'have'} {_short(_field(reference, key))}")
    count = reference.shard.count
    n_images = int(reference.meta[SHARD_META_KEY]["dataset_n_images"])
    by_index = defaultdict(list)
    for s in shards:
        by_index[s.shard.index].append(s)
    missing = [k for k in range(1, count + 1) if k not in by_index]
    duplicated = {k: found for k, found in by_index.items() if len(found) > 1}
    if missing or duplicated:
        parts = [f"missing {_names_of(missing, count)} ({sum(Shard(k, count).size(n_images) for k in missing):,} "
                 f"images)"] if missing else []
        parts += [f"shard {k}/{count} found {len(found)} times" for k, found in duplicated.items()]
        return (f"cannot merge {case}: {len(by_index)} of {count} shards found ({_dirs(shards)}); "
                + "; ".join(parts) + f"; {n_images:,} images in all")
    for s in shards:
        expected, rows = s.shard.size(n_images), (s.meta.get(TABLE_META_KEY) or {}).get("rows")
        if rows != expected:
            return (f"cannot merge {case}: shard {s.shard} in {s.root} holds {rows} images, expected {expected:,} "
                    f"of {n_images:,}")
    return None


def _field(artifact: Found, key: str):
    return artifact.shard.count if key == SHARD_META_KEY else artifact.meta.get(key)


def _write_merged(shards: list[Found], out_dir: Path) -> Merged:
    shards = sorted(shards, key=lambda s: s.shard.index)
    tables = [PredictionStore(s.directory).load() for s in shards]  # checks each table against its sha256
    combined = Predictions.concat(tables)
    predictions = combined.sorted_by_id()
    count = len(shards)
    # Shard K holds the images at sorted positions K-1, K-1+N, ...: anything else means the shards were cut from
    # different image lists, whatever their fingerprints say.
    owner = np.concatenate([np.full(len(t), s.shard.index - 1) for s, t in zip(shards, tables)])
    owner = owner[np.argsort(combined.image_ids, kind="stable")]
    if len(np.unique(predictions.image_ids)) != len(predictions) or \
            not np.array_equal(owner, np.arange(len(predictions)) % count):
        raise EvaluatorError(f"the shards' image ids do not interleave as shards of one sorted list "
                             f"({_dirs(shards)})")
    reference = shards[0].meta
    meta = {key: value for key, value in reference.items() if key not in (SHARD_META_KEY, TABLE_META_KEY)}
    meta.update(n_images=len(predictions), elapsed_s=round(sum(s.meta.get("elapsed_s", 0) for s in shards), 3),
                reused_images=sum(s.meta.get("reused_images", 0) for s in shards),
                date=max(str(s.meta.get("date", "")) for s in shards),
                merged_from=[{"shard": str(s.shard), "directory": str(s.directory), "date": s.meta.get("date"),
                              "elapsed_s": s.meta.get("elapsed_s")} for s in shards])
    directory = run_dir(out_dir, reference["model_path"], reference["tta"], reference["runtime"],
                        reference["artifact_key"])
    store = PredictionStore(directory)
    with file_lock(directory):
        if store.is_complete():
            if _same_table(store.load(), predictions):
                return Merged(directory, len(predictions), count, "unchanged")
            raise ArtifactError(f"{directory} already holds a different complete artifact for this cache key; "
                                "delete it to merge again")
        store.clear()
        store.keep(predictions)
        store.finalize(meta)
    return Merged(directory, len(predictions), count, "merged")


def _same_table(a: Predictions, b: Predictions) -> bool:
    """Equal tables (which predictions.csv writes as equal bytes)."""
    return (np.array_equal(a.image_ids, b.image_ids) and np.array_equal(a.labels, b.labels)
            and np.array_equal(a.top5_ids, b.top5_ids) and np.array_equal(a.errors, b.errors)
            and np.array_equal(a.top5_scores, b.top5_scores, equal_nan=True))


def _copy_complete(artifact: Found, out_dir: Path) -> Merged:
    source = PredictionStore(artifact.directory)
    predictions = source.load()  # checks the table against its sha256 before anything is copied
    directory = Path(out_dir) / PREDICTIONS_DIR / artifact.directory.name
    target = PredictionStore(directory)
    if directory.resolve() == artifact.directory.resolve():
        return Merged(directory, len(predictions), 0, "unchanged")
    with file_lock(directory):
        if target.is_complete():
            if target.meta().get(TABLE_META_KEY) == artifact.meta.get(TABLE_META_KEY):
                return Merged(directory, len(predictions), 0, "unchanged")
            raise ArtifactError(f"{directory} already holds a different complete artifact for this cache key "
                                f"than {artifact.directory}; delete one of them")
        target.clear()
        atomic_write_bytes(target.csv_path, (artifact.directory / PREDICTIONS_CSV).read_bytes())
        if source.stamps_path.is_file():  # what each row was computed from (pipeline.changed_images)
            atomic_write_bytes(target.stamps_path, source.stamps_path.read_bytes())
        atomic_write_bytes(target.meta_path, (artifact.directory / META_JSON).read_bytes())  # completion marker last
    return Merged(directory, len(predictions), 0, "copied")


def _names(shards: list[Found]) -> str:
    return ("shard " if len(shards) == 1 else "shards ") + ", ".join(str(s.shard) for s in shards)


def _names_of(indices: list[int], count: int) -> str:
    return ("shard " if len(indices) == 1 else "shards ") + ", ".join(f"{k}/{count}" for k in indices)


def _dirs(shards: list[Found]) -> str:
    return ", ".join(f"{s.shard} in {s.root}" for s in shards)


def _short(value) -> str:
    text = str(value)
    return text[:16] + "..." if len(text) > 19 else text
