"""Default places on disk: the project directory, ImageNet, models, artifacts, the shared fixtures and the sample.

Every default is relative to the project directory, never to the working directory, so `pytest` run from tests/
and `python -m evaluator` run from the root read and write the same places. Each has an environment override.
"""

import os
import re
from pathlib import Path

from .errors import EvaluatorError

REPO_ROOT = Path(__file__).resolve().parents[1]
CATALOGUE_FILE = "baselines.yaml"
SAMPLE_DIR = REPO_ROOT / "data" / "sample"  # shipped with the repository: 50 real val images and the smallest model


def project_dir() -> Path:
    """$EVALUATOR_PROJECT_DIR, else the nearest directory from the working directory up that holds baselines.yaml,
    else the working directory."""
    configured = os.environ.get("EVALUATOR_PROJECT_DIR")
    if configured:
        return Path(configured).expanduser()
    cwd = Path.cwd()
    return next((d for d in (cwd, *cwd.parents) if (d / CATALOGUE_FILE).is_file()), cwd)


def fixtures_dir() -> Path:
    """The shared real-data fixtures (700 ImageNet images, small real models): $EVALUATOR_FIXTURES or
    ../shared/fixtures."""
    return Path(os.environ.get("EVALUATOR_FIXTURES") or REPO_ROOT.parent / "shared" / "fixtures")


def default_imagenet_dir() -> Path:
    """ImageNet root when none is given: $EVALUATOR_IMAGENET_DIR, else data/imagenet if present, else the shared
    fixtures' 700-image slice if present, else the 50-image sample shipped in data/sample."""
    configured = os.environ.get("EVALUATOR_IMAGENET_DIR")
    if configured:
        return Path(configured).expanduser()
    for candidate in (project_dir() / "data" / "imagenet", fixtures_dir() / "imagenet"):
        if candidate.exists():
            return candidate
    return SAMPLE_DIR / "imagenet"


def imagenet_dir_help() -> str:
    """Help text of --imagenet-dir (CLI and pytest): the directory default_imagenet_dir() picks here and now."""
    return f"Kaggle ImageNet root (default here: {default_imagenet_dir()}; README \"Usage\" gives the order)"


def default_models_dir() -> Path:
    """Where catalogue model files are fetched to and looked up first: $EVALUATOR_MODELS_DIR or data/models."""
    return Path(os.environ.get("EVALUATOR_MODELS_DIR") or project_dir() / "data" / "models")


def model_search_dirs(models_dir: Path) -> list[Path]:
    """Where model files are looked up, in order: the models directory, the shared fixtures, the shipped sample."""
    return [Path(models_dir), fixtures_dir() / "models", SAMPLE_DIR / "models"]


def default_artifacts_dir() -> Path:
    """Where predictions, the decode cache and reports go: $EVALUATOR_ARTIFACTS_DIR or artifacts/."""
    return Path(os.environ.get("EVALUATOR_ARTIFACTS_DIR") or project_dir() / "artifacts")


# A name from the catalogue or the command line that becomes part of a path (model key, file, prototxt, precision):
# letters, digits and _ . + -, no separators, no "..", no NUL, at most 128 characters.
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]{0,127}")


def is_plain_name(value) -> bool:
    """True for a string usable as one path component: no directory, no '..', nothing hidden or odd."""
    return isinstance(value, str) and bool(_PLAIN_NAME.fullmatch(value)) and ".." not in value


def inside(directory: str | os.PathLike, path: str | os.PathLike) -> Path:
    """`path` when, symbolic links resolved, it lies inside `directory`; EvaluatorError naming both otherwise.

    Every write whose name comes from the catalogue or the command line goes through this first."""
    try:
        base, target = Path(directory).resolve(), Path(path).resolve()
    except (OSError, ValueError) as exc:  # a NUL, a loop of links
        raise EvaluatorError(f"{path}: not a usable path ({exc})") from None
    if target != base and base not in target.parents:
        raise EvaluatorError(f"refusing to write {path}: it resolves to {target}, outside {base}")
    return Path(path)
