"""Commands of the compiler: ``build``, ``recipe schema|check``, ``stats`` (exports: ``skyeye_data.export.cli``)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from skyeye_data.compile import quick
from skyeye_data.compile.errors import BuildError
from skyeye_data.compile.result import expected_counts
from skyeye_data.console import console, fail, progress_bar, stdout
from skyeye_data.io import OutputLocked

# The recipe model, the build and the stats are imported by the commands that run them, not here:
# they import every converter and builder (pyarrow, pydantic, PIL, PyAV), and a no-change
# `skyeye build` decides from the stamp alone (skyeye_data.compile.quick) in a fraction of that time.


def register(app: typer.Typer) -> None:
    app.command("build")(build_command)
    app.command("stats")(stats_command)
    recipe_app = typer.Typer(help="Inspect and check build recipes.", no_args_is_help=True)
    recipe_app.command("schema")(recipe_schema_command)
    recipe_app.command("check")(recipe_check_command)
    app.add_typer(recipe_app, name="recipe")


class RichProgress:
    """Adapts the build's progress protocol to one rich progress bar per stage."""

    def __init__(self, progress):
        self.progress = progress
        self.task = None

    def stage(self, description: str, total: int | None) -> None:
        if self.task is not None:
            self.progress.update(self.task, total=self.progress.tasks[-1].completed)
        self.task = self.progress.add_task(description, total=total)

    def advance(self, n: int = 1) -> None:
        if self.task is not None:
            self.progress.advance(self.task, n)


def _load_recipe_or_fail(recipe: Path):
    from skyeye_data.compile.recipe import RecipeError, load_recipe

    try:
        return load_recipe(recipe)
    except RecipeError as error:
        raise fail(str(error))


def build_command(
    recipe: Annotated[Path, typer.Argument(help="the recipe YAML (see `skyeye recipe schema`)")],
    raw_root: Annotated[Path, typer.Option("--raw-root", help="raw root: one folder per source, named after its converter")],
    out: Annotated[Path, typer.Option("--out", "-o", help="build output folder")],
    require_all: Annotated[bool, typer.Option("--require-all", help="fail when a recipe source's raw folder is absent")] = False,
    cache_dir: Annotated[Optional[Path], typer.Option(help="video frame cache (default OUT/cache/frames)")] = None,
    include_unreviewed: Annotated[
        bool, typer.Option("--include-unreviewed", help="keep samples the recipe's review policy routes but nobody reviewed yet")
    ] = False,
    strict: Annotated[
        bool, typer.Option("--strict", help="stop at the first bad record instead of quarantining it (no output is written)")
    ] = False,
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="build from scratch: no converted records or compiled samples from OUT/cache, no verify-only rebuild")
    ] = False,
    jobs: Annotated[
        Optional[int], typer.Option("--jobs", "-j", min=1, help="sources converted, then sources and mixes compiled, at once in worker processes (default: the core count); the output does not depend on it")
    ] = None,
    ledger: Annotated[
        Optional[Path],
        typer.Option("--ledger", help="review ledger whose verdicts apply (overrides review.ledger; without a review: section the default policy applies)"),
    ] = None,
) -> None:
    """Compile a recipe into instruction samples, images, eval shards, quarantine, manifest and card."""
    # what else decides the build (--jobs and --cache-dir do not): the stamp's command key
    options = {"require_all": require_all, "include_unreviewed": include_unreviewed, "strict": strict, "ledger": ledger}
    stamp = None if no_cache or not raw_root.is_dir() else quick.command_key(recipe, raw_root, options)
    try:
        result = quick.unchanged_build(out, stamp) if stamp is not None else None
        from_stamp = result is not None
        if result is None:
            result = run_build(recipe, raw_root, out, stamp, require_all=require_all, cache_dir=cache_dir,
                               include_unreviewed=include_unreviewed, strict=strict, ledger=ledger,
                               use_cache=not no_cache, jobs=jobs or os.cpu_count() or 1)  # fmt: skip
    except (BuildError, OutputLocked) as error:
        raise fail(str(error))
    if result.verified_only:
        stdout.print(f"nothing changed since the build in {out} (recipe, raw files, code, review ledger): its files were verified, not rebuilt"
                     + (" (decided from its stamp, OUT/cache/stamp.json)" if from_stamp else ""))  # fmt: skip
    elif result.records_from_cache or result.samples_from_cache:
        stdout.print(f"from the cache: converted records of {len(result.records_from_cache)} sources, "
                     f"compiled samples of {len(result.samples_from_cache)} sources and mixes")  # fmt: skip
    for warning in result.warnings:
        console.print(f"[yellow]warning:[/] {warning}")
    print_build_summary(result)
    print_expected_mismatches(result.manifest)
    if not result.manifest["balanced"]:
        raise fail("record counts do not add up for some source (see the table); this is a bug", code=1)


def run_build(recipe: Path, raw_root: Path, out: Path, stamp: str | None, **options):
    """Parse the recipe and run the build (the stages imported only now: module comment above)."""
    from skyeye_data.compile.build import build

    parsed = _load_recipe_or_fail(recipe)
    if not raw_root.is_dir():
        raise fail(f"--raw-root {raw_root} is not a folder")
    with progress_bar() as progress:
        return build(parsed, raw_root, out, progress=RichProgress(progress), stamp=stamp, **options)


def print_build_summary(result) -> None:

    table = Table(title=f"build {result.manifest['recipe']['name']} → {result.out}")
    columns = ("source", "records in", "compiled", "eval", "held out", "not selected", "quarantined", "samples", "balanced")
    for column in columns:
        table.add_column(column, justify="left" if column == "source" else "right")
    for name, tally in result.sources.items():
        if tally.status == "missing":
            table.add_row(name, "[yellow]absent[/]", *[""] * 7)
            continue
        table.add_row(
            name, str(tally.records_in), str(tally.compiled), str(tally.eval_records), str(sum(tally.held_out.values())),
            str(sum(tally.not_selected.values())), str(tally.quarantined), str(sum(tally.samples.values())),
            "[green]yes[/]" if tally.balanced else "[red]NO[/]",
        )  # fmt: skip
    for name, mix in result.mixes.items():
        table.add_row(f"{name} (mix)", "", "", "", "", "", str(mix.quarantined), str(sum(mix.samples.values())), mix.status)
    stdout.print(table)
    counts = result.manifest["counts"]
    stdout.print(
        f"{counts['samples_total']} samples, {sum(sum(s.values()) for s in counts['eval'].values())} eval items, "
        f"{counts['images']} images, {counts['quarantine_lines']} quarantine lines → {result.out / 'quarantine.jsonl'}"
    )
    guarded = {name: t.leak_guard for name, t in result.sources.items() if t.leak_guard}
    if guarded:
        stdout.print("leak guard: train records kept out because their image is in a val/test split (counted as quarantined):")
        for name, clashes in guarded.items():
            stdout.print(f"  {name}: {sum(clashes.values())} (" + ", ".join(f"{n} in {where}" for where, n in sorted(clashes.items())) + ")")
    print_eval_overlap(result.manifest)
    if counts.get("duplicates_dropped"):
        stdout.print(f"dedupe: {counts['duplicates_dropped']} repeated samples left out (per source in manifest.json)")
    built = [t for t in result.sources.values() if t.status == "built"]
    balanced = sum(t.balanced for t in built)
    stdout.print(f"records in = compiled + eval + held out + not selected + quarantined: balanced for {balanced} of {len(built)} sources")


def print_eval_overlap(manifest: dict) -> None:
    """Train images that an eval split also holds, let into training by the recipe's leak-guard scope."""
    overlap = manifest["counts"].get("eval_overlap") or {}
    scope = manifest.get("leak_guard")
    if not overlap:
        stdout.print(f"leak guard ({scope}): no training image is also in an eval split")
        return
    stdout.print(f"leak guard ({scope}): training images also in an eval split (let through by the scope), per source pair:")
    for name, splits in overlap.items():
        stdout.print(f"  {name}: " + ", ".join(f"{n} in {where}" for where, n in sorted(splits.items())))


def print_expected_mismatches(manifest: dict) -> None:
    """Warn (do not fail: `skyeye stats` does) when a source/task count differs from `expected`."""
    samples = manifest["counts"]["samples"]
    for (source, task), want in sorted(expected_counts(manifest).items()):
        got = samples.get(source, {}).get(task, {}).get("train", 0)
        if got != want:
            console.print(f"[yellow]warning:[/] {source}/{task}: {got} samples, the recipe expects {want}")


def recipe_schema_command() -> None:
    """Print the recipe JSON Schema (for editors and validators)."""
    from skyeye_data.compile.recipe import recipe_json_schema

    print(json.dumps(recipe_json_schema(), indent=2))


def recipe_check_command(recipe: Annotated[Path, typer.Argument(help="the recipe YAML")]) -> None:
    """Validate a recipe: every problem with its line, or its fingerprint when it is valid."""

    parsed = _load_recipe_or_fail(recipe)
    stdout.print(f"[green]ok[/] {recipe}: recipe {parsed.name!r}, {len(parsed.sources)} sources, fingerprint {parsed.fingerprint()}")


def stats_command(
    out: Annotated[Path, typer.Argument(help="a build output folder")],
    as_json: Annotated[bool, typer.Option("--json", help="print the statistics as JSON on stdout")] = False,
    plot: Annotated[Optional[Path], typer.Option("--plot", help="also draw the distributions into this PNG")] = None,
) -> None:
    """Samples per source/task/split against the recipe's expected counts; text and box size distributions."""
    from skyeye_data.compile.stats import compute_stats, plot_stats

    try:
        stats = compute_stats(out)
    except BuildError as error:
        raise fail(str(error))
    if plot is not None:
        plot_stats(stats, plot)
    if as_json:
        print(json.dumps(stats, indent=2, sort_keys=True))
    else:
        print_stats(stats, plot)
    if stats["mismatches"]:
        raise typer.Exit(1)


def print_stats(stats: dict, plot: Path | None) -> None:

    table = Table(title=f"samples of build {stats['recipe']} ({stats['fingerprint'][:12]})")
    for column in ("source", "task", "splits", "samples", "expected", ""):
        table.add_column(column, justify="right" if column in ("samples", "expected") else "left")
    for row in stats["rows"]:
        mark = "" if row["matches"] is None else ("[green]ok[/]" if row["matches"] else "[red]differs[/]")
        splits = ", ".join(f"{k} {v}" for k, v in row["splits"].items())
        table.add_row(row["source"], row["task"], splits, str(row["samples"]), "" if row["expected"] is None else str(row["expected"]), mark)
    stdout.print(table)
    dist = Table(title="distributions")
    for column in ("measure", "n", "min", "p25", "median", "p75", "p90", "max", "mean"):
        dist.add_column(column, justify="left" if column == "measure" else "right")
    for name, summary in stats["distributions"].items():
        dist.add_row(name, *("" if summary[k] is None else str(summary[k]) for k in ("n", "min", "p25", "median", "p75", "p90", "max", "mean")))
    stdout.print(dist)
    stdout.print(review_table(stats["review"]))
    stdout.print(f"{stats['samples_total']} samples, {stats['images']} images; counts balanced: {stats['balanced']}")
    if plot is not None:
        stdout.print(f"plot written to {plot}")
    if stats["mismatches"]:
        console.print(f"[red]{len(stats['mismatches'])} source/task counts differ from the recipe's expected counts[/]")


def review_table(review: dict) -> Table:
    """Review coverage per source: the status of the training samples, and what the review gate held back."""
    outcomes = (review.get("outcomes") or {}).get("by_source", {})
    statuses = sorted({status for counter in review["samples_by_status"].values() for status in counter})
    title = "review coverage" + ("" if review.get("outcomes") else " (the recipe has no review section)")
    table = Table(title=title)
    table.add_column("source")
    for column in (*statuses, "rejected", "waiting for review"):
        table.add_column(column, justify="right")
    for source in sorted(set(review["samples_by_status"]) | set(outcomes)):
        in_samples = review["samples_by_status"].get(source, {})
        held = outcomes.get(source, {})
        table.add_row(
            source,
            *(str(in_samples.get(status, 0)) for status in statuses),
            str(held.get("rejected", 0)),
            str(held.get("unreviewed_left_out", 0)),
        )
    return table

