"""Run one source converter: records → ``<out>/<source>.parquet``, rejections → ``<source>.quarantine.jsonl``.

Streams: records are written in row batches, never collected whole. Both files appear under their
final names only when the conversion completes.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from skyeye_data.io import atomic_path
from skyeye_data.schema import RECORD_SCHEMA, record_to_row, row_to_record
from skyeye_data.sources import get_source
from skyeye_data.sources.base import Rejected

BATCH_ROWS = 2048


class StrictModeError(Exception):
    """--strict: a raw record was rejected."""


@dataclass
class ConvertSummary:
    source: str
    written: int = 0
    quarantined: int = 0  # record-level rejections
    parts_quarantined: int = 0  # objects etc. dropped inside kept records
    by_split: Counter = field(default_factory=Counter)
    reasons: Counter = field(default_factory=Counter)
    records_path: Path | None = None
    quarantine_path: Path | None = None

    @property
    def records_in(self) -> int:
        return self.written + self.quarantined


def short_reason(reason: str) -> str:
    """The reason without its specifics (for counting by kind)."""
    return reason.split(":")[0].split("(")[0].strip()


def convert_source(
    name: str,
    raw_dir: Path,
    out_dir: Path,
    strict: bool = False,
    on_item: Callable[[], None] | None = None,
) -> ConvertSummary:
    """Convert ``raw_dir`` with source ``name`` into ``out_dir``; see the module docstring."""
    source = get_source(name)
    source.check_layout(raw_dir)
    summary = ConvertSummary(source=name)
    records_path = out_dir / f"{name}.parquet"
    quarantine_path = out_dir / f"{name}.quarantine.jsonl"
    with atomic_path(records_path) as tmp_records, atomic_path(quarantine_path) as tmp_quarantine:
        with pq.ParquetWriter(tmp_records, RECORD_SCHEMA) as writer, open(tmp_quarantine, "w", encoding="utf-8") as qfile:
            batch: list[dict] = []
            for item in source.records(raw_dir):
                if isinstance(item, Rejected):
                    _quarantine(item, name, summary, qfile, strict)
                else:
                    batch.append(record_to_row(item))
                    summary.written += 1
                    summary.by_split[item.split] += 1
                if len(batch) >= BATCH_ROWS:
                    writer.write_table(pa.Table.from_pylist(batch, schema=RECORD_SCHEMA))
                    batch.clear()
                if on_item:
                    on_item()
            if batch:
                writer.write_table(pa.Table.from_pylist(batch, schema=RECORD_SCHEMA))
    summary.records_path, summary.quarantine_path = records_path, quarantine_path
    return summary


def _quarantine(item: Rejected, name: str, summary: ConvertSummary, qfile, strict: bool) -> None:
    entry = item.to_json(name)
    if strict and not item.deliberate:
        raise StrictModeError(f"{quarantine_location(entry)}: {item.reason}")
    qfile.write(json.dumps(entry, ensure_ascii=False) + "\n")
    if item.level == "record":
        summary.quarantined += 1
        summary.reasons[short_reason(item.reason)] += 1
    else:
        summary.parts_quarantined += 1


def quarantine_location(entry: dict) -> str:
    """'rsicd: dataset_rsicd.json[12]' or 'rsivqa: UCM/ucm_vqa.txt:7' from a quarantine entry."""
    where = f"{entry.get('source')}: {entry.get('raw_file') or '?'}"
    if entry.get("raw_line") is not None:
        where += f":{entry['raw_line']}"
    if entry.get("raw_index") is not None:
        where += f"[{entry['raw_index']}]"
    return where


def read_records(path: Path, batch_rows: int = BATCH_ROWS) -> Iterator:
    """Stream the records of a records Parquet file, batch by batch."""
    parquet = pq.ParquetFile(path)
    for batch in parquet.iter_batches(batch_size=batch_rows):
        for row in batch.to_pylist():
            yield row_to_record(row)
