"""Sharded Parquet written from Arrow tables as well as from rows: the samples and review-queue tables.

The layout is the one :class:`skyeye_data.compile.shards.ShardedParquetWriter` gives (a new file every
``rows_per_shard`` rows, row groups of ``row_group_rows`` rows, the last group of a shard possibly
shorter, zstd, temporary names until :meth:`close`), but a merged build hands it whole Arrow tables
(a source's compiled samples, read back from its segment: :mod:`skyeye_data.compile.segments`), so no
sample becomes a Python object again on the way to its shard. Rows and tables may be mixed; the
bytes depend only on the sequence of rows, never on how they arrived (each row group is one
contiguous table, combined before it is written).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from skyeye_data.compile.shards import FinalName, discard_shards, pending_shards
from skyeye_data.io import PendingFile, temporary_name


class BatchShardWriter:
    def __init__(self, directory: Path, stem: str, schema: pa.Schema, final_name: FinalName, rows_per_shard: int,
                 row_group_rows: int):  # fmt: skip
        self.directory, self.stem, self.schema, self.final_name = Path(directory), stem, schema, final_name
        self.rows_per_shard, self.row_group_rows = rows_per_shard, row_group_rows
        self.rows_written = 0
        self._rows: list[dict[str, Any]] = []  # rows not yet made a table
        self._tables: list[pa.Table] = []  # tables not yet written, in order
        self._pending = 0  # rows in _tables
        self._tmp_files: list[Path] = []
        self._writer: pq.ParquetWriter | None = None
        self._shard_rows = 0

    def write(self, row: dict[str, Any]) -> None:
        self._rows.append(row)
        if len(self._rows) >= self.row_group_rows:
            self._rows_to_table()
            self._drain(final=False)

    def write_table(self, table: pa.Table) -> None:
        if table.num_rows == 0:
            return
        self._rows_to_table()
        self._tables.append(table.select(self.schema.names).cast(self.schema))
        self._pending += table.num_rows
        self.rows_written += table.num_rows
        self._drain(final=False)

    def _rows_to_table(self) -> None:
        if self._rows:
            self._tables.append(pa.Table.from_pylist(self._rows, schema=self.schema))
            self._pending += len(self._rows)
            self.rows_written += len(self._rows)
            self._rows = []

    def _drain(self, final: bool) -> None:
        """Write every full row group (and with ``final`` the rest)."""
        while self._pending:
            if self._writer is None or self._shard_rows >= self.rows_per_shard:
                self._start_shard()
            size = min(self.row_group_rows, self.rows_per_shard - self._shard_rows)
            if self._pending < size and not final:
                return
            size = min(size, self._pending)
            pending = pa.concat_tables(self._tables)
            group, rest = pending.slice(0, size).combine_chunks(), pending.slice(size)
            self._writer.write_table(group, row_group_size=size)
            self._shard_rows += size
            self._tables, self._pending = ([rest] if rest.num_rows else []), rest.num_rows

    def _start_shard(self) -> None:
        self._close_shard()
        tmp = temporary_name(self.directory / f"{self.stem}-{len(self._tmp_files):05d}.parquet")
        self.directory.mkdir(parents=True, exist_ok=True)
        self._tmp_files.append(tmp)
        self._writer = pq.ParquetWriter(tmp, self.schema, compression="zstd")
        self._shard_rows = 0

    def _close_shard(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def close(self) -> list[PendingFile]:
        """Write what is left, finish the last shard; the files under temporary names, with their final names."""
        self._rows_to_table()
        self._drain(final=True)
        self._close_shard()
        return pending_shards(self.directory, self._tmp_files, self.final_name)

    def abort(self) -> None:
        discard_shards(self._writer, self._tmp_files)
        self._writer = None
        self._rows, self._tables, self._pending = [], [], 0
