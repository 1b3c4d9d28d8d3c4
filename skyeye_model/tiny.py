"""A tiny random SkyEyeGPT model directory for tests and the demo (``skyeye train make-tiny DIR``).

Writes ``DIR/llm`` (a 2-layer Llama + its tokenizer) and ``DIR/vision`` (a 2-layer CLIP or SigLIP
vision tower with ``save_pretrained``, or a 2-layer EVA-CLIP tower in timm's hub layout), so everything
downstream goes through the same local-folder loading code as real weights. The tokenizer is a BPE trained on the fly on a
small built-in corpus of remote-sensing words, with Llama's SentencePiece-style word-start marker and
the special tokens of the chat template; box tokens ``<0>``..``<100>`` and the task identifiers are
single tokens so tiny models can learn box answers quickly.
"""

from __future__ import annotations

import json
import string
from pathlib import Path

TASK_IDENTIFIERS = ["[caption]", "[vqa]", "[refer]", "[identify]", "[detection]", "[grounding]"]
SPECIAL_TOKENS = ["<unk>", "<s>", "</s>", "<Img>", "<ImageHere>", "</Img>"]
STRUCTURE_TOKENS = ["[INST]", "[/INST]", "<delim>", "<p>", "</p>", "{", "}"]
BOX_TOKENS = [f"<{value}>" for value in range(101)]

CORPUS_WORDS = (
    "a an the this that is are of in on at with and or there some many several few two three four five "
    "image picture photo aerial remote sensing satellite view scene area region describe briefly what how "
    "where which is it rural urban yes no left right upper lower top bottom middle center near next to "
    "airplane airplanes airport runway ship ships harbor port bridge bridges road roads highway river lake "
    "sea beach forest trees tree grass farmland field fields building buildings house houses residential "
    "dense sparse parking lot cars car vehicle vehicles storage tank tanks baseball diamond tennis court "
    "basketball ground track stadium church school industrial commercial mountain desert meadow pond "
    "viaduct overpass dam golf course train station windmill chimney expressway toll container crane "
    "large small big white green gray red blue dark bright round square parallel many located beside "
    "video drone flying over people crowd boat river bank"
).split()


def tiny_corpus() -> list[str]:
    words = CORPUS_WORDS
    lines = [" ".join(words[i : i + 9]) for i in range(0, len(words), 3)]
    lines += [f"{task} {' '.join(words[i:i + 6])}" for i, task in enumerate(TASK_IDENTIFIERS * 8)]
    return lines * 4


def build_tokenizer(vocab_size: int = 480):
    """A Llama-like fast tokenizer: BPE + Metaspace (``▁`` word starts), <s>/</s>/<unk>, image tokens."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tokenizer.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    # Every printable ASCII character is in the alphabet, so no English text maps to <unk>.
    alphabet = [c for c in string.printable if not c.isspace()]
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, initial_alphabet=alphabet, show_progress=False)
    tokenizer.train_from_iterator(tiny_corpus(), trainer=trainer)
    tokenizer.add_tokens([AddedToken(token, normalized=False) for token in STRUCTURE_TOKENS + TASK_IDENTIFIERS + BOX_TOKENS])
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        additional_special_tokens=["<Img>", "<ImageHere>", "</Img>"],
        model_max_length=512,
    )


def vision_config(kind: str, image_size: int, hidden_size: int):
    from transformers import CLIPVisionConfig, SiglipVisionConfig

    shape = dict(
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=image_size,
        patch_size=14,
    )
    if kind == "clip":
        return CLIPVisionConfig(**shape)
    if kind == "siglip":
        return SiglipVisionConfig(**shape)
    raise ValueError(f"tiny vision tower must be clip or siglip, got {kind!r}")


# The paper's EVA-CLIP ViT-g architecture in timm, shrunk; the real tower has the same code and layout.
TINY_EVA_ARCHITECTURE = "eva_giant_patch14_clip_224"


def write_timm_tower(directory: Path, image_size: int, hidden_size: int) -> None:
    """A 2-layer random EVA-CLIP tower in timm's hub layout: ``config.json`` (``architecture``,
    ``model_args``, ``pretrained_cfg``) and ``model.safetensors``, as ``timm.models.push_to_hf_hub`` writes."""
    import timm
    from safetensors.torch import save_file

    model_args = dict(img_size=image_size, depth=2, embed_dim=hidden_size, num_heads=2, mlp_ratio=2.0)
    model = timm.create_model(TINY_EVA_ARCHITECTURE, pretrained=False, num_classes=0, **model_args)
    config = {
        "architecture": TINY_EVA_ARCHITECTURE,
        "num_classes": 0,
        "num_features": model.num_features,
        "model_args": model_args,
        "pretrained_cfg": {
            "input_size": [3, image_size, image_size],
            "mean": list(model.pretrained_cfg["mean"]),
            "std": list(model.pretrained_cfg["std"]),
            "num_classes": 0,
        },
    }
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, directory / "model.safetensors")
    (directory / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")


def write_image_stats(directory: Path, kind: str, image_size: int) -> None:
    # The trainer normalizes with these (the same file real CLIP / SigLIP checkpoints ship).
    mean, std = ([0.5] * 3, [0.5] * 3) if kind == "siglip" else (
        [0.48145466, 0.4578275, 0.40821073],
        [0.26862954, 0.26130258, 0.27577711],
    )
    stats = {"image_mean": mean, "image_std": std, "size": {"height": image_size, "width": image_size}}
    (directory / "preprocessor_config.json").write_text(json.dumps(stats, indent=2) + "\n", encoding="utf-8")


def make_tiny_model(
    directory: Path,
    vision: str = "clip",
    image_size: int = 56,
    llm_hidden: int = 64,
    vision_hidden: int = 32,
    seed: int = 0,
) -> Path:
    """Write ``directory/llm`` and ``directory/vision`` (``vision``: clip, siglip or eva); returns ``directory``."""
    import torch
    from transformers import CLIPVisionModel, LlamaConfig, LlamaForCausalLM, SiglipVisionModel

    from skyeye_model.files import atomic_directory

    if vision not in ("clip", "siglip", "eva"):
        raise ValueError(f"tiny vision tower must be clip, siglip or eva, got {vision!r}")
    directory = Path(directory)
    torch.manual_seed(seed)
    tokenizer = build_tokenizer()
    llm_config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=llm_hidden,
        intermediate_size=llm_hidden * 2,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=1024,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=False,
        # With the default 0.02 the frozen lm_head caps logits near uniform (|logit| ~ 0.02·sqrt(hidden)·||h||):
        # LoRA could barely move the loss. Wider weights let a tiny model show learning within a test.
        initializer_range=0.2,
    )
    with atomic_directory(directory / "llm", replace=True) as llm_dir:
        LlamaForCausalLM(llm_config).save_pretrained(llm_dir)
        tokenizer.save_pretrained(llm_dir)
    with atomic_directory(directory / "vision", replace=True) as vision_dir:
        if vision == "eva":
            write_timm_tower(vision_dir, image_size, vision_hidden)
        else:
            tower_class = CLIPVisionModel if vision == "clip" else SiglipVisionModel
            tower_class(vision_config(vision, image_size, vision_hidden)).save_pretrained(vision_dir)
            write_image_stats(vision_dir, vision, image_size)
    return directory
