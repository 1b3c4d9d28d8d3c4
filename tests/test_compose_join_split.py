"""Conversa ``join_split``: which split a joined record may come from (DIOR-Conversa's paper construction).

DIOR-RSVG splits per object, so its train expressions sit on DIOR val/test images. The raw root here
is the mini corpus with every DIOR-RSVG object moved into train.txt: images 4-6 are then DIOR-RSVG
train images whose DIOR record is val (4) or test (5, 6); image 6 holds one object only, so without
its DIOR detection it cannot make a two-task dialog.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from skyeye_data.compile.build import build
from skyeye_data.compile.recipe import parse_recipe
from skyeye_data.convert import read_records

RECIPE = """\
name: join
leak_guard: {scope}
sources:
  dior_rsvg: {{}}
  dior: {{}}
mixes:
  dior_conversa:
    builder: conversa
    sources: [dior_rsvg, dior]
    options: {{turns: [refer, identify, detection], min_turns: 2, max_turns: 4{extra}}}
"""


@pytest.fixture(scope="module")
def raw(mini_raw_root, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("join-raw")
    for name in ("dior_rsvg", "dior"):
        shutil.copytree(mini_raw_root / name, root / name)
    indices = sorted(int(line) for split in ("train", "val", "test") for line in (root / "dior_rsvg" / f"{split}.txt").read_text().split())
    (root / "dior_rsvg" / "train.txt").write_text("".join(f"{i}\n" for i in indices))
    for split in ("val", "test"):
        (root / "dior_rsvg" / f"{split}.txt").write_text("")
    return root


def build_with(raw: Path, out: Path, scope: str, join_split: str | None):
    extra = f", join_split: {join_split}" if join_split else ""
    return build(parse_recipe(RECIPE.format(scope=scope, extra=extra)), raw, out)


def dialogs(out: Path) -> dict[str, dict]:
    """image_key of the dialog's image -> the dialog sample (one dialog per image)."""
    rsvg = {r.record_id: r for r in read_records(out / "records" / "dior_rsvg.parquet")}
    found = {}
    for path in sorted((out / "samples").glob("*.parquet")):
        for sample in pq.read_table(path).to_pylist():
            provenance = json.loads(sample["provenance"])
            key = rsvg[provenance["record_ids"][0]].image_key
            assert key not in found
            found[key] = sample | {"provenance": provenance}
    return found


def dior_splits(out: Path) -> dict[str, str]:
    return {r.image_key: r.split for r in read_records(out / "records" / "dior.parquet")}


def test_join_split_train_joins_only_dior_train_detection(raw, tmp_path):
    result = build_with(raw, tmp_path, "within_source", None)  # the default: train
    splits = dior_splits(tmp_path)
    found = dialogs(tmp_path)
    assert set(splits.values()) == {"train", "val", "test"}
    for key, dialog in found.items():
        kinds = {t["content"].split(" ", 1)[0] for t in dialog["conversation"] if t["role"] == "user"}
        assert "joined_eval" not in dialog["provenance"]
        if splits[key] != "train":
            assert "[detection]" not in kinds and "dior" not in dialog["provenance"]["sources"]
    lonely = [k for k in splits if k not in found]  # the one-object image on a DIOR test image
    assert len(lonely) == result.mixes["dior_conversa"].quarantined == 1 and splits[lonely[0]] == "test"


def test_join_split_any_joins_dior_detection_of_any_split_under_within_source(raw, tmp_path):
    result = build_with(raw, tmp_path, "within_source", "any")
    splits = dior_splits(tmp_path)
    found = dialogs(tmp_path)
    assert set(found) == set(splits) and result.mixes["dior_conversa"].quarantined == 0  # one dialog per image
    dior = {r.record_id: r for r in read_records(tmp_path / "records" / "dior.parquet")}
    eval_joined = 0
    for key, dialog in found.items():
        provenance = dialog["provenance"]
        joined = [dior[r] for s, r in zip(provenance["sources"], provenance["record_ids"]) if s == "dior"]
        assert all(r.image_key == key for r in joined)
        eval_splits = sorted({f"dior {r.split}" for r in joined if r.split != "train"})
        assert provenance.get("joined_eval", []) == eval_splits  # every val/test record joined is listed
        eval_joined += bool(eval_splits)
    assert eval_joined >= 1
    # the one-object image on a DIOR test image: its dialog needs that image's DIOR detection
    objects = Counter(r.image_key for r in read_records(tmp_path / "records" / "dior_rsvg.parquet"))
    lonely = next(k for k in splits if splits[k] == "test" and objects[k] == 1)
    kinds = [t["content"].split(" ", 1)[0] for t in found[lonely]["conversation"] if t["role"] == "user"]
    assert "[detection]" in kinds and found[lonely]["provenance"]["joined_eval"] == ["dior test"]


@pytest.mark.parametrize("scope", ["benchmarks", "all"])
def test_join_split_any_keeps_joined_eval_records_out_under_the_other_scopes(raw, tmp_path, scope):
    plain = build_with(raw, tmp_path / "train", scope, "train")
    joined = build_with(raw, tmp_path / "any", scope, "any")
    assert {k: d["conversation"] for k, d in dialogs(tmp_path / "any").items()} == {
        k: d["conversation"] for k, d in dialogs(tmp_path / "train").items()
    }
    assert not any("joined_eval" in d["provenance"] for d in dialogs(tmp_path / "any").values())
    assert joined.mixes["dior_conversa"].quarantined == plain.mixes["dior_conversa"].quarantined
    if scope == "benchmarks":  # DIOR is no evaluated benchmark: DIOR-RSVG trains on its test images, unjoined
        assert joined.mixes["dior_conversa"].quarantined == 1
