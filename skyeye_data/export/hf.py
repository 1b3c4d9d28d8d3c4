"""``skyeye export hf``: a self-contained Hugging Face view of a build.

``DIR/data/train-NNNNN-of-NNNNN.parquet``, one sample a row, with

* ``messages``: ``[{role: user|assistant, content: [{type: image|text, text}]}]`` -- the chat format
  of transformers' ``apply_chat_template`` and TRL (``trl/data_utils.py``
  ``prepare_multimodal_messages``: image parts are ``{"type": "image"}`` placeholders, filled in
  order from ``images``). The first user turn starts with one ``{"type": "image"}`` part per image
  (a video sample: one per frame, in order); no ``<image>`` tag is left in any text. Image parts
  carry ``text: null`` (one Arrow struct type for every part, as in the Hub's own VLM sets);
* ``images``: ``List(Image())`` -- ``{bytes, path}`` structs that ``datasets`` decodes to PIL;
* the SkyEye columns: ``id``, ``source``, ``task``, ``split``, ``image_ids``, ``review_status``,
  ``provenance`` (JSON text).

``DIR/README.md`` is a dataset card whose YAML declares the ``default`` config (``data/train-*``)
and the features (``images: list: image``), so ``load_dataset(DIR)`` and the Hub viewer show PIL
images next to the messages. The Parquet schema also carries ``datasets``' own feature metadata,
so ``load_dataset("parquet", data_files=...)`` decodes the images too. ``DIR/LICENSE.md`` holds the
sources' licences and citations (the card's ``license_link``).

Images are embedded, each stored **once per shard**: a shard is one Parquet row group whose
``images.bytes`` column is dictionary-encoded, so the rows of a shard that share an image (the
questions of one RSVQA image, the captions of one UCM image) point to one copy. Sizes measured
with ``benchmarks/export_hf_size.py`` on a paper-scale synthetic corpus (rsvqa_lr, ucm_captions,
sydney_captions, dior_rsvg, capera at their real counts, tiny images), all bytes on disk:

    93,011 samples, 16,796 distinct images (743 B each on average), 47 shards of 2,000 rows
    distinct image bytes, once ....................... 12,487,892
    embedded, once per shard (this export) ...........  7,163,023
    referenced (Parquet 4,122,074 + image files) ..... 16,609,966  (72.9 MB in 4 KiB blocks)
    embedded, one copy per row .......................  7,282,705  (4.76x the image bytes before zstd)

Samples sharing an image are adjacent in a build, so once per shard stores 1.001x the distinct
image bytes: referencing saves nothing over it and would lose the self-contained view (a relative
path in an ``Image`` column resolves against the reader's working directory, not the dataset
folder, and the Hub viewer cannot follow it). One copy per row costs the number of samples per
image (x100 for RSVQA) wherever compression does not catch the repeats (real JPEGs). ``load_dataset`` decodes the dictionary into
its Arrow cache, so that cache holds one copy per row: stream (``streaming=True``) the large VQA
sources. While it runs, the export keeps one copy of the images as files in ``DIR/.images-staging``
(removed at the end). A shard closes at ``shard_mb`` MB of distinct image bytes (default 100: a row group small
enough for the viewer and for readers that load one at a time) or ``shard_rows`` rows.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import pyarrow as pa
import pyarrow.parquet as pq
from datasets import Features, Image, List, Value

from skyeye_data.export.cards import hf_export_card, license_file
from skyeye_data.export.common import (
    ExportSummary,
    image_file_name,
    image_formats,
    iter_samples,
    open_build,
    progress_call,
    write_image_files,
)
from skyeye_data.io import temporary_name, write_text_atomic

DATA_DIR = "data"
STAGING_DIR = ".images-staging"  # each image once, as a file, while the shards are written
DEFAULT_SHARD_MB = 100
DEFAULT_SHARD_ROWS = 50_000
IMAGES_BYTES_COLUMN = "images.list.element.bytes"  # the Parquet column path of the image bytes

PART = {"type": Value("string"), "text": Value("string")}
FEATURES = Features(
    {
        "id": Value("string"),
        "source": Value("string"),
        "task": Value("string"),
        "split": Value("string"),
        "messages": List({"role": Value("string"), "content": List(PART)}),
        "images": List(Image()),
        "image_ids": List(Value("string")),
        "review_status": Value("string"),
        "provenance": Value("string"),
    }
)

# The same features as the card's YAML ``dataset_info.features`` (the Hub's card format; a test
# checks that ``datasets`` reads it back as FEATURES).
FEATURES_YAML: list[dict[str, Any]] = [
    {"name": "id", "dtype": "string"},
    {"name": "source", "dtype": "string"},
    {"name": "task", "dtype": "string"},
    {"name": "split", "dtype": "string"},
    {"name": "messages", "list": [
        {"name": "role", "dtype": "string"},
        {"name": "content", "list": [{"name": "type", "dtype": "string"}, {"name": "text", "dtype": "string"}]},
    ]},  # fmt: skip
    {"name": "images", "list": "image"},
    {"name": "image_ids", "list": "string"},
    {"name": "review_status", "dtype": "string"},
    {"name": "provenance", "dtype": "string"},
]


def hf_messages(sample: dict[str, Any]) -> list[dict[str, Any]]:
    """SkyEye's ``conversation`` as chat messages with one image part per image, first user turn first."""
    messages = []
    for i, turn in enumerate(sample["conversation"]):
        parts = [{"type": "image", "text": None} for _ in sample["image_ids"]] if i == 0 else []
        parts.append({"type": "text", "text": turn["content"]})
        messages.append({"role": turn["role"], "content": parts})
    return messages


@dataclass
class Shard:
    rows: list[dict[str, Any]]
    image_bytes: int = 0


def plan_shards(samples: Iterator[dict[str, Any]], sizes: dict[str, int], shard_bytes: int, shard_rows: int) -> Iterator[Shard]:
    """Consecutive samples grouped so that a shard's distinct images stay under ``shard_bytes``."""
    shard, seen = Shard([]), set()
    for sample in samples:
        distinct = list(dict.fromkeys(sample["image_ids"]))
        new = [i for i in distinct if i not in seen]
        if shard.rows and (shard.image_bytes + sum(sizes[i] for i in new) > shard_bytes or len(shard.rows) >= shard_rows):
            yield shard
            shard, seen, new = Shard([]), set(), distinct
        shard.rows.append(sample)
        shard.image_bytes += sum(sizes[i] for i in new)
        seen.update(new)
    if shard.rows:
        yield shard


def shard_table(shard: Shard, staging: Path, formats: dict[str, str]) -> pa.Table:
    cache: dict[str, bytes] = {}

    def image(image_id: str) -> dict[str, Any]:
        if image_id not in cache:
            cache[image_id] = (staging / image_file_name(image_id, formats)).read_bytes()
        return {"bytes": cache[image_id], "path": image_file_name(image_id, formats)}

    rows = [
        {
            "id": s["id"], "source": s["source"], "task": s["task"], "split": s["split"],
            "messages": hf_messages(s), "images": [image(i) for i in s["image_ids"]], "image_ids": s["image_ids"],
            "review_status": s["review_status"], "provenance": s["provenance"],
        }  # fmt: skip
        for s in shard.rows
    ]
    return pa.Table.from_pylist(rows, schema=FEATURES.arrow_schema)


def write_shard(table: pa.Table, final: Path, dictionary_limit: int) -> None:
    """One row group, image bytes dictionary-encoded: each distinct image stored once in the file."""
    tmp = temporary_name(final)
    pq.write_table(
        table, tmp, row_group_size=max(1, table.num_rows), use_dictionary=[IMAGES_BYTES_COLUMN],
        dictionary_pagesize_limit=dictionary_limit, compression="zstd",
    )  # fmt: skip
    tmp.replace(final)


def export_hf(
    build_dir: Path,
    out: Path,
    shard_mb: int = DEFAULT_SHARD_MB,
    shard_rows: int = DEFAULT_SHARD_ROWS,
    on_item: Callable[[], None] | None = None,
) -> ExportSummary:
    build_dir, out = Path(build_dir), Path(out)
    manifest = open_build(build_dir)
    advance = progress_call(on_item)
    formats = image_formats(build_dir)
    summary = ExportSummary(out)
    wanted = {i for s in iter_samples(build_dir) for i in s["image_ids"]}
    for image_id in wanted:
        image_file_name(image_id, formats)  # a missing image stops the export before anything is written
    staging = out / STAGING_DIR
    data = out / DATA_DIR
    data.mkdir(parents=True, exist_ok=True)
    for stale in data.glob("train-*.parquet"):
        stale.unlink()  # a re-export with fewer shards must not leave old ones behind
    try:
        summary.images = write_image_files(build_dir, staging, wanted, formats)
        sizes = {i: (staging / image_file_name(i, formats)).stat().st_size for i in wanted}
        pending: list[Path] = []
        shard_bytes = shard_mb * 1024 * 1024
        for index, shard in enumerate(plan_shards(iter_samples(build_dir), sizes, shard_bytes, shard_rows)):
            part = data / f"part-{index:05d}.parquet.pending"
            # the dictionary limit must hold every distinct image of the shard, or Parquet falls back to one copy a row
            write_shard(shard_table(shard, staging, formats), part, dictionary_limit=max(shard.image_bytes * 2, 1 << 20))
            pending.append(part)
            summary.samples += len(shard.rows)
            for _ in shard.rows:
                advance()
        for index, part in enumerate(pending):
            name = f"train-{index:05d}-of-{len(pending):05d}.parquet"
            part.replace(data / name)
            summary.files.append(f"{DATA_DIR}/{name}")
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        for leftover in data.glob("*.pending"):
            leftover.unlink()
    write_text_atomic(out / "LICENSE.md", license_file(manifest))
    write_text_atomic(out / "README.md", hf_export_card(manifest, summary.samples, FEATURES_YAML, __doc__))
    summary.files += ["README.md", "LICENSE.md"]
    return summary
