"""Where every record and sample of a build went: one tally per source, one per mix.

Per source: ``records_in = compiled + eval_records + held_out + not_selected + quarantined``
(:attr:`SourceTally.balanced`). Samples are counted apart (one record can give several). Every stage
adds to the tally it is handed and to nothing else, so a stage run elsewhere (a worker process)
returns its tally and the build adds it up in the recipe's order.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, ClassVar

from skyeye_data.quarantine import short_reason


@dataclass
class SampleCounts:
    """What happened to the samples of one source or mix after they were compiled."""

    samples: Counter = field(default_factory=Counter)  # task -> samples written
    duplicates: Counter = field(default_factory=Counter)  # task -> samples left out by the recipe's dedupe

    def count_outcome(self, task: str, outcome: str) -> None:
        """One sample's fate at the dedupe stage and the review gate (review outcomes are counted by the gate)."""
        if outcome == "written":
            self.samples[task] += 1
        elif outcome == "duplicate":
            self.duplicates[task] += 1

    @property
    def samples_total(self) -> int:
        return sum(self.samples.values())


@dataclass
class SourceTally(SampleCounts):
    """Where every record of one source went."""

    source: str = ""
    raw_folder: str = ""
    status: str = "built"  # built | missing
    records_in: int = 0
    converter_quarantined: int = 0
    converter_parts_quarantined: int = 0
    build_quarantined: int = 0
    compiled: int = 0  # train records that gave samples
    eval_records: int = 0
    held_out: Counter = field(default_factory=Counter)  # reason -> records
    not_selected: Counter = field(default_factory=Counter)  # ratio / cap -> records
    leak_guard: Counter = field(default_factory=Counter)  # "<source> <split>" it clashed with -> train records kept out
    eval_overlap: Counter = field(default_factory=Counter)  # "<source> <split>" -> distinct train images admitted that are also there
    eval_items: Counter = field(default_factory=Counter)  # split -> items
    quarantine_reasons: Counter = field(default_factory=Counter)

    def count_quarantined(self, reason: str) -> None:
        self.build_quarantined += 1
        self.quarantine_reasons[short_reason(reason)] += 1

    @property
    def quarantined(self) -> int:
        return self.converter_quarantined + self.build_quarantined

    @property
    def accounted(self) -> int:
        return self.compiled + self.eval_records + sum(self.held_out.values()) + sum(self.not_selected.values()) + self.quarantined

    @property
    def balanced(self) -> bool:
        return self.records_in == self.accounted

    # manifest key -> attribute, for the counters (written sorted) and the plain fields
    COUNTERS: ClassVar[dict[str, str]] = {
        "held_out": "held_out", "not_selected": "not_selected", "quarantine_reasons": "quarantine_reasons",
        "samples": "samples", "duplicates_dropped": "duplicates", "leak_guard_excluded": "leak_guard",
        "eval_overlap": "eval_overlap", "eval_items": "eval_items",
    }  # fmt: skip
    PLAIN: ClassVar[tuple[str, ...]] = ("status", "raw_folder", "records_in", "compiled", "eval_records",
                                        "converter_quarantined", "converter_parts_quarantined", "build_quarantined")  # fmt: skip

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {name: getattr(self, name) for name in self.PLAIN}
        data |= {key: dict(sorted(getattr(self, attribute).items())) for key, attribute in self.COUNTERS.items()}
        return data | {
            "quarantined": self.quarantined,
            "samples_total": self.samples_total,
            "leak_guard_excluded_total": sum(self.leak_guard.values()),
            "balanced": self.balanced,
        }

    def add_compiled(self, other: SourceTally) -> None:
        """Add the counts of this source's compile stage run elsewhere (a worker process, or a
        compiled-samples cache entry): the compile stage starts from an empty tally."""
        self.compiled += other.compiled
        self.eval_records += other.eval_records
        self.build_quarantined += other.build_quarantined
        for attribute in self.COUNTERS.values():
            getattr(self, attribute).update(getattr(other, attribute))

    @classmethod
    def from_json(cls, source: str, data: dict[str, Any]) -> SourceTally:
        """The tally a manifest recorded (a rebuild that only verifies reports the build it found)."""
        counters = {attribute: Counter(data.get(key, {})) for key, attribute in cls.COUNTERS.items()}
        return cls(source=source, **{name: data[name] for name in cls.PLAIN}, **counters)


@dataclass
class MixTally(SampleCounts):
    name: str = ""
    builder: str = ""
    status: str = "built"  # built | skipped
    reason: str | None = None
    quarantined: int = 0  # record-level: a primary record (image, video) that gave no sample
    parts_quarantined: int = 0  # part-level: a class, join or turn left out of a sample that was written

    def to_json(self) -> dict[str, Any]:
        return {
            "builder": self.builder,
            "status": self.status,
            "reason": self.reason,
            "samples": dict(sorted(self.samples.items())),
            "samples_total": self.samples_total,
            "duplicates_dropped": dict(sorted(self.duplicates.items())),
            "quarantined": self.quarantined,
            "parts_quarantined": self.parts_quarantined,
        }

    @classmethod
    def from_json(cls, name: str, data: dict[str, Any]) -> MixTally:
        return cls(name=name, builder=data["builder"], status=data["status"], reason=data["reason"],
                   samples=Counter(data["samples"]), duplicates=Counter(data["duplicates_dropped"]),
                   quarantined=data["quarantined"], parts_quarantined=data["parts_quarantined"])  # fmt: skip
