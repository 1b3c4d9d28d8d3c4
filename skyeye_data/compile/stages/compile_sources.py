"""Stage 3, compile one source: train records → sample drafts, val/test records → eval items.

Two halves, so that the work per record can run anywhere:

* :func:`compile_batch` -- pure: a :class:`SourcePlan` (picklable), the leak guard and a batch of
  records in; one :class:`RecordResult` per record out (what the record is, its drafts, why not).
  No file is read, nothing shared is written: a worker process or a Ray task can run it as is.
* :class:`SourceResults` -- applies the results in the source's order to the outputs it is handed
  (the source's segment: :mod:`skyeye_data.compile.stages.compile_segments`): the ``max_samples``
  cap, the media (image table), the quarantine entries, the sample path and the tally.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from skyeye_data.compile.builders import RECORD_BUILDERS, BuilderContext, BuildRejection, SampleDraft
from skyeye_data.compile.evalsets import eval_enabled, eval_item
from skyeye_data.compile.images import ImageTableWriter, media_ids
from skyeye_data.compile.options import BuilderOptions
from skyeye_data.compile.recipe import Recipe, SourceSpec
from skyeye_data.compile.stages.leak_guard import LeakGuard
from skyeye_data.compile.stages.sink import SampleSink
from skyeye_data.compile.tally import SourceTally
from skyeye_data.compile.templates import TemplatePools, stable_fraction
from skyeye_data.quarantine import record_entry

# what compile_batch says of a record
EVAL, EXCLUDED, HELD_OUT, NOT_SELECTED, CANDIDATE = "eval", "excluded", "held_out", "not_selected", "candidate"


@dataclass
class SourcePlan:
    """Everything compiling one source needs; picklable (builders are named, not held)."""

    name: str
    spec: SourceSpec
    seed: int
    max_side: int | None
    builders: list[tuple[str, BuilderContext]]  # (record builder name, its context), in the recipe's order
    eval_context: BuilderContext
    writes_eval: bool

    @classmethod
    def from_recipe(cls, recipe: Recipe, name: str, raw_dir: Path, pools: TemplatePools) -> SourcePlan:
        spec = recipe.sources[name]
        builders = [(b, BuilderContext(name, b, raw_dir, options, pools, recipe.box_style)) for b, options in spec.builders.items()]
        # eval items of video sources sample as many frames as the source's caption builder
        eval_context = BuilderContext(name, "eval", raw_dir, spec.builders.get("caption", BuilderOptions()), pools, recipe.box_style)
        return cls(name, spec, recipe.seed, spec.max_side or recipe.max_side, builders, eval_context, eval_enabled(name, spec.eval))

    def train_drafts(self, record) -> tuple[list[SampleDraft], list[tuple[str, str]]]:
        """The record builders' drafts for one train record, and (builder, reason) of each rejection."""
        drafts: list[SampleDraft] = []
        rejections: list[tuple[str, str]] = []
        for name, ctx in self.builders:
            builder = RECORD_BUILDERS[name]
            if record.task not in builder.record_tasks:
                continue
            for item in builder.fn(record, ctx):
                if isinstance(item, BuildRejection):
                    rejections.append((name, item.reason))
                else:
                    drafts.append(item)
        return drafts, rejections


@dataclass
class RecordResult:
    record: Any
    kind: str  # EVAL | EXCLUDED | HELD_OUT | NOT_SELECTED | CANDIDATE
    reason: str = ""  # EXCLUDED: the eval split; HELD_OUT / NOT_SELECTED: why
    drafts: list[SampleDraft] = field(default_factory=list)
    rejections: list[tuple[str, str]] = field(default_factory=list)  # (builder, reason)
    eval_extras: dict[str, Any] | None = None
    overlaps: list[str] = field(default_factory=list)  # eval splits sharing the image, let through by the scope


def compile_record(plan: SourcePlan, guard: LeakGuard, record) -> RecordResult:
    if record.split != "train":
        item = eval_item(record, plan.eval_context) if plan.writes_eval else None
        if item is None:
            why = "no eval task" if plan.writes_eval else "not a benchmark source"
            return RecordResult(record, HELD_OUT, f"{record.split} split ({why})")
        return RecordResult(record, EVAL, drafts=[item[0]], eval_extras=item[1])
    # the guard comes first: a source read only by mixes still reports what it kept out of them
    excluded, overlaps = guard.verdict(record)
    if excluded:
        return RecordResult(record, EXCLUDED, excluded)
    if not any(record.task in RECORD_BUILDERS[b].record_tasks for b, _ in plan.builders):
        return RecordResult(record, HELD_OUT, f"no builder for {record.task} records", overlaps=overlaps)
    spec = plan.spec
    if spec.subsets is not None and record.subset not in spec.subsets:
        return RecordResult(record, NOT_SELECTED, f"subset {record.subset} not in the recipe's subsets", overlaps=overlaps)
    if spec.ratio < 1 and stable_fraction(plan.seed, f"{plan.name}/{record.record_id}") >= spec.ratio:
        return RecordResult(record, NOT_SELECTED, "ratio", overlaps=overlaps)
    drafts, rejections = plan.train_drafts(record)
    return RecordResult(record, CANDIDATE, drafts=drafts, rejections=rejections, overlaps=overlaps)


def compile_batch(plan: SourcePlan, guard: LeakGuard, records: Iterable) -> list[RecordResult]:
    """Pure per-record work over a batch (see the module docstring)."""
    return [compile_record(plan, guard, record) for record in records]


@dataclass
class SourceResults:
    """Applies one source's record results, in order, to the build's outputs and the source's tally."""

    plan: SourcePlan
    tally: SourceTally
    images: ImageTableWriter
    sink: SampleSink
    quarantine_write: Callable[[dict], None]
    write_eval: Callable[[str, str, dict], None]
    overlap_images: dict[str, set[str]] = field(default_factory=dict)  # eval split -> distinct train images let through

    def apply(self, result: RecordResult) -> None:
        record, tally = result.record, self.tally
        for label in result.overlaps:
            self.overlap_images.setdefault(label, set()).add(record.image_sha256 or record.image_key)
            tally.eval_overlap[label] = len(self.overlap_images[label])
        if result.kind == EVAL:
            self.eval_record(result)
        elif result.kind == EXCLUDED:
            self.quarantine(record, "leak_guard", f"leak guard: image {record.image_key} is also in {result.reason}; kept out of training")
            tally.leak_guard[result.reason] += 1
        elif result.kind == HELD_OUT:
            tally.held_out[result.reason] += 1
        elif result.kind == NOT_SELECTED:
            tally.not_selected[result.reason] += 1
        elif self.plan.spec.max_samples is not None and tally.samples_total >= self.plan.spec.max_samples:
            tally.not_selected["max_samples cap"] += 1
        else:
            self.train_record(result)

    def quarantine(self, record, stage: str, reason: str, builder: str | None = None) -> None:
        self.quarantine_write(record_entry(record, stage, reason, builder))
        self.tally.count_quarantined(reason)

    def media(self, record, draft: SampleDraft, stage: str) -> list[str] | None:
        ids = media_ids(self.images, draft.media, self.plan.max_side)
        if isinstance(ids, str):  # unreadable media: the record is quarantined, once
            self.quarantine(record, stage, ids)
            return None
        return ids

    def eval_record(self, result: RecordResult) -> None:
        record, draft = result.record, result.drafts[0]
        image_ids = self.media(record, draft, "eval")
        if image_ids is None:
            return
        self.write_eval(self.plan.name, record.split, draft.row(record.split, image_ids) | result.eval_extras)
        self.tally.eval_records += 1
        self.tally.eval_items[record.split] += 1

    def train_record(self, result: RecordResult) -> None:
        record, drafts = result.record, result.drafts
        if not drafts:
            reason = "; ".join(f"{b}: {r}" for b, r in result.rejections) or "no builder produced a sample"
            self.quarantine(record, "build", reason, builder=",".join(b for b, _ in result.rejections) or None)
            return
        for builder, reason in result.rejections:  # other builders did use the record: a part-level note
            self.quarantine_write(record_entry(record, "build", reason, builder, level="part"))
        if self.plan.spec.max_samples is not None:
            drafts = drafts[: self.plan.spec.max_samples - self.tally.samples_total]
        rows = []
        for draft in drafts:
            image_ids = self.media(record, draft, "images")
            if image_ids is None:
                return  # the whole record is quarantined: its samples share the unreadable image
            rows.append(draft.row("train", image_ids))
        for draft, row in zip(drafts, rows):
            self.tally.count_outcome(draft.task, self.sink.put(row, draft.instruction_keys))
        self.tally.compiled += 1
