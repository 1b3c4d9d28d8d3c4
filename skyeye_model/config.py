"""The training config: one YAML file (``recipes/train/*.yaml``) validated by pydantic.

Paths may use ``~`` and ``$VARS`` (e.g. ``${SKYEYE_WEIGHTS}/Llama-2-7b-chat-hf``); relative paths are
taken relative to the current directory, as every other ``skyeye`` command does.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal, Optional

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

VisionType = Literal["auto", "clip", "siglip", "timm", "minigptv2"]
PromptStyle = Literal["auto", "skyeye", "minigptv2"]
MixtureMode = Literal["epoch", "minigptv2"]
Precision = Literal["auto", "fp32", "bf16"]


def expand_path(value: str | Path) -> Path:
    return Path(os.path.expandvars(os.path.expanduser(str(value))))


class StrictModel(BaseModel):
    # A typo in a YAML key must be an error, not a silently ignored setting.
    model_config = ConfigDict(extra="forbid")


class ModelConfig(StrictModel):
    llm_path: Path = Field(description="local directory of a causal LM (and its tokenizer), e.g. Llama-2-7b-chat-hf")
    vision_path: Path = Field(description="local directory of a vision tower (CLIP, SigLIP, or a timm EVA-CLIP)")
    vision_type: VisionType = Field(
        "auto", description="minigptv2: MiniGPT-v2's EVA ViT-g features (39 blocks, unit LayerNorm); auto detects it from the folder"
    )
    prompt_style: PromptStyle = Field("auto", description="minigptv2: MiniGPT-v2's exact strings; auto: minigptv2 with its tower, else skyeye")
    image_size: int = Field(448, description="images are resized to image_size x image_size")
    tokens_per_group: int = Field(4, description="consecutive patch tokens concatenated into one LLM token")
    lora_r: int = 64
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    lora_target_modules: list[str] = ["q_proj", "v_proj"]
    precision: Precision = Field("auto", description="frozen weights' dtype and autocast: auto = bf16 where the GPU supports it, else fp32")
    gradient_checkpointing: bool = False
    max_length: Optional[int] = Field(
        None, description="token limit per sample, image tokens included (never cut; text is); None: only the two caps below"
    )
    max_txt_len: Optional[int] = Field(1024, description="cap on answers + later turns (MiniGPT-v2's max_txt_len, minigptv2_finetune.yaml)")
    max_context_len: Optional[int] = Field(3800, description="cap on BOS + first prompt + images (MiniGPT-v2's max_context_len)")

    _expand = field_validator("llm_path", "vision_path", mode="before")(lambda v: expand_path(v))


class DataConfig(StrictModel):
    root: Path = Field(description="a `skyeye build` output folder (holds samples/ and images/)")
    split: str = "train"
    mixture: dict[str, float] = Field(
        default_factory=dict,
        description="per-source sample ratio per epoch: 1 = every sample once, 0.5 = a random half, 2 = twice",
    )
    default_weight: float = Field(1.0, description="ratio of a source absent from `mixture`")
    mixture_mode: MixtureMode = Field(
        "epoch",
        description="epoch: every planned sample exactly once per epoch; minigptv2: each batch from one source drawn with "
        "probability ratio/sum(ratios) (MiniGPT-v2's MultiIterLoader), iters_per_epoch batches per epoch",
    )
    iters_per_epoch: Optional[int] = Field(None, description="mixture_mode minigptv2: micro-batches per rank per epoch (MiniGPT-v2 run.iters_per_epoch: 1000)")
    tasks: Optional[list[str]] = Field(None, description="keep only these tasks (None: all)")
    exclude_review_status: list[str] = ["rejected"]
    max_frames: int = Field(4, description="video samples: frames kept, sampled evenly")
    num_workers: int = 2
    persistent_workers: bool = Field(True, description="keep dataloader workers (and their caches) alive across epochs")
    prefetch_factor: int = Field(4, description="batches each worker prepares ahead")
    group_by_length: bool = Field(False, description="order each rank's epoch so batches hold samples of similar length (exactly-once kept)")
    pack: bool = Field(False, description="pack a micro-batch's samples into rows of pack_length tokens (per-sample attention)")
    pack_length: Optional[int] = Field(None, description="tokens per packed row (None: the whole micro-batch in one row)")
    train_tier: bool = Field(True, description="read the build's pre-resized train-images/ when its size is image_size (recipe train_size)")
    jpeg_draft: Optional[bool] = Field(
        None, description="decode JPEGs at reduced scale when much larger than image_size; None: on, except for MiniGPT-v2 towers (exact pixels)"
    )
    index_cache: Optional[Path] = Field(None, description="where the image index is cached (default: <root>/.index)")

    _expand = field_validator("root", "index_cache", mode="before")(lambda v: None if v is None else expand_path(v))


class OptimConfig(StrictModel):
    lr: float = 1e-5
    weight_decay: float = 0.05
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_steps: int = 1000
    min_lr_ratio: float = Field(0.1, description="the cosine decays to lr * min_lr_ratio")
    max_grad_norm: float = 1.0


class TrainConfig(StrictModel):
    model: ModelConfig
    data: DataConfig
    optim: OptimConfig = OptimConfig()
    output_dir: Path
    init_adapter: Optional[Path] = Field(None, description="start from this checkpoint's LoRA + projector (stage 2)")
    batch_size: int = Field(4, description="samples per rank per micro-batch")
    grad_accum: int = 1
    epochs: int = 1
    max_steps: Optional[int] = Field(None, description="stop after this many optimizer steps (None: run all epochs)")
    seed: int = 42
    save_every: int = Field(1000, description="optimizer steps between checkpoints")
    keep_checkpoints: int = 2
    record_sample_ids: bool = Field(False, description="write the ids each rank trained on (audits, tests)")

    _expand = field_validator("output_dir", "init_adapter", mode="before")(lambda v: None if v is None else expand_path(v))


def load_config(path: Path, overrides: dict | None = None) -> TrainConfig:
    """Read a YAML training config; ``overrides`` (dotted keys, e.g. ``"optim.lr"``) win over the file."""
    raw = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    for dotted, value in (overrides or {}).items():
        if value is None:
            continue
        node = raw
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return TrainConfig.model_validate(raw)
