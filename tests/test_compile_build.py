"""`skyeye build` over the synthetic mini corpus: layout, determinism, known samples, counts, crash safety."""

from __future__ import annotations

import hashlib
import json
import math
from collections import Counter
from fractions import Fraction
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from skyeye_data.compile import shards
from skyeye_data.compile.build import BuildError, build
from skyeye_data.compile.phrases import readable_class
from skyeye_data.compile.recipe import load_recipe, parse_recipe
from skyeye_data.convert import read_records

PROJECT = Path(__file__).resolve().parents[1]
DEMO = PROJECT / "recipes" / "demo.yaml"
FINAL_GLOBS = ("samples/*.parquet", "images/*.parquet", "eval/*.parquet", "manifest.json", "README.md", "LICENSE.md", "quarantine.jsonl")


def demo_recipe(**changes):
    data = yaml.safe_load(DEMO.read_text())
    if "sources" in changes:
        data.pop("mixes", None)  # the demo's mixes read sources a replaced list may lack
    data.update(changes)
    return parse_recipe(yaml.safe_dump(data, sort_keys=False))


@pytest.fixture(scope="module")
def built(mini_raw_root, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("build")
    build(load_recipe(DEMO), mini_raw_root, out)
    return out


def rows(paths) -> list[dict]:
    return [row for path in sorted(paths) for row in pq.read_table(path).to_pylist()]


def samples_of(out: Path) -> list[dict]:
    return rows((out / "samples").glob("*.parquet"))


def output_hashes(out: Path) -> dict[str, str]:
    return {
        p.relative_to(out).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for pattern in FINAL_GLOBS
        for p in out.glob(pattern)
    }


def box_tokens(box, width, height) -> str:
    """Written out independently of skyeye_data.boxes: v/side*100 rounded half up, clamped."""
    values = [box[0] / Fraction(1) * 100 / width, box[1] * Fraction(100) / height,
              Fraction(box[2]) * 100 / width, Fraction(box[3]) * 100 / height]  # fmt: skip
    return "{" + "".join(f"<{min(100, max(0, math.floor(v + Fraction(1, 2))))}>" for v in values) + "}"


def first_train_record(out: Path, source: str):
    return next(r for r in read_records(out / "records" / f"{source}.parquet") if r.split == "train")


def samples_from(samples: list[dict], source: str, record_id: str) -> list[dict]:
    return [s for s in samples if s["source"] == source and record_id in json.loads(s["provenance"])["record_ids"]]


# -- layout and contracts ------------------------------------------------------------------------


def test_layout_and_shard_names(built):
    names = sorted(p.name for p in (built / "samples").glob("*.parquet"))
    assert names and all(n.startswith("train-") and n.endswith(f"-of-{len(names):05d}.parquet") for n in names)
    assert [int(n.split("-")[1]) for n in names] == list(range(len(names)))
    assert (built / "manifest.json").is_file() and (built / "README.md").is_file() and (built / "quarantine.jsonl").is_file()
    assert not list(built.rglob(".*.tmp"))
    # row groups sized for random access (demo recipe: 16 rows)
    meta = pq.ParquetFile(sorted((built / "samples").glob("*.parquet"))[0]).metadata
    assert meta.num_row_groups > 1 and all(meta.row_group(i).num_rows <= 16 for i in range(meta.num_row_groups))


def test_datasets_loads_samples_and_images_unchanged(built):
    from datasets import load_dataset

    sample_files = sorted(str(p) for p in (built / "samples").glob("*.parquet"))
    image_files = sorted(str(p) for p in (built / "images").glob("*.parquet"))
    loaded = load_dataset("parquet", data_files=sample_files, split="train", cache_dir=str(built / "hf-cache"))
    assert loaded.to_list() == rows(sample_files)
    assert set(loaded.column_names) == {"id", "source", "task", "split", "image_ids", "conversation", "review_status", "provenance"}
    images = load_dataset("parquet", data_files=image_files, split="train", cache_dir=str(built / "hf-cache"))
    assert images.to_list() == rows(image_files)


def test_images_are_content_addressed_stored_once_and_complete(built):
    images = rows((built / "images").glob("*.parquet"))
    ids = [img["image_id"] for img in images]
    assert len(ids) == len(set(ids))
    for img in images:
        assert hashlib.sha256(img["bytes"]).hexdigest() == img["image_id"]
        assert img["width"] > 0 and img["height"] > 0 and img["format"]
    referenced = {i for s in samples_of(built) for i in s["image_ids"]}
    referenced |= {i for e in rows((built / "eval").glob("*.parquet")) for i in e["image_ids"]}
    assert referenced <= set(ids)
    # several samples share one image (captions of one image; questions of one image)
    uses = Counter(i for s in samples_of(built) for i in s["image_ids"])
    assert max(uses.values()) > 1


def test_max_side_downscales_large_images(built):
    recipe = load_recipe(DEMO)
    assert recipe.max_side
    for img in rows((built / "images").glob("*.parquet")):
        assert max(img["width"], img["height"]) <= recipe.max_side


def test_video_samples_reference_jpeg_frames_in_order(built):
    videos = [s for s in samples_of(built) if s["source"] == "capera"]
    assert videos, "the mini corpus has CapERA videos"
    formats = {img["image_id"]: img["format"] for img in rows((built / "images").glob("*.parquet"))}
    for sample in videos:
        assert len(sample["image_ids"]) == 4 and len(set(sample["image_ids"])) == 4
        assert {formats[i] for i in sample["image_ids"]} == {"JPEG"}
        assert sample["conversation"][0]["content"].startswith("[caption] ")


# -- known records, sample by sample ---------------------------------------------------------------


def test_caption_record_gives_one_sample_per_caption(built):
    samples = samples_of(built)
    for source in ("rsicd", "ucm_captions"):
        record = first_train_record(built, source)
        got = samples_from(samples, source, record.record_id)
        assert sorted(s["conversation"][1]["content"] for s in got) == sorted(c.strip() for c in record.captions)
        for s in got:
            user = s["conversation"][0]
            assert user["role"] == "user" and user["content"].startswith("[caption] ")
            assert s["task"] == "caption" and s["split"] == "train" and s["review_status"] == "not_required"


def test_vqa_record_sample_is_identifier_question_answer(built):
    samples = samples_of(built)
    record = first_train_record(built, "rsvqa_lr")
    (sample,) = samples_from(samples, "rsvqa_lr", record.record_id)
    user, answer = sample["conversation"]
    assert user["content"].startswith("[vqa] ") and user["content"].endswith(record.question.strip())
    assert answer == {"role": "assistant", "content": record.answer.strip()}
    # the paper's example is in the mini corpus, written exactly as DESIGN.md shows it
    pairs = {tuple(t["content"] for t in s["conversation"]) for s in samples if s["task"] == "vqa"}
    assert ("[vqa] Is it a rural or an urban area", "urban") in pairs


def test_refer_and_identify_box_tokens(built):
    samples = samples_of(built)
    for source in ("dior_rsvg", "rsvg"):
        record = first_train_record(built, source)
        tokens = "<delim>".join(box_tokens(b, record.width, record.height) for b in record.boxes)
        by_task = {s["task"]: s["conversation"] for s in samples_from(samples, source, record.record_id)}
        assert by_task["refer"][0]["content"].startswith("[refer] ")
        assert record.expression.strip() in by_task["refer"][0]["content"]
        assert by_task["refer"][1]["content"] == tokens
        assert by_task["identify"][0]["content"].startswith("[identify] ") and tokens in by_task["identify"][0]["content"]
        assert by_task["identify"][1]["content"] == record.expression.strip()


def test_detection_groups_all_boxes_of_a_class(built):
    samples = samples_of(built)
    for source in ("dior", "dota"):
        record = first_train_record(built, source)
        got = {s["conversation"][0]["content"]: s["conversation"][1]["content"] for s in samples_from(samples, source, record.record_id)}
        labels = list(dict.fromkeys(o.label for o in record.objects))
        assert len(got) == len(labels)
        for label in labels:
            boxes = [o.box for o in record.objects if o.label == label]
            phrase = readable_class(label)  # 'golffield' is written 'golf field'
            want = f"<p>{phrase}</p> " + "<delim>".join(box_tokens(b, record.width, record.height) for b in boxes)
            assert got[f"[detection] {phrase}"] == want


def test_angle_box_style(mini_raw_root, tmp_path):
    recipe = demo_recipe(box_style="angle", sources={"dior_rsvg": {"builders": ["refer"]}})
    build(recipe, mini_raw_root, tmp_path)
    record = first_train_record(tmp_path, "dior_rsvg")
    (sample,) = samples_from(samples_of(tmp_path), "dior_rsvg", record.record_id)
    assert sample["conversation"][1]["content"] == box_tokens(record.boxes[0], record.width, record.height).replace("{", "<").replace("}", ">")


# -- counts -----------------------------------------------------------------------------------------


def test_counts_add_up_per_source(built):
    manifest = json.loads((built / "manifest.json").read_text())
    samples = samples_of(built)
    assert manifest["balanced"] is True
    for name, s in manifest["sources"].items():
        if s["status"] != "built":
            continue
        records = sum(1 for _ in read_records(built / "records" / f"{name}.parquet"))
        assert s["records_in"] == records + s["converter_quarantined"]
        accounted = s["compiled"] + s["eval_records"] + sum(s["held_out"].values()) + sum(s["not_selected"].values()) + s["quarantined"]
        assert s["records_in"] == accounted, name
        assert s["samples_total"] == sum(1 for x in samples if x["source"] == name)
    quarantine = [json.loads(line) for line in (built / "quarantine.jsonl").read_text().splitlines()]
    assert all(q["reason"] and q["source"] and q["raw_file"] for q in quarantine)
    record_level = Counter(q["source"] for q in quarantine if q["level"] == "record" and not q.get("mix"))
    assert record_level == Counter({n: s["quarantined"] for n, s in manifest["sources"].items() if s["quarantined"]})
    assert manifest["counts"]["samples_total"] == len(samples)


def test_manifest_lists_every_output_with_its_sha256(built):
    manifest = json.loads((built / "manifest.json").read_text())
    on_disk = output_hashes(built)
    on_disk.pop("manifest.json")
    assert {k: v["sha256"] for k, v in manifest["files"].items()} == on_disk
    assert manifest["recipe"]["fingerprint"] == load_recipe(DEMO).fingerprint()


def test_demo_expected_counts_hold(built):
    from skyeye_data.compile.stats import compute_stats

    stats = compute_stats(built)
    assert stats["mismatches"] == []
    assert any(r["expected"] is not None for r in stats["rows"])


def test_caps_and_ratio_are_counted(mini_raw_root, tmp_path):
    recipe = demo_recipe(sources={"rsicd": {"builders": ["caption"], "max_samples": 7}, "rsvqa_lr": {"builders": ["vqa"], "ratio": 0.5}})
    result = build(recipe, mini_raw_root, tmp_path)
    rsicd, lr = result.sources["rsicd"], result.sources["rsvqa_lr"]
    assert sum(rsicd.samples.values()) == 7 and rsicd.not_selected["max_samples cap"] > 0 and rsicd.balanced
    assert 0 < lr.not_selected["ratio"] and sum(lr.samples.values()) > 0 and lr.balanced


# -- determinism and crash safety -------------------------------------------------------------------


def test_rebuild_is_identical_and_order_independent(built, mini_raw_root, tmp_path):
    again = tmp_path / "again"
    build(load_recipe(DEMO), mini_raw_root, again)
    assert output_hashes(again) == output_hashes(built)  # same bytes, shard for shard
    # the sources in reverse order: the same ids with the same contents
    data = yaml.safe_load(DEMO.read_text())
    data["sources"] = dict(reversed(list(data["sources"].items())))
    reordered = tmp_path / "reordered"
    build(parse_recipe(yaml.safe_dump(data, sort_keys=False)), mini_raw_root, reordered)
    by_id = {s["id"]: s for s in samples_of(built)}
    assert {s["id"]: s for s in samples_of(reordered)} == by_id


def test_killed_build_leaves_no_final_file_and_rerun_matches(built, mini_raw_root, tmp_path, monkeypatch):
    opened = []
    original = shards.ShardedParquetWriter._open_shard

    def dying_open(self, tmp):
        opened.append(tmp)
        if len(opened) > 3:
            raise KeyboardInterrupt("simulated kill")
        return original(self, tmp)

    monkeypatch.setattr(shards.ShardedParquetWriter, "_open_shard", dying_open)
    out = tmp_path / "killed"
    with pytest.raises(KeyboardInterrupt):
        build(load_recipe(DEMO), mini_raw_root, out)
    assert not output_hashes(out), "no file may appear under a final name"
    assert not list(out.rglob(".*.tmp"))
    monkeypatch.undo()
    build(load_recipe(DEMO), mini_raw_root, out)
    assert output_hashes(out) == output_hashes(built)


def test_stale_temporaries_of_a_hard_kill_are_cleared(built, mini_raw_root, tmp_path):
    out = tmp_path / "hard"
    (out / "samples").mkdir(parents=True)
    (out / "samples" / ".train-00000.parquet.99999.tmp").write_bytes(b"half a shard")
    (out / "samples" / "train-00007-of-00009.parquet").write_bytes(b"a shard of an older build")
    build(load_recipe(DEMO), mini_raw_root, out)
    assert output_hashes(out) == output_hashes(built)
    assert not list(out.rglob(".*.tmp"))


# -- sources present or absent, eval shards ----------------------------------------------------------


def test_missing_source_warns_and_require_all_fails(mini_raw_root, tmp_path):
    recipe = demo_recipe(sources={"rsicd": {"builders": ["caption"]}, "rsivqa": {"raw": "not-there"}})
    result = build(recipe, mini_raw_root, tmp_path / "a")
    assert result.sources["rsivqa"].status == "missing" and any("rsivqa" in w for w in result.warnings)
    assert sum(result.sources["rsicd"].samples.values()) > 0
    with pytest.raises(BuildError, match="rsivqa"):
        build(recipe, mini_raw_root, tmp_path / "b", require_all=True)


def test_strict_build_passes_selections_and_deliberate_exclusions(mini_raw_root, tmp_path):
    # the mini corpus has withdrawn RSVQA questions and images too poor for a dialog: neither is bad input
    result = build(load_recipe(DEMO), mini_raw_root, tmp_path / "out", strict=True)
    quarantine = [json.loads(line) for line in (tmp_path / "out" / "quarantine.jsonl").read_text().splitlines()]
    assert any(e.get("deliberate") for e in quarantine) and any(e["stage"] == "mix" for e in quarantine)
    assert result.manifest["balanced"]


def test_strict_build_stops_at_bad_input_and_writes_nothing(tmp_path):
    from skyeye_data.synth import synthesize_raw_root

    raw = tmp_path / "raw"
    synthesize_raw_root(raw, "mini", ["rsicd"], seed=0)
    missing = sorted((raw / "rsicd" / "RSICD_images").iterdir())[0]
    missing.unlink()
    recipe = demo_recipe(sources={"rsicd": {"builders": ["caption"]}})
    where = r"rsicd: (annotations_rsicd/)?dataset_rsicd.json\[\d+\]"
    with pytest.raises(BuildError, match=rf"--strict: {where}: image file not found: {missing.name}"):
        build(recipe, raw, tmp_path / "strict", strict=True)
    # not a file: no records, no shards, no manifest, no cache entry, no temporary left behind
    assert not [p for p in (tmp_path / "strict").rglob("*") if p.is_file()]
    relaxed = build(recipe, raw, tmp_path / "relaxed")
    assert relaxed.sources["rsicd"].quarantined == 1


def test_eval_shards_hold_val_test_records_with_references(built):
    manifest = json.loads((built / "manifest.json").read_text())
    eval_files = sorted((built / "eval").glob("*.parquet"))
    assert {p.name.rsplit("-", 2)[0] for p in eval_files} <= {"ucm_captions", "sydney_captions", "rsicd", "rsvqa_lr", "rsvqa_hr", "dior_rsvg", "rsvg", "capera"}
    items = rows(eval_files)
    assert len(items) == sum(s["eval_records"] for s in manifest["sources"].values())
    for item in items:
        assert item["split"] in ("val", "test") and item["references"]
        assert item["conversation"][1]["content"] == item["references"][0]
        assert item["width"] > 0 and item["height"] > 0
        if item["task"] == "refer":
            assert item["ref_boxes"] and item["references"][0].startswith("{<")
    # no image of an evaluation split appears in a training sample
    eval_images = {i for item in items for i in item["image_ids"]}
    assert not eval_images & {i for s in samples_of(built) for i in s["image_ids"]}


def test_leak_guard_keeps_eval_images_out_of_training(mini_raw_root, tmp_path):
    """Move one DIOR-RSVG expression to the test split: its image must leave every training sample."""
    import shutil

    raw = tmp_path / "raw"
    for name in ("dior", "dior_rsvg"):
        shutil.copytree(mini_raw_root / name, raw / name)
    train_ids = (raw / "dior_rsvg" / "train.txt").read_text().split()
    moved = train_ids[0]
    (raw / "dior_rsvg" / "train.txt").write_text("\n".join(train_ids[1:]) + "\n")
    (raw / "dior_rsvg" / "test.txt").write_text((raw / "dior_rsvg" / "test.txt").read_text() + moved + "\n")
    recipe = demo_recipe(sources={"dior": {"builders": ["detection"]}, "dior_rsvg": {"builders": ["refer"]}})
    result = build(recipe, raw, tmp_path / "out")
    out = result.out
    records = {n: list(read_records(out / "records" / f"{n}.parquet")) for n in ("dior", "dior_rsvg")}
    eval_keys = {r.image_key for rs in records.values() for r in rs if r.split != "train"}
    leaking = [r for rs in records.values() for r in rs if r.split == "train" and r.image_key in eval_keys]
    assert leaking, "moving an expression to test must put a training image at risk"
    quarantine = [json.loads(line) for line in (out / "quarantine.jsonl").read_text().splitlines()]
    guarded = {(q["source"], q["record_id"]) for q in quarantine if q["stage"] == "leak_guard"}
    assert guarded == {(r.source, r.record_id) for r in leaking}
    sample_keys = {json.loads(s["provenance"])["image_path"] for s in samples_of(out)}
    assert not sample_keys & {r.image_path for r in leaking}
    assert all(t.balanced for t in result.sources.values())


def test_undecodable_images_are_quarantined_not_fatal(mini_raw_root, tmp_path):
    """Truncated image files pass the converter's header probe; the downscale must quarantine them."""
    import shutil

    raw = tmp_path / "raw"
    shutil.copytree(mini_raw_root / "rsicd", raw / "rsicd")
    truncated = sorted((raw / "rsicd" / "RSICD_images").iterdir())[:3]
    for path in truncated:
        path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    recipe = demo_recipe(max_side=16, sources={"rsicd": {"builders": ["caption"]}})
    result = build(recipe, raw, tmp_path / "out")
    tally = result.sources["rsicd"]
    assert tally.balanced and tally.build_quarantined > 0
    quarantine = [json.loads(line) for line in (tmp_path / "out" / "quarantine.jsonl").read_text().splitlines()]
    bad = [q for q in quarantine if "cannot be decoded" in q["reason"]]
    assert len(bad) == tally.build_quarantined
    assert {Path(q["raw_file"]).name for q in bad} == {"dataset_rsicd.json"} and all(q["raw_index"] is not None for q in bad)
    used = {json.loads(s["provenance"])["image_path"] for s in samples_of(tmp_path / "out")}
    assert not used & {f"RSICD_images/{p.name}" for p in truncated}
