"""Merge: each segment into the build's outputs, in the recipe's order (sources, then mixes).

Per segment: its quarantine entries; the images it shows that the build has not stored yet, in the
order it first used them (so the images table is the one a single pass over the sources writes);
its eval shards, adopted as files; its samples -- final rows as whole Arrow tables into the samples
table and the review queue, or, for ``pending`` rows (dedupe on), row by row through the build's
:class:`~skyeye_data.compile.stages.sink.SampleSink`; then its tally and review-gate counts.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from skyeye_data.compile.images import TRAIN_IMAGES_DIR
from skyeye_data.compile.segments import PENDING, QUEUED, WRITTEN, Segment
from skyeye_data.compile.stages.sink import SampleSink
from skyeye_data.compile.stages.write import BuildOutputs
from skyeye_data.compile.tally import MixTally, SampleCounts, SourceTally
from skyeye_data.review import ReviewGate
from skyeye_data.tables import SAMPLES_SCHEMA


def merge_images(segment: Segment, outputs: BuildOutputs) -> None:
    images = outputs.images
    train_rows = segment.image_rows(TRAIN_IMAGES_DIR) if images.train_writer is not None else None
    for row in segment.image_rows():
        train_row = next(train_rows) if train_rows is not None else None  # the tier holds one row per image, in order
        if row["image_id"] not in images.stored:
            images.writer.write(row)
            if train_row is not None:
                images.train_writer.write(train_row)
            images.stored.add(row["image_id"])


def merge_samples(segment: Segment, outputs: BuildOutputs, sink: SampleSink, counts: SampleCounts) -> None:
    """The segment's samples into the samples table / review queue; ``counts`` gets the outcomes of pending rows."""
    for batch in segment.sample_batches():
        table = pa.Table.from_batches([batch])
        outcome = table.column("outcome")
        if pc.any(pc.equal(outcome, PENDING)).as_py():
            keys = table.column("instruction_keys").to_pylist()
            for row, instruction_keys in zip(table.select(SAMPLES_SCHEMA.names).to_pylist(), keys):
                counts.count_outcome(row["task"], sink.put(row, instruction_keys))
            continue
        written = table.filter(pc.equal(outcome, WRITTEN))
        for split in pc.unique(written.column("split")).to_pylist():  # every training sample is "train"; any other split keeps its own shards
            outputs.write_sample_table(split, written.filter(pc.equal(written.column("split"), split)))
        outputs.write_queued_table(table.filter(pc.equal(outcome, QUEUED)))


def merge_review_counts(segment: Segment, gate: ReviewGate | None) -> None:
    review = segment.meta.get("review")
    if gate is None or review is None:
        return
    for source, outcomes in review["by_source"].items():
        gate.counts.by_source[source].update(outcomes)
    gate.counts.reasons.update(review["reasons"])
    gate.counts.content_changed.update(review["content_changed"])


def merge_source(segment: Segment, outputs: BuildOutputs, sink: SampleSink, tally: SourceTally) -> None:
    for entry in segment.quarantine():
        outputs.quarantine.write(entry)
    merge_images(segment, outputs)
    outputs.adopt_eval(segment.eval_files())
    tally.add_compiled(SourceTally.from_json(tally.source, segment.meta["tally"]))
    merge_samples(segment, outputs, sink, tally)
    merge_review_counts(segment, sink.review_gate)


def merge_mix(name: str, segment: Segment, outputs: BuildOutputs, sink: SampleSink) -> MixTally:
    for entry in segment.quarantine():
        outputs.quarantine.write(entry)
    merge_images(segment, outputs)
    tally = MixTally.from_json(name, segment.meta["tally"])
    merge_samples(segment, outputs, sink, tally)
    merge_review_counts(segment, sink.review_gate)
    return tally
