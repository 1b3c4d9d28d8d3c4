"""What the ledger says about the reviewers: counts per annotator, and agreement on double reviews.

Agreement is measured on samples (same id and content) that two or more annotators reviewed, over
every pair of their verdicts: *exact* (the same verdict) and *keep/drop* (both kept — accepted or
corrected — or both rejected; a correction is a kind of keep).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from itertools import combinations

from skyeye_data.review.ledger import Verdict

KEEP = {"accepted", "corrected"}


@dataclass
class AnnotatorStats:
    verdicts: Counter = field(default_factory=Counter)  # verdict kind → count
    pairs: int = 0  # verdict pairs with another annotator on the same content
    exact_agreements: int = 0
    tasks: set = field(default_factory=set)  # Label Studio task ids annotated
    lead_times: list = field(default_factory=list)  # seconds per annotation (Label Studio's lead_time)

    @property
    def total(self) -> int:
        return sum(self.verdicts.values())

    def rate(self, kind: str) -> float:
        return self.verdicts[kind] / self.total if self.total else 0.0

    @property
    def seconds_per_task(self) -> float | None:
        return sum(self.lead_times) / len(self.lead_times) if self.lead_times else None


@dataclass
class ReviewReport:
    annotators: dict[str, AnnotatorStats]
    samples_reviewed: int
    samples_reviewed_twice: int
    pairs: int
    exact_agreements: int
    keep_drop_agreements: int

    @property
    def exact_agreement(self) -> float | None:
        return self.exact_agreements / self.pairs if self.pairs else None

    @property
    def keep_drop_agreement(self) -> float | None:
        return self.keep_drop_agreements / self.pairs if self.pairs else None


def latest_per_annotator(verdicts: list[Verdict]) -> dict[tuple[str, str], dict[str, Verdict]]:
    """(sample id, fingerprint) → annotator → that annotator's latest verdict on it."""
    grouped: dict[tuple[str, str], dict[str, Verdict]] = defaultdict(dict)
    for verdict in sorted(verdicts, key=lambda v: (v.reviewed_at, v.annotation_id)):
        grouped[(verdict.sample_id, verdict.fingerprint)][verdict.annotator] = verdict
    return grouped


def review_report(verdicts: list[Verdict]) -> ReviewReport:
    annotators: dict[str, AnnotatorStats] = defaultdict(AnnotatorStats)
    for verdict in verdicts:
        stats = annotators[verdict.annotator]
        stats.verdicts[verdict.verdict] += 1
        stats.tasks.add(verdict.task_id)
        if verdict.lead_time_s is not None:
            stats.lead_times.append(verdict.lead_time_s)
    grouped = latest_per_annotator(verdicts)
    pairs = exact = keep_drop = twice = 0
    for by_annotator in grouped.values():
        if len(by_annotator) < 2:
            continue
        twice += 1
        for a, b in combinations(sorted(by_annotator), 2):
            same = by_annotator[a].verdict == by_annotator[b].verdict
            pairs += 1
            exact += same
            keep_drop += (by_annotator[a].verdict in KEEP) == (by_annotator[b].verdict in KEEP)
            for name in (a, b):
                annotators[name].pairs += 1
                annotators[name].exact_agreements += same
    return ReviewReport(dict(annotators), len(grouped), twice, pairs, exact, keep_drop)
