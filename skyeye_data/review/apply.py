"""Applying the ledger to a build's sample stream.

For each sample: the chain of verdicts from exactly its content (sample id + fingerprint; see
:mod:`.chain`: conflicts settled by the recipe's rule, corrections followed to their later
verdicts) decides, by its last link:

- ``accepted`` → kept, ``review_status = "accepted"`` (``"corrected"`` when it accepts a correction);
- ``corrected`` → kept with the corrected conversation, ``review_status = "corrected"``;
- ``rejected`` → left out (also when the rejected content is a correction: a second look counts);
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

from pathlib import Path

from skyeye_data.review.chain import VerdictChains
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


class ReviewSetupError(ValueError):
    """The review settings cannot work: a policy that routes samples but no ledger to read verdicts from."""


class ReviewGate:
    """Decides sample by sample (for a build that writes rows one at a time); counts as it goes."""

    def __init__(self, policy: ReviewPolicy, ledger: ReviewLedger | None, *, include_unreviewed: bool = False,
                 counts: ReviewCounts | None = None):  # fmt: skip
        self.policy = policy
        self.include_unreviewed = include_unreviewed
        self.counts = counts if counts is not None else ReviewCounts()
        self.chains = VerdictChains(ledger.verdicts() if ledger is not None else (), policy.conflict)

    def decide(self, sample: dict[str, Any]) -> tuple[str, dict[str, Any] | None]:
        """(outcome, row): the row to write to training, or for ``unreviewed_left_out`` the row to
        queue for review; None for a rejected sample. The outcome is counted."""
        outcome, row = self._decide(sample)
        self.counts.add(sample["source"], outcome)
        return outcome, row

    def _decide(self, sample: dict[str, Any]) -> tuple[str, dict[str, Any] | None]:
        if sample["id"] in self.chains.reviewed_ids:  # fingerprints only for samples someone has reviewed
            chain = self.chains.chain(sample["id"], sample_fingerprint(sample), sample["image_ids"])
            if chain:
                return apply_chain(sample, chain)
            self.counts.content_changed[sample["source"]] += 1
        reasons = self.policy.route(sample)
        if not reasons:
            return "not_required", {**sample, "review_status": "not_required"}
        self.counts.reasons.update(reasons)
        outcome = "unreviewed_included" if self.include_unreviewed else "unreviewed_left_out"
        return outcome, {**sample, "review_status": "unreviewed"}


def apply_chain(sample: dict[str, Any], chain: list[Verdict]) -> tuple[str, dict[str, Any] | None]:
    """(outcome, row) of the last verdict of a chain; an accepted correction stays ``corrected``."""
    last = chain[-1]
    if last.verdict == "rejected":
        return "rejected", None
    corrections = [v for v in chain if v.verdict == "corrected"]
    if not corrections:
        return "accepted", {**sample, "review_status": "accepted"}
    return "corrected", {**sample, "conversation": corrections[-1].corrected_conversation, "review_status": "corrected"}


def open_review_gate(
    policy: ReviewPolicy | None, out: Path, *, ledger: Path | None = None, include_unreviewed: bool = False
) -> tuple[ReviewGate | None, list[str]]:
    """The review gate of a build and its warnings; the one place a build's review settings meet.

    ``policy`` is the recipe's ``review:`` section (None: the recipe has none), ``ledger`` the
    build's ``--ledger`` (it overrides ``review.ledger``). A ledger given to a recipe without a
    ``review:`` section brings the default policy with it, so a recipe needs no edit to close the
    loop. No gate at all without both. A policy that routes samples with no ledger named stops the
    build (:class:`ReviewSetupError`) unless ``include_unreviewed``: the verdicts would have nowhere
    to come from. The ledger is read once, here; one that does not exist yet holds no verdicts.
    """
    if policy is None and ledger is None:
        return None, []
    policy = policy if policy is not None else ReviewPolicy()
    ledger_path = Path(ledger) if ledger is not None else policy.ledger
    warnings: list[str] = []
    if ledger_path is None:
        if not include_unreviewed:
            raise ReviewSetupError(
                "the recipe's review policy routes samples to review but names no ledger: give --ledger PATH "
                "(or review.ledger in the recipe), or build with --include-unreviewed"
            )
        warnings.append("no review ledger: samples that need review go to training unreviewed (--include-unreviewed)")
    elif Path(ledger_path).resolve().is_relative_to(Path(out).resolve()):
        warnings.append(f"review ledger {ledger_path} lies inside the build output; keep it outside so it survives rebuilds")
    book = None
    if ledger_path is not None and Path(ledger_path).exists():
        book = ReviewLedger(ledger_path)
    elif ledger_path is not None:
        warnings.append(f"review ledger {ledger_path} does not exist yet: no sample has a verdict")
    try:
        return ReviewGate(policy, book, include_unreviewed=include_unreviewed), warnings
    finally:
        if book is not None:
            book.close()


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
