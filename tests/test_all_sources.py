"""Every registered source, end to end: synthesize its layout, convert, reconcile, compile, load.

The parametrisation reads the registry, so a source whose two files are dropped into the package
(``skyeye_data/sources/<name>.py`` and ``skyeye_data/synth/<name>.py``) is covered with no edit
here; :func:`test_a_copied_source_is_picked_up_everywhere` proves that on a copy of the package.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from skyeye_data.compile.builders import RECORD_BUILDERS
from skyeye_data.convert import convert_source, read_records
from skyeye_data.sources import all_sources, benchmark_sources, paper_table
from skyeye_data.synth import synthesize, writers

PROJECT = Path(__file__).resolve().parents[1]
SOURCES = sorted(all_sources())


def builders_for(task: str) -> list[str]:
    """The record builders that read this task's records (the source's own single-task samples)."""
    return sorted(name for name, builder in RECORD_BUILDERS.items() if task in builder.record_tasks)


def one_source_recipe(path: Path, name: str) -> Path:
    builders = builders_for(all_sources()[name].task)
    recipe = {"name": f"only-{name}", "seed": 0, "sources": {name: {"builders": builders} if builders else {}}}
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return path


def run_cli(*args: str, env: dict | None = None, cwd: Path = PROJECT) -> subprocess.CompletedProcess:
    # `python -m` puts the working folder first on sys.path: run a copied package from outside the project
    return subprocess.run(
        [sys.executable, "-m", "skyeye_data.cli", *args], capture_output=True, text=True, timeout=300, env=env, cwd=cwd
    )


def test_every_source_has_a_writer_and_its_facts():
    assert sorted(writers()) == SOURCES
    for name, source in all_sources().items():
        assert source.title and source.citation and source.license and source.license_url, name
        assert set(source.benchmark_splits) <= {"val", "test"}, name
    assert benchmark_sources() == {"ucm_captions", "sydney_captions", "rsicd", "rsvqa_lr", "rsvqa_hr", "dior_rsvg",
                                   "rsvg", "capera"}  # fmt: skip
    table = paper_table()
    assert table["rsvqa_hr"] == ("RSVQA-HR", 625_300) and table["era_vqa"] == ("ERA-VQA", 1_500)
    # the paper's table: 11 single-source sets, ERA-VQA, RSPG and the four Conversa sets
    assert len(table) == 17


@pytest.mark.parametrize("name", SOURCES)
def test_source_end_to_end(name, tmp_path):
    source = all_sources()[name]
    raw_root = tmp_path / "raw"
    written_raw = synthesize(name, raw_root / name, "mini", random.Random(f"0:{name}"))
    assert written_raw > 0

    summary = convert_source(name, raw_root / name, tmp_path / "records")
    # every raw record the writer made is accounted for: a record or one record-level quarantine line
    assert summary.records_in == written_raw, (summary.written, summary.quarantined, written_raw)
    assert summary.written > 0
    quarantine = [json.loads(line) for line in summary.quarantine_path.read_text().splitlines()]
    assert sum(1 for q in quarantine if q["level"] == "record") == summary.quarantined
    records = list(read_records(summary.records_path))
    assert len(records) == summary.written
    assert {r.source for r in records} == {name} and {r.task for r in records} == {source.task}
    assert sum(summary.by_split.values()) == summary.written

    recipe = one_source_recipe(tmp_path / "recipe.yaml", name)
    result = run_cli("build", str(recipe), "--raw-root", str(raw_root), "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stdout + result.stderr
    out = tmp_path / "out"
    manifest = json.loads((out / "manifest.json").read_text())
    shards = sorted((out / "samples").glob("*.parquet"))
    samples = [row for shard in shards for row in pq.read_table(shard).to_pylist()]
    train = sum(1 for r in records if r.split == "train")
    if builders_for(source.task) and train:
        assert samples, f"{name}: {train} train records but no samples"
    assert {s["source"] for s in samples} <= {name}
    image_ids = {i for shard in (out / "images").glob("*.parquet") for i in pq.read_table(shard, columns=["image_id"])["image_id"].to_pylist()}
    assert all(set(s["image_ids"]) <= image_ids for s in samples)
    for s in samples:
        assert [turn["role"] for turn in s["conversation"]][:2] == ["user", "assistant"]
    entry = manifest["sources"][name]
    assert entry["samples_total"] == len(samples) and entry["records_in"] == summary.records_in
    assert entry["balanced"] is True
    # a benchmark's val/test records become eval shards; any other source's are held out
    eval_files = sorted((out / "eval").glob(f"{name}-*.parquet")) if (out / "eval").is_dir() else []
    evaluated = {r.split for r in records if r.split in source.benchmark_splits}
    assert {f.name.split("-")[1] for f in eval_files} == evaluated
    if eval_files:
        from datasets import load_dataset

        loaded = load_dataset("parquet", data_files=[str(f) for f in eval_files], split="train")
        assert len(loaded) == sum(1 for r in records if r.split in source.benchmark_splits)


def _copy_source(package: Path, old: str, new: str) -> None:
    """Copy a source's two files under a new name, the name and class names changed inside them."""
    old_class = re.search(r"^class (\w+)\(", (package / "sources" / f"{old}.py").read_text(), re.M).group(1)
    for folder in ("sources", "synth"):
        text = (package / folder / f"{old}.py").read_text()
        text = text.replace(old, new).replace(old_class, old_class + "Copy").replace(old.upper(), new.upper())
        (package / folder / f"{new}.py").write_text(text)


def test_a_copied_source_is_picked_up_everywhere(tmp_path):
    """A 15th source = two new files: `skyeye sources`, `skyeye synth`, this test's parametrisation and a
    recipe naming it all see it, with no other file changed."""
    copy = tmp_path / "pkg"
    shutil.copytree(PROJECT / "skyeye_data", copy / "skyeye_data", ignore=shutil.ignore_patterns("__pycache__"))
    _copy_source(copy / "skyeye_data", "rsicd", "rsicd_copy")
    env = {**os.environ, "PYTHONPATH": str(copy), "COLUMNS": "250"}  # rich would wrap names in a narrow table

    listed = run_cli("sources", env=env, cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "rsicd_copy" in listed.stdout

    raw = tmp_path / "raw"
    synth = run_cli("synth", str(raw), "--source", "rsicd_copy", env=env, cwd=tmp_path)
    assert synth.returncode == 0, synth.stdout + synth.stderr
    assert [p.relative_to(raw).as_posix() for p in raw.rglob("*.json")] == [
        "rsicd_copy/annotations_rsicd_copy/dataset_rsicd_copy.json"]  # the copy's own (renamed) layout

    recipe = one_source_recipe(tmp_path / "recipe.yaml", "rsicd")  # same task and builders as the copy
    recipe.write_text(recipe.read_text().replace("rsicd", "rsicd_copy"))
    built = run_cli("build", str(recipe), "--raw-root", str(raw), "--out", str(tmp_path / "out"), env=env, cwd=tmp_path)
    assert built.returncode == 0, built.stdout + built.stderr
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["sources"]["rsicd_copy"]["samples_total"] > 0

    collected = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", str(Path(__file__))],
        capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert "test_source_end_to_end[rsicd_copy]" in collected.stdout, collected.stdout[-2000:]
