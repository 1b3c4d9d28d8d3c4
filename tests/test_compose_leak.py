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


def test_leak_guard_scope_decides_and_every_overlap_is_reported(mini_raw_root, tmp_path):
    """One RSICD train image holds a UCM test image's bytes (another source), another an RSICD test
    image's (its own source): `all` keeps both out, `benchmarks` only the cross-source one (UCM is
    an evaluated benchmark), `within_source` neither -- and what a scope lets in is reported."""
    raw = tmp_path / "raw"
    copy_sources(mini_raw_root, raw, "ucm_captions", "rsicd")
    text = "name: scope\nleak_guard: {scope}\nsources:\n  ucm_captions: {{builders: [caption]}}\n  rsicd: {{builders: [caption]}}\n"
    plain = build(parse_recipe(text.format(scope="all")), raw, tmp_path / "plain")
    ucm_test = next(r for r in records(plain.out, "ucm_captions") if r.split == "test")
    rsicd_test = next(r for r in records(plain.out, "rsicd") if r.split == "test")
    cross, own = [r for r in records(plain.out, "rsicd") if r.split == "train"][:2]
    overwrite_image(raw / "rsicd" / cross.image_path, raw / "ucm_captions" / ucm_test.image_path)
    overwrite_image(raw / "rsicd" / own.image_path, raw / "rsicd" / rsicd_test.image_path)
    expected = {  # scope -> (kept out, reported as an overlap let into training)
        "all": ({"ucm_captions test": 1, "rsicd test": 1}, {}),
        "benchmarks": ({"ucm_captions test": 1}, {"rsicd test": 1}),
        "within_source": ({}, {"ucm_captions test": 1, "rsicd test": 1}),
    }
    for scope, (kept_out, overlap) in expected.items():
        result = build(parse_recipe(text.format(scope=scope)), raw, tmp_path / scope)
        rsicd = result.sources["rsicd"]
        assert (dict(rsicd.leak_guard), dict(rsicd.eval_overlap)) == (kept_out, overlap), scope
        assert rsicd.balanced and not result.sources["ucm_captions"].eval_overlap, scope
        manifest = json.loads((result.out / "manifest.json").read_text())
        assert manifest["leak_guard"] == scope
        assert manifest["counts"]["eval_overlap"] == ({"rsicd": overlap} if overlap else {})
        card = (result.out / "README.md").read_text()
        assert f"Scope `{scope}`" in card and all(f"| rsicd | {where} | 1 |" in card for where in overlap), scope
        trained = {i for s in samples_of(result.out) for i in s["image_ids"]}
        assert (ucm_test.image_sha256 in trained) == ("ucm_captions test" in overlap), scope
        assert (rsicd_test.image_sha256 in trained) == ("rsicd test" in overlap), scope


def test_ucm_test_images_stay_out_of_rsivqa_and_ucm_conversa(mini_raw_root, tmp_path):
    """RSIVQA asks questions of UCM val/test images: they take UCM's split (from ucm_captions/), so they
    never train, and no UCM val/test image reaches a training sample, single-task or dialog; without
    UCM's caption file the split is unknown and every UCM question is quarantined, none trained."""
    raw = tmp_path / "raw"
    copy_sources(mini_raw_root, raw, "rsivqa", "ucm_captions")
    text = """\
name: leak
sources:
  ucm_captions: {builders: [caption]}
  rsivqa: {builders: [vqa]}
mixes:
  ucm_conversa: {builder: conversa, sources: [ucm_captions, rsivqa], options: {turns: [caption, vqa]}}
"""
    result = build(parse_recipe(text), raw, tmp_path / "out")
    out = result.out
    ucm_eval = {r.image_key: r for r in records(out, "ucm_captions") if r.split != "train"}
    on_eval_images = [r for r in records(out, "rsivqa") if r.subset == "UCM" and r.image_key in ucm_eval]
    assert on_eval_images, "the mini corpus must ask RSIVQA questions of some UCM val/test image"
    assert all(r.split == ucm_eval[r.image_key].split for r in on_eval_images)  # UCM's split, never train
    samples = samples_of(out)
    used = {rid for s in samples for rid in json.loads(s["provenance"])["record_ids"]}
    assert not used & {r.record_id for r in on_eval_images}
    eval_hashes = {r.image_sha256 for r in ucm_eval.values()}
    assert not eval_hashes & {i for s in samples for i in s["image_ids"]}
    assert [s for s in samples if s["source"] == "ucm_conversa"], "UCM train images still get their dialogs"
    assert result.sources["rsivqa"].balanced and not result.sources["rsivqa"].eval_overlap

    shutil.move(raw / "ucm_captions", raw / "ucm_moved")  # RSIVQA finds no UCM caption file now
    moved = build(parse_recipe(text.replace("{builders: [caption]}", "{raw: ucm_moved, builders: [caption]}", 1)), raw, tmp_path / "moved")
    assert not [r for r in records(moved.out, "rsivqa") if r.subset == "UCM"]
    unknown = [q for q in quarantine(moved.out) if q["source"] == "rsivqa" and q["reason"].startswith("split unknown")]
    assert unknown and all(q["level"] == "record" and not q.get("deliberate") for q in unknown)
    assert moved.sources["rsivqa"].balanced


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


def test_dedupe_key_ignores_the_drawn_phrasing_not_the_payload(tmp_path):
    """The builder hands the payload on with the draft; dedupe compares it, never the drawn phrasing."""
    from types import SimpleNamespace

    from skyeye_data.compile.builders import BuilderContext
    from skyeye_data.compile.options import BuilderOptions
    from skyeye_data.compile.stages.dedupe import SampleDigests
    from skyeye_data.compile.templates import TemplatePools

    pools = TemplatePools({}, 0)
    ctx = BuilderContext("rsvqa_lr", "vqa", tmp_path, BuilderOptions(), pools)
    provenance = SimpleNamespace(raw_file="q.json", raw_line=None, raw_index=0)

    def draft(index: int, task: str, pool: str, answer: str, image: str = "img1", **fields: str):
        record = SimpleNamespace(record_id=f"r{index}", source="rsvqa_lr", image_path=f"{image}.png", media="image",
                                 image_sha256=None, provenance=provenance)  # fmt: skip
        made = ctx.sample(record, index, task, pool, answer, **fields)
        return made.row("train", [image]), made.instruction_keys

    # two drafts of one question whose drawn phrasings differ: the same sample for dedupe
    phrasings = {}
    for index in range(40):
        row, keys = draft(index, "vqa", "vqa", "yes", question="Is it urban?")
        phrasings.setdefault(row["conversation"][0]["content"], (row, keys))
    assert len(phrasings) == 2  # both templates of the vqa pool were drawn
    (first, first_keys), (second, second_keys) = phrasings.values()
    assert first_keys == second_keys == ("[vqa]\x1eIs it urban?",)
    seen = SampleDigests()
    assert seen.first_time(first, first_keys)
    assert not seen.first_time(second, second_keys)
    assert seen.first_time(*draft(0, "vqa", "vqa", "no", question="Is it urban?"))  # another answer
    assert seen.first_time(*draft(0, "vqa", "vqa", "yes", question="Is it rural?"))  # another question
    assert seen.first_time(*draft(0, "vqa", "vqa", "yes", image="img2", question="Is it urban?"))  # another image
    # a question that happens to contain a template's literal text is still its own payload
    tricky = "Based on the image, respond to this question with a short answer: Is it urban?"
    assert seen.first_time(*draft(0, "vqa", "vqa", "yes", question=tricky))
    captions = {draft(i, "caption", "caption", "A road.")[0]["conversation"][0]["content"] for i in range(20)}
    assert len(captions) > 1
    assert seen.first_time(*draft(0, "caption", "caption", "A road."))
    assert not seen.first_time(*draft(7, "caption", "caption", "A road."))
    assert seen.first_time(*draft(0, "refer", "refer", "{<1><2><3><4>}", expression="the red car"))
    assert not seen.first_time(*draft(3, "refer", "refer", "{<1><2><3><4>}", expression="the red car"))
    assert seen.first_time(*draft(0, "refer", "refer", "{<1><2><3><4>}", expression="the blue car"))
