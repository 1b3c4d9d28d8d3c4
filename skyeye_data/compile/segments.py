"""Compiled segments: what compiling one source (or one mix) gave, on disk, and the cache of them.

A **segment** is the compile stage's output for one source or mix, before it meets the other
sources' samples (``<entry>/``):

* ``samples.parquet`` -- the training samples in order (the samples table's columns, plus
  ``outcome``: ``written`` / ``unreviewed_left_out`` when the review gate already decided in the
  segment, ``pending`` when the build's sample path must still decide (dedupe on), plus
  ``instruction_keys`` for that dedupe);
* ``eval/<source>-<split>-NNNNN.parquet`` -- the source's eval shards, already in their final layout
  (only this source writes them), so the build adopts the files as they are;
* ``images/images-NNNNN.parquet`` -- every image the segment's samples and eval items show, in the
  order first used (with their bytes: the build stores those it has not stored yet, in order, so
  the images table is the one a one-process build writes); ``train-images/`` its training tier
  (recipe ``train_size``), row for row;
* ``quarantine.jsonl`` -- its quarantine entries in order; ``segment.json`` (last) -- the key, the
  template pools it read, its tally, its review-gate counts and the sha256 of every file.

The **cache** (``CACHE/compiled/<kind>-<name>/``, one entry per source and per mix) keeps the latest
segment under its key (:func:`segment_key`: the code, the records keys of the sources it reads, its
recipe section, the recipe settings a compile reads, the leak guard's val/test images, the review
gate's state) *and* the contents of the pools it drew from, compared on lookup: a changed caption
pool recompiles the caption sources and the mixes that phrase captions, nothing else.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from skyeye_data.compile.images import ImageTableWriter
from skyeye_data.compile.shards import ShardedParquetWriter, numbered_name
from skyeye_data.hashing import file_sha256
from skyeye_data.io import temporary_name, write_json_atomic
from skyeye_data.quarantine import entry_line
from skyeye_data.tables import EVAL_SCHEMA, SAMPLES_SCHEMA

SEGMENT_FORMAT = "skyeye-segment/1"
SEGMENT_SCHEMA = pa.schema(list(SAMPLES_SCHEMA) + [pa.field("outcome", pa.string()),
                                                   pa.field("instruction_keys", pa.list_(pa.string()))])  # fmt: skip
WRITTEN, QUEUED, PENDING = "written", "unreviewed_left_out", "pending"
SAMPLE_BATCH = 10_000


def segment_key(kind: str, name: str, parts: dict[str, Any]) -> str:
    """sha256 of everything a segment depends on besides the pools it reads (those are compared on lookup)."""
    body = json.dumps({"format": SEGMENT_FORMAT, "kind": kind, "name": name, **parts}, sort_keys=True, default=str)
    return hashlib.sha256(body.encode()).hexdigest()


class SegmentWriter:
    """Writes one segment into a folder (a worker's, or the build's own process)."""

    def __init__(self, directory: Path, *, max_side: int | None, frame_cache: Path | None, shard_size: int, row_group_size: int,
                 train_size: int | None = None):  # fmt: skip
        self.directory = directory
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)
        self.images = ImageTableWriter(directory / "images", max_side, frame_cache, train_size)
        self.shard_size, self.row_group_size = shard_size, row_group_size
        self.quarantine: list[dict[str, Any]] = []
        self.eval_writers: dict[str, ShardedParquetWriter] = {}
        self._rows: list[dict[str, Any]] = []
        self._samples = pq.ParquetWriter(directory / "samples.parquet", SEGMENT_SCHEMA, compression="zstd")

    def write_sample(self, row: dict[str, Any], outcome: str, instruction_keys: tuple[str, ...] = ()) -> None:
        self._rows.append(row | {"outcome": outcome, "instruction_keys": list(instruction_keys)})
        if len(self._rows) >= SAMPLE_BATCH:
            self._flush()

    def _flush(self) -> None:
        if self._rows:
            self._samples.write_table(pa.Table.from_pylist(self._rows, schema=SEGMENT_SCHEMA))
            self._rows = []

    def write_eval(self, source: str, split: str, row: dict[str, Any]) -> None:
        """An eval item, into the shards the build adopts as they are (the build's shard layout)."""
        if split not in self.eval_writers:
            stem = f"{source}-{split}"
            self.eval_writers[split] = ShardedParquetWriter(self.directory / "eval", stem, EVAL_SCHEMA, numbered_name(stem),
                                                            self.shard_size, self.row_group_size)  # fmt: skip
        self.eval_writers[split].write(row)

    def finish(self, key: str, pools: dict[str, list[str]], tally: dict[str, Any], review: dict[str, Any] | None) -> None:
        """Close every file, then write ``segment.json`` (last: a folder without it is no segment)."""
        self._flush()
        self._samples.close()
        pending = [p for writer in self.eval_writers.values() for p in writer.close()] + self.images.close()
        for item in pending:
            os.replace(item.tmp, item.final)
        with open(self.directory / "quarantine.jsonl", "wb") as out:
            out.writelines(map(entry_line, self.quarantine))
        files = sorted(p.relative_to(self.directory).as_posix() for p in self.directory.rglob("*") if p.is_file())
        meta = {"format": SEGMENT_FORMAT, "key": key, "pools": pools, "tally": tally, "review": review,
                "files": {name: file_sha256(self.directory / name) for name in files}}  # fmt: skip
        write_json_atomic(self.directory / "segment.json", meta)

    def abort(self) -> None:
        self._samples.close()
        for writer in self.eval_writers.values():
            writer.abort()
        self.images.abort()
        shutil.rmtree(self.directory, ignore_errors=True)


@dataclass
class Segment:
    """A finished segment, read back for the merge."""

    directory: Path
    meta: dict[str, Any]
    from_cache: bool = False

    @classmethod
    def open(cls, directory: Path, from_cache: bool = False) -> Segment:
        return cls(directory, json.loads((directory / "segment.json").read_text(encoding="utf-8")), from_cache)

    def sample_batches(self) -> Iterator[pa.RecordBatch]:
        yield from pq.ParquetFile(self.directory / "samples.parquet").iter_batches(batch_size=SAMPLE_BATCH)

    def image_rows(self, tier: str = "images") -> Iterator[dict[str, Any]]:
        """The rows of the segment's images table (``tier="train-images"``: its training tier, row for row)."""
        for path in sorted((self.directory / tier).glob("images-*.parquet")):
            for batch in pq.ParquetFile(path).iter_batches(batch_size=64):
                yield from batch.to_pylist()

    def eval_files(self) -> list[Path]:
        return sorted((self.directory / "eval").glob("*.parquet"))

    def quarantine(self) -> Iterator[dict[str, Any]]:
        with open(self.directory / "quarantine.jsonl", encoding="utf-8") as lines:
            for line in lines:
                yield json.loads(line)


class SegmentStore:
    """``CACHE/compiled/``: the latest segment of each source and mix, or (``persistent=False``, a
    ``--no-cache`` build) a scratch folder the build removes when done."""

    def __init__(self, directory: Path, persistent: bool = True):
        self.directory = directory
        self.persistent = persistent

    def entry(self, kind: str, name: str) -> Path:
        return self.directory / f"{kind}-{name}"

    def scratch(self, kind: str, name: str) -> Path:
        """Where a segment is written before it replaces the entry (a killed build leaves the entry as it was)."""
        return temporary_name(self.entry(kind, name))

    def load(self, kind: str, name: str, key: str, pools: dict[str, tuple[str, ...]]) -> Segment | None:
        """The cached segment when its key matches, the pools it read are unchanged and its files are intact."""
        if not self.persistent:
            return None
        directory = self.entry(kind, name)
        try:
            segment = Segment.open(directory, from_cache=True)
        except (OSError, ValueError):
            return None
        meta = segment.meta
        if meta.get("format") != SEGMENT_FORMAT or meta.get("key") != key:
            return None
        if any(list(pools.get(pool, ())) != templates for pool, templates in meta["pools"].items()):
            return None
        for relative, digest in meta["files"].items():
            try:
                if file_sha256(directory / relative) != digest:
                    return None
            except OSError:
                return None
        return segment

    def commit(self, kind: str, name: str, scratch: Path) -> Segment:
        """The segment written into ``scratch`` becomes the entry."""
        final = self.entry(kind, name)
        shutil.rmtree(final, ignore_errors=True)
        os.replace(scratch, final)
        return Segment.open(final)
