"""Export layouts (LLaVA, MiniGPT-v2, LLaMA-Factory), the build card, and `skyeye stats` on a build of the mini corpus, through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from skyeye_data.cli import app

PROJECT = Path(__file__).resolve().parents[1]
runner = CliRunner()


@pytest.fixture(scope="module")
def built(mini_raw_root, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("build")
    result = runner.invoke(app, ["build", str(PROJECT / "recipes" / "demo.yaml"), "--raw-root", str(mini_raw_root), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "balanced for" in " ".join(result.output.split())
    return out


def samples(out: Path) -> list[dict]:
    return [r for p in sorted((out / "samples").glob("*.parquet")) for r in pq.read_table(p).to_pylist()]


def images(out: Path) -> dict[str, bytes]:
    return {r["image_id"]: r["bytes"] for p in sorted((out / "images").glob("*.parquet")) for r in pq.read_table(p).to_pylist()}


def test_export_llava_round_trip(built, tmp_path):
    result = runner.invoke(app, ["export", "llava", str(built), "--to", str(tmp_path)])
    assert result.exit_code == 0, result.output
    single = json.loads((tmp_path / "skyeye_llava.json").read_text())
    video = json.loads((tmp_path / "skyeye_llava_video.json").read_text())
    assert all(isinstance(e["image"], str) for e in single) and all(isinstance(e["image"], list) for e in video)
    by_id = {s["id"]: s for s in samples(built)}
    stored = images(built)
    assert len(single) + len(video) == len(by_id) and video
    for entry in single + video:
        sample = by_id[entry["id"]]
        paths = entry["image"] if isinstance(entry["image"], list) else [entry["image"]]
        assert len(paths) == len(sample["image_ids"])
        for path, image_id in zip(paths, sample["image_ids"]):
            assert (tmp_path / path).read_bytes() == stored[image_id]
        human, gpt = entry["conversations"][0], entry["conversations"][1]
        assert human["from"] == "human" and gpt["from"] == "gpt"
        assert human["value"] == "<image>\n" * len(paths) + sample["conversation"][0]["content"]
        assert gpt["value"] == sample["conversation"][1]["content"]


def test_export_llava_without_video(built, tmp_path):
    result = runner.invoke(app, ["export", "llava", str(built), "--out", str(tmp_path), "--no-video"])
    assert result.exit_code == 0, result.output
    entries = json.loads((tmp_path / "skyeye_llava.json").read_text())
    assert entries and all(isinstance(e["image"], str) for e in entries)
    assert len(entries) == sum(1 for s in samples(built) if len(s["image_ids"]) == 1)


def test_export_minigptv2_layout(built, tmp_path):
    result = runner.invoke(app, ["export", "minigptv2", str(built), "--to", str(tmp_path)])
    assert result.exit_code == 0, result.output
    tasks = {s["task"] for s in samples(built) if len(s["image_ids"]) == 1}
    assert {p.stem for p in tmp_path.glob("*.json")} == tasks
    captions = json.loads((tmp_path / "caption.json").read_text())
    assert all({"image", "caption", "image_id"} <= set(c) and c["image"].startswith("train/") for c in captions)
    vqa = json.loads((tmp_path / "vqa.json").read_text())
    assert all(isinstance(v["answer"], list) and v["question"] and not v["question"].startswith("[") for v in vqa)
    refer = json.loads((tmp_path / "refer.json").read_text())
    assert all(r["instruction"].startswith("[refer] ") and r["answer"].startswith("{<") for r in refer)
    stored = images(built)
    for entry in captions + vqa + refer:
        image = tmp_path / "images" / "train" / entry["image"].split("/")[-1]
        assert image.read_bytes() in stored.values()


def test_export_llamafactory_layout(built, tmp_path):
    result = runner.invoke(app, ["export", "llamafactory", str(built), "--to", str(tmp_path)])
    assert result.exit_code == 0, result.output
    info = json.loads((tmp_path / "dataset_info.json").read_text())["skyeye"]
    assert info["formatting"] == "sharegpt" and info["columns"] == {"messages": "conversations", "images": "images"}
    rows = json.loads((tmp_path / info["file_name"]).read_text())
    by_id = {s["id"]: s for s in samples(built)}
    assert len(rows) == len(by_id)
    for row in rows:
        assert isinstance(row["images"], list) and len(row["images"]) == len(by_id[row["id"]]["image_ids"])
        assert row["conversations"][0]["value"].startswith("<image>" * len(row["images"]))
        assert all((tmp_path / path).is_file() for path in row["images"])


def test_export_hf_shards_keep_every_sample_and_store_shared_images_once(built, tmp_path):
    from datasets import load_dataset

    out = tmp_path / "hf"
    result = runner.invoke(app, ["export", "hf", str(built), "--to", str(out), "--shard-rows", "50"])
    assert result.exit_code == 0, result.output
    shards = sorted((out / "data").glob("*.parquet"))
    n = len(samples(built))
    assert [p.name for p in shards] == [f"train-{i:05d}-of-{len(shards):05d}.parquet" for i in range(len(shards))]
    assert len(shards) == -(-n // 50) and not (out / ".images-staging").exists()
    stored = images(built)
    for shard in shards:
        table = pq.read_table(shard, columns=["image_ids"])
        ids = [i for row in table.column("image_ids").to_pylist() for i in row]
        group = pq.ParquetFile(shard).metadata.row_group(0)
        column = next(group.column(i) for i in range(group.num_columns) if group.column(i).path_in_schema == "images.list.element.bytes")
        assert column.has_dictionary_page
        assert column.total_uncompressed_size >= sum(len(stored[i]) for i in set(ids))
    loaded = load_dataset(str(out), split="train", cache_dir=str(tmp_path / "cache"))
    assert sorted(loaded["id"]) == sorted(s["id"] for s in samples(built))


def test_build_card_passes_the_hub_card_checks(built, tmp_path):
    from datasets import load_dataset
    from huggingface_hub import DatasetCard
    from PIL import Image

    card = DatasetCard.load(built / "README.md", ignore_metadata_errors=False)
    assert card.data.license == "other" and card.data.license_name and (built / card.data.license_link).is_file()
    assert card.data.size_categories == ["n<1K"] and card.data.task_categories
    for name in json.loads((built / "manifest.json").read_text())["counts"]["samples"]:
        assert f"| `{name}` |" in card.text  # every source and mix in the licence table
    assert "```bibtex" in card.text
    decoded = load_dataset(str(built), "images", split="train", cache_dir=str(tmp_path))  # fresh: no stale cache
    assert isinstance(decoded[0]["bytes"], Image.Image)  # dataset_info.features declares `bytes: image`


def test_export_refuses_a_folder_without_manifest(tmp_path):
    result = runner.invoke(app, ["export", "llava", str(tmp_path), "--out", str(tmp_path / "x")])
    assert result.exit_code == 2 and "manifest" in result.output


def test_export_names_an_image_missing_from_the_build(built, tmp_path):
    broken = tmp_path / "build"
    broken.mkdir()
    for name in ("samples", "manifest.json"):
        (broken / name).symlink_to(built / name)
    (broken / "images").mkdir()  # no image table: every sample's image is missing
    for layout in ("hf", "llava"):
        result = runner.invoke(app, ["export", layout, str(broken), "--to", str(tmp_path / layout)])
        assert result.exit_code == 2 and "not in the build's images/ table" in " ".join(result.output.split())
        assert not list((tmp_path / layout).glob("**/*.parquet")) and not list((tmp_path / layout).glob("*.json"))


def test_stats_json_and_plot(built, tmp_path):
    plot = tmp_path / "stats.png"
    result = runner.invoke(app, ["stats", str(built), "--json", "--plot", str(plot)])
    assert result.exit_code == 0, result.output
    stats = json.loads(result.stdout)
    counted = {}
    for s in samples(built):
        counted[(s["source"], s["task"])] = counted.get((s["source"], s["task"]), 0) + 1
    assert {(r["source"], r["task"]): r["samples"] for r in stats["rows"] if r["samples"]} == counted
    assert stats["distributions"]["box_area_pct"]["n"] > 0
    assert stats["distributions"]["answer_words"]["n"] == sum(len(s["conversation"]) // 2 for s in samples(built))
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_stats_flags_expected_count_mismatch(built, tmp_path):
    manifest = json.loads((built / "manifest.json").read_text())
    manifest["recipe"]["body"]["sources"]["rsicd"]["expected"] = {"caption": 10**6}
    other = tmp_path / "b"
    other.mkdir()
    (other / "samples").symlink_to(built / "samples")
    (other / "manifest.json").write_text(json.dumps(manifest))
    result = runner.invoke(app, ["stats", str(other)])
    assert result.exit_code == 1
    assert "differs" in result.output


def test_build_cli_reports_bad_recipe_line(mini_raw_root, tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("name: x\nsources:\n  rsicd:\n    builder: [caption]\n")
    result = runner.invoke(app, ["build", str(recipe), "--raw-root", str(mini_raw_root), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert "r.yaml:4" in result.output and "sources.rsicd.builder" in result.output
    assert not (tmp_path / "o").exists()
