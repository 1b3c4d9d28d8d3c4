"""The training loop: single process, or one process per device under ``torchrun`` / ``accelerate launch``
(DDP, or FSDP2 / DeepSpeed ZeRO 0-3 when an accelerate config asks for it: see ``strategy``).

One optimizer step = ``grad_accum`` micro-batches of ``batch_size`` samples on every rank. AdamW with
weight decay on the weight matrices only (not on biases or norms), a linear warmup then a cosine
decay. The data order is a pure function of ``(seed, epoch)`` (see ``sampler``), and a checkpoint
records how many micro-batches of the epoch each rank has consumed, the RNG states and the optimizer,
so ``resume`` continues with the very batches and random numbers an uninterrupted run would use.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from skyeye_model.checkpoint import TrainerState, latest_checkpoint, load_training_state, read_trainer_state, save_checkpoint
from skyeye_model.collate import Collator, PackingCollator
from skyeye_model.config import TrainConfig
from skyeye_model.data import SampleDataset, length_report_lines
from skyeye_model.deepspeed_engine import check_zero3_batch, start_engine, zero3_loading
from skyeye_model.images import training_images
from skyeye_model.model import SkyEyeGPT, build_model, pad_id, resolved_precision
from skyeye_model.sampler import MixtureSampler
from skyeye_model.strategy import resolve_strategy, set_gradient_sync, shard_fsdp

log = logging.getLogger(__name__)


@dataclass
class Distributed:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed() -> Distributed:
    """Join the process group that torchrun / accelerate launch describe in the environment (if any)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    if torch.cuda.is_available():
        torch.cuda.set_device(device)
    if world_size > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else 0
    world_size = torch.distributed.get_world_size() if torch.distributed.is_initialized() else 1
    return Distributed(rank, world_size, local_rank, device)


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Decay the weight matrices; biases and norm scales (1-D) get none."""
    decay, no_decay = [], []
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            (no_decay if parameter.ndim < 2 or name.endswith(".bias") else decay).append(parameter)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def warmup_cosine(warmup_steps: int, total_steps: int, min_ratio: float) -> Callable[[int], float]:
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


@dataclass
class TrainResult:
    losses: list[float]  # per optimizer step, averaged over micro-batches and ranks
    steps: int
    checkpoint: Path | None
    samples_seen: int  # samples with weight 1 this process trained on
    tokens_seen: int  # tokens (image tokens included, padding not) this process ran through the model
    seconds: float
    length_report: dict = field(default_factory=dict)  # source → SourceLengths (kept / truncated / skipped)

    @property
    def tokens_per_second(self) -> float:
        return self.tokens_seen / self.seconds if self.seconds else 0.0


def open_dataset(config: TrainConfig, model: SkyEyeGPT) -> SampleDataset:
    template = model.chat_template(training=True)
    data = config.data
    images_dir, _ = training_images(data.root, config.model.image_size, data.train_tier)  # the Trainer logs which
    return SampleDataset(
        data.root,
        template,
        config.model.image_size,
        split=data.split,
        tasks=data.tasks,
        exclude_review_status=data.exclude_review_status,
        max_frames=data.max_frames,
        index_cache=data.index_cache,
        draft=data.jpeg_draft if data.jpeg_draft is not None else model.vision.kind != "minigptv2",
        images_dir=images_dir,
    )


def make_loader(dataset: SampleDataset, sampler: MixtureSampler, config: TrainConfig, collator, device) -> torch.utils.data.DataLoader:
    """One loader for the whole run: the sampler is re-read at every ``iter()`` (epoch, resume position),
    and persistent workers keep their row-group and image caches between epochs."""
    workers = config.data.num_workers
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=config.batch_size,
        sampler=sampler,
        collate_fn=collator,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        # Its own generator, so creating a loader never draws from the global RNG that dropout uses.
        generator=torch.Generator().manual_seed(config.seed),
        prefetch_factor=config.data.prefetch_factor if workers else None,
        persistent_workers=config.data.persistent_workers and workers > 0,
    )


def mean_over_ranks(value: float, dist: Distributed) -> float:
    if dist.world_size == 1:
        return value
    tensor = torch.tensor([value], dtype=torch.float64, device=dist.device)
    torch.distributed.all_reduce(tensor)
    return float(tensor.item()) / dist.world_size


def record_ids(config: TrainConfig, dist: Distributed, epoch: int, ids: list[str], weights: list[float]) -> None:
    folder = config.output_dir / "sample-ids"
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f"rank{dist.rank}-epoch{epoch}.txt", "a", encoding="utf-8") as out:
        out.writelines(f"{i}\t{w:g}\n" for i, w in zip(ids, weights))


class Trainer:
    """One training run: the model, data, optimizer and position, set up once; ``run`` loops."""

    def __init__(self, config: TrainConfig, resume: bool | Path = False, on_report: Callable[[list[str]], None] | None = None):
        self.config = config
        self.dist = init_distributed()
        torch.manual_seed(config.seed)  # identical initial weights on every rank
        self.strategy = resolve_strategy(resolved_precision(config.model.precision), self.dist.world_size)
        checkpoint = self._resume_checkpoint(resume) if resume else None
        # ZeRO-3 with zero3_init_flag: transformers loads the LLM (and a CLIP/SigLIP tower) partitioned; kept alive
        self.zero3_loading = zero3_loading(config, self.dist.world_size) if self.strategy.kind == "deepspeed" else None
        placement = None if self.zero3_loading else self.dist.device  # zero.Init puts each partition on the device itself
        self.model = build_model(config.model, init_adapter=checkpoint or config.init_adapter, device=placement).to(self.dist.device)
        self.dataset = open_dataset(config, self.model)
        if self.dist.is_main:  # before the first step: how it runs, and what the length policy cut or left out, per source
            strategy = f"{self.strategy.kind} over {self.dist.world_size} process(es), mixed precision {self.strategy.mixed_precision}"
            lines = [strategy, training_images(config.data.root, config.model.image_size, config.data.train_tier)[1]]
            lines += length_report_lines(self.dataset.length_report)
            for line in lines if on_report is None else []:
                log.warning("%s", line)
            if on_report is not None:
                on_report(lines)
        if len(self.dataset) == 0:
            skipped = sum(c.skipped for c in self.dataset.length_report.values())
            raise ValueError(f"no training samples in {config.data.root} (split {config.data.split}; {skipped} skipped by the length policy)")
        warn_unknown_mixture_sources(config.data.mixture, self.dataset.source_names)
        self.sampler = MixtureSampler(
            self.dataset, config.data.mixture, config.data.default_weight, config.seed, self.dist.rank, self.dist.world_size,
            mode=config.data.mixture_mode, batch_size=config.batch_size, iterations=config.data.iters_per_epoch,
            lengths=self.dataset.lengths if config.data.group_by_length else None,
        )
        self.batches_per_epoch = math.ceil(len(self.sampler.items()) / config.batch_size)
        self.steps_per_epoch = math.ceil(self.batches_per_epoch / config.grad_accum)
        self.total_steps = config.max_steps or self.steps_per_epoch * config.epochs
        self.runner = self._wrap()  # before the optimizer: FSDP replaces the parameters with sharded ones
        self.optimizer = torch.optim.AdamW(
            parameter_groups(self.model, config.optim.weight_decay), lr=config.optim.lr, betas=config.optim.betas
        )
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, warmup_cosine(config.optim.warmup_steps, self.total_steps, config.optim.min_lr_ratio)
        )
        self.engine = None
        if self.strategy.kind == "deepspeed":  # the engine wraps model and AdamW; the schedule (on AdamW's groups) stays ours
            self.engine, self.optimizer = start_engine(self.model, self.optimizer, config, self.dist.world_size)
            self.runner = self.engine
        self.state = TrainerState(world_size=self.dist.world_size, batch_size=config.batch_size, grad_accum=config.grad_accum)
        torch.manual_seed(config.seed + 1000 * self.dist.rank)  # dropout differs between ranks
        if checkpoint is not None:
            check_same_layout(read_trainer_state(checkpoint), self.dist, config)
            sharded = self.strategy.kind == "fsdp"
            self.state = load_training_state(checkpoint, self.optimizer, self.scheduler, self.dist.rank, sharded)
        self.autocast = torch.autocast(self.dist.device.type, dtype=torch.bfloat16, enabled=self.strategy.mixed_precision == "bf16")
        data = config.data
        self.collator = PackingCollator(pad_id(self.model.tokenizer), data.pack_length) if data.pack else Collator(pad_id(self.model.tokenizer))
        self.loader: torch.utils.data.DataLoader | None = None
        self.losses: list[float] = []
        self.samples_seen = 0
        self.tokens_seen = 0
        self.last_checkpoint: Path | None = None

    def _resume_checkpoint(self, resume: bool | Path) -> Path:
        checkpoint = Path(resume) if isinstance(resume, Path) else latest_checkpoint(self.config.output_dir)
        if checkpoint is None:
            raise FileNotFoundError(f"--resume: no checkpoint in {self.config.output_dir}")
        return checkpoint

    def _wrap(self) -> nn.Module:
        if self.strategy.kind == "fsdp":
            return shard_fsdp(self.model, self.strategy.layer_classes)
        if self.strategy.kind in ("single", "deepspeed"):  # deepspeed: the engine comes with the optimizer
            return self.model
        device_ids = [self.dist.device.index] if self.dist.device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(self.model, device_ids=device_ids)

    def run(self, on_step: Callable[[int, int, float, float], None] | None = None, stop_after: int | None = None) -> TrainResult:
        end_step = min(self.total_steps, stop_after) if stop_after else self.total_steps
        last_epoch = max(self.config.epochs, math.ceil(self.total_steps / self.steps_per_epoch))
        self.model.train()
        started = time.perf_counter()
        while self.state.step < end_step and self.state.epoch < last_epoch:
            self._run_epoch(end_step, on_step)
            if self.state.batches_in_epoch >= self.batches_per_epoch:
                self.state.epoch, self.state.batches_in_epoch = self.state.epoch + 1, 0
        return TrainResult(
            self.losses, self.state.step, self.last_checkpoint, self.samples_seen, self.tokens_seen, time.perf_counter() - started,
            self.dataset.length_report,
        )

    def _run_epoch(self, end_step: int, on_step) -> None:
        config, state = self.config, self.state
        self.sampler.set_epoch(state.epoch, start=state.batches_in_epoch * config.batch_size)
        micro_losses: list[float] = []
        if self.loader is None:
            self.loader = make_loader(self.dataset, self.sampler, config, self.collator, self.dist.device)
        for batch in self.loader:
            state.batches_in_epoch += 1
            step_ends = state.batches_in_epoch % config.grad_accum == 0 or state.batches_in_epoch == self.batches_per_epoch
            micro_losses.append(self._forward_backward(batch, sync=step_ends))
            if config.record_sample_ids:
                record_ids(config, self.dist, state.epoch, batch.ids, batch.weights)
            if step_ends:
                self._optimizer_step(sum(micro_losses) / len(micro_losses), end_step, on_step)
                micro_losses = []
                if state.step >= end_step:
                    return

    def _forward_backward(self, batch, sync: bool) -> float:
        # DDP / FSDP reduce gradients only on the last micro-batch of an accumulation.
        if self.engine is not None:  # DeepSpeed: its reduction and step follow the trainer's step boundaries
            if self.engine.zero_optimization_partition_weights():
                check_zero3_batch(batch)
            self.engine.set_gradient_accumulation_boundary(sync)
            with self.autocast:
                loss, _ = self.engine(batch.to(self.dist.device))
            self.engine.backward(loss / self.config.grad_accum, scale_wrt_gas=False)
            self.engine.step()  # every micro-batch, as DeepSpeed expects; it updates only at a boundary
        else:
            with set_gradient_sync(self.runner, self.strategy, sync), self.autocast:
                loss, _ = self.runner(batch.to(self.dist.device))
                (loss / self.config.grad_accum).backward()
        self.samples_seen += sum(1 for w in batch.weights if w > 0)
        self.tokens_seen += int(batch.attention_mask.sum())
        return float(loss.detach())

    def _optimizer_step(self, loss: float, end_step: int, on_step) -> None:
        if self.engine is None:  # DeepSpeed clipped, stepped and cleared in engine.step()
            nn.utils.clip_grad_norm_(list(self.model.trainable_state().values()), self.config.optim.max_grad_norm)
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        self.state.step += 1
        self.losses.append(mean_over_ranks(loss, self.dist))
        lr = self.scheduler.get_last_lr()[0]
        if self.dist.is_main:
            append_loss(self.config.output_dir, self.state.step, self.losses[-1], lr)
            if on_step:
                on_step(self.state.step, self.total_steps, self.losses[-1], lr)
        if self.state.step % self.config.save_every == 0 or self.state.step == end_step:
            self.last_checkpoint = save_checkpoint(
                self.config.output_dir, self.model, self.optimizer, self.scheduler, self.state, self.dist.rank,
                self.config.keep_checkpoints, sharded=self.strategy.kind == "fsdp",
            )


def train(
    config: TrainConfig,
    resume: bool | Path = False,
    on_step: Callable[[int, int, float, float], None] | None = None,
    stop_after: int | None = None,
    on_report: Callable[[list[str]], None] | None = None,
) -> TrainResult:
    """Run (or continue) training. ``stop_after`` ends early after that step (simulating an interruption);
    ``on_report`` receives the length report's lines before the first step (rank 0)."""
    return Trainer(config, resume, on_report).run(on_step, stop_after)


def warn_unknown_mixture_sources(mixture: dict[str, float], present: list[str]) -> None:
    # A misspelt source in the mixture would silently keep its default ratio.
    unknown = sorted(set(mixture) - set(present))
    if unknown:
        log.warning("data.mixture names sources with no samples here: %s (present: %s)", ", ".join(unknown), ", ".join(present))


def check_same_layout(state: TrainerState, dist: Distributed, config: TrainConfig) -> None:
    # The data position counts micro-batches per rank: it only means the same thing in the same layout.
    saved = (state.world_size, state.batch_size, state.grad_accum)
    now = (dist.world_size, config.batch_size, config.grad_accum)
    if saved != now:
        raise ValueError(
            f"checkpoint was written with world size, batch size, grad accum = {saved}, this run has {now}; "
            "resume with the same layout (or start a new run with init_adapter)"
        )


def append_loss(output_dir: Path, step: int, loss: float, lr: float) -> None:
    # One line per step, written as it happens: a crashed run keeps its curve.
    output_dir.mkdir(parents=True, exist_ok=True)
    with open(output_dir / "losses.jsonl", "a", encoding="utf-8") as out:
        out.write(json.dumps({"step": step, "loss": loss, "lr": lr}) + "\n")
