"""Padding encoded samples into a batch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from skyeye_model.template import IGNORE_INDEX


@dataclass
class Batch:
    input_ids: torch.Tensor  # long [B, T]
    attention_mask: torch.Tensor  # long [B, T]
    labels: torch.Tensor  # long [B, T], -100 = no loss (prompt, image, padding, weight-0 samples)
    image_mask: torch.Tensor  # bool [B, T]: positions that receive image embeddings, row-major
    pixel_values: torch.Tensor  # uint8 [images, S, S, 3], images in the order of image_mask positions
    ids: list[str]
    weights: list[float]

    def to(self, device) -> "Batch":
        tensors = {k: getattr(self, k).to(device, non_blocking=True) for k in ("input_ids", "attention_mask", "labels", "image_mask", "pixel_values")}
        return Batch(**tensors, ids=self.ids, weights=self.weights)

    def pin_memory(self) -> "Batch":
        tensors = {k: getattr(self, k).pin_memory() for k in ("input_ids", "attention_mask", "labels", "image_mask", "pixel_values")}
        return Batch(**tensors, ids=self.ids, weights=self.weights)


class Collator:
    """Pads to the longest sample (right for training, left for generation)."""

    def __init__(self, pad_id: int, side: Literal["right", "left"] = "right"):
        self.pad_id = pad_id
        self.side = side

    def _pad(self, rows: list[torch.Tensor], value) -> torch.Tensor:
        length = max(len(r) for r in rows)
        out = torch.full((len(rows), length), value, dtype=rows[0].dtype)
        for i, row in enumerate(rows):
            if self.side == "right":
                out[i, : len(row)] = row
            else:
                out[i, length - len(row) :] = row
        return out

    def __call__(self, samples) -> Batch:
        # Weight-0 items only keep ranks in step (see sampler): no label, no loss.
        labels = [s.labels if s.weight > 0 else torch.full_like(s.labels, IGNORE_INDEX) for s in samples]
        return Batch(
            input_ids=self._pad([s.input_ids for s in samples], self.pad_id),
            attention_mask=self._pad([torch.ones_like(s.input_ids) for s in samples], 0),
            labels=self._pad(labels, IGNORE_INDEX),
            image_mask=self._pad([s.image_mask for s in samples], False),
            pixel_values=torch.cat([s.pixel_values for s in samples]),
            ids=[s.id for s in samples],
            weights=[s.weight for s in samples],
        )
