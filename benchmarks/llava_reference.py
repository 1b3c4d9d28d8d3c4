"""The LLaVA side of ``dataloader_bench.py``: LLaVA's own per-sample pipeline, and LLaVA's storage under our decode.

What LLaVA's loader does, read in haotian-liu/LLaVA (commit c121f04) and mbzuai-oryx/GeoChat (its fork,
the remote-sensing one; the same code):

- ``llava/train/train.py`` ``LazySupervisedDataset.__init__``: ``json.load`` of the whole list;
  ``__getitem__``: ``Image.open(os.path.join(image_folder, image_file)).convert('RGB')`` (GeoChat
  ``geochat/train/train.py``: the same, with ``.strip()`` on the path), then with
  ``--image_aspect_ratio pad`` (``scripts/v1_5/finetune.sh``) ``expand2square(image, mean * 255)`` and
  ``processor.preprocess(image, return_tensors='pt')['pixel_values'][0]``: float32 ``[3, S, S]`` made in
  the worker, sent to the main process as float32;
- ``llava/model/multimodal_encoder/clip_encoder.py``: the processor is ``CLIPImageProcessor`` of the
  vision tower (``openai/clip-vit-large-patch14-336``: shortest edge resize, bicubic, centre crop,
  rescale 1/255, CLIP mean/std). GeoChat's ``geochat/model/multimodal_encoder/clip_encoder.py`` keeps
  that processor and interpolates the tower to 504 px. Here it is built from arguments for 448
  (``size={"shortest_edge": 448}``, ``crop_size`` 448; the rest are the class defaults, which are that
  checkpoint's ``preprocessor_config.json`` values), nothing downloaded. LLaVA pins
  ``transformers==4.37.2`` (``pyproject.toml``), whose ``CLIPImageProcessor`` is the PIL + NumPy one:
  in the installed transformers that is ``CLIPImageProcessorPil`` (PIL resize, NumPy float32 rescale
  and normalise); ``--llava-processor torchvision`` takes today's default class instead;
- tokenisation: ``preprocess_multimodal`` (``<image>`` moved to the front of its turn), ``preprocess_v1``
  with ``conv_templates["vicuna_v1"]`` (``llava/conversation.py``: system prompt, ``USER``/``ASSISTANT``,
  ``sep=" "``, ``sep2="</s>"``): the whole prompt through ``tokenizer_image_token``
  (``llava/mm_utils.py``: ``<image>`` → index -200), then every round tokenized twice more to mask the
  instruction. Copied here in a few lines (LLaVA is not a dependency); the tokenizer is the
  benchmark's (tiny, or ``--tokenizer``), the same one our side uses;
- ``DataCollatorForSupervisedDataset``: pad the ids, ``torch.stack`` the images. Here our ``Collator``
  does it for both sides (the same collate), which accepts float32 pixels as well as uint8.

Storage is the project's own LLaVA export (``skyeye_data.export.llava.llava_entry``: one image path a
row, ``<image>\\n`` before the first human turn), the same original image bytes as the Parquet side.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import torch
from PIL import Image

from skyeye_data.export.llava import llava_entry
from skyeye_model.data import EncodedSample
from skyeye_model.decode import decode_frames
from skyeye_model.template import ChatTemplate, conversation_turns

IGNORE_INDEX = -100
IMAGE_TOKEN_INDEX = -200  # llava/constants.py
DEFAULT_IMAGE_TOKEN = "<image>"
# llava/conversation.py, conv_vicuna_v1
VICUNA_SYSTEM = "A chat between a curious user and an artificial intelligence assistant. The assistant gives helpful, detailed, and polite answers to the user's questions."
ROLES = {"human": "USER", "gpt": "ASSISTANT"}
SEP, SEP2 = " ", "</s>"


def export_llava_listing(dataset, target: Path) -> Path:
    """The dataset's samples as LLaVA's JSON list (the exporter's rows) + one image file per image."""
    (target / "images").mkdir(parents=True)
    entries = []
    for position in range(len(dataset)):
        row = dataset.row(position)
        paths = []
        for image_id in row["image_ids"]:
            path = target / "images" / f"{image_id}.jpg"
            if not path.exists():
                path.write_bytes(dataset.images.read_bytes(image_id))
            paths.append(f"images/{image_id}.jpg")
        entries.append(llava_entry(row, paths))
    listing = target / "skyeye_llava.json"
    listing.write_text(json.dumps(entries), encoding="utf-8")
    return listing


def clip_processor(size: int, backend: str = "pil"):
    """transformers' real CLIPImageProcessor for ``size`` px, from arguments (no hub download)."""
    if backend == "pil":
        try:
            from transformers import CLIPImageProcessorPil as processor_class
        except ImportError:  # transformers < 5: CLIPImageProcessor is the PIL + NumPy one already
            from transformers import CLIPImageProcessor as processor_class
    else:
        from transformers import CLIPImageProcessor as processor_class
    return processor_class(size={"shortest_edge": size}, crop_size={"height": size, "width": size})


def expand2square(pil_img: Image.Image, background_color) -> Image.Image:
    # llava/train/train.py, LazySupervisedDataset.__getitem__ (verbatim logic)
    width, height = pil_img.size
    if width == height:
        return pil_img
    side = max(width, height)
    result = Image.new(pil_img.mode, (side, side), background_color)
    result.paste(pil_img, ((side - width) // 2, (side - height) // 2))
    return result


def llama_ids(tokenizer, text: str) -> list[int]:
    """``tokenizer(text).input_ids`` with BOS first, as LLaVA's Llama/Vicuna tokenizer gives them (add_bos_token)."""
    ids = tokenizer(text).input_ids
    return ids if ids[:1] == [tokenizer.bos_token_id] else [tokenizer.bos_token_id, *ids]


def tokenizer_image_token(prompt: str, tokenizer) -> list[int]:
    # llava/mm_utils.py
    chunks = [llama_ids(tokenizer, chunk) for chunk in prompt.split(DEFAULT_IMAGE_TOKEN)]
    ids, offset = [], 0
    if chunks and chunks[0] and chunks[0][0] == tokenizer.bos_token_id:
        offset = 1
        ids.append(chunks[0][0])
    separated = [item for pair in zip(chunks, [[IMAGE_TOKEN_INDEX] * (offset + 1)] * len(chunks)) for item in pair][:-1]
    for chunk in separated:
        ids.extend(chunk[offset:])
    return ids


def preprocess_multimodal(conversations: list[dict]) -> list[dict]:
    # llava/train/train.py (mm_use_im_start_end False, the v1.5 setting)
    for sentence in conversations:
        if DEFAULT_IMAGE_TOKEN in sentence["value"]:
            value = sentence["value"].replace(DEFAULT_IMAGE_TOKEN, "").strip()
            sentence["value"] = (DEFAULT_IMAGE_TOKEN + "\n" + value).strip()
    return conversations


def preprocess_v1(conversations: list[dict], tokenizer) -> tuple[torch.Tensor, torch.Tensor]:
    # llava/train/train.py preprocess_v1 with has_image=True, one source
    prompt = VICUNA_SYSTEM + SEP
    for j, sentence in enumerate(conversations):
        prompt += ROLES[sentence["from"]] + ": " + sentence["value"] + (SEP, SEP2)[j % 2]
    input_ids = torch.tensor(tokenizer_image_token(prompt, tokenizer), dtype=torch.long)
    target = input_ids.clone()
    sep = SEP + ROLES["gpt"] + ": "
    cur_len = 1
    target[:cur_len] = IGNORE_INDEX
    legacy = getattr(tokenizer, "legacy", True)  # a fast tokenizer has no `legacy`: LLaVA's slow Llama one does
    for i, rou in enumerate(prompt.split(SEP2)):
        if rou == "":
            break
        parts = rou.split(sep)
        if len(parts) != 2:
            break
        parts[0] += sep
        round_len = len(tokenizer_image_token(rou, tokenizer))
        instruction_len = len(tokenizer_image_token(parts[0], tokenizer)) - 2
        if i != 0 and not legacy:
            round_len, instruction_len = round_len - 1, instruction_len - 1
        target[cur_len : cur_len + instruction_len] = IGNORE_INDEX
        cur_len += round_len
    target[cur_len:] = IGNORE_INDEX
    return input_ids, target


class LlavaPipelineDataset(torch.utils.data.Dataset):
    """LLaVA's ``LazySupervisedDataset.__getitem__``: PIL open, pad to square, CLIPImageProcessor, v1 tokenisation."""

    def __init__(self, listing: Path, tokenizer, image_size: int, backend: str = "pil"):
        self.entries = json.load(open(listing, "r"))
        self.folder = str(listing.parent)
        self.tokenizer = tokenizer
        self.processor = clip_processor(image_size, backend)
        self.background = tuple(int(x * 255) for x in self.processor.image_mean)

    def __len__(self) -> int:
        return len(self.entries)

    def _image(self, image_file: str) -> torch.Tensor:
        image = Image.open(os.path.join(self.folder, image_file)).convert("RGB")
        image = expand2square(image, self.background)
        return self.processor.preprocess(image, return_tensors="pt")["pixel_values"][0]

    def __getitem__(self, index: int) -> EncodedSample:
        entry = self.entries[index]
        files = entry["image"] if isinstance(entry["image"], list) else [entry["image"]]
        pixels = torch.stack([self._image(f) for f in files])  # float32 [n, 3, S, S]
        conversations = preprocess_multimodal(copy.deepcopy(entry["conversations"]))
        input_ids, labels = preprocess_v1(conversations, self.tokenizer)
        return EncodedSample(entry["id"], "", input_ids, labels, input_ids == IMAGE_TOKEN_INDEX, pixels)


class LlavaStorageDataset(torch.utils.data.Dataset):
    """LLaVA's storage (the JSON list in memory, one file per image) under our decode, template and uint8 pixels."""

    def __init__(self, listing: Path, template: ChatTemplate, image_size: int):
        self.entries = json.loads(listing.read_text(encoding="utf-8"))
        self.folder = listing.parent
        self.template = template
        self.image_size = image_size

    def __len__(self) -> int:
        return len(self.entries)

    def fetch(self, index: int) -> list[bytes]:
        """Storage only: the entry's image bytes, nothing decoded."""
        image = self.entries[index]["image"]
        return [(self.folder / f).read_bytes() for f in (image if isinstance(image, list) else [image])]

    def __getitem__(self, index: int) -> EncodedSample:
        entry = self.entries[index]
        images = self.fetch(index)
        turns = [{"role": "user" if t["from"] == "human" else "assistant", "content": t["value"].replace("<image>\n", "")} for t in entry["conversations"]]
        encoded = self.template.encode_dialog(conversation_turns(turns), len(images))
        return EncodedSample(
            entry["id"], "", torch.tensor(encoded.input_ids, dtype=torch.long), torch.tensor(encoded.labels, dtype=torch.long),
            torch.tensor(encoded.image_mask, dtype=torch.bool), decode_frames(images, self.image_size),
        )  # fmt: skip
