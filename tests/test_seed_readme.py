"""baselines.yaml's documented rows agree with the seed README's tables (../shared/seed/*.txt).

Each table of the seed's "Evaluation Result" is introduced by "ImageNet 50000 Validation Images with <runtime>."; that
runtime names the baselines source its rows must cite. Every seed row with numbers is in baselines.yaml with the same
model, precision, TTA, TOP1 and TOP5, and every documented row citing one of those sources is in the seed; rows from
later README versions (no numbers in the seed) cite a source of their own.
"""

from __future__ import annotations

import re

import pytest
from ruamel.yaml import YAML

from evaluator.locations import REPO_ROOT

SEED_DIR = REPO_ROOT.parent / "shared" / "seed"


def seed_tables(text: str) -> list[dict]:
    """Rows of the seed README's result tables: model, precision, tta, top1, top5 (None when blank), runtime."""
    rows, runtime = [], None
    for line in text.splitlines():
        heading = re.match(r"ImageNet 50000 Validation Images with (.+?)\.?\s*$", line)
        if heading:
            runtime = heading.group(1)
        elif line.startswith("## Official"):
            runtime = None
        elif runtime and line.startswith("|") and not line.startswith(("|Model", "|-")):
            model, precision, tta, top1, top5 = (cell.strip() for cell in line.split("|")[1:6])
            rows.append({"model": model, "precision": precision, "tta": tta, "runtime": runtime,
                         "top1": float(top1) if top1 else None, "top5": float(top5) if top5 else None})
    return rows


def catalogue_key(row: dict) -> tuple[str, str, str]:
    """(model, precision, tta) as baselines.yaml names them: "resnet50_keras (recalib)" int8 is int8-recalib."""
    model, recalib = re.subn(r"\s*\(recalib\)$", "", row["model"])
    return model, "int8-recalib" if recalib else row["precision"], row["tta"]


@pytest.fixture(scope="module")
def seed_readme():
    files = sorted(SEED_DIR.glob("*.txt"))
    if not files:
        pytest.skip(f"no seed README in {SEED_DIR}: put the product's original README there as <name>.txt")
    return "\n".join(path.read_text(encoding="utf-8") for path in files)


@pytest.fixture(scope="module")
def baselines():
    return YAML(typ="safe").load((REPO_ROOT / "baselines.yaml").read_text())


def test_the_seed_tables_are_read(seed_readme):
    rows = seed_tables(seed_readme)
    assert {row["runtime"] for row in rows} == {"ailia SDK 1.2.11", "ailia TFLite Runtime 1.1.1", "TensorFlow 2.7"}
    assert sum(row["top1"] is not None for row in rows) == 13  # 6 ONNX, 4 ailia TFLite, 3 TensorFlow


def test_documented_rows_match_the_seed_readme(seed_readme, baselines):
    sources = baselines["sources"]
    documented = baselines["documented"]
    problems = []
    seed_sources = {}
    for runtime in {row["runtime"] for row in seed_tables(seed_readme)}:
        named = [name for name, source in sources.items() if source["runtime_version"] == runtime]
        if len(named) != 1:
            problems.append(f"seed runtime {runtime!r}: {len(named)} sources state it ({named}); expected exactly one")
        else:
            seed_sources[named[0]] = runtime
    by_key = {(d["model"], d["precision"], d["tta"], d["source"]): d for d in documented}
    seeded = set()
    for row in seed_tables(seed_readme):
        key = catalogue_key(row)
        source = next((name for name, runtime in seed_sources.items() if runtime == row["runtime"]), None)
        entry = by_key.get((*key, source))
        if row["top1"] is None:  # no number in the seed: any documented row for it comes from a later README
            if entry is not None:
                problems.append(f"{key} cites {source}, but the seed has no number for it: cite its own README version")
            continue
        seeded.add((*key, source))
        if entry is None:
            problems.append(f"seed row {key} ({row['runtime']}) {row['top1']}/{row['top5']} "
                            "missing from baselines.yaml")
        elif (entry["top1"], entry["top5"]) != (row["top1"], row["top5"]):
            problems.append(f"{key} ({source}): baselines {entry['top1']}/{entry['top5']}, "
                            f"seed {row['top1']}/{row['top5']}")
    for entry in documented:
        key = (entry["model"], entry["precision"], entry["tta"], entry["source"])
        if entry["source"] in seed_sources and key not in seeded:
            problems.append(f"{key[:3]} cites seed source {entry['source']} but is not in the seed's tables")
    assert not problems, "\n".join(problems)


def test_later_readme_rows_cite_their_own_version_and_no_invented_runtime(baselines):
    sources = baselines["sources"]
    for entry in baselines["documented"]:
        if entry["model"].startswith("efficientnetlite0"):
            # the README names 1.1.1 (resnet) and 1.1.6 (mobilenet) only: no version may be claimed for these
            version = sources[entry["source"]]["runtime_version"]
            assert not re.search(r"\d", version), (entry, version)
            assert "@d4266fa" in sources[entry["source"]]["reference"]
