"""Cost of the data checks of issue 13, measured in one run on this machine (ratios, not absolute times).

    python bench/data_checks.py                 # 5,000 generated JPEGs, the smallest fixture model (a few minutes)
    python bench/data_checks.py --images 1000   # quicker

  decode     decoding the 700 fixture JPEGs with the evaluator (libjpeg-turbo through simplejpeg, strict: reports
             corrupt data) against plain OpenCV imdecode, best of three passes, one thread; pixels compared too
  hash       the xxh3 hash of every image's bytes (recorded when an image is decoded) against the cold run, and
             sha256 for comparison
  stamps     the per-image size/mtime check of a reused artifact (the listing's own stat) against a warm run
  verify     --verify-data: warm run with and without reading and hashing every image
  reuse      a run that reuses the finished artifact, with and without --verify-data

warm = predict --recompute with the decode cache filled (every image predicted again, nothing decoded). Each figure
is the best of two or three runs (warm runs with and without --verify-data interleaved). Targets (issue 13): stamps
and verify under 10% of a warm run, decode within 5%.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
from timing import best_of  # bench/ is the script's directory

from evaluator import stamps
from evaluator.dataset import IMAGE_SUBDIR, load_dataset
from evaluator.decode import decode_image
from evaluator.locations import fixtures_dir
from evaluator.pipeline import changed_images, predict
from evaluator.prediction_store import PredictionStore
from evaluator.recipes import get_recipe
from evaluator.run_spec import RunSpec

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from imagenet_factory import make_imagenet  # noqa: E402  (the tests' generator of Kaggle-layout sets)

MODEL = "mobilenet_v1_0.25_128_quant.tflite"


def generated_imagenet(root: Path, n_images: int) -> None:
    """A Kaggle layout whose images are smooth 500x375 JPEGs (about the size of real validation images)."""
    make_imagenet(root, n_images=1, n_listed=n_images)
    image_dir = root / IMAGE_SUBDIR
    rng = np.random.default_rng(0)
    for number in range(1, n_images + 1):
        small = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
        image = cv2.resize(small, (500, 375), interpolation=cv2.INTER_CUBIC)
        image = cv2.add(image, rng.integers(0, 24, image.shape, dtype=np.uint8))
        cv2.imwrite(str(image_dir / f"ILSVRC2012_val_{number:08d}.JPEG"), image, [cv2.IMWRITE_JPEG_QUALITY, 90])


def decode_figures() -> None:
    image_dir = fixtures_dir() / "imagenet" / IMAGE_SUBDIR
    paths = sorted(image_dir.glob("*.JPEG"))
    if not paths:
        print(f"decode   skipped: no fixture JPEGs in {image_dir}")
        return
    datas = [np.fromfile(path, np.uint8) for path in paths]
    flags = cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION
    cv2.setNumThreads(1)
    same = all(np.array_equal(cv2.imdecode(data, flags), decode_image(path, channels="BGR"))
               for data, path in zip(datas, paths))
    opencv = best_of(lambda: [cv2.imdecode(data, flags) for data in datas], 3)
    ours = best_of(lambda: [decode_image(path, channels="BGR") for path in paths], 3)
    opencv_with_read = best_of(lambda: [cv2.imdecode(np.fromfile(path, np.uint8), flags) for path in paths], 3)
    print(f"decode   {len(paths)} fixture JPEGs: evaluator {ours / len(paths) * 1e3:.2f} ms/image, OpenCV imdecode "
          f"{opencv / len(paths) * 1e3:.2f} (+file read {opencv_with_read / len(paths) * 1e3:.2f}); ratio "
          f"{ours / opencv_with_read:.3f} of OpenCV with the read; bit-identical: {same}")


def pipeline_figures(n_images: int, work: Path) -> None:
    root = work / "imagenet"
    generated_imagenet(root, n_images)
    dataset = load_dataset(root)
    model = fixtures_dir() / "models" / MODEL
    if not model.is_file():
        sys.exit(f"fixture model {model} absent (see ../shared/fixtures/SOURCES.md)")
    spec = RunSpec(model, get_recipe("tf_slim_mobilenet_quant"), "1-crop", "litert")
    verify_spec = replace(spec, verify_data=True)
    artifacts = work / "artifacts"

    started = time.perf_counter()
    predict(dataset, spec, artifacts)
    cold = time.perf_counter() - started
    # interleaved, best of three each: the two differ by less than this machine's run-to-run noise otherwise
    warm_runs, verify_runs = [], []
    for _ in range(3):
        warm_runs.append(best_of(lambda: predict(dataset, spec, artifacts, recompute=True), 1))
        verify_runs.append(best_of(lambda: predict(dataset, verify_spec, artifacts, recompute=True), 1))
    warm, warm_verify = min(warm_runs), min(verify_runs)
    reuse = best_of(lambda: predict(dataset, spec, artifacts), 3)
    reuse_verify = best_of(lambda: predict(dataset, verify_spec, artifacts), 2)
    run_dir = predict(dataset, spec, artifacts).artifact_dir
    check = best_of(lambda: changed_images(PredictionStore(run_dir), dataset, None), 3)
    load = best_of(lambda: PredictionStore(run_dir).load(), 3)
    datas = [Path(path).read_bytes() for path in dataset.image_files()]
    hashing = best_of(lambda: [stamps.digest(data) for data in datas], 2)
    sha256 = best_of(lambda: [hashlib.sha256(data).digest() for data in datas], 2)

    print(f"images   {n_images:,} generated 500x375 JPEGs, model {MODEL} on litert, "
          f"{spec.workers or 'all'} workers")
    print(f"runs     cold {cold:.2f} s, warm {warm:.2f} s, warm --verify-data {warm_verify:.2f} s, "
          f"reuse {reuse:.3f} s, reuse --verify-data {reuse_verify:.2f} s")
    print(f"hash     {hashing:.3f} s = {hashing / cold:.1%} of the cold run (one core; spread over the workers); "
          f"sha256 would take {sha256:.3f} s")
    print(f"stamps   {check - load:.4f} s beyond loading the table = {(check - load) / warm:.2%} of a warm run "
          "(target < 10%)")
    print(f"verify   +{warm_verify - warm:.2f} s = {(warm_verify - warm) / warm:.1%} of a warm run (target < 10%); "
          f"reuse with verify costs {reuse_verify / warm:.1%} of a warm run")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=5000)
    args = parser.parse_args()
    decode_figures()
    with tempfile.TemporaryDirectory(prefix="evaluator-data-checks-") as work:
        pipeline_figures(args.images, Path(work))


if __name__ == "__main__":
    main()
