"""Run one source converter: records → ``<source>.parquet``, rejections → a quarantine.

Streams: records are written in row batches, never collected whole; the records file appears under
its final name only when the conversion completes. :func:`convert_records` hands every rejection to
the caller (``skyeye build`` writes them straight into ``OUT/quarantine.jsonl``);
:func:`convert_source` (``skyeye convert``) writes them to ``<source>.quarantine.jsonl`` beside the
records. Both apply the one ``--strict`` rule of :mod:`skyeye_data.quarantine`.
"""

from __future__ import annotations

from collections import Counter
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
from skyeye_data.sources.base import Rejected

__all__ = ["BATCH_ROWS", "ConvertSummary", "StrictModeError", "convert_records", "convert_source", "read_records"]

BATCH_ROWS = 2048


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

    def count_rejection(self, item: Rejected) -> None:
        if item.level == "record":
            self.quarantined += 1
            self.reasons[short_reason(item.reason)] += 1
        else:
            self.parts_quarantined += 1


def convert_records(
    name: str,
    raw_dir: Path,
    records_path: Path,
    on_rejected: Callable[[dict[str, Any]], None],
    on_item: Callable[[], None] | None = None,
    on_record: Callable[[Record], None] | None = None,
    options: dict[str, Any] | None = None,
) -> ConvertSummary:
    """Convert ``raw_dir`` with source ``name`` into ``records_path``.

    ``options``: the recipe's converter options for the source (DOTA: ``version``), see
    ``SourceConverter.configured``.

    ``on_rejected`` receives each rejection's quarantine entry (it may raise to stop: --strict);
    ``on_record`` sees each record as it is written (the build's leak guard collects the val/test
    images there, so it never reads the records back for them).
    """
    source = get_source(name).configured(**(options or {}))
    source.check_layout(raw_dir)
    summary = ConvertSummary(source=name, records_path=records_path)
    with atomic_path(records_path) as tmp_records, pq.ParquetWriter(tmp_records, RECORD_SCHEMA) as writer:
        batch: list[dict] = []
        for item in rawfs.within(raw_dir.parent, source.records(raw_dir)):  # the guarded raw reader's scope
            if isinstance(item, Rejected):
                on_rejected(item.to_json(name))
                summary.count_rejection(item)
            else:
                batch.append(record_to_row(item))
                summary.written += 1
                summary.by_split[item.split] += 1
                if on_record is not None:
                    on_record(item)
            if len(batch) >= BATCH_ROWS:
                writer.write_table(pa.Table.from_pylist(batch, schema=RECORD_SCHEMA))
                batch.clear()
            if on_item:
                on_item()
        if batch:
            writer.write_table(pa.Table.from_pylist(batch, schema=RECORD_SCHEMA))
    return summary


def convert_source(
    name: str,
    raw_dir: Path,
    out_dir: Path,
    strict: bool = False,
    on_item: Callable[[], None] | None = None,
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
