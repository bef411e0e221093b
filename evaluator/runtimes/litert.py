"""LiteRT adapter (ai_edge_litert, or tensorflow.lite as used for the documented "TensorFlow 2.7" rows).

`InterpreterRuntime` drives any tf.lite-compatible interpreter object (also ailia_tflite's, see ailia.py) the way the
ailia-models-tflite scripts do: allocate_tensors, get_input/output_details, then per image set_tensor, invoke,
get_tensor and dequantize. TFLite classifiers have a fixed batch of 1 and resizing the batch fails on common models
(XNNPack cannot reshape TF-slim MobileNets), so batches are always run one image at a time.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from evaluator.errors import RuntimeUnavailable
from evaluator.runtimes.base import (
    QUANTIZED_DTYPES,
    RuntimeBase,
    TensorSpec,
    check_model_file,
    check_num_threads,
    check_specs,
    not_a_model,
)

_INSTALL = "pip install ai-edge-litert"


def _import_interpreter():
    """(Interpreter class, version text): ai_edge_litert first, then TensorFlow's tf.lite."""
    try:
        import ai_edge_litert
        from ai_edge_litert.interpreter import Interpreter
        return Interpreter, f"ai-edge-litert {_litert_version(ai_edge_litert)}"
    except ImportError as error:
        litert_error = error
    try:
        import tensorflow
    except ImportError:
        raise RuntimeUnavailable(f"LiteRT is not installed ({litert_error}): {_INSTALL}") from None
    return tensorflow.lite.Interpreter, f"tensorflow {tensorflow.__version__}"


def _litert_version(module) -> str:
    version = getattr(module, "__version__", None)
    if version is None:  # importlib.metadata costs ~10 ms of start-up; the package usually names its version
        import importlib.metadata

        version = importlib.metadata.version("ai-edge-litert")
    return version


def unavailable_reason() -> str | None:
    """None when ai_edge_litert (or tensorflow) imports, else why not."""
    try:
        _import_interpreter()
    except RuntimeUnavailable as error:
        return str(error)
    return None


def tensor_spec(details: dict) -> TensorSpec:
    """TensorSpec from a tf.lite tensor-details dict (per-tensor quantization: scales[0], zero_points[0])."""
    dtype = np.dtype(details["dtype"])
    signature = details.get("shape_signature", details["shape"])
    shape = tuple(int(d) if d > 0 else None for d in signature)
    scales = details.get("quantization_parameters", {}).get("scales", ())
    if dtype in QUANTIZED_DTYPES and len(scales) > 0:
        zero_points = details["quantization_parameters"]["zero_points"]
        return TensorSpec(details["name"], shape, dtype, float(scales[0]), int(zero_points[0]))
    return TensorSpec(details["name"], shape, dtype)


class InterpreterRuntime(RuntimeBase):
    """A model opened by a tf.lite-compatible interpreter; subclasses construct the interpreter."""

    def _attach(self, interpreter) -> None:
        """Allocate, read and check the tensor details of a freshly constructed interpreter."""
        try:
            interpreter.allocate_tensors()
            input_details = interpreter.get_input_details()
            output_details = interpreter.get_output_details()
        except Exception as error:
            raise not_a_model(self.model_path, "TFLite", error) from None
        inputs = [tensor_spec(details) for details in input_details]
        outputs = [tensor_spec(details) for details in output_details]
        self.input_spec, self.output_spec = check_specs(self.model_path, inputs, outputs)
        self.max_batch = self.input_spec.shape[0] or 1  # a dynamic batch is allocated as 1
        self._input_index = input_details[0]["index"]
        self._output_index = output_details[0]["index"]
        self._interpreter = interpreter

    def _invoke(self, batch: np.ndarray) -> np.ndarray:
        self._interpreter.set_tensor(self._input_index, batch)
        self._interpreter.invoke()
        return self._interpreter.get_tensor(self._output_index)

    def close(self) -> None:
        """Drop the interpreter."""
        self._interpreter = None


class LiteRT(InterpreterRuntime):
    """A .tflite model on LiteRT (or tf.lite when only TensorFlow is installed)."""

    name = "litert"

    def __init__(self, model_path: str | Path, *, num_threads: int | None = None):
        interpreter_class, self.version = _import_interpreter()
        num_threads = check_num_threads(num_threads)
        self.model_path = check_model_file(model_path)
        try:
            with warnings.catch_warnings():
                # TF >= 2.16 warns that tf.lite.Interpreter moves to ai_edge_litert; we already prefer that one
                warnings.filterwarnings("ignore", message=r"(?s).*tf\.lite\.Interpreter is deprecated")
                interpreter = interpreter_class(model_path=str(self.model_path), num_threads=num_threads)
        except Exception as error:  # ValueError "The model is not a valid Flatbuffer buffer", ...
            raise not_a_model(self.model_path, "TFLite", error) from None
        self._attach(interpreter)
