"""Runtime adapters by name; each is imported on first use so `import evaluator` needs no ailia or LiteRT.

    runtime = open_runtime("litert", "mobilenet_v1_0.25_128_quant.tflite", num_threads=2)
    scores = runtime.run(batch)            # float32 (N, 1001), dequantized
"""

from __future__ import annotations

import importlib
from pathlib import Path

from evaluator.errors import EvaluatorError, ModelError, did_you_mean
from evaluator.runtimes.base import Runtime, TensorSpec, first_line

__all__ = ["FORMAT_RUNTIMES", "RUNTIMES", "Runtime", "TensorSpec", "file_format", "open_runtime", "runtime_available",
           "runtime_for_file"]

# name -> "module:callable(model_path, num_threads=...)"; every adapter module also defines unavailable_reason().
RUNTIMES = {
    "onnxruntime": "evaluator.runtimes.onnxruntime:OnnxRuntime",
    "litert": "evaluator.runtimes.litert:LiteRT",
    "ailia": "evaluator.runtimes.ailia:open_ailia",  # Classifier recipes: see model_runtime.open_run_runtime
    "ailia-net": "evaluator.runtimes.ailia:open_ailia_net",  # ailia.Net on the evaluator's preprocessing
    "fake": "evaluator.runtimes.fake:FakeRuntime",
}

# Which runtimes open which model file format (a format is also its file name ending); the first is the default
# where ailia is not licensed.
FORMAT_RUNTIMES = {"onnx": ("onnxruntime", "ailia"), "tflite": ("litert", "ailia")}
_FAKE_SUFFIX = ".fake.json"  # the test double's model files (runtimes/fake.py)


def _adapter_module(name: str):
    if name not in RUNTIMES:
        raise EvaluatorError(did_you_mean("runtime", name, RUNTIMES))
    return importlib.import_module(RUNTIMES[name].partition(":")[0])


def open_runtime(name: str, model_path: str | Path, *, num_threads: int | None = None) -> Runtime:
    """Open `model_path` on runtime `name`; RuntimeUnavailable, ModelError or EvaluatorError (unknown name)."""
    module = _adapter_module(name)
    opener = getattr(module, RUNTIMES[name].partition(":")[2])
    return opener(model_path, num_threads=num_threads)


def file_format(model_path: str | Path) -> str | None:
    """A model file's format (a key of FORMAT_RUNTIMES) from its file name ending; None for any other file."""
    suffix = Path(model_path).suffix.lower().removeprefix(".")
    return suffix if suffix in FORMAT_RUNTIMES else None


def runtime_for_file(model_path: str | Path) -> str:
    """Default runtime for a model file: .onnx -> onnxruntime, .tflite -> litert, .fake.json -> fake."""
    if Path(model_path).name.lower().endswith(_FAKE_SUFFIX):
        return "fake"
    model_format = file_format(model_path)
    if model_format is None:
        known = ", ".join(["." + name for name in FORMAT_RUNTIMES] + [_FAKE_SUFFIX])
        raise ModelError(f"{model_path}: unknown model file type {Path(model_path).suffix or '(no suffix)'!r}; "
                         f"expected one of {known}")
    return FORMAT_RUNTIMES[model_format][0]


def runtime_available(name: str) -> str | None:
    """None if runtime `name` can be used here, else the one-line reason (never raises)."""
    try:
        return _adapter_module(name).unavailable_reason()
    except EvaluatorError as error:
        return first_line(error)
    except Exception as error:  # a broken install must become a skip reason, not a crash
        return f"{name}: {type(error).__name__}: {first_line(error)}"
