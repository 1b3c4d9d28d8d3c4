"""Small parts of the compiler: shard writer, image store, template pools and builder options."""

from __future__ import annotations

import io
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from PIL import Image

from skyeye_data.compile.build import build
from skyeye_data.compile.builders import MediaFile
from skyeye_data.compile.images import ImageTableWriter
from skyeye_data.compile.recipe import parse_recipe
from skyeye_data.compile.shards import ShardedParquetWriter, commit_files, split_shard_name
from skyeye_data.sources.base import ImageProblem

SCHEMA = pa.schema([pa.field("n", pa.int64())])


def test_shards_rotate_and_get_final_names_only_on_commit(tmp_path):
    writer = ShardedParquetWriter(tmp_path, "train", SCHEMA, split_shard_name("train"), rows_per_shard=10, row_group_rows=4)
    for n in range(25):
        writer.write({"n": n})
    assert not list(tmp_path.glob("train-*.parquet"))  # nothing final before commit
    pending = writer.close()
    assert [p.final.name for p in pending] == [f"train-{i:05d}-of-00003.parquet" for i in range(3)]
    finals = commit_files(pending)
    sizes = [pq.ParquetFile(p).metadata.num_rows for p in finals]
    groups = [pq.ParquetFile(p).metadata.num_row_groups for p in finals]
    assert sizes == [10, 10, 5] and groups == [3, 3, 2]
    assert [r["n"] for p in finals for r in pq.read_table(p).to_pylist()] == list(range(25))
    assert not list(tmp_path.glob(".*.tmp"))


def test_aborted_writer_leaves_nothing(tmp_path):
    writer = ShardedParquetWriter(tmp_path, "train", SCHEMA, split_shard_name("train"), rows_per_shard=3, row_group_rows=2)
    for n in range(7):
        writer.write({"n": n})
    writer.abort()
    assert list(tmp_path.iterdir()) == []


def _png(path: Path, size, color) -> Path:
    Image.new("RGB", size, color).save(path, "PNG")
    return path


def test_image_store_keeps_each_image_once_and_downscales(tmp_path):
    a = _png(tmp_path / "a.png", (300, 100), (1, 2, 3))
    copy = tmp_path / "copy.png"
    copy.write_bytes(a.read_bytes())
    store = ImageTableWriter(tmp_path / "images", max_side=None)
    first = store.image_ids(MediaFile(a))
    assert store.image_ids(MediaFile(copy)) == first  # same bytes, one image
    small = store.image_ids(MediaFile(a), max_side=60)
    assert small != first
    finals = commit_files(store.close())
    table = [r for p in finals for r in pq.read_table(p).to_pylist()]
    assert len(table) == 2
    sizes = {r["image_id"]: (r["width"], r["height"]) for r in table}
    assert sizes[first[0]] == (300, 100) and sizes[small[0]] == (60, 20)
    assert Image.open(io.BytesIO(next(r["bytes"] for r in table if r["image_id"] == small[0]))).size == (60, 20)


def test_image_store_reports_missing_and_broken_files(tmp_path):
    store = ImageTableWriter(tmp_path / "images")
    with pytest.raises(ImageProblem, match="not found"):
        store.image_ids(MediaFile(tmp_path / "nope.png"))
    (tmp_path / "junk.png").write_bytes(b"not an image")
    with pytest.raises(ImageProblem, match="cannot be (read|decoded)"):
        store.image_ids(MediaFile(tmp_path / "junk.png"))
    store.abort()


def test_pool_override_and_builder_options(mini_raw_root, tmp_path):
    recipe = parse_recipe(
        yaml.safe_dump(
            {
                "name": "opts",
                "templates": {"caption": ["Describe it."]},
                "sources": {
                    "rsicd": {"builders": {"caption": {"max_per_record": 2}}},
                    "ucm_captions": {"builders": {"caption": {"pool": "video_caption"}}},
                },
            }
        )
    )
    result = build(recipe, mini_raw_root, tmp_path)
    rows = [r for p in sorted((tmp_path / "samples").glob("*.parquet")) for r in pq.read_table(p).to_pylist()]
    rsicd = [r for r in rows if r["source"] == "rsicd"]
    assert {r["conversation"][0]["content"] for r in rsicd} == {"[caption] Describe it."}
    assert len(rsicd) == 2 * result.sources["rsicd"].compiled
    ucm = [r["conversation"][0]["content"] for r in rows if r["source"] == "ucm_captions"]
    assert ucm and all("video" in text for text in ucm)
