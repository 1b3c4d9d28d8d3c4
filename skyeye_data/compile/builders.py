"""Task builders: records in, instruction samples out.

Two kinds, each a small function registered by name (the recipe refers to these names):

* **record builders** (``@record_builder``) turn *one* train record of a source into samples:
  caption, vqa, refer, identify, detection. They run on every train record of each source that
  names them in the recipe.
* **mix builders** (``@mix_builder``) read the records of *several* sources through a
  :class:`MixContext` (streams of the converted record tables, joinable on ``image_key``) and emit
  samples that combine them -- Conversa dialogs, RSPG, ERA-VQA. Adding one is adding a module
  under :mod:`skyeye_data.compile.mixes` (imported automatically); the pipeline does not change.

A builder yields :class:`SampleDraft` (the sample, its media still as a raw file reference) or
:class:`BuildRejection` (a reason; the pipeline quarantines the record with it). Media are resolved
into stored image ids by the pipeline, so builders never touch image bytes. A draft also carries
the payload of each instruction (:func:`payload_key`: the task and the fields filled into the
template), which the dedupe stage compares instead of parsing the finished text.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

from skyeye_data.boxes import format_boxes, format_phrase
from skyeye_data.compile.phrases import readable_class
from skyeye_data.compile.options import BuilderOptions
from skyeye_data.compile.templates import TemplatePools


@dataclass(frozen=True)
class MediaFile:
    """The raw file a sample shows: an image file, or ``frames`` frames of a video file.

    (Not :data:`skyeye_data.schema.Media`, the record field saying whether a record is an image or a video.)
    """

    path: Path
    video: bool = False
    frames: int = 0
    sha256: str | None = None  # the file's sha256 when the converter recorded it


@dataclass
class SampleDraft:
    id: str
    source: str
    task: str
    builder: str
    media: MediaFile
    conversation: list[dict[str, str]]
    provenance: dict[str, Any]
    instruction_keys: tuple[str, ...] = ()  # payload_key of each user turn, in order (dedupe)

    def row(self, split: str, image_ids: list[str], review_status: str = "not_required") -> dict[str, Any]:
        """The sample as a row of the samples table (docs/ARCHITECTURE.md)."""
        return {
            "id": self.id,
            "source": self.source,
            "task": self.task,
            "split": split,
            "image_ids": image_ids,
            "conversation": self.conversation,
            "review_status": review_status,
            "provenance": json.dumps(self.provenance, sort_keys=True, ensure_ascii=False),
        }


@dataclass(frozen=True)
class BuildRejection:
    """A record a builder cannot use, with a reason a person understands.

    Record builders leave ``record`` unset (the pipeline knows the record); mix builders set it.
    ``level="part"``: something left out of a sample that was still written (a class, a join).
    """

    reason: str
    record: Any = None
    level: str = "record"


def sample_id(source: str, record_ids: Sequence[str], builder: str, index: int) -> str:
    """Stable id: the same (source, records, builder, index) always gives the same id, in any order."""
    key = "\x1f".join([source, builder, *record_ids, str(index)])
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def payload_key(task: str, *fields: str) -> str:
    """An instruction reduced to its task and payload: which phrasing the pool drew does not count.

    ``[vqa] Based on the image, respond ...: Is it urban?`` and ``[vqa] Is it urban?`` both have the
    key of ("vqa", "Is it urban?"); every caption instruction has the key of ("caption",).
    """
    return "\x1e".join([f"[{task}]", *fields])


def record_media(record, raw_dir: Path, frames: int) -> MediaFile:
    video = record.media == "video"
    return _media_file(raw_dir, record.image_path, video, frames if video else 0, record.image_sha256)


@lru_cache(maxsize=8192)
def _media_file(raw_dir: Path, image_path: str, video: bool, frames: int, sha256: str | None) -> MediaFile:
    # one (immutable) MediaFile per file: RSVQA-HR asks ~100 questions of each image, and joining a
    # Path per sample cost more than the rest of building the sample's media reference
    return MediaFile(raw_dir / image_path, video=video, frames=frames, sha256=sha256)


def record_provenance(record) -> dict[str, Any]:
    return {
        "source": record.source,
        "record_ids": [record.record_id],
        "image_path": record.image_path,
        "raw_file": record.provenance.raw_file,
        "raw_line": record.provenance.raw_line,
        "raw_index": record.provenance.raw_index,
    }


@dataclass
class BuilderContext:
    """What a record builder may use: its options, the pools, the box style, where the raw files are."""

    source: str
    builder: str
    raw_dir: Path
    options: BuilderOptions
    pools: TemplatePools
    box_style: str = "brace"

    def boxes(self, record, boxes: Iterable[Sequence[float]]) -> str:
        return format_boxes(boxes, record.width, record.height, self.box_style)

    def phrase(self, record, phrase: str, boxes: Iterable[Sequence[float]]) -> str:
        return format_phrase(phrase, boxes, record.width, record.height, self.box_style)

    def sample(self, record, index: int, task: str, pool: str, answer: str, **fields: str) -> SampleDraft:
        """A one-turn sample: ``[task] <instruction>`` → ``answer``, from one record."""
        sid = sample_id(self.source, [record.record_id], self.builder, index)
        instruction = self.pools.instruction(task, self.options.pool or pool, sid, **fields)
        provenance = record_provenance(record) | {"builder": self.builder, "index": index}
        return SampleDraft(
            id=sid,
            source=self.source,
            task=task,
            builder=self.builder,
            media=record_media(record, self.raw_dir, self.options.frames),
            conversation=[{"role": "user", "content": instruction}, {"role": "assistant", "content": answer}],
            provenance=provenance,
            instruction_keys=(payload_key(task, *fields.values()),),
        )


RecordBuilderFn = Callable[[Any, BuilderContext], Iterator["SampleDraft | BuildRejection"]]


@dataclass(frozen=True)
class RecordBuilder:
    name: str
    record_tasks: tuple[str, ...]  # record kinds it reads
    sample_task: str  # task of the samples it writes
    fn: RecordBuilderFn
    doc: str = ""


RECORD_BUILDERS: dict[str, RecordBuilder] = {}


def record_builder(name: str, record_tasks: Sequence[str], sample_task: str) -> Callable[[RecordBuilderFn], RecordBuilderFn]:
    def register(fn: RecordBuilderFn) -> RecordBuilderFn:
        if name in RECORD_BUILDERS:
            raise ValueError(f"record builder {name!r} registered twice")
        RECORD_BUILDERS[name] = RecordBuilder(name, tuple(record_tasks), sample_task, fn, (fn.__doc__ or "").strip())
        return fn

    return register


def _limited(items: Sequence, limit: int | None) -> Sequence:
    return items if limit is None else items[:limit]


# -- the single-task builders --------------------------------------------------------------------


@record_builder("caption", record_tasks=("caption",), sample_task="caption")
def caption_samples(record, ctx: BuilderContext):
    """One sample per caption: ``[caption] Briefly describe this image.`` → the caption (video too)."""
    pool = "video_caption" if record.media == "video" else "caption"
    for i, caption in enumerate(_limited(record.captions, ctx.options.max_per_record)):
        yield ctx.sample(record, i, "caption", pool, caption.strip())


@record_builder("vqa", record_tasks=("vqa",), sample_task="vqa")
def vqa_samples(record, ctx: BuilderContext):
    """One sample per question: ``[vqa] <question>`` → the answer."""
    yield ctx.sample(record, 0, "vqa", "vqa", record.answer.strip(), question=record.question.strip())


@record_builder("refer", record_tasks=("grounding",), sample_task="refer")
def refer_samples(record, ctx: BuilderContext):
    """Expression → box: ``[refer] <expression>`` → ``{<x1><y1><x2><y2>}`` (several joined by <delim>)."""
    yield ctx.sample(record, 0, "refer", "refer", ctx.boxes(record, record.boxes), expression=record.expression.strip())


@record_builder("identify", record_tasks=("grounding",), sample_task="identify")
def identify_samples(record, ctx: BuilderContext):
    """Box → expression: ``[identify] this {<x1><y1><x2><y2>} is`` → the expression."""
    yield ctx.sample(record, 0, "identify", "identify", record.expression.strip(), box=ctx.boxes(record, record.boxes))


@record_builder("detection", record_tasks=("detection",), sample_task="detection")
def detection_samples(record, ctx: BuilderContext):
    """Phrase → all its boxes: per class, ``[detection] storage tank`` → ``<p>storage tank</p> {..}<delim>{..}``.

    The class name is written as words (DIOR's 'storagetank' → 'storage tank'), as in RSPG.
    """
    by_label: dict[str, list[list[float]]] = {}
    for obj in record.objects:
        if ctx.options.skip_difficult and obj.difficult:
            continue
        by_label.setdefault(readable_class(obj.label), []).append(obj.box)
    if not by_label:
        yield BuildRejection("every object is marked difficult and skip_difficult is set")
        return
    labels = _limited(list(by_label), ctx.options.max_per_record)
    for i, label in enumerate(labels):
        yield ctx.sample(record, i, "detection", "detection", ctx.phrase(record, label, by_label[label]), phrase=label)


# -- multi-source builders -----------------------------------------------------------------------


@dataclass
class MixContext:
    """What a mix builder may use: the train records of its sources (streamed), pools, box style.

    ``records(source)`` streams the converted train records that the build did not leave out (the
    leak guard applies); a builder joining on ``image_key`` may keep a dict from key to the small
    parts it needs -- never whole record lists of a large source.
    """

    name: str
    builder: str
    sources: list[str]
    options: BuilderOptions
    pools: TemplatePools
    box_style: str
    raw_dirs: dict[str, Path]
    record_stream: Callable[[str], Iterator[Any]]

    def records(self, source: str) -> Iterator[Any]:
        if source not in self.sources:
            raise KeyError(f"mix {self.name!r} did not declare source {source!r}")
        return self.record_stream(source)

    def sample(self, records: Sequence[Any], index: int, task: str, turns: Sequence[tuple[str, str]],
               instruction_keys: Sequence[str]) -> SampleDraft:  # fmt: skip
        """A sample from several records (the first gives the image): ``turns`` = (user, assistant)
        pairs, ``instruction_keys`` the :func:`payload_key` of each user turn."""
        first = records[0]
        sid = sample_id(self.name, [f"{r.source}/{r.record_id}" for r in records], self.builder, index)
        conversation = [
            turn for user, answer in turns for turn in ({"role": "user", "content": user}, {"role": "assistant", "content": answer})
        ]
        provenance = record_provenance(first) | {
            "builder": self.builder,
            "index": index,
            "record_ids": [r.record_id for r in records],
            "sources": [r.source for r in records],  # aligned with record_ids
        }
        media = record_media(first, self.raw_dirs[first.source], self.options.frames)
        return SampleDraft(sid, self.name, task, self.builder, media, conversation, provenance, tuple(instruction_keys))


MixBuilderFn = Callable[[MixContext], Iterator["SampleDraft | BuildRejection"]]
MIX_BUILDERS: dict[str, MixBuilderFn] = {}


def mix_builder(name: str) -> Callable[[MixBuilderFn], MixBuilderFn]:
    def register(fn: MixBuilderFn) -> MixBuilderFn:
        if name in MIX_BUILDERS:
            raise ValueError(f"mix builder {name!r} registered twice")
        MIX_BUILDERS[name] = fn
        return fn

    return register
