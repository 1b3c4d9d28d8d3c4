"""``skyeye doctor``: layouts found, counts against the published ones, the exact fix, nothing converted."""

from __future__ import annotations

import shutil

import pytest
from typer.testing import CliRunner

from skyeye_data.cli import app
from skyeye_data.doctor import check_source, diagnose
from skyeye_data.sources import all_sources
from skyeye_data.synth import synthesize_raw_root


@pytest.fixture(scope="module")
def mini(tmp_path_factory):
    root = tmp_path_factory.mktemp("doctor") / "raw"
    synthesize_raw_root(root, "mini", seed=0)
    return root


def doctor(*args: str):
    return CliRunner().invoke(app, ["doctor", *map(str, args)], env={"COLUMNS": "250"})


def test_the_synthetic_corpus_is_in_the_published_layouts(mini):
    checks = {c.name: c for c in diagnose(mini)}
    assert set(checks) == set(all_sources()) and all(c.buildable for c in checks.values())
    assert checks["capera"].layout.startswith("archive") and "Videos/Tra/" in checks["capera"].layout
    assert checks["dota"].layout.startswith("archive v1.0") and checks["rsicd"].layout.startswith("archive")
    assert "images: imgs/" in checks["ucm_captions"].layout
    assert checks["rsvqa_lr"].counts == {"train": 3, "val": 1, "test": 2}  # active images per split file
    assert checks["rsivqa"].counts["UCM/ucm_res.txt"] == 10
    assert any("published 1,680" in line for line in checks["ucm_captions"].differences())
    result = doctor(mini)
    assert result.exit_code == 0, result.output
    assert "rsvg             ok  published (images/ + rsvg_{train,val,test}.pth)" in result.output


def test_a_broken_root_names_each_fix_and_exits_non_zero(mini, tmp_path):
    raw = tmp_path / "raw"
    for name in ("ucm_captions", "rsicd", "era", "dota"):
        shutil.copytree(mini / name, raw / name)
    shutil.rmtree(raw / "ucm_captions" / "imgs")  # as downloaded: the images still in their archive
    (raw / "ucm_captions" / "imgs.rar").write_bytes(b"Rar!")
    (raw / "rsicd" / "annotations_rsicd" / "dataset_rsicd.json").rename(raw / "rsicd" / "dataset_rsicd.json")
    shutil.rmtree(raw / "era" / "Videos" / "Test")
    (raw / "rsvg_hr").mkdir()
    result = doctor(raw)
    assert result.exit_code == 1
    out = result.output
    assert "ucm_captions     CANNOT BE BUILT" in out and "extract imgs.rar in" in out
    assert "rsicd            ok  flattened (dataset_rsicd.json + RSICD_images/*.jpg)" in out  # an accepted variant
    assert "era              CANNOT BE BUILT" in out and "has Tra/ but no Test/Testing/ folder" in out
    assert "rsvg_hr          no converter is named after this folder" in out
    assert "rsvqa_hr         absent" in out
    assert not list(raw.rglob("*.parquet"))  # nothing converted
    assert check_source("dota", raw / "dota").counts == {"train": 4, "val": 2}


def test_recipe_mode_checks_only_the_recipe_sources(mini, tmp_path):
    raw = tmp_path / "raw"
    for name in ("rsicd", "ucm_captions"):
        shutil.copytree(mini / name, raw / name)
    shutil.rmtree(raw / "ucm_captions" / "imgs")
    only_rsicd = tmp_path / "a.yaml"
    only_rsicd.write_text("name: a\nsources:\n  rsicd: {builders: [caption]}\n  rsitmd: {builders: [caption]}\n")
    result = doctor(raw, "--recipe", only_rsicd)
    assert result.exit_code == 0, result.output
    assert "ucm_captions" not in result.output and "recipe sources absent" in result.output and "rsitmd" in result.output
    with_ucm = tmp_path / "b.yaml"
    with_ucm.write_text("name: b\nsources:\n  rsicd: {}\nmixes:\n  m: {builder: conversa, sources: [ucm_captions]}\n")
    result = doctor(raw, "--recipe", with_ucm)
    assert result.exit_code == 1 and "put the images in imgs/ or images/" in result.output


def test_a_fifo_in_a_source_folder_is_reported_not_read(mini, tmp_path):
    import os

    raw = tmp_path / "raw"
    shutil.copytree(mini / "rsivqa", raw / "rsivqa")
    os.mkfifo(raw / "rsivqa" / "UCM" / "extra.txt")  # reading it would block forever
    [check] = diagnose(raw, ["rsivqa"])
    assert not check.buildable and "cannot be read" in check.problem and "extra.txt" in check.problem
