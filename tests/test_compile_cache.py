"""Incremental builds and parallel conversion and compilation give the bytes of a clean build (manifest checksums).

Clean (``use_cache=False``), cached, ``jobs=1`` and ``jobs=2`` builds of the mini corpus write the
same samples, images, eval shards, review queue and quarantine; a rebuild with nothing changed only
verifies; a template change recompiles, from cached records, only the sources and mixes that drew
from the changed pool; a changed raw file reconverts and recompiles its source and its dependents only.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from skyeye_data.compile import cache as cache_module
from skyeye_data.compile import quick
from skyeye_data.compile.build import build
from skyeye_data.compile.recipe import load_recipe, parse_recipe

PROJECT = Path(__file__).resolve().parents[1]
DEMO = PROJECT / "recipes" / "demo.yaml"
COMPARED = ("samples", "images", "eval", "review-queue", "quarantine.jsonl")


def output_checksums(out: Path) -> dict[str, str]:
    files = json.loads((out / "manifest.json").read_text())["files"]
    return {name: info["sha256"] for name, info in files.items() if name.split("/")[0] in COMPARED}


def with_templates(recipe_path: Path, caption: list[str], **changes):
    data = yaml.safe_load(recipe_path.read_text()) | changes
    data["templates"] = {"caption": caption}
    return parse_recipe(yaml.safe_dump(data, sort_keys=False))


def units(recipe) -> set[str]:
    """The names of a build's compile units: every source, every mix."""
    return set(recipe.sources) | set(recipe.mixes)


# the demo units that read records of these sources, or phrase with the caption pool
RSIVQA_MIXES = {"ucm_conversa", "sydney_conversa", "dota_conversa"}
CAPTION_UNITS = {"ucm_captions", "sydney_captions", "rsicd", "rsitmd", "nwpu_captions", "ucm_conversa", "sydney_conversa"}


@pytest.fixture(scope="module")
def raw(mini_raw_root, tmp_path_factory) -> Path:
    """A private copy of the mini corpus (a test changes a raw file in it)."""
    copy = tmp_path_factory.mktemp("raw") / "raw"
    shutil.copytree(mini_raw_root, copy)
    return copy


@pytest.fixture(scope="module")
def clean(raw, tmp_path_factory) -> dict[str, str]:
    out = tmp_path_factory.mktemp("clean")
    result = build(load_recipe(DEMO), raw, out, use_cache=False, jobs=1)
    assert result.records_from_cache == [] and not (out / "cache" / "records").exists()
    return output_checksums(out)


def test_cached_and_parallel_builds_match_the_clean_build(raw, clean, tmp_path):
    recipe = load_recipe(DEMO)
    assert len(clean) > 10 and any(name.startswith("images/") for name in clean)
    first = build(recipe, raw, tmp_path / "out", jobs=2)  # cache empty: every source converted, two at a time
    assert first.records_from_cache == [] and output_checksums(tmp_path / "out") == clean
    # nothing changed: the build in OUT is verified, not rebuilt (its files keep their mtimes)
    mtimes = {p: p.stat().st_mtime_ns for p in (tmp_path / "out").rglob("*.parquet") if "cache" not in p.parts}
    again = build(recipe, raw, tmp_path / "out", jobs=1)
    assert again.verified_only and output_checksums(tmp_path / "out") == clean
    assert {p: p.stat().st_mtime_ns for p in mtimes} == mtimes
    assert again.manifest["counts"] == first.manifest["counts"] and again.sources["rsicd"].balanced
    # an output file changed behind the build's back is no longer "unchanged": the build runs again
    sample = next((tmp_path / "out" / "samples").glob("*.parquet"))
    sample.write_bytes(sample.read_bytes() + b"x")
    repaired = build(recipe, raw, tmp_path / "out", jobs=1)
    assert not repaired.verified_only and len(repaired.records_from_cache) == len(recipe.sources)
    assert output_checksums(tmp_path / "out") == clean


def test_no_change_rebuild_reads_no_output_file(raw, tmp_path, monkeypatch):
    """Verifying is stat calls: no output file is read while its size and mtime are those noted at the
    build; a file whose mtime moved is hashed against the manifest (same bytes: still only verified)."""
    recipe = load_recipe(DEMO)
    build(recipe, raw, tmp_path / "out", jobs=1)
    hashed: list[str] = []
    real = cache_module.file_sha256
    for module in (cache_module, quick):  # the build key's check (cache), the outputs' (quick.outputs_unchanged)
        monkeypatch.setattr(module, "file_sha256", lambda path: hashed.append(Path(path).name) or real(path))
    assert build(recipe, raw, tmp_path / "out", jobs=1).verified_only
    assert hashed == ["manifest.json"]  # the build key's check of the manifest itself, nothing else
    sample = next((tmp_path / "out" / "samples").glob("*.parquet"))
    info = sample.stat()
    os.utime(sample, ns=(info.st_atime_ns, info.st_mtime_ns + 10**9))
    hashed.clear()
    assert build(recipe, raw, tmp_path / "out", jobs=1).verified_only and hashed == ["manifest.json", sample.name]


def test_template_change_recompiles_from_cached_records(raw, tmp_path):
    build(load_recipe(DEMO), raw, tmp_path / "out", jobs=1)
    changed = with_templates(DEMO, ["Say what this image shows.", "Describe the image briefly."])
    cached = build(changed, raw, tmp_path / "out", jobs=2)
    assert not cached.verified_only and sorted(cached.records_from_cache) == sorted(changed.sources)
    # only what drew from the caption pool is compiled again (capera's videos draw from video_caption)
    assert set(cached.samples_from_cache) == units(changed) - CAPTION_UNITS
    build(changed, raw, tmp_path / "fresh", use_cache=False, jobs=1)
    assert output_checksums(tmp_path / "out") == output_checksums(tmp_path / "fresh")
    captions = json.loads((tmp_path / "out" / "manifest.json").read_text())["recipe"]["body"]["templates"]["caption"]
    assert captions == ["Say what this image shows.", "Describe the image briefly."]


def test_changed_raw_file_reconverts_only_its_source_and_its_dependents(raw, tmp_path):
    work = tmp_path / "raw"
    shutil.copytree(raw, work)
    recipe = load_recipe(DEMO)
    build(recipe, work, tmp_path / "out", jobs=1)
    annotations = next((work / "rsicd").rglob("dataset_rsicd.json"))
    data = json.loads(annotations.read_text())
    data["images"][0]["sentences"][0]["raw"] = "a changed caption of a runway"
    annotations.write_text(json.dumps(data))
    rebuilt = build(recipe, work, tmp_path / "out", jobs=1)
    # RSIVQA takes its AID questions' splits from RSICD's file: it reconverts with it, nothing else does
    assert sorted(rebuilt.records_from_cache) == sorted(set(recipe.sources) - {"rsicd", "rsivqa"})
    # and compiles again those two and the mixes reading RSIVQA; every other segment comes from the cache
    assert set(rebuilt.samples_from_cache) == units(recipe) - {"rsicd", "rsivqa"} - RSIVQA_MIXES
    build(recipe, work, tmp_path / "fresh", use_cache=False, jobs=2)
    assert output_checksums(tmp_path / "out") == output_checksums(tmp_path / "fresh")
    # the changed caption reached the outputs: a training sample, or the reference of an eval item
    rows = [r for d in ("samples", "eval") for p in (tmp_path / "out" / d).glob("*.parquet") for r in pq.read_table(p).to_pylist()]
    said = [turn["content"] for r in rows if r["source"] == "rsicd" for turn in r["conversation"]] + [
        ref for r in rows if r["source"] == "rsicd" for ref in r.get("references") or []]  # fmt: skip
    assert "a changed caption of a runway" in said


def test_a_changed_symlink_target_reconverts(raw, tmp_path):
    """A link inside the raw root whose target changes, the link text staying the same, is a changed file."""
    work = tmp_path / "raw"
    shutil.copytree(raw, work)
    annotations = next((work / "rsicd").rglob("dataset_rsicd.json"))
    real = work / "rsicd-real.json"
    annotations.rename(real)
    annotations.symlink_to(real)
    recipe = load_recipe(DEMO)
    build(recipe, work, tmp_path / "out", jobs=1)
    data = json.loads(real.read_text())
    data["images"][0]["sentences"][0]["raw"] = "a caption changed behind a link"
    real.write_text(json.dumps(data) + " ")
    rebuilt = build(recipe, work, tmp_path / "out", jobs=1)
    assert "rsicd" not in rebuilt.records_from_cache and "rsivqa" not in rebuilt.records_from_cache


@pytest.mark.parametrize("variant", ["review_queue", "dedupe_and_caps"])
def test_review_gate_dedupe_and_caps_match_the_clean_build(raw, tmp_path, variant):
    """The two other sample paths: the review gate deciding inside each segment (samples held back
    go to review-queue/), and dedupe (decided in the build's order; a capped source or mix then
    compiles in that order), each clean vs cached vs --jobs 2, before and after a template change."""
    ledger = tmp_path / "ledger.sqlite"  # never created: no verdicts, every routed sample waits for review
    changes = ({"review": {"ledger": str(ledger), "audit_rate": 0.3}} if variant == "review_queue" else
               {"dedupe": True, "mixes": {**yaml.safe_load(DEMO.read_text())["mixes"],
                                          "rspg": {"builder": "rspg", "sources": ["dior"], "max_samples": 3}}})  # fmt: skip
    data = yaml.safe_load(DEMO.read_text()) | changes
    if variant == "dedupe_and_caps":
        data["sources"]["rsicd"]["max_samples"] = 7
        data["sources"]["ucm_captions"]["builders"] = {"caption": {"pool": "caption"}}
    recipe = parse_recipe(yaml.safe_dump(data, sort_keys=False))
    clean = build(recipe, raw, tmp_path / "clean", use_cache=False, jobs=1)
    cached = build(recipe, raw, tmp_path / "out", jobs=2)
    assert output_checksums(tmp_path / "out") == output_checksums(tmp_path / "clean")
    assert cached.manifest["counts"] == clean.manifest["counts"] and cached.manifest.get("review") == clean.manifest.get("review")
    if variant == "review_queue":
        assert any(name.startswith("review-queue/") for name in output_checksums(tmp_path / "clean"))
        assert clean.manifest["review"]["totals"]["unreviewed_left_out"] > 0
    else:
        assert clean.sources["rsicd"].samples_total == 7 and clean.mixes["rspg"].samples_total == 3
        assert clean.manifest["counts"]["duplicates_dropped"] >= 0
    changed = with_templates(DEMO, ["Say what this image shows."], **changes)
    changed = parse_recipe(yaml.safe_dump(changed.model_dump(mode="json", exclude_none=True) | {"sources": data["sources"]}, sort_keys=False))
    again = build(changed, raw, tmp_path / "out", jobs=2)
    assert again.samples_from_cache and not again.verified_only
    build(changed, raw, tmp_path / "fresh", use_cache=False, jobs=1)
    assert output_checksums(tmp_path / "out") == output_checksums(tmp_path / "fresh")
