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

**Recycled image buffers.** A new shared-memory file has no pages: the worker's first write into each
4 KiB page faults, and the kernel allocates and zeroes it (147 faults per 448 px image). Measured with
``/proc/<pid>/stat`` and ``schedstat`` while ``benchmarks/dataloader_bench.py`` ran (384 samples, 512 px
JPEG -> 448, 1 worker): the worker's thread ran 4.7-5.0 ms per sample against 3.3-3.5 ms for the same
work in the main process at 0 workers, of which 0.83 ms was system time on those faults (0.03 ms in
the main process, whose ``torch.empty`` gets back the heap pages it freed) and the rest user time
writing into the fresh pages. That, not threads, was why 1 worker was slower than 0: the main process
at 0 workers runs the whole sample on one thread (torch's intra-op threads stayed at 0.0 s of CPU; the
uint8 resize of one image and ``decode_jpeg`` do not split across them). So a worker keeps the image
buffers it has sent in a small pool (``BufferPool``) and writes the next batch into one the main
process has finished with. The main process says so through a one-byte flag per buffer in a shared
``ledger`` sent with the batch: ``received`` sets a ``weakref.finalize`` on the buffer's storage,
which runs when the last tensor viewing it is gone (torch keeps one Python object per storage while it
lives), and clears the flag. A batch the consumer keeps keeps its buffer; the worker then takes a new
one, as before. With the pool the same run gives 2.8-3.3 ms per sample in the worker, 0.08-0.10 ms of
it system time, 2-4 faults per sample: level with 0 workers.
"""

from __future__ import annotations

import math
import os
import weakref

import numpy as np
import torch

POOL_SLOTS = 16  # buffers a worker keeps: its prefetched batches, the ones in the consumer's hands, a spare
POOL_BYTES = 512 << 20  # and at most this much shared memory kept between batches
USE_COUNT = getattr(torch._C, "_storage_Use_Count", None)


def worker_empty(shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """A new contiguous tensor; in a dataloader worker, in shared memory."""
    if torch.utils.data.get_worker_info() is None:
        return torch.empty(shape, dtype=dtype)
    storage = torch.UntypedStorage._new_shared(math.prod(shape) * dtype.itemsize)
    return torch.empty(0, dtype=torch.uint8).set_(storage).view(dtype).view(shape)


class BufferPool:
    """One worker's reusable shared-memory buffers, by exact size (a batch of the same image count and
    size fills one exactly, as ``whole_buffer`` needs). A buffer may be written again when no tensor of
    this process views it (only the pool holds it: a batch being collated or waiting in the queue's
    feeder thread holds it too) and its flag in ``ledger`` is 0: ``handoff`` sets it to 1 as the batch is
    pickled, the consumer's ``release`` sets it back. A buffer dropped unsent (packing reorders the
    images into another one) is free again at once."""

    def __init__(self, slots: int = POOL_SLOTS, max_bytes: int = POOL_BYTES):
        self.ledger = torch.zeros(slots, dtype=torch.uint8).share_memory_()
        self.flags = self.ledger.numpy()
        self.buffers: list[torch.UntypedStorage | None] = [None] * slots
        self.slot_by_pointer: dict[int, int] = {}
        self.max_bytes = max_bytes
        self.pid = os.getpid()

    def take(self, nbytes: int) -> torch.UntypedStorage:
        """A free buffer of ``nbytes``, or a new one (kept in a free slot if the budget allows)."""
        free = [slot for slot in range(len(self.buffers)) if self._free(slot)]
        for slot in free:
            if self.buffers[slot] is not None and self.buffers[slot].nbytes() == nbytes:
                return self.buffers[slot]
        storage = torch.UntypedStorage._new_shared(nbytes)
        empty = [slot for slot in free if self.buffers[slot] is None]
        slot = empty[0] if empty else (free[0] if free else None)  # else: a free buffer of another size goes
        if slot is not None:
            self._drop(slot)
            if self.kept_bytes() + nbytes <= self.max_bytes:
                self.buffers[slot] = storage
                self.slot_by_pointer[storage.data_ptr()] = slot
        return storage

    def slot_of(self, tensor: torch.Tensor) -> int | None:
        return self.slot_by_pointer.get(tensor.untyped_storage().data_ptr())

    def kept_bytes(self) -> int:
        return sum(buffer.nbytes() for buffer in self.buffers if buffer is not None)

    def _free(self, slot: int) -> bool:
        buffer = self.buffers[slot]
        # the StorageImpl's reference count: 1 = the pool's own Python object alone (a torch without this
        # private call never reuses a buffer: a new one per batch, as without the pool)
        return self.flags[slot] == 0 and (buffer is None or (USE_COUNT is not None and USE_COUNT(buffer._cdata) == 1))

    def _drop(self, slot: int) -> None:
        if self.buffers[slot] is not None:
            del self.slot_by_pointer[self.buffers[slot].data_ptr()]
            self.buffers[slot] = None


_pool: BufferPool | None = None


def worker_pool() -> BufferPool:
    global _pool
    if _pool is None or _pool.pid != os.getpid():  # one per worker process, never a parent's copy
        _pool = BufferPool()
    return _pool


def worker_buffer(shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """As ``worker_empty``, from the worker's pool of recycled buffers (for the big image batches)."""
    if torch.utils.data.get_worker_info() is None:
        return torch.empty(shape, dtype=dtype)
    storage = worker_pool().take(math.prod(shape) * dtype.itemsize)
    return torch.empty(0, dtype=torch.uint8).set_(storage).view(dtype).view(shape)


def handoff(tensor: torch.Tensor) -> tuple:
    """``received``'s arguments for sending ``tensor`` out of this process: with its pool flag if pooled."""
    slot = _pool.slot_of(tensor) if _pool is not None and _pool.pid == os.getpid() and tensor.device.type == "cpu" else None
    if slot is None:
        return (tensor, None, None)
    _pool.flags[slot] = 1  # away until the consumer releases it
    return (tensor, _pool.ledger, slot)


def received(tensor: torch.Tensor, ledger: torch.Tensor | None, slot: int | None) -> torch.Tensor:
    """On the receiving side: when the last view of ``tensor``'s buffer is gone, its worker may reuse it."""
    if ledger is not None:
        weakref.finalize(tensor.untyped_storage(), release, ledger.numpy(), slot)
    return tensor


def release(flags: np.ndarray, slot: int) -> None:
    flags[slot] = 0


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
