"""Stage 4, mixes: each multi-source builder over the train records of its sources that the leak
guard admits (streamed from their records tables by the mix's unit: stages/compile_segments.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator

from skyeye_data.compile.builders import MIX_BUILDERS, BuildRejection, MixContext
from skyeye_data.compile.images import ImageTableWriter, media_ids
from skyeye_data.compile.progress import Progress
from skyeye_data.compile.recipe import Recipe
from skyeye_data.compile.stages.leak_guard import LeakGuard
from skyeye_data.compile.stages.sink import SampleSink
from skyeye_data.compile.tally import MixTally
from skyeye_data.compile.templates import TemplatePools
from skyeye_data.quarantine import record_entry

RecordStream = Callable[[str], Iterator]  # source name -> its records, in the source's order


def admitted(records: Iterator, guard: LeakGuard) -> Iterator:
    """The train records the leak guard lets into training."""
    return (record for record in records if guard.admits(record))


def mix_records(mix, guard: LeakGuard, records: RecordStream) -> RecordStream:
    """What a mix reads of each source: the train records the guard admits; for a joined source (not
    the first) with ``join_split: any`` under ``within_source``, every record, whatever its split (the
    dialog's image and split are the first source's; the other scopes keep joined val/test records out)."""
    any_split = mix.options.join_split == "any" and guard.scope == "within_source"
    return lambda source: records(source) if any_split and source != mix.sources[0] else admitted(records(source), guard)


def run_mix(name: str, recipe: Recipe, pools: TemplatePools, raw_dirs: dict[str, Path | None], records: RecordStream,
            guard: LeakGuard, images: ImageTableWriter, sink: SampleSink, quarantine: Callable[[dict], None],
            progress: Progress) -> MixTally:  # fmt: skip
    mix = recipe.mixes[name]
    tally = MixTally(name=name, builder=mix.builder)
    absent = [s for s in mix.sources if raw_dirs.get(s) is None]
    if absent:
        tally.status, tally.reason = "skipped", f"sources absent: {', '.join(absent)}"
        return tally
    context = MixContext(
        name, mix.builder, list(mix.sources), mix.options, pools, recipe.box_style,
        {s: raw_dirs[s] for s in mix.sources}, mix_records(mix, guard, records),
    )  # fmt: skip
    progress.stage(f"mix {name}", None)
    for item in MIX_BUILDERS[mix.builder](context):
        if mix.max_samples is not None and tally.samples_total >= mix.max_samples:
            break
        if isinstance(item, BuildRejection):
            record = item.record
            entry = record_entry(record, "mix", item.reason, mix.builder, item.level) if record is not None else {
                "source": name, "stage": "mix", "builder": mix.builder, "level": item.level, "reason": item.reason}  # fmt: skip
            quarantine(entry | {"mix": name})
            if item.level == "part":
                tally.parts_quarantined += 1
            else:
                tally.quarantined += 1
            continue
        image_ids = media_ids(images, item.media, recipe.max_side)
        if isinstance(image_ids, str):
            quarantine({"source": name, "stage": "mix", "builder": mix.builder, "level": "record",
                        "reason": image_ids, "mix": name, "provenance": item.provenance})  # fmt: skip
            tally.quarantined += 1
            continue
        tally.count_outcome(item.task, sink.put(item.row("train", image_ids), item.instruction_keys))
        progress.advance()
    return tally
