"""DeepSpeed ZeRO from an accelerate config (``distributed_type: DEEPSPEED``), for ``train.Trainer``.

``accelerate launch`` hands its ``deepspeed_config`` to the processes as environment variables
(accelerate ``utils/launch.py`` ``prepare_deepspeed_cmd_env``: ``ACCELERATE_DEEPSPEED_ZERO_STAGE``,
``ACCELERATE_DEEPSPEED_OFFLOAD_*``, ``ACCELERATE_GRADIENT_ACCUMULATION_STEPS``, ``ACCELERATE_GRADIENT_CLIPPING``,
or ``ACCELERATE_DEEPSPEED_CONFIG_FILE``); accelerate's own ``DeepSpeedPlugin`` reads them back into a
DeepSpeed config (``utils/dataclasses.py``), and its ``"auto"`` entries are filled here from the training
config the way ``Accelerator._prepare_deepspeed`` fills them (micro-batch, accumulation, clipping); a
value the accelerate config sets that disagrees with the training config is an error, not a silent pick.

The trainer's loop stays the same: the engine runs forward/backward, ``set_gradient_accumulation_boundary``
marks the micro-batch that ends a step (also a short last accumulation of an epoch), gradients are
clipped by DeepSpeed (``gradient_clipping``), the LR schedule is the trainer's own. Mixed precision is the
trainer's autocast, as under DDP/FSDP (DeepSpeed's ``bf16`` mode would cast the trainable weights too).

Checkpoints: the trainer's files (trainable weights, schedule, position, RNG) plus
``deepspeed/``, written by ``engine.save_checkpoint`` on every rank (each rank's ZeRO partition of the
optimizer state, and under stage 3 of the trainable weights' fp32 copy; frozen weights left out,
``exclude_frozen_parameters``). DeepSpeed writes and reads those with ``torch.save`` / ``torch.load``
(pickles): resume only from checkpoints your own runs wrote.

ZeRO-3 (parameters partitioned, read in DeepSpeed 0.19 ``runtime/zero/partition_parameters.py``,
``runtime/zero/parameter_offload.py``, ``runtime/engine.py``):

- every parameter of the model is partitioned at ``deepspeed.initialize`` (``DeepSpeedZeRoOffload
  ._convert_to_zero_parameters``), the frozen vision tower and the frozen LLM included; a partitioned
  parameter's ``.data`` is an empty placeholder (the real shape is ``ds_shape``), and DeepSpeed's module
  hooks gather each module's parameters around its forward/backward, so the trainer's forward is unchanged.
- the trainable weights the trainer saves (``adapter/``, ``projector.safetensors``: the same files as under
  DDP, read unchanged by ``skyeye train merge`` / ``predict``) are gathered whole for the copy
  (:func:`gather_trainable_zero3`: ``deepspeed.zero.GatheredParameters`` with ``modifier_rank=None``,
  re-partitioned on exit, as ``engine._zero3_consolidated_16bit_state_dict`` does layer by layer for
  ``save_16bit_model``); every rank gathers, rank 0 writes (``checkpoint.save_checkpoint``).
- at resume the trainable weights are loaded into the model before the engine starts
  (``model.load_trainable_weights``; LoRA and projector are never built partitioned, see below), then
  ``engine.load_checkpoint`` restores each rank's fp32 partition and optimizer state.
- ``zero3_init_flag`` (accelerate ``utils/dataclasses.py`` ``DeepSpeedPlugin``: on by default for stage 3,
  ``ACCELERATE_DEEPSPEED_ZERO3_INIT``): as ``DeepSpeedPlugin.set_deepspeed_weakref`` does, a transformers
  ``HfDeepSpeedConfig`` is kept alive while the model is built (:func:`zero3_loading`), so transformers'
  ``from_pretrained`` builds the LLM and a CLIP/SigLIP tower under ``deepspeed.zero.Init`` and rank 0 alone
  reads the file (transformers ``modeling_utils.py``): no rank holds the whole LLM. A timm or MiniGPT-v2 tower
  is not built by ``from_pretrained``: it comes whole (on the CPU memory-mapped from its file, see
  ``timm_tower`` / ``eva_minigptv2``) and is partitioned at ``initialize``. peft's LoRA layers and the projector are created after
  ``from_pretrained`` returns, outside ``zero.Init``: plain tensors until ``initialize``. The frozen weights
  load identically either way (checked: every gathered tensor equal); the random initial LoRA A and projector
  differ between the two loading paths (transformers draws from the RNG differently), each reproducible.
  With the flag off, every rank loads the model whole first (memory-mapped on the CPU), then partitions.
- all ranks run every module in the same order (each module's gather is a collective): a micro-batch
  without an image skips the vision tower and projector, so under ZeRO-3 it is refused with a message
  (``check_zero3_batch``) instead of hanging the other ranks.

ZeRO stages 2 and 3 are tested on CPU (``DS_ACCELERATOR=cpu``, gloo; ``tests/test_model_distributed.py``:
resume to the uninterrupted losses and weights, every sample once per epoch, each rank's partition files, and
the saved trainable weights the keys and shapes a plain run writes). The stage-3 case sets
``stage3_param_persistence_threshold: 0``: DeepSpeed's default (1e5 elements, ``runtime/zero/config.py``) keeps
small parameters whole on every rank, which would hide a missing gather on a tiny model. On GPUs the same
code runs with NCCL; not run here (no GPU was lent to this task).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from skyeye_model.config import TrainConfig

CHECKPOINT_FOLDER = "deepspeed"
SUPPORTED_STAGES = (0, 1, 2, 3)


def deepspeed_available() -> bool:
    try:
        import deepspeed  # noqa: F401
    except ImportError:
        return False
    return True


def deepspeed_config(config: TrainConfig, world_size: int) -> dict[str, Any]:
    """The DeepSpeed config of the accelerate config in the environment, ``auto`` values filled in."""
    from accelerate.utils import DeepSpeedPlugin

    plugin = DeepSpeedPlugin()  # reads ACCELERATE_DEEPSPEED_* / the config file, as Accelerator does
    ds = plugin.deepspeed_config
    stage = int(ds.get("zero_optimization", {}).get("stage", 0))
    if stage not in SUPPORTED_STAGES:
        raise ValueError(f"DeepSpeed ZeRO stage {stage} from the accelerate config: there are stages 0 to 3 (zero_stage)")
    wanted = {
        "train_micro_batch_size_per_gpu": config.batch_size,
        "gradient_accumulation_steps": config.grad_accum,
        "train_batch_size": config.batch_size * config.grad_accum * world_size,
        "gradient_clipping": config.optim.max_grad_norm,
    }
    for key, value in wanted.items():
        present = ds.get(key, "auto")
        if present not in ("auto", None) and float(present) != float(value):
            raise ValueError(f"the accelerate DeepSpeed config sets {key}: {present}, the training config means {value}: make them agree")
        ds[key] = value
    for key in ("bf16", "fp16"):  # a DeepSpeed config file's own precision would be overridden below: say so
        if ds.get(key, {}).get("enabled", False) not in (False, "auto"):
            raise ValueError(
                f"the DeepSpeed config enables {key}: mixed precision is the trainer's autocast here: leave {key} out of "
                "the DeepSpeed config and set mixed_precision in the accelerate config (or model.precision: bf16)"
            )
    ds["bf16"] = {"enabled": False}  # the trainer's autocast does mixed precision (see the module docstring)
    ds["fp16"] = {"enabled": False}
    ds["zero_allow_untested_optimizer"] = True  # torch's AdamW, as under DDP/FSDP
    ds.setdefault("steps_per_print", 1 << 30)
    return ds


def zero3_loading(config: TrainConfig, world_size: int):
    """Under ZeRO-3 with ``zero3_init_flag`` (``DeepSpeedPlugin``'s default for stage 3): transformers' own
    ZeRO-3 loading, switched on the way accelerate does it (``DeepSpeedPlugin.set_deepspeed_weakref``): a
    ``transformers.integrations.HfDeepSpeedConfig`` kept alive makes ``from_pretrained`` build the model under
    ``deepspeed.zero.Init`` and fill it from rank 0's read of the file (transformers ``modeling_utils.py``,
    ``is_deepspeed_zero3_enabled``), so no rank holds the whole LLM. Returns that object (keep a reference for
    the whole run: transformers holds only a weakref), or None when the flag is off or the stage is not 3."""
    from accelerate.utils import DeepSpeedPlugin

    if not DeepSpeedPlugin().zero3_init_flag:  # False unless stage 3 (the plugin resets it, with a warning)
        return None
    import deepspeed
    from transformers.integrations import HfDeepSpeedConfig

    if torch.distributed.is_initialized():  # zero.Init reads the world size from deepspeed.comm (accelerate state.py does this too)
        deepspeed.init_distributed(dist_backend=torch.distributed.get_backend(), auto_mpi_discovery=False)
    return HfDeepSpeedConfig(deepspeed_config(config, world_size))


def start_engine(model: nn.Module, optimizer: torch.optim.Optimizer, config: TrainConfig, world_size: int):
    """``deepspeed.initialize`` over the (already built, already on its device) model and the trainer's AdamW."""
    import deepspeed

    engine, wrapped, _, _ = deepspeed.initialize(model=model, optimizer=optimizer, config=deepspeed_config(config, world_size))
    return engine, DeepSpeedOptimizer(engine, wrapped)


class DeepSpeedOptimizer:
    """DeepSpeed's partitioned optimizer as the trainer's checkpoint code takes it
    (``checkpoint.OptimizerCheckpoint``): every rank writes and reads its own partition."""

    def __init__(self, engine, optimizer):
        self.engine = engine
        self.optimizer = optimizer

    @property
    def param_groups(self):
        return self.optimizer.param_groups

    def gather_trainable(self, model: nn.Module) -> dict[str, torch.Tensor]:
        """Every trainable tensor whole, on the CPU; under ZeRO-3 gathered from the partitions (all ranks call it)."""
        return gather_trainable_zero3(model)

    def save_to(self, directory: Path, rank: int) -> None:  # noqa: ARG002 -- every rank writes its own partition
        self.engine.save_checkpoint(str(directory / CHECKPOINT_FOLDER), tag="state", save_latest=False, exclude_frozen_parameters=True)

    def load_from(self, directory: Path, rank: int) -> None:  # noqa: ARG002
        path = directory / CHECKPOINT_FOLDER
        if not (path / "state").is_dir():
            raise FileNotFoundError(f"{path}/state is missing: this checkpoint was not written under DeepSpeed")
        # the weights were loaded before the engine started (load_trainable_weights); the schedule is the trainer's
        self.engine.load_checkpoint(str(path), tag="state", load_module_strict=False, load_lr_scheduler_states=False)


def gather_trainable_zero3(model: nn.Module) -> dict[str, torch.Tensor]:
    """Copies of the trainable tensors, whole. Partitioned ones (ZeRO-3; a parameter under
    ``stage3_param_persistence_threshold`` elements is kept whole on every rank) are gathered for the copy and
    re-partitioned on exit; with none partitioned (stages 0-2) ``GatheredParameters`` does nothing."""
    import deepspeed

    trainable = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    with deepspeed.zero.GatheredParameters([p for _, p in trainable], modifier_rank=None):
        return {name: p.detach().to("cpu", copy=True).contiguous() for name, p in trainable}


def check_zero3_batch(batch) -> None:
    """Under ZeRO-3 every rank must run the vision tower and projector each micro-batch (their gathers are
    collectives, see the module docstring); a batch without images would skip them here only."""
    if not batch.pixel_values.shape[0]:
        raise ValueError(
            f"DeepSpeed ZeRO-3: a micro-batch without any image ({', '.join(batch.ids[:4])}): under stage 3 every rank "
            "must run the vision tower on every step; leave text-only samples out of the mixture, or use ZeRO-2 / FSDP"
        )
