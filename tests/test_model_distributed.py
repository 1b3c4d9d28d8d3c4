"""Two processes under torchrun (gloo, CPU): every sample is trained on exactly once per epoch across
ranks and dataloader workers, through the real `skyeye train run` command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import yaml

pytest.importorskip("torch")

from _model_fixtures import make_build_output  # noqa: E402

PROJECT_ROOT = Path(__file__).resolve().parents[1]


# Ports: torchrun --standalone binds its own; accelerate's main_process_port 0 makes accelerate pick one as it
# spawns (accelerate utils/launch.py get_free_port), instead of a port probed here and reused seconds later.


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
    try:
        run = subprocess.run(command, cwd=PROJECT_ROOT, env=environment, capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired as expired:  # what the ranks had printed, so a slow or hung launch can be told apart
        pytest.fail(f"launch timed out after 300 s: {' '.join(command)}\n{output_tail(expired.stdout)}\n{output_tail(expired.stderr)}")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return run.stdout


def output_tail(output: bytes | str | None) -> str:
    # TimeoutExpired carries bytes even under text=True
    return (output.decode(errors="replace") if isinstance(output, bytes) else output or "")[-3000:]


# DeepSpeed's CPU backend JIT-compiles a shared-memory collective op (deepspeed/comm/torch.py build_shm_op →
# ops/op_builder/cpu/comm.py ShareMemCommBuilder, with torch.utils.cpp_extension) in the first process that
# starts it. Its default cache, ~/.cache/torch_extensions/<py>_<torch build>/deepspeed_shm_comm, is shared by
# every checkout, and its build command names the venv's include paths: each run from another checkout's venv
# rebuilt it (8 builds in a day here, up to 5 min each on 2 busy cores: inside a launch's 300 s timeout, the
# DeepSpeed cases' timeouts). So: a cache per venv, and the op built once by a fixture, outside any launch.
TORCH_EXTENSIONS = {"TORCH_EXTENSIONS_DIR": str(Path(sys.prefix) / "torch_extensions"), "DS_ACCELERATOR": "cpu", "CUDA_VISIBLE_DEVICES": ""}


@pytest.fixture(scope="session")
def deepspeed_cpu_ops() -> None:
    build = subprocess.run([sys.executable, "-c", "from deepspeed.comm.torch import build_shm_op; build_shm_op()"],
                           env=os.environ | TORCH_EXTENSIONS, capture_output=True, text=True, timeout=1500)  # fmt: skip
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]


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
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone",
        "-m", "skyeye_data.cli", "train", "run", str(config_file),
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
                "main_process_port": 0,
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
            "main_process_ip": "127.0.0.1", "main_process_port": 0, "use_cpu": False, "gpu_ids": "all",
            "dynamo_config": {"dynamo_backend": "NO"}}  # fmt: skip
    launcher_config.write_text(yaml.safe_dump(base | launcher))
    return [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(launcher_config),
            "-m", "skyeye_data.cli", "train", "run", str(config_file), *extra]  # fmt: skip


def losses(run: Path) -> list[float]:
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
    # ZeRO-3 on CPU: the parameters too (the frozen tower and LLM included) partitioned over the 2 ranks;
    # zero3_init_flag (DeepSpeedPlugin's default for stage 3): transformers loads them partitioned (zero.Init).
    # From a DeepSpeed config file (DEEPSPEED_FILES), its "auto" values filled from the training config.
    "deepspeed-zero3": (
        # no mixed_precision here: accelerate refuses it next to a config file (DeepSpeedPlugin._deepspeed_config_checks)
        {"distributed_type": "DEEPSPEED", "deepspeed_config": {"zero3_init_flag": True}},
        {"grad_accum": 2, "max_steps": 4},
    ),
}  # fmt: skip

DEEPSPEED_FILES = {
    # stage3_param_persistence_threshold 0: every parameter partitioned. DeepSpeed's default (1e5 elements,
    # runtime/zero/config.py) keeps small ones whole on every rank: all of the tiny model's LoRA and projector
    # weights, so a save that forgot to gather them would pass unnoticed.
    "deepspeed-zero3": {
        "zero_optimization": {"stage": 3, "stage3_param_persistence_threshold": 0,
                              "offload_optimizer": {"device": "none"}, "offload_param": {"device": "none"}},
        "train_micro_batch_size_per_gpu": "auto", "train_batch_size": "auto",
        "gradient_accumulation_steps": "auto", "gradient_clipping": "auto",
    },
}  # fmt: skip


@pytest.mark.slow  # three 2-rank launches each (about a minute per launch on 2 busy cores)
@pytest.mark.parametrize("launcher_name", sorted(LAUNCHERS))
def test_accelerate_config_is_honoured_and_resume_gives_the_same_losses(launcher_name, tmp_path, request):
    pytest.importorskip("accelerate")
    if launcher_name.startswith("deepspeed"):
        pytest.importorskip("deepspeed", reason="DeepSpeed is optional (pip install deepspeed)")
        request.getfixturevalue("deepspeed_cpu_ops")
    launcher, overrides = LAUNCHERS[launcher_name]
    if launcher_name in DEEPSPEED_FILES:
        (tmp_path / "deepspeed.json").write_text(json.dumps(DEEPSPEED_FILES[launcher_name]))
        ds_config = launcher["deepspeed_config"] | {"deepspeed_config_file": str(tmp_path / "deepspeed.json")}
        launcher = launcher | {"deepspeed_config": ds_config}
    config_file = write_train_config(tmp_path)
    config = yaml.safe_load(config_file.read_text()) | overrides  # epoch 0 = 5 micro-batches per rank: within max_steps
    stop = config["max_steps"] // 2
    config["save_every"] = stop
    config["model"]["precision"] = "fp32"
    environment = {"HF_HOME": str(tmp_path / "hf-home")} | TORCH_EXTENSIONS
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
    assert_trainable_weights_whole(tmp_path, runs, config["max_steps"])
    # exactly once per epoch across ranks, also across the interruption (epoch 0: 17 samples, one padding item)
    for run in runs.values():
        lines = [line for rank in (0, 1) for line in (run / "sample-ids" / f"rank{rank}-epoch0.txt").read_text().splitlines()]
        trained = Counter(line.split("\t")[0] for line in lines if line.endswith("\t1"))
        assert len(trained) == 17 and set(trained.values()) == {1}


def trainable_tensors(checkpoint: Path) -> dict:
    from safetensors.torch import load_file

    adapter = load_file(checkpoint / "adapter" / "adapter_model.safetensors")
    projector = load_file(checkpoint / "projector.safetensors")
    return {f"adapter/{k}": v for k, v in adapter.items()} | {f"projector/{k}": v for k, v in projector.items()}


def assert_trainable_weights_whole(tmp_path: Path, runs: dict[str, Path], steps: int) -> None:
    """The trainable weights a run saved are whole tensors with the keys and shapes a plain (DDP) run writes:
    under FSDP and ZeRO-3 they are gathered from the shards / partitions. The reference is the unwrapped model's
    own save (what DDP's rank 0 writes: DDP does not change the module); the resumed run ends on the same
    weights as the uninterrupted one, and training moved LoRA's B off its zero init (real values, not placeholders)."""
    import torch

    from skyeye_model.config import load_config
    from skyeye_model.model import build_model, save_trainable_weights

    reference = tmp_path / "reference"
    reference.mkdir()
    save_trainable_weights(build_model(load_config(tmp_path / "whole.yaml").model), reference)
    expected = {key: tuple(value.shape) for key, value in trainable_tensors(reference).items()}
    final = {name: trainable_tensors(run / f"checkpoint-{steps:07d}") for name, run in runs.items()}
    for tensors in final.values():
        assert {key: tuple(value.shape) for key, value in tensors.items()} == expected
    for key, value in final["whole"].items():
        torch.testing.assert_close(final["interrupted"][key], value, rtol=0, atol=1e-5, msg=key)
    assert any(value.abs().max() > 0 for key, value in final["whole"].items() if "lora_B" in key)


expected_line = {
    "bf16+accumulation": "ddp over 2 process(es), mixed precision bf16",
    "fsdp": "fsdp over 2 process(es), mixed precision no",
    "deepspeed-zero2": "deepspeed over 2 process(es), mixed precision no",
    "deepspeed-zero3": "deepspeed over 2 process(es), mixed precision no",
}


def test_a_deepspeed_config_file_with_its_own_precision_is_refused_not_overridden(tmp_path, monkeypatch):
    """The trainer's autocast does mixed precision: a DeepSpeed file asking for bf16 would be silently
    overridden (bf16 disabled in the engine config), so it is an error with the setting to use instead."""
    pytest.importorskip("accelerate")
    pytest.importorskip("deepspeed", reason="DeepSpeed is optional (pip install deepspeed)")
    from skyeye_model.config import load_config
    from skyeye_model.deepspeed_engine import deepspeed_config

    config = load_config(write_train_config(tmp_path))
    ds_file = tmp_path / "deepspeed.json"
    monkeypatch.setenv("ACCELERATE_DEEPSPEED_CONFIG_FILE", str(ds_file))
    ds_file.write_text(json.dumps({"zero_optimization": {"stage": 3}, "bf16": {"enabled": "auto"}, "gradient_clipping": "auto"}))
    filled = deepspeed_config(config, world_size=2)
    assert filled["bf16"] == {"enabled": False} and filled["train_batch_size"] == 2 * 1 * 2
    assert filled["gradient_clipping"] == config.optim.max_grad_norm
    ds_file.write_text(json.dumps({"zero_optimization": {"stage": 3}, "bf16": {"enabled": True}}))
    with pytest.raises(ValueError, match="enables bf16.*mixed_precision"):
        deepspeed_config(config, world_size=2)
