"""Evaluation sets: the val/test records of the benchmark sources, with their references.

Only train records become training samples. The val/test records of the benchmark sources (the
ones SkyEyeGPT reports scores on) are written as ``OUT/eval/<source>-<split>-NNNNN.parquet``, one
item per record, ready for ``skyeye predict`` / ``skyeye eval`` (docs/ARCHITECTURE.md, "Eval
shards", :data:`skyeye_data.tables.EVAL_SCHEMA`). An item has the sample columns -- the user turn is the pool's *first* template, fixed so
scores are comparable across builds, and the assistant turn is the first reference -- plus:

* ``references``: every reference caption, or the answer, or the expression's box tokens;
* ``ref_boxes``: pixel xyxy boxes (grounding only); ``question_type``, ``subset``;
* ``width``/``height``: the original image's size, to scale predicted boxes back to pixels.

The val/test records of other sources are held out (counted in the manifest, not written).
"""

from __future__ import annotations

from typing import Any

from skyeye_data.compile.builders import BuilderContext, SampleDraft, record_media, record_provenance, sample_id
from skyeye_data.sources import benchmark_sources

# the sources SkyEyeGPT reports scores on: each converter says so itself (``benchmark_splits``)
BENCHMARK_SOURCES: frozenset[str] = benchmark_sources()

EVAL_TASK = {"caption": "caption", "vqa": "vqa", "grounding": "refer"}


def eval_enabled(source: str, flag: bool | None) -> bool:
    return flag if flag is not None else source in BENCHMARK_SOURCES


def eval_item(record, ctx: BuilderContext) -> tuple[SampleDraft, dict[str, Any]] | None:
    """The eval item of a val/test record (None for record kinds without a benchmark task)."""
    task = EVAL_TASK.get(record.task)
    if task is None:
        return None
    ref_boxes: list[list[float]] = []
    if record.task == "caption":
        references = [c.strip() for c in record.captions]
        pool = "video_caption" if record.media == "video" else "caption"
        instruction = ctx.pools.first(task, pool)
    elif record.task == "vqa":
        references = [record.answer.strip()]
        instruction = ctx.pools.first(task, "vqa", question=record.question.strip())
    else:
        references = [ctx.boxes(record, record.boxes)]
        ref_boxes = [list(map(float, box)) for box in record.boxes]
        instruction = ctx.pools.first(task, "refer", expression=record.expression.strip())
    sid = sample_id(ctx.source, [record.record_id], "eval", 0)
    draft = SampleDraft(
        id=sid,
        source=ctx.source,
        task=task,
        builder="eval",
        media=record_media(record, ctx.raw_dir, ctx.options.frames),
        conversation=[{"role": "user", "content": instruction}, {"role": "assistant", "content": references[0]}],
        provenance=record_provenance(record) | {"builder": "eval", "index": 0},
    )
    extras = {
        "references": references,
        "ref_boxes": ref_boxes,
        "question_type": getattr(record, "question_type", None),
        "subset": record.subset,
        "width": record.width,
        "height": record.height,
    }
    return draft, extras
