"""``skyeye build``: recipe + raw root → samples, images, eval shards, quarantine, manifest, card.

Stages (each a function with one job; none reads back from a later one):

1. **resolve** the recipe's sources against ``RAW/<folder>`` (absent: warning and skip, or an
   error with ``require_all``);
2. **convert** each present source with :func:`skyeye_data.convert.convert_source` into
   ``OUT/records/`` -- multi-source builders read (and join) these tables later;
3. **leak guard**: collect the image keys and hashes of every val/test record of every source, so
   no image of an evaluation split reaches a training sample, across sources (DESIGN.md);
4. **compile** each source: its train records through its record builders into samples; its val/test
   records into eval shards (benchmark sources) or held out;
5. **mixes**: multi-source builders over the converted records;
6. **commit**: rename every shard onto its final name, then write README.md and, last,
   manifest.json (a build folder without a manifest is incomplete).

Counting, per source: ``records in = compiled + eval + held out + not selected + quarantined``
(quarantined = converter rejections + records a builder or the image store could not use). One
train record can give several samples (one per caption), so samples are counted separately.
"""

from __future__ import annotations

import hashlib
import json
import re
import string
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Iterator, Protocol

import pyarrow.parquet as pq

from skyeye_data.compile.builders import (
    MIX_BUILDERS,
    RECORD_BUILDERS,
    BuilderContext,
    BuildRejection,
    MixContext,
    SampleDraft,
)
from skyeye_data.compile.evalsets import EVAL_SCHEMA, eval_enabled, eval_item
from skyeye_data.compile.images import ImageStore
from skyeye_data.compile.recipe import BuilderOptions, Recipe, SourceSpec
from skyeye_data.compile.samples import SAMPLES_SCHEMA
from skyeye_data.compile.shards import (
    PendingFile,
    ShardedParquetWriter,
    commit_files,
    numbered_name,
    remove_stale_temporaries,
    split_shard_name,
)
from skyeye_data.compile.templates import TemplatePools, stable_fraction
from skyeye_data.convert import ConvertSummary, convert_source, quarantine_location, read_records, short_reason
from skyeye_data.io import temporary_name, write_json_atomic, write_text_atomic
from skyeye_data.sources.base import ImageProblem, LayoutError, file_sha256

MANIFEST_FORMAT = "skyeye-build/1"
OUTPUT_DIRS = ("samples", "images", "eval", "review-queue")


class BuildError(Exception):
    """The build cannot go on (a required source is absent, a raw folder has the wrong layout)."""


class Progress(Protocol):
    def stage(self, description: str, total: int | None) -> None: ...
    def advance(self, n: int = 1) -> None: ...


class NullProgress:
    def stage(self, description: str, total: int | None) -> None:  # noqa: D102
        pass

    def advance(self, n: int = 1) -> None:  # noqa: D102
        pass


# ---------------------------------------------------------------------------------------------
# tallies
# ---------------------------------------------------------------------------------------------


@dataclass
class SourceTally:
    """Where every record of one source went."""

    source: str
    raw_folder: str
    status: str = "built"  # built | missing
    records_in: int = 0
    converter_quarantined: int = 0
    converter_parts_quarantined: int = 0
    build_quarantined: int = 0
    compiled: int = 0  # train records that gave samples
    eval_records: int = 0
    held_out: Counter = field(default_factory=Counter)  # reason -> records
    not_selected: Counter = field(default_factory=Counter)  # ratio / cap -> records
    samples: Counter = field(default_factory=Counter)  # task -> samples
    duplicates: Counter = field(default_factory=Counter)  # task -> samples left out by the recipe's dedupe
    leak_guard: Counter = field(default_factory=Counter)  # "<source> <split>" it clashed with -> train records kept out
    eval_items: Counter = field(default_factory=Counter)  # split -> items
    quarantine_reasons: Counter = field(default_factory=Counter)

    @property
    def quarantined(self) -> int:
        return self.converter_quarantined + self.build_quarantined

    @property
    def accounted(self) -> int:
        return self.compiled + self.eval_records + sum(self.held_out.values()) + sum(self.not_selected.values()) + self.quarantined

    @property
    def balanced(self) -> bool:
        return self.records_in == self.accounted

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "raw_folder": self.raw_folder,
            "records_in": self.records_in,
            "compiled": self.compiled,
            "eval_records": self.eval_records,
            "held_out": dict(sorted(self.held_out.items())),
            "not_selected": dict(sorted(self.not_selected.items())),
            "quarantined": self.quarantined,
            "converter_quarantined": self.converter_quarantined,
            "converter_parts_quarantined": self.converter_parts_quarantined,
            "build_quarantined": self.build_quarantined,
            "quarantine_reasons": dict(sorted(self.quarantine_reasons.items())),
            "samples": dict(sorted(self.samples.items())),
            "samples_total": sum(self.samples.values()),
            "duplicates_dropped": dict(sorted(self.duplicates.items())),
            "leak_guard_excluded": dict(sorted(self.leak_guard.items())),
            "leak_guard_excluded_total": sum(self.leak_guard.values()),
            "eval_items": dict(sorted(self.eval_items.items())),
            "balanced": self.balanced,
        }


@dataclass
class MixTally:
    name: str
    builder: str
    status: str = "built"  # built | skipped
    reason: str | None = None
    samples: Counter = field(default_factory=Counter)
    duplicates: Counter = field(default_factory=Counter)
    quarantined: int = 0  # record-level: a primary record (image, video) that gave no sample
    parts_quarantined: int = 0  # part-level: a class, join or turn left out of a sample that was written

    def to_json(self) -> dict[str, Any]:
        return {
            "builder": self.builder,
            "status": self.status,
            "reason": self.reason,
            "samples": dict(sorted(self.samples.items())),
            "samples_total": sum(self.samples.values()),
            "duplicates_dropped": dict(sorted(self.duplicates.items())),
            "quarantined": self.quarantined,
            "parts_quarantined": self.parts_quarantined,
        }


@dataclass
class BuildResult:
    out: Path
    manifest: dict[str, Any]
    sources: dict[str, SourceTally]
    mixes: dict[str, MixTally]
    warnings: list[str]


# ---------------------------------------------------------------------------------------------
# outputs
# ---------------------------------------------------------------------------------------------


class QuarantineLog:
    """``OUT/quarantine.jsonl``, one JSON object a line, written under a temporary name.

    ``strict`` (``skyeye build --strict``) turns bad input into an error instead: what a converter or
    a record builder rejected. What a selection leaves out is not bad input and never stops a strict
    build: records the leak guard keeps out, records a mix cannot use (an image with too few tasks
    for a dialog), and exclusions the dataset's authors ask for (``deliberate``).
    """

    def __init__(self, final: Path, strict: bool = False):
        self.final = final
        self.strict = strict
        final.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = temporary_name(final)
        self._file = open(self.tmp, "w", encoding="utf-8")
        self.lines = 0

    def write(self, entry: dict[str, Any]) -> None:
        if self.strict and entry.get("stage") not in ("leak_guard", "mix") and not entry.get("deliberate"):
            raise BuildError(f"--strict: {quarantine_location(entry)}: {entry.get('reason')}")
        self._file.write(json.dumps(entry, ensure_ascii=False, sort_keys=True) + "\n")
        self.lines += 1

    def close(self) -> PendingFile:
        self._file.close()
        return PendingFile(self.tmp, self.final)

    def abort(self) -> None:
        self._file.close()
        self.tmp.unlink(missing_ok=True)


class InstructionKeys:
    """An instruction reduced to its task and payload: which phrasing the pool drew does not count.

    ``[vqa] Based on the image, respond ...: Is it urban?`` and ``[vqa] Is it urban?`` both become
    (vqa, "Is it urban?"); every caption instruction becomes (caption,). The templates of the task's
    pools are matched longest literal text first, so a bare ``{question}`` template comes last.
    """

    def __init__(self, pools: TemplatePools):
        by_task: dict[str, list[tuple[int, re.Pattern]]] = {}
        for pool, templates in pools.pools.items():
            task = pool.rsplit("_", 1)[-1]  # video_caption -> caption
            by_task.setdefault(task, []).extend(self._pattern(t) for t in templates)
        self.patterns = {task: [p for _, p in sorted(found, key=lambda f: -f[0])] for task, found in by_task.items()}

    @staticmethod
    def _pattern(template: str) -> tuple[int, re.Pattern]:
        """(length of the template's literal text, a regex capturing its fields)."""
        parts = list(string.Formatter().parse(template))
        regex = "".join(re.escape(text) + (f"(?P<{name}>.+)" if name else "") for text, name, _, _ in parts)
        return sum(len(text) for text, _, _, _ in parts), re.compile(regex, re.S)

    def key(self, text: str) -> str:
        task, _, rest = text.partition(" ")
        for pattern in self.patterns.get(task.strip("[]"), ()):
            match = pattern.fullmatch(rest)
            if match:
                return "\x1e".join([task, *match.groups()])
        return text


class SampleDigests:
    """Which samples were written, as 16-byte digests (about 100 MB at a million samples).

    A sample's identity is its images, task, answers and its instructions' task and payload
    (:class:`InstructionKeys`): the same caption twice on one image is a repeat whichever phrasing
    each drew, and so is the same question with the same answer.
    """

    def __init__(self, pools: TemplatePools) -> None:
        self.instructions = InstructionKeys(pools)
        self.digests: set[bytes] = set()

    def digest(self, row: dict[str, Any]) -> bytes:
        parts = [row["task"], *row["image_ids"]]
        for turn in row["conversation"]:
            content = self.instructions.key(turn["content"]) if turn["role"] == "user" else turn["content"]
            parts.append(f"{turn['role']}:{content}")
        return hashlib.blake2b("\x1f".join(parts).encode(), digest_size=16).digest()

    def first_time(self, row: dict[str, Any]) -> bool:
        key = self.digest(row)
        if key in self.digests:
            return False
        self.digests.add(key)
        return True


class BuildOutputs:
    """Every file a build writes, held under temporary names until :meth:`commit`."""

    def __init__(self, out: Path, recipe: Recipe, frame_cache: Path, review_gate=None, strict: bool = False):
        self.out = out
        self.recipe = recipe
        self.images = ImageStore(out / "images", recipe.max_side, frame_cache)
        self.quarantine = QuarantineLog(out / "quarantine.jsonl", strict)
        self.sample_writers: dict[str, ShardedParquetWriter] = {}
        self.eval_writers: dict[tuple[str, str], ShardedParquetWriter] = {}
        self.seen_samples = SampleDigests(TemplatePools(recipe.templates, recipe.seed)) if recipe.dedupe else None
        self.review_gate = review_gate  # skyeye_data.review.ReviewGate, or None: no review
        self.queue_writer: ShardedParquetWriter | None = None

    def write_sample(self, row: dict[str, Any]) -> str:
        """Write a sample row. Returns "written"; "duplicate" (nothing written) when dedupe is on and the
        sample repeats an earlier one; or the review outcome of a sample kept out of training
        ("rejected", or "unreviewed_left_out": written to review-queue/ instead)."""
        if self.seen_samples is not None and not self.seen_samples.first_time(row):
            return "duplicate"
        if self.review_gate is not None:
            outcome, row = self.review_gate.decide(row)
            if outcome == "unreviewed_left_out":
                self._queue_writer().write(row)
                return outcome
            if row is None:
                return outcome
        split = row["split"]
        if split not in self.sample_writers:
            self.sample_writers[split] = ShardedParquetWriter(
                self.out / "samples", split, SAMPLES_SCHEMA, split_shard_name(split),
                self.recipe.shard_size, self.recipe.row_group_size,
            )  # fmt: skip
        self.sample_writers[split].write(row)
        return "written"

    def _queue_writer(self) -> ShardedParquetWriter:
        if self.queue_writer is None:
            self.queue_writer = ShardedParquetWriter(
                self.out / "review-queue", "queue", SAMPLES_SCHEMA, numbered_name("queue"),
                self.recipe.shard_size, self.recipe.row_group_size,
            )  # fmt: skip
        return self.queue_writer

    def write_eval(self, source: str, split: str, row: dict[str, Any]) -> None:
        key = (source, split)
        if key not in self.eval_writers:
            stem = f"{source}-{split}"
            self.eval_writers[key] = ShardedParquetWriter(
                self.out / "eval", stem, EVAL_SCHEMA, numbered_name(stem), self.recipe.shard_size, self.recipe.row_group_size
            )
        self.eval_writers[key].write(row)

    def _writers(self) -> list[ShardedParquetWriter]:
        queue = [self.queue_writer] if self.queue_writer is not None else []
        return [*self.sample_writers.values(), *self.eval_writers.values(), *queue]

    def commit(self) -> list[Path]:
        """Close everything, drop the previous build's shards, and rename the new files into place."""
        pending = [p for writer in self._writers() for p in writer.close()]
        pending += self.images.close()
        pending.append(self.quarantine.close())
        # without a manifest the folder reads as incomplete while files are being swapped
        (self.out / "manifest.json").unlink(missing_ok=True)
        new_finals = {p.final for p in pending}
        for directory in OUTPUT_DIRS:
            for stale in (self.out / directory).glob("*.parquet"):
                if stale not in new_finals:
                    stale.unlink()
        return commit_files(pending)

    def abort(self) -> None:
        for writer in self._writers():
            writer.abort()
        self.images.abort()
        self.quarantine.abort()


# ---------------------------------------------------------------------------------------------
# stages
# ---------------------------------------------------------------------------------------------


def resolve_sources(recipe: Recipe, raw_root: Path, require_all: bool) -> tuple[dict[str, Path | None], list[str]]:
    """Each recipe source's raw folder, or None when absent (with a warning)."""
    resolved: dict[str, Path | None] = {}
    warnings: list[str] = []
    for name in recipe.sources:
        raw_dir = raw_root / recipe.raw_folder(name)
        if raw_dir.is_dir():
            resolved[name] = raw_dir
            continue
        if require_all:
            raise BuildError(f"{name}: raw folder {raw_dir} is absent (--require-all)")
        warnings.append(f"{name}: raw folder {raw_dir} is absent; source skipped")
        resolved[name] = None
    return resolved, warnings


def convert_stage(name: str, raw_dir: Path, records_dir: Path, outputs: BuildOutputs, progress: Progress) -> ConvertSummary:
    progress.stage(f"convert {name}", None)
    try:
        summary = convert_source(name, raw_dir, records_dir, on_item=progress.advance)
    except LayoutError as error:
        raise BuildError(str(error)) from error
    _copy_converter_quarantine(summary, outputs.quarantine)
    return summary


def _copy_converter_quarantine(summary: ConvertSummary, quarantine: QuarantineLog) -> None:
    with open(summary.quarantine_path, encoding="utf-8") as lines:
        for line in lines:
            if line.strip():
                quarantine.write(json.loads(line) | {"stage": "convert"})


class EvalImages:
    """Image keys and hashes of every val/test record (a set of short strings, not the records)."""

    def __init__(self) -> None:
        self.where: dict[str, str] = {}

    def add(self, record) -> None:
        label = f"{record.source} {record.split}"
        self.where.setdefault(record.image_key, label)
        if record.image_sha256:
            self.where.setdefault(record.image_sha256, label)

    def conflict(self, record) -> str | None:
        return self.where.get(record.image_key) or (self.where.get(record.image_sha256) if record.image_sha256 else None)


def collect_eval_images(records_paths: dict[str, Path], progress: Progress) -> EvalImages:
    """Reads only the four columns it needs (no record validation: the converter did that)."""
    eval_images = EvalImages()
    progress.stage("leak guard: val/test images", len(records_paths))
    columns = ["source", "split", "image_key", "image_sha256"]
    for path in records_paths.values():
        for batch in pq.ParquetFile(path).iter_batches(batch_size=8192, columns=columns):
            for row in batch.to_pylist():
                if row["split"] != "train":
                    eval_images.add(SimpleNamespace(**row))
        progress.advance()
    return eval_images


def quarantine_entry(record, stage: str, reason: str, builder: str | None = None, level: str = "record") -> dict[str, Any]:
    return {
        "source": record.source,
        "stage": stage,
        "builder": builder,
        "record_id": record.record_id,
        "raw_file": record.provenance.raw_file,
        "raw_line": record.provenance.raw_line,
        "raw_index": record.provenance.raw_index,
        "level": level,
        "reason": reason,
        "excerpt": None,
    }


def eval_options(spec: SourceSpec) -> BuilderOptions:
    """Eval items of video sources sample as many frames as the source's caption builder."""
    return spec.builders.get("caption", BuilderOptions())


class SourceCompiler:
    """Compiles the records of one source: train → samples, val/test → eval shards or held out."""

    def __init__(self, name: str, raw_dir: Path, recipe: Recipe, pools: TemplatePools, outputs: BuildOutputs,
                 eval_images: EvalImages | None, tally: SourceTally):  # fmt: skip
        self.name = name
        self.spec = recipe.sources[name]
        self.recipe = recipe
        self.outputs = outputs
        self.eval_images = eval_images
        self.tally = tally
        self.max_side = self.spec.max_side or recipe.max_side
        self.builders = [
            (RECORD_BUILDERS[b], BuilderContext(name, b, raw_dir, options, pools, recipe.box_style))
            for b, options in self.spec.builders.items()
        ]
        self.eval_context = BuilderContext(name, "eval", raw_dir, eval_options(self.spec), pools, recipe.box_style)
        self.writes_eval = eval_enabled(name, self.spec.eval)

    def run(self, records_path: Path, progress: Progress) -> None:
        progress.stage(f"compile {self.name}", self.tally.records_in - self.tally.converter_quarantined)
        for record in read_records(records_path):
            if record.split == "train":
                self.train_record(record)
            else:
                self.eval_record(record)
            progress.advance()

    def quarantine(self, record, stage: str, reason: str, builder: str | None = None) -> None:
        self.outputs.quarantine.write(quarantine_entry(record, stage, reason, builder))
        self.tally.build_quarantined += 1
        self.tally.quarantine_reasons[short_reason(reason)] += 1

    def eval_record(self, record) -> None:
        item = eval_item(record, self.eval_context) if self.writes_eval else None
        if item is None:
            self.tally.held_out[f"{record.split} split ({'no eval task' if self.writes_eval else 'not a benchmark source'})"] += 1
            return
        draft, extras = item
        image_ids = self.resolve_media(record, draft, "eval")
        if image_ids is None:
            return
        self.outputs.write_eval(self.name, record.split, draft.row(record.split, image_ids) | extras)
        self.tally.eval_records += 1
        self.tally.eval_items[record.split] += 1

    def train_record(self, record) -> None:
        # the guard comes first: a source read only by mixes still reports what it kept out of them
        conflict = self.eval_images.conflict(record) if self.eval_images else None
        if conflict:
            self.quarantine(record, "leak_guard", f"leak guard: image {record.image_key} is also in {conflict}; kept out of training")
            self.tally.leak_guard[conflict] += 1
            return
        applicable = [(b, ctx) for b, ctx in self.builders if record.task in b.record_tasks]
        if not applicable:
            self.tally.held_out[f"no builder for {record.task} records"] += 1
            return
        if not self.selected(record):
            return
        drafts, rejections = self.run_builders(record, applicable)
        if not drafts:
            reason = "; ".join(f"{b}: {r}" for b, r in rejections) or "no builder produced a sample"
            self.quarantine(record, "build", reason, builder=",".join(b for b, _ in rejections) or None)
            return
        for builder, reason in rejections:  # other builders did use the record: a part-level note
            self.outputs.quarantine.write(quarantine_entry(record, "build", reason, builder, level="part"))
        self.write_train(record, drafts)

    def selected(self, record) -> bool:
        """The recipe's subsets, seeded ratio sampling and the max_samples cap (counted, never silent)."""
        if self.spec.subsets is not None and record.subset not in self.spec.subsets:
            self.tally.not_selected[f"subset {record.subset} not in the recipe's subsets"] += 1
            return False
        if self.spec.ratio < 1 and stable_fraction(self.recipe.seed, f"{self.name}/{record.record_id}") >= self.spec.ratio:
            self.tally.not_selected["ratio"] += 1
            return False
        if self.spec.max_samples is not None and sum(self.tally.samples.values()) >= self.spec.max_samples:
            self.tally.not_selected["max_samples cap"] += 1
            return False
        return True

    @staticmethod
    def run_builders(record, applicable) -> tuple[list[SampleDraft], list[tuple[str, str]]]:
        drafts: list[SampleDraft] = []
        rejections: list[tuple[str, str]] = []
        for builder, ctx in applicable:
            for item in builder.fn(record, ctx):
                if isinstance(item, BuildRejection):
                    rejections.append((builder.name, item.reason))
                else:
                    drafts.append(item)
        return drafts, rejections

    def write_train(self, record, drafts: list[SampleDraft]) -> None:
        if self.spec.max_samples is not None:
            drafts = drafts[: self.spec.max_samples - sum(self.tally.samples.values())]
        rows = []
        for draft in drafts:
            image_ids = self.resolve_media(record, draft, "images")
            if image_ids is None:
                return  # the whole record is quarantined: its samples share the unreadable image
            rows.append(draft.row("train", image_ids))
        for draft, row in zip(drafts, rows):
            outcome = self.outputs.write_sample(row)
            if outcome == "written":
                self.tally.samples[draft.task] += 1
            elif outcome == "duplicate":
                self.tally.duplicates[draft.task] += 1  # review outcomes are counted by the review gate
        self.tally.compiled += 1

    def resolve_media(self, record, draft: SampleDraft, stage: str) -> list[str] | None:
        try:
            return self.outputs.images.image_ids(draft.media, self.max_side)
        except Exception as error:  # noqa: BLE001 -- any unreadable media becomes a quarantine entry
            if not _is_media_error(error):
                raise
            self.quarantine(record, stage, str(error))
            return None


def _is_media_error(error: Exception) -> bool:
    try:
        from skyeye_data.video import VideoError
    except ImportError:  # pragma: no cover -- video support absent
        VideoError = ImageProblem  # noqa: N806
    return isinstance(error, (ImageProblem, VideoError, OSError))


def train_records(records_path: Path, eval_images: EvalImages | None) -> Iterator[Any]:
    """The train records of a converted source that the leak guard lets through (for mix builders)."""
    for record in read_records(records_path):
        if record.split == "train" and not (eval_images and eval_images.conflict(record)):
            yield record


def run_mix(name: str, recipe: Recipe, pools: TemplatePools, outputs: BuildOutputs, raw_dirs: dict[str, Path | None],
            records_paths: dict[str, Path], eval_images: EvalImages | None, progress: Progress) -> MixTally:  # fmt: skip
    mix = recipe.mixes[name]
    tally = MixTally(name, mix.builder)
    absent = [s for s in mix.sources if raw_dirs.get(s) is None]
    if absent:
        tally.status, tally.reason = "skipped", f"sources absent: {', '.join(absent)}"
        return tally
    context = MixContext(
        name, mix.builder, list(mix.sources), mix.options, pools, recipe.box_style,
        {s: raw_dirs[s] for s in mix.sources}, lambda source: train_records(records_paths[source], eval_images),
    )  # fmt: skip
    progress.stage(f"mix {name}", None)
    for item in MIX_BUILDERS[mix.builder](context):
        if mix.max_samples is not None and sum(tally.samples.values()) >= mix.max_samples:
            break
        if isinstance(item, BuildRejection):
            record = item.record
            entry = quarantine_entry(record, "mix", item.reason, mix.builder, item.level) if record is not None else {
                "source": name, "stage": "mix", "builder": mix.builder, "level": item.level, "reason": item.reason}  # fmt: skip
            outputs.quarantine.write(entry | {"mix": name})
            if item.level == "part":
                tally.parts_quarantined += 1
            else:
                tally.quarantined += 1
            continue
        try:
            image_ids = outputs.images.image_ids(item.media, recipe.max_side)
        except Exception as error:  # noqa: BLE001
            if not _is_media_error(error):
                raise
            outputs.quarantine.write({"source": name, "stage": "mix", "builder": mix.builder, "level": "record",
                                      "reason": str(error), "mix": name, "provenance": item.provenance})  # fmt: skip
            tally.quarantined += 1
            continue
        outcome = outputs.write_sample(item.row("train", image_ids))
        if outcome == "written":
            tally.samples[item.task] += 1
        elif outcome == "duplicate":
            tally.duplicates[item.task] += 1  # review outcomes are counted by the review gate
        progress.advance()
    return tally


# ---------------------------------------------------------------------------------------------
# the build
# ---------------------------------------------------------------------------------------------


def build(
    recipe: Recipe,
    raw_root: Path,
    out: Path,
    *,
    require_all: bool = False,
    cache_dir: Path | None = None,
    progress: Progress | None = None,
    include_unreviewed: bool = False,
    strict: bool = False,
) -> BuildResult:
    """Run every stage (module docstring); on any failure no output appears under a final name."""
    from skyeye_data.compile.mixes import load_mix_builders

    load_mix_builders()
    progress = progress or NullProgress()
    raw_root, out = Path(raw_root), Path(out)
    raw_dirs, warnings = resolve_sources(recipe, raw_root, require_all)
    out.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(out, out / "records", *(out / d for d in OUTPUT_DIRS))
    pools = TemplatePools(recipe.templates, recipe.seed)
    review_gate, review_warnings = open_review_gate(recipe, out, include_unreviewed)
    warnings += review_warnings
    outputs = BuildOutputs(out, recipe, cache_dir or out / "cache" / "frames", review_gate, strict)
    tallies = {name: SourceTally(name, recipe.raw_folder(name)) for name in recipe.sources}
    try:
        records_paths = {}
        for name, raw_dir in raw_dirs.items():
            if raw_dir is None:
                tallies[name].status = "missing"
                continue
            summary = convert_stage(name, raw_dir, out / "records", outputs, progress)
            records_paths[name] = summary.records_path
            _tally_conversion(tallies[name], summary)
        eval_images = collect_eval_images(records_paths, progress) if recipe.leak_guard else None
        for name, path in records_paths.items():
            SourceCompiler(name, raw_dirs[name], recipe, pools, outputs, eval_images, tallies[name]).run(path, progress)
        mixes = {
            name: run_mix(name, recipe, pools, outputs, raw_dirs, records_paths, eval_images, progress) for name in recipe.mixes
        }
        files = outputs.commit()
    except BaseException:
        outputs.abort()
        raise
    warnings += [f"mix {m.name} skipped: {m.reason}" for m in mixes.values() if m.status == "skipped"]
    review = review_gate.counts.to_json() if review_gate is not None else None
    manifest = finish(recipe, out, files, tallies, mixes, len(outputs.images.stored), outputs.quarantine.lines, warnings, review)
    return BuildResult(out, manifest, tallies, mixes, warnings)


def open_review_gate(recipe: Recipe, out: Path, include_unreviewed: bool):
    """The review gate of a recipe with a `review:` section (None without one), and its warnings.

    The ledger is read once, here; a ledger that does not exist yet simply holds no verdicts.
    """
    if recipe.review is None:
        return None, []
    from skyeye_data.review import ReviewGate, ReviewLedger

    warnings, verdicts_from = [], None
    ledger_path = recipe.review.ledger
    if ledger_path is not None and Path(ledger_path).resolve().is_relative_to(out.resolve()):
        warnings.append(f"review ledger {ledger_path} lies inside the build output; keep it outside so it survives rebuilds")
    if ledger_path is not None and Path(ledger_path).exists():
        verdicts_from = ReviewLedger(ledger_path)
    elif ledger_path is not None:
        warnings.append(f"review ledger {ledger_path} does not exist yet: no sample has a verdict")
    try:
        gate = ReviewGate(recipe.review, verdicts_from, include_unreviewed=include_unreviewed)
    finally:
        if verdicts_from is not None:
            verdicts_from.close()
    return gate, warnings


def _tally_conversion(tally: SourceTally, summary: ConvertSummary) -> None:
    tally.records_in = summary.records_in
    tally.converter_quarantined = summary.quarantined
    tally.converter_parts_quarantined = summary.parts_quarantined
    tally.quarantine_reasons.update(summary.reasons)


def sample_counts(tallies: dict[str, SourceTally], mixes: dict[str, MixTally]) -> dict[str, dict[str, dict[str, int]]]:
    """samples per source (or mix) / task / split; every sample is a train sample (eval goes to eval/)."""
    counts = {name: {task: {"train": n} for task, n in sorted(t.samples.items())} for name, t in tallies.items()}
    counts |= {name: {task: {"train": n} for task, n in sorted(m.samples.items())} for name, m in mixes.items()}
    return counts


def finish(recipe: Recipe, out: Path, files: list[Path], tallies: dict[str, SourceTally], mixes: dict[str, MixTally],
           images: int, quarantined: int, warnings: list[str], review: dict[str, Any] | None = None) -> dict[str, Any]:  # fmt: skip
    """Write README.md, then manifest.json (last: its presence marks a complete build)."""
    from skyeye_data.compile.card import dataset_card

    manifest: dict[str, Any] = {
        "format": MANIFEST_FORMAT,
        "recipe": {"name": recipe.name, "fingerprint": recipe.fingerprint(), "body": recipe.model_dump(mode="json")},
        "sources": {name: t.to_json() for name, t in tallies.items()},
        "mixes": {name: m.to_json() for name, m in mixes.items()},
        "counts": {
            "samples": sample_counts(tallies, mixes),
            "samples_total": sum(sum(t.samples.values()) for t in tallies.values()) + sum(sum(m.samples.values()) for m in mixes.values()),
            "eval": {name: dict(sorted(t.eval_items.items())) for name, t in tallies.items() if t.eval_items},
            "images": images,
            "quarantine_lines": quarantined,
            "duplicates_dropped": sum(sum(t.duplicates.values()) for t in [*tallies.values(), *mixes.values()]),
            "leak_guard_excluded": {name: sum(t.leak_guard.values()) for name, t in tallies.items() if t.leak_guard},
        },
        "balanced": all(t.balanced for t in tallies.values()),
        "warnings": warnings,
    }
    if review is not None:  # review outcomes per source (skyeye_data.review.apply.ReviewCounts)
        manifest["review"] = review
    write_text_atomic(out / "README.md", dataset_card(manifest, sorted(p.relative_to(out).as_posix() for p in files)))
    listed = sorted(files + [out / "README.md"])
    manifest["files"] = {p.relative_to(out).as_posix(): {"sha256": file_sha256(p), "bytes": p.stat().st_size} for p in listed}
    write_json_atomic(out / "manifest.json", manifest)
    return manifest


def read_manifest(out: Path) -> dict[str, Any]:
    path = Path(out) / "manifest.json"
    if not path.is_file():
        raise BuildError(f"{out} holds no manifest.json: not a (complete) build output")
    return json.loads(path.read_text(encoding="utf-8"))
