"""What every runtime adapter shares: the tensor description, the Runtime interface and the model checks.

An adapter opens one model file, checks on open that it is a classifier the evaluator can drive (one rank-4 input,
one (N, 1000) or (N, 1001) output) and raises ModelError naming the file otherwise, before any image is processed.
`run` takes a model-ready batch (laid out and quantized by preprocess.to_input) and returns float32 (N, C) scores,
dequantized as the ailia-models-tflite scripts do: (int32(q) - zero_point) * scale.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from evaluator.errors import EvaluatorError, ModelError

CLASS_COUNTS = (1000, 1001)  # 1001 = TF-slim models with index 0 = background
QUANTIZED_DTYPES = (np.dtype(np.uint8), np.dtype(np.int8))


@dataclass(frozen=True)
class TensorSpec:
    """One model input or output: name, shape (None = dynamic), dtype and its quantization when quantized."""

    name: str
    shape: tuple[int | None, ...]
    dtype: np.dtype
    scale: float | None = None
    zero_point: int | None = None

    def describe(self) -> str:
        """Short text such as "uint8 (N, 128, 128, 3) scale 0.0078125 zero point 128"."""
        dims = ", ".join("?" if d is None else str(d) for d in self.shape)
        dims = "N" + dims[1:] if self.shape and self.shape[0] is None else dims
        text = f"{np.dtype(self.dtype).name} ({dims})"
        if self.scale is not None:
            text += f" scale {self.scale:g} zero point {self.zero_point}"
        return text


class Runtime(Protocol):
    """One opened model on one runtime (see module docstring)."""

    name: str  # "onnxruntime" | "litert" | "ailia" | "fake"
    version: str  # e.g. "onnxruntime 1.32.0"
    model_path: Path
    input_spec: TensorSpec
    output_spec: TensorSpec
    max_batch: int | None  # None = any batch size; 1 when the model's batch is fixed at 1

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Model-ready batch -> float32 (N, C) scores, dequantized."""

    def close(self) -> None:
        """Release the model."""


def check_num_threads(num_threads: int | None) -> int | None:
    """None (library default) or a positive int, else EvaluatorError."""
    if num_threads is None:
        return None
    if isinstance(num_threads, bool) or not isinstance(num_threads, int) or num_threads < 1:
        raise EvaluatorError(f"num_threads must be a positive integer or None, got {num_threads!r}")
    return num_threads


def check_model_file(model_path: str | Path) -> Path:
    """The model path as a Path if it names a non-empty file, else ModelError."""
    path = Path(model_path)
    if not path.exists():
        raise ModelError(f"{path}: model file not found")
    if not path.is_file():
        raise ModelError(f"{path}: not a file")
    if path.stat().st_size == 0:
        raise ModelError(f"{path}: model file is empty")
    return path


def first_line(error: BaseException) -> str:
    """First non-empty line of an exception message (library messages can run to pages)."""
    for line in str(error).splitlines():
        if line.strip():
            return line.strip()
    return type(error).__name__


def not_a_model(path: Path, kind: str, error: BaseException) -> ModelError:
    """ModelError for a file the library refused to load, with the library's first line."""
    return ModelError(f"{path}: not a valid {kind} model (truncated or another kind of file?): {first_line(error)}")


def class_count(shape: tuple[int | None, ...]) -> int | None:
    """Classes in an output shape (N, C), also (N, 1, 1, C); None if the shape is not (N, classes)."""
    dims = [d for d in shape[1:] if d != 1]
    return dims[0] if len(dims) == 1 else None


def check_specs(path: Path, inputs: list[TensorSpec], outputs: list[TensorSpec]) -> tuple[TensorSpec, TensorSpec]:
    """The (input, output) spec of a classifier model; ModelError naming the file and the mismatch otherwise."""
    if len(inputs) != 1:
        names = ", ".join(spec.name for spec in inputs)
        raise ModelError(f"{path}: model has {len(inputs)} inputs ({names}), expected exactly one image input")
    if not outputs:
        raise ModelError(f"{path}: model has no outputs")
    (input_spec,) = inputs
    if len(input_spec.shape) != 4:
        raise ModelError(f"{path}: input {input_spec.name!r} has rank {len(input_spec.shape)} "
                         f"{input_spec.describe()}, expected a rank-4 image batch (NHWC or NCHW)")
    output_spec = outputs[0]
    check_output_shape(path, output_spec.shape, declared=True)
    return input_spec, output_spec


def check_output_shape(path: Path, shape: tuple[int | None, ...], *, declared: bool = False) -> None:
    """ModelError unless the output shape is (N, 1000) or (N, 1001).

    Args:
        declared: the shape comes from model metadata, where unknown dims pass (the first run checks them).
    """
    if declared and (not shape or any(d is None for d in shape[1:])):
        return
    n_classes = class_count(shape)
    if n_classes is None or len(shape) < 2:
        raise ModelError(f"{path}: output shape {tuple(shape)} is not (N, classes), expected (N, 1000) or (N, 1001)")
    if n_classes not in CLASS_COUNTS:
        raise ModelError(f"{path}: output has {n_classes} classes, expected 1000 or 1001")


def check_batch(path: Path, spec: TensorSpec, batch: np.ndarray) -> None:
    """ModelError unless `batch` has the model's dtype and the input shape apart from undeclared dims."""
    shape_ok = batch.ndim == len(spec.shape) and all(
        want is None or want == got for want, got in zip(spec.shape[1:], batch.shape[1:]))
    if not shape_ok or batch.dtype != spec.dtype:
        got = f"{batch.dtype.name} {tuple(batch.shape)}"
        raise ModelError(f"{path}: input batch is {got}, the model expects {spec.describe()}")


def dequantize(values: np.ndarray, spec: TensorSpec) -> np.ndarray:
    """Scores as float32: (int32(q) - zero_point) * scale for quantized outputs, else a float32 cast."""
    if spec.scale is None or np.dtype(values.dtype) not in QUANTIZED_DTYPES:
        return values.astype(np.float32, copy=False)
    shifted = (values.astype(np.int32) - np.int32(spec.zero_point or 0)).astype(np.float32)
    return shifted * np.float32(spec.scale)


def check_rows(path: Path, output: np.ndarray, n_images: int) -> np.ndarray:
    """`output` as an array, ModelError unless it holds one row per image."""
    output = np.asarray(output)
    if output.ndim == 0 or output.shape[0] != n_images:
        raise ModelError(f"{path}: output shape {output.shape} does not hold one row per image ({n_images} images)")
    return output


def as_scores(path: Path, output: np.ndarray, n_images: int) -> np.ndarray:
    """A run's (dequantized) output reshaped to float32 (N, C), checking that C is 1000 or 1001."""
    output = check_rows(path, output, n_images)
    check_output_shape(path, output.shape)
    return output.reshape(n_images, -1).astype(np.float32, copy=False)


def run_in_batches(batch: np.ndarray, max_batch: int | None,
                   run_fixed: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Run `run_fixed` on slices of at most `max_batch` images (zero-padded up to a fixed batch > 1), concatenated."""
    if max_batch is None or len(batch) == max_batch:
        return run_fixed(batch)
    parts = []
    for start in range(0, len(batch), max_batch):
        part = batch[start:start + max_batch]
        n_real = len(part)
        if n_real < max_batch:
            padding = np.zeros((max_batch - n_real,) + part.shape[1:], dtype=part.dtype)
            part = np.concatenate([part, padding])
        parts.append(run_fixed(part)[:n_real])
    return np.concatenate(parts)


class RuntimeBase:
    """Shared body of the adapters: subclasses set the Runtime attributes and implement `_invoke`."""

    name: str
    version: str
    model_path: Path
    input_spec: TensorSpec
    output_spec: TensorSpec
    max_batch: int | None

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Model-ready batch -> float32 (N, C) scores, dequantized; loops when the model takes fewer images."""
        batch = np.asarray(batch)
        check_batch(self.model_path, self.input_spec, batch)
        if len(batch) == 0:
            return np.zeros((0, class_count(self.output_spec.shape) or 0), dtype=np.float32)
        # Raw outputs are gathered and dequantized once per batch: a batch-1 model loops without per-image numpy work.
        raw = run_in_batches(batch, self.max_batch, self._checked_invoke)
        return as_scores(self.model_path, dequantize(raw, self.output_spec), len(batch))

    def _checked_invoke(self, batch: np.ndarray) -> np.ndarray:
        return check_rows(self.model_path, self._invoke(batch), len(batch))

    def _invoke(self, batch: np.ndarray) -> np.ndarray:
        """One library call on exactly the batch given (at most max_batch images); returns the raw first output."""
        raise NotImplementedError

    def close(self) -> None:
        """Release the model (adapters with native handles override this)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.version} {self.model_path.name} input {self.input_spec.describe()}>"
