"""Leak guard across sources (by image key and by content hash) and the optional dedupe.

Each test builds a leaking raw root from the mini corpus -- the same image in a val/test split of
one source and in the train split of another -- and asserts that the image reaches no training
sample, single-task or mix, and that the exclusion is counted per source.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq

from skyeye_data.compile.build import build
from skyeye_data.compile.recipe import parse_recipe
from skyeye_data.convert import read_records
from skyeye_data.sources.base import probe_image


def samples_of(out: Path) -> list[dict]:
    return [r for p in sorted((out / "samples").glob("*.parquet")) for r in pq.read_table(p).to_pylist()]


def records(out: Path, source: str) -> list:
    return list(read_records(out / "records" / f"{source}.parquet"))


def quarantine(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "quarantine.jsonl").read_text().splitlines()]


def overwrite_image(target: Path, source: Path) -> None:
    target.write_bytes(source.read_bytes())
    probe_image.cache_clear()  # the converters' header/hash cache is keyed by path: this path now holds other bytes


def copy_sources(mini: Path, raw: Path, *names: str) -> None:
    for name in names:
        shutil.copytree(mini / name, raw / name)


def test_same_image_under_another_name_is_caught_by_content_hash(mini_raw_root, tmp_path):
    """An RSICD train image holding the bytes of a UCM test image (another name, another family)."""
    raw = tmp_path / "raw"
    copy_sources(mini_raw_root, raw, "ucm_captions", "rsicd")
    recipe = parse_recipe("name: leak\nsources:\n  ucm_captions: {builders: [caption]}\n  rsicd: {builders: [caption]}\n")
    clean = build(recipe, raw, tmp_path / "clean")
    ucm_test = next(r for r in records(clean.out, "ucm_captions") if r.split == "test")
    rsicd_train = next(r for r in records(clean.out, "rsicd") if r.split == "train")
    assert ucm_test.image_key.split(":")[1] != rsicd_train.image_key.split(":")[1]
    assert not clean.sources["rsicd"].leak_guard

    overwrite_image(raw / "rsicd" / rsicd_train.image_path, raw / "ucm_captions" / ucm_test.image_path)
    result = build(recipe, raw, tmp_path / "out")
    rsicd = result.sources["rsicd"]
    assert dict(rsicd.leak_guard) == {"ucm_captions test": 1} and rsicd.balanced
    guarded = [q for q in quarantine(result.out) if q["stage"] == "leak_guard"]
    assert [q["record_id"] for q in guarded] == [rsicd_train.record_id]
    assert "ucm_captions test" in guarded[0]["reason"]
    assert ucm_test.image_sha256 not in {i for s in samples_of(result.out) for i in s["image_ids"]}
    assert sum(rsicd.samples.values()) == sum(clean.sources["rsicd"].samples.values()) - len(rsicd_train.captions)
    manifest = json.loads((result.out / "manifest.json").read_text())
    assert manifest["sources"]["rsicd"]["leak_guard_excluded"] == {"ucm_captions test": 1}
    assert manifest["counts"]["leak_guard_excluded"] == {"rsicd": 1}


def test_ucm_test_images_stay_out_of_rsivqa_and_ucm_conversa(mini_raw_root, tmp_path):
    """RSIVQA without UCM's split file calls every UCM question train; the guard must catch the test ones."""
    raw = tmp_path / "raw"
    copy_sources(mini_raw_root, raw, "rsivqa")
    shutil.copytree(mini_raw_root / "ucm_captions", raw / "ucm_moved")  # rsivqa looks for RAW/ucm_captions: gone
    for image in (raw / "ucm_moved" / "images").glob("*.tif"):  # RSIVQA's own copy of the images, same bytes
        if (raw / "rsivqa" / "UCM" / "images" / image.name).exists():
            shutil.copyfile(image, raw / "rsivqa" / "UCM" / "images" / image.name)
    text = """\
name: leak
sources:
  ucm_captions: {raw: ucm_moved, builders: [caption]}
  rsivqa: {builders: [vqa]}
mixes:
  ucm_conversa: {builder: conversa, sources: [ucm_captions, rsivqa], options: {turns: [caption, vqa]}}
"""
    result = build(parse_recipe(text), raw, tmp_path / "out")
    out = result.out
    ucm_eval = {r.image_key: r for r in records(out, "ucm_captions") if r.split != "train"}
    rsivqa_ucm = [r for r in records(out, "rsivqa") if r.subset == "UCM"]
    assert all(r.split == "train" and "split_not_official" in r.flags for r in rsivqa_ucm)
    leaking = {r.record_id for r in rsivqa_ucm if r.image_key in ucm_eval}
    assert leaking, "the mini corpus must ask RSIVQA questions of some UCM val/test image"
    assert sum(result.sources["rsivqa"].leak_guard.values()) == len(leaking)
    guarded = {q["record_id"] for q in quarantine(out) if q["stage"] == "leak_guard"}
    assert guarded == leaking

    samples = samples_of(out)
    used = {rid for s in samples for rid in json.loads(s["provenance"])["record_ids"]}
    assert not used & leaking
    eval_hashes = {r.image_sha256 for r in ucm_eval.values()}
    assert not eval_hashes & {i for s in samples for i in s["image_ids"]}
    dialogs = [s for s in samples if s["source"] == "ucm_conversa"]
    assert dialogs, "UCM train images still get their dialogs"


def test_dota_val_images_stay_out_of_dota_conversa(mini_raw_root, tmp_path):
    """A DOTA train image file replaced by the bytes of a val image: its record and its questions leave training."""
    raw = tmp_path / "raw"
    copy_sources(mini_raw_root, raw, "dota", "rsivqa")
    text = """\
name: leak
sources:
  dota: {}
  rsivqa: {builders: [vqa]}
mixes:
  dota_conversa: {builder: conversa, sources: [dota, rsivqa], options: {turns: [vqa, detection]}}
"""
    clean = build(parse_recipe(text), raw, tmp_path / "clean")
    dota = records(clean.out, "dota")
    val = next(r for r in dota if r.split == "val")
    victim = next(r for r in dota if r.split == "train" and r.width == val.width and r.height == val.height)
    questions = [r for r in records(clean.out, "rsivqa") if r.image_key == victim.image_key]
    assert questions and any(json.loads(s["provenance"])["record_ids"][0] == victim.record_id for s in samples_of(clean.out))

    overwrite_image(raw / "dota" / victim.image_path, raw / "dota" / val.image_path)
    result = build(parse_recipe(text), raw, tmp_path / "out")
    assert dict(result.sources["dota"].leak_guard) == {"dota val": 1}
    assert sum(result.sources["rsivqa"].leak_guard.values()) == len(questions)
    samples = samples_of(result.out)
    dialogs = [s for s in samples if s["source"] == "dota_conversa"]
    assert dialogs and sum(result.mixes["dota_conversa"].samples.values()) == sum(clean.mixes["dota_conversa"].samples.values()) - 1
    assert val.image_sha256 not in {i for s in samples for i in s["image_ids"]}
    assert victim.record_id not in {rid for s in dialogs for rid in json.loads(s["provenance"])["record_ids"]}


def test_dedupe_drops_repeated_captions_and_counts_them(mini_raw_root, tmp_path):
    text = "name: dedupe\n{dedupe}sources:\n  rsicd: {{builders: [caption]}}\n  ucm_captions: {{builders: [caption]}}\n"
    kept = build(parse_recipe(text.format(dedupe="")), mini_raw_root, tmp_path / "kept")
    deduped = build(parse_recipe(text.format(dedupe="dedupe: true\n")), mini_raw_root, tmp_path / "deduped")
    for source in ("rsicd", "ucm_captions"):
        train = [r for r in records(kept.out, source) if r.split == "train"]
        all_captions = sum(len(r.captions) for r in train)
        distinct = sum(len({c.strip() for c in r.captions}) for r in train)
        assert sum(kept.sources[source].samples.values()) == all_captions
        assert sum(deduped.sources[source].samples.values()) == distinct
        assert sum(deduped.sources[source].duplicates.values()) == all_captions - distinct
    assert sum(deduped.manifest["sources"]["rsicd"]["duplicates_dropped"].values()) > 0
    assert deduped.manifest["counts"]["duplicates_dropped"] == sum(
        sum(deduped.sources[s].duplicates.values()) for s in ("rsicd", "ucm_captions")
    )
    assert kept.manifest["counts"]["duplicates_dropped"] == 0
    # what is left has no repeated (image, caption) pair
    pairs = [(tuple(s["image_ids"]), s["conversation"][1]["content"]) for s in samples_of(deduped.out)]
    assert len(pairs) == len(set(pairs))


def test_dedupe_key_ignores_the_drawn_phrasing_not_the_payload():
    from skyeye_data.compile.build import SampleDigests
    from skyeye_data.compile.templates import TemplatePools

    def row(user: str, answer: str, image: str = "img1") -> dict:
        return {"task": user.split("]")[0][1:], "image_ids": [image],
                "conversation": [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]}  # fmt: skip

    seen = SampleDigests(TemplatePools({}, 0))
    assert seen.first_time(row("[vqa] Is it urban?", "yes"))
    assert not seen.first_time(row("[vqa] Based on the image, respond to this question with a short answer: Is it urban?", "yes"))
    assert seen.first_time(row("[vqa] Is it urban?", "no"))  # another answer
    assert seen.first_time(row("[vqa] Is it rural?", "yes"))  # another question
    assert seen.first_time(row("[vqa] Is it urban?", "yes", image="img2"))  # another image
    assert seen.first_time(row("[caption] Briefly describe this image.", "A road."))
    assert not seen.first_time(row("[caption] A short image caption:", "A road."))
    assert seen.first_time(row("[refer] where is the red car ?", "{<1><2><3><4>}"))
    assert not seen.first_time(row("[refer] the red car", "{<1><2><3><4>}"))
    assert seen.first_time(row("[refer] the blue car", "{<1><2><3><4>}"))
