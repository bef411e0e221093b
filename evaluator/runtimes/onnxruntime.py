"""ONNX Runtime adapter (CPU execution provider, full graph optimisation)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from evaluator.errors import ModelError, RuntimeUnavailable
from evaluator.runtimes.base import (
    RuntimeBase,
    TensorSpec,
    check_model_file,
    check_num_threads,
    check_specs,
    not_a_model,
)

_INSTALL = "pip install onnxruntime"
_DTYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64,
           "tensor(uint8)": np.uint8, "tensor(int8)": np.int8}


def _import_onnxruntime():
    try:
        import onnxruntime
    except ImportError as error:
        raise RuntimeUnavailable(f"onnxruntime is not installed ({error}): {_INSTALL}") from None
    return onnxruntime


def unavailable_reason() -> str | None:
    """None when onnxruntime imports, else why not."""
    try:
        _import_onnxruntime()
    except RuntimeUnavailable as error:
        return str(error)
    return None


def _spec(path: Path, node) -> TensorSpec:
    if node.type not in _DTYPES:
        raise ModelError(f"{path}: tensor {node.name!r} has type {node.type}, expected float or 8-bit integer")
    shape = tuple(d if isinstance(d, int) and d > 0 else None for d in (node.shape or ()))
    return TensorSpec(name=node.name, shape=shape, dtype=np.dtype(_DTYPES[node.type]))


class OnnxRuntime(RuntimeBase):
    """An ONNX model on ONNX Runtime; max_batch is None for a dynamic batch dim, else the fixed batch."""

    name = "onnxruntime"

    def __init__(self, model_path: str | Path, *, num_threads: int | None = None):
        ort = _import_onnxruntime()
        num_threads = check_num_threads(num_threads)
        self.model_path = check_model_file(model_path)
        self.version = f"onnxruntime {ort.__version__}"
        options = ort.SessionOptions()
        options.intra_op_num_threads = num_threads or 0  # 0 = one thread per physical core
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3  # errors only: optimiser notices are not ours to print
        try:
            self._session = ort.InferenceSession(str(self.model_path), options, providers=["CPUExecutionProvider"])
        except Exception as error:  # the pybind layer raises its own classes (InvalidProtobuf, Fail, ...)
            raise not_a_model(self.model_path, "ONNX", error) from None
        inputs = [_spec(self.model_path, node) for node in self._session.get_inputs()]
        outputs = [_spec(self.model_path, node) for node in self._session.get_outputs()[:1]]
        self.input_spec, self.output_spec = check_specs(self.model_path, inputs, outputs)
        if self.output_spec.dtype.kind != "f":
            raise ModelError(f"{self.model_path}: output is {self.output_spec.dtype.name} without quantization "
                             "parameters; expected float scores")
        self.max_batch = self.input_spec.shape[0]

    def _invoke(self, batch: np.ndarray) -> np.ndarray:
        return self._session.run([self.output_spec.name], {self.input_spec.name: batch})[0]

    def close(self) -> None:
        """Drop the session."""
        self._session = None
