"""evaluator/schema.py and evaluator/baselines.schema.json: the JSON Schema of baselines.yaml, used by `validate`."""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from evaluator import recipes
from evaluator.baselines import DEFAULT_BASELINES
from evaluator.cli import main
from evaluator.recipes import recipe_fields
from evaluator.schema import load_schema, schema_problems

ROOT = Path(__file__).resolve().parents[1]


def _raw(path=DEFAULT_BASELINES):
    return YAML(typ="safe", pure=True).load(Path(path).read_text())


def test_the_repository_catalogue_follows_the_schema_its_first_line_names():
    first_line = DEFAULT_BASELINES.read_text().splitlines()[0]
    assert first_line == "# yaml-language-server: $schema=evaluator/baselines.schema.json"
    referenced = DEFAULT_BASELINES.parent / first_line.split("$schema=")[1]
    assert referenced.read_text() == resources.files("evaluator").joinpath("baselines.schema.json").read_text()
    assert schema_problems(_raw()) == []


def test_the_schema_ships_as_package_data_and_jsonschema_is_a_dependency():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "baselines.schema.json" in project["tool"]["setuptools"]["package-data"]["evaluator"]
    assert any(dep.startswith("jsonschema") for dep in project["project"]["dependencies"])


def test_the_schema_knows_every_recipe_field_and_value():
    recipe = load_schema()["$defs"]["recipe"]["properties"]
    assert set(recipe) == {"base", "summary", *recipe_fields()}
    for field, choices in (("resize", recipes._RESIZES), ("colour", recipes._COLOURS),
                           ("layout", recipes._LAYOUTS), ("ranking", recipes.RANKINGS),
                           ("none_geometry", recipes._NONE_GEOMETRIES), ("quantize", recipes._QUANTIZES),
                           ("crop_geometry", recipes._CROP_GEOMETRIES), ("arithmetic", recipes._ARITHMETICS),
                           ("quantize_rounding", recipes._ROUNDINGS)):
        assert tuple(recipe[field]["enum"]) == choices, field
    assert load_schema()["$defs"]["expected"]["properties"]["tta"]["enum"] == list(recipes.TTA_MODES)


DECLARED = """
recipes:
  inception_torch:
    base: resnet50_pytorch
    mean: [0.498, 0.498, 0.498]
    std: [0.502, 0.502, 0.502]
"""


@pytest.mark.parametrize("edit, expected", [
    ((DECLARED, DECLARED.replace("[0.498, 0.498, 0.498]", "0.498")),
     "recipes.inception_torch.mean: mean must be a list of numbers; got 0.498"),
    ((DECLARED, DECLARED.replace("    mean:", "    meen:")),
     "recipes.inception_torch.meen: unknown recipe field 'meen'; did you mean mean?"),
    ((DECLARED, DECLARED.replace("base: resnet50_pytorch", "base: resnet50_pytorh")),
     "recipes.inception_torch.base: unknown base recipe 'resnet50_pytorh'; did you mean resnet50_pytorch?"),
    ((DECLARED, DECLARED.replace("base: resnet50_pytorch", "base: resnet50_pytorch\n    layout: NWHC")),
     "recipes.inception_torch.layout: layout must be one of NCHW, NHWC; got 'NWHC'; did you mean NHWC?"),
    (("classes: 1000\n", "classes: '1000'\n"), "models.resnet50_pytorch.classes: '1000' must be 1000 or 1001"),
    (("    recipe: resnet50_pytorch\n", "    recipe: resnet50_pytorch\n    recipie: x\n"),
     "models.resnet50_pytorch.recipie: unknown key; did you mean recipe? (allowed: classes,"),
    (("    recipe: resnet50_pytorch\n", "    recipe: inception_torh\n"),
     "models.resnet50_pytorch.files.float: unknown recipe 'inception_torh'; did you mean inception_torch?"),
    # found by the JSON Schema alone (its `format: date`), reported the same way
    (("date: 2022-05-02", "date: yesterday"), "sources.ailia-sdk-onnx.date: 'yesterday' is not a 'date'"),
])
def test_validate_reports_a_problem_in_one_line_with_its_key_path(tmp_path, capsys, edit, expected):
    text = DEFAULT_BASELINES.read_text().replace("recipes: {}\n", DECLARED.lstrip("\n"), 1)
    assert edit[0] in text
    path = tmp_path / "baselines.yaml"
    path.write_text(text.replace(edit[0], edit[1], 1))
    assert main(["validate", "--baselines", str(path)]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"error: {path}: {expected}")


def test_validate_lists_every_problem_at_once(tmp_path, capsys):
    raw = DEFAULT_BASELINES.read_text()
    path = tmp_path / "baselines.yaml"
    path.write_text(raw.replace("classes: 1000\n", "classes: 1002\n", 1).replace("top1: 0.6852", "top1: 6.852", 1)
                    .replace("recipes: {}", "recipes: {x: {base: nowhere}}"))
    assert main(["validate", "--baselines", str(path)]) == 2
    err = capsys.readouterr().err
    assert "4 problem(s)" in err
    assert "models.resnet50_pytorch.classes: 1002 must be 1000 or 1001" in err
    assert "documented[0].top1: 6.852 must be an accuracy fraction in [0, 1]" in err
    assert "recipes.x.base: unknown base recipe 'nowhere'" in err
    assert "documented[0]: top5 0.8869 is below top1 6.852" in err


def test_a_declared_recipe_is_usable_by_a_catalogue_model(tmp_path):
    from evaluator.baselines import load_baselines

    path = tmp_path / "baselines.yaml"
    path.write_text(DEFAULT_BASELINES.read_text().replace("recipes: {}\n", DECLARED.lstrip("\n"), 1)
                    .replace("    recipe: resnet50_pytorch\n", "    recipe: inception_torch\n", 1))
    baselines = load_baselines(path)
    recipe = baselines.recipe(baselines.models["resnet50_pytorch"].files["float"].recipe)
    assert (recipe.name, recipe.mean, recipe.scale) == ("inception_torch", (0.498,) * 3, 1 / 255)


def test_the_schema_and_the_parser_know_the_same_keys():
    from evaluator import baselines, models

    schema = load_schema()
    defs = schema["$defs"]
    model_keys = models._MODEL_KEYS | getattr(models, "_OPTIONAL_MODEL_KEYS", set())
    assert set(schema["properties"]) == baselines._TOP_KEYS
    assert set(defs["model"]["properties"]) == model_keys
    assert set(defs["model"]["required"]) == models._MODEL_KEYS
    assert set(defs["file"]["properties"]) == models._FILE_KEYS
    assert set(defs["source"]["properties"]) == baselines._SOURCE_KEYS
    assert set(defs["expected"]["properties"]) == baselines._ENTRY_KEYS
    assert set(defs["measured"]["properties"]) == baselines._MEASURED_KEYS
