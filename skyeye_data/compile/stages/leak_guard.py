"""The leak guard: which train records may not share an image with an evaluation split.

While converting, every val/test record's image key and content hash are noted (:class:`EvalImages`:
short strings, not records). The recipe's ``leak_guard`` scope then decides, for each train
record whose image is also in some val/test split, whether it is kept out of training:

* ``within_source`` -- never: each source keeps its own published split (the paper's construction;
  DIOR-RSVG splits per object, so its train images also carry val/test expressions);
* ``benchmarks`` -- when the split belongs to *another* source whose val/test this build evaluates
  (writes eval shards for);
* ``all`` -- always (no image of any val/test split of any source anywhere in training).

Whatever the scope, an overlap the scope lets through is reported (:meth:`LeakGuard.overlaps`,
counted per source pair in the manifest, the card and the build summary), so the choice is visible.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

EvalSplit = tuple[str, str]  # (source, split)


def split_label(split: EvalSplit) -> str:
    return f"{split[0]} {split[1]}"


@dataclass
class EvalImages:
    """Image key / content hash → the val/test splits holding it, in the order they were seen."""

    where: dict[str, list[EvalSplit]] = field(default_factory=dict)

    def add(self, record) -> None:
        if record.split == "train":
            return
        split = (record.source, record.split)
        for key in (record.image_key, record.image_sha256):
            if key:
                splits = self.where.setdefault(key, [])
                if split not in splits:
                    splits.append(split)

    def update(self, other: EvalImages) -> None:
        """Merge another source's notes (the build merges them in the recipe's order)."""
        for key, splits in other.where.items():
            mine = self.where.setdefault(key, [])
            mine.extend(s for s in splits if s not in mine)

    def splits_of(self, record) -> list[EvalSplit]:
        """The val/test splits holding the record's image: by its key first, then by its content hash."""
        found = list(self.where.get(record.image_key, ()))
        if record.image_sha256:
            found += [s for s in self.where.get(record.image_sha256, ()) if s not in found]
        return found


class LeakGuard:
    """The recipe's leak-guard scope over the noted eval images (read-only once built: safe to share)."""

    def __init__(self, scope: str, eval_images: EvalImages, evaluated: Iterable[str]):
        self.scope = scope
        self.eval_images = eval_images
        self.evaluated = frozenset(evaluated)  # the sources whose val/test this build writes as eval shards

    def forbids(self, source: str, split: EvalSplit) -> bool:
        if self.scope == "all":
            return True
        if self.scope == "benchmarks":
            return split[0] != source and split[0] in self.evaluated
        return False  # within_source: the published splits as they are

    def exclusion(self, record) -> str | None:
        """'<source> <split>' of the first eval split that keeps this train record out, or None."""
        return self.verdict(record)[0]

    def overlaps(self, record) -> list[str]:
        """The eval splits sharing this (admitted) train record's image: reported, not excluded."""
        return self.verdict(record)[1]

    def verdict(self, record) -> tuple[str | None, list[str]]:
        """(:meth:`exclusion`, :meth:`overlaps`) from one look-up of the record's image."""
        splits = self.eval_images.splits_of(record)
        for split in splits:
            if self.forbids(record.source, split):
                return split_label(split), []
        return None, [split_label(s) for s in splits]

    def admits(self, record) -> bool:
        return record.split == "train" and self.exclusion(record) is None
