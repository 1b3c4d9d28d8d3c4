"""The ``skyeye`` command line.

Commands live next to the code they drive: each module in ``COMMAND_MODULES`` defines
``register(app)`` and adds the commands listed beside it. Heavy imports (torch) happen inside
command bodies only, so ``skyeye --help`` and the data commands stay fast and torch-free; and
``skyeye CMD`` (:func:`main`) registers only the module of CMD, since importing every command module
(the review package, preview's PIL, the doctor's converters) is a second of startup that a
no-change ``skyeye build`` would otherwise spend before it verifies anything. Importing ``app``
from here registers them all (the tests' CliRunner, ``skyeye --help``, any other first argument).
"""

from __future__ import annotations

import importlib
import logging
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from skyeye_data.console import console, fail, progress_bar, stdout

_app = typer.Typer(
    name="skyeye",
    help="Build SkyEye-968k-style remote-sensing instruction data, review it, and fine-tune on it.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

# Modules that add commands with register(app), and the commands (and command groups) each adds;
# keep one line each (tests/test_compile_cache_quick.py checks the names against what register adds).
COMMAND_MODULES: dict[str, tuple[str, ...]] = {
    "skyeye_model.cli": ("train", "predict", "chat"),
    "skyeye_data.review.cli": ("review",),
    "skyeye_data.compile.cli": ("build", "stats", "recipe"),
    "skyeye_data.export.cli": ("export",),
    "skyeye_data.evaluation.cli": ("eval",),
    "skyeye_data.preview": ("preview",),
    "skyeye_data.doctor_cli": ("doctor",),
}


@_app.command("sources")
def sources_command() -> None:
    """List the source converters: name, task, and the raw layout each expects under RAW/<name>/."""
    from skyeye_data.sources import all_sources

    table = Table(title="SkyEye source converters")
    table.add_column("name", style="bold")
    table.add_column("task")
    table.add_column("dataset")
    table.add_column("expected layout under RAW/<name>/")
    for name, source in all_sources().items():
        table.add_row(name, source.task, source.title, source.layout)
    stdout.print(table)


@_app.command("convert")
def convert_command(
    source: Annotated[str, typer.Argument(help="converter name (see `skyeye sources`)")],
    raw_dir: Annotated[Path, typer.Argument(help="the dataset's folder, as published", exists=True, file_okay=False)],
    out: Annotated[Path, typer.Option("--out", "-o", help="output folder for <source>.parquet and quarantine")],
    strict: Annotated[bool, typer.Option(help="stop at the first bad record instead of quarantining it")] = False,
) -> None:
    """Convert one raw dataset folder into normalized records (Parquet) and a quarantine file."""
    from skyeye_data.convert import StrictModeError, convert_source
    from skyeye_data.sources import LayoutError

    try:
        with progress_bar() as progress:
            task = progress.add_task(f"convert {source}", total=None)
            summary = convert_source(source, raw_dir, out, strict=strict, on_item=lambda n=1: progress.advance(task, n))
    except KeyError as error:
        raise fail(str(error.args[0]))
    except (LayoutError, StrictModeError) as error:
        raise fail(str(error))
    print_convert_summaries([summary])


def print_convert_summaries(summaries) -> None:
    table = Table(title="conversion summary")
    for column in ("source", "records in", "written", "quarantined", "train", "val", "test", "top quarantine reason"):
        table.add_column(column, justify="left" if column in ("source", "top quarantine reason") else "right")
    for s in summaries:
        top = s.reasons.most_common(1)
        table.add_row(
            s.source,
            str(s.records_in),
            str(s.written),
            str(s.quarantined),
            *(str(s.by_split.get(split, 0)) for split in ("train", "val", "test")),
            f"{top[0][0]} ({top[0][1]})" if top else "",
        )
    stdout.print(table)


@_app.command("convert-all")
def convert_all_command(
    raw_root: Annotated[Path, typer.Argument(help="raw root: one folder per source, named after its converter")],
    out: Annotated[Path, typer.Option("--out", "-o", help="output folder")],
    strict: Annotated[bool, typer.Option(help="stop at the first bad record")] = False,
) -> None:
    """Convert every source whose folder exists under RAW_ROOT (missing ones are skipped with a warning)."""
    from skyeye_data.convert import StrictModeError, convert_source
    from skyeye_data.sources import LayoutError, all_sources

    summaries = []
    with progress_bar() as progress:
        for name in all_sources():
            raw_dir = raw_root / name
            if not raw_dir.is_dir():
                console.print(f"[yellow]warning:[/] {raw_dir} is absent; {name} skipped")
                continue
            task = progress.add_task(f"convert {name}", total=None)
            try:
                summaries.append(convert_source(name, raw_dir, out, strict=strict, on_item=lambda n=1: progress.advance(task, n)))
            except (LayoutError, StrictModeError) as error:
                raise fail(str(error))
    print_convert_summaries(summaries)


@_app.command("synth")
def synth_command(
    raw_root: Annotated[Path, typer.Argument(help="folder to write the synthetic raw root into")],
    scale: Annotated[str, typer.Option(help="mini: a few records per source; paper: the real counts, tiny images")] = "mini",
    source: Annotated[Optional[list[str]], typer.Option("--source", "-s", help="only these sources (repeatable)")] = None,
    seed: Annotated[int, typer.Option(help="random seed (same seed, same bytes)")] = 0,
) -> None:
    """Write a synthetic raw corpus in each source's exact published layout."""
    from skyeye_data.synth import synthesize_raw_root

    if scale not in ("mini", "paper"):
        raise fail(f"--scale must be mini or paper, got {scale!r}")
    table = Table(title=f"synthetic raw root ({scale})")
    table.add_column("source")
    table.add_column("raw records", justify="right")
    with progress_bar() as progress:
        names = source or None
        from skyeye_data.sources import all_sources

        total = len(names) if names else len(all_sources())
        task = progress.add_task("synthesize", total=total)
        counts = synthesize_raw_root(
            raw_root, scale, names, seed, on_source=lambda name, n: progress.advance(task)  # noqa: ARG005
        )
    for name, n in counts.items():
        table.add_row(name, str(n))
    stdout.print(table)


_registered: set[str] = set()


# The commands this module defines itself: ``skyeye convert`` needs no other command module (their
# imports were ~0.5 s of RSVQA-HR's conversion in a sampling profile of `skyeye convert`).
OWN_COMMANDS = ("sources", "convert", "convert-all", "synth")


def _register_command_modules(command: str | None = None) -> typer.Typer:
    """The app with the module of ``command`` registered (none for :data:`OWN_COMMANDS`), or every
    module when ``command`` is none of theirs (``--help``, a mistyped name: the full list is shown)."""
    if command in OWN_COMMANDS:
        return _app
    wanted = [m for m, names in COMMAND_MODULES.items() if command in names] or list(COMMAND_MODULES)
    for module_name in wanted:
        if module_name not in _registered:
            importlib.import_module(module_name).register(_app)
            _registered.add(module_name)
    return _app


def __getattr__(name: str):
    if name == "app":  # the whole command line
        return _register_command_modules()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    _register_command_modules(sys.argv[1] if len(sys.argv) > 1 else None)(prog_name="skyeye")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
