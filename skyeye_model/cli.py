"""``skyeye train run|merge|import|export|make-tiny``, ``skyeye predict``, ``skyeye chat``.

Registered by ``skyeye_data.cli`` through ``register(app)``. torch and transformers are imported
inside the command bodies, so ``skyeye --help`` stays fast and torch-free.
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Optional

import typer

from skyeye_data import console

train_app = typer.Typer(
    help="Fine-tune SkyEyeGPT (frozen vision tower + projector + LoRA LLM) on `skyeye build` output.",
    no_args_is_help=True,
)


def _cli():
    # the CLI's consoles and fail() (skyeye_data.console: bottom layer, never the app that imports this module)
    return console


@contextmanager
def _fail_on(*errors: type[BaseException]):
    """The errors a command expects (bad paths, bad checkpoints) end it with their message and exit 2, not a traceback."""
    try:
        yield
    except errors as error:
        raise console.fail(str(error))


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
    stop_after: Annotated[
        Optional[int], typer.Option(help="end after this step with a checkpoint, schedule unchanged (a planned interruption; --resume continues)")
    ] = None,
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
            def on_report(lines: list[str]) -> None:
                for line in lines:
                    cli.stdout.print(line, markup=False, highlight=False)

            result = train(settings, resume=resume, on_step=on_step, stop_after=stop_after, on_report=on_report)
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

    with _fail_on(FileNotFoundError, FileExistsError, ValueError):
        merged = merge_checkpoint(checkpoint, out, overwrite=overwrite)
    cli.stdout.print(f"merged model written to {merged}")


@train_app.command("import")
def train_import(
    source_format: Annotated[str, typer.Argument(metavar="FORMAT", help="minigptv2 or skyeyegpt (SkyEyeGPT's release is a MiniGPT-v2 checkpoint)")],
    checkpoint: Annotated[Path, typer.Option(help="the released .pth (torch.load(...)['model']: llama_proj + LoRA)", exists=True, dir_okay=False)],
    vision: Annotated[Path, typer.Option(help="EVA ViT-g weights: eva_vit_g.pth (MiniGPT-4's eva_vit.py key names)", exists=True, dir_okay=False)],
    llm: Annotated[Path, typer.Option(help="the Llama-2-7b-chat transformers folder the checkpoint was trained on", exists=True, file_okay=False)],
    out: Annotated[Path, typer.Option("--out", "-o", help="checkpoint folder to write (predict, chat, init_adapter read it)")],
    image_size: Annotated[int, typer.Option(help="tower input size (MiniGPT-v2: 448)")] = 448,
    vision_heads: Annotated[Optional[int], typer.Option(help="attention heads of the tower (default: width // 88, as ViT-g's 16)")] = None,
    overwrite: Annotated[bool, typer.Option(help="replace an existing --out folder")] = False,
) -> None:
    """Convert a MiniGPT-v2 / SkyEyeGPT checkpoint into this toolkit's checkpoint layout; wrong keys exit 2 with the list."""
    cli = _cli()
    _quiet_transformers()
    from skyeye_model.minigptv2 import import_minigptv2

    with _fail_on(FileNotFoundError, FileExistsError, ValueError, KeyError):  # CheckpointMismatch is a ValueError
        folder = import_minigptv2(checkpoint, vision, llm, out, image_size, vision_heads, source_format, overwrite)
    cli.stdout.print(f"imported {source_format} checkpoint into {folder}")


@train_app.command("export")
def train_export(
    target_format: Annotated[str, typer.Argument(metavar="FORMAT", help="minigptv2 (also SkyEyeGPT's format)")],
    checkpoint: Annotated[Path, typer.Argument(help="a checkpoint folder (trained or imported)", exists=True, file_okay=False)],
    out: Annotated[Path, typer.Option("--out", "-o", help="the .pth to write ({'model': llama_proj + LoRA})")],
    lora_keys: Annotated[Optional[str], typer.Option(help="plain (lora_A.weight, peft 0.2) or default (lora_A.default.weight); default: as imported, else plain")] = None,
) -> None:
    """Write a checkpoint's projector and LoRA as MiniGPT-v2's .pth (load it with MiniGPT-v2's ckpt: setting)."""
    cli = _cli()
    if target_format not in ("minigptv2", "skyeyegpt"):
        raise cli.fail(f"FORMAT must be minigptv2 or skyeyegpt, got {target_format!r}")
    if lora_keys not in (None, "plain", "default"):
        raise cli.fail(f"--lora-keys must be plain or default, got {lora_keys!r}")
    from skyeye_model.minigptv2 import export_minigptv2

    with _fail_on(FileNotFoundError, ValueError):
        written = export_minigptv2(checkpoint, out, None if lora_keys is None else lora_keys == "default")
    cli.stdout.print(f"MiniGPT-v2 checkpoint written to {written}")


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
    max_new_tokens: Annotated[int, typer.Option(help="answer length limit (answers with many boxes are long)")] = 256,
    device: Annotated[Optional[str], typer.Option(help="cuda, cuda:1, cpu (default: cuda if available)")] = None,
) -> None:
    """Answer every eval sample (batched greedy decoding); boxes in the answers are parsed back to pixels."""
    cli = _cli()
    _quiet_transformers()
    from skyeye_model.predict import count_rows, eval_files, predict

    with _fail_on(FileNotFoundError, ValueError, KeyError):
        total = count_rows(eval_files(eval_shards))
        with cli.progress_bar() as progress:
            task = progress.add_task("predict", total=total)
            written = predict(adapter, eval_shards, out, images, batch_size, max_new_tokens, device, lambda n: progress.advance(task, n))
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
    with _fail_on(FileNotFoundError, ValueError, OSError):
        chat(adapter, image, sys.stdin, lambda answer: cli.stdout.print(answer, markup=False, highlight=False), max_new_tokens, device)


def register(app: typer.Typer) -> None:
    app.add_typer(train_app, name="train")
    app.command("predict")(predict_command)
    app.command("chat")(chat_command)
