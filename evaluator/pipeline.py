"""The predict loop: dataset + model + recipe + TTA + runtime -> a per-image predictions artifact.

Work is split into fixed chunks of the sorted image list. Each worker process owns one runtime with a deliberate
number of threads and does decode -> TTA geometry -> normalisation -> batched inference -> top-5 for a chunk, so
every core does useful work without shipping tensors between processes. Finished chunks are written atomically;
a rerun skips them (resume), and a finished artifact is reused as long as its cache key matches.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import io
import os
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from . import __version__
from .artifacts import Predictions, PredictionStore, atomic_write_bytes, cache_key, file_lock
from .dataset import Dataset
from .errors import ImageDecodeError, ModelError
from .preprocess import Recipe

# Bump when the pipeline's output for the same inputs changes, so old artifacts are not reused.
PIPELINE_VERSION = 1
TOP_K = 5


@dataclass(frozen=True)
class RunSpec:
    """What to run: one model file through one runtime with one recipe and TTA mode."""

    model_path: Path
    recipe: Recipe
    tta: str
    runtime: str
    # throughput knobs; they never change the predictions
    workers: int | None = None        # None: the cores this process may use
    threads_per_worker: int = 1
    batch_size: int = 32
    chunk_size: int = 256
    decode_cache: bool = True
    exif_transpose: bool = False


@dataclass
class RunResult:
    predictions: Predictions
    meta: dict
    reused: int          # images taken from an earlier (complete or interrupted) run
    computed: int        # images predicted now
    artifact_dir: Path = field(default_factory=Path)


def available_cores() -> int:
    """Cores this process may run on (respects taskset/cgroup affinity)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


_SHA_CACHE: dict[tuple, str] = {}


def file_sha256(path: Path) -> str:
    """sha256 of a file, memoised per (path, size, mtime) so a session hashes each model once."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _SHA_CACHE:
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        _SHA_CACHE[key] = digest.hexdigest()
    return _SHA_CACHE[key]


# --- model inspection (parent process, before any image is touched) ------------------------------------------


@dataclass(frozen=True)
class ModelInfo:
    sha256: str
    runtime_version: str
    input_size: int
    n_outputs: int


def inspect_model(spec: RunSpec) -> ModelInfo:
    """Open the model once to validate it against the recipe; ModelError names the file and the mismatch."""
    from .runtimes import open_runtime

    path = Path(spec.model_path)
    if not path.is_file():
        raise ModelError(f"{path}: model file not found")
    runtime = open_runtime(spec.runtime, path, num_threads=1)
    try:
        size = _input_size(runtime.input_spec.shape, spec.recipe, path)
        n_outputs = int(runtime.output_spec.shape[-1])
        if n_outputs - spec.recipe.class_offset != 1000:
            raise ModelError(f"{path}: model has {n_outputs} outputs but recipe {spec.recipe.name} expects "
                             f"{1000 + spec.recipe.class_offset} (class offset {spec.recipe.class_offset})")
        return ModelInfo(file_sha256(path), runtime.version, size, n_outputs)
    finally:
        runtime.close()


def _input_size(shape, recipe: Recipe, path: Path) -> int:
    channel_axis, spatial = (1, (2, 3)) if recipe.layout == "NCHW" else (3, (1, 2))
    if len(shape) != 4 or shape[channel_axis] != 3:
        raise ModelError(f"{path}: input shape {tuple(shape)} does not fit recipe {recipe.name} "
                         f"({recipe.layout}, 3 channels)")
    height, width = (shape[i] for i in spatial)
    if height in (None, -1) or not isinstance(height, int):
        return recipe.input_size  # dynamic spatial size: the recipe decides
    if height != width:
        raise ModelError(f"{path}: non-square input {height}x{width} is not supported")
    return int(height)


# --- chunk worker ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _WorkerConfig:
    spec: RunSpec
    input_size: int
    cache_dir: Path | None  # decode cache directory for this geometry, None when not cacheable or disabled


_WORKER: dict = {}


def _worker_init(config: _WorkerConfig) -> None:
    from .runtimes import open_runtime

    _WORKER["config"] = config
    _WORKER["runtime"] = open_runtime(config.spec.runtime, config.spec.model_path,
                                      num_threads=config.spec.threads_per_worker)


def _worker_close() -> None:
    runtime = _WORKER.pop("runtime", None)
    if runtime is not None:
        runtime.close()


def _predict_chunk(task: tuple[str, list[str], list[str], np.ndarray]) -> Predictions:
    """Decode, preprocess and classify one chunk of images in this worker."""
    chunk_key, image_ids, paths, labels = task
    config: _WorkerConfig = _WORKER["config"]
    images, errors = _model_inputs(config, chunk_key, paths)
    n = len(image_ids)
    top5_ids = np.full((n, TOP_K), -1, dtype=np.int32)
    top5_scores = np.full((n, TOP_K), np.nan, dtype=np.float32)
    ok = [i for i, error in enumerate(errors) if not error]
    if ok:
        scores = _run_batches(config, images, ok)
        finite = np.isfinite(scores).all(axis=1)
        for j, i in enumerate(ok):
            if not finite[j]:
                errors[i] = f"model produced {int((~np.isfinite(scores[j])).sum())} NaN/infinite scores"
        good = np.flatnonzero(finite)
        ids, values = top_k(scores[good], config.spec.recipe.class_offset)
        rows = np.asarray(ok)[good]
        top5_ids[rows], top5_scores[rows] = ids, values
    return Predictions(
        image_ids=np.asarray(image_ids), labels=np.asarray(labels, dtype=np.int32), top5_ids=top5_ids,
        top5_scores=top5_scores, errors=np.asarray(errors, dtype=str),
    )


def top_k(scores: np.ndarray, class_offset: int = 0, k: int = TOP_K) -> tuple[np.ndarray, np.ndarray]:
    """Best k class ids (background column dropped) and their scores; ties go to the lower class id."""
    scores = scores[:, class_offset:]
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return order.astype(np.int32), np.take_along_axis(scores, order, axis=1).astype(np.float32)


def _model_inputs(config: _WorkerConfig, chunk_key: str, paths: list[str]) -> tuple[list, list[str]]:
    """Per image: the preprocessed HWC array (or None) and an error string ('' when fine)."""
    from .preprocess import from_geometry, preprocess

    spec, size = config.spec, config.input_size
    if config.cache_dir is None:
        arrays, errors = [], []
        for path in paths:
            try:
                arrays.append(preprocess(_decode(path, spec), spec.recipe, spec.tta, size=size))
                errors.append("")
            except ImageDecodeError as exc:
                arrays.append(None)
                errors.append(str(exc))
        return arrays, errors
    geometries, errors = _cached_geometry(config, chunk_key, paths)
    arrays = [None if error else from_geometry(g, spec.recipe, spec.tta, size=size)
              for g, error in zip(geometries, errors)]
    return arrays, errors


def _decode(path: str, spec: RunSpec) -> np.ndarray:
    from .decode import decode_image

    return decode_image(Path(path), exif_transpose=spec.exif_transpose)


def _cached_geometry(config: _WorkerConfig, chunk_key: str, paths: list[str]) -> tuple[np.ndarray, list[str]]:
    """The uint8 TTA geometry of a chunk, from the decode cache or computed and stored there."""
    from .preprocess import geometry

    cache_file = config.cache_dir / f"{chunk_key}.npz"
    if cache_file.is_file():
        try:
            with np.load(cache_file, allow_pickle=False) as stored:
                return stored["images"], [str(e) for e in stored["errors"]]
        except (OSError, ValueError, KeyError):
            pass  # a damaged cache entry is recomputed and replaced
    spec, size = config.spec, config.input_size
    images = np.zeros((len(paths), size, size, 3), dtype=np.uint8)
    errors = []
    for i, path in enumerate(paths):
        try:
            images[i] = geometry(_decode(path, spec), spec.recipe, spec.tta, size=size)
            errors.append("")
        except ImageDecodeError as exc:
            errors.append(str(exc))
    buffer = io.BytesIO()
    np.savez(buffer, images=images, errors=np.asarray(errors, dtype=str))
    atomic_write_bytes(cache_file, buffer.getvalue())
    return images, errors


def _run_batches(config: _WorkerConfig, images: list, ok: list[int]) -> np.ndarray:
    from .preprocess import to_input

    runtime = _WORKER["runtime"]
    batch_size = config.spec.batch_size if runtime.max_batch is None else min(config.spec.batch_size,
                                                                              runtime.max_batch)
    outputs = []
    for start in range(0, len(ok), batch_size):
        batch = np.stack([images[i] for i in ok[start:start + batch_size]])
        outputs.append(runtime.run(to_input(batch, config.spec.recipe, runtime.input_spec)))
    return np.concatenate(outputs).astype(np.float32, copy=False)


# --- the run ----------------------------------------------------------------------------------------------


def artifact_key(spec: RunSpec, info: ModelInfo, dataset: Dataset) -> str:
    """Content key of a predictions artifact: what can change a prediction, nothing else."""
    return cache_key(model_sha256=info.sha256, runtime=spec.runtime, runtime_version=info.runtime_version,
                     recipe=asdict(spec.recipe), tta=spec.tta, input_size=info.input_size,
                     dataset=dataset.fingerprint, exif=spec.exif_transpose, pipeline=PIPELINE_VERSION)


def geometry_cache_dir(artifacts_dir: Path, spec: RunSpec, input_size: int) -> Path | None:
    """Decode-cache directory for this geometry, or None where a cached uint8 image would not be bit-identical."""
    from .preprocess import geometry_is_cacheable, geometry_key

    if not spec.decode_cache or not geometry_is_cacheable(spec.recipe, spec.tta):
        return None
    key = cache_key(geometry=geometry_key(spec.recipe, spec.tta, input_size), exif=spec.exif_transpose,
                    pipeline=PIPELINE_VERSION)
    return Path(artifacts_dir) / "decode-cache" / key


def predict(dataset: Dataset, spec: RunSpec, artifacts_dir: Path, *, recompute: bool = False,
            progress: bool | None = None) -> RunResult:
    """Predict every image of the dataset, reusing a finished artifact or the finished chunks of an interrupted run."""
    info = inspect_model(spec)
    key = artifact_key(spec, info, dataset)
    directory = Path(artifacts_dir) / "predictions" / f"{Path(spec.model_path).stem}-{spec.tta}-{spec.runtime}-{key}"
    store = PredictionStore(directory)
    with file_lock(directory):  # a second process evaluating the same case waits here, then reuses
        if recompute:
            store.clear()
        if store.is_complete():
            return RunResult(store.load(), store.meta(), reused=len(dataset.image_ids), computed=0,
                             artifact_dir=directory)
        started = time.monotonic()
        done = store.done_ids()
        chunks = [c for c in _chunks(dataset, spec.chunk_size) if not set(c[1]) <= done]
        todo = sum(len(c[1]) for c in chunks)
        reused = len(dataset.image_ids) - todo
        config = _WorkerConfig(spec, info.input_size, geometry_cache_dir(artifacts_dir, spec, info.input_size))
        _run_chunks(config, chunks, store, _Progress(todo, progress, reused))
        meta = _meta(spec, info, dataset, key, elapsed_s=time.monotonic() - started, reused=reused)
        store.finalize(meta)
        return RunResult(store.load(), store.meta(), reused=reused, computed=todo, artifact_dir=directory)


def _chunks(dataset: Dataset, chunk_size: int):
    ids = dataset.image_ids
    for start in range(0, len(ids), chunk_size):
        chunk_ids = list(ids[start:start + chunk_size])
        chunk_key = f"{dataset.fingerprint}-{start // chunk_size:05d}-{chunk_size}"
        yield (chunk_key, chunk_ids, [str(dataset.image_path(i)) for i in chunk_ids],
               dataset.labels[start:start + chunk_size])


def _run_chunks(config: _WorkerConfig, chunks: list, store: PredictionStore, progress: "_Progress") -> None:
    workers = min(config.spec.workers or available_cores(), max(1, len(chunks)))
    if workers <= 1:
        _worker_init(config)
        try:
            for chunk in chunks:
                store.write_chunk(_predict_chunk(chunk))
                progress.advance(len(chunk[1]))
        finally:
            _worker_close()
            progress.close()
        return
    # spawn, not fork: the parent may already hold runtime thread pools, which do not survive a fork.
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=_worker_init,
                             initargs=(config,)) as pool:
        pending = set()
        queue = iter(chunks)
        for chunk in queue:  # keep at most two chunks per worker in flight: memory stays flat
            pending.add(pool.submit(_predict_chunk, chunk))
            if len(pending) >= 2 * workers:
                pending = _drain(pending, store, progress, FIRST_COMPLETED)
        _drain(pending, store, progress, None)
    progress.close()


def _drain(pending: set, store: PredictionStore, progress: "_Progress", return_when) -> set:
    done, pending = wait(pending, return_when=return_when or "ALL_COMPLETED")
    for future in done:
        chunk = future.result()
        store.write_chunk(chunk)
        progress.advance(len(chunk.image_ids))
    return pending


def _meta(spec: RunSpec, info: ModelInfo, dataset: Dataset, key: str, elapsed_s: float, reused: int) -> dict:
    return {
        "artifact_key": key,
        "model_path": str(spec.model_path),
        "model_sha256": info.sha256,
        "runtime": spec.runtime,
        "runtime_version": info.runtime_version,
        "recipe": spec.recipe.name,
        "recipe_summary": spec.recipe.describe(spec.tta, size=info.input_size),
        "tta": spec.tta,
        "input_size": info.input_size,
        "dataset_root": str(dataset.root),
        "dataset_fingerprint": dataset.fingerprint,
        "n_images": len(dataset.image_ids),
        "n_listed": dataset.n_listed,
        "elapsed_s": round(elapsed_s, 3),
        "reused_images": reused,
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "evaluator_version": __version__,
    }


class _Progress:
    """A one-line progress display on a terminal; silent in CI and when output is redirected."""

    def __init__(self, total: int, enabled: bool | None, reused: int):
        if enabled is None:
            enabled = sys.stderr.isatty() and not os.environ.get("CI")
        self.total, self.done, self.enabled = total, 0, enabled and total > 0
        self.started = time.monotonic()
        if reused and self.enabled:
            print(f"reusing {reused} images from an earlier run", file=sys.stderr)

    def advance(self, n: int) -> None:
        self.done += n
        if self.enabled:
            rate = self.done / max(time.monotonic() - self.started, 1e-9)
            print(f"\r{self.done}/{self.total} images, {rate:.0f}/s", end="", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.enabled:
            print(file=sys.stderr)
