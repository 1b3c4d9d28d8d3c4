"""The training dataset over a build output (``OUT/samples/<split>-*.parquet`` + ``OUT/images``).

Map-style, so a sampler decides the order and each index goes to exactly one dataloader worker.
Opening it reads Parquet footers (row-group sizes) and three small columns (``source``, ``task``,
``review_status``) to filter and to build the mixture; a sample's row (conversation, image ids) is
read only when the sample is fetched, one row group at a time with a small per-process cache.
Images are decoded and resized in the worker that fetches the sample.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from skyeye_model.images import ImageIndex, ImageStore, decode_resized
from skyeye_model.sampler import PlanItem
from skyeye_model.template import ChatTemplate, conversation_turns

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
    ):
        self.files = sample_files(root, split)
        self.template = template
        self.image_size = image_size
        self.max_frames = max_frames
        self.images = ImageStore(ImageIndex.open(Path(root) / "images", index_cache))
        self._scan(tasks, set(exclude_review_status))
        self._cache: OrderedDict[tuple[int, int], pa.Table] = OrderedDict()
        self._pid = os.getpid()

    def _scan(self, tasks: list[str] | None, excluded: set[str]) -> None:
        locations, sources = [], []
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
                locations.append(np.stack([np.full_like(rows, file_number), np.full_like(rows, row_group), rows], 1))
                group_sources = table.column("source").to_pylist()
                sources += [group_sources[r] for r in rows]
        self.locations = np.concatenate(locations) if locations else np.zeros((0, 3), dtype=np.int64)
        self.source_names = sorted(set(sources))
        code_of = {name: code for code, name in enumerate(self.source_names)}
        self.source_codes = np.array([code_of[s] for s in sources], dtype=np.int32)

    def __len__(self) -> int:
        return len(self.locations)

    def counts_by_source(self) -> dict[str, int]:
        return {name: int((self.source_codes == code).sum()) for code, name in enumerate(self.source_names)}

    def row(self, position: int) -> dict:
        """The raw sample row (id, source, task, image_ids, conversation) at ``position``."""
        if self._pid != os.getpid():  # forked worker: start its own cache
            self._cache, self._pid = OrderedDict(), os.getpid()
        file_number, row_group, row = (int(v) for v in self.locations[position])
        key = (file_number, row_group)
        if key not in self._cache:
            self._cache[key] = pq.ParquetFile(self.files[file_number]).read_row_group(row_group, columns=SAMPLE_COLUMNS)
            if len(self._cache) > 4:
                self._cache.popitem(last=False)
        self._cache.move_to_end(key)
        return self._cache[key].slice(row, 1).to_pylist()[0]

    def pixels(self, image_ids: list[str]) -> torch.Tensor:
        arrays = [decode_resized(self.images.read_bytes(i), self.image_size) for i in image_ids]
        return torch.from_numpy(np.stack(arrays))

    def __getitem__(self, item: PlanItem | int) -> EncodedSample:
        position, weight = (item, 1.0) if isinstance(item, (int, np.integer)) else item
        row = self.row(position)
        image_ids = even_frames(row["image_ids"] or [], self.max_frames)
        try:
            encoded = self.template.encode_dialog(conversation_turns(row["conversation"]), len(image_ids))
        except ValueError as error:
            raise ValueError(f"sample {row['id']} ({self.files[int(self.locations[position][0])].name}): {error}") from error
        kept_images = sum(encoded.image_mask) // self.template.tokens_per_image  # truncation may cut frames
        return EncodedSample(
            id=row["id"],
            source=row["source"],
            input_ids=torch.tensor(encoded.input_ids, dtype=torch.long),
            labels=torch.tensor(encoded.labels, dtype=torch.long),
            image_mask=torch.tensor(encoded.image_mask, dtype=torch.bool),
            pixel_values=self.pixels(image_ids[:kept_images]) if kept_images else self._no_pixels(),
            weight=weight,
        )

    def _no_pixels(self) -> torch.Tensor:
        return torch.zeros((0, self.image_size, self.image_size, 3), dtype=torch.uint8)
