"""Incremental builds and parallel conversion give the bytes of a clean build (manifest checksums).

Clean (``use_cache=False``), cached, ``jobs=1`` and ``jobs=2`` builds of the mini corpus write the
same samples, images, eval shards and quarantine; a rebuild with nothing changed only verifies; a
template change recompiles from cached records; a changed raw file reconverts its source only.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from skyeye_data.compile.build import build
from skyeye_data.compile.recipe import load_recipe, parse_recipe

PROJECT = Path(__file__).resolve().parents[1]
DEMO = PROJECT / "recipes" / "demo.yaml"
COMPARED = ("samples", "images", "eval", "review-queue", "quarantine.jsonl")


def output_checksums(out: Path) -> dict[str, str]:
    files = json.loads((out / "manifest.json").read_text())["files"]
    return {name: info["sha256"] for name, info in files.items() if name.split("/")[0] in COMPARED}


def with_templates(recipe_path: Path, caption: list[str]):
    data = yaml.safe_load(recipe_path.read_text())
    data["templates"] = {"caption": caption}
    return parse_recipe(yaml.safe_dump(data, sort_keys=False))


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


def test_template_change_recompiles_from_cached_records(raw, tmp_path):
    build(load_recipe(DEMO), raw, tmp_path / "out", jobs=1)
    changed = with_templates(DEMO, ["Say what this image shows.", "Describe the image briefly."])
    cached = build(changed, raw, tmp_path / "out", jobs=1)
    assert not cached.verified_only and sorted(cached.records_from_cache) == sorted(changed.sources)
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
