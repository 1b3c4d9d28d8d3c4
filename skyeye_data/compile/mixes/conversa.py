"""Conversa: multi-task dialogs about one image, joining the records several sources hold on it.

SkyEye-968k's four sets (recipe ``mixes:``; the first source gives the image, one dialog per train
image of it, the others are joined on it):

==================  ===========================  ==================================
set                 sources                      turns
==================  ===========================  ==================================
UCM-Conversa        ucm_captions, rsivqa         caption, vqa
Sydney-Conversa     sydney_captions, rsivqa      caption, vqa
DIOR-Conversa       dior_rsvg, dior              refer, identify, detection
DOTA-Conversa       dota, rsivqa                 vqa, detection
==================  ===========================  ==================================

Images. The first source's records on one image (consecutive records sharing an ``image_key``:
one record per image, or DIOR-RSVG's expressions of one annotation file) make one dialog.

Join. Records belong together when they carry the same ``image_key`` (RSIVQA's UCM questions get
``ucm:<stem>``; DIOR detection and DIOR-RSVG both ``dior:<id>``) *and* the same content: when
both records know their image's sha256 and the hashes differ, the two files only share a name --
the joined record is left out and written to the quarantine as a part, with both hashes. Split
(option ``join_split``): ``train`` joins only the other sources' own train records; ``any`` (read
only under ``leak_guard: within_source``) joins their records of any split, since the dialog's image
and split are the first source's -- DIOR-RSVG splits per object, so most of its train images are
DIOR val/test images, whose DIOR detection the paper's DIOR-Conversa pairs with them (a dialog
lists the val/test records it joined in its provenance, ``joined_eval``). Memory:
one pass keeps the first source's image keys and hashes, a second keeps, for those keys only, the
small parts of the joined records (question/answer, expression/boxes); the first source is then
streamed.

Turns (options ``turns``, ``min_turns``, ``max_turns``, ``min_tasks``, ``shuffle_turns``):

- ``caption``: one of the image's distinct captions, once per dialog; ``vqa``: a question on the
  image and its answer; ``refer`` / ``identify``: an expression and its box, either way round (one expression never
  serves both, which would give the answer away); ``detection``: one class of the image, counted
  ("the two ships"), with all its boxes (the phrase-grounding limits of :mod:`._common` apply).
- The dialog length is drawn from ``min_turns``..``max_turns`` by the seed and the image's record
  id (capped by what the image offers); the first turns cover as many distinct tasks as possible,
  in an order drawn from the seed (``shuffle_turns``) or the order of ``turns``.
- An image offering fewer than ``min_tasks`` tasks or ``min_turns`` turns gives no dialog: one
  record-level quarantine entry with the reason (e.g. no RSIVQA question on this image).

Every user turn starts with its task identifier. Sample task: ``conversation``.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass
from typing import Any, Iterator

from skyeye_data.boxes import format_boxes, format_phrase
from skyeye_data.compile.builders import BuildRejection, MixContext, SampleDraft, mix_builder, payload_key
from skyeye_data.compile.mixes._common import instruction, phraseable_classes
from skyeye_data.compile.phrases import count_phrase
from skyeye_data.compile.templates import stable_index

@dataclass(frozen=True)
class JoinedPart:
    """What a dialog needs of a joined record: its identity and its payload, nothing else."""

    source: str
    record_id: str
    task: str
    split: str
    width: int
    height: int
    question: str | None = None
    answer: str | None = None
    expression: str | None = None
    boxes: tuple[tuple[float, ...], ...] = ()
    objects: tuple[Any, ...] = ()  # detection: the DetectedObjects (label, box, difficult)


@dataclass(frozen=True)
class Turn:
    kind: str
    user: str
    answer: str
    part: Any  # the record or JoinedPart the turn comes from
    key: str  # turns sharing a key never meet in one dialog
    payload: str  # builders.payload_key of the instruction (dedupe)


def joined_part(record) -> JoinedPart:
    return JoinedPart(
        source=record.source,
        record_id=record.record_id,
        task=record.task,
        split=record.split,
        width=record.width,
        height=record.height,
        question=getattr(record, "question", None),
        answer=getattr(record, "answer", None),
        expression=getattr(record, "expression", None),
        boxes=tuple(tuple(b) for b in getattr(record, "boxes", None) or ()),
        objects=tuple(getattr(record, "objects", None) or ()),
    )


def same_content(first_sha: str | None, other_sha: str | None) -> bool:
    """Hashes confirm the join; a record without a hash is joined on its key alone."""
    return first_sha is None or other_sha is None or first_sha == other_sha


# -- candidate turns -----------------------------------------------------------------------------


def caption_turns(ctx: MixContext, record) -> list[Turn]:
    """One caption turn: a dialog asks for the description once (its text drawn among the distinct captions)."""
    pool = "video_caption" if record.media == "video" else "caption"
    captions = sorted({text.strip() for text in record.captions})
    key = f"{record.record_id}/caption"
    chosen = captions[stable_index(ctx.pools.seed, key, len(captions))]
    return [Turn("caption", instruction(ctx.pools, "caption", pool, key), chosen, record, key, payload_key("caption"))]


def vqa_turn(ctx: MixContext, part) -> Turn:
    question = part.question.strip()
    user = instruction(ctx.pools, "vqa", "vqa", f"{part.record_id}/vqa", question=question)
    return Turn("vqa", user, part.answer.strip(), part, part.record_id, payload_key("vqa", question))


def refer_turn(ctx: MixContext, part) -> Turn:
    expression = part.expression.strip()
    user = instruction(ctx.pools, "refer", "refer", f"{part.record_id}/refer", expression=expression)
    answer = format_boxes(part.boxes, part.width, part.height, ctx.box_style)
    return Turn("refer", user, answer, part, part.record_id, payload_key("refer", expression))


def identify_turn(ctx: MixContext, part) -> Turn:
    box = format_boxes(part.boxes, part.width, part.height, ctx.box_style)
    user = instruction(ctx.pools, "identify", "identify", f"{part.record_id}/identify", box=box)
    return Turn("identify", user, part.expression.strip(), part, part.record_id, payload_key("identify", box))


def detection_turns(ctx: MixContext, record) -> tuple[list[Turn], dict[str, str]]:
    boxes_of, left_out = phraseable_classes(record, ctx.options)
    turns = []
    for label, boxes in boxes_of.items():
        phrase = count_phrase(label, len(boxes))
        user = instruction(ctx.pools, "detection", "detection", f"{record.record_id}/detection/{label}", phrase=phrase)
        answer = format_phrase(phrase, boxes, record.width, record.height, ctx.box_style)
        turns.append(Turn("detection", user, answer, record, f"{record.record_id}/detection/{label}", payload_key("detection", phrase)))
    return turns, left_out


def candidate_turns(ctx: MixContext, first, parts: list[JoinedPart]) -> tuple[dict[str, list[Turn]], dict[str, str]]:
    """Every turn the image offers, by kind (only the kinds the recipe asks for); classes left out."""
    wanted = set(ctx.options.turns)
    by_kind: dict[str, list[Turn]] = {kind: [] for kind in ctx.options.turns}
    left_out: dict[str, str] = {}
    for item in [first, *parts]:
        if item.task == "caption" and "caption" in wanted:
            by_kind["caption"] += caption_turns(ctx, item)
        elif item.task == "vqa" and "vqa" in wanted:
            by_kind["vqa"].append(vqa_turn(ctx, item))
        elif item.task == "grounding":
            for kind, make in (("refer", refer_turn), ("identify", identify_turn)):
                if kind in wanted:
                    by_kind[kind].append(make(ctx, item))
        elif item.task == "detection" and "detection" in wanted:
            turns, dropped = detection_turns(ctx, item)
            by_kind["detection"] += turns
            left_out |= dropped
    return {kind: turns for kind, turns in by_kind.items() if turns}, left_out


# -- the dialog ----------------------------------------------------------------------------------


def choose_turns(by_kind: dict[str, list[Turn]], order: list[str], count: int, rng: random.Random) -> list[Turn]:
    """Round-robin over the kinds in ``order`` (distinct tasks first), a seeded candidate each time."""
    pools = {kind: rng.sample(by_kind[kind], len(by_kind[kind])) for kind in order}
    chosen: list[Turn] = []
    used: set[str] = set()
    while len(chosen) < count:
        progressed = False
        for kind in order:
            while pools[kind] and pools[kind][-1].key in used:
                pools[kind].pop()
            if pools[kind] and len(chosen) < count:
                turn = pools[kind].pop()
                chosen.append(turn)
                used.add(turn.key)
                progressed = True
        if not progressed:
            break
    return chosen


def usable_turn_count(by_kind: dict[str, list[Turn]]) -> int:
    return len({turn.key for turns in by_kind.values() for turn in turns})


def plan_dialog(ctx: MixContext, first, by_kind: dict[str, list[Turn]]) -> list[Turn] | str:
    """The dialog's turns, in order, or why the image cannot have one."""
    options = ctx.options
    if len(by_kind) < options.min_tasks:
        offered = ", ".join(sorted(by_kind)) or "none"
        missing = ", ".join(k for k in options.turns if k not in by_kind)
        return f"the image offers {len(by_kind)} of the dialog's tasks ({offered}; none for {missing}), the recipe asks for at least {options.min_tasks}"
    available = usable_turn_count(by_kind)
    if available < options.min_turns:
        return f"the image offers {available} distinct turns, the recipe asks for at least {options.min_turns}"
    rng = random.Random(f"conversa:{ctx.pools.seed}:{ctx.name}:{first.record_id}")
    # at least one turn per required task, at most what the image offers
    count = min(max(rng.randint(options.min_turns, options.max_turns), options.min_tasks), available)
    order = [kind for kind in options.turns if kind in by_kind]
    if options.shuffle_turns:
        rng.shuffle(order)
    turns = choose_turns(by_kind, order, count, rng)
    covered = {turn.kind for turn in turns}
    if len(covered) < options.min_tasks:  # e.g. refer and identify offered by one expression only
        return f"the image's distinct turns cover {len(covered)} tasks ({', '.join(sorted(covered))}), the recipe asks for at least {options.min_tasks}"
    if not options.shuffle_turns:
        turns.sort(key=lambda t: options.turns.index(t.kind))  # stable: candidates keep their drawn order
    return turns


def dialog_sample(ctx: MixContext, first, turns: list[Turn], left_out: dict[str, str]) -> SampleDraft:
    records = [first]
    for turn in turns:
        if all(turn.part.record_id != r.record_id or turn.part.source != r.source for r in records):
            records.append(turn.part)
    sample = ctx.sample(records, 0, "conversation", [(t.user, t.answer) for t in turns], [t.payload for t in turns])
    sample.provenance["turns"] = [t.kind for t in turns]
    if left_out:
        sample.provenance["left_out"] = left_out
    joined_eval = sorted({f"{r.source} {r.split}" for r in records[1:] if isinstance(r, JoinedPart) and r.split != "train"})
    if joined_eval:  # join_split: any -- visible in the sample, as the build reports its image overlaps
        sample.provenance["joined_eval"] = joined_eval
    return sample


# -- the join ------------------------------------------------------------------------------------


def image_groups(ctx: MixContext) -> Iterator[list]:
    """The first source's train records, a list per image (consecutive records with one image_key)."""
    for _key, group in itertools.groupby(ctx.records(ctx.sources[0]), key=lambda record: record.image_key):
        yield list(group)


def first_images(ctx: MixContext) -> dict[str, str | None]:
    """image_key → sha256 of the first source's train images (short strings: bounded by its images)."""
    return {group[0].image_key: group[0].image_sha256 for group in image_groups(ctx)}


def join_parts(ctx: MixContext, images: dict[str, str | None]) -> Iterator[tuple[str, JoinedPart] | BuildRejection]:
    """(image_key, part) for every record of the other sources on one of ``images``; clashes as rejections."""
    for source in ctx.sources[1:]:
        for record in ctx.records(source):
            if record.image_key not in images:
                continue
            sha = images[record.image_key]
            if not same_content(sha, record.image_sha256):
                yield BuildRejection(
                    f"not joined: image key {record.image_key} names different content in {ctx.sources[0]} "
                    f"(sha256 {sha[:12]}…) and {source} (sha256 {record.image_sha256[:12]}…)",
                    record=record,
                    level="part",
                )
                continue
            yield record.image_key, joined_part(record)


@mix_builder("conversa")
def conversa_samples(ctx: MixContext) -> Iterator[SampleDraft | BuildRejection]:
    """One multi-task dialog per train image of the first source, joined with the others' records."""
    images = first_images(ctx)
    parts: dict[str, list[JoinedPart]] = {}
    for item in join_parts(ctx, images):
        if isinstance(item, BuildRejection):
            yield item
        else:
            parts.setdefault(item[0], []).append(item[1])
    del images
    for first, *same_image in image_groups(ctx):
        joined = [*same_image, *parts.pop(first.image_key, [])]
        by_kind, left_out = candidate_turns(ctx, first, joined)
        plan = plan_dialog(ctx, first, by_kind)
        if isinstance(plan, str):
            yield BuildRejection(f"no dialog: {plan}", record=first)
            continue
        yield dialog_sample(ctx, first, plan, left_out)
