"""The path every compiled training sample takes, from any source or mix: dedupe, then the review
gate, then the samples table (or the review queue). One place, so every outcome is counted alike."""

from __future__ import annotations

from typing import Any, Sequence

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
