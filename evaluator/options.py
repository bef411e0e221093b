"""Option types and option groups shared by the command line (cli.py) and the pytest plugin (plugin.py)."""

from __future__ import annotations

import argparse

from .errors import EvaluatorError


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number")
    return value


def non_negative_float(text: str) -> float:
    """argparse type: a finite number >= 0."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number >= 0")
    return value


def image_shard(text: str):
    """argparse type: K/N, an image shard (shard.Shard)."""
    # shard.py imports numpy (via dataset.py): importing it here would load numpy for `--help` and for every pytest
    # run in which the plugin is installed, so it is imported when an option value is parsed.
    from .shard import parse_shard

    try:
        return parse_shard(text)
    except EvaluatorError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_override_options(group) -> None:
    """--mean, --std, ... (recipes.OVERRIDE_OPTIONS) on an argparse group or a pytest option group."""
    add = getattr(group, "addoption", None) or group.add_argument
    add("--mean", type=float, nargs=3, metavar=("R", "G", "B"), help="mean per channel, in the recipe's colour order")
    add("--std", type=float, nargs=3, metavar=("R", "G", "B"), help="std per channel")
    add("--scale", type=float, help="value = (x * scale - mean) / std; e.g. 0.00392156862745098 (1/255)")
    add("--resize-short-side", type=int, metavar="N", help="1-crop: resize the short side to N, then crop")
    add("--crop-size", type=int, metavar="N", help="crop size = model input size (same field as --input-size)")
    add("--input-size", type=int, metavar="N",
        help="model input size (for a dynamic-size model; a fixed one must match)")
    add("--crop-fraction", type=float, metavar="F", help="1-crop keeps this central fraction (e.g. 0.875)")
    add("--interpolation", metavar="NAME",
        help="cv2-bilinear, cv2-bicubic, pil-bilinear-antialias or pil-bicubic-antialias")
    add("--channel-order", metavar="RGB|BGR", help="input channel order")
    add("--layout", metavar="NCHW|NHWC", help="input tensor layout")
    add("--class-offset", type=int, metavar="K", help="1 for 1001-output models (index 0 = background)")


def recipe_overrides(get) -> dict:
    """The override options that were given, by option name; `get(name)` reads one (args or pytest config)."""
    # recipes.py brings dataclasses and typing (~10 ms): `--help` and a usage error do not need them.
    from .recipes import OVERRIDE_OPTIONS

    return {name: get(name) for name in OVERRIDE_OPTIONS if get(name) is not None}
