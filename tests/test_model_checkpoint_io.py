"""The one dispatch point of the trainer's checkpoints (``checkpoint.optimizer_checkpoint``): a torch
optimizer is wrapped, DeepSpeed's partitioned one is taken as it is, anything else is an error
rather than a checkpoint written without its optimizer state."""

from __future__ import annotations

import pytest
import torch

from skyeye_model.checkpoint import OptimizerCheckpoint, TorchOptimizerCheckpoint, optimizer_checkpoint
from skyeye_model.deepspeed_engine import DeepSpeedOptimizer


def test_a_torch_optimizer_is_wrapped_and_its_state_round_trips(tmp_path):
    layer = torch.nn.Linear(3, 2)
    optimizer = torch.optim.AdamW(layer.parameters(), lr=0.1)
    layer(torch.ones(1, 3)).sum().backward()
    optimizer.step()
    wrapped = optimizer_checkpoint(optimizer, sharded=True)
    assert isinstance(wrapped, TorchOptimizerCheckpoint) and wrapped.sharded
    wrapped.save_to(tmp_path, rank=1)  # sharded: every rank writes its own file
    assert (tmp_path / "optimizer-rank1.safetensors").is_file() and not (tmp_path / "optimizer.json").exists()
    optimizer_checkpoint(optimizer).save_to(tmp_path, rank=1)  # not sharded: rank 0 only
    assert not (tmp_path / "optimizer.safetensors").exists()
    optimizer_checkpoint(optimizer).save_to(tmp_path, rank=0)
    fresh = torch.optim.AdamW(torch.nn.Linear(3, 2).parameters(), lr=0.1)
    optimizer_checkpoint(fresh).load_from(tmp_path, rank=0)
    assert torch.equal(fresh.state_dict()["state"][0]["exp_avg"], optimizer.state_dict()["state"][0]["exp_avg"])


def test_deepspeeds_optimizer_is_its_own_checkpoint_and_others_are_refused():
    deepspeed = DeepSpeedOptimizer(engine=None, optimizer=None)
    assert isinstance(deepspeed, OptimizerCheckpoint) and optimizer_checkpoint(deepspeed) is deepspeed
    with pytest.raises(TypeError, match="neither a torch optimizer"):
        optimizer_checkpoint(object())
