"""Image shards: a deterministic 1/N of a dataset's images, so that one case can be predicted on N machines.

Shard K of N holds the images at positions K-1, K-1+N, K-1+2N, ... of the dataset's sorted id order: every image is
in exactly one shard, shard sizes differ by at most one, and each shard samples the whole id range (not one block of
it). A shard's predictions artifact keeps the cache key of the whole dataset and records the shard, so
`python -m evaluator merge` (evaluator/merge.py) can check that shards belong together and rebuild the artifact an
unsharded run writes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .dataset import Dataset, select
from .errors import EvaluatorError

# meta.json key of a shard's artifact; its absence marks a complete artifact
SHARD_META_KEY = "shard"
_SHARD_TEXT = re.compile(r"\s*(\d+)\s*/\s*(\d+)\s*")


@dataclass(frozen=True)
class Shard:
    """Shard `index` (1-based) of `count`."""

    index: int
    count: int

    def __post_init__(self):
        if not 1 <= self.index <= self.count:
            raise EvaluatorError(f"image shard {self.index}/{self.count}: K must be between 1 and N")

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    @property
    def dir_suffix(self) -> str:
        """Appended to the artifact directory name: `-shard2of3`."""
        return f"-shard{self.index}of{self.count}"

    def size(self, n_images: int) -> int:
        """Images of an n_images dataset in this shard."""
        return len(range(self.index - 1, n_images, self.count))

    def select(self, dataset: Dataset) -> Dataset:
        """This shard's images of the dataset; an empty shard is an error saying how many shards fit."""
        ids = dataset.image_ids[self.index - 1::self.count]
        if not ids:
            raise EvaluatorError(f"image shard {self} of {len(dataset):,} images is empty: "
                                 f"use at most {len(dataset):,} shards")
        return select(dataset, ids)

    def meta(self, n_images: int) -> dict:
        """What a shard's meta.json records about this shard of an n_images dataset (under SHARD_META_KEY)."""
        return {SHARD_META_KEY: {"index": self.index, "count": self.count, "n_images": self.size(n_images),
                                 "dataset_n_images": n_images}}


def parse_shard(text: str) -> Shard:
    """"K/N" -> Shard(K, N); EvaluatorError (one line) for anything else."""
    match = _SHARD_TEXT.fullmatch(text)
    if not match:
        raise EvaluatorError(f"image shard {text!r}: expected K/N, e.g. 2/3 (the second of three shards)")
    index, count = int(match.group(1)), int(match.group(2))
    if not 1 <= index <= count:
        raise EvaluatorError(f"image shard {text!r}: K must be between 1 and N (e.g. 1/3, 2/3, 3/3)")
    return Shard(index, count)


def shard_of(meta: dict) -> Shard | None:
    """The shard a predictions artifact's meta.json records, None for a complete artifact; EvaluatorError when the
    record is malformed."""
    recorded = meta.get(SHARD_META_KEY)
    if recorded is None:
        return None
    try:
        index, count, n_images, dataset_n_images = (int(recorded[key]) for key in (
            "index", "count", "n_images", "dataset_n_images"))
    except (KeyError, TypeError, ValueError) as exc:
        raise EvaluatorError(f"malformed {SHARD_META_KEY!r} entry {recorded!r} ({type(exc).__name__}: {exc})") from None
    shard = Shard(index, count)
    if n_images != shard.size(dataset_n_images):
        raise EvaluatorError(f"image shard {shard} of {dataset_n_images} images holds {shard.size(dataset_n_images)} "
                             f"images, the record says {n_images}")
    return shard
