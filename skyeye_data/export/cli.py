"""``skyeye export hf|llamafactory|llava|minigptv2``: a build in the layouts other trainers read."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Callable

import typer

from skyeye_data.compile.errors import BuildError
from skyeye_data.console import fail, progress_bar, stdout

BUILD = Annotated[Path, typer.Argument(help="a build output folder (skyeye build --out)")]
DEST = Annotated[Path, typer.Option("--to", "--out", "-o", help="export folder (created; files replaced)")]


def register(app: typer.Typer) -> None:
    export_app = typer.Typer(help="Export a build to another trainer's layout (each checked with that trainer's loader).", no_args_is_help=True)
    export_app.command("hf")(export_hf_command)
    export_app.command("llamafactory")(export_llamafactory_command)
    export_app.command("llava")(export_llava_command)
    export_app.command("minigptv2")(export_minigptv2_command)
    app.add_typer(export_app, name="export")


def _run(label: str, export: Callable[..., object], build_dir: Path, out: Path, **options) -> None:
    try:
        with progress_bar() as progress:
            task = progress.add_task(f"export {label}", total=None)
            summary = export(build_dir, out, on_item=lambda: progress.advance(task), **options)
    except BuildError as error:
        raise fail(str(error))
    stdout.print(summary.describe())


def export_hf_command(
    build_dir: BUILD,
    out: DEST,
    shard_mb: Annotated[int, typer.Option(help="close a shard at this many MB of distinct image bytes")] = 100,
    shard_rows: Annotated[int, typer.Option(help="close a shard at this many rows")] = 50_000,
) -> None:
    """Hugging Face datasets / TRL: data/train-*.parquet (messages with image parts, images as List(Image())) + card."""
    from skyeye_data.export.hf import export_hf

    _run("hf", export_hf, build_dir, out, shard_mb=shard_mb, shard_rows=shard_rows)


def export_llamafactory_command(build_dir: BUILD, out: DEST) -> None:
    """LLaMA-Factory: skyeye_sharegpt.json (images always a list), dataset_info.json, skyeye_sft.yaml, images/."""
    from skyeye_data.export.llamafactory import export_llamafactory

    _run("llamafactory", export_llamafactory, build_dir, out)


def export_llava_command(
    build_dir: BUILD,
    out: DEST,
    no_video: Annotated[bool, typer.Option("--no-video", help="leave out the video samples (skyeye_llava_video.json)")] = False,
) -> None:
    """LLaVA / GeoChat: skyeye_llava.json (one image path a row), skyeye_llava_video.json (frame lists), images/."""
    from skyeye_data.export.llava import export_llava

    _run("llava", export_llava, build_dir, out, include_video=not no_video)


def export_minigptv2_command(build_dir: BUILD, out: DEST) -> None:
    """MiniGPT-v2: one annotation JSON per task, images/train/, dataset classes + train config (see the module docs)."""
    from skyeye_data.export.minigptv2 import export_minigptv2

    _run("minigptv2", export_minigptv2, build_dir, out)
