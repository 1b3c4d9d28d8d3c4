"""MiniGPT-v2 / SkyEyeGPT checkpoints, features and prompts, against MiniGPT-v2's own code
(Vision-CAIR/MiniGPT-4), reimplemented here independently of skyeye_model from the files cited."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
torch = pytest.importorskip("torch")
pytest.importorskip("timm")
pytest.importorskip("sentencepiece")

from _model_fixtures import (  # noqa: E402
    THREE_TURN_DIALOG,
    minigpt4_eva_state,
    minigptv2_checkpoint_state,
    png_bytes,
    write_sentencepiece_llm,
)
from torch.nn import functional as F  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from skyeye_data.cli import app  # noqa: E402

HIDDEN, LAYERS, HEADS, KV_HEADS = 64, 2, 4, 2
Q_OUT, V_OUT = HIDDEN, KV_HEADS * HIDDEN // HEADS
EVA_DIM, EVA_BLOCKS, EVA_HEADS, EVA_GRID = 176, 3, 2, 4  # 3 blocks, MiniGPT-v2 uses all but the last; 176 // 88 = 2 heads
IMAGE_SIZE = 112  # 8x8 patches: the 4x4 position grid is interpolated as eva_vit.py does
TOKENS_PER_IMAGE = (IMAGE_SIZE // 14) ** 2 // 4
OPENAI_MEAN = torch.tensor((0.48145466, 0.4578275, 0.40821073)).view(1, 3, 1, 1)  # blip_processors.py
OPENAI_STD = torch.tensor((0.26862954, 0.26130258, 0.27577711)).view(1, 3, 1, 1)


@pytest.fixture(scope="module")
def llm_dir(tmp_path_factory) -> Path:
    return write_sentencepiece_llm(tmp_path_factory.mktemp("llama-sp"), HIDDEN, LAYERS, HEADS, KV_HEADS)


@pytest.fixture(scope="module")
def eva_pth(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("eva") / "eva_vit_g.pth"
    torch.save(minigpt4_eva_state(EVA_DIM, EVA_BLOCKS, EVA_GRID), path)
    return path


def write_checkpoint(path: Path, default_style: bool, drop: str | None = None, reshape: str | None = None, extra: str | None = None) -> dict:
    state = minigptv2_checkpoint_state(HIDDEN, LAYERS, Q_OUT, V_OUT, EVA_DIM, default_style=default_style)
    if drop:
        del state[drop]
    if reshape:
        state[reshape] = torch.zeros(3, 3)
    if extra:
        state[extra] = torch.zeros(2)
    # what runner_base.py _save_checkpoint writes around the weights
    torch.save({"model": state, "optimizer": {"state": {}, "param_groups": []}, "config": {"model": {"lora_alpha": 16}}, "epoch": 3}, path)
    return state


def run_import(checkpoint: Path, eva_pth: Path, llm_dir: Path, out: Path):
    command = ["train", "import", "minigptv2", "--checkpoint", str(checkpoint), "--vision", str(eva_pth), "--llm", str(llm_dir),
               "--out", str(out), "--image-size", str(IMAGE_SIZE), "--vision-heads", str(EVA_HEADS)]  # fmt: skip
    return CliRunner().invoke(app, command)


@pytest.fixture(scope="module", params=["plain", "default"])
def imported(request, tmp_path_factory, llm_dir, eva_pth):
    """Both LoRA key styles: peft 0.2's ``lora_A.weight`` (MiniGPT-v2's pin) and later peft's ``lora_A.default.weight``."""
    folder = tmp_path_factory.mktemp(f"import-{request.param}")
    state = write_checkpoint(folder / "checkpoint.pth", default_style=request.param == "default")
    result = run_import(folder / "checkpoint.pth", eva_pth, llm_dir, folder / "out")
    assert result.exit_code == 0, result.output
    return folder / "out", state, request.param


# -- import / export ---------------------------------------------------------------------------


def test_import_copies_the_projector_and_every_lora_tensor(imported):
    from safetensors.torch import load_file

    from skyeye_model.model import load_trained_model

    out, state, style = imported
    projector = load_file(out / "projector.safetensors")
    assert torch.equal(projector["weight"], state["llama_proj.weight"]) and torch.equal(projector["bias"], state["llama_proj.bias"])
    model = load_trained_model(out)
    assert model.vision.kind == "minigptv2" and model.prompt_style == "minigptv2"
    assert torch.equal(model.projector.weight, state["llama_proj.weight"])
    parameters = dict(model.llm.named_parameters())
    lora_keys = [k for k in state if ".lora_" in k]
    assert len(lora_keys) == LAYERS * 2 * 2
    for key in lora_keys:  # every LoRA tensor reaches the live peft layer, whatever the key style
        live = key.removeprefix("llama_model.").replace(".default.weight", ".weight").replace(".weight", ".default.weight")
        assert torch.equal(parameters[live], state[key]), key


def test_import_then_export_gives_minigptv2s_key_set_back(imported, tmp_path):
    out, state, style = imported
    result = CliRunner().invoke(app, ["train", "export", "minigptv2", str(out), "--out", str(tmp_path / "back.pth")])
    assert result.exit_code == 0, result.output
    back = torch.load(tmp_path / "back.pth", weights_only=True)["model"]
    weights = {k: v for k, v in state.items() if not k.endswith("inv_freq")}  # buffers MiniGPT-v2 recomputes
    assert set(back) == set(weights)
    assert all(torch.equal(back[k], weights[k]) for k in weights)
    assert any(".default." in k for k in back) == (style == "default")


@pytest.mark.parametrize(
    "change",
    [
        {"drop": "llama_model.base_model.model.model.layers.1.self_attn.v_proj.lora_B.weight"},
        {"reshape": "llama_proj.weight"},
        {"extra": "llama_model.base_model.model.model.layers.0.self_attn.k_proj.lora_A.weight"},
    ],
)
def test_import_refuses_missing_misshaped_or_unexpected_keys(change, tmp_path, llm_dir, eva_pth):
    write_checkpoint(tmp_path / "bad.pth", default_style=False, **change)
    result = run_import(tmp_path / "bad.pth", eva_pth, llm_dir, tmp_path / "out")
    named = next(iter(change.values()))
    assert result.exit_code == 2 and named in result.output.replace("\n", ""), result.output
    assert not (tmp_path / "out").exists()


def test_import_refuses_a_pickle_that_needs_code(tmp_path, llm_dir, eva_pth):
    import argparse
    import pickle

    # any object that is not plain data (here a Namespace): weights_only refuses to build it
    (tmp_path / "evil.pth").write_bytes(pickle.dumps({"model": argparse.Namespace(weights=1)}))
    result = run_import(tmp_path / "evil.pth", eva_pth, llm_dir, tmp_path / "out")
    assert result.exit_code == 2 and "weights_only" in result.output


def test_loading_a_checkpoint_with_a_lora_key_missing_fails(imported, tmp_path):
    import shutil

    from safetensors.torch import load_file, save_file

    from skyeye_model.model import load_trained_model

    out, _, _ = imported
    copy = tmp_path / "partial"
    shutil.copytree(out, copy)
    adapter = copy / "adapter" / "adapter_model.safetensors"
    weights = load_file(adapter)
    dropped = sorted(weights)[0]
    del weights[dropped]
    save_file(weights, adapter)
    with pytest.raises(ValueError, match="LoRA weights missing"):
        load_trained_model(copy)


def test_chat_and_predict_run_on_the_imported_model(imported, tmp_path):
    from skyeye_model.predict import chat

    out, _, _ = imported
    image = tmp_path / "scene.png"
    image.write_bytes(png_bytes((30, 160, 40)))
    answers = []
    assert chat(out, image, iter(["[caption] Briefly describe this image.", "[vqa] Is it urban"]), answers.append, max_new_tokens=3) == 2
    assert len(answers) == 2


# -- EVA features ------------------------------------------------------------------------------


def minigpt4_eva_features(state: dict, pixels: torch.Tensor, depth: int, heads: int) -> torch.Tensor:
    """MiniGPT-v2's image features, written from minigpt4/models/eva_vit.py (VisionTransformer.forward_features,
    Block, Attention, Mlp, interpolate_pos_embed), base_model.py (ln_vision) and minigpt_v2.py (encode_img)."""
    x = F.conv2d(pixels, state["patch_embed.proj.weight"], state["patch_embed.proj.bias"], stride=14).flatten(2).transpose(1, 2)
    pos = state["pos_embed"].float()
    old, new = int((pos.shape[1] - 1) ** 0.5), int(x.shape[1] ** 0.5)
    grid = pos[:, 1:].reshape(-1, old, old, pos.shape[-1]).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, size=(new, new), mode="bicubic", align_corners=False).permute(0, 2, 3, 1).flatten(1, 2)
    x = torch.cat([state["cls_token"].expand(x.shape[0], -1, -1), x], dim=1) + torch.cat([pos[:, :1], grid], dim=1)
    dim = x.shape[-1]
    for i in range(depth):  # blocks 0 .. depth-1: the checkpoint's last block is not built
        p = f"blocks.{i}."
        h = F.layer_norm(x, (dim,), state[p + "norm1.weight"], state[p + "norm1.bias"], eps=1e-6)
        bias = torch.cat([state[p + "attn.q_bias"], torch.zeros_like(state[p + "attn.v_bias"]), state[p + "attn.v_bias"]])
        qkv = F.linear(h, state[p + "attn.qkv.weight"], bias).reshape(x.shape[0], x.shape[1], 3, heads, -1).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0] * (dim // heads) ** -0.5, qkv[1], qkv[2]
        attention = (q @ k.transpose(-2, -1)).softmax(dim=-1)
        x = x + F.linear((attention @ v).transpose(1, 2).reshape(x.shape[0], x.shape[1], -1), state[p + "attn.proj.weight"], state[p + "attn.proj.bias"])
        h = F.layer_norm(x, (dim,), state[p + "norm2.weight"], state[p + "norm2.bias"], eps=1e-6)
        x = x + F.linear(F.gelu(F.linear(h, state[p + "mlp.fc1.weight"], state[p + "mlp.fc1.bias"])), state[p + "mlp.fc2.weight"], state[p + "mlp.fc2.bias"])
    ln_vision = torch.nn.LayerNorm(dim)  # a fresh, frozen LayerNorm: weight 1, bias 0, eps 1e-5
    return ln_vision(x.float())[:, 1:]  # base_model.py's LayerNorm computes in float32; CLS dropped after it


@pytest.mark.parametrize("source", ["imported folder", "eva_vit_g.pth"])
def test_tower_computes_minigptv2s_eva_features(source, imported, eva_pth):
    from skyeye_model.model import VisionTower

    out, _, _ = imported
    # float64 on both sides, so the comparison sees the function, not fp32 summation order (~1e-5 here)
    tower = VisionTower(out / "vision" if source == "imported folder" else eva_pth, "auto", IMAGE_SIZE, torch.float64)
    assert tower.kind == "minigptv2" and len(tower.encoder.blocks) == EVA_BLOCKS - 1 and tower.num_patches() == 64
    pixels = torch.randint(0, 256, (2, IMAGE_SIZE, IMAGE_SIZE, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(3))
    normalized = ((pixels.permute(0, 3, 1, 2).float() / 255.0 - OPENAI_MEAN) / OPENAI_STD).double()  # ToTensor + Normalize
    state = {k: v.double() for k, v in minigpt4_eva_state(EVA_DIM, EVA_BLOCKS, EVA_GRID).items()}
    expected = minigpt4_eva_features(state, normalized, EVA_BLOCKS - 1, EVA_HEADS).float()
    got = tower(pixels).float()
    assert got.shape == expected.shape == (2, 64, EVA_DIM)
    assert (got - expected).abs().max() <= 1e-5
    # the unit LayerNorm is real: without it (timm's learned norm, or none) the features differ
    assert (tower.encoder.forward_features(normalized)[:, 1:].float() - expected).abs().max() > 1e-2


# -- prompts, token for token ------------------------------------------------------------------


def legacy_llama_ids(sp, text: str, add_bos: bool = False) -> list[int]:
    """transformers 4.30's slow LlamaTokenizer (MiniGPT-v2's environment.yml): special tokens split out of
    the text, every other chunk SentencePiece-encoded on its own; ``add_special_tokens=True`` adds one BOS."""
    ids = [sp.bos_id()] if add_bos else []
    for piece in re.split(r"(<s>|</s>)", text):
        ids += [sp.bos_id()] if piece == "<s>" else [sp.eos_id()] if piece == "</s>" else (sp.encode(piece) if piece else [])
    return ids


IMAGE = -1  # an image-embedding position


def minigptv2_training_ids(sp, questions: list[str], answers: list[str], max_txt_len: int = 1024) -> tuple[list[int], list[int]]:
    """ids (IMAGE at image positions) and labels of one sample, following MiniGPT-v2's training code:
    datasets wrap the first instruction as '<Img><ImageHere></Img> {} ' and later ones as '{} '
    (multitask_conversation.py, coco_vqa_datasets.py); preparing_embedding formats '[INST] {} [/INST]'
    (chat_template); prompt_wrap tokenizes the pieces around <ImageHere> without special tokens;
    tokenize_conversation: answers as a + end_sym ('</s>'), later questions as bos_token + q, capped at
    max_txt_len; forward prepends the BOS embedding; targets cover the regress part (minigpt_base.py)."""
    wrapped = ["[INST] {} [/INST]".format(f"<Img><ImageHere></Img> {questions[0]} ")]
    wrapped += ["[INST] {} [/INST]".format(f"{q} ") for q in questions[1:]]
    context = []
    segments = wrapped[0].split("<ImageHere>")
    for segment in segments[:-1]:
        context += legacy_llama_ids(sp, segment) + [IMAGE] * TOKENS_PER_IMAGE
    context += legacy_llama_ids(sp, segments[-1])
    regress, targets = [], []
    for index, answer in enumerate(answers):
        if index:
            question = legacy_llama_ids(sp, "<s>" + wrapped[index])
            regress += question
            targets += [-100] * len(question)
        ids = legacy_llama_ids(sp, answer + "</s>")
        regress += ids
        targets += ids
    regress, targets = regress[:max_txt_len], targets[:max_txt_len]
    ids = [sp.bos_id()] + context + regress
    return ids, [-100] * (1 + len(context)) + targets


def minigptv2_inference_ids(sp, questions: list[str], past_answers: list[str]) -> list[int]:
    """conversation.py CONV_VISION_minigptv2 (roles '<s>[INST] ', ' [/INST]', sep ''), Chat.upload_img/ask
    ('<Img><ImageHere></Img>' + ' ' + question), get_prompt (SINGLE), then minigpt_base.py get_context_emb
    (the first piece with add_special_tokens=True)."""
    messages = [("<s>[INST] ", f"<Img><ImageHere></Img> {questions[0]}")]
    for question, answer in zip(questions[1:], past_answers):
        messages += [(" [/INST]", answer), ("<s>[INST] ", question)]
    messages.append((" [/INST]", None))
    prompt = "".join(role + message if message else role for role, message in messages)
    ids = []
    for number, segment in enumerate(prompt.split("<ImageHere>")):
        ids += ([IMAGE] * TOKENS_PER_IMAGE if number else []) + legacy_llama_ids(sp, segment, add_bos=number == 0)
    return ids


def with_image_marks(encoded) -> list[int]:
    return [IMAGE if image else token for token, image in zip(encoded.input_ids, encoded.image_mask)]


@pytest.fixture(scope="module")
def templates(llm_dir):
    """MiniGPT-v2-style templates on the trained SentencePiece model and on transformers' conversion of it."""
    import sentencepiece
    from transformers import AutoTokenizer

    from skyeye_model.template import ChatTemplate, sentencepiece_model

    tokenizer = AutoTokenizer.from_pretrained(llm_dir)
    sp = sentencepiece.SentencePieceProcessor(model_file=str(llm_dir / "tokenizer.model"))
    common = dict(style="minigptv2", max_txt_len=1024, max_context_len=3800)
    exact = ChatTemplate(tokenizer, TOKENS_PER_IMAGE, sp_model=sentencepiece_model(llm_dir, "minigptv2"), **common)
    converted = ChatTemplate(tokenizer, TOKENS_PER_IMAGE, **common)
    return sp, exact, converted


SINGLE_TURN = [("[vqa] is it a rural or an urban area", "urban")]
THREE_TURNS = [(THREE_TURN_DIALOG[i]["content"], THREE_TURN_DIALOG[i + 1]["content"]) for i in (0, 2, 4)]


@pytest.mark.parametrize("turns", [SINGLE_TURN, THREE_TURNS], ids=["single-turn", "three-turn"])
def test_training_tokens_equal_minigptv2s(turns, templates):
    sp, exact, converted = templates
    ids, labels = minigptv2_training_ids(sp, [q for q, _ in turns], [a for _, a in turns])
    for template in (exact, converted):
        encoded = template.encode_dialog(turns, num_images=1)
        assert with_image_marks(encoded) == ids
        assert encoded.labels == labels and encoded.status == "ok"
    # two spaces before [/INST] make a token of their own with a Llama SentencePiece model
    assert sp.encode("area  [/INST]") != sp.encode("area [/INST]")


@pytest.mark.parametrize("turns", [SINGLE_TURN, THREE_TURNS], ids=["single-turn", "three-turn"])
def test_inference_tokens_equal_minigptv2s(turns, templates):
    sp, exact, converted = templates
    history, (question, _) = turns[:-1], turns[-1]
    expected = minigptv2_inference_ids(sp, [q for q, _ in turns], [a for _, a in history])
    for template in (exact, converted):
        assert with_image_marks(template.encode_prompt(history, question, num_images=1)) == expected
    assert expected[:2] == [sp.bos_id(), sp.bos_id()]  # the tokenizer's BOS and the prompt's '<s>'


def test_answer_cap_is_minigptv2s_max_txt_len(templates):
    sp, exact, _ = templates
    from skyeye_model.template import ChatTemplate

    capped = ChatTemplate(exact.tokenizer, TOKENS_PER_IMAGE, style="minigptv2", max_txt_len=5, sp_model=exact.sp_model)
    ids, labels = minigptv2_training_ids(sp, [q for q, _ in THREE_TURNS], [a for _, a in THREE_TURNS], max_txt_len=5)
    encoded = capped.encode_dialog(THREE_TURNS, num_images=1)
    assert with_image_marks(encoded) == ids and encoded.labels == labels and encoded.status == "truncated"


def test_a_skyeyegpt_release_imports_the_same_way(tmp_path, llm_dir, eva_pth):
    import json

    write_checkpoint(tmp_path / "skyeyegpt.pth", default_style=False)
    command = ["train", "import", "skyeyegpt", "--checkpoint", str(tmp_path / "skyeyegpt.pth"), "--vision", str(eva_pth),
               "--llm", str(llm_dir), "--out", str(tmp_path / "out"), "--image-size", str(IMAGE_SIZE)]  # fmt: skip
    result = CliRunner().invoke(app, command)
    assert result.exit_code == 0, result.output
    provenance = json.loads((tmp_path / "out" / "import.json").read_text())
    assert provenance["format"] == "skyeyegpt" and provenance["lora_key_style"] == "plain" and provenance["ignored_buffers"] == LAYERS
    assert json.loads((tmp_path / "out" / "skyeye_model.json").read_text())["prompt_style"] == "minigptv2"
