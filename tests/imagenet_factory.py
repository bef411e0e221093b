"""Test helpers: tiny ImageNet validation sets in the Kaggle layout, and the path of the real fixture slice."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from evaluator.locations import fixtures_dir

N_CLASSES = 1000
IMAGE_SUBDIR = Path("ILSVRC", "Data", "CLS-LOC", "val")
# (width, height) cycled over the images: portrait, landscape, square
IMAGE_SIZES = ((24, 32), (40, 30), (32, 32))


def wnid(class_index: int) -> str:
    """Synthetic WordNet id of a class; sorted like the real ones: n00000000 ... n00000999."""
    return f"n{class_index:08d}"


def image_id(number: int) -> str:
    """Kaggle-style image id, 1-based: image_id(1) == "ILSVRC2012_val_00000001"."""
    return f"ILSVRC2012_val_{number:08d}"


def synset_lines() -> list[str]:
    """The 1000 lines of a valid LOC_synset_mapping.txt with synthetic wnids and names."""
    return [f"{wnid(i)} class {i}, synthetic" for i in range(N_CLASSES)]


def make_imagenet(root, n_images: int = 12, n_listed: int | None = None, labels=None, n_classes: int = 4) -> list[int]:
    """Write a Kaggle-layout ImageNet under root and return the labels of the listed images.

    The CSV lists n_listed images (default n_images), image_id(1) ... image_id(n_listed), in reverse order as the
    Kaggle file is unsorted; the first n_images of them are written as small JPEGs of varied sizes. labels (one per
    listed image) default to i % n_classes. Example: make_imagenet(tmp_path, n_images=7, n_listed=20).
    """
    root = Path(root)
    n_listed = n_images if n_listed is None else n_listed
    labels = [i % n_classes for i in range(n_listed)] if labels is None else list(labels)
    image_dir = root / IMAGE_SUBDIR
    image_dir.mkdir(parents=True, exist_ok=True)
    (root / "LOC_synset_mapping.txt").write_text("\n".join(synset_lines()) + "\n")
    rows = [f"{image_id(i + 1)},{wnid(label)} 10 20 30 40 {wnid(label)} 1 2 3 4" for i, label in enumerate(labels)]
    (root / "LOC_val_solution.csv").write_text("ImageId,PredictionString\n" + "\n".join(reversed(rows)) + "\n")
    for i in range(n_images):
        write_image(image_dir / f"{image_id(i + 1)}.JPEG", seed=i)
    return labels


def write_image(path: Path, seed: int, image_format: str = "JPEG") -> Path:
    """A small noisy RGB image; its size cycles through IMAGE_SIZES with the seed."""
    width, height = IMAGE_SIZES[seed % len(IMAGE_SIZES)]
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, image_format)
    return path


def real_imagenet_dir() -> Path:
    """The real 700-image slice in the Kaggle layout ($EVALUATOR_FIXTURES/imagenet); skips the test when absent."""
    root = fixtures_dir() / "imagenet"
    if not (root / "LOC_val_solution.csv").is_file():
        pytest.skip(f"real ImageNet fixtures absent: put the Kaggle-layout slice in {root} or set EVALUATOR_FIXTURES")
    return root
