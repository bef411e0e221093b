"""The seed scripts' way of predicting, for the throughput benchmark's comparison.

One image at a time, as the seed's prediction.py does: list the image directory, cv2.imread, the model's recipe (the
same functions the evaluator uses, so both sides do the same arithmetic), one inference call per image, top-5 by the
recipe's ranking rule, one `<image id>.txt` per image with `label class_id score` lines. The runtime gets --threads
threads: bench/throughput.py runs it with every core (the peer's strongest configuration, as ailia.Net's default
num_thread=MULTITHREAD_AUTO gives) and with the runtime's own default (0).

    python bench/seed_loop.py --model-path M.tflite --recipe tf_slim_mobilenet_quant --imagenet-dir DIR --out DIR
    python bench/seed_loop.py ... --threads 2     # LiteRT num_threads=2, ONNX Runtime intra_op_num_threads=2
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import cv2

from evaluator.dataset import IMAGE_SUBDIR, SYNSET_MAPPING, read_synset_mapping
from evaluator.preprocess import geometry, geometry_is_cacheable, inputs_from_geometry, preprocess, to_input
from evaluator.ranking import top_k
from evaluator.recipes import get_recipe
from evaluator.runtimes import open_runtime, runtime_for_file


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-path", type=Path, required=True)
    parser.add_argument("--recipe", required=True)
    parser.add_argument("--tta", default="1-crop")
    parser.add_argument("--runtime")
    parser.add_argument("--imagenet-dir", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--threads", type=int, default=0,
                        help="runtime threads (default 0: the runtime's own default, as the seed scripts leave it)")
    args = parser.parse_args()

    started = time.perf_counter()
    recipe = get_recipe(args.recipe)
    runtime = open_runtime(args.runtime or runtime_for_file(args.model_path), args.model_path,
                           num_threads=args.threads or None)
    size = runtime.input_spec.shape[1 if recipe.layout == "NHWC" else 2]
    _, names = read_synset_mapping(args.imagenet_dir / SYNSET_MAPPING)
    labels = [name.replace(" ", "_") for name in names]
    image_dir = args.imagenet_dir / IMAGE_SUBDIR
    args.out.mkdir(parents=True, exist_ok=True)
    count = 0
    for name in sorted(os.listdir(image_dir)):
        flags = cv2.IMREAD_COLOR if recipe.exif_transpose else cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION
        rgb = cv2.cvtColor(cv2.imread(str(image_dir / name), flags), cv2.COLOR_BGR2RGB)
        if geometry_is_cacheable(recipe, args.tta):  # the recipe's exact value arithmetic, as the pipeline
            batch = inputs_from_geometry(geometry(rgb, recipe, args.tta, size=size)[None], recipe, runtime.input_spec)
        else:
            batch = to_input(preprocess(rgb, recipe, args.tta, size=size)[None], recipe, runtime.input_spec)
        scores = runtime.run(batch)
        top5 = top_k(scores, recipe.class_offset, ranking=recipe.ranking)[0][0]
        scores = scores[0, recipe.class_offset:]
        lines = "".join(f"{labels[c]} {c} {scores[c]:f}\n" for c in top5)
        (args.out / f"{name.split('.')[0]}.txt").write_text(lines, encoding="utf-8")
        count += 1
    runtime.close()
    print(f"{count} images in {time.perf_counter() - started:.3f} s")


if __name__ == "__main__":
    main()
