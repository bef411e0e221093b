"""Default places on disk: models, artifacts, and the shared real-data fixtures."""

import os
import re
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def default_models_dir() -> Path:
    """Where catalogue model files are fetched to and looked up: $EVALUATOR_MODELS_DIR or ./data/models."""
    return Path(os.environ.get("EVALUATOR_MODELS_DIR") or Path.cwd() / "data" / "models")


def default_artifacts_dir() -> Path:
    """Where predictions, the decode cache and reports go: $EVALUATOR_ARTIFACTS_DIR or ./artifacts."""
    return Path(os.environ.get("EVALUATOR_ARTIFACTS_DIR") or Path.cwd() / "artifacts")


def fixtures_dir() -> Path:
    """The shared real-data fixtures (700 ImageNet images, small real models): $EVALUATOR_FIXTURES or ../shared/fixtures."""
    return Path(os.environ.get("EVALUATOR_FIXTURES") or REPO_ROOT.parent / "shared" / "fixtures")


# A name from the catalogue or the command line that becomes part of a path (model key, file, prototxt, precision):
# letters, digits and _ . + -, no separators, no "..", no NUL, at most 128 characters.
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]{0,127}")


def is_plain_name(value) -> bool:
    """True for a string usable as one path component: no directory, no '..', nothing hidden or odd."""
    return isinstance(value, str) and bool(_PLAIN_NAME.fullmatch(value)) and ".." not in value


def inside(directory: str | os.PathLike, path: str | os.PathLike) -> Path:
    """`path` when, symbolic links resolved, it lies inside `directory`; EvaluatorError naming both otherwise.

    Every write whose name comes from the catalogue or the command line goes through this first."""
    from .errors import EvaluatorError

    try:
        base, target = Path(directory).resolve(), Path(path).resolve()
    except (OSError, ValueError) as exc:  # a NUL, a loop of links
        raise EvaluatorError(f"{path}: not a usable path ({exc})") from None
    if target != base and base not in target.parents:
        raise EvaluatorError(f"refusing to write {path}: it resolves to {target}, outside {base}")
    return Path(path)
