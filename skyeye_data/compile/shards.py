"""Streaming, sharded Parquet writing with final names only for complete files.

A :class:`ShardedParquetWriter` buffers at most one row group in memory, writes row groups of
``row_group_rows`` rows (small enough for random access by a shard reader), starts a new file
every ``rows_per_shard`` rows (or ``shard_bytes``), and writes every file under a temporary name.
``close()`` returns the files as :class:`PendingFile` (temporary → final name); the build renames
them all at once when everything succeeded (:func:`commit_files`). The final names may depend on
the number of shards (``train-00000-of-00003.parquet``), which is known only at the end.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import pyarrow as pa
import pyarrow.parquet as pq

from skyeye_data.io import PendingFile, is_stale_temporary, temporary_name

FinalName = Callable[[int, int], str]  # (shard index, shard count) -> file name


def split_shard_name(split: str) -> FinalName:
    return lambda index, total: f"{split}-{index:05d}-of-{total:05d}.parquet"


def numbered_name(stem: str) -> FinalName:
    return lambda index, total: f"{stem}-{index:05d}.parquet"  # noqa: ARG005 (total unused by design)


@dataclass
class ShardedParquetWriter:
    directory: Path
    stem: str
    schema: pa.Schema
    final_name: FinalName
    rows_per_shard: int
    row_group_rows: int
    row_group_bytes: int | None = None
    shard_bytes: int | None = None
    size_of: Callable[[dict[str, Any]], int] | None = None
    compression: str | dict[str, str] = "zstd"  # a dict names every column's codec
    # the state of the shard being written
    rows_written: int = field(default=0, init=False)
    _tmp_files: list[Path] = field(default_factory=list, init=False)
    _writer: pq.ParquetWriter | None = field(default=None, init=False)
    _buffer: list[dict[str, Any]] = field(default_factory=list, init=False)
    _buffer_bytes: int = field(default=0, init=False)
    _shard_rows: int = field(default=0, init=False)
    _shard_bytes: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        self.directory = Path(self.directory)

    def write(self, row: dict[str, Any]) -> None:
        size = self.size_of(row) if self.size_of else 0
        if self._writer is None or self._shard_full(size):
            self._start_shard()
        self._buffer.append(row)
        self._buffer_bytes += size
        self._shard_rows += 1
        self._shard_bytes += size
        self.rows_written += 1
        if len(self._buffer) >= self.row_group_rows or (self.row_group_bytes and self._buffer_bytes >= self.row_group_bytes):
            self._flush()

    def _shard_full(self, incoming_bytes: int) -> bool:
        if self._shard_rows >= self.rows_per_shard:
            return True
        # a shard never ends empty: one oversize row still gets a file of its own
        return bool(self.shard_bytes and self._shard_rows and self._shard_bytes + incoming_bytes > self.shard_bytes)

    def _start_shard(self) -> None:
        self._close_shard()
        index = len(self._tmp_files)
        tmp = temporary_name(self.directory / f"{self.stem}-{index:05d}.parquet")
        self.directory.mkdir(parents=True, exist_ok=True)
        self._tmp_files.append(tmp)
        self._writer = self._open_shard(tmp)
        self._shard_rows = self._shard_bytes = 0

    def _open_shard(self, tmp: Path) -> pq.ParquetWriter:
        return pq.ParquetWriter(tmp, self.schema, compression=self.compression)

    def _flush(self) -> None:
        if self._buffer and self._writer is not None:
            self._writer.write_table(pa.Table.from_pylist(self._buffer, schema=self.schema), row_group_size=len(self._buffer))
        self._buffer.clear()
        self._buffer_bytes = 0

    def _close_shard(self) -> None:
        if self._writer is not None:
            self._flush()
            self._writer.close()
            self._writer = None

    def close(self) -> list[PendingFile]:
        """Finish the last shard; the files, still under temporary names, with their final names."""
        self._close_shard()
        return pending_shards(self.directory, self._tmp_files, self.final_name)

    def abort(self) -> None:
        """Drop everything written so far (a failed build leaves no partial shards behind)."""
        discard_shards(self._writer, self._tmp_files)
        self._writer = None
        self._buffer.clear()


def pending_shards(directory: Path, tmp_files: list[Path], final_name: FinalName) -> list[PendingFile]:
    """The shards written under temporary names, each with the final name it takes when committed."""
    return [PendingFile(tmp, directory / final_name(i, len(tmp_files))) for i, tmp in enumerate(tmp_files)]


def discard_shards(writer: pq.ParquetWriter | None, tmp_files: Iterable[Path]) -> None:
    """Close ``writer`` whatever state it is in and delete the shards still under temporary names."""
    if writer is not None:
        try:
            writer.close()
        except Exception:  # noqa: BLE001 -- the file is deleted next; its state does not matter
            pass
    for tmp in tmp_files:
        tmp.unlink(missing_ok=True)


def commit_files(pending: Iterable[PendingFile]) -> list[Path]:
    """Rename every pending file onto its final name."""
    finals = []
    for item in pending:
        os.replace(item.tmp, item.final)
        finals.append(item.final)
    return finals


def remove_stale_temporaries(*directories: Path) -> int:
    """Delete what a killed run left behind (``.<name>.<pid>.tmp`` files and staging folders): only
    those of processes no longer alive, never a running build's."""
    removed = 0
    for directory in directories:
        if directory.is_dir():
            for path in directory.glob(".*.tmp"):
                if not is_stale_temporary(path):
                    continue
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)
                removed += 1
    return removed
