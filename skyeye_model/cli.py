"""``skyeye train run|merge|make-tiny``, ``skyeye predict``, ``skyeye chat``.

Registered by ``skyeye_data.cli`` through ``register(app)``. torch and transformers are imported
inside the command bodies, so ``skyeye --help`` stays fast and torch-free.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

train_app = typer.Typer(
    help="Fine-tune SkyEyeGPT (frozen vision tower + projector + LoRA LLM) on `skyeye build` output.",
    no_args_is_help=True,
)


def _cli():
    # Imported late: skyeye_data.cli imports this module while it is itself being imported.
    from skyeye_data import cli

    return cli


def _quiet_transformers() -> None:
    import warnings

    warnings.filterwarnings("ignore", category=FutureWarning)  # library deprecation notes, not user errors
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def peak_memory_note() -> str:
    import torch

    if not torch.cuda.is_available():
        return ""
    return f", peak GPU memory {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB"


def parse_assignments(assignments: list[str]) -> dict:
    """``["optim.lr=2e-5", "data.tasks=[vqa]"]`` → ``{"optim.lr": 2e-05, "data.tasks": ["vqa"]}`` (values read as YAML)."""
    import yaml

    parsed = {}
    for assignment in assignments:
        key, separator, value = assignment.partition("=")
        if not separator or not key.strip():
            raise ValueError(f"--set expects KEY=VALUE, got {assignment!r}")
        parsed[key.strip()] = yaml.safe_load(value)
    return parsed


@train_app.command("run")
def train_run(
    config: Annotated[Path, typer.Argument(help="training config (recipes/train/*.yaml)", exists=True, dir_okay=False)],
    resume: Annotated[bool, typer.Option("--resume", help="continue from the latest checkpoint in output_dir, exactly")] = False,
    data_root: Annotated[Optional[Path], typer.Option(help="override data.root (a `skyeye build` output)")] = None,
    output_dir: Annotated[Optional[Path], typer.Option(help="override output_dir")] = None,
    max_steps: Annotated[Optional[int], typer.Option(help="override max_steps (optimizer steps)")] = None,
    init_adapter: Annotated[Optional[Path], typer.Option(help="override init_adapter (stage 2: a stage-1 checkpoint)")] = None,
    set_values: Annotated[
        Optional[list[str]], typer.Option("--set", help="override any key: --set model.llm_path=/w/llama --set optim.lr=2e-5 (repeatable)")
    ] = None,
) -> None:
    """Train (one process, or one per GPU under `torchrun` / `accelerate launch`); checkpoints go to output_dir."""
    from skyeye_model.config import load_config

    cli = _cli()
    overrides = {"data.root": data_root and str(data_root), "output_dir": output_dir and str(output_dir), "max_steps": max_steps}
    overrides["init_adapter"] = init_adapter and str(init_adapter)
    try:
        overrides |= parse_assignments(set_values or [])
        settings = load_config(config, overrides)
    except ValueError as error:  # pydantic's ValidationError is a ValueError
        raise cli.fail(f"{config}: {error}")
    _quiet_transformers()
    from skyeye_model.model import require_folders
    from skyeye_model.train import train

    try:
        require_folders(settings.model)
    except FileNotFoundError as error:
        raise cli.fail(str(error))
    is_main = int(os.environ.get("RANK", "0")) == 0
    with cli.progress_bar() as progress:
        task = progress.add_task("train", total=None, visible=is_main)

        def on_step(step: int, total: int, loss: float, lr: float) -> None:
            progress.update(task, completed=step, total=total, description=f"train loss {loss:.4f} lr {lr:.2e}")

        try:
            result = train(settings, resume=resume, on_step=on_step)
        except (FileNotFoundError, ValueError, KeyError) as error:
            raise cli.fail(str(error))
        finally:
            import torch.distributed

            if torch.distributed.is_initialized():
                torch.distributed.destroy_process_group()
    if is_main:
        cli.stdout.print(f"trained {result.steps} steps; last checkpoint: {result.checkpoint}")
        cli.stdout.print(f"{result.tokens_per_second:,.0f} tokens/s on this rank{peak_memory_note()}")


@train_app.command("merge")
def train_merge(
    checkpoint: Annotated[Path, typer.Argument(help="a checkpoint folder (output_dir/checkpoint-NNNNNNN)", exists=True, file_okay=False)],
    out: Annotated[Path, typer.Option("--out", "-o", help="folder for the merged model")],
    overwrite: Annotated[bool, typer.Option(help="replace an existing --out folder")] = False,
) -> None:
    """Fold the LoRA weights into the LLM and write a standalone model folder (LLM, vision tower, projector)."""
    cli = _cli()
    _quiet_transformers()
    from skyeye_model.merge import merge_checkpoint

    try:
        merged = merge_checkpoint(checkpoint, out, overwrite=overwrite)
    except (FileNotFoundError, FileExistsError, ValueError) as error:
        raise cli.fail(str(error))
    cli.stdout.print(f"merged model written to {merged}")


@train_app.command("make-tiny")
def train_make_tiny(
    directory: Annotated[Path, typer.Argument(help="folder to write llm/ and vision/ into")],
    vision: Annotated[str, typer.Option(help="tower type: clip, siglip or eva (EVA-CLIP through timm)")] = "clip",
    image_size: Annotated[int, typer.Option(help="image side of the tiny tower (a multiple of 14·2)")] = 56,
    seed: Annotated[int, typer.Option(help="random seed of the weights")] = 0,
) -> None:
    """Write a tiny random model (2-layer Llama + tokenizer trained on the fly, 2-layer CLIP/SigLIP/EVA-CLIP) for demos and tests."""
    cli = _cli()
    if vision not in ("clip", "siglip", "eva"):
        raise cli.fail(f"--vision must be clip, siglip or eva, got {vision!r}")
    if image_size % 28:
        raise cli.fail("--image-size must be a multiple of 28 (patch 14, groups of 4 patches)")
    _quiet_transformers()
    from skyeye_model.tiny import make_tiny_model

    make_tiny_model(directory, vision=vision, image_size=image_size, seed=seed)
    cli.stdout.print(f"tiny model written to {directory}/llm and {directory}/vision")


def predict_command(
    adapter: Annotated[Path, typer.Argument(help="a checkpoint or merged-model folder", exists=True, file_okay=False)],
    eval_shards: Annotated[list[Path], typer.Argument(help="eval shard files or folders (OUT/eval)", exists=True)],
    out: Annotated[Path, typer.Option("--out", "-o", help="predictions Parquet file")],
    images: Annotated[Optional[Path], typer.Option(help="images tables folder (default: OUT/images beside OUT/eval)")] = None,
    batch_size: Annotated[int, typer.Option(help="prompts generated together")] = 8,
    max_new_tokens: Annotated[int, typer.Option(help="answer length limit")] = 64,
    device: Annotated[Optional[str], typer.Option(help="cuda, cuda:1, cpu (default: cuda if available)")] = None,
) -> None:
    """Answer every eval sample (batched greedy decoding); boxes in the answers are parsed back to pixels."""
    cli = _cli()
    _quiet_transformers()
    from skyeye_model.predict import count_rows, eval_files, predict

    try:
        total = count_rows(eval_files(eval_shards))
        with cli.progress_bar() as progress:
            task = progress.add_task("predict", total=total)
            written = predict(adapter, eval_shards, out, images, batch_size, max_new_tokens, device, lambda n: progress.advance(task, n))
    except (FileNotFoundError, ValueError, KeyError) as error:
        raise cli.fail(str(error))
    cli.stdout.print(f"{written} predictions written to {out}")


def chat_command(
    adapter: Annotated[Path, typer.Argument(help="a checkpoint or merged-model folder", exists=True, file_okay=False)],
    image: Annotated[Path, typer.Argument(help="an image file", exists=True, dir_okay=False)],
    max_new_tokens: Annotated[int, typer.Option(help="answer length limit")] = 128,
    device: Annotated[Optional[str], typer.Option(help="cuda, cpu (default: cuda if available)")] = None,
) -> None:
    r"""Talk about one image: type a question per line (start with a task identifier, e.g. \[vqa] or \[refer]); /exit or Ctrl-D ends."""
    cli = _cli()
    _quiet_transformers()
    from skyeye_model.predict import chat

    if sys.stdin.isatty():
        cli.console.print("[dim]ask about the image; /exit or Ctrl-D to leave[/]")
    try:
        chat(adapter, image, sys.stdin, lambda answer: cli.stdout.print(answer, markup=False, highlight=False), max_new_tokens, device)
    except (FileNotFoundError, ValueError, OSError) as error:
        raise cli.fail(str(error))


def register(app: typer.Typer) -> None:
    app.add_typer(train_app, name="train")
    app.command("predict")(predict_command)
    app.command("chat")(chat_command)
