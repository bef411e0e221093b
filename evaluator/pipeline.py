"""The predict loop's scheduling: dataset + model + recipe + TTA + runtime -> a per-image predictions artifact.

Work is split into fixed chunks of the sorted image list (predict_chunk.Chunk). Worker threads, one per core, each
own one runtime with a deliberate number of threads (1) and predict a chunk at a time (predict_chunk.py); a caller's
RuntimePool keeps the runtimes open for its next run. The decoded geometry of each chunk is cached on disk where that
is bit-identical (decode_cache.py), so a second model with the same geometry decodes nothing. Finished chunks are
written atomically every checkpoint_s seconds and when a run stops early; a rerun skips them (resume), and a finished
artifact is reused as long as its cache key matches (prediction_store.py).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import itertools
import logging
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TextIO

import cv2
import numpy as np

from . import __version__, stamps
from .dataset import Dataset
from .decode_cache import CACHE_DIR, EntryWriter, mark_used
from .errors import ArtifactError
from .fileio import cache_key, file_lock, replace_directory
from .locations import inside
from .model_runtime import ModelInfo, RuntimePool, WorkerRuntimes, inspect_model
from .predict_chunk import Chunk, WorkerConfig, predict_chunk
from .prediction_store import PREDICTIONS_DIR, PredictionStore, run_dir
from .predictions import Predictions
from .preprocess import geometry_is_cacheable, geometry_key
from .progress import Progress
from .run_spec import RunSpec, available_cores
from .shard import Shard

log = logging.getLogger(__name__)

# Bump when the pipeline's output for the same inputs changes, so old artifacts are not reused.
PIPELINE_VERSION = 3


@dataclass
class RunResult:
    predictions: Predictions
    meta: dict
    reused: int          # images taken from an earlier (complete or interrupted) run
    computed: int        # images predicted now
    artifact_dir: Path = field(default_factory=Path)


class StoredPredictionsMissing(ArtifactError):
    """predict(stored_only=True) found no finished artifact for the run."""


def artifact_key(spec: RunSpec, info: ModelInfo, dataset: Dataset) -> str:
    """Content key of a predictions artifact: what can change a prediction, nothing else (each image's file is
    checked by its stamp, see stamps.py)."""
    return cache_key(model_sha256=info.sha256, runtime=spec.runtime, runtime_version=info.runtime_version,
                     recipe=asdict(spec.recipe), tta=spec.tta, input_size=info.input_size,
                     dataset=dataset.ids_key, pipeline=PIPELINE_VERSION)  # every recipe field, exif_transpose too


def open_geometry_cache(artifacts_dir: Path, spec: RunSpec, input_size: int) -> Path | None:
    """Decode-cache directory for this geometry, marked as used now (for `python -m evaluator cache`), or None where
    a cached uint8 image would not be bit-identical or the cache is off."""
    if not spec.decode_cache or not geometry_is_cacheable(spec.recipe, spec.tta):
        return None
    geometry = geometry_key(spec.recipe, spec.tta, input_size)
    exif = spec.recipe.exif_transpose
    directory = Path(artifacts_dir) / CACHE_DIR / cache_key(geometry=geometry, exif=exif, pipeline=PIPELINE_VERSION)
    mark_used(directory, geometry + (", EXIF-rotated" if exif else ""))
    return directory


def predict(dataset: Dataset, spec: RunSpec, artifacts_dir: Path, *, recompute: bool = False,
            progress: bool | TextIO | None = None, shard: Shard | None = None, stored_only: bool = False,
            runtimes: RuntimePool | None = None) -> RunResult:
    """Predict every image of the dataset (or of one image shard of it), reusing a finished artifact or the finished
    chunks of an interrupted run; an image whose file changed since its prediction (size or mtime; content with
    verify_data) is predicted again. stored_only: never predict, a missing artifact raises StoredPredictionsMissing.
    runtimes: keeps the run's opened runtimes for the caller's next run (the caller closes it); by default they are
    closed when the run ends."""
    with RuntimePool() if runtimes is None else contextlib.nullcontext(runtimes) as runtimes:
        info = inspect_model(spec, artifacts_dir, runtimes)
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
                    raise StoredPredictionsMissing(f"{why} and --stored-only forbids predicting: the job or image "
                                                   "shard that predicts this case did not finish, or its images "
                                                   "changed")
                if changed:
                    log.warning("%d image(s) changed since they were predicted (e.g. %s); predicting them again",
                                len(changed), changed[0])
                    store.drop(changed)
                started = time.monotonic()
                chunks = _chunks(dataset, spec.chunk_size, digests, store.done_ids())
                todo = sum(int(chunk.wanted.sum()) for chunk in chunks)
                config = WorkerConfig(spec, info.input_size, open_geometry_cache(artifacts_dir, spec, info.input_size))
                desc = f"{Path(spec.model_path).stem} {spec.tta} {spec.runtime}" + (f" shard {shard}" if shard else "")
                _run_chunks(config, chunks, store, _progress(todo, progress, len(dataset.image_ids) - todo, desc),
                            runtimes)
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


def _chunks(dataset: Dataset, chunk_size: int, digests: np.ndarray | None, done: set[str]) -> list[Chunk]:
    """The chunks with an image still to predict (chunk boundaries never move: they name decode-cache entries)."""
    ids, files, listed = dataset.image_ids, dataset.image_files(), dataset.stamps()
    chunks = []
    for start in range(0, len(ids), chunk_size):
        end = start + chunk_size
        wanted = np.array([image_id not in done for image_id in ids[start:end]])
        if wanted.any():
            chunks.append(Chunk(
                key=f"{dataset.ids_key}-{start // chunk_size:05d}-{chunk_size}", image_ids=list(ids[start:end]),
                paths=files[start:end], labels=dataset.labels[start:end], listed=listed[start:end],
                digests=None if digests is None else digests[start:end], refusals=list(dataset.refusals[start:end]),
                wanted=wanted))
    return chunks


def _run_chunks(config: WorkerConfig, chunks: list[Chunk], store: PredictionStore, progress: Progress,
                runtimes: RuntimePool) -> None:
    """Run the chunks on worker threads, one runtime each, and keep each finished chunk as it arrives.

    Threads, not processes: JPEG decoding, resizing and inference all release the GIL, so the threads keep every core
    busy without starting interpreters or shipping arrays between processes. At most two chunks per worker are
    submitted at a time, so memory stays bounded whatever the dataset's size. Finished chunks are written to parts/
    every checkpoint_s seconds and whenever the run stops early (a failure, Ctrl-C: the chunks being predicted then
    finish or stop, and every finished one is kept); a run that ends writes them into predictions.csv directly. A
    part per chunk would cost a fast model several percent of its run in file writes.
    """
    spec = config.spec
    workers = min(spec.workers or available_cores(), max(1, len(chunks)))
    todo, stop = iter(chunks), threading.Event()
    worker_runtimes, cache_writer = WorkerRuntimes(runtimes, spec), EntryWriter()
    next_checkpoint = time.monotonic() + spec.checkpoint_s

    def run(chunk: Chunk) -> Predictions:
        return predict_chunk(config, worker_runtimes.get(), chunk, stop, cache_writer)

    with _single_threaded_opencv(), ThreadPoolExecutor(workers, thread_name_prefix="evaluator-worker") as executor:
        running = {executor.submit(run, chunk) for chunk in itertools.islice(todo, 2 * workers)}
        try:
            while running:
                finished = next(iter(wait(running, return_when=FIRST_COMPLETED).done))
                running.remove(finished)
                _keep(finished, store, progress)
                running.update(executor.submit(run, chunk) for chunk in itertools.islice(todo, 1))
                if running and time.monotonic() >= next_checkpoint:  # none after the last: finalize writes them
                    store.checkpoint()
                    next_checkpoint = time.monotonic() + spec.checkpoint_s
            cache_writer.close()  # a cache entry that could not be written is an error (ArtifactError names the file)
        except BaseException as failure:
            stop.set()  # the chunks being predicted finish or stop (Abandoned); every finished one is kept
            for future in running:
                if not future.cancel():
                    with contextlib.suppress(Exception):
                        _keep(future, store, progress)
            cache_writer.close(check=False)
            worker_runtimes.close()
            _checkpoint_after_failure(store, failure)
            raise
        finally:
            progress.close()
    worker_runtimes.give_back()


def _keep(finished: Future, store: PredictionStore, progress: Progress) -> None:
    """Keep the chunk a task predicted (waiting for it if it still runs); raises the task's failure."""
    predictions = finished.result()
    store.keep(predictions)
    progress.update(len(predictions))


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
