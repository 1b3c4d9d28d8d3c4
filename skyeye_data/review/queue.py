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
from skyeye_data.review.chain import VerdictChains
from skyeye_data.review.fingerprint import sample_fingerprint
from skyeye_data.review.ledger import ReviewLedger
from skyeye_data.review.policy import SECOND_LOOK, ReviewPolicy
from skyeye_data.tables import REVIEW_QUEUE_SCHEMA

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
    """The samples that wait for a verdict, with their reasons.

    A routed sample waits while its content has no verdict. A corrected sample (its chain of
    verdicts ends in a correction, or it *is* the corrected content) waits only when the policy asks
    for a ``second_look``; it is queued with the corrected content, whose verdict then counts.
    """
    summary = summary if summary is not None else QueueSummary()
    chains = VerdictChains(ledger.verdicts() if ledger is not None else (), policy.conflict)
    seen: set[tuple[str, str]] = set()
    for sample in samples:
        summary.scanned += 1
        pending = _pending(sample, policy, chains, summary)
        if pending is None:
            continue
        queued = QueuedSample(*pending)
        key = (queued.sample["id"], queued.fingerprint)
        if key in seen:  # the same content in two tables (re-included): review it once
            continue
        seen.add(key)
        summary.by_source[sample["source"]] += 1
        for reason in queued.reasons:
            summary.by_reason[reason] += 1
            summary.by_source_reason[(sample["source"], reason)] += 1
        yield queued


def _pending(sample: dict[str, Any], policy: ReviewPolicy, chains: VerdictChains, summary: QueueSummary):
    """(sample as it must be reviewed, its fingerprint, reasons), or None when nothing waits."""
    fingerprint = sample_fingerprint(sample)
    if sample["id"] in chains.reviewed_ids:
        chain = chains.chain(sample["id"], fingerprint, sample["image_ids"])
        last = chain[-1] if chain else None
        if last is not None and last.verdict == "corrected":
            if not policy.second_look:
                summary.reviewed += 1
                return None
            corrected = {**sample, "conversation": last.corrected_conversation}
            return corrected, sample_fingerprint(corrected), [SECOND_LOOK]
        if last is not None:
            summary.reviewed += 1
            return None
        if chains.produced_by_review(sample["id"], fingerprint, sample["image_ids"]):
            if not policy.second_look:
                summary.reviewed += 1
                return None
            return sample, fingerprint, [SECOND_LOOK]
    reasons = policy.route(sample)
    return (sample, fingerprint, reasons) if reasons else None


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
        schema = REVIEW_QUEUE_SCHEMA
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
