"""MiniGPT-v2 / SkyEyeGPT ``.pth`` checkpoints ⇄ this toolkit's checkpoint folder.

MiniGPT-v2's checkpoint (Vision-CAIR/MiniGPT-4): ``minigpt4/runners/runner_base.py`` ``_save_checkpoint``
writes ``torch.save({"model": state_dict, "optimizer", "config", "scaler", "epoch"})`` where ``state_dict``
is the model's state dict minus the parameters that do not require a gradient: what remains is
``llama_proj.{weight,bias}`` (``minigpt_v2.py``: ``nn.Linear(4 * 1408, hidden)``, [4096, 5632] for
Llama-2-7B) and the LoRA weights of ``llama_model`` (``base_model.py`` ``init_llm``: peft ``get_peft_model``
with ``r=64``, ``lora_alpha=16``, dropout 0.05 on ``q_proj``/``v_proj``), named
``llama_model.base_model.model.model.layers.N.self_attn.{q,v}_proj.lora_{A,B}.weight`` (peft 0.2, pinned
in ``environment.yml``: no adapter name) or ``...lora_A.default.weight`` (peft ≥ 0.3). Buffers are kept
by that code too: transformers 4.30's Llama rotary ``inv_freq`` (a persistent buffer then) may appear,
and is recomputed from the config, so it is accepted and ignored. Frozen parts (EVA, ``ln_vision``, the
LLM) are not in the file; MiniGPT-v2 loads it with ``load_state_dict(ckpt["model"], strict=False)``.

Import writes::

    OUT/
      adapter/               adapter_config.json + adapter_model.safetensors (peft's file names and keys)
      projector.safetensors  weight, bias (= llama_proj)
      vision/                the EVA tower: config.json (MiniGPT-v2 features) + model.safetensors at image_size
      skyeye_model.json      the model config (llm_path absolute, vision_path "vision"), MiniGPT-v2 modes
      import.json            where it came from: files, LoRA key style, ignored buffers

and refuses — listing every key — a checkpoint with missing, unexpected or mis-shaped weights. Every
``.pth`` is read with ``torch.load(weights_only=True)``: no code from the file runs.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from pathlib import Path

import torch

from skyeye_model.config import ModelConfig
from skyeye_model.eva_minigptv2 import CheckpointMismatch, eva_arguments, load_pth, state_dict_of, write_tower
from skyeye_model.files import atomic_directory
from skyeye_model.model import ADAPTER_DIR, MODEL_CONFIG_FILE, PROJECTOR_FILE

PROJECTOR_KEYS = ("llama_proj.weight", "llama_proj.bias")
LLM_PREFIX = "llama_model."
TARGET_MODULES = ("q_proj", "v_proj")  # minigpt_v2.py: lora_target_modules=["q_proj", "v_proj"]
MINIGPTV2_LORA = {"lora_alpha": 16, "lora_dropout": 0.05}  # minigpt_v2.py defaults (minigptv2_finetune.yaml: r 64, alpha 16)
_LORA_KEY = re.compile(r"^llama_model\.(base_model\.model\.model\.layers\.\d+\.self_attn\.\w+\.lora_[AB])(\.default)?\.weight$")
_IGNORED_BUFFER = re.compile(r"^llama_model\..*rotary_emb\.inv_freq$")
FORMATS = ("minigptv2", "skyeyegpt")  # SkyEyeGPT's release is a MiniGPT-v2 checkpoint of the same architecture


def llm_shapes(llm_config) -> dict:
    text = llm_config.get_text_config() if hasattr(llm_config, "get_text_config") else llm_config
    heads = text.num_attention_heads
    head_dim = getattr(text, "head_dim", None) or text.hidden_size // heads
    kv_heads = getattr(text, "num_key_value_heads", None) or heads
    return {"hidden": text.hidden_size, "layers": text.num_hidden_layers, "q_out": heads * head_dim, "v_out": kv_heads * head_dim}


def expected_keys(shapes: dict, rank: int, vision_dim: int, default_style: bool) -> dict[str, tuple[int, ...]]:
    """MiniGPT-v2's checkpoint key set for an LLM of these shapes (see the module docstring)."""
    suffix = ".default" if default_style else ""
    keys = {"llama_proj.weight": (shapes["hidden"], 4 * vision_dim), "llama_proj.bias": (shapes["hidden"],)}
    for layer in range(shapes["layers"]):
        for module, out in (("q_proj", shapes["q_out"]), ("v_proj", shapes["v_out"])):
            base = f"{LLM_PREFIX}base_model.model.model.layers.{layer}.self_attn.{module}"
            keys[f"{base}.lora_A{suffix}.weight"] = (rank, shapes["hidden"])
            keys[f"{base}.lora_B{suffix}.weight"] = (out, rank)
    return keys


def lora_rank(state: dict[str, torch.Tensor]) -> int:
    """The rank most LoRA A matrices have (the others are then reported as mis-shaped or unexpected)."""
    ranks = Counter(int(v.shape[0]) for k, v in state.items() if ".lora_A" in k and v.ndim == 2)
    if not ranks:
        raise CheckpointMismatch("MiniGPT-v2 checkpoint", ["missing: every LoRA weight (no key with .lora_A)"])
    return ranks.most_common(1)[0][0]


def check_checkpoint(state: dict[str, torch.Tensor], shapes: dict, vision_dim: int) -> tuple[int, bool, list[str]]:
    """(LoRA rank, ``.default`` style, ignored buffer keys); raises ``CheckpointMismatch`` listing every problem."""
    styles = {bool(m.group(2)) for k in state if (m := _LORA_KEY.match(k))}
    if len(styles) > 1:
        raise CheckpointMismatch("MiniGPT-v2 checkpoint", ["LoRA keys both with and without '.default'"])
    default_style = styles.pop() if styles else False
    rank = lora_rank(state)
    expected = expected_keys(shapes, rank, vision_dim, default_style)
    ignored = sorted(k for k in state if k not in expected and _IGNORED_BUFFER.match(k))
    problems = [f"missing: {k} {list(shape)}" for k, shape in expected.items() if k not in state]
    problems += [f"unexpected: {k}" for k in state if k not in expected and k not in ignored]
    problems += [
        f"wrong shape: {k} {list(state[k].shape)}, expected {list(shape)}"
        for k, shape in expected.items()
        if k in state and tuple(state[k].shape) != shape
    ]
    if problems:
        raise CheckpointMismatch("MiniGPT-v2 checkpoint", problems)
    return rank, default_style, ignored


def peft_key(minigpt_key: str) -> str:
    """``llama_model.base_model.model.X.lora_A[.default].weight`` → peft's file key ``base_model.model.X.lora_A.weight``."""
    match = _LORA_KEY.match(minigpt_key)
    return f"{match.group(1)}.weight"


def minigpt_key(peft_file_key: str, default_style: bool) -> str:
    stem = peft_file_key[: -len(".weight")]
    return f"{LLM_PREFIX}{stem}{'.default' if default_style else ''}.weight"


def saved_lora_setting(obj: dict, name: str):
    # the run's config is in the file (runner_base.py: "config": self.config.to_dict())
    config = obj.get("config") if isinstance(obj, dict) else None
    model = config.get("model") if isinstance(config, dict) else None
    return model.get(name) if isinstance(model, dict) else None


def import_minigptv2(
    checkpoint: Path,
    vision: Path,
    llm: Path,
    out: Path,
    image_size: int = 448,
    vision_heads: int | None = None,
    source_format: str = "minigptv2",
    overwrite: bool = False,
) -> Path:
    """Convert a MiniGPT-v2 (or SkyEyeGPT) ``.pth`` + EVA's ``eva_vit_g.pth`` into a checkpoint folder at ``out``."""
    from peft import LoraConfig
    from safetensors.torch import save_file
    from transformers import AutoConfig

    if source_format not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {source_format!r}")
    llm = Path(llm).resolve()
    if not (llm / "config.json").exists():
        raise FileNotFoundError(f"--llm {llm}: no config.json (a transformers folder of Llama-2-7b-chat is expected)")
    shapes = llm_shapes(AutoConfig.from_pretrained(llm))
    vision_state = state_dict_of(load_pth(vision), Path(vision))
    arguments = eva_arguments(vision_state, vision_heads)
    raw = load_pth(checkpoint)
    state = state_dict_of(raw, Path(checkpoint))
    rank, default_style, ignored = check_checkpoint(state, shapes, arguments["embed_dim"])
    alpha = saved_lora_setting(raw, "lora_alpha") or MINIGPTV2_LORA["lora_alpha"]
    with atomic_directory(Path(out), replace=overwrite) as folder:
        write_tower(vision_state, arguments, image_size, folder / "vision")
        adapter = folder / ADAPTER_DIR
        adapter.mkdir()
        lora = {peft_key(k): v.detach().float().contiguous() for k, v in state.items() if _LORA_KEY.match(k)}
        save_file(lora, adapter / "adapter_model.safetensors")
        lora_config = LoraConfig(
            r=rank, lora_alpha=alpha, lora_dropout=MINIGPTV2_LORA["lora_dropout"], target_modules=list(TARGET_MODULES),
            bias="none", task_type="CAUSAL_LM", base_model_name_or_path=str(llm),
        )  # fmt: skip
        lora_config.save_pretrained(str(adapter))
        projector = {"weight": state["llama_proj.weight"].float().contiguous(), "bias": state["llama_proj.bias"].float().contiguous()}
        save_file(projector, folder / PROJECTOR_FILE)
        config = ModelConfig(
            llm_path=llm, vision_path=Path("vision"), vision_type="minigptv2", prompt_style="minigptv2", image_size=image_size,
            tokens_per_group=4, lora_r=rank, lora_alpha=alpha, lora_dropout=MINIGPTV2_LORA["lora_dropout"],
            lora_target_modules=list(TARGET_MODULES),
        )  # fmt: skip
        (folder / MODEL_CONFIG_FILE).write_text(json.dumps(config.model_dump(mode="json"), indent=2) + "\n", encoding="utf-8")
        provenance = {
            "format": source_format,
            "checkpoint": str(Path(checkpoint).resolve()),
            "vision": str(Path(vision).resolve()),
            "llm": str(llm),
            "lora_key_style": "default" if default_style else "plain",
            "ignored_buffers": len(ignored),
            "vision_blocks_used": arguments["depth"],
            "epoch": raw.get("epoch") if isinstance(raw, dict) else None,
        }
        (folder / "import.json").write_text(json.dumps(provenance, indent=2) + "\n", encoding="utf-8")
    return Path(out)


def export_minigptv2(checkpoint_dir: Path, out: Path, default_style: bool | None = None) -> Path:
    """A checkpoint folder → a ``.pth`` that MiniGPT-v2's ``load_state_dict(ckpt["model"], strict=False)`` takes.

    ``default_style``: write ``lora_A.default.weight`` (peft ≥ 0.3) instead of ``lora_A.weight`` (peft 0.2);
    None: the style the folder was imported with, else plain."""
    from safetensors.torch import load_file

    checkpoint_dir = Path(checkpoint_dir)
    if default_style is None:
        provenance = checkpoint_dir / "import.json"
        default_style = provenance.exists() and json.loads(provenance.read_text(encoding="utf-8")).get("lora_key_style") == "default"
    lora = load_file(checkpoint_dir / ADAPTER_DIR / "adapter_model.safetensors")
    projector = load_file(checkpoint_dir / PROJECTOR_FILE)
    state = {"llama_proj.weight": projector["weight"], "llama_proj.bias": projector["bias"]}
    unknown = [k for k in lora if not re.match(r"^base_model\.model\.model\.layers\.\d+\.self_attn\.\w+\.lora_[AB]\.weight$", k)]
    if unknown:
        raise CheckpointMismatch(f"{checkpoint_dir} adapter", [f"not a MiniGPT-v2 LoRA weight: {k}" for k in unknown])
    state |= {minigpt_key(k, default_style): v for k, v in lora.items()}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        torch.save({"model": state}, tmp)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out
