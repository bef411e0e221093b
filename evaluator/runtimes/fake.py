"""A deterministic fake runtime for unit tests: the "model" is a small JSON file, its scores a known function.

    model = FakeModel(input_shape=(None, 8, 8, 3), rule="nearest-mean")
    path = model.save(tmp_path / "tiny.fake.json")
    runtime = open_runtime("fake", path)
    runtime.run(np.full((2, 8, 8, 3), 7.2, np.float32)).argmax(1)      # -> [7, 7]

Scores depend only on the input values the runtime receives (quantized inputs are taken as their raw integers):
- "nearest-mean": m = mean of all values of an image * mean_scale + mean_offset; score[c] = -(c - m)**2, so the class
  nearest to m wins and its neighbours follow (top-5 of m = 7.2: 7, 8, 6, 9, 5).
- "linear": score = bias + weights @ channel_means, weights (n_classes, channels), channel axis from `layout`.
Fault injection: `non_finite_above` turns every score of an image whose mean input value exceeds it into NaN (or
inf), `fail_after_calls` makes run() raise; `delay_s` and `calls_file` slow down and count library calls;
`hold_file` stops calls at a known point until the test lets them go.
Quantized outputs (output_dtype uint8/int8 with a scale) are quantized with rounding and clipping, then dequantized by
the shared runtime code, exactly like a real quantized model. The same shape checks as the real adapters apply.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from evaluator.errors import ModelError
from evaluator.runtimes.base import RuntimeBase, TensorSpec, check_model_file, check_num_threads, check_specs

FORMAT = "evaluator-fake-model/1"


def unavailable_reason() -> str | None:
    """The fake runtime is always available."""
    return None


@dataclass(frozen=True)
class FakeModel:
    """Everything that defines a fake model; `save` writes it as JSON, `FakeRuntime` runs it."""

    # input tensor (batch None = any batch size, 1 = fixed batch of one)
    input_shape: tuple[int | None, ...] = (None, 8, 8, 3)
    input_dtype: str = "float32"
    input_scale: float | None = None
    input_zero_point: int | None = None
    layout: str = "NHWC"  # where the channel axis is, for the "linear" rule
    # scores
    n_classes: int = 1000
    rule: str = "nearest-mean"  # or "linear"
    mean_scale: float = 1.0
    mean_offset: float = 0.0
    weights: tuple[tuple[float, ...], ...] | None = None  # linear: (n_classes, channels)
    bias: tuple[float, ...] | None = None  # linear: (n_classes,), zeros when None
    # output tensor
    output_dtype: str = "float32"
    output_scale: float | None = None
    output_zero_point: int | None = None
    # failure injection: run() raises RuntimeError after this many successful library calls
    fail_after_calls: int | None = None
    # failure injection: every score of an image whose mean input value is above this is `non_finite_value`
    non_finite_above: float | None = None
    non_finite_value: str = "nan"  # "nan", "inf" or "-inf"
    # instrumentation for interruption and concurrency tests: a pause per library call, and a file to which each
    # call appends one line with its number of images (appends of a few bytes are atomic across processes)
    delay_s: float = 0.0
    calls_file: str | None = None
    # a gate for interruption tests, in place of a race against the clock: once calls_file lists hold_after_calls
    # calls (of any process), each further call waits while hold_file exists
    hold_file: str | None = None
    hold_after_calls: int = 0

    def save(self, path: str | Path) -> Path:
        """Write the model as JSON (name it *.fake.json so runtime_for_file picks "fake") and return the path."""
        path = Path(path)
        path.write_text(json.dumps({"format": FORMAT, **asdict(self)}, indent=1), encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: Path) -> FakeModel:
        """Read a saved model; ModelError naming the file and the key on anything malformed."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ModelError(f"{path}: not a fake model (invalid JSON: {error})") from None
        if not isinstance(data, dict) or data.pop("format", None) != FORMAT:
            raise ModelError(f"{path}: not a fake model (missing \"format\": \"{FORMAT}\")")
        unknown = sorted(set(data) - {field.name for field in fields(cls)})
        if unknown:
            raise ModelError(f"{path}: unknown fake model key(s) {', '.join(unknown)}")
        if "input_shape" in data:
            data["input_shape"] = tuple(data["input_shape"])
        model = cls(**data)
        if model.rule not in ("nearest-mean", "linear") or model.layout not in ("NHWC", "NCHW"):
            raise ModelError(f"{path}: rule must be nearest-mean or linear and layout NHWC or NCHW")
        if model.non_finite_value not in ("nan", "inf", "-inf"):
            raise ModelError(f"{path}: non_finite_value must be nan, inf or -inf")
        if model.non_finite_above is not None and model.output_scale is not None:
            raise ModelError(f"{path}: non_finite_above needs float outputs (a quantized output cannot hold NaN)")
        if model.hold_file is not None and model.calls_file is None:
            raise ModelError(f"{path}: hold_file needs calls_file (the calls it counts)")
        return model

    def scores(self, batch: np.ndarray) -> np.ndarray:
        """float64 (N, n_classes) scores before output quantization (see module docstring)."""
        values = np.asarray(batch, dtype=np.float64)
        image_means = values.reshape(len(values), -1).mean(axis=1)
        if self.rule == "nearest-mean":
            classes = np.arange(self.n_classes, dtype=np.float64)
            target = image_means * self.mean_scale + self.mean_offset
            scores = -((classes[None, :] - target[:, None]) ** 2)
        else:
            channel_axis = 3 if self.layout == "NHWC" else 1
            pixel_axes = tuple(axis for axis in (1, 2, 3) if axis != channel_axis)
            channel_means = values.mean(axis=pixel_axes)
            bias = np.zeros(self.n_classes) if self.bias is None else np.asarray(self.bias, dtype=np.float64)
            scores = bias[None, :] + channel_means @ np.asarray(self.weights, dtype=np.float64).T
        if self.non_finite_above is not None:
            scores[image_means > self.non_finite_above] = float(self.non_finite_value)
        return scores


class FakeRuntime(RuntimeBase):
    """Runs a FakeModel file with the same checks, batching and dequantization as the real adapters."""

    name = "fake"
    version = "fake 1"

    def __init__(self, model_path: str | Path, *, num_threads: int | None = None):
        check_num_threads(num_threads)
        self.model_path = check_model_file(model_path)
        self.model = FakeModel.load(self.model_path)
        model = self.model
        input_spec = TensorSpec("input", model.input_shape, np.dtype(model.input_dtype), model.input_scale,
                                model.input_zero_point)
        output_spec = TensorSpec("scores", (model.input_shape[0] if model.input_shape else None, model.n_classes),
                                 np.dtype(model.output_dtype), model.output_scale, model.output_zero_point)
        self.input_spec, self.output_spec = check_specs(self.model_path, [input_spec], [output_spec])
        if model.rule == "linear" and (model.weights is None or np.shape(model.weights)[0] != model.n_classes):
            raise ModelError(f"{self.model_path}: linear rule needs weights of shape (n_classes, channels)")
        self.max_batch = model.input_shape[0]
        self.calls = 0  # library calls made, for tests of batching

    def _invoke(self, batch: np.ndarray) -> np.ndarray:
        if self.model.fail_after_calls is not None and self.calls >= self.model.fail_after_calls:
            raise RuntimeError(f"fake runtime: planned failure after {self.calls} calls ({self.model_path})")
        self.calls += 1
        while self._held():
            time.sleep(0.01)
        if self.model.delay_s:
            time.sleep(self.model.delay_s)
        if self.model.calls_file is not None:
            with open(self.model.calls_file, "a", encoding="utf-8") as calls:
                calls.write(f"{len(batch)}\n")
        scores = self.model.scores(batch)
        dtype = self.output_spec.dtype
        if self.output_spec.scale is None or dtype.kind == "f":
            return scores.astype(dtype)
        limits = np.iinfo(dtype)
        quantized = np.round(scores / self.output_spec.scale) + (self.output_spec.zero_point or 0)
        return np.clip(quantized, limits.min, limits.max).astype(dtype)

    def _held(self) -> bool:
        if self.model.hold_file is None or not Path(self.model.hold_file).exists():
            return False
        calls_file = Path(self.model.calls_file)
        return calls_file.exists() and len(calls_file.read_text().split()) >= self.model.hold_after_calls
