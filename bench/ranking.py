"""Cost of the scripts' tie rule: top_k with ranking "numpy-argsort" against "argmax-lowest-id", in one run.

    python bench/ranking.py          # needs ../shared/fixtures (real images, generated int8 model)

Scores are the dequantized outputs of a generated int8 TFLite model (ties at the top-5 boundary on most images, as
real int8 models have) and of its float sibling (no ties) on the fixture images, tiled to 4,096 rows. Both rules run
interleaved, best of several repeats, and the ratio is printed beside the model's own per-image inference time, so
the difference can be read as a share of a run.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from timing import best_of  # bench/ is the script's directory

from evaluator.dataset import load_dataset, subset
from evaluator.decode import decode_image
from evaluator.locations import fixtures_dir
from evaluator.preprocess import geometry, inputs_from_geometry
from evaluator.ranking import top_k
from evaluator.recipes import get_recipe
from evaluator.runtimes import open_runtime


def scores_of(model: Path, images: np.ndarray) -> tuple[np.ndarray, float]:
    """(scores of every image, single-thread seconds per image of the model)."""
    runtime = open_runtime("litert", model, num_threads=1)
    recipe = get_recipe("mobilenet_keras")
    batch = inputs_from_geometry(images, recipe, runtime.input_spec)
    started = time.perf_counter()
    scores = runtime.run(batch)
    return scores, (time.perf_counter() - started) / len(images)


def main() -> None:
    generated = fixtures_dir() / "models" / "generated"
    dataset = subset(load_dataset(fixtures_dir() / "imagenet"), 128)
    images = np.stack([geometry(decode_image(path), get_recipe("mobilenet_keras"), "1-crop")
                       for path in dataset.image_files()])
    print(f"{len(images)} fixture images, scores tiled to 4,096 rows; seconds per 1,000 rows (best of 7)")
    for name in ("gen_int8_unit_1000.tflite", "gen_float32_1000.tflite"):
        scores, inference_s = scores_of(generated / name, images)
        rows = np.tile(scores, (4096 // len(scores) + 1, 1))[:4096]
        top6 = -np.sort(-rows, axis=1)[:, :6]
        tied = float((top6[:, 1:] == top6[:, :-1]).any(axis=1).mean())
        lowest = best_of(lambda: top_k(rows, ranking="argmax-lowest-id"), repeats=7) / len(rows) * 1000
        numpy_rule = best_of(lambda: top_k(rows, ranking="numpy-argsort"), repeats=7) / len(rows) * 1000
        print(f"{name}: rows with a tie in the top 6 {tied:.0%}; argmax-lowest-id {lowest:.4f} s, numpy-argsort "
              f"{numpy_rule:.4f} s (ratio {numpy_rule / lowest:.2f}); the extra cost per image is "
              f"{(numpy_rule - lowest) / 1000 / inference_s:.1%} of this model's inference "
              f"({inference_s * 1000:.2f} ms)")


if __name__ == "__main__":
    main()
