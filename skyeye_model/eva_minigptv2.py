"""MiniGPT-v2's EVA ViT-g image features, on timm's EVA code, and its ``eva_vit_g.pth`` weight layout.

What MiniGPT-v2 computes (Vision-CAIR/MiniGPT-4):

- ``minigpt4/models/eva_vit.py`` ``create_eva_vit_g``: a ViT with ``patch_size=14``, ``embed_dim=1408``,
  ``depth=39``, ``num_heads=1408//88``, ``mlp_ratio=4.3637``, ``qkv_bias=True`` (q and v biases, k none),
  LayerNorm eps 1e-6, no layer scale, no relative position bias. ``eva_vit_g.pth`` holds 40 blocks; the
  state dict is loaded with ``strict=False``, so block 39 is dropped. ``forward_features`` ends after the
  blocks: the final ``norm`` is commented out.
- same file, ``interpolate_pos_embed``: the checkpoint's 16x16 position grid (224 px) is resampled to the
  model's grid with ``F.interpolate(mode="bicubic", align_corners=False)`` in float32; the CLS position
  is kept as is.
- ``minigpt4/models/base_model.py`` ``init_vision_encoder``: ``ln_vision = LayerNorm(num_features)``, a
  fresh ``nn.LayerNorm`` (weight 1, bias 0, eps 1e-5, computed in float32), frozen; the runner never
  saves frozen parameters (``runner_base.py`` ``_save_checkpoint``), so it always stays unit-affine.
- ``minigpt4/models/minigpt_v2.py`` ``encode_img``: ``ln_vision(visual_encoder(image))[:, 1:, :]``: the
  CLS token is dropped after the LayerNorm, then 4 consecutive tokens are concatenated for ``llama_proj``.
- ``minigpt4/processors/blip_processors.py`` ``Blip2Image{Train,Eval}Processor``: ``Resize((448, 448),
  BICUBIC)`` (no crop, aspect ratio not kept), ``ToTensor``, ``Normalize`` with OpenAI-CLIP's mean/std.

timm's ``Eva`` (``eva_giant_patch14_clip_224``) has the same blocks and the same parameter names
(``blocks.N.attn.qkv.weight``, ``attn.q_bias``/``v_bias``, ``mlp.fc1``...), so a MiniGPT-4 layout loads
into it unchanged; here timm's final ``norm`` is replaced by the identity and the unit LayerNorm is applied
after it. MiniGPT-v2 runs the tower in fp16 on GPU (``vit_precision: fp16``): that is a precision choice
(``model.precision``), not a different function.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

EVA_ARCHITECTURE = "eva_giant_patch14_clip_224"
FEATURES_KEY = "skyeye_features"  # in the tower's config.json: which feature recipe the weights expect
MINIGPTV2_FEATURES = "minigptv2"
EVA_PTH_NAMES = ("eva_vit_g.pth",)
OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
LN_VISION_EPS = 1e-5  # torch.nn.LayerNorm's default, as base_model.py builds ln_vision
HEAD_DIM = 88  # eva_vit.py: num_heads = 1408 // 88
_BLOCK_KEY = re.compile(r"^blocks\.(\d+)\.")
# keys MiniGPT-4's loader ignores (strict=False) and a timm-converted file may carry: final norm, heads
_IGNORED_PREFIXES = ("norm.", "fc_norm.", "head.", "lm_head.", "rel_pos_bias.")


class CheckpointMismatch(ValueError):
    """A weight file whose keys or shapes do not fit the expected model; ``problems`` lists them."""

    def __init__(self, what: str, problems: list[str]):
        self.problems = problems
        shown = "\n  ".join(problems[:40]) + (f"\n  ... and {len(problems) - 40} more" if len(problems) > 40 else "")
        super().__init__(f"{what}: {len(problems)} key problem(s):\n  {shown}")


def load_pth(path: Path) -> dict:
    """A ``.pth`` file read without unpickling code (``weights_only=True``), memory-mapped.

    ``mmap=True``: the tensors are views of the file's pages (copy-on-write), so every rank of a run
    shares one copy through the page cache instead of reading the whole file into its own memory
    (eva_vit_g.pth: ~2 GB). Files in torch's legacy (pre-1.6, not zip) format cannot be mapped and are
    read whole."""
    try:
        try:
            return torch.load(Path(path), map_location="cpu", weights_only=True, mmap=True)
        except (RuntimeError, ValueError) as error:
            if "mmap" not in str(error):  # only the legacy-format refusal falls back to a plain read
                raise
            return torch.load(Path(path), map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises UnpicklingError (and others) for files needing code to load
        raise ValueError(f"{path}: not loadable with torch.load(weights_only=True): {error}") from error


def state_dict_of(obj: dict, path: Path) -> dict[str, torch.Tensor]:
    for key in ("model", "state_dict", "module"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(f"{path}: expected a state dict of tensors (optionally under 'model')")
    return obj


def eva_arguments(state: dict[str, torch.Tensor], num_heads: int | None = None, drop_last_block: bool = True) -> dict:
    """timm ``Eva`` constructor arguments read from a MiniGPT-4-layout state dict's shapes.

    ``drop_last_block``: MiniGPT-v2 builds ``depth=39`` on the 40-block ``eva_vit_g.pth`` (eva_vit.py)."""
    for required in ("cls_token", "pos_embed", "patch_embed.proj.weight", "blocks.0.mlp.fc1.weight"):
        if required not in state:
            raise CheckpointMismatch("EVA weights", [f"missing: {required}"])
    embed_dim = int(state["cls_token"].shape[-1])
    patch = int(state["patch_embed.proj.weight"].shape[-1])
    blocks = 1 + max(int(m.group(1)) for k in state if (m := _BLOCK_KEY.match(k)))
    hidden = int(state["blocks.0.mlp.fc1.weight"].shape[0])
    grid = math.isqrt(int(state["pos_embed"].shape[1]) - 1)
    heads = num_heads or max(1, embed_dim // HEAD_DIM)
    if embed_dim % heads:
        raise ValueError(f"embed_dim {embed_dim} is not divisible into {heads} heads; pass the head count")
    return {
        "patch_size": patch,
        "embed_dim": embed_dim,
        "depth": blocks - 1 if drop_last_block and blocks > 1 else blocks,
        "num_heads": heads,
        # timm computes int(dim * mlp_ratio); the epsilon keeps float rounding from losing one unit
        "mlp_ratio": hidden / embed_dim + 1e-9,
        "source_image_size": grid * patch,
    }


def interpolate_pos_embed(pos_embed: torch.Tensor, grid: int) -> torch.Tensor:
    """eva_vit.py ``interpolate_pos_embed``: bicubic, align_corners=False, float32; CLS position kept."""
    pos_embed = pos_embed.float()
    old = math.isqrt(pos_embed.shape[1] - 1)
    if old == grid:
        return pos_embed
    extra, tokens = pos_embed[:, :1], pos_embed[:, 1:]
    tokens = tokens.reshape(-1, old, old, pos_embed.shape[-1]).permute(0, 3, 1, 2)
    tokens = F.interpolate(tokens, size=(grid, grid), mode="bicubic", align_corners=False)
    return torch.cat((extra, tokens.permute(0, 2, 3, 1).flatten(1, 2)), dim=1)


def build_encoder(arguments: dict, image_size: int, dtype: torch.dtype = torch.float32) -> nn.Module:
    import timm

    model_args = {k: v for k, v in arguments.items() if k != "source_image_size"}
    encoder = timm.create_model(EVA_ARCHITECTURE, pretrained=False, num_classes=0, img_size=image_size, **model_args)
    encoder.norm = nn.Identity()  # eva_vit.py: forward_features ends after the blocks
    return encoder.to(dtype)


def check_keys(encoder: nn.Module, state: dict[str, torch.Tensor], what: str) -> dict[str, torch.Tensor]:
    """The subset of ``state`` the encoder takes; missing or mis-shaped keys are an error, as are unknown ones.

    Blocks past the encoder's depth and a final norm / head are expected extras (MiniGPT-4 drops them)."""
    expected = encoder.state_dict()
    depth = len(encoder.blocks)
    problems, kept = [], {}
    for key, value in state.items():
        block = _BLOCK_KEY.match(key)
        if (block and int(block.group(1)) >= depth) or key.startswith(_IGNORED_PREFIXES):
            continue
        if key not in expected:
            problems.append(f"unexpected: {key}")
        elif key != "pos_embed" and tuple(value.shape) != tuple(expected[key].shape):
            problems.append(f"wrong shape: {key} {tuple(value.shape)}, expected {tuple(expected[key].shape)}")
        else:
            kept[key] = value
    problems += [f"missing: {key}" for key in expected if key not in state]
    if problems:
        raise CheckpointMismatch(what, problems)
    return kept


def load_encoder(state: dict[str, torch.Tensor], arguments: dict, image_size: int, dtype: torch.dtype, what: str) -> nn.Module:
    """The encoder holding ``state``'s own tensors (``assign=True``): built with its parameters on the meta
    device (no random init, no second copy), so weights from a memory-mapped file stay file-backed when
    they are already in ``dtype``. Buffers (attention's zero ``k_bias``, not in the file) are real."""
    from accelerate import init_empty_weights

    with init_empty_weights(include_buffers=False):
        encoder = build_encoder(arguments, image_size)
    kept = check_keys(encoder, state, what)
    kept["pos_embed"] = interpolate_pos_embed(kept["pos_embed"], image_size // arguments["patch_size"])
    if tuple(kept["pos_embed"].shape) != tuple(encoder.pos_embed.shape):
        raise CheckpointMismatch(what, [f"wrong shape: pos_embed {tuple(kept['pos_embed'].shape)}"])
    encoder.load_state_dict(kept, strict=True, assign=True)
    return encoder.to(dtype)


def ln_vision(tokens: torch.Tensor) -> torch.Tensor:
    """base_model.py's ``ln_vision``: LayerNorm with weight 1, bias 0, eps 1e-5, in float32."""
    return F.layer_norm(tokens.float(), (tokens.shape[-1],), eps=LN_VISION_EPS).to(tokens.dtype)


def minigptv2_features(encoder: nn.Module, pixels: torch.Tensor) -> torch.Tensor:
    """Normalized pixels ``[B, 3, S, S]`` → ``ln_vision(visual_encoder(x))[:, 1:]`` (minigpt_v2.py encode_img)."""
    return ln_vision(encoder.forward_features(pixels))[:, 1:]


def find_eva_pth(path: Path) -> Path | None:
    """``path`` itself if it is a ``.pth`` file, else a known EVA file in the folder, else None."""
    path = Path(path)
    if path.is_file() and path.suffix == ".pth":
        return path
    return next((path / name for name in EVA_PTH_NAMES if (path / name).is_file()), None)


def write_tower(state: dict[str, torch.Tensor], arguments: dict, image_size: int, directory: Path) -> None:
    """A tower folder (``config.json`` + ``model.safetensors``) with the position grid already at ``image_size``."""
    from safetensors.torch import save_file

    encoder = load_encoder(state, arguments, image_size, torch.float32, "EVA weights")
    directory.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().contiguous() for k, v in encoder.state_dict().items()}, directory / "model.safetensors")
    model_args = {k: v for k, v in arguments.items() if k != "source_image_size"} | {"img_size": image_size}
    config = {
        "architecture": EVA_ARCHITECTURE,
        "num_classes": 0,
        "model_args": model_args,
        FEATURES_KEY: MINIGPTV2_FEATURES,
        "source_image_size": arguments.get("source_image_size"),
        "pretrained_cfg": {"input_size": [3, image_size, image_size], "mean": list(OPENAI_CLIP_MEAN), "std": list(OPENAI_CLIP_STD), "num_classes": 0},
    }
    (directory / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")


def is_minigptv2_tower(path: Path) -> bool:
    path = Path(path)
    if find_eva_pth(path) is not None and not (path / "config.json").exists():
        return True
    config_file = path / "config.json"
    return config_file.exists() and json.loads(config_file.read_text(encoding="utf-8")).get(FEATURES_KEY) == MINIGPTV2_FEATURES


def open_tower(path: Path, image_size: int, dtype: torch.dtype) -> nn.Module:
    """A MiniGPT-v2 EVA encoder from a converted folder or straight from an ``eva_vit_g.pth`` (file or folder)."""
    path = Path(path)
    pth = find_eva_pth(path)
    if pth is not None and not (path.is_dir() and (path / "config.json").exists()):
        state = state_dict_of(load_pth(pth), pth)
        return load_encoder(state, eva_arguments(state), image_size, dtype, str(pth))
    from safetensors.torch import load_file

    config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    arguments = {k: v for k, v in config["model_args"].items() if k != "img_size"}
    return load_encoder(load_file(path / "model.safetensors"), arguments, image_size, dtype, str(path / "model.safetensors"))
