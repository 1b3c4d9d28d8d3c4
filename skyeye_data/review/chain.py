"""From the ledger's rows to the verdict that applies: conflicts settled, re-review chains followed.

*Conflicts.* Several annotations of the same content (Label Studio's overlap, or the same sample in
two projects) are settled into one verdict: each annotator's latest verdict counts once, then the
recipe's rule (``review.conflict``) decides:

- ``any_reject_wins`` (default): one reject rejects; otherwise a correction wins over an accept
  (someone saw something to fix), the latest correction if there are several;
- ``majority``: keep (accept or edit) against reject, a tie rejects; among keeps, edits against
  accepts, a tie edits;
- ``latest``: the latest saved verdict, whoever gave it.

*Chains.* A ``corrected`` verdict produces new content with its own fingerprint. When that content
is reviewed again (a second look, ``review.second_look``), its verdict is keyed by the new
fingerprint; :meth:`VerdictChains.chain` follows original → corrected → later verdicts, and the
last link decides: a reject of the corrected content takes the sample out of training.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Iterable, Literal, Sequence

from skyeye_data.review.fingerprint import fingerprint_of
from skyeye_data.review.ledger import Verdict

ConflictRule = Literal["any_reject_wins", "majority", "latest"]
CONFLICT_RULES: tuple[str, ...] = ("any_reject_wins", "majority", "latest")


def _order(verdict: Verdict) -> tuple[str, int]:
    return (verdict.reviewed_at, verdict.annotation_id)


def latest_per_annotator(verdicts: Iterable[Verdict]) -> dict[str, Verdict]:
    latest: dict[str, Verdict] = {}
    for verdict in sorted(verdicts, key=_order):
        latest[verdict.annotator] = verdict
    return latest


def settle(verdicts: Sequence[Verdict], rule: str = "any_reject_wins") -> Verdict:
    """The one verdict that stands for ``verdicts`` (all on the same sample id and content)."""
    if rule not in CONFLICT_RULES:
        raise ValueError(f"unknown conflict rule {rule!r} (one of {', '.join(CONFLICT_RULES)})")
    if rule == "latest":
        return max(verdicts, key=_order)
    votes = list(latest_per_annotator(verdicts).values())
    by_kind: dict[str, list[Verdict]] = defaultdict(list)
    for vote in votes:
        by_kind[vote.verdict].append(vote)
    rejected, corrected, accepted = by_kind["rejected"], by_kind["corrected"], by_kind["accepted"]
    if rule == "any_reject_wins":
        winners = rejected or corrected or accepted
    else:  # majority
        keeps = corrected + accepted
        if len(rejected) >= len(keeps):
            winners = rejected
        else:
            winners = corrected if len(corrected) >= len(accepted) else accepted
    return max(winners, key=_order)


class VerdictChains:
    """The ledger's verdicts, settled per (sample id, fingerprint) and linked through corrections."""

    def __init__(self, verdicts: Iterable[Verdict], rule: str = "any_reject_wins"):
        grouped: dict[tuple[str, str], list[Verdict]] = defaultdict(list)
        for verdict in verdicts:
            grouped[(verdict.sample_id, verdict.fingerprint)].append(verdict)
        self.settled = {key: settle(group, rule) for key, group in grouped.items()}
        self.by_sample: dict[str, list[Verdict]] = defaultdict(list)
        for (sample_id, _), verdict in self.settled.items():
            self.by_sample[sample_id].append(verdict)
        self.reviewed_ids = set(self.by_sample)

    @staticmethod
    def produced_fingerprint(verdict: Verdict, image_ids: Sequence[str]) -> str:
        """The fingerprint of the content a correction produced (older ledgers did not store it)."""
        if verdict.corrected_fingerprint:
            return verdict.corrected_fingerprint
        return fingerprint_of(image_ids, verdict.corrected_conversation or [])

    def chain(self, sample_id: str, fingerprint: str, image_ids: Sequence[str]) -> list[Verdict]:
        """The verdicts from this content on: each correction's content, then its own verdict, ..."""
        links: list[Verdict] = []
        seen: set[str] = set()
        while (sample_id, fingerprint) in self.settled and fingerprint not in seen:
            seen.add(fingerprint)
            verdict = self.settled[(sample_id, fingerprint)]
            links.append(verdict)
            if verdict.verdict != "corrected":
                break
            fingerprint = self.produced_fingerprint(verdict, image_ids)
        return links

    def produced_by_review(self, sample_id: str, fingerprint: str, image_ids: Sequence[str]) -> bool:
        """Whether this content is what some correction of the sample produced."""
        return any(
            verdict.verdict == "corrected" and self.produced_fingerprint(verdict, image_ids) == fingerprint
            for verdict in self.by_sample.get(sample_id, ())
        )
