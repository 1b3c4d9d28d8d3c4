"""Stages 3 and 4 as units of work: compile one source, or run one mix, into a segment.

Every source with records and every mix is one :class:`Unit`. A unit reads nothing but its
sources' records tables, their raw images and the (read-only) :class:`CompileSettings` -- the
recipe, the leak guard, the review gate -- and writes one segment
(:mod:`skyeye_data.compile.segments`), so units run in any order, in worker processes
(``--jobs``), or not at all when the compiled-samples cache holds their segment.
:func:`run_units` hands the segments back in the recipe's order (sources, then mixes), and the
build merges them in that order (:mod:`skyeye_data.compile.stages.merge`): the output never
depends on how many processes compiled, nor on which segments came from the cache.

One case runs in the build's order in its own process (``inline``): a capped source or mix
(``max_samples``) in a recipe with ``dedupe`` -- the cap counts written samples, and whether a
sample repeats depends on every sample written before it. Such a segment is not cached.
"""

from __future__ import annotations

import copy
import hashlib
import json
import multiprocessing
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pyarrow.parquet as pq

from skyeye_data import rawfs
from skyeye_data.compile.mixes import load_mix_builders
from skyeye_data.compile.progress import NullProgress, Progress
from skyeye_data.compile.recipe import Recipe
from skyeye_data.compile.segments import Segment, SegmentStore, SegmentWriter, segment_key
from skyeye_data.compile.stages.compile_sources import SourcePlan, SourceResults, compile_batch
from skyeye_data.compile.stages.dedupe import SampleDigests
from skyeye_data.compile.stages.leak_guard import LeakGuard
from skyeye_data.compile.stages.mix import run_mix
from skyeye_data.compile.stages.sink import SegmentSink
from skyeye_data.compile.tally import SourceTally
from skyeye_data.compile.templates import TemplatePools
from skyeye_data.convert import BATCH_ROWS, gc_paused
from skyeye_data.limits import InputLimits
from skyeye_data.review import ReviewGate
from skyeye_data.review.apply import ReviewCounts
from skyeye_data.schema import verified_records

SOURCE, MIX = "source", "mix"


@dataclass
class CompileSettings:
    """What every unit of one build reads (picklable: sent once to each worker process)."""

    recipe: Recipe
    raw_dirs: dict[str, Path | None]
    records_paths: dict[str, Path]  # source -> its records table (staged or cached)
    guard: LeakGuard
    review_gate: ReviewGate | None
    frame_cache: Path
    raw_root: Path  # every raw read of a unit is guarded against it, under the recipe's input limits


@dataclass(frozen=True)
class Unit:
    kind: str  # SOURCE | MIX
    name: str
    key: str
    scratch: Path  # where its segment is written
    size: int  # records it reads (the larger units start first)
    inline: bool = False  # compiled in the build's order, in the build's process (module docstring)


def guard_digest(guard: LeakGuard) -> str:
    """The leak guard as a compile sees it: the scope, the evaluated sources and every val/test image note."""
    # keys sorted: the notes of a cached source come back in another key order, with the same meaning
    body = json.dumps([guard.scope, sorted(guard.evaluated), guard.eval_images.where], separators=(",", ":"), sort_keys=True)
    return hashlib.sha256(body.encode()).hexdigest()


def plan_units(recipe: Recipe, settings: CompileSettings, records_keys: dict[str, str | None], sizes: dict[str, int],
               store: SegmentStore, scratch_root: Path, code: str, gate_state: dict[str, Any]) -> list[Unit]:  # fmt: skip
    """One unit per converted source and per mix, in the recipe's order, each with its segment key."""
    # every recipe setting a compile may read (seed, box style, sizes, dedupe, ...), but not the other
    # sources' and mixes' sections, nor the pools (compared on lookup), nor the review policy (in gate_state)
    settings_only = recipe.model_dump(mode="json", exclude={"sources", "mixes", "templates", "name", "description", "review"})
    common = {"code": code, "recipe": settings_only, "leak_guard": guard_digest(settings.guard), "review": gate_state}
    units = []
    for kind, specs in ((SOURCE, recipe.sources), (MIX, recipe.mixes)):
        for name, spec in specs.items():
            reads = [name] if kind == SOURCE else list(spec.sources)
            if kind == SOURCE and name not in settings.records_paths:
                continue  # absent raw folder: no records, nothing to compile
            inline = recipe.dedupe and spec.max_samples is not None
            key = segment_key(kind, name, common | {"spec": spec.model_dump(mode="json"),
                                                    "records": {s: records_keys.get(s) for s in reads}})  # fmt: skip
            scratch = scratch_root / f"{kind}-{name}" if inline or not store.persistent else store.scratch(kind, name)
            units.append(Unit(kind, name, key, scratch, sum(sizes.get(s, 0) for s in reads), inline))
    return units


def record_batches(path: Path) -> Iterator[list]:
    """The records of a records table, a batch at a time.

    ``path`` is always one of ``CompileSettings.records_paths``: a table this build's converter wrote
    from validated records, or the records cache's table checked against its noted sha256; so the
    records are not validated a second time (:func:`skyeye_data.schema.verified_records`)."""
    for batch in pq.ParquetFile(path).iter_batches(batch_size=BATCH_ROWS):
        yield verified_records(batch)


def record_stream(path: Path) -> Iterator:
    for records in record_batches(path):
        yield from records


def review_counts_json(gate: ReviewGate | None) -> dict[str, Any] | None:
    if gate is None:
        return None
    counts = gate.counts
    return {"by_source": {s: dict(c) for s, c in counts.by_source.items()}, "reasons": dict(counts.reasons),
            "content_changed": dict(counts.content_changed)}  # fmt: skip


def compile_unit(settings: CompileSettings, unit: Unit, digests: SampleDigests | None = None,
                 progress: Progress | None = None) -> None:  # fmt: skip
    """Write the unit's segment into ``unit.scratch`` (``digests``: the build's own, for an inline unit)."""
    recipe, progress = settings.recipe, progress or NullProgress()
    pools = TemplatePools(recipe.templates, recipe.seed)  # its own: which pools this unit reads is noted
    gate = None
    if settings.review_gate is not None:  # decisions as the build's gate makes them, counted apart
        gate = copy.copy(settings.review_gate)
        gate.counts = ReviewCounts()
    writer = SegmentWriter(unit.scratch, max_side=recipe.max_side, frame_cache=settings.frame_cache,
                           shard_size=recipe.shard_size, row_group_size=recipe.row_group_size, train_size=recipe.train_size)  # fmt: skip
    sink = SegmentSink(writer, gate, recipe.dedupe, digests)
    # the cyclic collector off while the unit compiles, run once at its end (the converters' pause):
    # its full collections walked every object alive -- the imported modules, the settings with every
    # val/test image note -- again and again, ~13% of compiling NWPU-Captions and RSVQA-LR; a unit
    # leaves ~30 objects in cycles however many records it compiles (measured on the paper corpus)
    try:
        with rawfs.scope(settings.raw_root, recipe.input or InputLimits()), gc_paused(pause=True):
            summary = compile_into(settings, unit, writer, sink, pools, progress)
        writer.finish(unit.key, pools.used(), summary, review_counts_json(gate))
    except BaseException:
        writer.abort()
        raise


def compile_into(settings: CompileSettings, unit: Unit, writer: SegmentWriter, sink: SegmentSink, pools: TemplatePools,
                 progress: Progress) -> dict[str, Any]:  # fmt: skip
    """The unit's compile stage into ``writer``; its tally (as JSON)."""
    recipe = settings.recipe
    if unit.kind == MIX:
        paths = settings.records_paths
        return run_mix(unit.name, recipe, pools, settings.raw_dirs, lambda source: record_stream(paths[source]),
                       settings.guard, writer.images, sink, writer.quarantine.append, progress).to_json()  # fmt: skip
    tally = SourceTally(source=unit.name)
    plan = SourcePlan.from_recipe(recipe, unit.name, settings.raw_dirs[unit.name], pools)
    results = SourceResults(plan, tally, writer.images, sink, writer.quarantine.append, writer.write_eval)
    progress.stage(f"compile {unit.name}", unit.size)
    for records in record_batches(settings.records_paths[unit.name]):
        for result in compile_batch(plan, settings.guard, records):
            results.apply(result)
        progress.advance(len(records))
    return tally.to_json()


_SETTINGS: CompileSettings | None = None  # a worker's settings, sent once by the pool's initializer


def _start_worker(settings: CompileSettings) -> None:
    global _SETTINGS
    load_mix_builders()  # a spawned process starts with the registry of record builders only
    _SETTINGS = settings


def _compile_in_worker(unit: Unit) -> None:
    assert _SETTINGS is not None, "worker started without settings"
    compile_unit(_SETTINGS, unit)


def run_units(units: list[Unit], settings: CompileSettings, store: SegmentStore, jobs: int,
              progress: Progress) -> Iterator[tuple[Unit, Segment | None]]:  # fmt: skip
    """(unit, segment) in the units' order: from the cache, from a worker, or compiled here;
    ``None`` for an inline unit (the caller compiles it at its turn, with the build's digests)."""
    cached = {u: store.load(u.kind, u.name, u.key, settings_pools(settings)) for u in units if not u.inline}
    todo = [u for u in units if not u.inline and cached[u] is None]
    futures: dict[Unit, Future] = {}
    pool = None
    if jobs > 1 and len(todo) > 1:
        progress.stage(f"compile {len(todo)} sources and mixes ({min(jobs, len(todo))} processes)", len(todo))
        # spawned, not forked: the parent may hold threads (the progress bar) that a fork would copy mid-lock
        pool = ProcessPoolExecutor(max_workers=min(jobs, len(todo)), mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_start_worker, initargs=(settings,))  # fmt: skip
        futures = {u: pool.submit(_compile_in_worker, u) for u in sorted(todo, key=lambda u: -u.size)}
    try:
        for unit in units:
            if unit.inline:
                yield unit, None
                continue
            if cached[unit] is not None:
                yield unit, cached[unit]
                continue
            if unit in futures:
                futures[unit].result()  # the first failure stops the build
                progress.advance()
            else:
                compile_unit(settings, unit, progress=progress)
            yield unit, store.commit(unit.kind, unit.name, unit.scratch) if store.persistent else Segment.open(unit.scratch)
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)


def settings_pools(settings: CompileSettings) -> dict[str, tuple[str, ...]]:
    """The build's pools by name (what a cached segment's noted pools are compared with)."""
    return dict(TemplatePools(settings.recipe.templates, settings.recipe.seed).pools)
