"""The last stage, write: every table a build writes, held under temporary names until :meth:`BuildOutputs.commit`.

Samples (``samples/<split>-NNNNN-of-NNNNN.parquet``), eval shards, the review queue, the images
table and ``quarantine.jsonl``; at commit the previous build's shards are dropped and every new
file is renamed into place (the card and, last, the manifest follow: :mod:`skyeye_data.compile.manifest`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from skyeye_data.compile.images import ImageTableWriter
from skyeye_data.compile.recipe import Recipe
from skyeye_data.compile.shards import ShardedParquetWriter, commit_files, numbered_name, split_shard_name
from skyeye_data.quarantine import QuarantineLog
from skyeye_data.tables import EVAL_SCHEMA, REVIEW_QUEUE_SCHEMA, SAMPLES_SCHEMA

OUTPUT_DIRS = ("samples", "images", "eval", "review-queue")


class BuildOutputs:
    def __init__(self, out: Path, recipe: Recipe, frame_cache: Path, strict: bool = False):
        self.out = out
        self.recipe = recipe
        self.images = ImageTableWriter(out / "images", recipe.max_side, frame_cache)
        self.quarantine = QuarantineLog(out / "quarantine.jsonl", strict)
        self.sample_writers: dict[str, ShardedParquetWriter] = {}
        self.eval_writers: dict[tuple[str, str], ShardedParquetWriter] = {}
        self.queue_writer: ShardedParquetWriter | None = None

    def _writer(self, directory: str, stem: str, schema, final_name) -> ShardedParquetWriter:
        return ShardedParquetWriter(self.out / directory, stem, schema, final_name, self.recipe.shard_size, self.recipe.row_group_size)

    def write_sample(self, row: dict[str, Any]) -> None:
        split = row["split"]
        if split not in self.sample_writers:
            self.sample_writers[split] = self._writer("samples", split, SAMPLES_SCHEMA, split_shard_name(split))
        self.sample_writers[split].write(row)

    def write_queued(self, row: dict[str, Any]) -> None:
        """A sample the review gate holds back for review."""
        if self.queue_writer is None:
            self.queue_writer = self._writer("review-queue", "queue", REVIEW_QUEUE_SCHEMA, numbered_name("queue"))
        self.queue_writer.write(row)

    def write_eval(self, source: str, split: str, row: dict[str, Any]) -> None:
        key = (source, split)
        if key not in self.eval_writers:
            stem = f"{source}-{split}"
            self.eval_writers[key] = self._writer("eval", stem, EVAL_SCHEMA, numbered_name(stem))
        self.eval_writers[key].write(row)

    def _writers(self) -> list[ShardedParquetWriter]:
        queue = [self.queue_writer] if self.queue_writer is not None else []
        return [*self.sample_writers.values(), *self.eval_writers.values(), *queue]

    def commit(self) -> list[Path]:
        """Close everything, drop the previous build's shards, and rename the new files into place."""
        pending = [p for writer in self._writers() for p in writer.close()]
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
        self.images.abort()
        self.quarantine.abort()
