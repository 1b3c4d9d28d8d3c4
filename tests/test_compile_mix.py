"""Multi-source builders plug in without touching the pipeline: a Conversa-style join as proof."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from skyeye_data.boxes import format_boxes, format_phrase

from skyeye_data.compile.build import build
from skyeye_data.compile.builders import MIX_BUILDERS, BuildRejection, MixContext, mix_builder, payload_key
from skyeye_data.compile.recipe import RecipeError, parse_recipe

RECIPE = """\
name: mix
row_group_size: 8
sources:
  dior: {}
  dior_rsvg: {builders: [refer]}
mixes:
  dior_dialogs:
    builder: test_dior_dialog
    sources: [dior, dior_rsvg]
    expected: {conversation: 3}
"""

if "test_dior_dialog" not in MIX_BUILDERS:

    @mix_builder("test_dior_dialog")
    def dior_dialog(ctx: MixContext):
        """Per DIOR train image: the refer turn of a DIOR-RSVG expression, then a detection turn."""
        expressions = {}  # image_key -> (record, expression): small, one entry per image
        for record in ctx.records("dior_rsvg"):
            expressions.setdefault(record.image_key, record)
        for det in ctx.records("dior"):
            ref = expressions.get(det.image_key)
            if ref is None:
                yield BuildRejection("no DIOR-RSVG expression on this image", record=det)
                continue
            label = det.objects[0].label
            boxes = [o.box for o in det.objects if o.label == label]
            turns = [
                (f"[refer] {ref.expression}", format_boxes(ref.boxes, ref.width, ref.height)),
                (f"[detection] {label}", format_phrase(label, boxes, det.width, det.height)),
            ]
            yield ctx.sample([det, ref], 0, "conversation", turns, [payload_key("refer", ref.expression), payload_key("detection", label)])


def test_mix_builder_joins_sources_on_image_key(mini_raw_root, tmp_path: Path):
    result = build(parse_recipe(RECIPE), mini_raw_root, tmp_path)
    mix = result.mixes["dior_dialogs"]
    samples = [r for p in sorted((tmp_path / "samples").glob("*.parquet")) for r in pq.read_table(p).to_pylist()]
    dialogs = [s for s in samples if s["source"] == "dior_dialogs"]
    assert dialogs and len(dialogs) == sum(mix.samples.values())
    for dialog in dialogs:
        roles = [t["role"] for t in dialog["conversation"]]
        assert roles == ["user", "assistant", "user", "assistant"] and dialog["task"] == "conversation"
        assert dialog["conversation"][0]["content"].startswith("[refer] ")
        assert dialog["conversation"][2]["content"].startswith("[detection] ")
        provenance = json.loads(dialog["provenance"])
        assert provenance["sources"] == ["dior", "dior_rsvg"] and len(provenance["record_ids"]) == 2
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["mixes"]["dior_dialogs"]["samples_total"] == len(dialogs)
    assert manifest["counts"]["samples"]["dior_dialogs"]["conversation"]["train"] == len(dialogs)
    # the dior source itself has no builder: its records are held out, still counted
    assert manifest["sources"]["dior"]["balanced"] and manifest["sources"]["dior"]["compiled"] == 0
    quarantine = [json.loads(line) for line in (tmp_path / "quarantine.jsonl").read_text().splitlines()]
    assert sum(1 for q in quarantine if q.get("mix") == "dior_dialogs") == mix.quarantined


def test_unknown_mix_builder_is_a_recipe_error():
    with pytest.raises(RecipeError, match=r"<recipe>:8: mixes.dior_dialogs.builder: unknown multi-source builder"):
        parse_recipe(RECIPE.replace("test_dior_dialog", "nope"))
