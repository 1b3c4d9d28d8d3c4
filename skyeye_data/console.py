"""The command line's output: one stderr console for messages and progress, one stdout console for results.

Bottom layer, so that every command module (``skyeye_data.compile.cli``, ``skyeye_data.review.cli``,
``skyeye_model.cli``, ...) imports these from here and never the ``skyeye`` app (``skyeye_data.cli``),
which imports the command modules to register them.
"""

from __future__ import annotations

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

console = Console(stderr=True)
stdout = Console()


def progress_bar(transient: bool = False) -> Progress:
    """The one progress bar style of the CLI (to stderr, so stdout stays parseable)."""
    return Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=transient,
    )


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print an error and return the exit to raise: ``raise fail("...")``."""
    console.print(f"[bold red]error:[/] {message}")
    return typer.Exit(code)
