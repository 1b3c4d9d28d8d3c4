"""`skyeye export llava` through LLaVA's data contract, reimplemented from haotian-liu/LLaVA (cited per step).

LLaVA is not an installable package (its repository pins torch 2.1 and deepspeed), so the steps of
``llava/train/train.py`` that touch the data are reimplemented here, line for line where they
depend on the data: ``LazySupervisedDataset.__getitem__`` (image path join, RGB, ``expand2square``,
``image_processor.preprocess``), ``preprocess_multimodal`` (the ``<image>`` tag moved to the front),
``preprocess_v1`` (roles alternate ``human``/``gpt``, the v1 conversation prompt),
``llava/mm_utils.py`` ``tokenizer_image_token`` (each tag -> ``IMAGE_TOKEN_INDEX``), the check of
``llava/model/llava_arch.py`` ``prepare_inputs_labels_for_multimodal`` (one image feature per
tag) and ``DataCollatorForSupervisedDataset`` (pad, stack images). The label masking of
``preprocess_v1`` depends on LLaMA's sentencepiece quirks, not on the data, and is left out.
"""

from __future__ import annotations

import copy
import json
import os

import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image
from interop_helpers import invoke

IMAGE_TOKEN_INDEX = -200  # llava/constants.py
DEFAULT_IMAGE_TOKEN = "<image>"
IGNORE_INDEX = -100
SYSTEM = (  # llava/conversation.py conv_vicuna_v1
    "A chat between a curious user and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the user's questions."
)


def preprocess_multimodal(sources):
    for source in sources:
        for sentence in source:
            if DEFAULT_IMAGE_TOKEN in sentence["value"]:
                sentence["value"] = sentence["value"].replace(DEFAULT_IMAGE_TOKEN, "").strip()
                sentence["value"] = (DEFAULT_IMAGE_TOKEN + "\n" + sentence["value"]).strip()
    return sources


def v1_prompt(source) -> str:
    roles = {"human": "USER", "gpt": "ASSISTANT"}
    if roles[source[0]["from"]] != "USER":
        source = source[1:]
    seps, ret = [" ", "</s>"], SYSTEM + " "
    for j, sentence in enumerate(source):
        role = roles[sentence["from"]]
        assert role == ("USER", "ASSISTANT")[j % 2]  # preprocess_v1's assert
        ret += role + ": " + sentence["value"] + seps[j % 2]
    return ret


def tokenizer_image_token(prompt, tokenizer):
    chunks = [tokenizer(chunk).input_ids for chunk in prompt.split("<image>")]
    input_ids, offset = [], 0
    if chunks and chunks[0] and chunks[0][0] == tokenizer.bos_token_id:
        offset = 1
        input_ids.append(chunks[0][0])
    separated = [e for pair in zip(chunks, [[IMAGE_TOKEN_INDEX] * (offset + 1)] * len(chunks)) for e in pair][:-1]
    for x in separated:
        input_ids.extend(x[offset:])
    return torch.tensor(input_ids, dtype=torch.long)


def expand2square(pil_img, background_color):
    width, height = pil_img.size
    if width == height:
        return pil_img
    side = max(width, height)
    result = Image.new(pil_img.mode, (side, side), background_color)
    result.paste(pil_img, ((side - width) // 2, (side - height) // 2))
    return result


def get_item(entry, image_folder, processor, tokenizer):
    image = Image.open(os.path.join(image_folder, entry["image"])).convert("RGB")  # a list here fails in join()
    image = expand2square(image, tuple(int(x * 255) for x in processor.image_mean))
    image = processor.preprocess(image, return_tensors="pt")["pixel_values"][0]
    sources = preprocess_multimodal(copy.deepcopy([entry["conversations"]]))
    input_ids = tokenizer_image_token(v1_prompt(sources[0]), tokenizer)
    assert int((input_ids == IMAGE_TOKEN_INDEX).sum()) == 1  # llava_arch: one image feature per tag, one image a sample
    return {"input_ids": input_ids, "labels": input_ids.clone(), "image": image}


def collate(instances, tokenizer):
    input_ids = torch.nn.utils.rnn.pad_sequence([i["input_ids"] for i in instances], batch_first=True, padding_value=tokenizer.pad_token_id)
    labels = torch.nn.utils.rnn.pad_sequence([i["labels"] for i in instances], batch_first=True, padding_value=IGNORE_INDEX)
    images = [i["image"] for i in instances]
    assert all(x.shape == images[0].shape for x in images)
    return {"input_ids": input_ids, "labels": labels, "attention_mask": input_ids.ne(tokenizer.pad_token_id), "images": torch.stack(images)}


@pytest.fixture(scope="module")
def tokenizer(export_of):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    entries = json.loads((export_of("llava") / "skyeye_llava.json").read_text())
    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=600, special_tokens=["<unk>", "<s>", "</s>", "<pad>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    bpe.train_from_iterator([t["value"] for e in entries for t in e["conversations"]] + [SYSTEM], trainer)
    bpe.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", bpe.token_to_id("<s>"))])  # LLaMA adds BOS
    return PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="<pad>")


@pytest.fixture(scope="module")
def image_processor():
    from transformers import CLIPImageProcessor

    # CLIP ViT-L/14-336's preprocessor_config.json (LLaVA-1.5's vision tower), at a small size
    return CLIPImageProcessor(size={"shortest_edge": 56}, crop_size={"height": 56, "width": 56},
                              image_mean=[0.48145466, 0.4578275, 0.40821073], image_std=[0.26862954, 0.26130258, 0.27577711])  # fmt: skip


def test_llava_dataset_and_collator_accept_every_row(export_of, mini_build, tokenizer, image_processor):
    out = export_of("llava")
    entries = json.loads((out / "skyeye_llava.json").read_text())
    assert entries and all(isinstance(e["image"], str) for e in entries)  # one type per field
    items = [get_item(e, str(out), image_processor, tokenizer) for e in entries]
    for start in range(0, len(items), 16):
        batch = collate(items[start : start + 16], tokenizer)
        assert batch["images"].shape[1:] == (3, 56, 56)
    video = json.loads((out / "skyeye_llava_video.json").read_text())
    assert video and all(isinstance(e["image"], list) and e["conversations"][0]["value"].count("<image>") == len(e["image"]) for e in video)
    for e in video:
        assert all((out / frame).is_file() for frame in e["image"])
    samples = [r for p in sorted((mini_build / "samples").glob("*.parquet")) for r in pq.read_table(p, columns=["image_ids"]).to_pylist()]
    assert len(entries) == sum(len(s["image_ids"]) == 1 for s in samples) and len(video) == len(samples) - len(entries)


def test_llava_without_video_says_how_many_were_left_out(mini_build, tmp_path):
    videos = sum(len(r["image_ids"]) > 1 for p in (mini_build / "samples").glob("*.parquet") for r in pq.read_table(p, columns=["image_ids"]).to_pylist())
    output = invoke("export", "llava", mini_build, "--to", tmp_path, "--no-video")
    assert videos and not (tmp_path / "skyeye_llava_video.json").exists()
    assert f"{videos} left out (video samples, --no-video)" in " ".join(output.split())
