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
optimizer state; frozen weights left out). DeepSpeed writes and reads those with ``torch.save`` /
``torch.load`` (pickles): resume only from checkpoints your own runs wrote.

ZeRO stage 2 is tested on CPU (``DS_ACCELERATOR=cpu``, gloo; ``tests/test_model_distributed.py``). Stage 3
(parameters partitioned) is refused: the trainer reads and saves the trainable weights whole, which under
stage 3 needs ``GatheredParameters`` around every such access; use FSDP to shard the frozen LLM.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from skyeye_model.config import TrainConfig

CHECKPOINT_FOLDER = "deepspeed"
SUPPORTED_STAGES = (0, 1, 2)


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
        raise ValueError(
            f"DeepSpeed ZeRO stage {stage} from the accelerate config is not supported here: stage 3 partitions the "
            "trainable weights the trainer reads whole; use stage 2, or FSDP (distributed_type: FSDP) to shard the frozen LLM"
        )
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
    ds["bf16"] = {"enabled": False}  # the trainer's autocast does mixed precision (see the module docstring)
    ds["fp16"] = {"enabled": False}
    ds["zero_allow_untested_optimizer"] = True  # torch's AdamW, as under DDP/FSDP
    ds.setdefault("steps_per_print", 1 << 30)
    return ds


def start_engine(model: nn.Module, optimizer: torch.optim.Optimizer, config: TrainConfig, world_size: int):
    """``deepspeed.initialize`` over the (already built, already on its device) model and the trainer's AdamW."""
    import deepspeed

    engine, wrapped, _, _ = deepspeed.initialize(model=model, optimizer=optimizer, config=deepspeed_config(config, world_size))
    return engine, DeepSpeedOptimizer(engine, wrapped)


class DeepSpeedOptimizer:
    """What the trainer's checkpoint code needs of an optimizer, for DeepSpeed's partitioned one."""

    def __init__(self, engine, optimizer):
        self.engine = engine
        self.optimizer = optimizer

    @property
    def param_groups(self):
        return self.optimizer.param_groups

    def save_to(self, directory: Path, rank: int) -> None:  # noqa: ARG002 -- every rank writes its own partition
        self.engine.save_checkpoint(str(directory / CHECKPOINT_FOLDER), tag="state", save_latest=False, exclude_frozen_parameters=True)

    def load_from(self, directory: Path, rank: int) -> None:  # noqa: ARG002
        path = directory / CHECKPOINT_FOLDER
        if not (path / "state").is_dir():
            raise FileNotFoundError(f"{path}/state is missing: this checkpoint was not written under DeepSpeed")
        # the weights were loaded before the engine started (load_trainable_weights); the schedule is the trainer's
        self.engine.load_checkpoint(str(path), tag="state", load_module_strict=False, load_lr_scheduler_states=False)
