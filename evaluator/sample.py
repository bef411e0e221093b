"""The 50-image real sample shipped in data/sample: checked against its SHA256SUMS before it is used."""

from __future__ import annotations

from pathlib import Path

from evaluator.errors import DatasetError
from evaluator.locations import SAMPLE_DIR
from evaluator.model_hash import sha256_of

CHECKSUMS = "SHA256SUMS"


def is_sample(path: Path) -> bool:
    """Whether path lies inside the shipped sample."""
    return Path(path).resolve().is_relative_to(SAMPLE_DIR.resolve())


def check_sample(sample_dir: Path = SAMPLE_DIR) -> None:
    """Raise DatasetError naming every file of the sample that is missing or differs from SHA256SUMS."""
    sums = sample_dir / CHECKSUMS
    try:
        lines = sums.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise DatasetError(f"{sums}: cannot read the sample's checksums ({exc.strerror or exc})") from None
    problems = []
    for number, line in enumerate(lines, 1):
        expected, _, name = line.partition("  ")
        path = sample_dir / name
        try:
            actual = sha256_of(path).hexdigest()
        except OSError as exc:
            problems.append(f"{name}: {exc.strerror or exc}")
            continue
        if actual != expected:
            problems.append(f"{name}: sha256 {actual}, expected {expected} ({CHECKSUMS} line {number})")
    if problems:
        raise DatasetError(f"{sample_dir}: the shipped sample is damaged; restore it with `git checkout -- "
                           f"data/sample`: " + "; ".join(problems))
