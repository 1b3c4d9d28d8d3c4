"""Recipes: validation with the offending key and its line, pools, fingerprint, schema."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from skyeye_data.cli import app
from skyeye_data.compile.builders import RECORD_BUILDERS
from skyeye_data.compile.recipe import RecipeError, load_recipe, parse_recipe
from skyeye_data.compile.templates import DEFAULT_POOLS, TemplatePools, stable_index
from skyeye_data.sources import all_sources

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


def test_demo_recipe_is_valid_and_means_what_its_yaml_says():
    path = PROJECT / "recipes" / "demo.yaml"
    recipe, raw = load_recipe(path), yaml.safe_load(path.read_text())
    assert recipe.sources["capera"].builders["caption"].frames == 4
    assert (recipe.name, recipe.seed, recipe.shard_size, recipe.max_side) == (raw["name"], raw["seed"], raw["shard_size"], raw["max_side"])
    assert recipe.leak_guard == "all" and not recipe.dedupe  # the defaults: every eval image kept out, no dedupe
    assert list(recipe.sources) == list(raw["sources"])  # the recipe's order is the build's order
    for name, spec in recipe.sources.items():
        given = (raw["sources"][name] or {}).get("builders", [])  # `era: {}`: read only by a mix
        assert list(spec.builders) == (given if isinstance(given, list) else list(given)), name
        # every builder reads the kind of records the source gives
        assert all(all_sources()[name].task in RECORD_BUILDERS[b].record_tasks for b in spec.builders), name
        assert spec.expected == (raw["sources"][name] or {}).get("expected"), name
    assert all(spec.subsets == (raw["sources"][n] or {}).get("subsets") for n, spec in recipe.sources.items())
    for name, mix in recipe.mixes.items():
        assert (mix.builder, mix.sources) == (raw["mixes"][name]["builder"], raw["mixes"][name]["sources"]), name
        assert set(mix.sources) <= set(recipe.sources)
    # the same text gives the same fingerprint; a changed option another
    assert parse_recipe(path.read_text()).fingerprint() == recipe.fingerprint()
    assert parse_recipe(path.read_text().replace("seed: 0", "seed: 1")).fingerprint() != recipe.fingerprint()


def test_leak_guard_scope_and_its_boolean_aliases():
    base = "name: x\nsources: {rsicd: {builders: [caption]}}\n"
    assert parse_recipe(base).leak_guard == "all"
    for given, scope in (("true", "all"), ("false", "within_source"), ("benchmarks", "benchmarks"), ("within_source", "within_source")):
        assert parse_recipe(f"leak_guard: {given}\n" + base).leak_guard == scope, given
    with pytest.raises(RecipeError, match=r"<recipe>:1: leak_guard: Input should be 'within_source', 'benchmarks' or 'all'"):
        parse_recipe("leak_guard: everywhere\n" + base)


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
