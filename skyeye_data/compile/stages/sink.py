"""The path every compiled training sample takes, from any source or mix: dedupe, then the review
gate, then the samples table (or the review queue). One place, so every outcome is counted alike.

:class:`SampleSink` writes into the build's outputs (the samples a merge hands on one by one);
:class:`SegmentSink` is the same path into one source's (or mix's) segment
(:mod:`skyeye_data.compile.segments`), where a worker compiles it.
"""

from __future__ import annotations

from typing import Any, Sequence

from skyeye_data.compile.segments import PENDING, QUEUED, WRITTEN, SegmentWriter
from skyeye_data.compile.stages.dedupe import SampleDigests
from skyeye_data.compile.stages.write import BuildOutputs
from skyeye_data.review import ReviewGate


class SampleSink:
    def __init__(self, outputs: BuildOutputs, dedupe: bool, review_gate: ReviewGate | None):
        self.outputs = outputs
        self.seen = SampleDigests() if dedupe else None
        self.review_gate = review_gate

    def put(self, row: dict[str, Any], instruction_keys: Sequence[str]) -> str:
        """Returns "written"; "duplicate" (nothing written) when dedupe is on and the sample repeats an
        earlier one; or the review outcome of a sample kept out of training ("rejected", or
        "unreviewed_left_out": written to review-queue/ instead)."""
        if self.seen is not None and not self.seen.first_time(row, instruction_keys):
            return "duplicate"
        if self.review_gate is not None:
            outcome, row = self.review_gate.decide(row)
            if outcome == "unreviewed_left_out":
                self.outputs.write_queued(row)
                return outcome
            if row is None:
                return outcome
        self.outputs.write_sample(row)
        return "written"


class SegmentSink:
    """The sample path into a segment.

    Without dedupe a sample's fate depends on nothing but itself (and the review ledger, the same
    for every source), so the gate decides here, in the worker, and the segment holds final rows
    (``written`` / ``unreviewed_left_out``; rejected ones are left out) and the gate's counts.
    With dedupe, whether a sample repeats depends on every sample before it in the build's order:
    the rows are kept ``pending``, with their payload keys, for the build's :class:`SampleSink`
    (``digests`` given: the build's own digests, for a segment compiled in order in the build).
    """

    def __init__(self, segment: SegmentWriter, review_gate: ReviewGate | None, dedupe: bool,
                 digests: SampleDigests | None = None):  # fmt: skip
        self.segment = segment
        self.review_gate = review_gate
        self.pending = dedupe and digests is None
        self.seen = digests

    def put(self, row: dict[str, Any], instruction_keys: Sequence[str]) -> str:
        if self.pending:
            self.segment.write_sample(row, PENDING, tuple(instruction_keys))
            return PENDING  # counted when the build decides (SampleCounts counts written/duplicate only)
        if self.seen is not None and not self.seen.first_time(row, instruction_keys):
            return "duplicate"
        outcome = WRITTEN
        if self.review_gate is not None:
            outcome, row = self.review_gate.decide(row)
            if row is None:
                return outcome
            outcome = QUEUED if outcome == QUEUED else WRITTEN
        self.segment.write_sample(row, outcome)
        return outcome
