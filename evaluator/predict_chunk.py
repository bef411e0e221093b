"""One chunk of images through the model: decode (or the decode cache) -> TTA geometry -> model input -> batched
inference -> top-5. Runs on a worker thread with that thread's runtime (pipeline.py schedules the chunks).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from . import stamps
from .decode import decode_bytes, read_image_bytes
from .decode_cache import Entry, EntryWriter, read_entry
from .errors import ImageDecodeError
from .model_runtime import model_batch_size
from .predictions import Predictions
from .preprocess import geometry, geometry_is_cacheable, inputs_from_geometry, preprocess, to_input
from .ranking import TOP_K, top_k
from .run_spec import RunSpec


@dataclass(frozen=True)
class WorkerConfig:
    """What every chunk of a run shares."""

    spec: RunSpec
    input_size: int
    cache_dir: Path | None  # decode cache directory for this geometry, None when not cacheable or disabled


class Abandoned(Exception):
    """Raised in a worker thread whose chunk is no longer wanted (the run failed or was interrupted)."""


@dataclass(frozen=True)
class Chunk:
    """One unit of work: a fixed slice of the sorted images and which of them to predict now."""

    key: str               # names its decode-cache entry
    image_ids: list[str]
    paths: list[str]
    labels: np.ndarray
    listed: np.ndarray     # int64 (n, 2) size and mtime of each image as listed
    digests: np.ndarray | None  # int64 (n, 2) content hashes of the files now (verify_data), else None
    refusals: list[str]    # '' or why the image is not read at all
    wanted: np.ndarray     # bool (n,): predict these; the others are already in the artifact


def predict_chunk(config: WorkerConfig, runtime, chunk: Chunk, stop: threading.Event,
                  cache_writer: EntryWriter) -> Predictions:
    """Decode, preprocess and classify the wanted images of one chunk with this thread's runtime; new decode-cache
    entries go to cache_writer. Abandoned when `stop` is set before its inference is done."""
    images, to_model, errors, chunk_stamps = _chunk_images(config, runtime, chunk, cache_writer)
    n = len(chunk.image_ids)
    top5_ids = np.full((n, TOP_K), -1, dtype=np.int32)
    top5_scores = np.full((n, TOP_K), np.nan, dtype=np.float32)
    ok = [i for i, error in enumerate(errors) if not error and chunk.wanted[i]]
    if ok and hasattr(runtime, "classify"):  # ailia.Classifier ranks inside the SDK: its top-5 is the result
        if stop.is_set():
            raise Abandoned
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


def _chunk_images(config: WorkerConfig, runtime, chunk: Chunk,
                  cache_writer: EntryWriter) -> tuple[np.ndarray | None, Callable, list[str], np.ndarray]:
    """The chunk's images (rows of failed or unwanted images are unused; None if none is usable), the function that
    turns a batch of them into the model's input, per image an error string ('' when fine), and their stamps.

    Cached geometry stays uint8 until each batch is run: a float batch made just before its model call is still in
    the core's cache, where a whole float chunk (19 MB at 224 pixels) would not be.
    """
    spec, size = config.spec, config.input_size
    n = len(chunk.paths)
    if hasattr(runtime, "classify"):
        return _classifier_images(chunk, spec)
    if geometry_is_cacheable(spec.recipe, spec.tta):  # the exact per-level values; cached on disk when enabled
        entry = _cached_geometry(config, chunk, cache_writer)
        return (entry.images, lambda batch: inputs_from_geometry(batch, spec.recipe, runtime.input_spec),
                entry.errors, entry.stamps)
    arrays, errors, chunk_stamps = [None] * n, [""] * n, stamps.empty(n)
    for i in np.flatnonzero(chunk.wanted):
        arrays[i], errors[i], chunk_stamps[i] = _load_image(
            chunk, i, spec, "RGB", lambda image: preprocess(image, spec.recipe, spec.tta, size=size))
    done = next((a for a in arrays if a is not None), None)
    if done is None:
        return None, None, errors, chunk_stamps
    inputs = to_input(np.stack([done if a is None else a for a in arrays]), spec.recipe, runtime.input_spec)
    return inputs, lambda batch: batch, errors, chunk_stamps


def _classifier_images(chunk: Chunk, spec: RunSpec) -> tuple[list, Callable, list[str], np.ndarray]:
    """What resnet50.py hands ailia.Classifier per image: BGRA uint8 after the Python-side TTA (REFERENCE 3.3): a
    224 x 224 crop for 1-crop / keep-aspect (whatever the network's size), the whole image for none."""

    def to_bgra(bgr: np.ndarray) -> np.ndarray:
        if spec.tta != "none":
            bgr = geometry(bgr, spec.recipe, spec.tta)  # crops treat channels alike: BGR in, BGR out
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2BGRA)

    n = len(chunk.paths)
    images, errors, chunk_stamps = [None] * n, [""] * n, stamps.empty(n)
    for i in np.flatnonzero(chunk.wanted):
        images[i], errors[i], chunk_stamps[i] = _load_image(chunk, i, spec, "BGR", to_bgra)
    return images, lambda batch: batch, errors, chunk_stamps


def _load_image(chunk: Chunk, i: int, spec: RunSpec, channels: str,
                transform: Callable) -> tuple[np.ndarray | None, str, tuple]:
    """One image of a chunk decoded and transformed: (result or None, error or '', its stamp); an image the transform
    refuses (an extreme aspect ratio) is a failed image like a damaged one. The stamp hashes the bytes read; an
    unreadable image gets the INVALID stamp, so its failure is never served from a cache. A refused link is not read:
    its stamp is the link's own, and recreating the link invalidates it."""
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
    return decode_bytes(path, data, exif_transpose=spec.recipe.exif_transpose, channels=channels)


def _cached_geometry(config: WorkerConfig, chunk: Chunk, cache_writer: EntryWriter) -> Entry:
    """The uint8 TTA geometry of a chunk, from the decode cache or computed and stored there (computed only, for the
    wanted images, when the cache is off: config.cache_dir None), with errors and stamps. An image whose stamp no
    longer describes its file is decoded again, alone, and the entry rewritten.
    """
    n, size = len(chunk.paths), config.input_size
    cached = read_entry(config.cache_dir, chunk.key, n, size) if config.cache_dir is not None else None
    entry = cached or Entry.empty(n, size)
    stale = stamps.stale(entry.stamps, chunk.listed, chunk.digests)
    redo = np.flatnonzero(stale if config.cache_dir is not None else stale & chunk.wanted)
    if not len(redo):
        return entry
    spec = config.spec
    bgr = np.zeros((len(redo), size, size, 3), dtype=np.uint8)
    for j, i in enumerate(redo):
        # cropping and resizing treat the channels alike, so they run in OpenCV's BGR and the images are swapped to
        # RGB once, at model size
        image, entry.errors[i], entry.stamps[i] = _load_image(
            chunk, i, spec, "BGR", lambda image: geometry(image, spec.recipe, spec.tta, size=size))
        if image is not None:
            bgr[j] = image
    entry.images[redo] = bgr[..., ::-1]
    if config.cache_dir is not None:
        cache_writer.write(config.cache_dir, chunk.key, entry, replacing=cached is not None)
    return entry


def _run_batches(config: WorkerConfig, runtime, images: np.ndarray, to_model: Callable, ok: list[int],
                 stop: threading.Event) -> np.ndarray:
    batch_size = model_batch_size(config.spec, runtime)
    outputs = []
    for start in range(0, len(ok), batch_size):
        if stop.is_set():  # the run is being abandoned (interrupt or another chunk's error): stop promptly
            raise Abandoned
        rows = ok[start:start + batch_size]
        contiguous = rows[-1] - rows[0] + 1 == len(rows)
        batch = images[rows[0]:rows[-1] + 1] if contiguous else images[rows]  # a view where no image failed
        outputs.append(runtime.run(to_model(batch)))
    return np.concatenate(outputs).astype(np.float32, copy=False)
