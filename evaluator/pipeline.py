"""The predict loop: dataset + model + recipe + TTA + runtime -> a per-image predictions artifact.

Work is split into fixed chunks of the sorted image list. Worker threads, one per core, each own one runtime with a
deliberate number of threads (1) and do decode -> TTA geometry -> normalisation -> batched inference -> top-5 for a
chunk; the runtimes of the last model stay open for its next run in this process. The decoded geometry of each chunk
is cached on disk where that is bit-identical, so a second model with the same geometry decodes nothing. Finished
chunks are written atomically every checkpoint_s seconds and when a run stops early; a rerun skips them (resume),
and a finished artifact is reused as long as its cache key matches.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import logging
import os
import queue
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TextIO

import numpy as np

from . import __version__
from . import stamps
from .fileio import atomic_write_array, atomic_write_bytes, cache_key, file_lock, read_array, read_json, replace_directory
from .prediction_store import PREDICTIONS_DIR, PredictionStore, run_dir
from .predictions import Predictions
from .dataset import Dataset
from .decode_cache import CACHE_DIR, mark_used
from .errors import ArtifactError, ImageDecodeError, ModelError
from .locations import inside
from .model_hash import file_sha256
from .preprocess import Recipe
from .progress import Progress
from .shard import Shard

log = logging.getLogger(__name__)

# Bump when the pipeline's output for the same inputs changes, so old artifacts are not reused.
PIPELINE_VERSION = 3
TOP_K = 5


@dataclass(frozen=True)
class RunSpec:
    """What to run: one model file through one runtime with one recipe and TTA mode."""

    model_path: Path
    recipe: Recipe
    tta: str
    runtime: str
    # throughput knobs; they never change the predictions
    workers: int | None = None        # worker threads; None: the cores this process may use
    threads_per_worker: int = 1
    batch_size: int = 4               # images per runtime.run() (a larger fixed batch of the model wins)
    chunk_size: int = 32              # images per resumable, cacheable unit of work
    checkpoint_s: float = 1.0         # finished chunks go to parts/ this often (0: each one); what a kill can lose
    decode_cache: bool = True
    # also compare each image's content hash with the one recorded when it was decoded (reads every image once)
    verify_data: bool = False


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


# --- model inspection (parent process, before any image is touched) ------------------------------------------


@dataclass(frozen=True)
class ModelInfo:
    sha256: str
    runtime_version: str
    input_size: int
    n_outputs: int


def inspect_model(spec: RunSpec, hash_cache_dir: Path | None = None) -> ModelInfo:
    """Open the model once to validate it against the recipe; ModelError names the file and the mismatch.

    Args:
        hash_cache_dir: the artifacts directory, where the model's sha256 is remembered per file version.
    """
    path = Path(spec.model_path)
    if not path.is_file():
        raise ModelError(f"{path}: model file not found")
    key = _runtime_key(spec)
    runtime = _idle_runtimes.take(key, spec)
    try:
        size = _input_size(runtime.input_spec.shape, spec.recipe, path)
        n_outputs = _output_classes(runtime, size, path)
        if n_outputs - spec.recipe.class_offset != 1000:
            raise ModelError(f"{path}: model has {n_outputs} outputs but recipe {spec.recipe.name} expects "
                             f"{1000 + spec.recipe.class_offset} (class offset {spec.recipe.class_offset})")
    except BaseException:
        runtime.close()
        raise
    _idle_runtimes.give_back(key, [runtime])  # the run's first worker takes it
    return ModelInfo(file_sha256(path, hash_cache_dir), runtime.version, size, n_outputs)


def _output_classes(runtime, size: int, path: Path) -> int:
    """The model's class count: declared in its output shape, or (a symbolic shape such as ['N', 'K']) learnt from
    the output of one real batch."""
    from .runtimes.base import check_output_shape

    declared = runtime.output_spec.shape[-1] if runtime.output_spec.shape else None
    if isinstance(declared, int) and declared > 0:
        return declared
    input_spec = runtime.input_spec
    shape = [input_spec.shape[0] or 1, *(d if isinstance(d, int) and d > 0 else size for d in input_spec.shape[1:])]
    scores = np.asarray(runtime.run(np.zeros(shape, dtype=input_spec.dtype)))
    check_output_shape(path, scores.shape)
    return int(scores.shape[-1])


class _IdleRuntimes:
    """Opened runtimes of the last model run in this process, kept for its next run.

    Opening a session and its first call cost tens of milliseconds (ONNX Runtime: ~40 ms for a MobileNet), paid per
    worker per run; a suite evaluates each model in several TTA modes and runtimes in a row, so the runtimes of the
    last model are kept, and those of any other model are closed as soon as a different model is opened.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._key: tuple | None = None
        self._runtimes: list = []

    def take(self, key: tuple, spec: RunSpec):
        """A kept runtime for this key, or a newly opened one."""
        with self._lock:
            if key == self._key and self._runtimes:
                return self._runtimes.pop()
        return _open_runtime(spec)

    def give_back(self, key: tuple, runtimes: list) -> None:
        """Keep these runtimes (opened for `key`) for the next run; close those kept for another model."""
        with self._lock:
            stale = [] if key == self._key else self._runtimes
            if key != self._key:
                self._key, self._runtimes = key, []
            self._runtimes.extend(runtimes)
        for runtime in stale:
            runtime.close()


def uses_ailia_classifier(spec: RunSpec) -> bool:
    """True for ailia ONNX runs whose documented numbers came from ailia.Classifier (REFERENCE 3.3): they go through
    it, fed what the script feeds it. `--runtime ailia-net` runs ailia.Net on the evaluator's own preprocessing."""
    return (spec.runtime == "ailia" and Path(spec.model_path).suffix.lower() == ".onnx"
            and spec.recipe.ailia_classifier_range is not None)


def _open_runtime(spec: RunSpec):
    from .runtimes import open_runtime

    if uses_ailia_classifier(spec):
        from .runtimes.ailia import open_ailia_classifier

        return open_ailia_classifier(spec.model_path, spec.recipe.ailia_classifier_range,
                                     num_threads=spec.threads_per_worker)
    return open_runtime(spec.runtime, spec.model_path, num_threads=spec.threads_per_worker)


def _runtime_key(spec: RunSpec) -> tuple:
    """What an opened runtime depends on: runtime, model file (as it is now) and threads."""
    path = Path(spec.model_path)
    stat = path.stat()
    return spec.runtime, str(path.resolve()), stat.st_size, stat.st_mtime_ns, spec.threads_per_worker


_idle_runtimes = _IdleRuntimes()


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


@dataclass(frozen=True)
class _Chunk:
    """One unit of work: a fixed slice of the sorted images and which of them to predict now."""

    key: str               # names its decode-cache entry
    image_ids: list[str]
    paths: list[str]
    labels: np.ndarray
    listed: np.ndarray     # int64 (n, 2) size and mtime of each image as listed
    digests: np.ndarray | None  # int64 (n, 2) content hashes of the files now (verify_data), else None
    refusals: list[str]    # '' or why the image is not read at all
    wanted: np.ndarray     # bool (n,): predict these; the others are already in the artifact


def _predict_chunk(config: _WorkerConfig, runtime, chunk: _Chunk, stop: threading.Event,
                   save: Callable) -> Predictions:
    """Decode, preprocess and classify the wanted images of one chunk with this thread's runtime."""
    images, to_model, errors, chunk_stamps = _chunk_images(config, runtime, chunk, save)
    n = len(chunk.image_ids)
    top5_ids = np.full((n, TOP_K), -1, dtype=np.int32)
    top5_scores = np.full((n, TOP_K), np.nan, dtype=np.float32)
    ok = [i for i, error in enumerate(errors) if not error and chunk.wanted[i]]
    if ok and hasattr(runtime, "classify"):  # ailia.Classifier ranks inside the SDK: its top-5 is the result
        if stop.is_set():
            raise _Abandoned
        top5_ids[ok], top5_scores[ok] = runtime.classify([images[i] for i in ok], TOP_K)
    elif ok:
        scores = _run_batches(config, runtime, images, to_model, ok, stop)
        finite = np.isfinite(scores).all(axis=1)
        for j, i in enumerate(ok):
            if not finite[j]:
                errors[i] = f"model produced {int((~np.isfinite(scores[j])).sum())} NaN/infinite scores"
        good = np.flatnonzero(finite)
        ids, values = top_k(scores[good], config.spec.recipe.class_offset, ranking=config.spec.recipe.ranking)
        rows = np.asarray(ok)[good]
        top5_ids[rows], top5_scores[rows] = ids, values
    wanted = np.flatnonzero(chunk.wanted)
    return Predictions(
        image_ids=np.asarray(chunk.image_ids)[wanted], labels=np.asarray(chunk.labels, dtype=np.int32)[wanted],
        top5_ids=top5_ids[wanted], top5_scores=top5_scores[wanted], errors=np.asarray(errors, dtype=str)[wanted],
        stamps=chunk_stamps[wanted],
    )


def top_k(scores: np.ndarray, class_offset: int = 0, k: int = TOP_K,
          ranking: str = "argmax-lowest-id") -> tuple[np.ndarray, np.ndarray]:
    """Best k class ids (background column dropped) and their finite scores, ranked by the recipe's rule.

    "argmax-lowest-id": the first k of a stable argsort of -scores, without sorting all 1000 columns: k rounds of
    argmax, which returns the first (lowest) id among equal maxima, each taking the previous winner out.
    "numpy-argsort": the scripts' np.argsort(row)[-k:][::-1] on the float32 row. Its order differs from the first
    rule only where two of the best k + 1 scores are equal (distinct values sort the same way in any sort), so only
    those rows are argsorted; quantized outputs tie often, float outputs almost never.
    """
    class_scores = scores[:, class_offset:].astype(np.float32)
    exact = ranking == "numpy-argsort"
    remaining = class_scores.copy() if exact else class_scores  # winners are overwritten below
    k = min(k, remaining.shape[1])
    rounds = min(k + 1, remaining.shape[1]) if exact else k
    rows = np.arange(len(remaining))
    ids = np.empty((len(remaining), rounds), dtype=np.int32)
    values = np.empty((len(remaining), rounds), dtype=np.float32)
    for place in range(rounds):
        ids[:, place] = best = remaining.argmax(axis=1)
        values[:, place] = remaining[rows, best]
        remaining[rows, best] = -np.inf
    if exact:
        tied = np.flatnonzero((values[:, 1:] == values[:, :-1]).any(axis=1))
        if len(tied):  # numpy sorts each row of a 2-D argsort on its own, as the scripts' 1-D argsort
            order = np.argsort(class_scores[tied], axis=1)[:, ::-1][:, :k]
            ids[tied, :k], values[tied, :k] = order, np.take_along_axis(class_scores[tied], order, axis=1)
    return ids[:, :k], values[:, :k]


def _chunk_images(config: _WorkerConfig, runtime, chunk: _Chunk,
                  save: Callable) -> tuple[np.ndarray | None, Callable, list[str], np.ndarray]:
    """The chunk's images (rows of failed or unwanted images are unused; None if none is usable), the function that
    turns a batch of them into the model's input, per image an error string ('' when fine), and their stamps.

    Cached geometry stays uint8 until each batch is run: a float batch made just before its model call is still in
    the core's cache, where a whole float chunk (19 MB at 224 pixels) would not be.
    """
    from .preprocess import geometry_is_cacheable, inputs_from_geometry, preprocess, to_input

    spec, size = config.spec, config.input_size
    n = len(chunk.paths)
    if hasattr(runtime, "classify"):
        return _classifier_images(chunk, spec)
    if geometry_is_cacheable(spec.recipe, spec.tta):  # the exact per-level values; cached on disk when enabled
        geometries, errors, chunk_stamps = _cached_geometry(config, chunk, save)
        return (geometries, lambda batch: inputs_from_geometry(batch, spec.recipe, runtime.input_spec), errors,
                chunk_stamps)
    arrays, errors, chunk_stamps = [None] * n, [""] * n, stamps.empty(n)
    for i in np.flatnonzero(chunk.wanted):
        arrays[i], errors[i], chunk_stamps[i] = _load_image(
            chunk, i, spec, "RGB", lambda image: preprocess(image, spec.recipe, spec.tta, size=size))
    done = next((a for a in arrays if a is not None), None)
    if done is None:
        return None, None, errors, chunk_stamps
    inputs = to_input(np.stack([done if a is None else a for a in arrays]), spec.recipe, runtime.input_spec)
    return inputs, lambda batch: batch, errors, chunk_stamps


def _classifier_images(chunk: _Chunk, spec: RunSpec) -> tuple[list, Callable, list[str], np.ndarray]:
    """What resnet50.py hands ailia.Classifier per image: BGRA uint8 after the Python-side TTA (REFERENCE 3.3): a
    224 x 224 crop for 1-crop / keep-aspect (whatever the network's size), the whole image for none."""
    import cv2

    from .preprocess import geometry

    def to_bgra(bgr: np.ndarray) -> np.ndarray:
        if spec.tta != "none":
            bgr = geometry(bgr, spec.recipe, spec.tta)  # crops treat channels alike: BGR in, BGR out
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2BGRA)

    n = len(chunk.paths)
    images, errors, chunk_stamps = [None] * n, [""] * n, stamps.empty(n)
    for i in np.flatnonzero(chunk.wanted):
        images[i], errors[i], chunk_stamps[i] = _load_image(chunk, i, spec, "BGR", to_bgra)
    return images, lambda batch: batch, errors, chunk_stamps


def _load_image(chunk: _Chunk, i: int, spec: RunSpec, channels: str,
                transform: Callable) -> tuple[np.ndarray | None, str, tuple]:
    """One image of a chunk decoded and transformed: (result or None, error or '', its stamp); an image the transform
    refuses (an extreme aspect ratio) is a failed image like a damaged one. The stamp hashes the bytes read; an
    unreadable image gets the INVALID stamp, so its failure is never served from a cache. A refused link is not read:
    its stamp is the link's own, and recreating the link invalidates it."""
    from .decode import read_image_bytes

    if chunk.refusals[i]:
        return None, chunk.refusals[i], (*chunk.listed[i].tolist(), *stamps.UNKNOWN_DIGEST)
    path = Path(chunk.paths[i])
    try:
        data = read_image_bytes(path)
    except ImageDecodeError as exc:
        return None, str(exc), stamps.INVALID
    stamp = (*chunk.listed[i].tolist(), *stamps.digest(data))
    try:
        image = _decode(path, data, spec, channels)
    except ImageDecodeError as exc:
        return None, str(exc), stamps.INVALID if exc.transient else stamp
    try:
        return transform(image), "", stamp
    except ImageDecodeError as exc:
        return None, f"{path}: {exc}", stamp


def _decode(path: Path, data: bytes, spec: RunSpec, channels: str) -> np.ndarray:
    from .decode import decode_bytes

    return decode_bytes(path, data, exif_transpose=spec.recipe.exif_transpose, channels=channels)


def _cached_geometry(config: _WorkerConfig, chunk: _Chunk,
                     save: Callable) -> tuple[np.ndarray, list[str], np.ndarray]:
    """The uint8 TTA geometry of a chunk, from the decode cache or computed and stored there (computed only, for the
    wanted images, when the cache is off: config.cache_dir None), with errors and stamps.

    An entry is `<chunk>.npy` (the images, zeros where decoding failed), whose presence marks the entry complete,
    preceded by `<chunk>.stamps.npy` (what each image was decoded from) and `<chunk>.errors.json` (the decode error
    of each image) only when an image failed. Plain .npy, not .npz: it loads without zip parsing and checksumming,
    which matters when the model is fast. An image whose stamp no longer describes its file is decoded again, alone,
    and the entry rewritten. `save(write, path, data)` runs an atomic write in order, off this thread.
    """
    from .preprocess import geometry

    n, size = len(chunk.paths), config.input_size
    images, errors, cached_stamps = np.zeros((n, size, size, 3), np.uint8), [""] * n, stamps.empty(n)
    images_file = errors_file = stamps_file = None
    if config.cache_dir is not None:
        images_file = config.cache_dir / f"{chunk.key}.npy"
        errors_file = config.cache_dir / f"{chunk.key}.errors.json"
        stamps_file = config.cache_dir / f"{chunk.key}.stamps.npy"
    try:
        if images_file is None:
            raise OSError("decode cache off")
        images = read_array(images_file, (n, size, size, 3), np.uint8)
        cached_stamps = read_array(stamps_file, (n, 4), np.int64)
        errors = [str(error) for error in read_json(errors_file)] if errors_file.is_file() else [""] * n
        if len(errors) != n:
            raise ValueError("errors list of another length")
    except (OSError, ValueError, ArtifactError):
        # not cached yet (or the cache is off); a damaged entry is recomputed and replaced
        images, errors, cached_stamps = np.zeros((n, size, size, 3), np.uint8), [""] * n, stamps.empty(n)
    stale = stamps.stale(cached_stamps, chunk.listed, chunk.digests)
    redo = np.flatnonzero(stale if images_file is not None else stale & chunk.wanted)
    if not len(redo):
        return images, errors, cached_stamps
    spec = config.spec
    bgr = np.zeros((len(redo), size, size, 3), dtype=np.uint8)
    for j, i in enumerate(redo):
        # cropping and resizing treat the channels alike, so they run in OpenCV's BGR and the images are swapped to
        # RGB once, at model size
        image, errors[i], cached_stamps[i] = _load_image(
            chunk, i, spec, "BGR", lambda image: geometry(image, spec.recipe, spec.tta, size=size))
        if image is not None:
            bgr[j] = image
    images = images.copy() if not images.flags.writeable else images
    images[redo] = bgr[..., ::-1]
    if images_file is None:
        return images, errors, cached_stamps
    if len(redo) < n:  # an entry being rewritten: remove it first, so old pixels never pair with new stamps
        save(_unlink, images_file, None)
    if any(errors):
        save(atomic_write_bytes, errors_file, json.dumps(errors).encode("utf-8"))
    else:  # a stale list from a damaged entry must not outlive it (an unusable directory fails the write below)
        save(_unlink, errors_file, None)
    save(atomic_write_array, stamps_file, cached_stamps.copy())
    save(atomic_write_array, images_file, images)  # never modified after this: the writer reads it directly
    return images, errors, cached_stamps


def _unlink(path: Path, _) -> None:
    with contextlib.suppress(OSError):
        path.unlink()


def _run_batches(config: _WorkerConfig, runtime, images: np.ndarray, to_model: Callable, ok: list[int],
                 stop: threading.Event) -> np.ndarray:
    batch_size = model_batch_size(config.spec, runtime)
    outputs = []
    for start in range(0, len(ok), batch_size):
        if stop.is_set():  # the run is being abandoned (interrupt or another chunk's error): stop promptly
            raise _Abandoned
        rows = ok[start:start + batch_size]
        contiguous = rows[-1] - rows[0] + 1 == len(rows)
        batch = images[rows[0]:rows[-1] + 1] if contiguous else images[rows]  # a view where no image failed
        outputs.append(runtime.run(to_model(batch)))
    return np.concatenate(outputs).astype(np.float32, copy=False)


def model_batch_size(spec: RunSpec, runtime) -> int:
    """Images per runtime.run(): the spec's batch size, or the model's fixed batch where that is larger (full
    batches rather than padded ones). A model with a fixed batch of 1 is looped inside runtime.run(), image by image
    whatever the call's size, so it takes whole chunks: fewer calls, less per-call overhead."""
    if runtime.max_batch == 1:
        return spec.chunk_size
    return max(spec.batch_size, runtime.max_batch or 0)


class StoredPredictionsMissing(ArtifactError):
    """predict(stored_only=True) found no finished artifact for the run."""


class _Abandoned(Exception):
    """Raised in a worker thread whose chunk is no longer wanted."""


# --- the run ----------------------------------------------------------------------------------------------


def artifact_key(spec: RunSpec, info: ModelInfo, dataset: Dataset) -> str:
    """Content key of a predictions artifact: what can change a prediction, nothing else (each image's file is
    checked by its stamp, see stamps.py)."""
    return cache_key(model_sha256=info.sha256, runtime=spec.runtime, runtime_version=info.runtime_version,
                     recipe=asdict(spec.recipe), tta=spec.tta, input_size=info.input_size,
                     dataset=dataset.ids_key, pipeline=PIPELINE_VERSION)  # every recipe field, exif_transpose too


def open_geometry_cache(artifacts_dir: Path, spec: RunSpec, input_size: int) -> Path | None:
    """Decode-cache directory for this geometry, marked as used now (for `python -m evaluator cache`), or None where
    a cached uint8 image would not be bit-identical or the cache is off."""
    from .preprocess import geometry_is_cacheable, geometry_key

    if not spec.decode_cache or not geometry_is_cacheable(spec.recipe, spec.tta):
        return None
    geometry = geometry_key(spec.recipe, spec.tta, input_size)
    exif = spec.recipe.exif_transpose
    directory = Path(artifacts_dir) / CACHE_DIR / cache_key(geometry=geometry, exif=exif, pipeline=PIPELINE_VERSION)
    mark_used(directory, geometry + (", EXIF-rotated" if exif else ""))
    return directory


def predict(dataset: Dataset, spec: RunSpec, artifacts_dir: Path, *, recompute: bool = False,
            progress: bool | TextIO | None = None, shard: Shard | None = None, stored_only: bool = False) -> RunResult:
    """Predict every image of the dataset (or of one image shard of it), reusing a finished artifact or the finished
    chunks of an interrupted run; an image whose file changed since its prediction (size or mtime; content with
    verify_data) is predicted again. stored_only: never predict, a missing artifact raises StoredPredictionsMissing."""
    info = inspect_model(spec, artifacts_dir)
    key = artifact_key(spec, info, dataset)  # a shard keeps the whole dataset's key: merge rebuilds that artifact
    directory = inside(Path(artifacts_dir) / PREDICTIONS_DIR, run_dir(artifacts_dir, spec.model_path, spec.tta,
                                                                     spec.runtime, key))
    shard_meta = {}
    if shard is not None:
        shard_meta = {**shard.meta(len(dataset)), "dataset_fingerprint": dataset.fingerprint}
        directory, dataset = directory.with_name(directory.name + shard.dir_suffix), shard.select(dataset)
    # --recompute predicts into a sibling directory and swaps it in once finished: until then (a full disk, Ctrl-C)
    # the old artifact stays as it was, and the same command resumes the recomputation
    store = PredictionStore(directory.with_name(directory.name + ".recompute") if recompute else directory)
    with file_lock(directory):  # a second process evaluating the same case waits here, then reuses
        digests = None
        if spec.verify_data:
            digests = stamps.file_digests(dataset.image_files(), [bool(r) for r in dataset.refusals],
                                          spec.workers or available_cores())
        existing, changed = changed_images(store, dataset, digests)
        todo = 0
        if existing is None or changed:
            if stored_only:
                why = (f"{len(changed)} image(s) changed since the predictions in {directory} were made (e.g. "
                       f"{changed[0]})" if changed else f"no finished predictions in {directory}")
                raise StoredPredictionsMissing(f"{why} and --stored-only forbids predicting: the job or image shard "
                                               "that predicts this case did not finish, or its images changed")
            if changed:
                log.warning("%d image(s) changed since they were predicted (e.g. %s); predicting them again",
                            len(changed), changed[0])
                store.drop(changed)
            started = time.monotonic()
            chunks = _chunks(dataset, spec.chunk_size, digests, store.done_ids())
            todo = sum(int(chunk.wanted.sum()) for chunk in chunks)
            config = _WorkerConfig(spec, info.input_size, open_geometry_cache(artifacts_dir, spec, info.input_size))
            desc = f"{Path(spec.model_path).stem} {spec.tta} {spec.runtime}" + (f" shard {shard}" if shard else "")
            _run_chunks(config, chunks, store, _progress(todo, progress, len(dataset.image_ids) - todo, desc))
            meta = {**_meta(spec, info, dataset, key, elapsed_s=time.monotonic() - started,
                            reused=len(dataset.image_ids) - todo), **shard_meta}
            existing = store.finalize(meta)  # equal to store.load(), without parsing the CSV just written
        if recompute:
            replace_directory(store.directory, directory)
        return RunResult(existing, PredictionStore(directory).meta(), reused=len(dataset.image_ids) - todo,
                         computed=todo, artifact_dir=directory)


def changed_images(store: PredictionStore, dataset: Dataset,
                    digests: np.ndarray | None) -> tuple[Predictions | None, list[str]]:
    """The finished table (None if unfinished) and the ids of stored rows whose image changed since."""
    existing = store.load() if store.is_complete() else None
    stored = existing if existing is not None else store.load_parts()
    if not len(stored):
        return existing, []
    all_ids = np.asarray(dataset.image_ids, dtype=str)
    rows = np.minimum(np.searchsorted(all_ids, stored.image_ids), len(all_ids) - 1)
    listed = dataset.stamps()[rows]
    recorded = stored.stamps if stored.stamps is not None else stamps.empty(len(stored))
    current = None if digests is None else digests[rows]
    changed = stamps.stale(recorded, listed, current)
    # A new mtime with the recorded size (a copy of the dataset, another machine's copy, a touch) is a change only
    # if the content differs: for those images alone the content hash decides, at the cost of reading them.
    suspects = np.flatnonzero(changed & (recorded[:, 0] == listed[:, 0]) & (recorded[:, 2:] != 0).any(axis=1))
    if len(suspects):
        files = dataset.image_files()
        now = current[suspects] if current is not None else stamps.file_digests(
            [files[rows[i]] for i in suspects], [False] * len(suspects), available_cores())
        changed[suspects[(now == recorded[suspects, 2:]).all(axis=1)]] = False
    changed |= all_ids[rows] != stored.image_ids
    return existing, stored.image_ids[changed].tolist()


def _chunks(dataset: Dataset, chunk_size: int, digests: np.ndarray | None, done: set[str]) -> list[_Chunk]:
    """The chunks with an image still to predict (chunk boundaries never move: they name decode-cache entries)."""
    ids, files, listed = dataset.image_ids, dataset.image_files(), dataset.stamps()
    chunks = []
    for start in range(0, len(ids), chunk_size):
        end = start + chunk_size
        wanted = np.array([image_id not in done for image_id in ids[start:end]])
        if wanted.any():
            chunks.append(_Chunk(
                key=f"{dataset.ids_key}-{start // chunk_size:05d}-{chunk_size}", image_ids=list(ids[start:end]),
                paths=files[start:end], labels=dataset.labels[start:end], listed=listed[start:end],
                digests=None if digests is None else digests[start:end], refusals=list(dataset.refusals[start:end]),
                wanted=wanted))
    return chunks


def _run_chunks(config: _WorkerConfig, chunks: list, store: PredictionStore, progress: Progress) -> None:
    """Run the chunks on worker threads, one runtime each, and keep each finished chunk as it arrives.

    Threads, not processes: JPEG decoding, resizing and inference all release the GIL, so the threads keep every core
    busy without starting interpreters or shipping arrays between processes. A worker takes the next chunk when it
    has handed over the last one through a queue of one chunk per worker, so at most two chunks per worker are in
    memory whatever the dataset's size. Finished chunks are written to parts/ every checkpoint_s seconds and whenever
    the run stops early (a failure, Ctrl-C); a run that ends writes them into predictions.csv directly. A part per
    chunk would cost a fast model several percent of its run in file writes.
    """
    workers = min(config.spec.workers or available_cores(), max(1, len(chunks)))
    runtime_key = _runtime_key(config.spec)
    todo, todo_lock = iter(chunks), threading.Lock()
    finished_chunks: queue.Queue = queue.Queue(maxsize=workers)  # Predictions, an exception, or _WORKER_DONE
    stop = threading.Event()
    opened: list = []

    # Decode-cache entries are written by one more thread: its fsyncs then never leave a core idle.
    writer, writes = ThreadPoolExecutor(1, thread_name_prefix="evaluator-cache-writer"), []

    def save(write: Callable, path: Path, data) -> None:
        writes.append(writer.submit(write, path, data))

    def work() -> None:
        try:
            runtime = _idle_runtimes.take(runtime_key, config.spec)
            opened.append(runtime)
            while not stop.is_set():
                with todo_lock:
                    chunk = next(todo, None)
                if chunk is None:
                    break
                finished_chunks.put(_predict_chunk(config, runtime, chunk, stop, save))
        except _Abandoned:
            pass
        except BaseException as error:  # noqa: BLE001 - handed to the main thread, which raises it
            finished_chunks.put(error)
        finally:
            finished_chunks.put(_WORKER_DONE)

    running, failures = workers, []
    chunks_left = len(chunks)
    next_checkpoint = time.monotonic() + config.spec.checkpoint_s

    def receive() -> None:
        nonlocal running, chunks_left, next_checkpoint
        item = finished_chunks.get()
        if item is _WORKER_DONE:
            running -= 1
        elif isinstance(item, BaseException):
            failures.append(item)
            stop.set()
        else:  # every finished chunk is kept, also those that arrive after a failure
            store.keep(item)
            progress.update(len(item.image_ids))
            chunks_left -= 1
            if chunks_left and not stop.is_set() and time.monotonic() >= next_checkpoint:  # none after the last
                store.checkpoint()
                next_checkpoint = time.monotonic() + config.spec.checkpoint_s

    finished = False
    with _single_threaded_opencv():
        for number in range(workers):
            threading.Thread(target=work, name=f"evaluator-worker-{number}", daemon=True).start()
        try:
            while running:
                receive()
            if failures:
                raise failures[0]
            writer.shutdown(wait=True)
            for write in writes:
                write.result()  # a cache entry that could not be written is an error (ArtifactError names the file)
            finished = True
        finally:
            stop.set()
            while running:  # after Ctrl-C or a failed checkpoint: workers finish their chunk (kept) and stop
                receive()
            writer.shutdown(wait=True)
            if finished:  # after a failure no runtime is trusted for another run
                _idle_runtimes.give_back(runtime_key, opened)
            else:
                for runtime in opened:
                    runtime.close()
                _checkpoint_after_failure(store, sys.exc_info()[1])
            progress.close()


_WORKER_DONE = object()  # a worker's last message


def _checkpoint_after_failure(store: PredictionStore, failure: BaseException | None) -> None:
    """Write the chunks finished before a failure; if that fails too, say so unless the failure was already a disk
    error (ArtifactError), which is what the user will read."""
    try:
        store.checkpoint()
    except ArtifactError as error:
        if not isinstance(failure, ArtifactError):
            log.warning("the chunks finished before the failure could not be kept: %s", error)


@contextlib.contextmanager
def _single_threaded_opencv():
    # Each worker thread already has a core; OpenCV's own resize threads would only compete with them.
    import cv2

    previous = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        yield
    finally:
        cv2.setNumThreads(previous)


def _meta(spec: RunSpec, info: ModelInfo, dataset: Dataset, key: str, elapsed_s: float, reused: int) -> dict:
    return {
        "artifact_key": key,
        "model_path": str(spec.model_path),
        "model_sha256": info.sha256,
        "runtime": spec.runtime,
        "runtime_version": info.runtime_version,
        "recipe": spec.recipe.name,
        "recipe_summary": spec.recipe.describe(spec.tta, size=info.input_size),
        "recipe_fields": asdict(spec.recipe),  # every field, as in the artifact key
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


def _progress(total: int, output, reused: int, desc: str) -> Progress:
    """Progress of a run: output None shows it on stderr, a stream on that stream, False nowhere."""
    stream = sys.stderr if output is None or output is True else None if output is False else output
    if stream is not None and reused:
        print(f"{desc}: reusing {reused} images from an earlier run", file=stream, flush=True)
    return Progress(total, desc, stream)
