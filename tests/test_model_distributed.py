"""Two processes under torchrun (gloo, CPU): every sample is trained on exactly once per epoch across
ranks and dataloader workers, through the real `skyeye train run` command."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import yaml

pytest.importorskip("torch")

from _model_fixtures import make_build_output  # noqa: E402

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def write_train_config(tmp_path: Path) -> Path:
    from skyeye_model.tiny import make_tiny_model

    model_dir = make_tiny_model(tmp_path / "model")
    data_root = make_build_output(tmp_path / "build")
    config = {
        "model": {"llm_path": str(model_dir / "llm"), "vision_path": str(model_dir / "vision"), "image_size": 56, "max_length": 128},
        # capera left out: 17 samples over 2 ranks, so one rank gets a weight-0 padding item
        "data": {"root": str(data_root), "num_workers": 2, "mixture": {"capera": 0}},
        "optim": {"lr": 1e-3, "warmup_steps": 1},
        "output_dir": str(tmp_path / "run"),
        "batch_size": 2,
        "epochs": 1,
        "record_sample_ids": True,
    }
    config_file = tmp_path / "ddp.yaml"
    config_file.write_text(yaml.safe_dump(config))
    return config_file


def run_launcher(command: list[str], extra_env: dict[str, str] | None = None) -> str:
    environment = os.environ | {"HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(PROJECT_ROOT)} | (extra_env or {})
    run = subprocess.run(command, cwd=PROJECT_ROOT, env=environment, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return run.stdout


def assert_each_sample_trained_once(tmp_path: Path) -> None:
    lines = {rank: (tmp_path / "run" / "sample-ids" / f"rank{rank}-epoch0.txt").read_text().splitlines() for rank in (0, 1)}
    assert len(lines[0]) == len(lines[1]) == 9  # ranks in lock-step
    trained = Counter(line.split("\t")[0] for rank in (0, 1) for line in lines[rank] if line.endswith("\t1"))
    padding = [line for rank in (0, 1) for line in lines[rank] if line.endswith("\t0")]
    expected = {f"rsicd-{i:04d}" for i in range(0, 16, 2)} | {f"ucm_captions-{i:04d}" for i in range(1, 16, 2)} | {"ucm_conversa-0000"}
    assert set(trained) == expected and set(trained.values()) == {1}
    assert len(padding) == 1
    checkpoints = list((tmp_path / "run").glob("checkpoint-*"))
    assert len(checkpoints) == 1 and (checkpoints[0] / "rng-rank1.safetensors").exists()


def test_two_ranks_see_each_sample_exactly_once(tmp_path):
    config_file = write_train_config(tmp_path)
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
        "--master_port", str(free_port()), "-m", "skyeye_data.cli", "train", "run", str(config_file),
    ]  # fmt: skip
    run_launcher(command)
    assert_each_sample_trained_once(tmp_path)


def test_accelerate_launch_two_ranks_see_each_sample_exactly_once(tmp_path):
    """The documented `accelerate launch --multi_gpu` command, on CPU. Not `--cpu`: with `--cpu` and no
    MPI hostfile, accelerate starts ONE process without WORLD_SIZE (its multi-CPU mode needs mpirun).
    `--multi_gpu` hands over to torch.distributed.run, which works without GPUs; the trainer then
    picks gloo. The launcher config is written here and HF_HOME points into tmp_path, so no
    ~/.cache/huggingface/accelerate/default_config.yaml is read."""
    pytest.importorskip("accelerate")
    config_file = write_train_config(tmp_path)
    launcher_config = tmp_path / "accelerate.yaml"
    launcher_config.write_text(
        yaml.safe_dump(
            {
                "compute_environment": "LOCAL_MACHINE",
                "distributed_type": "MULTI_GPU",
                "num_processes": 2,
                "num_machines": 1,
                "machine_rank": 0,
                "main_process_ip": "127.0.0.1",
                "main_process_port": free_port(),
                "mixed_precision": "no",
                "dynamo_config": {"dynamo_backend": "NO"},
                "use_cpu": False,
                "gpu_ids": "all",
            }
        )
    )
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(launcher_config),
        "--multi_gpu", "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
        "-m", "skyeye_data.cli", "train", "run", str(config_file),
    ]  # fmt: skip
    run_launcher(command, {"HF_HOME": str(tmp_path / "hf-home"), "CUDA_VISIBLE_DEVICES": ""})
    assert_each_sample_trained_once(tmp_path)


# -- accelerate configs honoured: bf16 + accumulation, FSDP; exact resume, exactly once -----------------


def accelerate_command(tmp_path: Path, launcher: dict, config_file: Path, *extra: str) -> list[str]:
    launcher_config = tmp_path / "accelerate.yaml"
    base = {"compute_environment": "LOCAL_MACHINE", "num_processes": 2, "num_machines": 1, "machine_rank": 0,
            "main_process_ip": "127.0.0.1", "main_process_port": free_port(), "use_cpu": False, "gpu_ids": "all",
            "dynamo_config": {"dynamo_backend": "NO"}}  # fmt: skip
    launcher_config.write_text(yaml.safe_dump(base | launcher))
    return [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(launcher_config),
            "-m", "skyeye_data.cli", "train", "run", str(config_file), *extra]  # fmt: skip


def losses(run: Path) -> list[float]:
    import json

    return [json.loads(line)["loss"] for line in (run / "losses.jsonl").read_text().splitlines()]


LAUNCHERS = {
    # mixed precision from the accelerate config (the training config says fp32), 2 micro-batches per step
    "bf16+accumulation": ({"distributed_type": "MULTI_GPU", "mixed_precision": "bf16"}, {"grad_accum": 2, "max_steps": 4}),
    "fsdp": (
        {"distributed_type": "FSDP", "mixed_precision": "no", "fsdp_config": {
            "fsdp_version": 2, "fsdp_auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
            "fsdp_transformer_layer_cls_to_wrap": "LlamaDecoderLayer", "fsdp_state_dict_type": "FULL_STATE_DICT",
            "fsdp_reshard_after_forward": True}},
        {"grad_accum": 1, "max_steps": 6},
    ),
    # ZeRO-2 on CPU (DS_ACCELERATOR=cpu, gloo): optimizer state and gradients partitioned over the 2 ranks
    "deepspeed-zero2": (
        {"distributed_type": "DEEPSPEED", "mixed_precision": "no", "deepspeed_config": {
            "zero_stage": 2, "gradient_accumulation_steps": 2, "gradient_clipping": 1.0,
            "offload_optimizer_device": "none", "offload_param_device": "none", "zero3_init_flag": False}},
        {"grad_accum": 2, "max_steps": 4},
    ),
}  # fmt: skip


@pytest.mark.slow  # three 2-rank launches each (about a minute per launch on 2 busy cores)
@pytest.mark.parametrize("launcher_name", sorted(LAUNCHERS))
def test_accelerate_config_is_honoured_and_resume_gives_the_same_losses(launcher_name, tmp_path):
    pytest.importorskip("accelerate")
    if launcher_name.startswith("deepspeed"):
        pytest.importorskip("deepspeed", reason="DeepSpeed is optional (pip install deepspeed)")
    launcher, overrides = LAUNCHERS[launcher_name]
    config_file = write_train_config(tmp_path)
    config = yaml.safe_load(config_file.read_text()) | overrides  # epoch 0 = 5 micro-batches per rank: within max_steps
    stop = config["max_steps"] // 2
    config["save_every"] = stop
    config["model"]["precision"] = "fp32"
    environment = {"HF_HOME": str(tmp_path / "hf-home"), "CUDA_VISIBLE_DEVICES": "", "DS_ACCELERATOR": "cpu"}
    runs = {}
    for name in ("whole", "interrupted"):
        config["output_dir"] = str(tmp_path / name)
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(config))
        runs[name] = tmp_path / name
    output = run_launcher(accelerate_command(tmp_path, launcher, tmp_path / "whole.yaml"), environment)
    # the accelerate config, not the training config (fp32, no FSDP), decides; the trainer says so before step 1
    assert expected_line[launcher_name] in output, output
    run_launcher(accelerate_command(tmp_path, launcher, tmp_path / "interrupted.yaml", "--stop-after", str(stop)), environment)
    assert len(losses(runs["interrupted"])) == stop
    if launcher_name == "fsdp":  # each rank wrote its own shard of the optimizer state
        assert (runs["interrupted"] / f"checkpoint-{stop:07d}" / "optimizer-rank1.safetensors").exists()
    if launcher_name.startswith("deepspeed"):  # each rank's ZeRO partition, by DeepSpeed's own checkpointing
        state = runs["interrupted"] / f"checkpoint-{stop:07d}" / "deepspeed" / "state"
        assert sorted(p.name for p in state.glob("*optim_states.pt")) == [f"zero_pp_rank_{r}_mp_rank_00_optim_states.pt" for r in (0, 1)]
    run_launcher(accelerate_command(tmp_path, launcher, tmp_path / "interrupted.yaml", "--resume"), environment)
    whole, resumed = losses(runs["whole"]), losses(runs["interrupted"])
    assert len(whole) == len(resumed) == config["max_steps"]
    assert max(abs(a - b) for a, b in zip(whole, resumed)) < 1e-5, (whole, resumed)
    # exactly once per epoch across ranks, also across the interruption (epoch 0: 17 samples, one padding item)
    for run in runs.values():
        lines = [line for rank in (0, 1) for line in (run / "sample-ids" / f"rank{rank}-epoch0.txt").read_text().splitlines()]
        trained = Counter(line.split("\t")[0] for line in lines if line.endswith("\t1"))
        assert len(trained) == 17 and set(trained.values()) == {1}


expected_line = {
    "bf16+accumulation": "ddp over 2 process(es), mixed precision bf16",
    "fsdp": "fsdp over 2 process(es), mixed precision no",
    "deepspeed-zero2": "deepspeed over 2 process(es), mixed precision no",
}
