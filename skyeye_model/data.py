"""The training dataset over a build output (``OUT/samples/<split>-*.parquet`` + ``OUT/images``).

Map-style, so a sampler decides the order and each index goes to exactly one dataloader worker.
Opening it reads the filter columns (``source``, ``task``, ``review_status``) and runs the **length
scan**: every kept sample's text is tokenized (batched per row group) and the template's length policy
decides whether it is kept whole, truncated or skipped (see ``template``). Skipped samples are left
out of the dataset; ``length_report`` counts all three per source, with the reasons of the skipped
ones, and ``lengths`` (tokens per sample) serves length-grouped batching. A sample's row is read again
only when it is fetched, one row group at a time, with a per-process cache bounded in bytes. Images are decoded
and resized in the worker that fetches the sample.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from skyeye_model.decode import decode_frames
from skyeye_model.images import ImageIndex, ImageStore
from skyeye_model.sampler import PlanItem
from skyeye_model.shared_batch import worker_buffer
from skyeye_model.template import ChatTemplate, Encoded, conversation_turns

SAMPLE_COLUMNS = ["id", "source", "task", "image_ids", "conversation"]


@dataclass
class EncodedSample:
    """One sample ready for collation."""

    id: str
    source: str
    input_ids: torch.Tensor
    labels: torch.Tensor
    image_mask: torch.Tensor
    pixel_values: torch.Tensor  # uint8 [frames, size, size, 3], channels last as decoded (the model permutes)
    weight: float = 1.0


@dataclass
class SourceLengths:
    """What the length policy did to one source's samples."""

    kept: int = 0  # in the dataset (whole or truncated)
    truncated: int = 0
    skipped: int = 0
    skipped_examples: list[str] = field(default_factory=list)  # "id: reason", the first few


def length_report_lines(report: dict[str, SourceLengths]) -> list[str]:
    """One line per source with truncated or skipped samples (printed before the first step)."""
    lines = []
    for source, counts in sorted(report.items()):
        if counts.truncated or counts.skipped:
            example = f" (e.g. {counts.skipped_examples[0]})" if counts.skipped_examples else ""
            lines.append(f"{source}: {counts.kept} samples, {counts.truncated} truncated, {counts.skipped} skipped{example}")
    return lines or ["length policy: no sample truncated or skipped"]


def even_frames(image_ids: list[str], max_frames: int) -> list[str]:
    """At most ``max_frames`` of a video's frames, evenly spaced, first frame included, order kept."""
    if len(image_ids) <= max_frames:
        return list(image_ids)
    positions = np.linspace(0, len(image_ids) - 1, max_frames).round().astype(int)
    return [image_ids[p] for p in positions]


def sample_files(root: Path, split: str) -> list[Path]:
    files = sorted((Path(root) / "samples").glob(f"{split}-*.parquet"))
    if not files:
        raise FileNotFoundError(f"no {split} sample shards ({root}/samples/{split}-*.parquet)")
    return files


class SampleDataset(torch.utils.data.Dataset):
    """Encoded samples by position; positions index the kept rows of all shards in file order."""

    def __init__(
        self,
        root: Path,
        template: ChatTemplate,
        image_size: int,
        split: str = "train",
        tasks: list[str] | None = None,
        exclude_review_status: list[str] = ("rejected",),
        max_frames: int = 4,
        index_cache: Path | None = None,
        draft: bool = True,
        row_cache_bytes: int = 256 << 20,
        images_dir: Path | None = None,
    ):
        self.files = sample_files(root, split)
        self.template = template
        self.image_size = image_size
        self.max_frames = max_frames
        self.draft = draft  # False: full-size JPEG decoding (MiniGPT-v2's exact pixels)
        # images_dir: the pre-resized training tier when the trainer picked it (images.training_images)
        self.images = ImageStore(ImageIndex.open(Path(images_dir) if images_dir else Path(root) / "images", index_cache))
        self._scan(tasks, set(exclude_review_status))
        self.row_cache_bytes = row_cache_bytes
        self._cache: OrderedDict[tuple[int, int], list[pa.Array]] = OrderedDict()
        self._cached_bytes = 0
        self._parquet: dict[int, pq.ParquetFile] = {}
        self._pid = os.getpid()

    def _scan(self, tasks: list[str] | None, excluded: set[str]) -> None:
        locations, sources, lengths = [], [], []
        self.length_report: dict[str, SourceLengths] = {}
        for file_number, path in enumerate(self.files):
            parquet = pq.ParquetFile(path)
            wanted = [c for c in ("source", "task", "review_status") if c in parquet.schema_arrow.names]
            for row_group in range(parquet.num_row_groups):
                table = parquet.read_row_group(row_group, columns=wanted)
                keep = np.ones(table.num_rows, dtype=bool)
                if tasks is not None:
                    keep &= np.isin(np.array(table.column("task").to_pylist(), dtype=object), tasks)
                if excluded and "review_status" in wanted:
                    keep &= ~np.isin(np.array(table.column("review_status").to_pylist(), dtype=object), list(excluded))
                rows = np.flatnonzero(keep)
                if not len(rows):
                    continue
                texts = parquet.read_row_group(row_group, columns=["id", "image_ids", "conversation"]).take(rows).to_pylist()
                statuses = self._length_scan(texts)
                group_sources = table.column("source").to_pylist()
                kept_rows = []
                for row, record, (status, length, reason) in zip(rows, texts, statuses):
                    counts = self.length_report.setdefault(group_sources[row], SourceLengths())
                    if status == "skipped":
                        counts.skipped += 1
                        if len(counts.skipped_examples) < 5:
                            counts.skipped_examples.append(f"{record['id']}: {reason}")
                        continue
                    counts.kept += 1
                    counts.truncated += status == "truncated"
                    kept_rows.append(row)
                    sources.append(group_sources[row])
                    lengths.append(length)
                kept_rows = np.array(kept_rows, dtype=np.int64)
                locations.append(np.stack([np.full_like(kept_rows, file_number), np.full_like(kept_rows, row_group), kept_rows], 1))
        self.locations = np.concatenate(locations) if locations else np.zeros((0, 3), dtype=np.int64)
        self.lengths = np.array(lengths, dtype=np.int64)
        self.source_names = sorted(set(sources))
        code_of = {name: code for code, name in enumerate(self.source_names)}
        self.source_codes = np.array([code_of[s] for s in sources], dtype=np.int32)

    def _length_scan(self, records: list[dict]) -> list[tuple[str, int, str]]:
        """(status, tokens, reason) per record; the text of the whole row group tokenized in one call."""
        parsed = []
        for record in records:
            try:
                parsed.append((conversation_turns(record["conversation"] or []), len(even_frames(record["image_ids"] or [], self.max_frames))))
            except ValueError as error:
                parsed.append((None, 0, f"malformed conversation: {error}"))
        self.template.prefetch(set().union(*[self.template.texts_of(p[0], p[1]) for p in parsed if p[0]]))
        results = []
        for item in parsed:
            if item[0] is None:
                results.append(("skipped", 0, item[2]))
            elif not item[0]:
                results.append(("skipped", 0, "no (question, answer) turn"))
            else:
                encoded = self.template.encode_dialog(item[0], item[1])
                results.append((encoded.status, len(encoded.input_ids), encoded.reason))
        return results

    def __len__(self) -> int:
        return len(self.locations)

    def counts_by_source(self) -> dict[str, int]:
        return {name: int((self.source_codes == code).sum()) for code, name in enumerate(self.source_names)}

    def row(self, position: int) -> dict:
        """The raw sample row (id, source, task, image_ids, conversation) at ``position``."""
        if self._pid != os.getpid():  # forked worker: its own handles and cache, never the parent's
            self._cache, self._cached_bytes, self._parquet, self._pid = OrderedDict(), 0, {}, os.getpid()
        file_number, row_group, row = (int(v) for v in self.locations[position])
        key = (file_number, row_group)
        if key not in self._cache:
            # a shuffled order touches every row group again and again: the file is opened once per process
            # (not per miss) and decoded row groups are kept up to a byte budget, not a count (a default
            # 1,000-row group of the paper set is ~0.3 MB of text: all of it fits in ~300 MB)
            if file_number not in self._parquet:
                self._parquet[file_number] = pq.ParquetFile(self.files[file_number])
            table = self._parquet[file_number].read_row_group(row_group, columns=SAMPLE_COLUMNS)
            # one array per column: a row is then read column by column (~30 µs, half of slice().to_pylist())
            self._cache[key] = [table.column(name).combine_chunks() for name in SAMPLE_COLUMNS]
            self._cached_bytes += table.nbytes
            while self._cached_bytes > self.row_cache_bytes and len(self._cache) > 1:
                self._cached_bytes -= sum(column.nbytes for column in self._cache.popitem(last=False)[1])
        self._cache.move_to_end(key)
        return {name: column[row].as_py() for name, column in zip(SAMPLE_COLUMNS, self._cache[key])}

    def pixels(self, image_ids: list[str], out: torch.Tensor | None = None) -> torch.Tensor:
        return decode_frames([self.images.read_bytes(i) for i in image_ids], self.image_size, self.draft, out)

    def _encode(self, item: PlanItem | int) -> tuple[dict, Encoded, list[str], float]:
        position, weight = (item, 1.0) if isinstance(item, (int, np.integer)) else item
        row = self.row(position)
        image_ids = even_frames(row["image_ids"] or [], self.max_frames)
        try:
            encoded = self.template.encode_dialog(conversation_turns(row["conversation"]), len(image_ids))
        except ValueError as error:
            raise ValueError(f"sample {row['id']} ({self.files[int(self.locations[position][0])].name}): {error}") from error
        if encoded.status == "skipped":  # the length scan left these out; a changed file must not slip one in
            raise ValueError(f"sample {row['id']}: {encoded.reason} (the shards changed since the dataset was opened?)")
        return row, encoded, image_ids, weight

    def _sample(self, row: dict, encoded: Encoded, weight: float, pixels: torch.Tensor) -> EncodedSample:
        return EncodedSample(
            id=row["id"],
            source=row["source"],
            # via NumPy: torch.tensor on a list of ints is ~3x slower (measured, ~70 µs for 300 ids)
            input_ids=torch.from_numpy(np.array(encoded.input_ids, dtype=np.int64)),
            labels=torch.from_numpy(np.array(encoded.labels, dtype=np.int64)),
            image_mask=torch.from_numpy(np.array(encoded.image_mask, dtype=np.bool_)),
            pixel_values=pixels,  # every frame: the policy never cuts images
            weight=weight,
        )

    def __getitem__(self, item: PlanItem | int) -> EncodedSample:
        row, encoded, image_ids, weight = self._encode(item)
        return self._sample(row, encoded, weight, self.pixels(image_ids) if image_ids else self._no_pixels())

    def __getitems__(self, items: list) -> list[EncodedSample]:
        """A batch at once (torch's fetcher calls this when it exists): every image is decoded straight into
        one batch buffer, in shared memory in a worker (``shared_batch``: a buffer the main process is done
        with), which the collator passes on as it is: no per-sample allocation, no copy into the batch, one
        storage to send."""
        encoded = [self._encode(item) for item in items]
        frames = worker_buffer((sum(len(e[2]) for e in encoded), self.image_size, self.image_size, 3), torch.uint8)
        samples, start = [], 0
        for row, tokens, image_ids, weight in encoded:
            slot = frames[start : start + len(image_ids)]
            samples.append(self._sample(row, tokens, weight, self.pixels(image_ids, slot) if image_ids else self._no_pixels()))
            start += len(image_ids)
        return samples

    def _no_pixels(self) -> torch.Tensor:
        return torch.zeros((0, self.image_size, self.image_size, 3), dtype=torch.uint8)
