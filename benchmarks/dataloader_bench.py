"""Samples/s of the training data path, per dataloader worker count, next to a LLaVA-style baseline.

Every side does the same work per sample, with the same code — fetch the conversation, decode every
image and resize it to 448x448 (``skyeye_model.decode``), tokenize the chat template per segment,
collate a batch (``skyeye_model.collate.Collator``), uint8 pixels across the worker boundary — and the
sides differ only in storage:

- skyeye:      ``SampleDataset`` over ``OUT/samples/*.parquet`` + ``OUT/images/*.parquet`` as the build
               writes them (``skyeye_data.compile.images.ImageTableWriter``: 16 images / ~1 MB per row
               group, image bytes uncompressed; image_id → row-group index mapped once per worker;
               per-worker row-group caches; Parquet files opened once per worker), mixture sampler.
- llava:       one JSON list loaded whole, one image file per image opened by path (LLaVA / GeoChat's
               ``LazySupervisedDataset`` storage), the same original image bytes.
- skyeye tier: as skyeye, images from ``OUT/train-images/`` (recipe ``train_size``: the build stored
               every image already resized to the model's 448x448, JPEG q95), so the resize is skipped.

A "storage only" table gives the per-sample cost of fetching a sample's row and image bytes without
decoding them: with the same decode on both sides, that difference is all storage can win.

    python benchmarks/dataloader_bench.py                      # builds a temporary set of shards
    python benchmarks/dataloader_bench.py --root demo-out/build --workers 0 1 2 4

Without ``--root`` it writes ``--samples`` synthetic JPEG samples (``--source-size`` px) itself, with
the build's image-table writer (and its ``train_size`` tier). The tokenizer is the tiny one of
``skyeye train make-tiny`` unless ``--tokenizer`` names a folder (e.g. a Llama-2 folder). Numbers depend
on the CPU, the disk cache and the image sizes; the first pass over the data warms the page cache and
is not timed, nor is each loader's first epoch (worker start-up); the best of the next ``--epochs`` is.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from PIL import Image
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from skyeye_data.compile.images import ImageTableWriter, train_images_entry  # noqa: E402
from skyeye_data.compile.shards import commit_files  # noqa: E402
from skyeye_model.collate import Collator  # noqa: E402
from skyeye_model.data import EncodedSample, SampleDataset  # noqa: E402
from skyeye_model.decode import decode_frames  # noqa: E402
from skyeye_model.images import training_images  # noqa: E402
from skyeye_model.sampler import MixtureSampler  # noqa: E402
from skyeye_model.template import ChatTemplate, conversation_turns  # noqa: E402

TOKENS_PER_IMAGE = 256  # 448 / 14 = 32 → 1024 patches / 4


def synthetic_jpeg(rng: np.random.Generator, side: int) -> bytes:
    # Smooth noise compresses like aerial imagery more than white noise does.
    small = rng.integers(0, 256, (side // 8, side // 8, 3), dtype=np.uint8)
    image = Image.fromarray(small).resize((side, side), Image.BILINEAR)
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=90)
    return out.getvalue()


def build_shards(root: Path, count: int, side: int, row_group: int, train_size: int | None) -> None:
    """Synthetic shards in the build's layout: the images table (and the ``train_size`` tier) by the
    build's own writer, the samples with ``row_group`` rows per row group (a recipe's ``row_group_size``)."""
    rng = np.random.default_rng(0)
    writer = ImageTableWriter(root / "images", train_size=train_size)
    ids = [writer.add_bytes(synthetic_jpeg(rng, side)) for _ in range(count)]
    commit_files(writer.close())
    # the manifest's entry for the tier, as skyeye_data.compile.manifest writes it
    (root / "manifest.json").write_text(json.dumps({"train_images": train_images_entry(train_size)} if train_size else {}), encoding="utf-8")
    (root / "samples").mkdir(parents=True)
    rows = [
        {
            "id": f"bench-{i:06d}",
            "source": ["rsicd", "rsvqa_lr", "dior_rsvg"][i % 3],
            "task": "caption",
            "split": "train",
            "image_ids": [ids[i]],
            "conversation": [
                {"role": "user", "content": "[caption] Briefly describe this image."},
                {"role": "assistant", "content": "many buildings and green trees are around a playground near a road"},
            ],
            "review_status": "auto",
            "provenance": "{}",
        }
        for i in range(count)
    ]
    pq.write_table(pa.Table.from_pylist(rows), root / "samples" / "train-00000-of-00001.parquet", row_group_size=row_group)


def export_llava(root: Path, dataset: SampleDataset, target: Path) -> Path:
    """The same samples as a LLaVA JSON list + image files (the baseline's storage)."""
    (target / "images").mkdir(parents=True)
    entries = []
    for position in range(len(dataset)):
        row = dataset.row(position)
        paths = []
        for image_id in row["image_ids"]:
            path = target / "images" / f"{image_id}.jpg"
            if not path.exists():
                path.write_bytes(dataset.images.read_bytes(image_id))
            paths.append(str(path))
        entries.append({"id": row["id"], "images": paths, "conversation": row["conversation"]})
    listing = target / "llava.json"
    listing.write_text(json.dumps(entries), encoding="utf-8")
    return listing


class LlavaStyleDataset(torch.utils.data.Dataset):
    """LLaVA's LazySupervisedDataset storage: the whole JSON list in memory, image files opened per item."""

    def __init__(self, listing: Path, template: ChatTemplate, image_size: int):
        self.entries = json.loads(listing.read_text(encoding="utf-8"))
        self.template = template
        self.image_size = image_size

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, index: int) -> EncodedSample:
        entry = self.entries[index]
        pixels = decode_frames([Path(p).read_bytes() for p in entry["images"]], self.image_size)
        encoded = self.template.encode_dialog(conversation_turns(entry["conversation"]), len(entry["images"]))
        return EncodedSample(
            entry["id"], "", torch.tensor(encoded.input_ids, dtype=torch.long), torch.tensor(encoded.labels, dtype=torch.long),
            torch.tensor(encoded.image_mask, dtype=torch.bool), pixels,
        )  # fmt: skip

    def fetch(self, index: int) -> list[bytes]:
        """Storage only: the entry and its image bytes, nothing decoded."""
        return [Path(p).read_bytes() for p in self.entries[index]["images"]]


def storage_microseconds(fetch, order: list[int]) -> float:
    """Per-sample cost of fetching a row and its image bytes (no decode), in µs."""
    start = time.perf_counter()
    for index in order:
        fetch(index)
    return (time.perf_counter() - start) / len(order) * 1e6


def samples_per_second(dataset, sampler, workers: int, batch_size: int, pad_id: int, epochs: int = 2) -> float:
    """Steady-state rate of a loader set up as the trainer's (``train.make_loader``): persistent workers,
    prefetch 4. The first epoch (worker start-up, cold caches) is not timed; the best later epoch is."""
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, sampler=sampler, shuffle=sampler is None, collate_fn=Collator(pad_id),
        num_workers=workers, prefetch_factor=4 if workers else None, persistent_workers=workers > 0,
    )  # fmt: skip
    rates = []
    for _ in range(epochs):
        start, seen = time.perf_counter(), 0
        for batch in loader:
            seen += batch.input_ids.shape[0]
        rates.append(seen / (time.perf_counter() - start))
    return max(rates[1:] or rates)


def load_tokenizer(path: Path | None):
    if path is None:
        from skyeye_model.tiny import build_tokenizer

        return build_tokenizer()
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, help="a `skyeye build` output folder (default: build a temporary one)")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--samples", type=int, default=384, help="synthetic samples when --root is not given")
    parser.add_argument("--source-size", type=int, default=512, help="synthetic image side (px) before the resize")
    parser.add_argument("--row-group", type=int, default=1000, help="samples per row group of the synthetic shards (the recipe default)")
    parser.add_argument("--image-size", type=int, default=448)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs per loader (the best counts), after an untimed one")
    parser.add_argument("--tokenizer", type=Path, help="tokenizer folder (default: the tiny tokenizer)")
    args = parser.parse_args()

    console = Console()
    with tempfile.TemporaryDirectory(prefix="skyeye-bench-") as scratch:
        root = args.root
        if root is None:
            root = Path(scratch) / "build"
            console.print(f"building {args.samples} synthetic samples ({args.source_size}px JPEG, {args.image_size}px tier) in {root}")
            build_shards(root, args.samples, args.source_size, args.row_group, args.image_size)
        tokenizer = load_tokenizer(args.tokenizer)
        template = ChatTemplate(tokenizer, TOKENS_PER_IMAGE, max_length=2048)
        ours = SampleDataset(root, template, args.image_size, index_cache=Path(scratch) / "index")
        sampler = MixtureSampler(ours, {}, 1.0, seed=0)
        baseline = LlavaStyleDataset(export_llava(root, ours, Path(scratch) / "llava"), template, args.image_size)
        pad = tokenizer.unk_token_id or 0
        tier_dir, tier_line = training_images(root, args.image_size)
        tier = None
        if tier_dir.name != "images":
            tier = SampleDataset(root, template, args.image_size, index_cache=Path(scratch) / "tier-index", images_dir=tier_dir)
        console.print(tier_line)
        sides = [("skyeye", ours, sampler), ("llava", baseline, None)] + ([("tier", tier, MixtureSampler(tier, {}, 1.0, seed=0))] if tier else [])
        for _, dataset, side_sampler in sides:  # warm the page cache for every side
            samples_per_second(dataset, side_sampler, 0, args.batch_size, pad, epochs=1)

        table = Table(title=f"data path samples/s ({len(ours)} samples, {args.image_size}px, batch {args.batch_size}, {torch.get_num_threads()} torch threads)")
        columns = ["workers", "skyeye (Parquet, full images)", "llava-style (JSON + files)", "ratio"]
        columns += [f"skyeye, {args.image_size}px tier", "tier per worker", "tier / llava"] if tier else []
        for column in columns:
            table.add_column(column, justify="right")
        for workers in args.workers:
            rates = {name: samples_per_second(dataset, side_sampler, workers, args.batch_size, pad, 1 + args.epochs) for name, dataset, side_sampler in sides}
            row = [str(workers), f"{rates['skyeye']:.1f}", f"{rates['llava']:.1f}", f"{rates['skyeye'] / rates['llava']:.2f}"]
            if tier:
                row += [f"{rates['tier']:.1f}", f"{rates['tier'] / max(1, workers):.1f}", f"{rates['tier'] / rates['llava']:.2f}"]
            table.add_row(*row)
        console.print(table)

        order = [item if isinstance(item, int) else int(item[0]) for item in sampler]
        storage = Table(title="storage only: µs per sample to fetch the row and image bytes (0 workers, nothing decoded)")
        for column in ["skyeye (Parquet)", "llava-style (JSON + files)"]:
            storage.add_column(column, justify="right")
        ours_fetch = lambda p: [ours.images.read_bytes(i) for i in ours.row(p)["image_ids"]]  # noqa: E731
        storage.add_row(f"{storage_microseconds(ours_fetch, order):.0f}", f"{storage_microseconds(baseline.fetch, order):.0f}")
        console.print(storage)


if __name__ == "__main__":
    main()
