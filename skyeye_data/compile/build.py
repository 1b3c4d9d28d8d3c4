"""``skyeye build``: recipe + raw root → samples, images, eval shards, quarantine, manifest, card.

:func:`build` composes the stages of :mod:`skyeye_data.compile.stages` in the order data flows
through them (docs/ARCHITECTURE.md, "The build pipeline"):

    convert → leak guard → compile sources, mixes (one segment each, cached) → merge: (each sample)
    dedupe → review gate → write

Counting, per source: ``records in = compiled + eval + held out + not selected + quarantined``
(:mod:`skyeye_data.compile.tally`). On any failure no output appears under a final name.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from skyeye_data import rawfs
from skyeye_data.compile import quick
from skyeye_data.compile.cache import RecordsCache, build_key, records_key
from skyeye_data.compile.errors import BuildError
from skyeye_data.compile.evalsets import eval_enabled
from skyeye_data.compile.fingerprint import converter_version, raw_scans, toolkit_version
from skyeye_data.compile.manifest import compose_manifest, read_manifest, write_card_and_manifest
from skyeye_data.compile.mixes import load_mix_builders
from skyeye_data.compile.progress import NullProgress, Progress
from skyeye_data.compile.recipe import Recipe
from skyeye_data.compile.result import BuildResult, verified_result
from skyeye_data.compile.shards import remove_stale_temporaries
from skyeye_data.compile.segments import Segment, SegmentStore
from skyeye_data.compile.stages.compile_segments import SOURCE, CompileSettings, compile_unit, plan_units, run_units
from skyeye_data.compile.stages.convert import ConvertedSource, check_sources, convert_cost, convert_sources, replay, resolve_sources
from skyeye_data.compile.stages.leak_guard import EvalImages, LeakGuard
from skyeye_data.compile.stages.merge import merge_mix, merge_source
from skyeye_data.compile.stages.review_gate import open_review_gate
from skyeye_data.compile.stages.sink import SampleSink
from skyeye_data.compile.stages.write import OUTPUT_DIRS, BuildOutputs
from skyeye_data.compile.tally import MixTally, SourceTally
from skyeye_data.io import link_or_copy, output_lock, temporary_name
from skyeye_data.limits import InputLimits
from skyeye_data.quarantine import StrictModeError
from skyeye_data.review.ledger import ledger_state
from skyeye_data.sources import get_source

__all__ = ["BuildError", "BuildResult", "build"]


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
    use_cache: bool = True,
    jobs: int = 1,
    ledger: Path | None = None,
    stamp: str | None = None,
) -> BuildResult:
    """Run every stage (module docstring); on any failure no output appears under a final name.

    ``use_cache``: reuse converted records whose raw files and converter did not change, compiled
    segments whose inputs did not change (:mod:`skyeye_data.compile.segments`), and only verify a
    build whose inputs all match the manifest's (:mod:`skyeye_data.compile.cache`);
    ``jobs``: convert, then compile, that many sources and mixes at once in worker processes (the
    output does not depend on it);
    ``ledger``: the review ledger (``--ledger``), overriding the recipe's ``review.ledger``;
    ``stamp``: the command's key (:func:`skyeye_data.compile.quick.command_key`), noted with what this
    build looked at, so that the same command finds "nothing changed" without parsing the recipe.
    """
    load_mix_builders()
    progress = progress or NullProgress()
    raw_root, out = Path(raw_root), Path(out)
    raw_dirs, warnings = resolve_sources(recipe, raw_root, require_all)
    with output_lock(out), rawfs.scope(raw_root, recipe.input or InputLimits()):
        remove_stale_temporaries(out, out / "records", out / "cache" / "compiled", *(out / d for d in OUTPUT_DIRS))
        cache = RecordsCache(out / "cache") if use_cache else None
        version = converter_version()
        reads = {name: tuple(raw_root / other for other in get_source(name).reads_sources) for name in raw_dirs}
        scans = raw_scans([d for d in raw_dirs.values() if d is not None] + [f for r in reads.values() for f in r])
        fingerprints = {folder: scan.digest for folder, scan in scans.items()}
        keys = {name: records_key(name, raw_dir, version, recipe.sources[name].converter_options(), reads[name], fingerprints)
                if raw_dir is not None else None for name, raw_dir in raw_dirs.items()}  # fmt: skip
        ledger_file = ledger_path(recipe, ledger)
        options = build_options(include_unreviewed, strict, ledger_file)  # the ledger's digest: read once per build
        key = build_key(recipe.fingerprint(), keys, options)
        tested = [raw_root / recipe.raw_folder(name) for name in raw_dirs] + [f for r in reads.values() for f in r]
        inputs = quick.looked_at(tested, fingerprints, ledger_file, options["ledger"])
        stats = cache.built_from(out, key) if cache is not None else None
        if stats is not None and (found := verified_build(out, stats)) is not None:
            if stamp is not None:
                quick.note(cache.directory, stamp, key, inputs)
            return found
        # the doctor's checks: stop before converting anything (after the verify-only exit: the raw
        # files are those of the build found, so their checks are the ones its manifest recorded)
        warnings += check_sources(recipe, raw_root, raw_dirs)
        staging = temporary_name(out / "records")  # .records.<pid>.tmp: nothing under OUT/records changes until the commit
        try:
            costs = {name: convert_cost(scans, raw_dir, reads[name]) for name, raw_dir in raw_dirs.items() if raw_dir is not None}
            result = compile_all(recipe, raw_root, out, raw_dirs, warnings, cache, keys, staging, cache_dir, progress,
                                 include_unreviewed, strict, jobs, ledger, options, costs)  # fmt: skip
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        write_card_and_manifest(out, result.manifest, result.files)
        if cache is not None:
            cache.note_build(out, key)
            if stamp is not None:
                quick.note(cache.directory, stamp, key, inputs)
    return result


def compile_all(recipe: Recipe, raw_root: Path, out: Path, raw_dirs: dict[str, Path | None], warnings: list[str],
                cache: RecordsCache | None, keys: dict[str, str | None], staging: Path, cache_dir: Path | None,
                progress: Progress, include_unreviewed: bool, strict: bool, jobs: int, ledger: Path | None,
                options: dict[str, Any], costs: dict[str, int]) -> BuildResult:  # fmt: skip
    """convert → leak guard → compile sources and mixes (segments) → merge (dedupe → review gate → write), then commit."""
    review_gate, review_warnings = open_review_gate(recipe, out, include_unreviewed, ledger)
    frame_cache = cache_dir or out / "cache" / "frames"
    outputs = BuildOutputs(out, recipe, frame_cache, strict)
    sink = SampleSink(outputs, recipe.dedupe, review_gate)
    tallies = {name: SourceTally(source=name, raw_folder=recipe.raw_folder(name)) for name in recipe.sources}
    for name, raw_dir in raw_dirs.items():
        tallies[name].status = "built" if raw_dir is not None else "missing"
    mixes: dict[str, MixTally] = {}
    from_cache: list[str] = []
    try:
        converted = convert_sources(recipe, raw_dirs, raw_root, staging, cache, keys, jobs, progress, costs)
        for source in converted:  # the recipe's order, whichever worker finished first
            replay(source, outputs.quarantine.write, tallies[source.name])
        settings = CompileSettings(recipe, raw_dirs, {s.name: s.records_path for s in converted}, leak_guard(recipe, converted),
                                   review_gate, frame_cache, raw_root)  # fmt: skip
        store = SegmentStore(out / "cache" / "compiled", persistent=cache is not None)
        # --strict changes no sample: strict and lenient builds share their compiled segments
        gate_state = {"policy": recipe.review.model_dump(mode="json") if recipe.review else None, **options, "strict": False}
        sizes = {s.name: s.summary.written for s in converted}
        units = plan_units(recipe, settings, keys, sizes, store, staging / "compiled", toolkit_version(), gate_state)
        for unit, segment in run_units(units, settings, store, jobs, progress):
            if segment is None:  # inline: compiled now, after every segment before it is merged
                compile_unit(settings, unit, sink.seen, progress)
                segment = Segment.open(unit.scratch)
            if segment.from_cache:
                from_cache.append(unit.name)
            if unit.kind == SOURCE:
                merge_source(segment, outputs, sink, tallies[unit.name])
            else:
                mixes[unit.name] = merge_mix(unit.name, segment, outputs, sink)
        files = outputs.commit()
    except StrictModeError as error:
        outputs.abort()
        raise BuildError(f"--strict: {error}") from error
    except BaseException:
        outputs.abort()
        raise
    keep_records(out, converted, cache, keys)
    warnings = warnings + review_warnings + [f"mix {m.name} skipped: {m.reason}" for m in mixes.values() if m.status == "skipped"]
    review = review_gate.counts.to_json() if review_gate is not None else None
    manifest = compose_manifest(recipe, tallies, mixes, len(outputs.images.stored), outputs.quarantine.lines, warnings, review)
    return BuildResult(out, manifest, tallies, mixes, warnings, files, records_from_cache=[s.name for s in converted if s.from_cache],
                       samples_from_cache=from_cache)  # fmt: skip


def keep_records(out: Path, converted: list[ConvertedSource], cache: RecordsCache | None, keys: dict[str, str | None]) -> None:
    """After the commit: the records tables into ``OUT/records/`` (multi-source tools read them) and,
    for the sources just converted, into the records cache."""
    (out / "records").mkdir(exist_ok=True)
    for source in converted:
        final = out / "records" / f"{source.name}.parquet"
        if source.from_cache:
            link_or_copy(source.records_path, final)
            continue
        os.replace(source.records_path, final)
        if cache is not None:
            cache.store(source.name, keys[source.name], final, source.summary, source.rejections, source.eval_images.where)


def ledger_path(recipe: Recipe, ledger: Path | None) -> Path | None:
    """The review ledger a build reads: ``--ledger``, else the recipe's ``review.ledger`` (it may not exist)."""
    if ledger is None and recipe.review is not None and recipe.review.ledger:
        return Path(recipe.review.ledger)
    return ledger


def build_options(include_unreviewed: bool, strict: bool, ledger: Path | None) -> dict[str, Any]:
    """What besides the recipe and the records decides a build's output: the review ledger's state."""
    state = None
    if ledger is not None and ledger.exists():
        state = [str(ledger.resolve()), ledger_state(ledger)]
    return {"include_unreviewed": include_unreviewed, "strict": strict, "ledger": state}


def verified_build(out: Path, stats: dict[str, list[int]]) -> BuildResult | None:
    """The build already in ``out`` (made from the same inputs) when its files are intact."""
    try:
        manifest = read_manifest(out)
    except (BuildError, ValueError):
        return None
    if not quick.outputs_unchanged(out, manifest, stats):
        return None
    return verified_result(out, manifest)


def leak_guard(recipe: Recipe, converted: list[ConvertedSource]) -> LeakGuard:
    """The recipe's scope over the val/test images every converted source noted, merged in the recipe's order."""
    eval_images = EvalImages()
    for source in converted:
        eval_images.update(source.eval_images)
    evaluated = [s.name for s in converted if eval_enabled(s.name, recipe.sources[s.name].eval)]
    return LeakGuard(recipe.leak_guard, eval_images, evaluated)
