"""What waits for review in a build output, and the images it needs.

A build writes the samples that go to training under ``OUT/samples/`` and the samples it held back
for review (required but unreviewed) under ``OUT/review-queue/`` (same columns). Both are review
candidates: held-back samples wait for a first verdict; a sample in ``samples/`` can be routed too
(``--include-unreviewed``, or a routing flag raised by a later policy).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from skyeye_data.io import atomic_path
from skyeye_data.review.fingerprint import sample_fingerprint
from skyeye_data.review.ledger import ReviewLedger
from skyeye_data.review.policy import ReviewPolicy

SAMPLES_DIR = "samples"
QUEUE_DIR = "review-queue"
IMAGES_DIR = "images"
QUEUE_ROWS_PER_FILE = 50_000


class BuildOutputError(ValueError):
    """OUT is not a build output (no samples/ folder)."""


def sample_files(out: Path) -> list[Path]:
    out = Path(out)
    if not (out / SAMPLES_DIR).is_dir() and not (out / QUEUE_DIR).is_dir():
        raise BuildOutputError(f"{out} is not a build output: it has no {SAMPLES_DIR}/ or {QUEUE_DIR}/ folder")
    return sorted((out / SAMPLES_DIR).glob("*.parquet")) + sorted((out / QUEUE_DIR).glob("*.parquet"))


def read_samples(out: Path) -> Iterator[dict[str, Any]]:
    """Every sample of the build output (training shards, then the review queue), as dicts."""
    for path in sample_files(out):
        for batch in pq.ParquetFile(path).iter_batches(batch_size=4096):
            yield from batch.to_pylist()


@dataclass
class QueuedSample:
    sample: dict[str, Any]
    fingerprint: str
    reasons: list[str]


@dataclass
class QueueSummary:
    scanned: int = 0
    reviewed: int = 0  # routed, but a verdict for this exact content exists
    by_reason: Counter = field(default_factory=Counter)  # reason → waiting samples
    by_source: Counter = field(default_factory=Counter)  # source → waiting samples
    by_source_reason: Counter = field(default_factory=Counter)  # (source, reason) → waiting samples

    @property
    def waiting(self) -> int:
        return sum(self.by_source.values())


def review_queue(
    samples: Iterable[dict[str, Any]], policy: ReviewPolicy, ledger: ReviewLedger | None = None, summary: QueueSummary | None = None
) -> Iterator[QueuedSample]:
    """The routed samples that have no verdict for their current content, with their reasons."""
    summary = summary if summary is not None else QueueSummary()
    reviewed = ledger.reviewed_keys() if ledger is not None else set()
    seen: set[tuple[str, str]] = set()
    for sample in samples:
        summary.scanned += 1
        reasons = policy.route(sample)
        if not reasons:
            continue
        fingerprint = sample_fingerprint(sample)
        key = (sample["id"], fingerprint)
        if key in reviewed:
            summary.reviewed += 1
            continue
        if key in seen:  # the same content in two tables (re-included): review it once
            continue
        seen.add(key)
        summary.by_source[sample["source"]] += 1
        for reason in reasons:
            summary.by_reason[reason] += 1
            summary.by_source_reason[(sample["source"], reason)] += 1
        yield QueuedSample(sample, fingerprint, reasons)


def read_images(out: Path, image_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """image_id → {bytes, format, width, height} for the wanted images of ``OUT/images/``."""
    wanted = sorted(set(image_ids))
    files = sorted((Path(out) / IMAGES_DIR).glob("*.parquet"))
    if not wanted or not files:
        return {}
    found: dict[str, dict[str, Any]] = {}
    wanted_array = pa.array(wanted)
    for path in files:
        table = pq.read_table(path, filters=[("image_id", "in", wanted_array)])
        for row in table.to_pylist():
            found[row["image_id"]] = row
    return found


def write_review_queue(out: Path, samples: Iterable[dict[str, Any]], schema: pa.Schema | None = None) -> list[Path]:
    """Write held-back samples to ``OUT/review-queue/queue-NNNNN.parquet`` (each file atomically)."""
    if schema is None:
        from skyeye_data.compile.samples import SAMPLES_SCHEMA as schema  # noqa: N811 (the one schema)
    directory = Path(out) / QUEUE_DIR
    written: list[Path] = []
    chunk: list[dict[str, Any]] = []
    for sample in samples:
        chunk.append(sample)
        if len(chunk) >= QUEUE_ROWS_PER_FILE:
            written.append(_write_queue_file(directory, len(written), chunk, schema))
            chunk = []
    if chunk:
        written.append(_write_queue_file(directory, len(written), chunk, schema))
    return written


def _write_queue_file(directory: Path, index: int, rows: list[dict[str, Any]], schema: pa.Schema) -> Path:
    final = directory / f"queue-{index:05d}.parquet"
    with atomic_path(final) as tmp:
        pq.write_table(pa.Table.from_pylist(rows, schema=schema), tmp)
    return final
