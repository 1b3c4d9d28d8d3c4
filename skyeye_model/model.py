"""SkyEyeGPT: a frozen vision tower, a linear projector over groups of 4 patch tokens, a causal LM with LoRA.

    image (uint8, 448x448) → normalize → vision tower (frozen) → patch tokens (CLS dropped if any)
    → 4 consecutive tokens concatenated → nn.Linear(4·C_vision, H_llm) (trainable)
    → written into the LLM's input embeddings at the <ImageHere> positions → LLM (frozen, LoRA trainable)

Every part is loaded from a local directory with ``from_pretrained``: CLIP and SigLIP towers through
transformers (SigLIP has no CLS token; CLIP's is dropped), EVA-CLIP through timm (a directory in
timm's hub layout: ``config.json`` with an ``architecture`` key and ``model_args``, and
``model.safetensors``, memory-mapped into a model built on the meta device: ``timm_tower``; timm's
prefix tokens are dropped). Towers trained at another resolution get
their position embeddings interpolated to ``image_size``.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from skyeye_model import eva_minigptv2, timm_tower
from skyeye_model.collate import Batch
from skyeye_model.config import ModelConfig
from skyeye_model.strategy import full_tensor
from skyeye_model.template import IGNORE_INDEX, ChatTemplate, resolve_style, sentencepiece_model

OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
MODEL_CONFIG_FILE = "skyeye_model.json"
PROJECTOR_FILE = "projector.safetensors"
ADAPTER_DIR = "adapter"


def resolved_precision(precision: str) -> str:
    """``auto``: bf16 where the device supports it (a CUDA GPU with bf16), else fp32."""
    if precision != "auto":
        return precision
    return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "fp32"


def torch_dtype(precision: str) -> torch.dtype:
    return torch.bfloat16 if resolved_precision(precision) == "bf16" else torch.float32


def read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def detect_vision_type(path: Path) -> str:
    if eva_minigptv2.is_minigptv2_tower(path):  # imported MiniGPT-v2 / SkyEyeGPT tower, or eva_vit_g.pth itself
        return "minigptv2"
    config = read_json(Path(path) / "config.json")
    if not config:
        raise FileNotFoundError(f"{path} has no config.json: not a vision tower directory")
    model_type = config.get("model_type", "")
    if model_type.startswith("clip"):
        return "clip"
    if model_type.startswith("siglip"):
        return "siglip"
    if "architecture" in config:  # timm's hub layout
        return "timm"
    raise ValueError(f"cannot tell the vision tower type of {path} (model_type={model_type!r}); set model.vision_type")


class VisionTower(nn.Module):
    """A frozen image encoder returning patch tokens ``[B, N, C]`` without CLS / prefix tokens."""

    def __init__(self, path: Path, kind: str, image_size: int, dtype: torch.dtype, device: torch.device | None = None):
        super().__init__()
        self.kind = detect_vision_type(path) if kind == "auto" else kind
        self.image_size = image_size
        stats = read_json(Path(path) / "preprocessor_config.json")
        if self.kind == "minigptv2":  # blip_processors.py: OpenAI-CLIP's mean/std, whatever the folder says
            stats = {"image_mean": OPENAI_CLIP_MEAN, "image_std": OPENAI_CLIP_STD}
        elif self.kind == "timm":  # timm keeps them in config.json's pretrained_cfg
            timm_cfg = read_json(Path(path) / "config.json").get("pretrained_cfg", {})
            stats = {"image_mean": timm_cfg.get("mean", OPENAI_CLIP_MEAN), "image_std": timm_cfg.get("std", OPENAI_CLIP_STD), **stats}
        default_mean, default_std = ((0.5,) * 3, (0.5,) * 3) if self.kind == "siglip" else (OPENAI_CLIP_MEAN, OPENAI_CLIP_STD)
        self.register_buffer("mean", torch.tensor(stats.get("image_mean", default_mean)).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(stats.get("image_std", default_std)).view(1, 3, 1, 1), persistent=False)
        if self.kind == "minigptv2":
            self.encoder = eva_minigptv2.open_tower(Path(path), image_size, dtype)
            self.hidden_size, self.prefix_tokens, self.interpolate = self.encoder.num_features, 0, False  # CLS dropped in the features
        elif self.kind == "timm":
            self._load_timm(Path(path), dtype)
        else:
            self._load_transformers(Path(path), dtype, device)
        self.encoder.requires_grad_(False)
        self.encoder.eval()

    def _load_transformers(self, path: Path, dtype: torch.dtype, device: torch.device | None) -> None:
        from transformers import CLIPVisionModel, SiglipVisionModel

        tower_class = CLIPVisionModel if self.kind == "clip" else SiglipVisionModel
        self.encoder = tower_class.from_pretrained(path, dtype=dtype, **device_placement(device))
        self.hidden_size = self.encoder.config.hidden_size
        self.prefix_tokens = 1 if self.kind == "clip" else 0  # SigLIP has no CLS token
        self.interpolate = self.encoder.config.image_size != self.image_size

    def _load_timm(self, path: Path, dtype: torch.dtype) -> None:
        # built on the meta device and given the file's memory-mapped tensors (see timm_tower)
        self.encoder = timm_tower.open_timm_tower(path, self.image_size, dtype)
        self.hidden_size = self.encoder.num_features
        self.prefix_tokens = self.encoder.num_prefix_tokens  # CLS (+ register tokens), dropped in forward
        self.interpolate = False

    def train(self, mode: bool = True) -> "VisionTower":
        super().train(mode)
        self.encoder.eval()  # frozen: no dropout, whatever the rest of the model does
        return self

    def num_patches(self) -> int:
        patch = self.encoder.config.patch_size if self.kind in ("clip", "siglip") else self.encoder.patch_embed.patch_size[0]
        return (self.image_size // patch) ** 2

    @torch.no_grad()
    def forward(self, pixels_uint8: torch.Tensor) -> torch.Tensor:
        """uint8 ``[B, S, S, 3]`` (channels last, as decoded) → patch tokens ``[B, N, C]``."""
        dtype = next(self.encoder.parameters()).dtype
        # Scaling and the channels-first copy happen here, on the accelerator, not in the data workers.
        pixels = ((pixels_uint8.permute(0, 3, 1, 2).float() / 255.0 - self.mean) / self.std).to(dtype)
        if self.kind == "minigptv2":
            tokens = eva_minigptv2.minigptv2_features(self.encoder, pixels)
        elif self.kind == "timm":
            tokens = self.encoder.forward_features(pixels)
        else:
            tokens = self.encoder(pixel_values=pixels, interpolate_pos_encoding=self.interpolate).last_hidden_state
        return tokens[:, self.prefix_tokens :]


def group_patches(tokens: torch.Tensor, group: int) -> torch.Tensor:
    """``[B, N, C]`` → ``[B, N/group, group·C]``: each run of ``group`` consecutive tokens concatenated."""
    batch, count, channels = tokens.shape
    if count % group:
        raise ValueError(f"{count} patch tokens cannot be grouped by {group}")
    return tokens.reshape(batch, count // group, group * channels)


def device_placement(device: torch.device | None) -> dict:
    """``from_pretrained`` arguments that keep a full copy of the weights out of every rank's host memory.

    transformers 5 builds the model on the meta device and fills it from the checkpoint (no random init,
    no second copy). On a GPU, ``device_map`` puts each tensor straight onto the rank's device. On the CPU,
    safetensors weights of the stored dtype stay memory-mapped views of the file, so the ranks share the
    page cache instead of holding a copy each (``tests/test_model_loading.py``)."""
    return {"device_map": {"": str(device)}} if device is not None and device.type == "cuda" else {}


def load_llm(path: Path, dtype: torch.dtype, device: torch.device | None = None):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    llm = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, **device_placement(device))
    tokenizer = AutoTokenizer.from_pretrained(path)
    return llm, tokenizer


def lora_config(config: ModelConfig):
    from peft import LoraConfig

    return LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=list(config.lora_target_modules),
        bias="none",
        task_type="CAUSAL_LM",
    )


class SkyEyeGPT(nn.Module):
    def __init__(self, config: ModelConfig, vision: VisionTower, llm, tokenizer):
        super().__init__()
        self.config = config
        self.vision = vision
        self.llm = llm
        self.tokenizer = tokenizer
        self.projector = nn.Linear(vision.hidden_size * config.tokens_per_group, llm.config.get_text_config().hidden_size)
        self.tokens_per_image = vision.num_patches() // config.tokens_per_group

    @property
    def prompt_style(self) -> str:
        return resolve_style(self.config.prompt_style, self.vision.kind)

    def chat_template(self, training: bool = True) -> ChatTemplate:
        """This model's prompt template; ``training`` applies the config's length caps (generation has none)."""
        c = self.config
        caps = dict(max_length=c.max_length, max_txt_len=c.max_txt_len, max_context_len=c.max_context_len) if training else {}
        style = self.prompt_style
        return ChatTemplate(self.tokenizer, self.tokens_per_image, style=style, sp_model=sentencepiece_model(c.llm_path, style), **caps)

    def trainable_state(self) -> dict[str, torch.Tensor]:
        return {name: p for name, p in self.named_parameters() if p.requires_grad}

    def image_embeddings(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """uint8 images ``[I, S, S, 3]`` → ``[I · tokens_per_image, H]`` LLM-space embeddings."""
        patches = self.vision(pixel_values)
        grouped = group_patches(patches, self.config.tokens_per_group)
        return self.projector(grouped.to(self.projector.weight.dtype)).flatten(0, 1)

    def input_embeddings(self, batch: Batch) -> torch.Tensor:
        embed = self.llm.get_input_embeddings()
        embeddings = embed(batch.input_ids)
        if batch.pixel_values.shape[0]:
            images = self.image_embeddings(batch.pixel_values).to(embeddings.dtype)
            if images.shape[0] != int(batch.image_mask.sum()):
                raise ValueError(f"{images.shape[0]} image embeddings for {int(batch.image_mask.sum())} image positions")
            # Out-of-place, so autograd reaches the projector through the scattered rows.
            embeddings = embeddings.masked_scatter(batch.image_mask.unsqueeze(-1), images)
        return embeddings

    def logits(self, batch: Batch) -> torch.Tensor:
        if batch.position_ids is not None:  # packed rows: no 2-D mask, so transformers masks per sample (collate.py)
            output = self.llm(inputs_embeds=self.input_embeddings(batch), position_ids=batch.position_ids, use_cache=False)
        else:
            output = self.llm(inputs_embeds=self.input_embeddings(batch), attention_mask=batch.attention_mask, use_cache=False)
        return output.logits

    def forward(self, batch: Batch) -> tuple[torch.Tensor, int]:
        """Mean next-token loss over the supervised tokens of the batch, and their count.

        A batch without any supervised token (only padding items) returns a zero loss that still
        touches every trainable weight, so DDP's gradient all-reduce sees the same graph on all ranks.
        """
        logits = self.logits(batch)
        targets = batch.labels[:, 1:]
        flat_logits = logits[:, :-1].flatten(0, 1).float()
        total = F.cross_entropy(flat_logits, targets.flatten(), ignore_index=IGNORE_INDEX, reduction="sum")
        count = int((targets != IGNORE_INDEX).sum())
        loss = total / count if count else logits.sum() * 0.0
        if not batch.pixel_values.shape[0]:  # text-only batch: the projector must still be in the graph
            loss = loss + sum(p.sum() for p in self.projector.parameters()) * 0.0
        return loss, count

    @torch.no_grad()
    def generate(self, batch: Batch, max_new_tokens: int = 64) -> list[str]:
        """Greedy answers for a left-padded batch of prompts."""
        output = self.llm.generate(
            inputs_embeds=self.input_embeddings(batch),
            attention_mask=batch.attention_mask,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            num_beams=1,
            eos_token_id=self.tokenizer.eos_token_id,
            pad_token_id=pad_id(self.tokenizer),
        )
        return [text.strip() for text in self.tokenizer.batch_decode(output, skip_special_tokens=True)]


def pad_id(tokenizer) -> int:
    # Llama-2 has no pad token; padded positions are masked out, any id will do.
    for candidate in (tokenizer.pad_token_id, tokenizer.unk_token_id, tokenizer.eos_token_id):
        if candidate is not None:
            return candidate
    return 0


def enable_activation_checkpointing(llm) -> None:
    # Non-reentrant: correct with a frozen embedding layer and under DDP. transformers 5 renamed the method.
    if hasattr(llm, "activation_checkpointing_enable"):
        llm.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    else:
        llm.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})


def require_folders(config: ModelConfig) -> None:
    for name, path in (("llm_path", config.llm_path), ("vision_path", config.vision_path)):
        if name == "vision_path" and Path(path).suffix == ".pth" and Path(path).is_file():
            continue  # MiniGPT-4's eva_vit_g.pth, read directly
        if not Path(path).is_dir():
            hint = " (is SKYEYE_WEIGHTS set?)" if "$" in str(path) else ""
            raise FileNotFoundError(f"model.{name}: {path} is not a folder{hint}; weights load from local folders only")


def build_model(config: ModelConfig, init_adapter: Path | None = None, device: torch.device | None = None) -> SkyEyeGPT:
    """A trainable model from the base weights; ``init_adapter`` (a checkpoint) seeds LoRA + projector."""
    from peft import get_peft_model

    require_folders(config)
    dtype = torch_dtype(config.precision)
    vision = VisionTower(config.vision_path, config.vision_type, config.image_size, dtype, device)
    llm, tokenizer = load_llm(config.llm_path, dtype, device)
    llm.requires_grad_(False)
    if config.gradient_checkpointing:
        enable_activation_checkpointing(llm)
    model = SkyEyeGPT(config, vision, get_peft_model(llm, lora_config(config)), tokenizer)
    if init_adapter is not None:
        load_trainable_weights(model, Path(init_adapter))
    return model


def load_trainable_weights(model: SkyEyeGPT, checkpoint: Path) -> None:
    """LoRA (peft's adapter file) and projector weights from a checkpoint into ``model``."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    adapter_file = checkpoint / ADAPTER_DIR / "adapter_model.safetensors"
    projector_file = checkpoint / PROJECTOR_FILE
    for required in (adapter_file, projector_file):
        if not required.exists():
            raise FileNotFoundError(f"{required} is missing: {checkpoint} is not a SkyEye checkpoint")
    result = set_peft_model_state_dict(model.llm, load_file(adapter_file))
    if getattr(result, "unexpected_keys", None):
        raise ValueError(f"{adapter_file}: adapter weights that fit no LoRA layer: {result.unexpected_keys[:5]}")
    # peft loads with strict=False: a LoRA layer absent from the file would silently keep its initial values
    missing = [key for key in getattr(result, "missing_keys", []) if ".lora_" in key]
    if missing:
        raise ValueError(f"{adapter_file}: {len(missing)} LoRA weights missing, e.g. {missing[:5]}")
    model.projector.load_state_dict(load_file(projector_file))


def gather_trainable(model: SkyEyeGPT) -> dict[str, torch.Tensor]:
    """Every trainable tensor, whole, on the CPU (FSDP shards gathered: every rank must call this)."""
    return {name: full_tensor(p.detach()).cpu().contiguous() for name, p in model.named_parameters() if p.requires_grad}


def save_trainable_weights(model: SkyEyeGPT, directory: Path, trainable: dict[str, torch.Tensor] | None = None) -> None:
    """Write ``adapter/`` (peft's file names and keys), ``projector.safetensors`` and ``skyeye_model.json``.

    ``trainable``: from ``gather_trainable`` (default: gathered here, single process)."""
    from safetensors.torch import save_file

    trainable = gather_trainable(model) if trainable is None else trainable
    adapter = {}
    for name, tensor in trainable.items():
        if name.startswith("llm.") and ".lora_" in name:  # peft's file keys: no "llm." root, no adapter name
            adapter[name[len("llm.") :].replace(".default.weight", ".weight")] = tensor
    (directory / ADAPTER_DIR).mkdir(parents=True, exist_ok=True)
    save_file(adapter, directory / ADAPTER_DIR / "adapter_model.safetensors")
    model.llm.peft_config["default"].save_pretrained(str(directory / ADAPTER_DIR))
    save_file({k: trainable[f"projector.{k}"] for k in ("weight", "bias")}, directory / PROJECTOR_FILE)
    description = model.config.model_dump(mode="json")
    # the base weights as absolute paths: a relative path meant "from where training ran", while a
    # checkpoint's relative paths are read from the checkpoint folder (as in merged models)
    for key in ("llm_path", "vision_path"):
        description[key] = str(Path(description[key]).resolve())
    (directory / MODEL_CONFIG_FILE).write_text(json.dumps(description, indent=2) + "\n", encoding="utf-8")


def load_trained_model(directory: Path, precision: str | None = None) -> SkyEyeGPT:
    """A checkpoint or merged-model directory → a model ready for generation (eval mode).

    The base weights are found through the paths recorded in ``skyeye_model.json`` (relative paths
    are taken relative to ``directory``, as in merged models).
    """
    directory = Path(directory)
    if directory.name == ADAPTER_DIR and (directory.parent / MODEL_CONFIG_FILE).exists():
        directory = directory.parent  # given the checkpoint's adapter/ subfolder: the checkpoint is meant
    raw = read_json(directory / MODEL_CONFIG_FILE)
    if not raw:
        raise FileNotFoundError(f"{directory / MODEL_CONFIG_FILE} is missing: not a SkyEye checkpoint or merged model")
    for key in ("llm_path", "vision_path"):
        if not Path(raw[key]).is_absolute():
            raw[key] = str(directory / raw[key])
    if precision:
        raw["precision"] = precision
    config = ModelConfig.model_validate(raw)
    config.gradient_checkpointing = False
    if (directory / ADAPTER_DIR).exists():
        model = build_model(config, init_adapter=directory)
    else:  # a merged model: LoRA already folded into the LLM
        from safetensors.torch import load_file

        dtype = torch_dtype(config.precision)
        vision = VisionTower(config.vision_path, config.vision_type, config.image_size, dtype)
        llm, tokenizer = load_llm(config.llm_path, dtype)
        model = SkyEyeGPT(config, vision, llm, tokenizer)
        model.projector.load_state_dict(load_file(directory / PROJECTOR_FILE))
    model.requires_grad_(False)
    return model.eval()
