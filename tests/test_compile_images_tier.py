"""The pre-resized training tier (recipe ``train_size``): written by the build beside ``images/``,
named in the manifest, byte-identical on a rebuild, loadable by ``datasets``, and picked by the trainer
only when its size is the model's input size."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml
from PIL import Image

from skyeye_data.compile.build import build
from skyeye_data.compile.images import TRAIN_IMAGES_DIR, ImageTableWriter, train_jpeg
from skyeye_data.compile.recipe import load_recipe, parse_recipe
from skyeye_data.compile.shards import commit_files
from _model_fixtures import tiny_model_dir, tokenizer  # noqa: F401  (fixtures)

PROJECT = Path(__file__).resolve().parents[1]
DEMO = PROJECT / "recipes" / "demo.yaml"
SIZE = 64


def tier_recipe(size: int | None = SIZE):
    data = yaml.safe_load(DEMO.read_text())
    data["train_size"] = size
    return parse_recipe(yaml.safe_dump(data, sort_keys=False))


@pytest.fixture(scope="module")
def tier_build(mini_raw_root, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tier-build")
    build(tier_recipe(), mini_raw_root, out, use_cache=False)
    return out


def table_rows(directory: Path) -> dict[str, dict]:
    rows = {}
    for path in sorted(directory.glob("*.parquet")):
        for row in pq.read_table(path).to_pylist():
            rows[row["image_id"]] = row
    return rows


def test_tier_holds_every_image_resized_and_is_named_in_the_manifest(tier_build):
    manifest = json.loads((tier_build / "manifest.json").read_text())
    assert manifest["train_images"] == {"path": TRAIN_IMAGES_DIR, "size": SIZE, "resize": "square bicubic", "format": "JPEG"}
    assert manifest["recipe"]["body"]["train_size"] == SIZE
    full, tier = table_rows(tier_build / "images"), table_rows(tier_build / TRAIN_IMAGES_DIR)
    assert full and set(tier) == set(full)  # same ids: samples reference both tables alike
    assert any(path.startswith(f"{TRAIN_IMAGES_DIR}/") for path in manifest["files"])  # checksummed with the rest
    for image_id, row in tier.items():
        assert hashlib.sha256(full[image_id]["bytes"]).hexdigest() == image_id  # the id is the original's
        with Image.open(io.BytesIO(row["bytes"])) as image:
            assert (image.format, image.mode, image.size) == ("JPEG", "RGB", (SIZE, SIZE))
        assert (row["format"], row["width"], row["height"]) == ("JPEG", SIZE, SIZE)
    # the pixels are the model's square bicubic resize of the original (JPEG q95 on top)
    image_id = next(iter(full))
    with Image.open(io.BytesIO(full[image_id]["bytes"])) as original:
        expected = np.asarray(original.convert("RGB").resize((SIZE, SIZE), Image.BICUBIC), dtype=float)
    with Image.open(io.BytesIO(tier[image_id]["bytes"])) as stored:
        assert np.abs(np.asarray(stored, dtype=float) - expected).mean() < 4


def test_tier_rebuild_is_byte_identical_and_leaving_it_out_removes_it(tier_build, mini_raw_root, tmp_path):
    again = tmp_path / "again"
    build(tier_recipe(), mini_raw_root, again, use_cache=False)
    first = json.loads((tier_build / "manifest.json").read_text())["files"]
    second = json.loads((again / "manifest.json").read_text())["files"]
    assert {k: v for k, v in first.items() if k.startswith(TRAIN_IMAGES_DIR)} == {k: v for k, v in second.items() if k.startswith(TRAIN_IMAGES_DIR)}
    # a recipe without train_size keeps the fingerprint of before the option existed, and a rebuild without it drops the tier
    assert tier_recipe(None).fingerprint() == load_recipe(DEMO).fingerprint() != tier_recipe().fingerprint()
    build(load_recipe(DEMO), mini_raw_root, again, use_cache=False)
    assert not list((again / TRAIN_IMAGES_DIR).glob("*.parquet"))
    assert "train_images" not in json.loads((again / "manifest.json").read_text())


def test_tier_table_loads_with_datasets(tier_build, tmp_path):
    datasets = pytest.importorskip("datasets")
    files = [str(p) for p in sorted((tier_build / TRAIN_IMAGES_DIR).glob("*.parquet"))]
    loaded = datasets.load_dataset("parquet", data_files=files, split="train", cache_dir=str(tmp_path / "hf"))
    assert len(loaded) == len(table_rows(tier_build / TRAIN_IMAGES_DIR))
    assert set(loaded.column_names) >= {"image_id", "bytes", "format", "width", "height"}


def test_trainer_picks_the_tier_only_at_its_size(tier_build):
    from skyeye_model.images import training_images

    folder, line = training_images(tier_build, SIZE)
    assert folder == tier_build / TRAIN_IMAGES_DIR and "pre-resized" in line
    folder, line = training_images(tier_build, 2 * SIZE)
    assert folder == tier_build / "images" and f"does not match image_size {2 * SIZE}" in line
    folder, line = training_images(tier_build, SIZE, use_tier=False)
    assert folder == tier_build / "images" and "train_tier is off" in line


def test_tier_pixels_match_the_full_table_path(tier_build, tokenizer):
    from skyeye_model.data import SampleDataset
    from skyeye_model.template import ChatTemplate

    template = ChatTemplate(tokenizer, 4, max_length=2048)
    full = SampleDataset(tier_build, template, SIZE)
    tier = SampleDataset(tier_build, template, SIZE, images_dir=tier_build / TRAIN_IMAGES_DIR)
    assert len(full) == len(tier) > 0
    for position in range(0, len(full), max(1, len(full) // 8)):
        a, b = full[position], tier[position]
        assert a.id == b.id and a.pixel_values.shape == b.pixel_values.shape
        if a.pixel_values.shape[0]:
            assert (a.pixel_values.float() - b.pixel_values.float()).abs().mean() < 4  # JPEG q95 of the same resize


def test_writer_tier_of_png_with_alpha_and_of_a_large_jpeg(tmp_path):
    writer = ImageTableWriter(tmp_path / "images", train_size=SIZE)
    rgba = io.BytesIO()
    Image.new("RGBA", (40, 30), (10, 200, 30, 128)).save(rgba, format="PNG")
    large = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (600, 900, 3), dtype=np.uint8)).save(large, format="JPEG")
    ids = [writer.add_bytes(rgba.getvalue()), writer.add_bytes(large.getvalue()), writer.add_bytes(rgba.getvalue())]
    commit_files(writer.close())
    tier = table_rows(tmp_path / TRAIN_IMAGES_DIR)
    assert set(tier) == set(ids) and len(tier) == 2  # stored once, like the full table
    assert train_jpeg(large.getvalue(), SIZE) == train_jpeg(large.getvalue(), SIZE) == tier[ids[1]]["bytes"]
