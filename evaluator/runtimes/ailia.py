"""ailia SDK adapters: ONNX through ailia.Net, TFLite through ailia_tflite.Interpreter, and ailia.Classifier.

The calls mirror the ailia-models / ailia-models-tflite scripts that produced the documented numbers (REFERENCE §3,
§4, §5): Net(stream=<model>.prototxt or None, weight=<model>.onnx, env_id=get_gpu_environment_id()),
Interpreter(model_path=...) with env_id/memory_mode/flags only when non-zero, and for the ONNX rows
Classifier(prototxt, onnx, format=RGB, range=S_INT8|IMAGENET, channel=FIRST).compute(BGRA uint8 image, top_k).

Trial ("time_license") builds need AILIA.lic. The SDK looks for it where `licence_paths` does and, when it is
missing, tries to download it and then fails with an unrelated TypeError when offline; so we check first and raise
RuntimeUnavailable with what to do, and still turn any licence failure of a constructor into RuntimeUnavailable.
"""

from __future__ import annotations

import contextlib
import datetime
import importlib
import io
import logging
import logging.handlers
import os
import re
import sys
import warnings
from pathlib import Path

import numpy as np

from evaluator.errors import EvaluatorError, ModelError, RecipeError, RuntimeUnavailable, did_you_mean
from evaluator.runtimes import file_format
from evaluator.runtimes.base import (
    RuntimeBase,
    TensorSpec,
    check_model_file,
    check_num_threads,
    check_specs,
    first_line,
    run_in_batches,
)
from evaluator.runtimes.litert import InterpreterRuntime

_INSTALL = "pip install 'imagenet-evaluator[ailia]'"
_LICENCE_HELP = ("when online, python -c 'import ailia; ailia.license.check_and_download_license()' "
                 "downloads it (https://ailia.ai/license/)")
IMAGE_RANGES = ("U_INT8", "S_INT8", "U_FP32", "S_FP32", "IMAGENET")


def _import(module_name: str):
    try:
        return importlib.import_module(module_name)
    except ImportError as error:  # also raised by the packages when their native library is missing
        raise RuntimeUnavailable(f"{module_name} is not usable ({first_line(error)}): {_INSTALL}") from None


def _sdk_version(module_name: str, module) -> str:
    """Version string of the native library, e.g. "1.6.1.45-r6b4640670-time_license" ("" if unreadable)."""
    try:
        return module.get_version() if module_name == "ailia" else module.ailia_tflite().GetVersion()
    except Exception:  # an SDK without the call: licence checks then fall to the constructors
        return ""


# ---------------------------------------------------------------- licence


def _user_home() -> Path:
    import pwd  # as the SDK: the passwd home of the (sudo) user, not $HOME

    uid = int(os.environ["SUDO_UID"]) if "SUDO_UID" in os.environ else os.getuid()
    return Path(pwd.getpwuid(uid).pw_dir)


def licence_paths(package_dir: Path) -> list[Path]:
    """Every AILIA.lic the SDK's license.py requires on this platform, in the order it checks them."""
    if sys.platform == "win32":
        return [package_dir / "windows" / "x64" / "AILIA.lic"]
    if sys.platform == "darwin":
        user, system = _user_home() / "Library" / "SHALO", Path("/Users/Shared/Library/SHALO")
    else:
        user, system = _user_home() / ".shalo", Path("/usr/local/etc/shalo")
    paths = [user / "AILIA.lic"]
    if os.getuid() == 0:
        paths.append(system / "AILIA.lic")
    return paths


def _shown(path: Path) -> str:
    try:
        return f"~/{path.relative_to(_user_home()).as_posix()} ({path})"
    except (ValueError, KeyError, ImportError):
        return str(path)


def _licence_location(sdk) -> str:
    try:
        return _shown(licence_paths(Path(sdk.__file__).parent)[0])
    except (KeyError, ImportError):
        return "~/.shalo/AILIA.lic"


def _licence_file_problem(path: Path) -> str | None:
    """Why the SDK would reject this licence file (its license.py `_check_license`), or None."""
    if not path.is_file():
        return f"ailia licence not found: put AILIA.lic at {_shown(path)}; {_LICENCE_HELP}"
    with open(path, encoding="utf-8", errors="replace") as lines:
        header = [lines.readline() for _ in range(3)]
    date = re.match(r"(\d{4})/(\d{2})/(\d{2})", header[2])
    if header[:2] != ["--- shalo license file ---\n", "axell:ailia\n"] or date is None:
        return f"ailia licence {path} has an invalid format: replace it; {_LICENCE_HELP}"
    expiry = datetime.datetime(int(date[1]), int(date[2]), int(date[3]), 23, 59, 59)
    if datetime.datetime.now() > expiry:
        return f"ailia licence {path} expired on {date[0]}: renew it; {_LICENCE_HELP}"
    return None


def _licence_problem(module_name: str, module) -> str | None:
    """None when the SDK needs no licence or finds a valid one, else the one-line reason."""
    version = _sdk_version(module_name, module)
    needs_licence = "time_license" in version if module_name == "ailia" else "perpetual_license" not in version
    if not needs_licence:
        return None
    try:
        paths = licence_paths(Path(module.__file__).parent)
    except KeyError:  # pwd has no entry for this uid: the SDK's own check would crash the same way
        return f"ailia licence: uid {os.getuid()} has no home directory in the passwd database to hold .shalo/AILIA.lic"
    for path in paths:
        problem = _licence_file_problem(path)
        if problem:
            return problem
    return None


def _open_sdk(module_name: str) -> object:
    """The imported SDK module, after its licence check; RuntimeUnavailable otherwise."""
    module = _import(module_name)
    problem = _licence_problem(module_name, module)
    if problem:
        raise RuntimeUnavailable(problem)
    return module


def unavailable_reason() -> str | None:
    """None when ailia and ailia_tflite import and have their licence, else why not."""
    try:
        for module_name in ("ailia", "ailia_tflite"):
            _open_sdk(module_name)
    except RuntimeUnavailable as error:
        return str(error)
    return None


# ---------------------------------------------------------------- constructing SDK objects


@contextlib.contextmanager
def _sdk_output_captured():
    """Keep the SDK's log records and Python-level prints off the console; yields the captured records."""
    handler = logging.handlers.BufferingHandler(capacity=1000)
    loggers = [logging.getLogger(name) for name in ("ailia", "ailia_tflite")]
    saved = [logger.propagate for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.propagate = False
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield handler.buffer
    finally:
        for logger, propagate in zip(loggers, saved):
            logger.removeHandler(handler)
            logger.propagate = propagate


def _is_licence_failure(error: BaseException, records: list[logging.LogRecord]) -> bool:
    """True when the error, an exception it arose from, or what the SDK logged meanwhile is about the licence."""
    if any("licen" in record.getMessage().lower() for record in records):
        return True
    seen = error
    while seen is not None:
        if "licen" in type(seen).__name__.lower() or "licen" in str(seen).lower():
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _construct(path: Path, kind: str, sdk, constructor, *args, **kwargs):
    """constructor(*args, **kwargs) of module `sdk` with its output captured and its exceptions rephrased."""
    with _sdk_output_captured() as records, warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)  # ailia_tflite.Interpreter never closes the model file
        try:
            return constructor(*args, **kwargs)
        except Exception as error:
            if _is_licence_failure(error, records):
                said = records[0].getMessage() if records else first_line(error)
                raise RuntimeUnavailable(f"ailia licence problem ({said}): put AILIA.lic at {_licence_location(sdk)}; "
                                         f"{_LICENCE_HELP}") from None
            raise ModelError(f"{path}: ailia cannot open this {kind} model (truncated or another kind of file?): "
                             f"{first_line(error)}") from None


def _prototxt(path: Path) -> Path | None:
    """<model>.onnx.prototxt next to the model when present (the ailia-models files come in pairs)."""
    prototxt = path.with_name(path.name + ".prototxt")
    return prototxt if prototxt.is_file() else None


def _environment(ailia, env_id: int | None) -> int:
    # the scripts' default: the GPU environment if any, else ENVIRONMENT_AUTO
    return ailia.get_gpu_environment_id() if env_id is None else env_id


def _check_net_shapes(path: Path, net) -> tuple[TensorSpec, TensorSpec, tuple[int, ...]]:
    """(input spec with a free batch dim, output spec, the model's own input shape) of an ailia.Net."""
    try:
        names = [net.get_blob_name(index) for index in net.get_input_blob_list()]
        input_shape, output_shape = tuple(net.get_input_shape()), tuple(net.get_output_shape())
    except Exception as error:
        raise ModelError(f"{path}: ailia cannot report the model's shapes: {first_line(error)}") from None
    inputs = [TensorSpec(name, (None,) + input_shape[1:], np.dtype(np.float32)) for name in names]
    outputs = [TensorSpec("output", (None,) + output_shape[1:], np.dtype(np.float32))]
    input_spec, output_spec = check_specs(path, inputs, outputs)
    return input_spec, output_spec, input_shape


# ---------------------------------------------------------------- runtimes


class AiliaNet(RuntimeBase):
    """An ONNX model on ailia.Net; any batch size via set_input_shape, else the model's own batch."""

    name = "ailia"
    max_batch = None

    def __init__(self, model_path: str | Path, *, num_threads: int | None = None, env_id: int | None = None):
        ailia = _open_sdk("ailia")
        num_threads = check_num_threads(num_threads)
        self.model_path = check_model_file(model_path)
        self.version = f"ailia {ailia.get_version().split('-')[0]}"
        prototxt = _prototxt(self.model_path)
        self._net = _construct(self.model_path, "ONNX", ailia, ailia.Net, stream=str(prototxt) if prototxt else None,
                               weight=str(self.model_path), env_id=_environment(ailia, env_id),
                               num_thread=num_threads or 0)
        self.input_spec, self.output_spec, self._shape = _check_net_shapes(self.model_path, self._net)
        self._model_batch = self._shape[0]

    def _invoke(self, batch: np.ndarray) -> np.ndarray:
        if batch.shape != self._shape:
            try:
                self._net.set_input_shape(batch.shape)
            except Exception as error:
                if len(batch) == self._model_batch:
                    raise ModelError(f"{self.model_path}: ailia refused input shape {batch.shape}: "
                                     f"{first_line(error)}") from None
                # the graph pins its batch size (e.g. a Reshape to (1, -1)): run at the model's own batch
                self.max_batch = self._model_batch
                return run_in_batches(batch, self.max_batch, self._invoke)
            self._shape = batch.shape
        return self._net.predict(batch)

    def close(self) -> None:
        """Drop the network (the SDK frees it when collected)."""
        self._net = None


class AiliaTFLite(InterpreterRuntime):
    """A .tflite model on ailia_tflite.Interpreter (it has no thread setting: num_threads is accepted and unused)."""

    name = "ailia"

    def __init__(self, model_path: str | Path, *, num_threads: int | None = None, env_id: int = 0,
                 memory_mode: int = 0, flags: int = 0):
        ailia_tflite = _open_sdk("ailia_tflite")
        check_num_threads(num_threads)
        self.model_path = check_model_file(model_path)
        self.version = f"ailia_tflite {_sdk_version('ailia_tflite', ailia_tflite).split('-')[0]}"
        options = {key: value for key, value in (("env_id", env_id), ("memory_mode", memory_mode), ("flags", flags))
                   if value}  # as the scripts: non-default options only
        interpreter = _construct(self.model_path, "TFLite", ailia_tflite, ailia_tflite.Interpreter,
                                 model_path=str(self.model_path), **options)
        self._attach(interpreter)


def open_ailia(model_path: str | Path, *, num_threads: int | None = None, env_id: int | None = None) -> RuntimeBase:
    """Open a .onnx (ailia.Net) or .tflite (ailia_tflite) model on the ailia SDK."""
    model_format = file_format(model_path)
    if model_format == "onnx":
        return AiliaNet(model_path, num_threads=num_threads, env_id=env_id)
    if model_format == "tflite":
        return AiliaTFLite(model_path, num_threads=num_threads, env_id=env_id or 0)
    suffix = Path(model_path).suffix.lower()
    raise ModelError(f"{model_path}: the ailia runtime opens .onnx or .tflite files, not {suffix or 'this file'!r}")


def open_ailia_net(model_path: str | Path, *, num_threads: int | None = None, env_id: int | None = None) -> AiliaNet:
    """An ONNX model on ailia.Net, fed the evaluator's own preprocessing: an explicit choice (`--runtime ailia-net`),
    judged as another runtime than the ailia.Classifier that produced the documented ONNX numbers."""
    if file_format(model_path) != "onnx":
        raise ModelError(f"{model_path}: the ailia-net runtime opens .onnx files; use --runtime ailia for .tflite")
    return AiliaNet(model_path, num_threads=num_threads, env_id=env_id)


class AiliaClassifierRuntime:
    """An ONNX classifier on ailia.Classifier, which converts colour, range and size inside the SDK."""

    name = "ailia"
    max_batch = 1  # one image per compute(), as the scripts call it

    def __init__(self, model_path: str | Path, range_name: str, *, num_threads: int | None = None,
                 env_id: int | None = None):
        ailia = _open_sdk("ailia")
        if range_name not in IMAGE_RANGES:
            raise RecipeError(did_you_mean("ailia image range", range_name, IMAGE_RANGES))
        num_threads = check_num_threads(num_threads)
        self.model_path = check_model_file(model_path)
        self.version = f"ailia {ailia.get_version().split('-')[0]}"
        prototxt = _prototxt(self.model_path)
        self._classifier = _construct(
            self.model_path, "ONNX", ailia, ailia.Classifier, str(prototxt) if prototxt else None, str(self.model_path),
            env_id=_environment(ailia, env_id), num_thread=num_threads or 0, format=ailia.NETWORK_IMAGE_FORMAT_RGB,
            range=getattr(ailia, "NETWORK_IMAGE_RANGE_" + range_name), channel=ailia.NETWORK_IMAGE_CHANNEL_FIRST)
        self.input_spec, self.output_spec, _ = _check_net_shapes(self.model_path, self._classifier)

    def classify(self, images_bgra_u8: list[np.ndarray], top_k: int = 5) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (ids (N, k) int32, probabilities (N, k) float32) per BGRA uint8 image; -1/NaN pad short lists."""
        ids = np.full((len(images_bgra_u8), top_k), -1, dtype=np.int32)
        scores = np.full((len(images_bgra_u8), top_k), np.nan, dtype=np.float32)
        for row, image in enumerate(images_bgra_u8):
            if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 4:
                raise EvaluatorError(f"{self.model_path}: ailia.Classifier takes HxWx4 BGRA uint8 images, "
                                     f"got {image.dtype.name} {image.shape}")
            self._classifier.compute(np.ascontiguousarray(image), top_k)
            for rank in range(min(self._classifier.get_class_count(), top_k)):
                result = self._classifier.get_class(rank)
                ids[row, rank], scores[row, rank] = result.category, result.prob
        return ids, scores

    def close(self) -> None:
        """Drop the classifier."""
        self._classifier = None


def open_ailia_classifier(model_path: str | Path, range_name: str, num_threads: int | None = None,
                          env_id: int | None = None) -> AiliaClassifierRuntime:
    """ailia.Classifier for a documented ONNX row; range_name is "S_INT8" (resnet50.opt) or "IMAGENET"."""
    return AiliaClassifierRuntime(model_path, range_name, num_threads=num_threads, env_id=env_id)
