"""The benchmark's LLaVA side (``benchmarks/llava_reference.py``) does LLaVA's own work: a non-square image
padded with the CLIP mean colour (``expand2square``), transformers' CLIPImageProcessor at 448 in float32,
one ``-200`` image token, and labels on the answer and ``</s>`` only (``preprocess_v1``)."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import llava_reference  # noqa: E402

from skyeye_model.tiny import build_tokenizer  # noqa: E402

ANSWER = "many buildings and green trees are around a playground"


def test_llava_pipeline_pads_normalises_and_masks_as_llava(tmp_path):
    (tmp_path / "images").mkdir()
    Image.new("RGB", (300, 150), (200, 30, 30)).save(tmp_path / "images" / "wide.png")
    entry = {"id": "a", "image": "images/wide.png", "conversations": [
        {"from": "human", "value": "<image>\n[caption] Briefly describe this image."}, {"from": "gpt", "value": ANSWER}]}  # fmt: skip
    (tmp_path / "skyeye_llava.json").write_text(json.dumps([entry]), encoding="utf-8")
    tokenizer = build_tokenizer()
    sample = llava_reference.LlavaPipelineDataset(tmp_path / "skyeye_llava.json", tokenizer, 448)[0]

    assert sample.pixel_values.shape == (1, 3, 448, 448) and sample.pixel_values.dtype == torch.float32
    mean, std = np.array(llava_reference.clip_processor(448).image_mean), np.array(llava_reference.clip_processor(448).image_std)
    band = sample.pixel_values[0, :, :60, :].mean(dim=(1, 2)).numpy()  # the top quarter is padding
    assert np.allclose(band, (np.floor(mean * 255) / 255 - mean) / std, atol=0.02)
    centre = sample.pixel_values[0, :, 224, 224].numpy()
    assert np.allclose(centre, (np.array([200, 30, 30]) / 255 - mean) / std, atol=0.02)

    ids, labels = sample.input_ids.tolist(), sample.labels.tolist()
    assert ids[0] == tokenizer.bos_token_id and ids.count(llava_reference.IMAGE_TOKEN_INDEX) == 1
    assert sample.image_mask.sum() == 1
    supervised = [t for t, label in zip(ids, labels) if label != -100]
    assert tokenizer.decode(supervised).strip() == ANSWER + "</s>"
    assert "USER:" in tokenizer.decode([t for t in ids if t >= 0]) and llava_reference.VICUNA_SYSTEM[:20] in tokenizer.decode(ids[1:20])
