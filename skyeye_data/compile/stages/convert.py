"""Stage 1, convert: each recipe source's raw folder → its records table.

:func:`convert_one` is what a worker runs (in this process, or one of a pool with ``--jobs``): the
converter writes the records table, and hands back its rejections (marked stage ``convert``) and
the val/test images it saw (for the leak guard) -- nothing is read back for them. The build then
replays each source's rejections into ``OUT/quarantine.jsonl`` in the recipe's order (where
``--strict`` stops at the first bad input), whichever worker finished first. A missing raw folder
is a warning (or an error with ``require_all``); a present one that the doctor's checks
(:func:`skyeye_data.doctor.check_source`: layout, files readable) find unbuildable stops the build
before anything is converted (:func:`check_sources`).
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Sequence

from skyeye_data import rawfs
from skyeye_data.compile.cache import RecordsCache
from skyeye_data.compile.errors import BuildError
from skyeye_data.compile.fingerprint import FolderScan
from skyeye_data.compile.progress import Progress
from skyeye_data.compile.recipe import Recipe
from skyeye_data.compile.stages.leak_guard import EvalImages
from skyeye_data.compile.tally import SourceTally
from skyeye_data.convert import ConvertSummary, convert_records
from skyeye_data.doctor import check_source
from skyeye_data.limits import InputLimits
from skyeye_data.sources import get_source
from skyeye_data.sources.base import LayoutError


@dataclass
class ConvertedSource:
    """One converted source: picklable, so a worker process can return it."""

    name: str
    raw_dir: Path
    records_path: Path
    summary: ConvertSummary
    rejections: list[dict] = field(default_factory=list)  # quarantine entries, in the converter's order
    eval_images: EvalImages = field(default_factory=EvalImages)  # this source's val/test images
    from_cache: bool = False


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
        # warnings reach the manifest and the card, which ship with the dataset: no local path in them
        warnings.append(f"{name}: raw folder RAW/{recipe.raw_folder(name)} is absent; source skipped")
        resolved[name] = None
    return resolved, warnings


def check_sources(recipe: Recipe, raw_root: Path, raw_dirs: dict[str, Path | None]) -> list[str]:
    """The doctor's checks on every present source, before anything is converted: a BuildError with
    the doctor's message (folder, what was expected, what was found, the fix) when a layout cannot be
    built; the warnings of a source whose layout is right but whose counting read failed (the
    converter then quarantines what it cannot read, file by file)."""
    warnings: list[str] = []
    with rawfs.scope(raw_root, recipe.input or InputLimits()):
        for name, raw_dir in raw_dirs.items():
            if raw_dir is None:
                continue
            check = check_source(name, raw_dir, recipe.sources[name].converter_options())
            if check.layout is None:
                raise BuildError(f"{name}: the raw folder {raw_dir} cannot be built (`skyeye doctor {raw_root}` "
                                 f"checks every source without converting): {check.problem}")  # fmt: skip
            if check.problem:
                warnings.append(check.problem.replace(str(raw_root), "RAW"))
    return warnings


def convert_one(name: str, raw_dir: Path, records_path: Path, raw_root: Path, limits: InputLimits | None,
                on_item: Callable[[], None] | None = None, options: dict | None = None) -> ConvertedSource:  # fmt: skip
    """Convert one source into ``records_path`` (runs in a worker: no shared state); ``options``: the
    recipe's converter options (DOTA's ``version``)."""
    converted = ConvertedSource(name, raw_dir, records_path, ConvertSummary(name))
    try:
        with rawfs.scope(raw_root, limits):
            converted.summary = convert_records(
                name, raw_dir, records_path,
                on_rejected=lambda entry: converted.rejections.append(entry | {"stage": "convert"}),
                on_item=on_item, on_record=converted.eval_images.add, options=options,
            )  # fmt: skip
    except LayoutError as error:
        raise BuildError(str(error)) from error
    return converted


def replay(converted: ConvertedSource, quarantine: Callable[[dict], None], tally: SourceTally) -> None:
    """A converted source's rejections into the build's quarantine, its counts into its tally."""
    for entry in converted.rejections:
        quarantine(entry)
    summary = converted.summary
    tally.records_in = summary.records_in
    tally.converter_quarantined = summary.quarantined
    tally.converter_parts_quarantined = summary.parts_quarantined
    tally.quarantine_reasons.update(summary.reasons)


def convert_sources(recipe: Recipe, raw_dirs: dict[str, Path | None], raw_root: Path, staging: Path, cache: RecordsCache | None,
                    keys: dict[str, str | None], jobs: int, progress: Progress,
                    costs: Mapping[str, int]) -> list[ConvertedSource]:  # fmt: skip
    """Every present source, in the recipe's order: from the records cache when its key matches,
    else converted into ``staging`` -- in this process, or ``jobs`` worker processes at once, the
    costliest first by ``costs`` (:func:`convert_cost` of each present source)."""
    found: dict[str, ConvertedSource] = {}
    todo: list[tuple[str, Path]] = []
    for name, raw_dir in raw_dirs.items():
        hit = cache.load(name, keys[name]) if cache is not None and raw_dir is not None else None
        if hit is not None:
            records_path, summary, rejections, eval_images = hit
            found[name] = ConvertedSource(name, raw_dir, records_path, summary, rejections, EvalImages(eval_images), from_cache=True)
        elif raw_dir is not None:
            todo.append((name, raw_dir))
    staging.mkdir(parents=True, exist_ok=True)
    if jobs <= 1 or len(todo) <= 1:
        for name, raw_dir in todo:
            progress.stage(f"convert {name}", None)
            found[name] = convert_one(name, raw_dir, staging / f"{name}.parquet", raw_root, recipe.input, progress.advance,
                                      recipe.sources[name].converter_options())  # fmt: skip
    elif todo:
        progress.stage(f"convert {len(todo)} sources ({jobs} processes)", len(todo))
        # spawned, not forked: the parent may hold threads (the progress bar) that a fork would copy mid-lock
        with ProcessPoolExecutor(max_workers=min(jobs, len(todo)), mp_context=multiprocessing.get_context("spawn")) as pool:
            # the costliest conversions first (convert_cost), so the longest one does not start last and
            # leave the other workers idle at the end; results are taken by name below
            futures = {name: pool.submit(convert_one, name, raw_dir, staging / f"{name}.parquet", raw_root, recipe.input,
                                         None, recipe.sources[name].converter_options())
                       for name, raw_dir in sorted(todo, key=lambda item: -costs[item[0]])}  # fmt: skip
            for future in as_completed(futures.values()):
                future.result()  # the first failure stops the build
                progress.advance()
            found.update({name: future.result() for name, future in futures.items()})
    return [found[name] for name in raw_dirs if name in found]


BYTES_PER_FILE = 15_000  # top-level bytes weighing as much as one file (RSVQA-HR: ~34 ms per MB of JSON, ~0.5 ms per image)


def convert_cost(scans: Mapping[Path, FolderScan], raw_dir: Path, also_reads: Sequence[Path] = ()) -> int:
    """A guess of how long a source takes to convert, for the pool's order only (never the output),
    from the walk the fingerprints made (:func:`~skyeye_data.compile.fingerprint.raw_scans`): the
    files under the raw folder and under the other folders it reads (a conversion hashes every image
    it lists: ~0.3-0.7 ms each on the paper corpus), plus the sizes of the folder's top-level files
    (the annotation files sit at the top: RSVQA-HR's ~0.5 GB of JSON) in units of
    :data:`BYTES_PER_FILE`. The top-level sizes alone put RSIVQA (a few split files of its own, its
    parents' images) last, though it is the longest conversion after RSVQA-HR: it started when the
    other worker had nothing left. A folder the scans lack (absent) counts nothing."""
    files = sum(scans[folder].files for folder in dict.fromkeys([raw_dir, *also_reads]) if folder in scans)
    top = scans[raw_dir].top_bytes if raw_dir in scans else 0
    return files + top // BYTES_PER_FILE
