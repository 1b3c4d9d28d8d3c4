"""Training throughput of SkyEyeGPT for a model built from a config (random weights, nothing downloaded).

Measures, for forward + backward + AdamW step on the real model code (``SkyEyeGPT``: frozen tower →
projector → LoRA Llama): tokens/s, samples/s, MFU and peak memory, with packing off and on (the same
samples), on the device present.

    python benchmarks/train_bench.py                    # tiny config on CPU (seconds)
    python benchmarks/train_bench.py --preset 7b --device cuda --precision bf16 --batch-size 4

Presets: ``tiny`` (2-layer Llama width 64, 2-block EVA width 88 at 56 px) and ``7b`` (Llama-2-7B's
config: 32 layers, 4096 wide, 11008 MLP, 32000 vocab; EVA ViT-g as MiniGPT-v2 builds it: 39 blocks, 1408
wide, 16 heads, at 448 px; LoRA r 64 on q/v). Samples are synthetic: 256 image tokens per image and a
text length drawn like short VQA / captions / long dialogs (``--text-tokens``).

MFU = achieved model FLOP/s ÷ ``--peak-tflops`` (default: 989 for an H100/H200 bf16 dense, or what
``--peak-tflops`` says; on CPU it is reported against that number too, so read it as relative). Model
FLOPs per token: 6·N_llm for the LLM (2 forward + 4 backward, the frozen weights still backpropagate the
activations to the LoRA and the projector), + 2·N_vit per image patch for the frozen tower (forward only).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PRESETS = {
    "tiny": {"llm": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4, vocab_size=512),
             "vit": dict(embed_dim=88, depth=2, num_heads=1, mlp_ratio=4.3637, patch_size=14), "image_size": 56},
    "7b": {"llm": dict(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=32, vocab_size=32000),
           "vit": dict(embed_dim=1408, depth=39, num_heads=16, mlp_ratio=4.3637, patch_size=14), "image_size": 448},
}  # fmt: skip


def write_model(folder: Path, preset: dict) -> tuple[Path, Path]:
    """A random Llama + tokenizer (the tiny one's) and a random MiniGPT-v2 EVA tower, written to ``folder``."""
    from transformers import LlamaConfig

    from skyeye_model.eva_minigptv2 import build_encoder, write_tower
    from skyeye_model.tiny import build_tokenizer

    tokenizer = build_tokenizer()
    llm_dir = folder / "llm"
    config = LlamaConfig(**{**preset["llm"], "vocab_size": max(preset["llm"]["vocab_size"], len(tokenizer))}, max_position_embeddings=4096,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)  # fmt: skip
    config.save_pretrained(llm_dir)  # the config only: the LLM's weights are created on the device by build()
    tokenizer.save_pretrained(llm_dir)
    vit = dict(preset["vit"])
    state = build_encoder(vit, preset["image_size"]).state_dict()
    write_tower(state, {**vit, "source_image_size": preset["image_size"]}, preset["image_size"], folder / "vision")
    return llm_dir, folder / "vision"


def build(preset_name: str, device: torch.device, precision: str, folder: Path):
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from skyeye_model.config import ModelConfig
    from skyeye_model.model import SkyEyeGPT, VisionTower, lora_config, torch_dtype

    preset = PRESETS[preset_name]
    llm_dir, vision_dir = write_model(folder, preset)
    config = ModelConfig(llm_path=llm_dir, vision_path=vision_dir, image_size=preset["image_size"], precision=precision, lora_r=64)
    dtype = torch_dtype(precision)
    with torch.device(device):  # weights created where they run: no full copy on the host first
        from transformers import AutoConfig

        llm = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(llm_dir), dtype=dtype)
    llm.requires_grad_(False)
    vision = VisionTower(vision_dir, "auto", preset["image_size"], dtype).to(device)
    model = SkyEyeGPT(config, vision, get_peft_model(llm, lora_config(config)), AutoTokenizer.from_pretrained(llm_dir)).to(device)
    return model


def synthetic_samples(model, count: int, text_tokens: list[int], seed: int = 0):
    from skyeye_model.data import EncodedSample
    from skyeye_model.template import IGNORE_INDEX

    g = torch.Generator().manual_seed(seed)
    size, vocab = model.config.image_size, model.llm.config.vocab_size
    samples = []
    for k in range(count):
        text = text_tokens[k % len(text_tokens)]
        ids = torch.randint(3, vocab, (1 + model.tokens_per_image + text,), generator=g)
        labels = ids.clone()
        labels[: 1 + model.tokens_per_image + text // 2] = IGNORE_INDEX  # the second half of the text is the answer
        mask = torch.zeros(len(ids), dtype=torch.bool)
        mask[1 : 1 + model.tokens_per_image] = True
        pixels = torch.randint(0, 256, (1, size, size, 3), dtype=torch.uint8, generator=g)
        samples.append(EncodedSample(f"s{k}", "bench", ids, labels, mask, pixels))
    return samples


def parameter_counts(model) -> tuple[int, int]:
    llm = sum(p.numel() for n, p in model.llm.named_parameters() if "lora_" not in n)
    vit = sum(p.numel() for p in model.vision.parameters())
    return llm, vit


def measure(model, batches, device, steps: int, warmup: int, peak_tflops: float) -> dict:
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=model.config.precision == "bf16")
    llm_params, vit_params = parameter_counts(model)
    patches = model.vision.num_patches()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    tokens = samples = images = 0
    started = None
    for step in range(warmup + steps):
        if step == warmup:
            if device.type == "cuda":
                torch.cuda.synchronize()
            started, tokens, samples, images = time.perf_counter(), 0, 0, 0
        batch = batches[step % len(batches)].to(device)
        with autocast:
            loss, _ = model(batch)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        tokens += int(batch.attention_mask.sum())
        samples += len(batch.ids)
        images += int(batch.pixel_values.shape[0])
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    flops = 6 * llm_params * tokens + 2 * vit_params * patches * images
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else peak_rss_gib()
    return {
        "tokens_per_s": tokens / seconds,
        "samples_per_s": samples / seconds,
        "mfu": flops / seconds / (peak_tflops * 1e12),
        "peak_memory_gib": peak,
        "padded_tokens_per_s": sum(b.input_ids.numel() for b in batches[:steps]) / seconds if steps <= len(batches) else None,
    }


def peak_rss_gib() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # Linux: KiB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="tiny")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default=None, help="default: bf16 where supported, else fp32")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--text-tokens", type=int, nargs="+", default=[24, 48, 96, 400], help="text lengths cycled through the samples")
    parser.add_argument("--peak-tflops", type=float, default=989.0, help="the device's dense peak, for MFU")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    from skyeye_model.collate import Collator, PackingCollator
    from skyeye_model.model import pad_id

    device = torch.device(args.device)
    precision = args.precision or ("bf16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "fp32")
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as folder:
        model = build(args.preset, device, precision, Path(folder))
        model.train()
        samples = synthetic_samples(model, args.batch_size * (args.steps + args.warmup), args.text_tokens)
        groups = [samples[i : i + args.batch_size] for i in range(0, len(samples), args.batch_size)]
        results = {}
        for name, collate in (("padded", Collator(pad_id(model.tokenizer))), ("packed", PackingCollator(pad_id(model.tokenizer)))):
            batches = [collate(g) for g in groups]
            results[name] = measure(model, batches, device, args.steps, args.warmup, args.peak_tflops)
    print(f"preset {args.preset}, device {device}, precision {precision}, batch {args.batch_size}, text tokens {args.text_tokens}")
    print(f"{'':8} {'tokens/s':>12} {'samples/s':>10} {'MFU':>8} {'peak GiB':>9}")
    for name, r in results.items():
        print(f"{name:8} {r['tokens_per_s']:12,.0f} {r['samples_per_s']:10.2f} {r['mfu']:8.1e} {r['peak_memory_gib']:9.2f}")
    if args.json:
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "precision": precision, "results": results}, indent=2))


if __name__ == "__main__":
    main()
