"""The benchmark's seed-style loop does the same work as the evaluator, so its speed-up compares like with like."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
from imagenet_factory import make_imagenet

from evaluator.seed import read_prediction_texts
from evaluator.dataset import load_dataset
from evaluator.pipeline import predict
from evaluator.run_spec import RunSpec
from evaluator.recipes import get_recipe
from evaluator.runtimes.fake import FakeModel

REPO = Path(__file__).resolve().parents[1]


def test_seed_loop_predicts_the_same_top5_as_the_pipeline(tmp_path):
    root = tmp_path / "imagenet"
    make_imagenet(root, n_images=9, n_classes=5)
    model = FakeModel(input_shape=(None, 8, 8, 3), mean_scale=2000.0, mean_offset=500.0).save(tmp_path / "m.fake.json")
    pipeline = predict(load_dataset(root), RunSpec(model, get_recipe("mobilenet_keras"), "1-crop", "fake"),
                       tmp_path / "artifacts").predictions

    subprocess.run([sys.executable, str(REPO / "bench" / "seed_loop.py"), "--model-path", str(model), "--recipe",
                    "mobilenet_keras", "--runtime", "fake", "--imagenet-dir", str(root), "--out", str(tmp_path / "seed")],
                   check=True, capture_output=True, cwd=REPO)
    image_ids, top5 = read_prediction_texts(tmp_path / "seed")

    np.testing.assert_array_equal(image_ids, pipeline.image_ids)
    np.testing.assert_array_equal(top5, pipeline.top5_ids)
    assert len(set(top5[:, 0].tolist())) > 2  # the comparison is not between two constant answers
