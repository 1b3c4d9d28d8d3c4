"""A compile unit runs with the cyclic garbage collector paused, and hands it back running --
after a unit that compiled, and after one that failed -- with the cycles it left collected."""

from __future__ import annotations

import dataclasses
import gc
from pathlib import Path

import pytest
import yaml

from skyeye_data.compile import builders
from skyeye_data.compile.build import build
from skyeye_data.compile.recipe import parse_recipe

DEMO = Path(__file__).resolve().parents[1] / "recipes" / "demo.yaml"


def ucm_only():
    data = yaml.safe_load(DEMO.read_text())
    data.pop("mixes", None)
    data["sources"] = {"ucm_captions": data["sources"]["ucm_captions"]}
    return parse_recipe(yaml.safe_dump(data, sort_keys=False))


def test_the_collector_is_paused_in_a_unit_and_running_after_it(mini_raw_root, tmp_path, monkeypatch):
    seen = []
    caption = builders.RECORD_BUILDERS["caption"]
    original = caption.fn

    def noting(record, ctx):
        seen.append(gc.isenabled())
        return original(record, ctx)

    monkeypatch.setitem(builders.RECORD_BUILDERS, "caption", dataclasses.replace(caption, fn=noting))
    assert gc.isenabled()
    result = build(ucm_only(), mini_raw_root, tmp_path / "out", jobs=1)
    assert result.sources["ucm_captions"].compiled > 0
    assert seen and not any(seen)  # every record compiled with the collector paused
    assert gc.isenabled()


def test_a_failing_unit_still_hands_the_collector_back(mini_raw_root, tmp_path, monkeypatch):
    caption = builders.RECORD_BUILDERS["caption"]

    def failing(record, ctx):
        raise RuntimeError("builder bug")

    monkeypatch.setitem(builders.RECORD_BUILDERS, "caption", dataclasses.replace(caption, fn=failing))
    with pytest.raises(RuntimeError, match="builder bug"):
        build(ucm_only(), mini_raw_root, tmp_path / "out", jobs=1)
    assert gc.isenabled()
