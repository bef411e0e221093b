"""The run's model on its runtime: opened once to validate it against the recipe (ModelInfo), opened per worker for
the run, and kept open between runs by a RuntimePool that the caller owns."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import ModelError
from .model_hash import file_sha256
from .recipes import Recipe
from .run_spec import RunSpec
from .runtimes import file_format, open_runtime
from .runtimes.base import check_output_shape


@dataclass(frozen=True)
class ModelInfo:
    sha256: str
    runtime_version: str
    input_size: int
    n_outputs: int


class RuntimePool:
    """Opened runtimes of the last model run, kept for its next run; the caller that creates it closes it.

    Opening a session and its first call cost tens of milliseconds (ONNX Runtime: ~40 ms for a MobileNet), paid per
    worker per run; a suite evaluates each model in several TTA modes and runtimes in a row, so the runtimes of the
    last model are kept, and those of any other model are closed as soon as a different model is opened.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._key: tuple | None = None
        self._runtimes: list = []

    def take(self, spec: RunSpec):
        """A kept runtime for this spec's model, or a newly opened one."""
        key = runtime_key(spec)
        with self._lock:
            if key == self._key and self._runtimes:
                return self._runtimes.pop()
        return open_run_runtime(spec)

    def give_back(self, spec: RunSpec, runtimes: list) -> None:
        """Keep these runtimes (opened for `spec`) for the next run; close those kept for another model."""
        key = runtime_key(spec)
        with self._lock:
            stale = [] if key == self._key else self._runtimes
            if key != self._key:
                self._key, self._runtimes = key, []
            self._runtimes.extend(runtimes)
        for runtime in stale:
            runtime.close()

    def close(self) -> None:
        """Close every kept runtime."""
        with self._lock:
            runtimes, self._key, self._runtimes = self._runtimes, None, []
        for runtime in runtimes:
            runtime.close()

    def __enter__(self) -> RuntimePool:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


class WorkerRuntimes:
    """One runtime per worker thread of a run, taken from the pool when the thread needs its first."""

    def __init__(self, pool: RuntimePool, spec: RunSpec):
        self._pool, self._spec = pool, spec
        self._local = threading.local()
        self._lock = threading.Lock()
        self._opened: list = []

    def get(self):
        """This thread's runtime."""
        runtime = getattr(self._local, "runtime", None)
        if runtime is None:
            runtime = self._local.runtime = self._pool.take(self._spec)
            with self._lock:
                self._opened.append(runtime)
        return runtime

    def give_back(self) -> None:
        """After a run that ended well: the runtimes go back to the pool for the next run."""
        self._pool.give_back(self._spec, self._opened)
        self._opened = []

    def close(self) -> None:
        """After a failed or interrupted run: no runtime is trusted for another run."""
        for runtime in self._opened:
            runtime.close()
        self._opened = []


def runtime_key(spec: RunSpec) -> tuple:
    """What an opened runtime depends on: runtime, model file (as it is now) and threads."""
    path = Path(spec.model_path)
    stat = path.stat()
    return spec.runtime, str(path.resolve()), stat.st_size, stat.st_mtime_ns, spec.threads_per_worker


def uses_ailia_classifier(spec: RunSpec) -> bool:
    """True for ailia ONNX runs whose documented numbers came from ailia.Classifier (REFERENCE 3.3): they go through
    it, fed what the script feeds it. `--runtime ailia-net` runs ailia.Net on the evaluator's own preprocessing."""
    return (spec.runtime == "ailia" and file_format(spec.model_path) == "onnx"
            and spec.recipe.ailia_classifier_range is not None)


def open_run_runtime(spec: RunSpec):
    """The runtime a worker of this run uses: ailia.Classifier where uses_ailia_classifier, else spec.runtime."""
    if uses_ailia_classifier(spec):
        from .runtimes.ailia import open_ailia_classifier  # adapter modules are imported on first use (runtimes/)

        return open_ailia_classifier(spec.model_path, spec.recipe.ailia_classifier_range,
                                     num_threads=spec.threads_per_worker)
    return open_runtime(spec.runtime, spec.model_path, num_threads=spec.threads_per_worker)


def inspect_model(spec: RunSpec, hash_cache_dir: Path | None = None, runtimes: RuntimePool | None = None) -> ModelInfo:
    """Open the model once to validate it against the recipe; ModelError names the file and the mismatch.

    Args:
        hash_cache_dir: the artifacts directory, where the model's sha256 is remembered per file version.
        runtimes: where the opened runtime goes afterwards (the run's first worker takes it); closed when None.
    """
    path = Path(spec.model_path)
    if not path.is_file():
        raise ModelError(f"{path}: model file not found")
    runtime = runtimes.take(spec) if runtimes is not None else open_run_runtime(spec)
    try:
        size = _input_size(runtime.input_spec.shape, spec.recipe, path)
        n_outputs = _output_classes(runtime, size, path)
        if n_outputs - spec.recipe.class_offset != 1000:
            raise ModelError(f"{path}: model has {n_outputs} outputs but recipe {spec.recipe.name} expects "
                             f"{1000 + spec.recipe.class_offset} (class offset {spec.recipe.class_offset})")
    except BaseException:
        runtime.close()
        raise
    info = ModelInfo(file_sha256(path, hash_cache_dir), runtime.version, size, n_outputs)
    if runtimes is not None:
        runtimes.give_back(spec, [runtime])
    else:
        runtime.close()
    return info


def model_batch_size(spec: RunSpec, runtime) -> int:
    """Images per runtime.run(): the spec's batch size, or the model's fixed batch where that is larger (full
    batches rather than padded ones). A model with a fixed batch of 1 is looped inside runtime.run(), image by image
    whatever the call's size, so it takes whole chunks: fewer calls, less per-call overhead."""
    if runtime.max_batch == 1:
        return spec.chunk_size
    return max(spec.batch_size, runtime.max_batch or 0)


def _output_classes(runtime, size: int, path: Path) -> int:
    """The model's class count: declared in its output shape, or (a symbolic shape such as ['N', 'K']) learnt from
    the output of one real batch."""
    declared = runtime.output_spec.shape[-1] if runtime.output_spec.shape else None
    if isinstance(declared, int) and declared > 0:
        return declared
    input_spec = runtime.input_spec
    shape = [input_spec.shape[0] or 1, *(d if isinstance(d, int) and d > 0 else size for d in input_spec.shape[1:])]
    scores = np.asarray(runtime.run(np.zeros(shape, dtype=input_spec.dtype)))
    check_output_shape(path, scores.shape)
    return int(scores.shape[-1])


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
