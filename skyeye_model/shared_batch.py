"""Batch buffers that cross the dataloader's worker boundary without a copy.

A tensor built in a dataloader worker is sent to the main process through shared memory: torch's
queue moves every storage that is not shared yet into a new shared-memory file (a copy), and sends one
file descriptor per storage (``torch/multiprocessing/reductions.py`` ``reduce_storage``: a ``DupFd``
each, handed over by multiprocessing's ``resource_sharer`` thread on a connection of its own, in the
worker and in the main process). So the batch's buffers are made in shared memory from the start, as
torch's ``default_collate`` does (``torch/utils/data/_utils/collate.py``, ``collate_tensor_fn``), and
as few of them as possible: the images of a batch are decoded into one buffer
(``SampleDataset.__getitems__``), the token tensors are views of another (``collate.token_tensors``).
Outside a worker they are plain allocations.
"""

from __future__ import annotations

import math

import torch


def worker_empty(shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """A new contiguous tensor; in a dataloader worker, in shared memory."""
    if torch.utils.data.get_worker_info() is None:
        return torch.empty(shape, dtype=dtype)
    storage = torch.UntypedStorage._new_shared(math.prod(shape) * dtype.itemsize)
    return torch.empty(0, dtype=torch.uint8).set_(storage).view(dtype).view(shape)


def whole_buffer(parts: list[torch.Tensor]) -> torch.Tensor | None:
    """The tensor ``torch.cat(parts)`` would give, as a view and no copy, when the parts are consecutive
    slices of one buffer that they fill from its start (the batch buffer of ``__getitems__``); else None."""
    parts = [part for part in parts if part.numel()]
    if not parts or not all(part.is_contiguous() for part in parts):
        return None
    storage, offset = parts[0].untyped_storage(), 0
    for part in parts:
        if part.untyped_storage().data_ptr() != storage.data_ptr() or part.storage_offset() != offset:
            return None
        offset += part.numel()
    if offset * parts[0].element_size() != storage.nbytes():
        return None
    shape = (sum(len(part) for part in parts), *parts[0].shape[1:])
    return torch.empty(0, dtype=parts[0].dtype).set_(storage, 0, shape)
