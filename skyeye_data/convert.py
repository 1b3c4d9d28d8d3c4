"""Run one source converter: records → ``<source>.parquet``, rejections → a quarantine.

Streams: records are written in row batches, never collected whole; the records file appears under
its final name only when the conversion completes. :func:`convert_records` hands every rejection to
the caller (``skyeye build`` writes them straight into ``OUT/quarantine.jsonl``);
:func:`convert_source` (``skyeye convert``) writes them to ``<source>.quarantine.jsonl`` beside the
records. Both apply the one ``--strict`` rule of :mod:`skyeye_data.quarantine`.
"""

from __future__ import annotations

import gc
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from skyeye_data import rawfs
from skyeye_data.io import atomic_path
from skyeye_data.quarantine import QuarantineLog, StrictModeError, short_reason
from skyeye_data.schema import RECORD_SCHEMA, Record, record_to_row, row_to_record
from skyeye_data.sources import get_source
from skyeye_data.sources.base import Rejected, RejectedRun
from skyeye_data.sources.row_block import VqaRowBlock

__all__ = ["BATCH_ROWS", "GROUP_ROWS", "ConvertSummary", "StrictModeError", "convert_records", "convert_source",
           "read_records", "records_writer"]

BATCH_ROWS = 2048  # rows converted to Arrow at a time, and read back at a time
# rows per row group of a records file. 2048-row groups spent a third of RSVQA-HR's Parquet time on
# per-group overhead (21 column chunks each, most of them all-null); a 16384-row group of VQA rows is
# ~5 MB decoded, and a reader still takes it BATCH_ROWS at a time (benchmarks/convert_bench.py)
GROUP_ROWS = 16384
# columns unique per row: a dictionary page is pure cost there (pyarrow builds it, then falls back to
# plain once it is full); delta encodings store "rsvqa_hr:1234"-style ids and running indexes in a
# fraction of the bytes (RSVQA-HR's records: 20.8 MB -> 5.8 MB, written and read back faster)
_DELTA_COLUMNS = {"record_id": "DELTA_BYTE_ARRAY", "provenance.raw_index": "DELTA_BINARY_PACKED"}


def _leaf_paths(schema: pa.Schema) -> list[str]:
    """The Parquet column paths of ``schema``'s leaves, as pyarrow names them (``a.b``, ``a.list.element``)."""

    def walk(prefix: str, type_: pa.DataType) -> Iterator[str]:
        if pa.types.is_struct(type_):
            for child in type_:
                yield from walk(f"{prefix}.{child.name}", child.type)
        elif pa.types.is_list(type_) or pa.types.is_large_list(type_):
            yield from walk(f"{prefix}.list.element", type_.value_type)
        else:
            yield prefix

    return [path for f in schema for path in walk(f.name, f.type)]


_DICTIONARY_COLUMNS = [path for path in _leaf_paths(RECORD_SCHEMA) if path not in _DELTA_COLUMNS]


def records_writer(path: Path) -> pq.ParquetWriter:
    """The writer of a records file (every records file is written with these settings, so its bytes
    depend on its rows only)."""
    return pq.ParquetWriter(path, RECORD_SCHEMA, use_dictionary=_DICTIONARY_COLUMNS, column_encoding=_DELTA_COLUMNS)


@dataclass
class ConvertSummary:
    source: str
    written: int = 0
    quarantined: int = 0  # record-level rejections
    parts_quarantined: int = 0  # objects etc. dropped inside kept records
    by_split: Counter = field(default_factory=Counter)
    reasons: Counter = field(default_factory=Counter)
    records_path: Path | None = None
    quarantine_path: Path | None = None  # only for convert_source

    @property
    def records_in(self) -> int:
        return self.written + self.quarantined

    def count_rejection(self, item: Rejected | RejectedRun) -> None:
        n = len(item) if isinstance(item, RejectedRun) else 1
        if item.level == "record":
            self.quarantined += n
            self.reasons[short_reason(item.reason)] += n
        else:
            self.parts_quarantined += n


def convert_records(
    name: str,
    raw_dir: Path,
    records_path: Path,
    on_rejected: Callable[[dict[str, Any]], None],
    on_item: Callable[..., None] | None = None,
    on_record: Callable[[Record], None] | None = None,
    options: dict[str, Any] | None = None,
) -> ConvertSummary:
    """Convert ``raw_dir`` with source ``name`` into ``records_path``.

    ``options``: the recipe's converter options for the source (DOTA: ``version``), see
    ``SourceConverter.configured``.

    ``on_rejected`` receives each rejection's quarantine entry (it may raise to stop: --strict);
    ``on_record`` sees each record as it is written (the build's leak guard collects the val/test
    images there, so it never reads the records back for them; of a row block, one stand-in with
    ``source``, ``split``, ``image_key`` and ``image_sha256`` per run of rows on one image);
    ``on_item(n)`` is told of the items done, ``n`` at a time (a row block counts its rows).
    """
    source = get_source(name).configured(**(options or {}))
    source.check_layout(raw_dir)
    summary = ConvertSummary(source=name, records_path=records_path)
    # a source with a million rows yields them as row blocks (RSVQA: sources/row_block.py); same rows
    bulk = hasattr(source, "row_items")
    items = source.row_items(raw_dir) if bulk else source.records(raw_dir)
    with gc_paused(bulk), atomic_path(records_path) as tmp_records, records_writer(tmp_records) as writer:
        groups, done = _RowGroups(writer), _Done(on_item)
        for item in rawfs.within(raw_dir.parent, items):  # the guarded raw reader's scope
            if isinstance(item, Rejected):
                on_rejected(item.to_json(name))
                summary.count_rejection(item)
            elif isinstance(item, RejectedRun):
                for entry in item.entries(name):
                    on_rejected(entry)
                summary.count_rejection(item)
            elif isinstance(item, VqaRowBlock):
                groups.add_table(item.to_table())
                summary.written += item.rows
                summary.by_split[item.split] += item.rows
                for note in item.eval_notes() if on_record is not None else ():
                    on_record(note)
            else:
                groups.add_row(record_to_row(item))
                summary.written += 1
                summary.by_split[item.split] += 1
                if on_record is not None:
                    on_record(item)
            done.add(item.rows if isinstance(item, VqaRowBlock) else len(item) if isinstance(item, RejectedRun) else 1)
        done.flush()
        groups.close()
    return summary


class _Done:
    """``on_item`` called once per ``EVERY`` items, not per item (a progress bar's advance costs ~15 us:
    RSVQA-HR's 59k quarantined questions spent ~1 s there)."""

    EVERY = 256

    def __init__(self, on_item: Callable[..., None] | None):
        self.on_item, self.pending = on_item, 0

    def add(self, n: int) -> None:
        self.pending += n
        if self.pending >= self.EVERY:
            self.flush()

    def flush(self) -> None:
        if self.on_item is not None and self.pending:
            self.on_item(self.pending)
        self.pending = 0


@contextmanager
def gc_paused(pause: bool) -> Iterator[None]:
    """The cyclic garbage collector off while a row-block source converts (RSVQA-HR: a quarter of its
    CPU time went to collections walking the million answers it must hold, none of them garbage).
    Its reader makes no reference cycles per row (plain tuples, dicts and strings, freed by their
    counts), so memory is the same (peak RSS measured by benchmarks/convert_bench.py); whatever
    cycles the run leaves are collected once at the end. The build's compile units pause it the same way
    (``compile/stages/compile_segments.py``)."""
    if not pause or not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.collect()


class _RowGroups:
    """Rows into the Parquet file in row groups of exactly GROUP_ROWS (the last one shorter), whether
    they come one by one or in blocks: the file's bytes do not depend on how the rows arrived."""

    def __init__(self, writer: pq.ParquetWriter):
        self.writer = writer
        self.rows: list[dict] = []  # rows one by one, turned into a table every BATCH_ROWS
        self.tables: list[pa.Table] = []  # rows waiting to fill a group, in order (after self.rows)
        self.waiting = 0

    def add_row(self, row: dict) -> None:
        self.rows.append(row)
        if len(self.rows) >= BATCH_ROWS:
            self._pack_rows()
            self._write_full_groups()

    def add_table(self, table: pa.Table) -> None:
        self._pack_rows()
        self.tables.append(table)
        self.waiting += table.num_rows
        self._write_full_groups()

    def _write_full_groups(self) -> None:
        if self.waiting < GROUP_ROWS:
            return
        table = pa.concat_tables(self.tables)
        full = self.waiting - self.waiting % GROUP_ROWS
        for start in range(0, full, GROUP_ROWS):
            self.writer.write_table(table.slice(start, GROUP_ROWS).combine_chunks())
        self.tables = [table.slice(full)] if full < self.waiting else []
        self.waiting -= full

    def _pack_rows(self) -> None:
        if self.rows:
            self.tables.append(pa.Table.from_pylist(self.rows, schema=RECORD_SCHEMA))
            self.waiting += len(self.rows)
            self.rows.clear()

    def close(self) -> None:
        self._pack_rows()
        if self.tables:
            self.writer.write_table(pa.concat_tables(self.tables).combine_chunks())


def convert_source(
    name: str,
    raw_dir: Path,
    out_dir: Path,
    strict: bool = False,
    on_item: Callable[..., None] | None = None,
) -> ConvertSummary:
    """``skyeye convert``: ``out_dir/<name>.parquet`` and ``out_dir/<name>.quarantine.jsonl``, both
    under their final names only when the conversion completes (StrictModeError with ``strict``)."""
    quarantine = QuarantineLog(out_dir / f"{name}.quarantine.jsonl", strict)
    try:
        summary = convert_records(name, raw_dir, out_dir / f"{name}.parquet", quarantine.write, on_item)
    except BaseException:
        quarantine.abort()
        raise
    pending = quarantine.close()
    pending.tmp.replace(pending.final)
    summary.quarantine_path = pending.final
    return summary


def read_records(path: Path, batch_rows: int = BATCH_ROWS) -> Iterator[Record]:
    """Stream the records of a records Parquet file, batch by batch."""
    parquet = pq.ParquetFile(path)
    for batch in parquet.iter_batches(batch_size=batch_rows):
        for row in batch.to_pylist():
            yield row_to_record(row)
