"""Default places on disk: models, artifacts, and the shared real-data fixtures."""

import os
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
