"""Applying the ledger to a build's sample stream.

For each sample: the verdict for exactly its content (sample id + fingerprint) decides:

- ``accepted`` → kept, ``review_status = "accepted"``;
- ``corrected`` → kept with the corrected conversation, ``review_status = "corrected"``;
- ``rejected`` → left out;
- no verdict, and the policy routes it → left out (``on_held_back`` receives it, so the build can
  write it to the review queue), or kept as ``"unreviewed"`` with ``include_unreviewed``;
- no verdict, not routed → kept, ``review_status = "not_required"``.

A verdict applies whether or not the current policy still routes the sample: a person's decision
about this exact content outranks the routing rules.

Usage in a build::

    counts = ReviewCounts()
    for sample in apply_review(stream, policy, ledger, counts=counts, on_held_back=queue.append):
        writer.write(sample)
    manifest["review"] = counts.to_json()
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator

from skyeye_data.review.fingerprint import sample_fingerprint
from skyeye_data.review.ledger import ReviewLedger, Verdict
from skyeye_data.review.policy import ReviewPolicy

OUTCOMES = ("not_required", "accepted", "corrected", "rejected", "unreviewed_left_out", "unreviewed_included")


@dataclass
class ReviewCounts:
    """Outcomes per source, and routing reasons of the samples that needed review."""

    by_source: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    reasons: Counter = field(default_factory=Counter)
    content_changed: Counter = field(default_factory=Counter)  # source → samples whose verdicts were for older content

    def add(self, source: str, outcome: str) -> None:
        self.by_source[source][outcome] += 1

    def totals(self) -> Counter:
        total: Counter = Counter()
        for counter in self.by_source.values():
            total.update(counter)
        return total

    def to_json(self) -> dict[str, Any]:
        def full(counter: Counter) -> dict[str, int]:
            routed = sum(counter[o] for o in OUTCOMES if o != "not_required")
            reviewed = counter["accepted"] + counter["corrected"] + counter["rejected"]
            return {**{o: counter[o] for o in OUTCOMES}, "routed": routed, "reviewed": reviewed}

        return {
            "totals": full(self.totals()),
            "by_source": {source: full(counter) for source, counter in sorted(self.by_source.items())},
            "reasons": dict(sorted(self.reasons.items())),
            "content_changed_since_review": dict(sorted(self.content_changed.items())),
        }


def final_verdicts(ledger: ReviewLedger) -> dict[tuple[str, str], Verdict]:
    """(sample id, fingerprint) → the verdict that applies (the latest saved review of that content)."""
    latest: dict[tuple[str, str], Verdict] = {}
    for verdict in ledger.verdicts():
        key = (verdict.sample_id, verdict.fingerprint)
        current = latest.get(key)
        if current is None or (verdict.reviewed_at, verdict.annotation_id) > (current.reviewed_at, current.annotation_id):
            latest[key] = verdict
    return latest


class ReviewGate:
    """Decides sample by sample (for a build that writes rows one at a time); counts as it goes."""

    def __init__(self, policy: ReviewPolicy, ledger: ReviewLedger | None, *, include_unreviewed: bool = False,
                 counts: ReviewCounts | None = None):  # fmt: skip
        self.policy = policy
        self.include_unreviewed = include_unreviewed
        self.counts = counts if counts is not None else ReviewCounts()
        self.verdicts = final_verdicts(ledger) if ledger is not None else {}
        self.reviewed_ids = {sample_id for sample_id, _ in self.verdicts}

    def decide(self, sample: dict[str, Any]) -> tuple[str, dict[str, Any] | None]:
        """(outcome, row): the row to write to training, or for ``unreviewed_left_out`` the row to
        queue for review; None for a rejected sample. The outcome is counted."""
        outcome, row = self._decide(sample)
        self.counts.add(sample["source"], outcome)
        return outcome, row

    def _decide(self, sample: dict[str, Any]) -> tuple[str, dict[str, Any] | None]:
        if sample["id"] in self.reviewed_ids:  # fingerprints only for samples someone has reviewed
            verdict = self.verdicts.get((sample["id"], sample_fingerprint(sample)))
            if verdict is not None:
                return verdict.verdict, apply_verdict(sample, verdict)
            self.counts.content_changed[sample["source"]] += 1
        reasons = self.policy.route(sample)
        if not reasons:
            return "not_required", {**sample, "review_status": "not_required"}
        self.counts.reasons.update(reasons)
        outcome = "unreviewed_included" if self.include_unreviewed else "unreviewed_left_out"
        return outcome, {**sample, "review_status": "unreviewed"}


def apply_review(
    samples: Iterable[dict[str, Any]],
    policy: ReviewPolicy,
    ledger: ReviewLedger | None,
    *,
    include_unreviewed: bool = False,
    counts: ReviewCounts | None = None,
    on_held_back: Callable[[dict[str, Any]], None] | None = None,
) -> Iterator[dict[str, Any]]:
    """The samples that go to training, with ``review_status`` set (see the module docstring)."""
    gate = ReviewGate(policy, ledger, include_unreviewed=include_unreviewed, counts=counts)
    for sample in samples:
        outcome, row = gate.decide(sample)
        if outcome == "unreviewed_left_out":
            if on_held_back is not None:
                on_held_back(row)
        elif row is not None:
            yield row


def apply_verdict(sample: dict[str, Any], verdict: Verdict) -> dict[str, Any] | None:
    if verdict.verdict == "rejected":
        return None
    if verdict.verdict == "corrected":
        return {**sample, "conversation": verdict.corrected_conversation, "review_status": "corrected"}
    return {**sample, "review_status": "accepted"}
