"""The last stage, write: every table a build writes, held under temporary names until :meth:`BuildOutputs.commit`.

Samples (``samples/<split>-NNNNN-of-NNNNN.parquet``, from whole Arrow tables or rows:
:mod:`skyeye_data.compile.batch_shards`), eval shards (adopted from the sources' segments, already in
their final layout), the review queue, the images table and ``quarantine.jsonl``; at commit the
previous build's shards are dropped and every new file is renamed into place (the card and, last, the manifest follow: :mod:`skyeye_data.compile.manifest`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa

from skyeye_data.compile.batch_shards import BatchShardWriter
from skyeye_data.compile.images import ImageTableWriter
from skyeye_data.compile.recipe import Recipe
from skyeye_data.compile.shards import commit_files, numbered_name, split_shard_name
from skyeye_data.io import PendingFile, link_or_copy, temporary_name
from skyeye_data.quarantine import QuarantineLog
from skyeye_data.tables import REVIEW_QUEUE_SCHEMA, SAMPLES_SCHEMA

OUTPUT_DIRS = ("samples", "images", "train-images", "eval", "review-queue")


class BuildOutputs:
    def __init__(self, out: Path, recipe: Recipe, frame_cache: Path, strict: bool = False):
        self.out = out
        self.recipe = recipe
        self.images = ImageTableWriter(out / "images", recipe.max_side, frame_cache, recipe.train_size)
        self.quarantine = QuarantineLog(out / "quarantine.jsonl", strict)
        self.sample_writers: dict[str, BatchShardWriter] = {}
        self.queue_writer: BatchShardWriter | None = None
        self.adopted: list[PendingFile] = []  # eval shards taken over from segments

    def _writer(self, directory: str, stem: str, schema, final_name) -> BatchShardWriter:
        return BatchShardWriter(self.out / directory, stem, schema, final_name, self.recipe.shard_size, self.recipe.row_group_size)

    def _samples(self, split: str) -> BatchShardWriter:
        if split not in self.sample_writers:
            self.sample_writers[split] = self._writer("samples", split, SAMPLES_SCHEMA, split_shard_name(split))
        return self.sample_writers[split]

    def _queue(self) -> BatchShardWriter:
        if self.queue_writer is None:
            self.queue_writer = self._writer("review-queue", "queue", REVIEW_QUEUE_SCHEMA, numbered_name("queue"))
        return self.queue_writer

    def write_sample(self, row: dict[str, Any]) -> None:
        self._samples(row["split"]).write(row)

    def write_sample_table(self, split: str, table: pa.Table) -> None:
        """Samples of one split, as a table (a segment's written rows)."""
        if table.num_rows:
            self._samples(split).write_table(table)

    def write_queued(self, row: dict[str, Any]) -> None:
        """A sample the review gate holds back for review."""
        self._queue().write(row)

    def write_queued_table(self, table: pa.Table) -> None:
        if table.num_rows:
            self._queue().write_table(table)

    def adopt_eval(self, shards: list[Path]) -> None:
        """A source's eval shards, complete files (hard links where possible) renamed into ``eval/`` at commit."""
        for shard in shards:
            final = self.out / "eval" / shard.name
            tmp = temporary_name(final)
            link_or_copy(shard, tmp)
            self.adopted.append(PendingFile(tmp, final))

    def _writers(self) -> list[BatchShardWriter]:
        queue = [self.queue_writer] if self.queue_writer is not None else []
        return [*self.sample_writers.values(), *queue]

    def commit(self) -> list[Path]:
        """Close everything, drop the previous build's shards, and rename the new files into place."""
        pending = [p for writer in self._writers() for p in writer.close()] + self.adopted
        pending += self.images.close()
        pending.append(self.quarantine.close())
        # without a manifest the folder reads as incomplete while files are being swapped
        (self.out / "manifest.json").unlink(missing_ok=True)
        new_finals = {p.final for p in pending}
        for directory in OUTPUT_DIRS:
            for stale in (self.out / directory).glob("*.parquet"):
                if stale not in new_finals:
                    stale.unlink()
        return commit_files(pending)

    def abort(self) -> None:
        for writer in self._writers():
            writer.abort()
        for item in self.adopted:
            item.tmp.unlink(missing_ok=True)
        self.images.abort()
        self.quarantine.abort()
