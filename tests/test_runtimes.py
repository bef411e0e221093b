"""Runtime adapters: ONNX Runtime and LiteRT for real, ailia through a recording test double, the fake runtime."""

from __future__ import annotations

import datetime
import logging
import os
import subprocess
import sys
import types
from collections import namedtuple
from pathlib import Path

import numpy as np
import pytest

from evaluator.errors import EvaluatorError, ModelError, RecipeError, RuntimeUnavailable
from evaluator.runtimes import RUNTIMES, open_runtime, runtime_available, runtime_for_file
from evaluator.runtimes.base import TensorSpec, dequantize, run_in_batches
from evaluator.runtimes.fake import FakeModel, FakeRuntime

FIXTURES = Path(os.environ.get("EVALUATOR_FIXTURES",
                              Path(__file__).resolve().parents[1] / ".." / "shared" / "fixtures"))
MOBILENET_TFLITE = "mobilenet_v1_0.25_128_quant.tflite"
MOBILENET_ONNX = "mobilenetv2-12-int8.onnx"


def fixture_model(name: str) -> Path:
    path = FIXTURES / "models" / name
    if not path.is_file():
        pytest.skip(f"fixture model {path} absent: put the shared fixtures there or set EVALUATOR_FIXTURES")
    return path


# ---------------------------------------------------------------- tiny ONNX models built in the test


def make_onnx(path: Path, *, batch: str | int = "N", n_classes: int = 1000, rank: int = 4,
              two_inputs: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Y = mean over H, W of X (N, 3, 8, 8) @ W + B with small integer weights (exact in float32); returns (W, B)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weights = rng.integers(-4, 5, (3, n_classes)).astype(np.float32)
    bias = rng.integers(-4, 5, n_classes).astype(np.float32)
    x_shape = [batch, 3, 8, 8] if rank == 4 else [batch, 3]
    nodes = [helper.make_node("ReduceMean", ["X"], ["M"], axes=[2, 3], keepdims=0)] if rank == 4 else []
    nodes += [helper.make_node("MatMul", ["M" if rank == 4 else "X", "W"], ["P"]),
              helper.make_node("Add", ["P", "B"], ["Y"])]
    inputs = [helper.make_tensor_value_info("X", TensorProto.FLOAT, x_shape)]
    if two_inputs:
        inputs.append(helper.make_tensor_value_info("Z", TensorProto.FLOAT, [batch, n_classes]))
        nodes[-1] = helper.make_node("Add", ["P", "B"], ["Y0"])
        nodes.append(helper.make_node("Add", ["Y0", "Z"], ["Y"]))
    graph = helper.make_graph(nodes, "tiny", inputs,
                              [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [batch, n_classes])],
                              initializer=[numpy_helper.from_array(weights, "W"), numpy_helper.from_array(bias, "B")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return weights, bias


def integer_images(n: int, shape=(3, 8, 8), seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 11, (n,) + shape).astype(np.float32)


# ---------------------------------------------------------------- registry


def test_import_evaluator_runtimes_loads_no_runtime_library():
    code = ("import sys, evaluator.runtimes; "
            "print(sorted(m for m in ('onnxruntime', 'ai_edge_litert', 'ailia', 'ailia_tflite', 'tensorflow') "
            "if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_unknown_runtime_names_the_choices(tmp_path):
    with pytest.raises(EvaluatorError, match=r"unknown runtime 'onnxruntim'; did you mean onnxruntime\?") as info:
        open_runtime("onnxruntim", tmp_path / "m.onnx")
    assert "litert" in str(info.value)
    assert runtime_available("onnxruntim").startswith("unknown runtime 'onnxruntim'")


@pytest.mark.parametrize(("file_name", "runtime"), [("m.onnx", "onnxruntime"), ("M.TFLITE", "litert"),
                                                    ("m.fake.json", "fake")])
def test_runtime_for_file(file_name, runtime):
    assert runtime_for_file(file_name) == runtime


def test_runtime_for_unknown_file_type():
    with pytest.raises(ModelError, match=r"model\.pt: unknown model file type '\.pt'"):
        runtime_for_file("model.pt")


def test_runtime_available_for_installed_and_fake():
    assert set(RUNTIMES) == {"onnxruntime", "litert", "ailia", "ailia-net", "fake"}
    assert runtime_available("fake") is None
    assert runtime_available("onnxruntime") is None


def test_runtime_available_never_raises(monkeypatch):
    import evaluator.runtimes.fake as fake

    def broken():
        raise OSError("libfoo.so: cannot open shared object file\nsecond line")

    monkeypatch.setattr(fake, "unavailable_reason", broken)
    assert runtime_available("fake") == "fake: OSError: libfoo.so: cannot open shared object file"


def test_missing_onnxruntime_is_runtime_unavailable(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(RuntimeUnavailable, match="pip install onnxruntime") as info:
        open_runtime("onnxruntime", tmp_path / "m.onnx")
    assert "\n" not in str(info.value)
    assert "pip install onnxruntime" in runtime_available("onnxruntime")


# ---------------------------------------------------------------- base helpers


def test_dequantize_follows_the_tflite_scripts():
    spec = TensorSpec("y", (1, 3), np.dtype(np.uint8), scale=0.5, zero_point=128)
    scores = dequantize(np.array([[0, 128, 255]], np.uint8), spec)
    assert scores.dtype == np.float32
    np.testing.assert_array_equal(scores, [[-64.0, 0.0, 63.5]])
    signed = TensorSpec("y", (1, 2), np.dtype(np.int8), scale=0.25, zero_point=-128)
    np.testing.assert_array_equal(dequantize(np.array([[-128, 127]], np.int8), signed), [[0.0, 63.75]])
    unquantized = TensorSpec("y", (1, 2), np.dtype(np.float16))
    assert dequantize(np.array([[1.5, 2.0]], np.float16), unquantized).dtype == np.float32


def test_run_in_batches_pads_a_fixed_batch_and_drops_the_padding():
    seen = []

    def double(part):
        seen.append(len(part))
        return part * 2

    out = run_in_batches(np.arange(5.0)[:, None], 2, double)
    np.testing.assert_array_equal(out[:, 0], [0, 2, 4, 6, 8])
    assert seen == [2, 2, 2]


# ---------------------------------------------------------------- ONNX Runtime


def test_onnxruntime_dynamic_batch_matches_numpy(tmp_path):
    path = tmp_path / "tiny.onnx"
    weights, bias = make_onnx(path)
    runtime = open_runtime("onnxruntime", path, num_threads=1)
    assert runtime.version.startswith("onnxruntime ")
    assert runtime.max_batch is None
    assert runtime.input_spec == TensorSpec("X", (None, 3, 8, 8), np.dtype(np.float32))
    assert runtime.output_spec.shape == (None, 1000)
    images = integer_images(5)
    scores = runtime.run(images)
    assert scores.dtype == np.float32
    np.testing.assert_array_equal(scores, images.mean(axis=(2, 3)) @ weights + bias)
    assert runtime.run(images[:0]).shape == (0, 1000)


@pytest.mark.parametrize("fixed_batch", [1, 2])
def test_onnxruntime_fixed_batch_runs_in_slices(tmp_path, fixed_batch):
    path = tmp_path / "fixed.onnx"
    weights, bias = make_onnx(path, batch=fixed_batch, n_classes=1001)
    runtime = open_runtime("onnxruntime", path)
    assert runtime.max_batch == fixed_batch
    images = integer_images(3)
    np.testing.assert_array_equal(runtime.run(images), images.mean(axis=(2, 3)) @ weights + bias)


def test_onnxruntime_rejects_wrong_class_count(tmp_path):
    path = tmp_path / "ten.onnx"
    make_onnx(path, n_classes=10)
    with pytest.raises(ModelError, match=r"ten\.onnx: output has 10 classes, expected 1000 or 1001"):
        open_runtime("onnxruntime", path)


def test_onnxruntime_rejects_rank_2_input(tmp_path):
    path = tmp_path / "flat.onnx"
    make_onnx(path, rank=2)
    with pytest.raises(ModelError, match=r"flat\.onnx: input 'X' has rank 2"):
        open_runtime("onnxruntime", path)


def test_onnxruntime_rejects_two_inputs(tmp_path):
    path = tmp_path / "two.onnx"
    make_onnx(path, two_inputs=True)
    with pytest.raises(ModelError, match=r"two\.onnx: model has 2 inputs \(X, Z\), expected exactly one"):
        open_runtime("onnxruntime", path)


@pytest.mark.parametrize("damage", ["truncated", "text", "empty"])
def test_onnxruntime_damaged_file_names_the_file(tmp_path, damage):
    good = tmp_path / "good.onnx"
    make_onnx(good)
    bad = tmp_path / f"{damage}.onnx"
    data = {"truncated": good.read_bytes()[: good.stat().st_size // 2], "text": b"name,value\nnot,a model\n",
            "empty": b""}[damage]
    bad.write_bytes(data)
    with pytest.raises(ModelError, match=rf"{damage}\.onnx: ") as info:
        open_runtime("onnxruntime", bad)
    assert "\n" not in str(info.value)


def test_missing_model_file(tmp_path):
    with pytest.raises(ModelError, match=r"absent\.onnx: model file not found"):
        open_runtime("onnxruntime", tmp_path / "absent.onnx")


def test_run_refuses_a_batch_that_does_not_fit(tmp_path):
    path = tmp_path / "tiny.onnx"
    make_onnx(path)
    runtime = open_runtime("onnxruntime", path)
    with pytest.raises(ModelError, match=r"input batch is float64 \(2, 3, 8, 8\), the model expects float32"):
        runtime.run(np.zeros((2, 3, 8, 8)))
    with pytest.raises(ModelError, match=r"input batch is float32 \(2, 8, 8, 3\)"):
        runtime.run(np.zeros((2, 8, 8, 3), np.float32))


@pytest.mark.parametrize("num_threads", [0, -1, 1.5, True])
def test_num_threads_must_be_positive_int(tmp_path, num_threads):
    path = tmp_path / "tiny.onnx"
    make_onnx(path)
    with pytest.raises(EvaluatorError, match="num_threads must be a positive integer"):
        open_runtime("onnxruntime", path, num_threads=num_threads)


def test_onnxruntime_real_int8_fixture():
    runtime = open_runtime("onnxruntime", fixture_model(MOBILENET_ONNX), num_threads=2)
    assert runtime.max_batch is None
    assert runtime.input_spec.shape == (None, 3, 224, 224)
    assert runtime.output_spec.shape == (None, 1000)
    scores = runtime.run(np.random.default_rng(0).normal(size=(2, 3, 224, 224)).astype(np.float32))
    assert scores.shape == (2, 1000)
    assert np.isfinite(scores).all()


# ---------------------------------------------------------------- LiteRT


def test_litert_quantized_fixture():
    path = fixture_model(MOBILENET_TFLITE)
    runtime = open_runtime("litert", path, num_threads=2)
    assert runtime.version.startswith("ai-edge-litert ")
    assert runtime.max_batch == 1
    spec = runtime.input_spec
    assert (spec.shape, spec.dtype, spec.scale, spec.zero_point) == ((1, 128, 128, 3), np.uint8, 1 / 128, 128)
    assert runtime.output_spec.shape == (1, 1001)
    images = np.random.default_rng(0).integers(0, 256, (3, 128, 128, 3), dtype=np.uint8)
    scores = runtime.run(images)
    assert scores.shape == (3, 1001)
    assert scores.dtype == np.float32
    assert scores.min() >= 0.0 and scores.max() <= 1.0
    # dequantized by hand from the raw uint8 output of one image: (q - zero_point) * scale
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], images[2:3])
    interpreter.invoke()
    out = interpreter.get_output_details()[0]
    raw = interpreter.get_tensor(out["index"])[0]
    scale, zero_point = out["quantization"]
    np.testing.assert_array_equal(scores[2], (raw.astype(np.int32) - zero_point).astype(np.float32) * np.float32(scale))
    assert not np.array_equal(scores[0], scores[2])


@pytest.mark.parametrize("damage", ["truncated", "text"])
def test_litert_damaged_file_names_the_file(tmp_path, damage):
    source = fixture_model(MOBILENET_TFLITE).read_bytes()
    bad = tmp_path / f"{damage}.tflite"
    bad.write_bytes(source[: len(source) // 2] if damage == "truncated" else b"hello, I am not a model\n")
    with pytest.raises(ModelError, match=rf"{damage}\.tflite: not a valid TFLite model"):
        open_runtime("litert", bad)


def test_litert_falls_back_to_tensorflow_lite(monkeypatch):
    from ai_edge_litert.interpreter import Interpreter

    tensorflow = types.ModuleType("tensorflow")
    tensorflow.__version__ = "2.7.0"
    tensorflow.lite = types.SimpleNamespace(Interpreter=Interpreter)
    monkeypatch.setitem(sys.modules, "ai_edge_litert", None)
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)
    monkeypatch.setitem(sys.modules, "tensorflow", tensorflow)
    runtime = open_runtime("litert", fixture_model(MOBILENET_TFLITE))
    assert runtime.version == "tensorflow 2.7.0"
    assert runtime.output_spec.shape == (1, 1001)


def test_litert_without_any_interpreter(monkeypatch, tmp_path):
    for name in ("ai_edge_litert", "ai_edge_litert.interpreter", "tensorflow"):
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(RuntimeUnavailable, match="pip install ai-edge-litert"):
        open_runtime("litert", tmp_path / "m.tflite")
    assert "pip install ai-edge-litert" in runtime_available("litert")


# ---------------------------------------------------------------- fake runtime


def test_fake_nearest_mean_ranks_neighbours(tmp_path):
    path = FakeModel().save(tmp_path / "m.fake.json")
    runtime = open_runtime(runtime_for_file(path), path)
    scores = runtime.run(np.full((2, 8, 8, 3), 7.2, np.float32))
    np.testing.assert_array_equal(np.argsort(-scores, axis=1)[:, :5], [[7, 8, 6, 9, 5]] * 2)
    assert runtime.max_batch is None
    assert runtime.calls == 1


def test_fake_linear_rule_and_fixed_batch(tmp_path):
    weights = np.zeros((1001, 3))
    weights[5] = [1, 2, 3]
    model = FakeModel(input_shape=(1, 3, 4, 4), layout="NCHW", n_classes=1001, rule="linear",
                      weights=weights.tolist(), bias=[0.5] * 1001)
    runtime = FakeRuntime(model.save(tmp_path / "lin.fake.json"))
    images = np.stack([np.full((3, 4, 4), value, np.float32) for value in (1.0, 2.0, 3.0)])
    scores = runtime.run(images)
    np.testing.assert_array_equal(scores[:, 5], [6.5, 12.5, 18.5])
    np.testing.assert_array_equal(scores[:, 4], [0.5, 0.5, 0.5])
    assert runtime.calls == 3  # fixed batch of one: looped


def test_fake_quantized_output_is_dequantized(tmp_path):
    model = FakeModel(input_dtype="uint8", input_scale=1 / 128, input_zero_point=128, output_dtype="uint8",
                      output_scale=0.3, output_zero_point=200)
    runtime = FakeRuntime(model.save(tmp_path / "q.fake.json"))
    scores = runtime.run(np.full((1, 8, 8, 3), 3, np.uint8))
    # -(c - 3)^2 quantized with round(s / 0.3) + 200, clipped to 0..255, then (q - 200) * 0.3
    quantized = np.clip(np.round(-((np.arange(1000) - 3.0) ** 2) / 0.3) + 200, 0, 255)
    np.testing.assert_array_equal(scores[0], (quantized - 200).astype(np.float32) * np.float32(0.3))
    assert len(np.unique(scores[0])) > 5


def test_fake_planned_failure(tmp_path):
    runtime = FakeRuntime(FakeModel(input_shape=(1, 8, 8, 3), fail_after_calls=2).save(tmp_path / "f.fake.json"))
    with pytest.raises(RuntimeError, match="planned failure after 2 calls"):
        runtime.run(np.zeros((3, 8, 8, 3), np.float32))


@pytest.mark.parametrize(("model", "message"), [
    (FakeModel(n_classes=10), "output has 10 classes, expected 1000 or 1001"),
    (FakeModel(input_shape=(None, 8, 8)), "input 'input' has rank 3"),
    (FakeModel(rule="linear"), "linear rule needs weights"),
    (FakeModel(hold_file="hold"), "hold_file needs calls_file"),
])
def test_fake_model_checks(tmp_path, model, message):
    with pytest.raises(ModelError, match=message):
        FakeRuntime(model.save(tmp_path / "bad.fake.json"))


def test_fake_model_file_not_json(tmp_path):
    path = tmp_path / "x.fake.json"
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(ModelError, match=r"x\.fake\.json: not a fake model"):
        FakeRuntime(path)
    path.write_text('{"format": "evaluator-fake-model/1", "n_clases": 1000}', encoding="utf-8")
    with pytest.raises(ModelError, match="unknown fake model key.*n_clases"):
        FakeRuntime(path)


# ---------------------------------------------------------------- ailia: recording test double

ClassifierClass = namedtuple("ClassifierClass", ["category", "prob"])


def build_fake_ailia(calls: list, *, version="1.6.1.45-rtest", n_classes=1000, refuse_batches=False,
                     net_error: Exception | None = None, net_log: str | None = None) -> types.ModuleType:
    """A stand-in for the `ailia` package that records every call; predict = mean over H, W @ WEIGHTS."""
    ailia = types.ModuleType("ailia")
    ailia.__file__ = "/nonexistent/ailia/__init__.py"
    ailia.ENVIRONMENT_AUTO = -1
    ailia.NETWORK_IMAGE_FORMAT_BGR, ailia.NETWORK_IMAGE_FORMAT_RGB = 0, 1
    ailia.NETWORK_IMAGE_CHANNEL_FIRST, ailia.NETWORK_IMAGE_CHANNEL_LAST = 0, 1
    for value, name in enumerate(("U_INT8", "S_INT8", "U_FP32", "S_FP32", "IMAGENET")):
        setattr(ailia, "NETWORK_IMAGE_RANGE_" + name, value)
    weights = np.arange(3 * n_classes, dtype=np.float32).reshape(3, n_classes) % 7

    def get_version():
        calls.append(("get_version",))
        return version

    def get_gpu_environment_id():
        calls.append(("get_gpu_environment_id",))
        return -1

    class Net:
        def __init__(self, stream=None, weight=None, env_id=-1, num_thread=0, memory_mode=None):
            calls.append(("Net", {"stream": stream, "weight": weight, "env_id": env_id, "num_thread": num_thread}))
            self._init(weight)

        def _init(self, weight):
            print("ailia SDK noise on stdout")
            if net_log is not None:
                logging.getLogger("ailia.license").warning(net_log)
            if net_error is not None:
                raise net_error
            assert Path(weight).is_file()
            self.shape = (1, 3, 8, 8)

        def get_input_blob_list(self):
            return [0]

        def get_blob_name(self, index):
            return "data"

        def get_input_shape(self):
            return self.shape

        def get_output_shape(self):
            return (self.shape[0], n_classes)

        def set_input_shape(self, shape):
            calls.append(("set_input_shape", tuple(shape)))
            if refuse_batches and shape[0] != 1:
                raise RuntimeError("AiliaInvalidLayerException: Reshape cannot change batch")
            self.shape = tuple(shape)

        def predict(self, batch):
            calls.append(("predict", batch.dtype, batch.shape))
            assert batch.shape == self.shape
            return batch.mean(axis=(2, 3)) @ weights

    class Classifier(Net):
        def __init__(self, stream_path, weight_path, env_id=-1, num_thread=0, format=0, channel=0, range=3):
            calls.append(("Classifier", (stream_path, weight_path),
                          {"env_id": env_id, "num_thread": num_thread, "format": format, "channel": channel,
                           "range": range}))
            self._init(weight_path)

        def compute(self, image, max_class_count=1):
            calls.append(("compute", image.dtype, image.shape, image.flags["C_CONTIGUOUS"], max_class_count))
            self._first = int(image[0, 0, 0])
            self._count = max_class_count

        def get_class_count(self):
            calls.append(("get_class_count",))
            return self._count

        def get_class(self, index):
            calls.append(("get_class", index))
            return ClassifierClass(category=self._first + index, prob=1.0 / (index + 2))

    ailia.get_version, ailia.get_gpu_environment_id = get_version, get_gpu_environment_id
    ailia.Net, ailia.Classifier, ailia.WEIGHTS = Net, Classifier, weights
    return ailia


TFLITE_INPUT = {"index": 3, "name": "input", "shape": np.array([1, 8, 8, 3]), "dtype": np.int8,
                "shape_signature": np.array([1, 8, 8, 3]),
                "quantization_parameters": {"scales": np.array([0.5], np.float32),
                                            "zero_points": np.array([-3], np.int32), "quantized_dimension": 0}}
TFLITE_OUTPUT = {"index": 7, "name": "scores", "shape": np.array([1, 1000]), "dtype": np.uint8,
                 "shape_signature": np.array([1, 1000]),
                 "quantization_parameters": {"scales": np.array([1 / 256], np.float32),
                                             "zero_points": np.array([10], np.int32), "quantized_dimension": 0}}


def tflite_raw_output(image: np.ndarray) -> np.ndarray:
    """What the double's interpreter returns for one int8 image: (c + sum) % 256 as uint8, shape (1, 1000)."""
    return ((np.arange(1000) + int(image.astype(np.int64).sum())) % 256).astype(np.uint8)[None, :]


def build_fake_ailia_tflite(calls: list, *, version="1.2.4.0-perpetual_license") -> types.ModuleType:
    """A stand-in for `ailia_tflite` recording every Interpreter call."""
    module = types.ModuleType("ailia_tflite")
    module.__file__ = "/nonexistent/ailia_tflite/__init__.py"

    class Library:
        def GetVersion(self):
            return version

    class Interpreter:
        def __init__(self, model_path=None, **options):
            calls.append(("Interpreter", {"model_path": model_path, **options}))
            open(model_path, "rb").read()  # noqa: SIM115 - the real Interpreter leaves its file open too
            self._tensors = {}

        def allocate_tensors(self):
            calls.append(("allocate_tensors",))

        def get_input_details(self):
            return [TFLITE_INPUT]

        def get_output_details(self):
            return [TFLITE_OUTPUT]

        def set_tensor(self, index, value):
            calls.append(("set_tensor", index, value.dtype, value.shape))
            self._tensors[index] = value.copy()

        def invoke(self):
            calls.append(("invoke",))
            self._tensors[7] = tflite_raw_output(self._tensors[3])

        def get_tensor(self, index):
            calls.append(("get_tensor", index))
            return self._tensors[index]

    module.ailia_tflite, module.Interpreter = Library, Interpreter
    return module


@pytest.fixture
def user_home(monkeypatch, tmp_path):
    """Point the passwd home (where the SDK looks for .shalo/AILIA.lic) and $HOME at tmp_path/home, as a normal user."""
    import pwd

    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setattr(pwd, "getpwuid", lambda uid: types.SimpleNamespace(pw_dir=str(home)))
    monkeypatch.setattr(os, "getuid", lambda: 1000)
    monkeypatch.delenv("SUDO_UID", raising=False)
    monkeypatch.setenv("HOME", str(home))
    return home


@pytest.fixture
def sdk_calls(monkeypatch, user_home):
    """Install the recording doubles as `ailia` and `ailia_tflite`; returns their shared call list."""
    calls = []
    monkeypatch.setitem(sys.modules, "ailia", build_fake_ailia(calls))
    monkeypatch.setitem(sys.modules, "ailia_tflite", build_fake_ailia_tflite(calls))
    return calls


def model_file(tmp_path: Path, name: str, prototxt: bool = False) -> Path:
    path = tmp_path / name
    path.write_bytes(b"model bytes (the double does not parse them)")
    if prototxt:
        path.with_name(name + ".prototxt").write_text("prototxt", encoding="utf-8")
    return path


def calls_named(calls, name):
    return [call for call in calls if call[0] == name]


def test_ailia_net_uses_the_prototxt_next_to_the_model(sdk_calls, tmp_path, capsys):
    path = model_file(tmp_path, "resnet50.opt.onnx", prototxt=True)
    runtime = open_runtime("ailia", path, num_threads=2)
    assert calls_named(sdk_calls, "Net") == [("Net", {"stream": str(path) + ".prototxt", "weight": str(path),
                                                      "env_id": -1, "num_thread": 2})]
    assert calls_named(sdk_calls, "get_gpu_environment_id")
    assert runtime.version == "ailia 1.6.1.45"
    assert runtime.max_batch is None
    assert runtime.input_spec == TensorSpec("data", (None, 3, 8, 8), np.dtype(np.float32))
    assert runtime.output_spec.shape == (None, 1000)
    assert capsys.readouterr().out == ""  # the SDK's prints are captured


def test_ailia_net_without_prototxt_passes_none(sdk_calls, tmp_path):
    path = model_file(tmp_path, "plain.onnx")
    open_runtime("ailia", path)
    assert calls_named(sdk_calls, "Net") == [("Net", {"stream": None, "weight": str(path), "env_id": -1,
                                                      "num_thread": 0})]


def test_ailia_net_sets_the_input_shape_when_the_batch_changes(sdk_calls, tmp_path):
    runtime = open_runtime("ailia", model_file(tmp_path, "m.onnx"))
    weights = sys.modules["ailia"].WEIGHTS
    images = integer_images(4)
    np.testing.assert_array_equal(runtime.run(images), images.mean(axis=(2, 3)) @ weights)
    runtime.run(images)
    runtime.run(images[:2])
    assert calls_named(sdk_calls, "set_input_shape") == [("set_input_shape", (4, 3, 8, 8)),
                                                         ("set_input_shape", (2, 3, 8, 8))]
    assert calls_named(sdk_calls, "predict") == [("predict", np.float32, (4, 3, 8, 8))] * 2 + [
        ("predict", np.float32, (2, 3, 8, 8))]


def test_ailia_net_falls_back_to_its_own_batch(monkeypatch, user_home, tmp_path):
    calls = []
    monkeypatch.setitem(sys.modules, "ailia", build_fake_ailia(calls, refuse_batches=True))
    runtime = open_runtime("ailia", model_file(tmp_path, "m.onnx"))
    images = integer_images(3)
    np.testing.assert_array_equal(runtime.run(images), images.mean(axis=(2, 3)) @ sys.modules["ailia"].WEIGHTS)
    assert runtime.max_batch == 1
    assert calls_named(calls, "predict") == [("predict", np.float32, (1, 3, 8, 8))] * 3


def test_ailia_net_rejects_wrong_class_count(monkeypatch, user_home, tmp_path):
    monkeypatch.setitem(sys.modules, "ailia", build_fake_ailia([], n_classes=10))
    with pytest.raises(ModelError, match=r"m\.onnx: output has 10 classes"):
        open_runtime("ailia", model_file(tmp_path, "m.onnx"))


def test_ailia_constructor_errors_are_rephrased(monkeypatch, user_home, tmp_path, capsys):
    path = model_file(tmp_path, "broken.onnx")
    monkeypatch.setitem(sys.modules, "ailia", build_fake_ailia([], net_error=ValueError("broken data\nstack")))
    with pytest.raises(ModelError, match=r"broken\.onnx: ailia cannot open this ONNX model .*: broken data$"):
        open_runtime("ailia", path)
    assert capsys.readouterr().out == ""


class AiliaLicenseNotFoundException(Exception):
    """Same name as the SDK's exception for status -20."""


def offline_type_error() -> TypeError:
    """What ailia 1.6.1 raises offline: a TypeError while handling the failed licence download."""
    try:
        try:
            raise RuntimeError("License file download failed. details: offline")
        except RuntimeError:
            raise TypeError("'<' not supported between instances of 'datetime.datetime' and 'NoneType'")  # noqa: B904
    except TypeError as error:
        return error


@pytest.mark.parametrize(("error", "log", "said"), [
    (TypeError("'<' not supported"), "License file /x/.shalo/AILIA.lic is not found.", "License file /x/.shalo"),
    (AiliaLicenseNotFoundException("code: -20 (no valid license found)"), None, "code: -20"),
    (offline_type_error(), None, "'<' not supported"),
])
def test_ailia_licence_failure_inside_the_sdk_is_runtime_unavailable(monkeypatch, user_home, tmp_path, capsys,
                                                                     error, log, said):
    monkeypatch.setitem(sys.modules, "ailia", build_fake_ailia([], net_error=error, net_log=log))
    with pytest.raises(RuntimeUnavailable, match=rf"ailia licence problem \({said}.*~/\.shalo/AILIA\.lic"):
        open_runtime("ailia", model_file(tmp_path, "m.onnx"))
    captured = capsys.readouterr()
    assert "is not found" not in captured.out + captured.err


def test_ailia_tflite_calls_like_the_scripts(sdk_calls, tmp_path):
    path = model_file(tmp_path, "resnet50_quant_recalib.tflite")
    runtime = open_runtime("ailia", path, num_threads=2)
    assert sdk_calls[0] == ("Interpreter", {"model_path": str(path)})
    assert sdk_calls[1] == ("allocate_tensors",)
    assert runtime.version == "ailia_tflite 1.2.4.0"
    assert runtime.max_batch == 1
    spec = runtime.input_spec
    assert (spec.shape, spec.dtype, spec.scale, spec.zero_point) == ((1, 8, 8, 3), np.int8, 0.5, -3)
    images = np.random.default_rng(2).integers(-128, 128, (3, 8, 8, 3)).astype(np.int8)
    del sdk_calls[:]
    scores = runtime.run(images)
    assert sdk_calls == [("set_tensor", 3, np.int8, (1, 8, 8, 3)), ("invoke",), ("get_tensor", 7)] * 3
    expected = [(tflite_raw_output(image).astype(np.int32) - 10).astype(np.float32) * np.float32(1 / 256)
                for image in images]
    assert scores.dtype == np.float32
    np.testing.assert_array_equal(scores, np.concatenate(expected))


def test_ailia_tflite_passes_non_default_options_only(sdk_calls, tmp_path):
    from evaluator.runtimes.ailia import AiliaTFLite

    path = model_file(tmp_path, "m.tflite")
    AiliaTFLite(path, env_id=1, flags=0, memory_mode=1)
    assert calls_named(sdk_calls, "Interpreter") == [("Interpreter", {"model_path": str(path), "env_id": 1,
                                                                      "memory_mode": 1})]


@pytest.mark.parametrize(("range_name", "range_value"), [("S_INT8", 1), ("IMAGENET", 4)])
def test_ailia_classifier_constructor_and_compute(sdk_calls, tmp_path, range_name, range_value):
    from evaluator.runtimes.ailia import open_ailia_classifier

    path = model_file(tmp_path, "resnet50_pytorch.onnx", prototxt=True)
    classifier = open_ailia_classifier(path, range_name, num_threads=3)
    assert calls_named(sdk_calls, "Classifier") == [
        ("Classifier", (str(path) + ".prototxt", str(path)),
         {"env_id": -1, "num_thread": 3, "format": 1, "channel": 0, "range": range_value})]
    images = [np.full((224, 224, 4), value, np.uint8) for value in (10, 20)]
    images[1] = np.asfortranarray(images[1])
    ids, scores = classifier.classify(images, top_k=5)
    np.testing.assert_array_equal(ids, [[10, 11, 12, 13, 14], [20, 21, 22, 23, 24]])
    np.testing.assert_array_equal(scores[0], np.float32([1 / 2, 1 / 3, 1 / 4, 1 / 5, 1 / 6]))
    assert calls_named(sdk_calls, "compute") == [("compute", np.uint8, (224, 224, 4), True, 5)] * 2
    assert calls_named(sdk_calls, "get_class") == [("get_class", rank) for rank in range(5)] * 2


def test_ailia_classifier_checks_range_and_images(sdk_calls, tmp_path):
    from evaluator.runtimes.ailia import open_ailia_classifier

    path = model_file(tmp_path, "m.onnx")
    with pytest.raises(RecipeError, match="did you mean S_INT8"):
        open_ailia_classifier(path, "S_INT9")
    classifier = open_ailia_classifier(path, "S_INT8")
    with pytest.raises(EvaluatorError, match=r"HxWx4 BGRA uint8 images, got uint8 \(8, 8, 3\)"):
        classifier.classify([np.zeros((8, 8, 3), np.uint8)])


def test_ailia_unknown_extension(sdk_calls, tmp_path):
    with pytest.raises(ModelError, match=r"opens \.onnx or \.tflite files"):
        open_runtime("ailia", model_file(tmp_path, "m.pb"))


def test_ailia_not_installed(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "ailia", None)
    with pytest.raises(RuntimeUnavailable, match=r"pip install 'imagenet-evaluator\[ailia\]'"):
        open_runtime("ailia", tmp_path / "m.onnx")
    assert "imagenet-evaluator[ailia]" in runtime_available("ailia")


# ---------------------------------------------------------------- ailia licence


def write_licence(path: Path, expiry: datetime.date, header: str = "--- shalo license file ---\n") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{header}axell:ailia\n{expiry:%Y/%m/%d}\ntrial version\n", encoding="utf-8")


@pytest.fixture
def trial_sdk_calls(monkeypatch, user_home):
    """Doubles whose versions say the build needs a licence file."""
    calls = []
    monkeypatch.setitem(sys.modules, "ailia", build_fake_ailia(calls, version="1.6.1.45-rtest-time_license"))
    monkeypatch.setitem(sys.modules, "ailia_tflite", build_fake_ailia_tflite(calls, version="1.2.4.0-time_license"))
    return calls


@pytest.mark.parametrize("model_name", ["m.onnx", "m.tflite"])
def test_missing_licence_is_runtime_unavailable(trial_sdk_calls, tmp_path, model_name):
    with pytest.raises(RuntimeUnavailable, match="ailia licence not found") as info:
        open_runtime("ailia", model_file(tmp_path, model_name))
    assert "~/.shalo/AILIA.lic" in str(info.value)
    assert "\n" not in str(info.value)
    assert not calls_named(trial_sdk_calls, "Net") and not calls_named(trial_sdk_calls, "Interpreter")
    assert "ailia licence not found" in runtime_available("ailia")


def test_valid_licence_lets_the_sdk_open(trial_sdk_calls, user_home, tmp_path):
    write_licence(user_home / ".shalo" / "AILIA.lic", datetime.date.today() + datetime.timedelta(days=30))
    assert runtime_available("ailia") is None
    open_runtime("ailia", model_file(tmp_path, "m.onnx"))
    assert calls_named(trial_sdk_calls, "Net")


@pytest.mark.parametrize(("expiry", "header", "message"), [
    (datetime.date(2020, 1, 31), "--- shalo license file ---\n", "expired on 2020/01/31"),
    (datetime.date(2099, 1, 1), "not a licence\n", "has an invalid format"),
])
def test_unusable_licence_file(trial_sdk_calls, user_home, tmp_path, expiry, header, message):
    write_licence(user_home / ".shalo" / "AILIA.lic", expiry, header)
    with pytest.raises(RuntimeUnavailable, match=message):
        open_runtime("ailia", model_file(tmp_path, "m.onnx"))


def test_root_also_needs_the_system_licence(trial_sdk_calls, user_home, monkeypatch, tmp_path):
    if Path("/usr/local/etc/shalo/AILIA.lic").exists():
        pytest.skip("/usr/local/etc/shalo/AILIA.lic exists on this machine")
    write_licence(user_home / ".shalo" / "AILIA.lic", datetime.date(2099, 1, 1))
    monkeypatch.setattr(os, "getuid", lambda: 0)
    with pytest.raises(RuntimeUnavailable, match="put AILIA.lic at /usr/local/etc/shalo/AILIA.lic"):
        open_runtime("ailia", model_file(tmp_path, "m.onnx"))


# ---------------------------------------------------------------- the real ailia package, no licence, no network


@pytest.fixture
def real_ailia(monkeypatch, user_home):
    """The installed ailia package with its licence download replaced by an offline failure."""
    ailia = pytest.importorskip("ailia", reason="ailia is not installed")
    if "time_license" not in ailia.get_version():
        pytest.skip(f"ailia {ailia.get_version()} needs no licence file")

    def offline(lic_path):
        raise ailia.core.AiliaException("License file download failed. details: offline (test)")

    monkeypatch.setattr(ailia.license, "_download_license", offline)
    return ailia


def test_real_ailia_without_licence_is_runtime_unavailable(real_ailia, tmp_path):
    path = tmp_path / "tiny.onnx"
    make_onnx(path)
    with pytest.raises(RuntimeUnavailable, match=r"ailia licence not found: put AILIA.lic at ~/\.shalo/AILIA\.lic"):
        open_runtime("ailia", path)


def test_real_ailia_constructor_licence_error_is_converted(real_ailia, monkeypatch, tmp_path, capsys):
    import evaluator.runtimes.ailia as adapter

    path = tmp_path / "tiny.onnx"
    make_onnx(path)
    with pytest.raises(Exception) as raw:  # the SDK's own failure offline (a TypeError in 1.6.1)
        real_ailia.Net(None, str(path))
    assert not isinstance(raw.value, RuntimeUnavailable)
    capsys.readouterr()
    monkeypatch.setattr(adapter, "_licence_problem", lambda *args: None)  # let the SDK run its own check
    with pytest.raises(RuntimeUnavailable, match=r"ailia licence problem \(License file .*AILIA.lic is not found"):
        open_runtime("ailia", path)
    captured = capsys.readouterr()
    assert "is not found" not in captured.out + captured.err


# ---------------------------------------------------------------- ailia: which ONNX path a case takes


def _recorded_images(monkeypatch) -> list:
    """Copies of the images the double's Classifier.compute receives."""
    seen = []
    classifier = sys.modules["ailia"].Classifier
    original = classifier.compute
    monkeypatch.setattr(classifier, "compute", lambda self, image, n=1: (seen.append(image.copy()),
                                                                          original(self, image, n))[1])
    return seen


@pytest.mark.parametrize("tta", ["none", "1-crop", "keep-aspect"])
@pytest.mark.parametrize("recipe_name, range_value", [("resnet50_pytorch", 4), ("resnet50_chainer", 1)])
def test_ailia_onnx_cases_go_through_the_classifier_as_the_script_feeds_it(sdk_calls, tmp_path, monkeypatch, tta,
                                                                          recipe_name, range_value):
    import oracle
    from imagenet_factory import make_imagenet

    from evaluator.dataset import load_dataset
    from evaluator.pipeline import predict
    from evaluator.recipes import get_recipe
    from evaluator.run_spec import RunSpec

    make_imagenet(tmp_path / "imagenet", n_images=3)
    dataset = load_dataset(tmp_path / "imagenet")
    seen = _recorded_images(monkeypatch)
    model = model_file(tmp_path, "resnet50.onnx", prototxt=True)
    run = predict(dataset, RunSpec(model, get_recipe(recipe_name), tta, "ailia", workers=1), tmp_path / "artifacts")

    assert [call[2]["range"] for call in calls_named(sdk_calls, "Classifier")] == [range_value]
    assert calls_named(sdk_calls, "predict") == []  # ailia.Net is not used
    # per image, exactly the BGRA uint8 image resnet50.py hands compute(): IMREAD_UNCHANGED, BGRA, its own TTA
    assert len(seen) == 3
    for image, path in zip(seen, dataset.image_files()):
        expected = oracle.ailia_imread(path)
        expected = oracle.cv2.cvtColor(expected, oracle.cv2.COLOR_BGR2BGRA)
        if tta != "none":
            expected = oracle.crop_tta(expected, 256 if tta == "1-crop" else 224, 224)
        np.testing.assert_array_equal(image, expected)
    # the Classifier's own ranking is the result (the double ranks from the image's first value)
    np.testing.assert_array_equal(run.predictions.top5_ids, [[int(i[0, 0, 0]) + r for r in range(5)] for i in seen])


def test_ailia_net_is_an_explicit_runtime_judged_as_another_runtime(sdk_calls, tmp_path):
    from dataclasses import replace

    from imagenet_factory import make_imagenet

    from evaluator.baselines import DEFAULT_BASELINES, Case, load_baselines
    from evaluator.dataset import load_dataset
    from evaluator.pipeline import predict
    from evaluator.recipes import get_recipe
    from evaluator.run_spec import RunSpec
    from evaluator.verdict import tolerance_for

    make_imagenet(tmp_path / "imagenet", n_images=2)
    model = model_file(tmp_path, "resnet50.onnx", prototxt=True)
    predict(load_dataset(tmp_path / "imagenet"), RunSpec(model, get_recipe("resnet50_pytorch"), "1-crop", "ailia-net",
                                                         workers=1), tmp_path / "artifacts")
    assert calls_named(sdk_calls, "Classifier") == [] and len(calls_named(sdk_calls, "Net")) == 1
    assert calls_named(sdk_calls, "predict")[0][1:] == (np.float32, (2, 3, 8, 8))

    baselines = load_baselines(DEFAULT_BASELINES)
    documented = Case("resnet50_pytorch", "float", "1-crop", "ailia", "documented")
    _, same_tolerance, _, same_basis = tolerance_for(baselines, documented)
    _, other_tolerance, _, other_basis = tolerance_for(baselines, replace(documented, runtime="ailia-net"))
    assert same_tolerance < other_tolerance
    assert "another runtime" in other_basis and "another runtime" not in same_basis
    with pytest.raises(ModelError, match="ailia-net runtime opens .onnx files"):
        open_runtime("ailia-net", model_file(tmp_path, "m.tflite"))
