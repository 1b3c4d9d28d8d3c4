"""Training checkpoints: trainable weights + optimizer, scheduler and RNG state + the data position.

    checkpoint-0000100/
      adapter/                  peft LoRA (adapter_config.json, adapter_model.safetensors)
      projector.safetensors     the projector's weight and bias
      skyeye_model.json         the model config (base weight paths): `skyeye predict` loads from here
      optimizer.safetensors     AdamW moments and step counts   + optimizer.json (param groups)
                                (FSDP: optimizer-rank<R>.safetensors, each rank's shard of them)
      scheduler.json            the LR scheduler's state
      rng-rank<R>.safetensors   each rank's torch (and CUDA) RNG   + rng-rank<R>.json (Python's)
      trainer_state.json        step, epoch, batches consumed in the epoch, world size, batch sizes

No pickle anywhere: tensors go to safetensors, the rest to JSON. The folder is written under a
temporary name and renamed when complete (rank 0 renames after every rank has written its RNG
file; ranks share the output folder's filesystem).
"""

from __future__ import annotations

import json
import random
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import torch
from safetensors.torch import load_file, save_file

from skyeye_model.model import SkyEyeGPT, gather_trainable, load_trainable_weights, save_trainable_weights
from skyeye_model.strategy import like_parameter, local_tensor

CHECKPOINT_PREFIX = "checkpoint-"


@dataclass
class TrainerState:
    step: int = 0  # optimizer steps done
    epoch: int = 0  # the epoch in progress
    batches_in_epoch: int = 0  # micro-batches of that epoch already consumed by each rank
    world_size: int = 1
    batch_size: int = 1
    grad_accum: int = 1


def checkpoint_name(step: int) -> str:
    return f"{CHECKPOINT_PREFIX}{step:07d}"


def list_checkpoints(output_dir: Path) -> list[Path]:
    return sorted(p for p in Path(output_dir).glob(f"{CHECKPOINT_PREFIX}*") if p.is_dir() and p.name[len(CHECKPOINT_PREFIX) :].isdigit())


def latest_checkpoint(output_dir: Path) -> Path | None:
    found = list_checkpoints(output_dir)
    return found[-1] if found else None


def write_json(path: Path, data) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def optimizer_file(directory: Path, rank: int, sharded: bool) -> Path:
    return directory / (f"optimizer-rank{rank}.safetensors" if sharded else "optimizer.safetensors")


def save_optimizer(optimizer: torch.optim.Optimizer, directory: Path, rank: int = 0, sharded: bool = False) -> None:
    """AdamW's slots by parameter index; ``sharded`` (FSDP): this rank's shard, in its own file."""
    state = optimizer.state_dict()
    tensors = {
        f"{param}.{name}": local_tensor(value.detach()).cpu().contiguous()
        for param, slots in state["state"].items()
        for name, value in slots.items()
    }
    save_file(tensors, optimizer_file(directory, rank, sharded))
    if rank == 0:
        write_json(directory / "optimizer.json", state["param_groups"])


def load_optimizer(optimizer: torch.optim.Optimizer, directory: Path, rank: int = 0, sharded: bool = False) -> None:
    parameters = [p for group in optimizer.param_groups for p in group["params"]]
    slots: dict[int, dict[str, torch.Tensor]] = {}
    path = optimizer_file(directory, rank, sharded)
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: resume with the strategy (FSDP or not) and world size of the checkpoint")
    for key, value in load_file(path).items():
        param, name = key.split(".", 1)
        slots.setdefault(int(param), {})[name] = like_parameter(value, parameters[int(param)])
    groups = json.loads((directory / "optimizer.json").read_text(encoding="utf-8"))
    for group in groups:
        group["betas"] = tuple(group["betas"])
    optimizer.load_state_dict({"state": slots, "param_groups": groups})


def rng_files(directory: Path, rank: int) -> tuple[Path, Path]:
    return directory / f"rng-rank{rank}.safetensors", directory / f"rng-rank{rank}.json"


def save_rng(directory: Path, rank: int) -> None:
    tensors_file, json_file = rng_files(directory, rank)
    tensors = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        tensors["cuda"] = torch.cuda.get_rng_state()
    save_file(tensors, tensors_file)
    version, internal, gauss = random.getstate()
    write_json(json_file, {"python": [version, list(internal), gauss]})


def load_rng(directory: Path, rank: int) -> None:
    tensors_file, json_file = rng_files(directory, rank)
    if not tensors_file.exists():
        raise FileNotFoundError(f"{tensors_file} is missing: resume with the world size the checkpoint was written with")
    tensors = load_file(tensors_file)
    torch.set_rng_state(tensors["torch"])
    if "cuda" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state(tensors["cuda"])
    version, internal, gauss = json.loads(json_file.read_text(encoding="utf-8"))["python"]
    random.setstate((version, tuple(internal), gauss))


def _barrier() -> None:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()


@runtime_checkable
class OptimizerCheckpoint(Protocol):
    """What :func:`save_checkpoint` and :func:`load_training_state` need of a strategy's optimizer: the
    trainable weights whole (a collective under FSDP and ZeRO-3: every rank calls it), and its state
    written and read back. A torch optimizer gets :class:`TorchOptimizerCheckpoint`; DeepSpeed's
    partitioned one is ``deepspeed_engine.DeepSpeedOptimizer``."""

    def gather_trainable(self, model: SkyEyeGPT) -> dict[str, torch.Tensor]: ...

    def save_to(self, directory: Path, rank: int) -> None: ...

    def load_from(self, directory: Path, rank: int) -> None: ...


@dataclass
class TorchOptimizerCheckpoint:
    """A torch optimizer's checkpoint (one process, DDP; FSDP with ``sharded``: each rank its shard)."""

    optimizer: torch.optim.Optimizer
    sharded: bool = False

    def gather_trainable(self, model: SkyEyeGPT) -> dict[str, torch.Tensor]:
        return gather_trainable(model)

    def save_to(self, directory: Path, rank: int) -> None:
        if rank == 0 or self.sharded:
            save_optimizer(self.optimizer, directory, rank, self.sharded)

    def load_from(self, directory: Path, rank: int) -> None:
        load_optimizer(self.optimizer, directory, rank, self.sharded)


def optimizer_checkpoint(optimizer, sharded: bool = False) -> OptimizerCheckpoint:
    """The :class:`OptimizerCheckpoint` of the trainer's optimizer (a torch one is wrapped)."""
    if isinstance(optimizer, torch.optim.Optimizer):
        return TorchOptimizerCheckpoint(optimizer, sharded)
    if isinstance(optimizer, OptimizerCheckpoint):
        return optimizer
    raise TypeError(f"{type(optimizer).__name__} is neither a torch optimizer nor an OptimizerCheckpoint")


def save_checkpoint(
    output_dir: Path, model: SkyEyeGPT, optimizer, scheduler, state: TrainerState, rank: int, keep: int, sharded: bool = False
) -> Path:
    """Write ``checkpoint-<step>`` (all ranks call this); returns its final path."""
    final = Path(output_dir) / checkpoint_name(state.step)
    tmp = final.with_name(f".{final.name}.tmp")
    checkpointed = optimizer_checkpoint(optimizer, sharded)
    trainable = checkpointed.gather_trainable(model)  # a collective under FSDP and ZeRO-3: before any rank-0-only work
    if rank == 0:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        save_trainable_weights(model, tmp, trainable)
        write_json(tmp / "scheduler.json", scheduler.state_dict())
        write_json(tmp / "trainer_state.json", asdict(state))
    _barrier()
    checkpointed.save_to(tmp, rank)
    save_rng(tmp, rank)
    _barrier()
    if rank == 0:
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
        for old in list_checkpoints(output_dir)[:-keep] if keep > 0 else []:
            shutil.rmtree(old, ignore_errors=True)
    _barrier()
    return final


def read_trainer_state(directory: Path) -> TrainerState:
    return TrainerState(**json.loads((directory / "trainer_state.json").read_text(encoding="utf-8")))


def load_training_state(directory: Path, optimizer, scheduler, rank: int, sharded: bool = False) -> TrainerState:
    """Optimizer, scheduler, position and RNG of a checkpoint (its weights: ``load_trainable_weights``, before
    the model is wrapped); the RNG last, so nothing after it draws numbers."""
    optimizer_checkpoint(optimizer, sharded).load_from(directory, rank)
    scheduler.load_state_dict(json.loads((directory / "scheduler.json").read_text(encoding="utf-8")))
    state = read_trainer_state(directory)
    load_rng(directory, rank)
    return state


def load_checkpoint(directory: Path, model: SkyEyeGPT, optimizer, scheduler, rank: int) -> TrainerState:
    """Restore everything ``save_checkpoint`` wrote into an unwrapped model (single process)."""
    load_trainable_weights(model, directory)
    return load_training_state(directory, optimizer, scheduler, rank)
