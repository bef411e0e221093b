"""Image shards: every image in exactly one shard, balanced, and a shard's artifact keeps the whole dataset's key."""

from __future__ import annotations

import pytest
from imagenet_factory import make_imagenet

from evaluator.dataset import load_dataset
from evaluator.errors import EvaluatorError
from evaluator.pipeline import predict
from evaluator.prediction_store import PredictionStore
from evaluator.recipes import get_recipe
from evaluator.run_spec import RunSpec
from evaluator.runtimes.fake import FakeModel
from evaluator.shard import Shard, parse_shard, shard_of


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("imagenet")
    make_imagenet(root, n_images=11, n_classes=3)
    return load_dataset(root)


@pytest.mark.parametrize("count", [1, 2, 3, 4, 11])
def test_every_image_is_in_exactly_one_shard_and_shards_are_balanced(dataset, count):
    shards = [Shard(k, count).select(dataset) for k in range(1, count + 1)]
    ids = [image_id for shard in shards for image_id in shard.image_ids]
    assert sorted(ids) == list(dataset.image_ids)  # each image once, none left out
    sizes = [len(shard) for shard in shards]
    assert max(sizes) - min(sizes) <= 1
    assert sizes == [Shard(k, count).size(len(dataset)) for k in range(1, count + 1)]


def test_a_shard_takes_every_nth_image_in_id_order(dataset):
    assert Shard(2, 3).select(dataset).image_ids == dataset.image_ids[1::3]


def test_more_shards_than_images_is_an_error_saying_how_many_fit(dataset):
    with pytest.raises(EvaluatorError, match="image shard 12/12 of 11 images is empty: use at most 11 shards"):
        Shard(12, 12).select(dataset)


@pytest.mark.parametrize("text, problem", [("2", "expected K/N"), ("0/3", "between 1 and N"),
                                           ("4/3", "between 1 and N"), ("a/b", "expected K/N")])
def test_malformed_shard_text_is_one_clear_error(text, problem):
    with pytest.raises(EvaluatorError, match=problem):
        parse_shard(text)


def test_parse_shard():
    assert parse_shard(" 2/3 ") == Shard(2, 3) and str(Shard(2, 3)) == "2/3"


def test_shard_artifact_keeps_the_full_key_and_records_the_shard(dataset, tmp_path):
    model = FakeModel(input_shape=(None, 8, 8, 3), mean_scale=2000.0, mean_offset=500.0).save(tmp_path / "m.fake.json")
    spec = RunSpec(model, get_recipe("mobilenet_keras"), "1-crop", "fake", workers=1)
    full = predict(dataset, spec, tmp_path / "full")
    part = predict(dataset, spec, tmp_path / "part", shard=Shard(2, 3))

    assert part.artifact_dir.name == full.artifact_dir.name + "-shard2of3"
    assert part.meta["artifact_key"] == full.meta["artifact_key"]
    assert part.meta["dataset_fingerprint"] == full.meta["dataset_fingerprint"] == dataset.fingerprint
    assert shard_of(part.meta) == Shard(2, 3) and shard_of(full.meta) is None
    assert part.meta["shard"] == {"index": 2, "count": 3, "n_images": 4, "dataset_n_images": 11}
    assert list(part.predictions.image_ids) == list(dataset.image_ids[1::3]) and part.computed == 4
    assert PredictionStore(part.artifact_dir).is_complete()
    # the shard's rows are the unsharded run's rows for the same images
    assert full.predictions.select(part.predictions.image_ids).top5_ids.tolist() == part.predictions.top5_ids.tolist()
