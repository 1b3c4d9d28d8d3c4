"""How training is spread over processes: what an ``accelerate`` config asks for, honoured or refused.

``accelerate launch --config_file X`` passes its config to the processes as environment variables
(accelerate ``utils/launch.py`` ``prepare_multi_gpu_env``: ``ACCELERATE_MIXED_PRECISION``,
``ACCELERATE_USE_FSDP``, ``FSDP_*``, ``ACCELERATE_USE_DEEPSPEED``); ``torchrun`` passes none of them. The
trainer reads the same variables accelerate's ``Accelerator`` reads, so nothing in an accelerate config is
silently dropped:

- ``mixed_precision``: ``bf16`` → the forward under bf16 autocast (also from ``model.precision``); ``no``
  → fp32 (an explicit ``no`` wins over ``model.precision: bf16``: the frozen weights stay bf16, the
  forward does not autocast); ``fp16``/``fp8`` → refused (no loss scaler here).
- ``distributed_type: FSDP`` → torch's FSDP2 ``fully_shard`` on every decoder layer
  (``fsdp_transformer_layer_cls_to_wrap``, default ``LlamaDecoderLayer``) and on the model root; the frozen
  vision tower is left out of sharding (``ignored_params``): each rank keeps it whole, it has no gradient to
  reduce. Runs on GPUs (NCCL) and on CPU (gloo). Accelerate's own FSDP path is not used because it does
  not exist for CPU processes (``Accelerator(cpu=True)`` falls back to DDP).
- ``distributed_type: DEEPSPEED`` → a DeepSpeed engine with the ZeRO config accelerate's ``DeepSpeedPlugin``
  builds from it (stages 0-3; under stage 3 the frozen tower and LLM are partitioned too, trainable weights
  gathered for checkpoints, ``zero3_init_flag`` honoured: :mod:`skyeye_model.deepspeed_engine`); refused with
  a message when ``deepspeed`` is not installed (it is optional: ``pip install deepspeed``).
- otherwise, with several processes, DDP.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from torch import nn

from skyeye_model.deepspeed_engine import deepspeed_available


@dataclass
class Strategy:
    kind: str  # "single", "ddp", "fsdp" or "deepspeed"
    mixed_precision: str  # "no" or "bf16"
    layer_classes: tuple[str, ...] = ("LlamaDecoderLayer",)


def env_flag(name: str) -> bool:
    return os.environ.get(name, "false").strip().lower() in ("1", "true", "yes")


def resolve_strategy(precision: str, world_size: int) -> Strategy:
    """The strategy the launcher's environment and ``model.precision`` (already resolved: fp32/bf16) ask for."""
    mixed = os.environ.get("ACCELERATE_MIXED_PRECISION") or ("bf16" if precision == "bf16" else "no")
    if mixed not in ("no", "bf16"):
        raise ValueError(f"mixed_precision {mixed!r} from the accelerate config is not supported here (no loss scaler): use bf16 or no")
    if env_flag("ACCELERATE_USE_DEEPSPEED"):
        if not deepspeed_available():
            raise ValueError(
                "the accelerate config asks for DeepSpeed, which is not installed: `pip install deepspeed` "
                "(on CPU also DS_ACCELERATOR=cpu), or use an FSDP config (distributed_type: FSDP) (docs/training.md)"
            )
        return Strategy("deepspeed", mixed)
    if env_flag("ACCELERATE_USE_FSDP"):
        classes = tuple(c.strip() for c in os.environ.get("FSDP_TRANSFORMER_CLS_TO_WRAP", "LlamaDecoderLayer").split(",") if c.strip())
        return Strategy("fsdp", mixed, classes)
    return Strategy("ddp" if world_size > 1 else "single", mixed)


def shard_fsdp(model: nn.Module, layer_classes: tuple[str, ...]) -> nn.Module:
    """FSDP2 over the LLM's decoder layers and the root; the frozen vision tower replicated, not sharded."""
    from torch.distributed.fsdp import fully_shard

    layers = [m for m in model.llm.modules() if type(m).__name__ in layer_classes]
    if not layers:
        raise ValueError(f"FSDP: no module of class {', '.join(layer_classes)} in the LLM (fsdp_transformer_layer_cls_to_wrap)")
    for layer in layers:
        fully_shard(layer)
    fully_shard(model, ignored_params=set(model.vision.parameters()))
    return model


def set_gradient_sync(runner: nn.Module, strategy: Strategy, sync: bool):
    """A context in which gradients are (not) reduced across ranks: accumulation reduces only on its last micro-batch."""
    import contextlib

    if strategy.kind == "ddp" and not sync:
        return runner.no_sync()
    if strategy.kind == "fsdp":
        runner.set_requires_gradient_sync(sync)
    return contextlib.nullcontext()


def full_tensor(tensor: torch.Tensor) -> torch.Tensor:
    """A sharded (DTensor) tensor gathered whole on every rank; a plain one as is. Every rank must call it."""
    from torch.distributed.tensor import DTensor

    return tensor.full_tensor() if isinstance(tensor, DTensor) else tensor


def local_tensor(tensor: torch.Tensor) -> torch.Tensor:
    from torch.distributed.tensor import DTensor

    return tensor.to_local() if isinstance(tensor, DTensor) else tensor


def like_parameter(value: torch.Tensor, parameter: torch.Tensor) -> torch.Tensor:
    """An optimizer slot read from this rank's file, made a DTensor again where the parameter is one."""
    from torch.distributed.tensor import DTensor

    if isinstance(parameter, DTensor) and value.ndim and not isinstance(value, DTensor):
        return DTensor.from_local(value.to(parameter.device), parameter.device_mesh, parameter.placements, run_check=False)
    return value
