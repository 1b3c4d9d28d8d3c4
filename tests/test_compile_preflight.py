"""`skyeye build` runs the doctor's checks before converting, and hands the recipe's converter options
(DOTA's ``version``) to the converter, the doctor and the records cache."""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from skyeye_data.cli import app
from skyeye_data.compile.build import BuildError, build
from skyeye_data.compile.recipe import RecipeError, parse_recipe

RUNNER = CliRunner()


def recipe_text(sources: str) -> str:
    return f"name: preflight\nseed: 0\nsources:\n{sources}"


def write_recipe(tmp_path: Path, sources: str) -> Path:
    path = tmp_path / "recipe.yaml"
    path.write_text(recipe_text(sources), encoding="utf-8")
    return path


def copy_source(mini_raw_root: Path, raw: Path, name: str) -> Path:
    return Path(shutil.copytree(mini_raw_root / name, raw / name))


def test_a_source_in_an_unknown_layout_stops_the_build_before_converting(mini_raw_root, tmp_path):
    raw = tmp_path / "raw"
    copy_source(mini_raw_root, raw, "ucm_captions")
    (raw / "rsicd").mkdir()
    (raw / "rsicd" / "captions_by_hand.csv").write_text("image,caption\n", encoding="utf-8")
    recipe = write_recipe(tmp_path, "  ucm_captions: {builders: [caption]}\n  rsicd: {builders: [caption]}\n")
    out = tmp_path / "out"
    result = RUNNER.invoke(app, ["build", str(recipe), "--raw-root", str(raw), "--out", str(out), "-j", "1"])
    flat = "".join(result.output.split())  # rich wraps long lines, even inside a path
    assert result.exit_code == 2, result.output
    # the doctor's message: the folder, what was found, what was expected (and where it goes)
    assert f"rsicd:therawfolder{raw / 'rsicd'}cannotbebuilt" in flat
    assert "found:captions_by_hand.csv" in flat and "putdataset_rsicd.jsonatannotations_rsicd/dataset_rsicd.json" in flat
    assert "skyeyedoctor" in flat
    # stopped before converting anything: not even the good source's records exist, no output at all
    assert not (out / "records").exists() and not (out / "manifest.json").exists()
    assert not list(out.glob("samples/*.parquet"))


def test_an_absent_source_is_a_warning_or_an_error_with_require_all(mini_raw_root, tmp_path):
    raw = tmp_path / "raw"
    copy_source(mini_raw_root, raw, "ucm_captions")
    recipe = parse_recipe(recipe_text("  ucm_captions: {builders: [caption]}\n  rsicd: {builders: [caption]}\n"))
    result = build(recipe, raw, tmp_path / "out")
    assert any(w.startswith("rsicd: raw folder") and "absent" in w for w in result.warnings)
    assert result.sources["rsicd"].status == "missing" and result.sources["ucm_captions"].status == "built"
    with pytest.raises(BuildError, match=r"rsicd: raw folder .* is absent \(--require-all\)"):
        build(recipe, raw, tmp_path / "out2", require_all=True)


def dota_with_two_versions(mini_raw_root: Path, raw: Path) -> tuple[int, int]:
    """The mini corpus's DOTA (archive v1.0) plus the same labels as v1.5, one train label file fewer
    in v1.5 so that the two are told apart: (v1.0 label files, v1.5 label files)."""
    dota = copy_source(mini_raw_root, raw, "dota")
    counts = {}
    for version, folder in (("1.0", "labelTxt-v1.0/labelTxt"), ("1.5", "labelTxt-v1.5/DOTA-v1.5_{split}")):
        total = 0
        for split in ("train", "val"):
            target = dota / split / folder.format(split=split)
            if version == "1.5":
                shutil.copytree(dota / split / "labelTxt-v1.0" / "labelTxt", target)
                if split == "train":
                    sorted(target.glob("*.txt"))[0].unlink()
            total += len(list(target.glob("*.txt")))
        counts[version] = total
    return counts["1.0"], counts["1.5"]


def dota_records(out: Path) -> list[dict]:
    return pq.read_table(out / "records" / "dota.parquet").to_pylist()


def test_the_recipe_picks_the_dota_version_never_mixed(mini_raw_root, tmp_path):
    raw = tmp_path / "raw"
    n10, n15 = dota_with_two_versions(mini_raw_root, raw)
    assert n15 == n10 - 1 > 0
    # without `version:` the build stops and says to choose, before converting
    with pytest.raises(BuildError, match=r'several versions \(1.0, 1.5\).*version: "1.0"'):
        build(parse_recipe(recipe_text("  dota: {}\n")), raw, tmp_path / "none")
    out = tmp_path / "out"
    for version, label_dir, n in (("1.5", "labelTxt-v1.5", n15), ("1.0", "labelTxt-v1.0", n10)):
        result = build(parse_recipe(recipe_text(f'  dota: {{version: "{version}"}}\n')), raw, out)
        records = dota_records(out)
        # the same OUT: the records cache must not hand the other version's records back
        assert result.records_from_cache == []
        assert {r["provenance"]["raw_file"].split("/")[1] for r in records} == {label_dir}
        assert result.sources["dota"].records_in == n and len(records) == n


def test_version_is_checked_by_the_recipe(tmp_path):
    with pytest.raises(RecipeError, match="version must be one of"):
        parse_recipe(recipe_text('  dota: {version: "2.0"}\n'))
    with pytest.raises(RecipeError, match="rsicd: takes no options"):
        parse_recipe(recipe_text('  rsicd: {version: "1.0", builders: [caption]}\n'))
    # unquoted YAML numbers are read as the version text; absent, the recipe's fingerprint is unchanged
    assert parse_recipe(recipe_text("  dota: {version: 1.5}\n")).sources["dota"].version == "1.5"
    plain = parse_recipe(recipe_text("  dota: {}\n"))
    assert "version" not in plain.model_dump(mode="json")["sources"]["dota"]
