"""Recipes: validation with the offending key and its line, pools, fingerprint, schema."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from skyeye_data.cli import app
from skyeye_data.compile.recipe import RecipeError, load_recipe, parse_recipe
from skyeye_data.compile.templates import DEFAULT_POOLS, TemplatePools, stable_index

PROJECT = Path(__file__).resolve().parents[1]

GOOD = """\
name: t
seed: 3
sources:
  rsicd:
    builders: [caption]
  dior_rsvg:
    builders:
      refer: {}
      identify:
"""


def _error(text: str) -> str:
    with pytest.raises(RecipeError) as info:
        parse_recipe(textwrap.dedent(text), "r.yaml")
    return str(info.value)


def test_good_recipe_parses_with_shorthands():
    recipe = parse_recipe(GOOD)
    assert list(recipe.sources["rsicd"].builders) == ["caption"]
    assert list(recipe.sources["dior_rsvg"].builders) == ["refer", "identify"]
    assert recipe.sources["dior_rsvg"].builders["identify"].frames == 4  # defaults filled in


def test_typo_in_source_spec_names_key_and_line():
    message = _error(GOOD.replace("  rsicd:\n    builders: [caption]", "  rsicd:\n    bulders: [caption]"))
    assert "r.yaml:5" in message and "sources.rsicd.bulders" in message and "unknown key" in message


def test_typo_in_builder_options_names_key_and_line():
    message = _error(GOOD.replace("      refer: {}", "      refer: {frams: 4}"))
    assert "r.yaml:8" in message and "sources.dior_rsvg.builders.refer.frams" in message


def test_bad_value_names_key_and_line():
    message = _error(GOOD.replace("seed: 3", "seed: three"))
    assert "r.yaml:2" in message and "seed" in message


def test_unknown_source_and_builder_and_task_mismatch_are_named_with_lines():
    text = GOOD + "  rsicdd:\n    builders: [caption]\n  rsvqa_lr:\n    builders: [refer]\n  rsvg:\n    builders: [refre]\n"
    message = _error(text)
    assert "r.yaml:10: sources.rsicdd: unknown source" in message
    assert "r.yaml:13: sources.rsvqa_lr.builders.refer" in message and "grounding records" in message
    assert "r.yaml:15: sources.rsvg.builders.refre: unknown builder" in message


def test_template_pool_problems_are_reported():
    message = _error(GOOD + "templates:\n  vqa:\n    - 'answer this: {questoin}'\n  refer: ['[refer] {expression}']\n")
    assert "templates.vqa.0" in message and "{question}" in message
    assert "templates.refer.0" in message and "identifier" in message


def test_duplicate_key_is_an_error_with_its_line():
    message = _error(GOOD + "  rsicd:\n    builders: [caption]\n")
    assert "r.yaml:10: sources.rsicd: key given twice" in message


def test_yaml_syntax_error_and_non_mapping():
    assert "not valid YAML" in _error("name: [unclosed\n")
    assert "YAML mapping" in _error("- just\n- a list\n")


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(RecipeError, match="cannot read recipe"):
        load_recipe(tmp_path / "nope.yaml")


def test_fingerprint_is_stable_and_sensitive():
    a, b = parse_recipe(GOOD), parse_recipe("# a comment\n" + GOOD)
    assert a.fingerprint() == b.fingerprint()  # formatting does not matter, content does
    assert parse_recipe(GOOD.replace("seed: 3", "seed: 4")).fingerprint() != a.fingerprint()


def test_demo_recipe_is_valid():
    recipe = load_recipe(PROJECT / "recipes" / "demo.yaml")
    assert recipe.sources["capera"].builders["caption"].frames == 4


def test_template_choice_is_deterministic_and_spread():
    pools = TemplatePools({}, seed=0)
    ids = [f"id{i}" for i in range(200)]
    first = [pools.instruction("caption", "caption", i) for i in ids]
    assert first == [TemplatePools({}, seed=0).instruction("caption", "caption", i) for i in ids]
    assert len(set(first)) == len(DEFAULT_POOLS["caption"])  # every phrasing gets used
    assert all(text.startswith("[caption] ") for text in first)
    assert [stable_index(1, i, 7) for i in ids] != [stable_index(0, i, 7) for i in ids]  # the seed matters


def test_recipe_schema_command_prints_json_schema():
    result = CliRunner().invoke(app, ["recipe", "schema"])
    assert result.exit_code == 0, result.output
    schema = json.loads(result.stdout)
    assert "sources" in schema["properties"] and schema["additionalProperties"] is False


def test_recipe_check_command_reports_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(GOOD.replace("seed: 3", "sed: 3"))
    result = CliRunner().invoke(app, ["recipe", "check", str(path)])
    assert result.exit_code == 2
    assert "bad.yaml:2" in result.output and "sed" in result.output
