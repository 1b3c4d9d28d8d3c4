"""Tiny build outputs (samples, images, eval shards) written to the docs/ARCHITECTURE.md contract,
and the tiny model directories, for the tests of ``skyeye_model``."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """``skyeye train make-tiny``'s model (2-layer Llama + BPE tokenizer, 2-layer CLIP at 56 px)."""
    from skyeye_model.tiny import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(scope="session")
def tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir / "llm")


THREE_TURN_DIALOG = [
    {"role": "user", "content": "[caption] Briefly describe this image."},
    {"role": "assistant", "content": "many airplanes near the runway"},
    {"role": "user", "content": "[vqa] Is it a rural or an urban area"},
    {"role": "assistant", "content": "urban"},
    {"role": "user", "content": "[refer] the small bridge"},
    {"role": "assistant", "content": "{<23><12><80><40>}"},
]

CAPTIONS = ["airplanes at the airport", "a river near green trees", "dense residential buildings", "ships in the harbor"]
COLORS = [(200, 30, 30), (30, 160, 40), (40, 40, 200), (220, 200, 40)]

SAMPLE_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("source", pa.string()),
        ("task", pa.string()),
        ("split", pa.string()),
        ("image_ids", pa.list_(pa.string())),
        ("conversation", pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))),
        ("review_status", pa.string()),
        ("provenance", pa.string()),
    ]
)
IMAGE_SCHEMA = pa.schema(
    [("image_id", pa.string()), ("bytes", pa.binary()), ("format", pa.string()), ("width", pa.int32()), ("height", pa.int32())]
)


def png_bytes(color: tuple[int, int, int], size: tuple[int, int] = (64, 48), mark: int = 0) -> bytes:
    from PIL import Image, ImageDraw

    image = Image.new("RGB", size, color)
    ImageDraw.Draw(image).rectangle([mark % 40, 5, mark % 40 + 10, 20], fill=(255, 255, 255))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def write_images(root: Path, images: list[bytes], row_group_size: int = 4) -> list[str]:
    ids = [hashlib.sha256(b).hexdigest() for b in images]
    table = pa.table(
        {"image_id": ids, "bytes": images, "format": ["png"] * len(ids), "width": [64] * len(ids), "height": [48] * len(ids)},
        schema=IMAGE_SCHEMA,
    )
    (root / "images").mkdir(parents=True, exist_ok=True)
    pq.write_table(table, root / "images" / "images-00000.parquet", row_group_size=row_group_size)
    return ids


def sample_row(sample_id: str, source: str, task: str, image_ids: list[str], conversation: list[dict], status="auto") -> dict:
    return {
        "id": sample_id,
        "source": source,
        "task": task,
        "split": "train",
        "image_ids": image_ids,
        "conversation": conversation,
        "review_status": status,
        "provenance": json.dumps({"records": [sample_id]}),
    }


def write_shards(folder: Path, prefix: str, rows: list[dict], shards: int = 2, row_group_size: int = 3, schema=SAMPLE_SCHEMA) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    per_shard = -(-len(rows) // shards)
    for number in range(shards):
        part = rows[number * per_shard : (number + 1) * per_shard]
        name = f"{prefix}-{number:05d}-of-{shards:05d}.parquet"
        pq.write_table(pa.Table.from_pylist(part, schema=schema), folder / name, row_group_size=row_group_size)


def make_build_output(root: Path, count: int = 16) -> Path:
    """A tiny `skyeye build` output: captions from two sources, a 3-turn Conversa sample, a 3-frame video,
    a rejected sample (must be skipped), an eval shard."""
    images = [png_bytes(COLORS[i % 4], mark=i) for i in range(count)] + [png_bytes((90, 90, 90), mark=k * 7) for k in range(3)]
    ids = write_images(root, images)
    rows = []
    for i in range(count):
        source = "rsicd" if i % 2 == 0 else "ucm_captions"
        conversation = [{"role": "user", "content": "[caption] Briefly describe this image."}, {"role": "assistant", "content": CAPTIONS[i % 4]}]
        rows.append(sample_row(f"{source}-{i:04d}", source, "caption", [ids[i]], conversation))
    rows.append(sample_row("ucm_conversa-0000", "ucm_conversa", "conversation", [ids[0]], THREE_TURN_DIALOG))
    video_conversation = [{"role": "user", "content": "[caption] Briefly describe this video."}, {"role": "assistant", "content": "a drone flying over people"}]
    rows.append(sample_row("capera-0000", "capera", "caption", ids[count:], video_conversation))
    rows.append(sample_row("rsicd-rejected", "rsicd", "caption", [ids[1]], video_conversation, status="rejected"))
    write_shards(root / "samples", "train", rows)
    write_eval_shard(root, ids)
    return root


EVAL_SCHEMA = pa.schema(
    list(SAMPLE_SCHEMA)
    + [
        ("references", pa.list_(pa.string())),
        ("ref_boxes", pa.list_(pa.list_(pa.float64()))),
        ("question_type", pa.string()),
        ("subset", pa.string()),
        ("width", pa.int32()),
        ("height", pa.int32()),
    ]
)


def write_eval_shard(root: Path, ids: list[str]) -> None:
    rows = []
    for i in range(5):
        refer = i % 2 == 1
        conversation = [
            {"role": "user", "content": "[refer] the white square" if refer else "[caption] Briefly describe this image."},
            {"role": "assistant", "content": "{<10><10><30><40>}" if refer else CAPTIONS[i % 4]},
        ]
        row = sample_row(f"eval-{i}", "dior_rsvg" if refer else "rsicd", "refer" if refer else "caption", [ids[i]], conversation)
        row.update(
            split="test",
            references=[conversation[1]["content"]],
            ref_boxes=[[6.4, 4.8, 19.2, 19.2]] if refer else [],
            question_type=None,
            subset=None,
            width=64,
            height=48,
        )
        rows.append(row)
    (root / "eval").mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=EVAL_SCHEMA), root / "eval" / "mixed-test-00000.parquet", row_group_size=2)


def tiny_config(model_dir: Path, data_root: Path, output_dir: Path, **overrides) -> "TrainConfig":
    from skyeye_model.config import TrainConfig

    raw = {
        "model": {"llm_path": str(model_dir / "llm"), "vision_path": str(model_dir / "vision"), "image_size": 56, "max_length": 128},
        "data": {"root": str(data_root), "num_workers": 0},
        "optim": {"lr": 2e-3, "warmup_steps": 2, "weight_decay": 0.05},
        "output_dir": str(output_dir),
        "batch_size": 4,
        "epochs": 1,
        "save_every": 1000,
        "seed": 7,
    }
    for dotted, value in overrides.items():
        node = raw
        *parents, leaf = dotted.split("__")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return TrainConfig.model_validate(raw)


# -- MiniGPT-v2 layouts (Vision-CAIR/MiniGPT-4), for the import / feature / prompt tests ---------------

SP_CORPUS = [
    "[INST] <Img><ImageHere></Img> [caption] briefly describe this image  [/INST]",
    "<s>[INST] [vqa] is it a rural or an urban area  [/INST] urban</s>",
    "[refer] the small bridge {<23><12><80><40>} [identify] [detection] [grounding]",
    "many airplanes near the runway of the airport, ships in the harbor and a river near green trees",
    "dense residential buildings beside a road; a drone flying over people near the river bank",
]


def write_sentencepiece_llm(directory: Path, hidden: int = 64, layers: int = 2, heads: int = 4, kv_heads: int = 2) -> Path:
    """A tiny Llama-2-style LLM folder whose tokenizer is a real SentencePiece BPE model (``tokenizer.model``)
    with Llama's settings (identity normalisation, dummy ``▁`` prefix, whitespace kept, byte fallback,
    ``<unk>`` 0, ``<s>`` 1, ``</s>`` 2), trained here; transformers converts it as it would Llama-2's."""
    import sentencepiece
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    directory.mkdir(parents=True, exist_ok=True)
    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(SP_CORPUS * 40), model_writer=model, vocab_size=420, model_type="bpe", minloglevel=2,
        normalization_rule_name="identity", add_dummy_prefix=True, remove_extra_whitespaces=False, byte_fallback=True,
        unk_id=0, bos_id=1, eos_id=2, pad_id=-1, character_coverage=1.0, split_digits=True,
    )  # fmt: skip
    (directory / "tokenizer.model").write_bytes(model.getvalue())
    config = {"tokenizer_class": "LlamaTokenizer", "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>",
              "add_bos_token": True, "add_eos_token": False, "legacy": False, "model_max_length": 4096}  # fmt: skip
    (directory / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
    torch.manual_seed(0)
    llm_config = LlamaConfig(
        vocab_size=420, hidden_size=hidden, intermediate_size=hidden * 2, num_hidden_layers=layers, num_attention_heads=heads,
        num_key_value_heads=kv_heads, max_position_embeddings=1024, bos_token_id=1, eos_token_id=2, tie_word_embeddings=False,
    )  # fmt: skip
    LlamaForCausalLM(llm_config).save_pretrained(directory)
    return directory


def minigpt4_eva_state(embed_dim: int = 32, blocks: int = 3, grid: int = 4, seed: int = 0) -> dict:
    """Random weights under MiniGPT-4's ``eva_vit.py`` ``VisionTransformer`` names and shapes (patch 14,
    ``mlp_ratio=4.3637``, q/v biases), with ``blocks`` blocks (eva_vit_g.pth: 40) and a ``grid``² position grid."""
    import torch

    g = torch.Generator().manual_seed(seed)
    hidden = int(embed_dim * 4.3637)  # eva_vit.py Block: mlp_hidden_dim = int(dim * mlp_ratio)

    def rand(*shape, scale=0.1, base=0.0):
        return base + scale * torch.randn(*shape, generator=g)

    state = {
        "cls_token": rand(1, 1, embed_dim, scale=0.5),
        "pos_embed": rand(1, grid * grid + 1, embed_dim, scale=0.5),
        "patch_embed.proj.weight": rand(embed_dim, 3, 14, 14, scale=0.02),
        "patch_embed.proj.bias": rand(embed_dim),
    }
    for i in range(blocks):
        p = f"blocks.{i}."
        state |= {
            p + "norm1.weight": rand(embed_dim, base=1.0), p + "norm1.bias": rand(embed_dim),
            p + "attn.q_bias": rand(embed_dim), p + "attn.v_bias": rand(embed_dim),
            p + "attn.qkv.weight": rand(3 * embed_dim, embed_dim, scale=0.2),
            p + "attn.proj.weight": rand(embed_dim, embed_dim, scale=0.2), p + "attn.proj.bias": rand(embed_dim),
            p + "norm2.weight": rand(embed_dim, base=1.0), p + "norm2.bias": rand(embed_dim),
            p + "mlp.fc1.weight": rand(hidden, embed_dim, scale=0.2), p + "mlp.fc1.bias": rand(hidden),
            p + "mlp.fc2.weight": rand(embed_dim, hidden, scale=0.2), p + "mlp.fc2.bias": rand(embed_dim),
        }  # fmt: skip
    return state


def minigptv2_checkpoint_state(hidden: int, layers: int, q_out: int, v_out: int, vision_dim: int, rank: int = 8,
                               default_style: bool = False, seed: int = 1) -> dict:  # fmt: skip
    """``torch.load(ckpt)["model"]`` of a MiniGPT-v2 run (runner_base.py ``_save_checkpoint``: trainable
    parameters + buffers): ``llama_proj`` and the q/v LoRA of every layer, peft 0.2 names or ``.default`` ones,
    plus transformers 4.30's persistent rotary ``inv_freq`` buffers."""
    import torch

    g = torch.Generator().manual_seed(seed)
    suffix = ".default" if default_style else ""
    state = {"llama_proj.weight": torch.randn(hidden, 4 * vision_dim, generator=g) * 0.05, "llama_proj.bias": torch.randn(hidden, generator=g) * 0.05}
    for layer in range(layers):
        base = f"llama_model.base_model.model.model.layers.{layer}.self_attn"
        for module, out in (("q_proj", q_out), ("v_proj", v_out)):
            state[f"{base}.{module}.lora_A{suffix}.weight"] = torch.randn(rank, hidden, generator=g) * 0.1
            state[f"{base}.{module}.lora_B{suffix}.weight"] = torch.randn(out, rank, generator=g) * 0.1
        state[f"{base}.rotary_emb.inv_freq"] = torch.ones(hidden // 8)
    return state
