"""`skyeye export hf` read by the real consumers: `datasets.load_dataset`, TRL's vision collator, the Hub card parser."""

from __future__ import annotations

import re
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from interop_helpers import this_python, tiny_processor

from skyeye_data.export.hf import FEATURES, IMAGES_BYTES_COLUMN

# huggingface_hub DatasetCardData docs: the Hub's size_categories values
HUB_SIZE_CATEGORIES = {"n<1K", "1K<n<10K", "10K<n<100K", "100K<n<1M", "1M<n<10M", "10M<n<100M", "100M<n<1B", "1B<n<10B", "10B<n<100B", "100B<n<1T", "n>1T"}


def build_samples(build: Path) -> dict[str, dict]:
    return {r["id"]: r for p in sorted((build / "samples").glob("*.parquet")) for r in pq.read_table(p).to_pylist()}


@pytest.fixture(scope="module")
def hf_dir(export_of) -> Path:
    return export_of("hf")


@pytest.fixture(scope="module")
def dataset(hf_dir, tmp_path_factory):
    from datasets import load_dataset

    # a fresh cache: datasets may reuse the cache of an earlier folder of the same name
    return load_dataset(str(hf_dir), split="train", cache_dir=str(tmp_path_factory.mktemp("hf-cache")))


def test_load_dataset_returns_pil_images_next_to_messages(dataset, mini_build):
    from PIL import Image

    samples = build_samples(mini_build)
    assert len(dataset) == len(samples) and set(dataset["id"]) == set(samples)
    assert dataset.features == FEATURES
    for row in dataset:
        sample = samples[row["id"]]
        assert len(row["images"]) == len(sample["image_ids"]) and all(isinstance(im, Image.Image) for im in row["images"])
        assert [m["role"] for m in row["messages"]] == [t["role"] for t in sample["conversation"]]
        first = row["messages"][0]["content"]
        assert [p["type"] for p in first] == ["image"] * len(row["images"]) + ["text"]
        assert all(p["type"] == "text" for m in row["messages"][1:] for p in m["content"])
        texts = [p["text"] for m in row["messages"] for p in m["content"] if p["type"] == "text"]
        assert texts == [t["content"] for t in sample["conversation"]] and not any("<image>" in t for t in texts)


def test_parquet_alone_decodes_images_and_stores_each_image_once_per_shard(hf_dir, mini_build, tmp_path):
    from datasets import load_dataset
    from PIL import Image

    shards = sorted((hf_dir / "data").glob("train-*.parquet"))
    plain = load_dataset("parquet", data_files=[str(p) for p in shards], split="train", cache_dir=str(tmp_path))
    assert isinstance(plain[0]["images"][0], Image.Image)  # the schema's own feature metadata, no card needed
    stored = {r["image_id"]: len(r["bytes"]) for p in (mini_build / "images").glob("*.parquet") for r in pq.read_table(p).to_pylist()}
    for shard in shards:
        meta = pq.ParquetFile(shard).metadata
        assert meta.num_row_groups == 1
        column = next(meta.row_group(0).column(i) for i in range(meta.num_columns) if meta.row_group(0).column(i).path_in_schema == IMAGES_BYTES_COLUMN)
        assert column.has_dictionary_page and "RLE_DICTIONARY" in column.encodings
        ids = [i for row in pq.read_table(shard, columns=["image_ids"]).column("image_ids").to_pylist() for i in row]
        assert len(ids) > len(set(ids))  # the mini corpus shares images between samples (VQA, video frames)...
        # ...and the dictionary holds each distinct image once: its uncompressed size is what they weigh
        assert column.total_uncompressed_size < sum(stored[i] for i in ids)
        assert column.total_uncompressed_size >= sum(stored[i] for i in set(ids))


def test_dataset_card_passes_the_hub_card_checks(hf_dir, mini_build):
    from datasets.info import DatasetInfosDict
    from datasets.utils.metadata import MetadataConfigs
    from huggingface_hub import DatasetCard, DatasetCardData

    card = DatasetCard.load(hf_dir / "README.md", ignore_metadata_errors=False)
    data = card.data
    assert isinstance(data, DatasetCardData)
    assert data.license == "other" and re.fullmatch(r"[a-z0-9.-]+", data.license_name)
    assert (hf_dir / data.license_link).is_file()
    assert set(data.size_categories) <= HUB_SIZE_CATEGORIES and data.size_categories == ["n<1K"]
    assert "image-text-to-text" in data.task_categories
    infos = DatasetInfosDict.from_dataset_card_data(data)
    assert infos["default"].features == FEATURES
    configs = MetadataConfigs.from_dataset_card_data(data)
    assert configs["default"]["data_files"] == [{"split": "train", "path": "data/train-*"}]
    counts = {}
    for sample in build_samples(mini_build).values():
        counts[(sample["source"], sample["task"])] = counts.get((sample["source"], sample["task"]), 0) + 1
    for (source, task), n in counts.items():
        assert f"| {source} | {task} | {n} |" in card.text
    licences = (hf_dir / data.license_link).read_text()
    for entry in {s for s, _ in counts}:
        assert f"`{entry}`" in licences  # every source and mix with its licence row
    assert "research use" in licences and "CC BY 4.0" in licences and "```bibtex" in licences


@pytest.fixture(scope="module")
def processor(dataset, tmp_path_factory):
    from transformers import AutoProcessor

    texts = [p["text"] for row in dataset for m in row["messages"] for p in m["content"] if p["text"]]
    return AutoProcessor.from_pretrained(tiny_processor(this_python(), texts, tmp_path_factory.mktemp("qwen2vl") / "processor"))


def pick(dataset, wanted) -> dict:
    return dict(next(row for row in dataset if wanted(row)))


def test_trl_vision_collator_batches_single_image_video_and_multi_turn_rows(dataset, processor):
    from trl.trainer.sft_trainer import DataCollatorForVisionLanguageModeling

    rows = [
        pick(dataset, lambda r: len(r["images"]) == 1 and len(r["messages"]) == 2),
        pick(dataset, lambda r: len(r["images"]) == 4),
        pick(dataset, lambda r: len(r["messages"]) > 2),
    ]
    n_images = [len(r["images"]) for r in rows]
    batch = DataCollatorForVisionLanguageModeling(processor=processor)(rows)
    tokens = processor.tokenizer.convert_tokens_to_ids
    ids = batch["input_ids"]
    assert (ids == tokens("<|vision_start|>")).sum(dim=1).tolist() == n_images == [1, 4, 1]
    grid = batch["image_grid_thw"]
    assert grid.shape[0] == sum(n_images)  # one grid per image, in order
    per_image = (grid.prod(dim=1) // processor.image_processor.merge_size**2).tolist()
    bounds = [sum(n_images[:i]) for i in range(len(n_images) + 1)]
    expected = [sum(per_image[bounds[i] : bounds[i + 1]]) for i in range(len(n_images))]
    assert (ids == tokens("<|image_pad|>")).sum(dim=1).tolist() == expected
    assert batch["pixel_values"].shape[0] == int(grid.prod(dim=1).sum())
    assert (batch["labels"] != -100).sum() > 0


def tiny_qwen2_vl(tokenizer):
    """A randomly initialised Qwen2-VL with one layer a tower: its forward checks image features against image tokens."""
    import torch
    from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration

    ids = tokenizer.convert_tokens_to_ids
    config = Qwen2VLConfig(
        text_config={"vocab_size": len(tokenizer), "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
                     "num_attention_heads": 2, "num_key_value_heads": 1, "max_position_embeddings": 4096,
                     "rope_scaling": {"type": "mrope", "mrope_section": [4, 2, 2]}},
        vision_config={"depth": 1, "embed_dim": 32, "hidden_size": 32, "num_heads": 2, "mlp_ratio": 2, "patch_size": 14,
                       "spatial_merge_size": 2, "temporal_patch_size": 2},
        image_token_id=ids("<|image_pad|>"), video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"), vision_end_token_id=ids("<|vision_end|>"),
    )  # fmt: skip
    torch.manual_seed(0)
    return Qwen2VLForConditionalGeneration(config)


def test_sft_trainer_dataloader_feeds_every_row_to_a_vlm(dataset, processor, tmp_path):
    import torch
    from trl import SFTConfig, SFTTrainer

    model = tiny_qwen2_vl(processor.tokenizer)
    args = SFTConfig(output_dir=str(tmp_path), per_device_train_batch_size=8, report_to=[], use_cpu=True, dataloader_num_workers=0)
    trainer = SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=processor)
    rows = images = 0
    with torch.no_grad():
        for batch in trainer.get_train_dataloader():  # TRL's own pipeline: unused columns dropped, its collator
            rows += batch["input_ids"].shape[0]
            images += batch["image_grid_thw"].shape[0]
            # Qwen2-VL's forward raises when the image features and the image tokens of a batch differ
            assert torch.isfinite(model(**batch).loss)
    assert rows == len(dataset) and images == sum(len(r) for r in dataset["image_ids"])
