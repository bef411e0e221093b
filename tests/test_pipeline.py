"""The predict pipeline's speed machinery never changes a prediction: worker threads, chunking and the decode cache."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from imagenet_factory import make_imagenet

import evaluator.pipeline as pipeline
import evaluator.predict_chunk as predict_chunk
from evaluator import model_runtime, ranking
from evaluator.dataset import load_dataset
from evaluator.decode import decode_image
from evaluator.decode_cache import USED_MARKER
from evaluator.model_runtime import RuntimePool
from evaluator.pipeline import predict
from evaluator.prediction_store import PredictionStore
from evaluator.preprocess import geometry, geometry_is_cacheable, normalize, preprocess
from evaluator.recipes import RECIPES, TTA_MODES, get_recipe
from evaluator.run_spec import RunSpec
from evaluator.runtimes.fake import FakeModel

N_IMAGES = 30
# 8x8 input; the class follows the mean input value, so any change in a pixel's arithmetic shows up in the top-5.
MODEL = FakeModel(input_shape=(None, 8, 8, 3), mean_scale=2000.0, mean_offset=500.0)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("imagenet")
    make_imagenet(root, n_images=N_IMAGES, n_classes=7)
    return load_dataset(root)


@pytest.fixture
def spec(tmp_path):
    return RunSpec(MODEL.save(tmp_path / "model.fake.json"), get_recipe("mobilenet_keras"), "1-crop", "fake",
                   chunk_size=4, batch_size=3)


@pytest.fixture
def decodes(monkeypatch):
    """Paths decoded by the pipeline during the test, in order."""
    seen = []
    real_decode = predict_chunk._decode

    def counting_decode(path, *args, **options):
        seen.append(str(path))
        return real_decode(path, *args, **options)

    monkeypatch.setattr(predict_chunk, "_decode", counting_decode)
    return seen


def same_predictions(a, b) -> bool:
    return (np.array_equal(a.image_ids, b.image_ids) and np.array_equal(a.top5_ids, b.top5_ids)
            and np.array_equal(a.top5_scores, b.top5_scores, equal_nan=True) and np.array_equal(a.errors, b.errors))


def test_predictions_do_not_depend_on_workers_chunks_or_batches(dataset, spec, tmp_path):
    runs = [predict(dataset, replace(spec, **knobs), tmp_path / f"artifacts-{i}").predictions
            for i, knobs in enumerate([dict(workers=1, chunk_size=N_IMAGES, batch_size=1),
                                       dict(workers=3, chunk_size=4, batch_size=3),
                                       dict(workers=2, chunk_size=7, batch_size=32, decode_cache=False)])]

    assert len(runs[0]) == N_IMAGES and len(set(runs[0].top5_ids[:, 0].tolist())) > 3  # the model discriminates
    assert all(same_predictions(runs[0], run) for run in runs[1:])


def test_a_model_with_a_larger_fixed_batch_gets_full_batches_not_padded_ones(dataset, spec, tmp_path):
    calls = tmp_path / "calls.txt"
    fixed = replace(MODEL, input_shape=(5, 8, 8, 3), calls_file=str(calls)).save(tmp_path / "fixed.fake.json")

    run = predict(dataset, replace(spec, model_path=fixed, chunk_size=10, batch_size=2), tmp_path / "artifacts")

    assert calls.read_text().split() == ["5"] * 6  # 3 chunks of 10 images in calls of 5, none padded from 2
    dynamic = predict(dataset, spec, tmp_path / "dynamic").predictions
    assert same_predictions(run.predictions, dynamic)


def test_decode_cache_serves_a_second_model_with_the_same_geometry_bit_identically(dataset, spec, tmp_path, decodes):
    artifacts = tmp_path / "artifacts"
    first = predict(dataset, spec, artifacts)
    assert len(decodes) == N_IMAGES
    files = sorted(p.name for p in (artifacts / "decode-cache").rglob("*") if p.is_file())
    entries = [name for name in files if name != USED_MARKER]
    assert len(files) == len(entries) + 1  # and the geometry's usage marker
    assert len(entries) == 16 and all(name.endswith(".npy") for name in entries)  # 8 chunks with stamps, no temp files

    other_model = replace(MODEL, mean_offset=490.0).save(tmp_path / "other.fake.json")
    second = predict(dataset, replace(spec, model_path=other_model), artifacts)
    uncached = predict(dataset, replace(spec, model_path=other_model, decode_cache=False), tmp_path / "uncached")

    assert len(decodes) == 2 * N_IMAGES  # the second model decoded nothing; the uncached run decoded everything
    assert same_predictions(second.predictions, uncached.predictions)
    assert not same_predictions(first.predictions, second.predictions)  # a different model, really run


def test_a_recipe_that_normalises_before_resizing_is_never_served_from_the_cache(dataset, spec, tmp_path, decodes):
    keras = replace(spec, recipe=get_recipe("resnet50_keras"))
    predict(dataset, keras, tmp_path / "artifacts")
    predict(dataset, keras, tmp_path / "artifacts", recompute=True)

    assert len(decodes) == 2 * N_IMAGES
    assert not (tmp_path / "artifacts" / "decode-cache").exists()


def test_damaged_cache_entries_are_recomputed(dataset, spec, tmp_path, decodes):
    artifacts = tmp_path / "artifacts"
    reference = predict(dataset, spec, artifacts).predictions
    images = sorted(p for p in (artifacts / "decode-cache").rglob("*.npy") if not p.name.endswith(".stamps.npy"))
    images[0].write_bytes(images[0].read_bytes()[:100])  # truncated
    images[1].write_bytes(b"not an array")

    again = predict(dataset, spec, artifacts, recompute=True).predictions

    assert len(decodes) == N_IMAGES + 2 * 4  # only the two damaged chunks were decoded again
    assert same_predictions(reference, again)


def test_cached_geometry_reproduces_the_full_preprocessing(dataset, spec, tmp_path):
    run = predict(dataset, spec, tmp_path / "artifacts")
    (cached,) = [p for p in (tmp_path / "artifacts" / "decode-cache").rglob("*-00000-4.npy")]
    stored = np.load(cached)
    for i, image_id in enumerate(dataset.image_ids[:4]):
        direct = preprocess(decode_image(dataset.image_path(image_id)), spec.recipe, spec.tta, size=8)
        np.testing.assert_array_equal(normalize(stored[i], spec.recipe), direct)
    assert run.computed == N_IMAGES


@pytest.mark.parametrize("checkpoint_s, n_parts", [(0, 3), (3600, 1)], ids=["every-chunk", "held-until-failure"])
def test_a_failing_chunk_keeps_the_chunks_finished_before_it(dataset, tmp_path, checkpoint_s, n_parts):
    failing = replace(MODEL, fail_after_calls=3).save(tmp_path / "failing.fake.json")  # one call per chunk
    spec = RunSpec(Path(failing), get_recipe("mobilenet_keras"), "1-crop", "fake", chunk_size=4, batch_size=4,
                   workers=1, checkpoint_s=checkpoint_s)
    with pytest.raises(RuntimeError, match="planned failure"):
        predict(dataset, spec, tmp_path / "artifacts")
    parts = list((tmp_path / "artifacts").rglob("parts/part-*.npy"))
    assert len(parts) == n_parts  # one part per chunk, or the held chunks written together on the way out
    (directory,) = {part.parent.parent for part in parts}
    assert PredictionStore(directory).done_ids() == set(dataset.image_ids[:12])  # kept for the next run


def test_chunks_are_written_at_the_checkpoint_interval_and_a_finished_run_writes_none(dataset, spec, tmp_path,
                                                                                     monkeypatch):
    clock, written = [0.0], []
    real_keep, real_checkpoint = PredictionStore.keep, PredictionStore.checkpoint

    def keep(store, chunk):  # each finished chunk takes 1 s of a fake clock
        clock[0] += 1.0
        real_keep(store, chunk)

    def checkpoint(store):
        path = real_checkpoint(store)
        written.append(len(np.load(path)))
        return path

    monkeypatch.setattr(pipeline.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(PredictionStore, "keep", keep)
    monkeypatch.setattr(PredictionStore, "checkpoint", checkpoint)

    result = predict(dataset, replace(spec, workers=1, checkpoint_s=2.5), tmp_path / "artifacts")

    assert result.computed == N_IMAGES and len(result.predictions) == N_IMAGES
    # a part once 2.5 s have passed, holding the 3 or more chunks (4 images each) finished since the last one;
    # the chunks finished after the last checkpoint go straight into predictions.csv
    assert written and all(n >= 12 for n in written) and sum(written) < N_IMAGES


def test_decode_errors_are_cached_with_their_chunk(tmp_path, spec, decodes):
    root = tmp_path / "imagenet"
    make_imagenet(root, n_images=8)
    damaged = next(iter(sorted((root / "ILSVRC" / "Data" / "CLS-LOC" / "val").iterdir())))
    damaged.write_bytes(damaged.read_bytes()[:200])
    dataset = load_dataset(root)

    first = predict(dataset, spec, tmp_path / "artifacts").predictions
    again = predict(dataset, spec, tmp_path / "artifacts", recompute=True).predictions

    assert len(decodes) == 8  # the second run decoded nothing, the damaged image included
    assert "truncated JPEG" in first.errors[0] and same_predictions(first, again)
    assert len(list((tmp_path / "artifacts" / "decode-cache").rglob("*.errors.json"))) == 1  # only its chunk


def test_a_recomputed_entry_drops_the_decode_errors_of_the_entry_it_replaces(dataset, spec, tmp_path, decodes):
    artifacts = tmp_path / "artifacts"
    reference = predict(dataset, spec, artifacts).predictions
    (images,) = (artifacts / "decode-cache").rglob("*-00000-4.npy")
    stale = images.with_name(images.name.replace(".npy", ".errors.json"))
    stale.write_text('["stale error", "", "", ""]')
    images.write_bytes(b"damaged")

    again = predict(dataset, spec, artifacts, recompute=True).predictions

    assert not stale.exists() and same_predictions(reference, again)


@pytest.mark.parametrize("name, tta", [(name, tta) for name in sorted(RECIPES) for tta in TTA_MODES
                                       if geometry_is_cacheable(RECIPES[name], tta)])  # the cached ones run in BGR
def test_geometry_in_bgr_then_swapped_equals_geometry_in_rgb(dataset, name, tta):
    recipe = get_recipe(name)
    for image_id in dataset.image_ids[:3]:  # portrait, landscape and square images
        path = dataset.image_path(image_id)
        rgb = geometry(decode_image(path), recipe, tta, size=16)
        bgr = geometry(decode_image(path, channels="BGR"), recipe, tta, size=16)
        np.testing.assert_array_equal(bgr[..., ::-1], rgb)


def test_top_k_equals_the_first_k_of_a_stable_sort_of_all_scores():
    rng = np.random.default_rng(0)
    for trial in range(60):
        n_classes = int(rng.choice([3, 6, 1000, 1001]))
        if trial % 2:  # few distinct values: ties everywhere, also at the k-th place
            scores = rng.integers(0, 4, (17, n_classes)).astype(np.float32)
        else:
            scores = rng.standard_normal((17, n_classes)).astype(np.float32)
        for offset in (0, 1):
            kept = scores[:, offset:]
            order = np.argsort(-kept, axis=1, kind="stable")[:, :5]

            ids, values = ranking.top_k(scores, offset)

            np.testing.assert_array_equal(ids, order)
            np.testing.assert_array_equal(values, np.take_along_axis(kept, order, axis=1))


@pytest.fixture
def opened_runtimes(monkeypatch):
    """Runtimes opened during the test, and which of them were closed."""
    opened, closed = [], []
    real_open = model_runtime.open_runtime

    def counting_open(*args, **kwargs):
        runtime = real_open(*args, **kwargs)
        real_close = runtime.close
        runtime.close = lambda: (closed.append(runtime), real_close())
        opened.append(runtime)
        return runtime

    monkeypatch.setattr(model_runtime, "open_runtime", counting_open)
    return opened, closed


def test_a_second_run_of_the_same_model_reuses_its_runtimes(dataset, spec, tmp_path, opened_runtimes):
    opened, closed = opened_runtimes
    # calls slow enough that each of the two workers takes chunks, and so opens or reuses a runtime
    slow = replace(MODEL, delay_s=0.05)
    spec = replace(spec, workers=2, model_path=slow.save(tmp_path / "slow.fake.json"))
    with RuntimePool() as runtimes:  # owned by the caller (the pytest suite, a bench), closed by it
        first = predict(dataset, spec, tmp_path / "artifacts", runtimes=runtimes)
        assert len(opened) == 2 and not closed  # the runtime that inspected the model became a worker's

        again = predict(dataset, replace(spec, tta="keep-aspect"), tmp_path / "artifacts", runtimes=runtimes)
        assert len(opened) == 2 and again.computed == N_IMAGES  # nothing opened for the second run

        other_model = replace(slow, mean_offset=490.0).save(tmp_path / "o.fake.json")
        other = predict(dataset, replace(spec, model_path=other_model), tmp_path / "artifacts", runtimes=runtimes)
        assert len(opened) == 4 and {id(r) for r in closed} == {id(r) for r in opened[:2]}  # kept ones closed
        assert not same_predictions(first.predictions, other.predictions)
    assert {id(r) for r in closed} == {id(r) for r in opened}  # the pool closes what it kept


def test_without_a_pool_the_runtimes_of_a_run_are_closed_when_it_ends(dataset, spec, tmp_path, opened_runtimes):
    opened, closed = opened_runtimes
    predict(dataset, replace(spec, workers=2), tmp_path / "artifacts")
    assert len(opened) == 2 and {id(r) for r in closed} == {id(r) for r in opened}


def test_runtimes_of_a_failed_run_are_closed_not_kept(dataset, tmp_path, opened_runtimes):
    opened, closed = opened_runtimes
    failing = replace(MODEL, fail_after_calls=3).save(tmp_path / "failing.fake.json")
    spec = RunSpec(Path(failing), get_recipe("mobilenet_keras"), "1-crop", "fake", chunk_size=4, workers=1)
    with RuntimePool() as runtimes:
        for attempt in range(2):
            with pytest.raises(RuntimeError, match="planned failure"):
                predict(dataset, spec, tmp_path / "artifacts", runtimes=runtimes)
            assert len(opened) == attempt + 1 and closed == opened  # the rerun starts from a fresh runtime


# --- changed, damaged and unreadable images (issue 13) -------------------------------------------------------------


def image_files(root: Path) -> list[Path]:
    return sorted((root / "ILSVRC" / "Data" / "CLS-LOC" / "val").iterdir())


@pytest.fixture
def small_root(tmp_path):
    root = tmp_path / "imagenet"
    make_imagenet(root, n_images=12)
    return root


def zero_fill(path: Path, start: int, n_bytes: int) -> None:
    """Overwrite bytes in place: the size stays, the content and mtime change."""
    data = bytearray(path.read_bytes())
    data[start:start + n_bytes] = bytes(min(n_bytes, len(data) - start))
    path.write_bytes(bytes(data))


def test_a_changed_image_invalidates_only_its_own_prediction_and_cache_entry(small_root, spec, tmp_path, decodes):
    artifacts = tmp_path / "artifacts"
    before = predict(load_dataset(small_root), spec, artifacts).predictions
    changed = image_files(small_root)[5]
    zero_fill(changed, 0, changed.stat().st_size)  # same size, as in the reproduction
    decodes.clear()

    dataset = load_dataset(small_root)
    after = predict(dataset, spec, artifacts)
    recomputed = predict(dataset, spec, artifacts, recompute=True).predictions
    fresh = predict(dataset, spec, tmp_path / "fresh").predictions

    assert after.computed == 1 and decodes[0] == str(changed)  # one image predicted, one decoded
    assert after.predictions.errors[5].startswith(f"{changed}: not a JPEG")
    assert same_predictions(after.predictions, fresh) and same_predictions(recomputed, fresh)
    others = np.arange(12) != 5
    assert np.array_equal(after.predictions.top5_ids[others], before.top5_ids[others])
    assert len(decodes) == 1 + 12  # --recompute decoded nothing (the entry was rewritten), the fresh run all 12


def test_verify_data_catches_a_changed_copy_that_kept_size_and_mtime(small_root, spec, tmp_path):
    artifacts = tmp_path / "artifacts"
    predict(load_dataset(small_root), spec, artifacts)
    changed = image_files(small_root)[2]
    stat = changed.stat()
    zero_fill(changed, 0, stat.st_size)
    os.utime(changed, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    dataset = load_dataset(small_root)

    trusted = predict(dataset, spec, artifacts).predictions
    verified = predict(dataset, replace(spec, verify_data=True), artifacts)

    assert trusted.errors[2] == ""  # size and mtime alone cannot see this change
    assert verified.computed == 1 and verified.predictions.errors[2].startswith(f"{changed}: not a JPEG")
    assert same_predictions(verified.predictions, predict(dataset, spec, tmp_path / "fresh").predictions)


@pytest.mark.parametrize("decode_cache", [True, False])
def test_a_transient_read_error_is_not_cached(small_root, spec, tmp_path, monkeypatch, decode_cache):
    spec = replace(spec, decode_cache=decode_cache)
    locked = image_files(small_root)[3]
    real_read_bytes = Path.read_bytes

    def denied(path):
        if path == locked:
            raise PermissionError(13, "Permission denied", str(path))
        return real_read_bytes(path)

    dataset = load_dataset(small_root)
    with monkeypatch.context() as patch:
        patch.setattr(Path, "read_bytes", denied)
        first = predict(dataset, spec, tmp_path / "artifacts").predictions
    again = predict(dataset, spec, tmp_path / "artifacts")

    assert first.errors[3] == f"{locked}: cannot read the file (Permission denied)"
    assert again.computed == 1 and again.predictions.errors[3] == ""
    assert same_predictions(again.predictions, predict(dataset, spec, tmp_path / "fresh").predictions)


def test_links_leaving_the_dataset_are_refused_unread(small_root, spec, tmp_path, decodes):
    outside_jpeg, outside_text = tmp_path / "outside.JPEG", tmp_path / "secret.txt"
    outside_jpeg.write_bytes(image_files(small_root)[0].read_bytes())
    outside_text.write_text("SECRET first line\n")
    files = image_files(small_root)
    for link, target in ((files[1], outside_jpeg), (files[2], outside_text)):
        link.unlink()
        link.symlink_to(target)
    files[3].unlink()
    files[3].symlink_to(files[4])  # a link inside the dataset is an ordinary image

    run = predict(load_dataset(small_root), spec, tmp_path / "artifacts").predictions

    for row, target in ((1, outside_jpeg), (2, outside_text)):
        assert run.errors[row] == (f"{files[row]}: symbolic link to {target}, outside the dataset directory "
                                   f"{small_root}; refused unread")
    assert "SECRET" not in "".join(run.errors)
    assert str(files[1]) not in decodes and str(files[2]) not in decodes and run.errors[3] == ""


def test_corrupt_jpeg_data_is_a_failed_image_with_the_decoders_message(tmp_path, spec):
    from imagenet_factory import real_imagenet_dir
    from test_decode import zero_scan_block

    root = tmp_path / "imagenet"
    make_imagenet(root, n_images=4)
    real = load_dataset(real_imagenet_dir())
    damaged = image_files(root)[1]
    damaged.write_bytes(zero_scan_block(real.image_path(real.image_ids[0]).read_bytes()))

    run = predict(load_dataset(root), spec, tmp_path / "artifacts").predictions

    assert run.errors[1].startswith(f"{damaged}: damaged JPEG data (libjpeg: Corrupt JPEG data")
    assert (run.errors != "").sum() == 1


@pytest.mark.parametrize("width, height", [(1, 40000), (40000, 1), (1, 3000)])
@pytest.mark.parametrize("decode_cache", [True, False])
def test_an_extreme_aspect_ratio_is_a_failed_image_not_a_crash(tmp_path, spec, width, height, decode_cache):
    from PIL import Image

    root = tmp_path / "imagenet"
    make_imagenet(root, n_images=4)
    extreme = image_files(root)[2]
    Image.new("RGB", (width, height), (200, 30, 30)).save(extreme, "PNG")  # a PNG named .JPEG: tiny on disk

    model = replace(MODEL, input_shape=(None, 224, 224, 3)).save(tmp_path / "model224.fake.json")
    spec = replace(spec, model_path=model, decode_cache=decode_cache)

    run = predict(load_dataset(root), spec, tmp_path / "artifacts").predictions

    assert run.errors[2].startswith(f"{extreme}: a {width}x{height} image would be resized to ")
    assert "extreme aspect ratio" in run.errors[2] and (run.errors != "").sum() == 1


def test_a_symbolic_output_shape_learns_the_class_count_from_one_batch(tmp_path, small_root):
    import onnx
    from onnx import helper
    from test_runtimes import make_onnx

    model_path = tmp_path / "symbolic.onnx"
    make_onnx(model_path)
    model = onnx.load(str(model_path))
    # Y = Reshape(Y0, Shape(Y0)): the class count cannot be inferred from the graph, so ['N', 'K'] stays symbolic
    model.graph.node[-1].output[0] = "Y0"
    model.graph.node.extend([helper.make_node("Shape", ["Y0"], ["S"]), helper.make_node("Reshape", ["Y0", "S"], ["Y"])])
    model.graph.output[0].type.tensor_type.shape.dim[1].dim_param = "K"
    onnx.save(model, str(model_path))
    spec = RunSpec(model_path, get_recipe("resnet50_pytorch"), "none", "onnxruntime", decode_cache=False)

    info = model_runtime.inspect_model(spec)
    run = predict(load_dataset(small_root), spec, tmp_path / "artifacts").predictions

    assert info.n_outputs == 1000 and (run.errors == "").all() and (run.top5_ids >= 0).all()


def test_the_pytest_plugin_offers_verify_data(pytestconfig):
    assert pytestconfig.getoption("verify_data") is False  # registered by evaluator/plugin.py; off unless asked


def test_a_new_mtime_with_the_same_content_is_not_a_change(small_root, spec, tmp_path):
    artifacts = tmp_path / "artifacts"
    first = predict(load_dataset(small_root), spec, artifacts)
    touched = image_files(small_root)[4]
    os.utime(touched, ns=(touched.stat().st_atime_ns, touched.stat().st_mtime_ns + 10**9))  # a copy, a touch

    again = predict(load_dataset(small_root), spec, artifacts)

    assert again.computed == 0 and same_predictions(again.predictions, first.predictions)
