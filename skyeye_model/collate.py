"""Encoded samples into a batch: padded (one sample per row), or packed (several samples per row).

Packing puts consecutive samples of the micro-batch into rows of at most ``pack_length`` tokens
(first fit, order kept) and restarts ``position_ids`` at 0 for every sample. The model then passes
``position_ids`` with no 2-D attention mask, and transformers builds a block-diagonal causal mask from
the restarts (``masking_utils.find_packed_sequence_indices``; flash-attention varlen does the same), so
no sample sees another. The first token of every sample is BOS, whose label is ``-100``, so the
prediction across a sample boundary never counts. The loss (summed over supervised tokens, divided by
their count) is then that of the padded batch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Literal, Optional

import numpy as np
import torch

from skyeye_model.shared_batch import handoff, received, whole_buffer, worker_buffer, worker_empty
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
    position_ids: Optional[torch.Tensor] = None  # long [B, T] when packed: restarts at 0 per sample

    def _map(self, function) -> "Batch":
        names = ("input_ids", "attention_mask", "labels", "image_mask", "pixel_values")
        tensors = {k: function(getattr(self, k)) for k in names}
        position_ids = None if self.position_ids is None else function(self.position_ids)
        return Batch(**tensors, ids=self.ids, weights=self.weights, position_ids=position_ids)

    def to(self, device) -> "Batch":
        return self._map(lambda tensor: tensor.to(device, non_blocking=True))

    def pin_memory(self) -> "Batch":
        return self._map(lambda tensor: tensor.pin_memory())

    def __reduce__(self):
        # Sent from a dataloader worker: the token tensors go as their one shared buffer (see token_tensors).
        tensors = [self.input_ids, self.attention_mask, self.labels, self.image_mask]
        tensors += [] if self.position_ids is None else [self.position_ids]
        storage = self.input_ids.untyped_storage()
        if storage.device.type == "cpu" and all(t.is_contiguous() and t.untyped_storage().data_ptr() == storage.data_ptr() for t in tensors):
            arena = torch.empty(0, dtype=torch.uint8).set_(storage)
            layout = [(t.dtype, t.storage_offset() * t.element_size(), tuple(t.shape)) for t in tensors]
            return rebuild_batch, (arena, layout, handoff(self.pixel_values), self.ids, self.weights)
        return rebuild_unshared, (tuple(getattr(self, f.name) for f in fields(self) if f.name != "pixel_values"), handoff(self.pixel_values))


def rebuild_batch(arena: torch.Tensor, layout: list, pixels: tuple, ids: list[str], weights: list[float]) -> Batch:
    tensors = [arena[start : start + math.prod(shape) * dtype.itemsize].view(dtype).view(shape) for dtype, start, shape in layout]
    return Batch(*tensors[:4], pixel_values=received(*pixels), ids=ids, weights=weights, position_ids=tensors[4] if len(tensors) > 4 else None)


def rebuild_unshared(values: tuple, pixels: tuple) -> Batch:
    names = [f.name for f in fields(Batch) if f.name != "pixel_values"]
    return Batch(**dict(zip(names, values)), pixel_values=received(*pixels))


def token_tensors(rows: int, width: int, longs: int) -> tuple[list[torch.Tensor], torch.Tensor]:
    """``longs`` int64 ``[rows, width]`` tensors and one bool one, all views of ONE buffer: one storage,
    so one shared-memory file to send from a worker (``shared_batch``; ``Batch.__reduce__`` sends it once)."""
    cells = rows * width
    arena = worker_empty((cells * (8 * longs + 1),), torch.uint8)
    return list(arena[: 8 * longs * cells].view(torch.int64).view(longs, rows, width)), arena[8 * longs * cells :].view(torch.bool).view(rows, width)


class Collator:
    """Pads to the longest sample (right for training, left for generation)."""

    def __init__(self, pad_id: int, side: Literal["right", "left"] = "right"):
        self.pad_id = pad_id
        self.side = side

    def _pad(self, out: torch.Tensor, rows: list[torch.Tensor], value) -> torch.Tensor:
        out.fill_(value)
        length = out.shape[1]
        for i, row in enumerate(rows):
            if self.side == "right":
                out[i, : len(row)] = row
            else:
                out[i, length - len(row) :] = row
        return out

    def __call__(self, samples) -> Batch:
        labels = masked_labels(samples)
        (ids, mask, batch_labels), image_mask = token_tensors(len(samples), max(len(s.input_ids) for s in samples), 3)
        return Batch(
            input_ids=self._pad(ids, [s.input_ids for s in samples], self.pad_id),
            attention_mask=self._pad(mask, [torch.ones_like(s.input_ids) for s in samples], 0),
            labels=self._pad(batch_labels, labels, IGNORE_INDEX),
            image_mask=self._pad(image_mask, [s.image_mask for s in samples], False),
            pixel_values=concat_images([s.pixel_values for s in samples]),
            ids=[s.id for s in samples],
            weights=[s.weight for s in samples],
        )


def concat_images(images: list[torch.Tensor]) -> torch.Tensor:
    """Images (uint8, or any one dtype) concatenated by NumPy: a single memcpy. torch.cat runs it on the
    intra-op thread pool, which on a busy machine costs ~85 ms for 8 images of 448 px (measured) against
    ~1 ms here. Images decoded into one batch buffer already (``SampleDataset.__getitems__``) are not copied.

    In a dataloader worker the batch is written straight into shared memory, a recycled buffer
    (``worker_buffer``): otherwise sending it to the main process copies the whole pixel batch (4.8 MB for
    8 images of 448 px) once more."""
    if not images:
        return torch.zeros(0, dtype=torch.uint8)
    whole = whole_buffer(images)
    if whole is not None:
        return whole
    out = worker_buffer((sum(len(image) for image in images), *images[0].shape[1:]), images[0].dtype)
    np.concatenate([image.numpy() for image in images], out=out.numpy())
    return out


def masked_labels(samples) -> list[torch.Tensor]:
    # Weight-0 items only keep ranks in step (see sampler): no label, no loss.
    return [s.labels if s.weight > 0 else torch.full_like(s.labels, IGNORE_INDEX) for s in samples]


def pack_rows(lengths: list[int], pack_length: Optional[int]) -> list[list[int]]:
    """Sample indices per row: first fit in order, each row at most ``pack_length`` tokens (None: one row)."""
    rows: list[list[int]] = []
    used: list[int] = []
    for index, length in enumerate(lengths):
        target = next((r for r, total in enumerate(used) if pack_length is None or total + length <= pack_length), None)
        if target is None:
            rows.append([])
            used.append(0)
            target = len(rows) - 1
        rows[target].append(index)
        used[target] += length
    return rows


class PackingCollator:
    """Several samples per row, positions restarting per sample (see the module docstring); right padding."""

    def __init__(self, pad_id: int, pack_length: Optional[int] = None):
        self.pad_id = pad_id
        self.pack_length = pack_length

    def __call__(self, samples) -> Batch:
        labels = masked_labels(samples)
        rows = pack_rows([len(s.input_ids) for s in samples], self.pack_length)
        width = max(sum(len(samples[i].input_ids) for i in row) for row in rows)
        (batch_ids, mask, batch_labels, positions), image_mask = token_tensors(len(rows), width, 4)
        batch_ids.fill_(self.pad_id), batch_labels.fill_(IGNORE_INDEX), mask.zero_(), image_mask.zero_(), positions.zero_()
        order = []
        for r, row in enumerate(rows):
            start = 0
            for i in row:
                n = len(samples[i].input_ids)
                batch_ids[r, start : start + n] = samples[i].input_ids
                batch_labels[r, start : start + n] = labels[i]
                image_mask[r, start : start + n] = samples[i].image_mask
                mask[r, start : start + n] = 1
                positions[r, start : start + n] = torch.arange(n)
                start += n
                order.append(i)
            positions[r, start:] = torch.arange(width - start)  # the padding is one more sequence of its own
        return Batch(
            input_ids=batch_ids,
            attention_mask=mask,
            labels=batch_labels,
            image_mask=image_mask,
            pixel_values=concat_images([samples[i].pixel_values for i in order]),  # row-major, as image_mask
            ids=[samples[i].id for i in order],
            weights=[samples[i].weight for i in order],
            position_ids=positions,
        )
