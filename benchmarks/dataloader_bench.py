"""Samples/s of the training data path, per dataloader worker count, next to a LLaVA-style baseline.

Both paths do the same work per sample — fetch the conversation, decode every image, resize it to
448x448, tokenize the chat template per segment, collate a batch — and differ only in storage:

- skyeye:  ``SampleDataset`` over ``OUT/samples/*.parquet`` + ``OUT/images/*.parquet`` (row-group
           index, image_id → row-group index, per-worker row-group caches), mixture sampler.
- llava:   one JSON list loaded whole, one image file per image opened by path (LLaVA / GeoChat).

    python benchmarks/dataloader_bench.py                      # builds a temporary set of shards
    python benchmarks/dataloader_bench.py --root demo-out/build --workers 0 1 2 4

Without ``--root`` it writes ``--samples`` synthetic JPEG samples (``--source-size`` px) itself.
The tokenizer is the tiny one of ``skyeye train make-tiny`` unless ``--tokenizer`` names a folder
(e.g. a Llama-2 folder). Numbers depend on the CPU, the disk cache and the image sizes; the first
pass over the data warms the page cache and is not timed.
"""

from __future__ import annotations

import argparse
import hashlib
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

from skyeye_model.collate import Collator  # noqa: E402
from skyeye_model.data import EncodedSample, SampleDataset  # noqa: E402
from skyeye_model.images import decode_resized  # noqa: E402
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


def resized_jpeg(data: bytes, size: int) -> bytes:
    """What a pre-resized training tier stores: the image already at the model's size (JPEG q 95)."""
    out = io.BytesIO()
    Image.fromarray(decode_resized(data, size)).save(out, format="JPEG", quality=95)
    return out.getvalue()


def build_shards(root: Path, count: int, side: int, row_group: int, image_row_group: int | None = None, train_size: int | None = None) -> None:
    """Synthetic shards. ``image_row_group`` (default: ``row_group``) and an uncompressed ``bytes`` column
    give the random-read layout; ``train_size`` stores every image pre-resized (the training tier)."""
    rng = np.random.default_rng(0)
    images = [synthetic_jpeg(rng, side) for _ in range(count)]
    if train_size:
        images = [resized_jpeg(data, train_size) for data in images]
        side = train_size
    ids = [hashlib.sha256(b).hexdigest() for b in images]
    (root / "images").mkdir(parents=True)
    (root / "samples").mkdir(parents=True)
    pq.write_table(
        pa.table({"image_id": ids, "bytes": images, "format": ["jpeg"] * count, "width": [side] * count, "height": [side] * count}),
        root / "images" / "images-00000.parquet",
        row_group_size=image_row_group or row_group,
        # JPEG bytes do not compress: a second codec over them only costs decode time on every read
        compression={"image_id": "snappy", "bytes": "none", "format": "snappy", "width": "snappy", "height": "snappy"}
        if image_row_group else "snappy",
    )
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
        pixels = [decode_resized(Path(p).read_bytes(), self.image_size) for p in entry["images"]]
        encoded = self.template.encode_dialog(conversation_turns(entry["conversation"]), len(pixels))
        return EncodedSample(
            entry["id"], "", torch.tensor(encoded.input_ids), torch.tensor(encoded.labels), torch.tensor(encoded.image_mask),
            torch.from_numpy(np.stack(pixels)),
        )  # fmt: skip


def samples_per_second(dataset, sampler, workers: int, batch_size: int, pad_id: int) -> float:
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, sampler=sampler, shuffle=sampler is None, collate_fn=Collator(pad_id),
        num_workers=workers, prefetch_factor=4 if workers else None,
    )  # fmt: skip
    start, seen = time.perf_counter(), 0
    for batch in loader:
        seen += batch.input_ids.shape[0]
    return seen / (time.perf_counter() - start)


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
    parser.add_argument("--row-group", type=int, default=64, help="row-group size of the synthetic shards")
    parser.add_argument("--image-row-group", type=int, help="images per row group of the images table, bytes uncompressed (e.g. 1: the random-read layout)")
    parser.add_argument("--train-size", type=int, help="also measure a pre-resized training tier at this size (e.g. 448)")
    parser.add_argument("--image-size", type=int, default=448)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--tokenizer", type=Path, help="tokenizer folder (default: the tiny tokenizer)")
    args = parser.parse_args()

    console = Console()
    with tempfile.TemporaryDirectory(prefix="skyeye-bench-") as scratch:
        root = args.root
        if root is None:
            root = Path(scratch) / "build"
            console.print(f"building {args.samples} synthetic samples ({args.source_size}px JPEG) in {root}")
            build_shards(root, args.samples, args.source_size, args.row_group, args.image_row_group)
        tokenizer = load_tokenizer(args.tokenizer)
        template = ChatTemplate(tokenizer, TOKENS_PER_IMAGE, max_length=2048)
        ours = SampleDataset(root, template, args.image_size, index_cache=Path(scratch) / "index")
        sampler = MixtureSampler(ours, {}, 1.0, seed=0)
        baseline = LlavaStyleDataset(export_llava(root, ours, Path(scratch) / "llava"), template, args.image_size)
        pad = tokenizer.unk_token_id or 0
        tier = None
        if args.train_size and args.root is None:
            tier_root = Path(scratch) / "tier"
            build_shards(tier_root, args.samples, args.source_size, args.row_group, args.image_row_group or 1, args.train_size)
            tier = SampleDataset(tier_root, template, args.image_size, index_cache=Path(scratch) / "tier-index")
            samples_per_second(tier, MixtureSampler(tier, {}, 1.0, seed=0), 0, args.batch_size, pad)
        samples_per_second(ours, sampler, 0, args.batch_size, pad)  # warm the page cache for both
        samples_per_second(baseline, None, 0, args.batch_size, pad)

        table = Table(title=f"data path samples/s ({len(ours)} samples, {args.image_size}px, batch {args.batch_size}, {torch.get_num_threads()} torch threads)")
        columns = ["workers", "skyeye (Parquet shards)", "llava-style (JSON + files)", "ratio"]
        for column in columns + ([f"skyeye, {args.train_size}px tier", "tier per worker"] if tier else []):
            table.add_column(column, justify="right")
        for workers in args.workers:
            ours_rate = samples_per_second(ours, sampler, workers, args.batch_size, pad)
            base_rate = samples_per_second(baseline, None, workers, args.batch_size, pad)
            row = [str(workers), f"{ours_rate:.1f}", f"{base_rate:.1f}", f"{ours_rate / base_rate:.2f}"]
            if tier:
                tier_rate = samples_per_second(tier, MixtureSampler(tier, {}, 1.0, seed=0), workers, args.batch_size, pad)
                row += [f"{tier_rate:.1f}", f"{tier_rate / max(1, workers):.1f}"]
            table.add_row(*row)
        console.print(table)


if __name__ == "__main__":
    main()
