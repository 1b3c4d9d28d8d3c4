"""Which samples an epoch trains on, and which rank sees which.

**The epoch plan** (``data.mixture_mode: epoch``, the default). Each source has a per-epoch share
(``data.mixture``): ratio ``w`` puts every sample of the source ``floor(w)`` times into the epoch plus
a random ``frac(w)`` share of them once more (drawn again every epoch), so ``1`` = each sample once,
``0.5`` = a different random half each epoch, ``2`` = twice, ``0`` = left out. The plan is then
shuffled. Everything is a function of ``(seed, epoch)``. This is *not* MiniGPT-v2's ``sample_ratio``:
that one never repeats or drops samples within an epoch on purpose, it picks which dataset supplies
the next batch (below).

**MiniGPT-v2's semantics** (``data.mixture_mode: minigptv2``). ``minigpt4/datasets/datasets/
dataloader_utils.py`` ``MultiIterLoader.__next__`` draws, for every iteration, one dataset with
probability ``ratio / sum(ratios)`` (``random.choices``) and takes its next batch; each dataset is an
endless loader over its own shuffled, rank-sharded order, and an epoch is ``iters_per_epoch``
iterations (``runner_base.py``, ``train_configs/minigptv2_finetune.yaml``: 1000). Here: every batch
comes from one source drawn with those probabilities (per rank, from ``(seed, epoch, rank)``); each
source is read in passes, every pass a fresh permutation sharded over ranks as ``DistributedSampler``
does, and the stream position carries over epochs. Samples are not seen exactly once per epoch in
this mode (that is its definition); ranks stay in lock-step (same number of batches).

**Ranks** (epoch mode). The plan is padded to a multiple of the world size with copies of its first items, and
rank ``r`` takes items ``r, r + W, r + 2W, ...`` (as ``DistributedSampler``). Padding copies carry
``weight = 0``: the collator masks their labels, so they keep the ranks in lock-step (DDP needs the
same number of batches everywhere) without training on any sample twice. Within a rank, each item
goes to exactly one dataloader worker (map-style dataset), so every planned sample is trained on
exactly once per epoch across ranks and workers.

**Resume.** ``start`` skips the items a rank has already consumed in the current epoch.
"""

from __future__ import annotations

import math
import zlib
from typing import Iterator, NamedTuple

import numpy as np


class PlanItem(NamedTuple):
    index: int  # position in the dataset
    weight: float  # 1: train on it; 0: padding that keeps ranks in step


def source_seed(name: str) -> int:
    return zlib.crc32(name.encode())  # stable across processes, unlike hash()


def epoch_plan(
    source_codes: np.ndarray, source_names: list[str], ratios: dict[str, float], default_ratio: float, seed: int, epoch: int
) -> np.ndarray:
    """Dataset positions to train on this epoch, shuffled (see the module docstring)."""
    parts: list[np.ndarray] = []
    for code, name in enumerate(source_names):
        ratio = ratios.get(name, default_ratio)
        if ratio < 0:
            raise ValueError(f"mixture ratio of {name} must be >= 0, got {ratio}")
        members = np.flatnonzero(source_codes == code)
        whole, fraction = divmod(ratio, 1.0)
        parts += [members] * int(whole)
        extra = int(round(fraction * len(members)))
        if extra:
            rng = np.random.default_rng([seed, epoch, source_seed(name)])
            parts.append(np.sort(rng.choice(members, size=extra, replace=False)))
    plan = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
    return np.random.default_rng([seed, epoch]).permutation(plan)


def rank_share(plan: np.ndarray, rank: int, world_size: int) -> list[PlanItem]:
    """This rank's items: stride ``world_size`` over the plan padded with weight-0 copies."""
    if not len(plan):
        return []
    padded_length = math.ceil(len(plan) / world_size) * world_size
    items = [PlanItem(int(i), 1.0) for i in plan]
    items += [PlanItem(int(plan[k % len(plan)]), 0.0) for k in range(padded_length - len(plan))]
    return items[rank::world_size]


def source_probabilities(source_names: list[str], ratios: dict[str, float], default_ratio: float) -> np.ndarray:
    """MultiIterLoader: ``ratio / sum(ratios)`` per source."""
    weights = np.array([ratios.get(name, default_ratio) for name in source_names], dtype=np.float64)
    if (weights < 0).any() or weights.sum() <= 0:
        raise ValueError(f"mixture ratios must be >= 0 with a positive sum, got {dict(zip(source_names, weights.tolist()))}")
    return weights / weights.sum()


def source_draws(probabilities: np.ndarray, iterations: int, seed: int, epoch: int, rank: int) -> np.ndarray:
    """The source of each of this rank's ``iterations`` batches in ``epoch``."""
    return np.random.default_rng([seed, epoch, rank, 7]).choice(len(probabilities), size=iterations, p=probabilities)


def stream_items(members: np.ndarray, name: str, seed: int, rank: int, world_size: int, start: int, count: int) -> list[int]:
    """Items ``start .. start+count`` of a source's endless stream for this rank: passes of fresh permutations,
    each sharded ``rank::world_size`` (a source smaller than the world size is shared, not sharded)."""
    out: list[int] = []
    position, number = 0, 0
    while len(out) < count:
        order = np.random.default_rng([seed, source_seed(name), number]).permutation(members)
        share = order[rank::world_size] if len(order) >= world_size else order
        if position + len(share) > start:
            out += share[max(0, start - position) :].tolist()
        position += len(share)
        number += 1
    return out[:count]


def probability_plan(
    source_codes: np.ndarray, source_names: list[str], ratios: dict[str, float], default_ratio: float,
    batch_size: int, iterations: int, seed: int, epoch: int, rank: int, world_size: int,
) -> list[PlanItem]:  # fmt: skip
    """This rank's items for ``epoch`` in MiniGPT-v2's per-iteration sampling (see the module docstring)."""
    probabilities = source_probabilities(source_names, ratios, default_ratio)
    consumed = np.zeros(len(source_names), dtype=np.int64)  # batches each source gave this rank in earlier epochs
    for earlier in range(epoch):
        consumed += np.bincount(source_draws(probabilities, iterations, seed, earlier, rank), minlength=len(source_names))
    draws = source_draws(probabilities, iterations, seed, epoch, rank)
    wanted = np.bincount(draws, minlength=len(source_names))
    streams = {
        code: iter(stream_items(np.flatnonzero(source_codes == code), source_names[code], seed, rank, world_size,
                                int(consumed[code]) * batch_size, int(wanted[code]) * batch_size))
        for code in np.flatnonzero(wanted)
    }  # fmt: skip
    return [PlanItem(next(streams[code]), 1.0) for code in draws for _ in range(batch_size)]


def group_by_length(items: list[PlanItem], lengths: np.ndarray, batch_size: int, seed: int, epoch: int, mega: int = 50) -> list[PlanItem]:
    """Reorder (never add or drop) a rank's items: within windows of ``mega`` batches, longest first, so a batch
    holds samples of similar length; windows keep the shuffled order, batches are then shuffled (as
    transformers' ``LengthGroupedSampler``). The longest batch comes first, so memory peaks at once."""
    window = mega * batch_size
    ordered: list[PlanItem] = []
    for start in range(0, len(items), window):
        chunk = items[start : start + window]
        ordered += sorted(chunk, key=lambda item: -int(lengths[item.index]))
    whole = len(ordered) // batch_size * batch_size  # a partial batch stays last, where the loader expects it
    batches = [ordered[i : i + batch_size] for i in range(0, whole, batch_size)]
    tail = ordered[whole:]
    if len(batches) > 2:
        longest = max(range(len(batches)), key=lambda b: max(int(lengths[i.index]) for i in batches[b]))
        rest = [b for b in range(len(batches)) if b != longest]
        order = [longest] + [rest[k] for k in np.random.default_rng([seed, epoch, 11]).permutation(len(rest))]
        batches = [batches[b] for b in order]
    return [item for batch in batches for item in batch] + tail


class MixtureSampler:
    """A sampler for ``DataLoader``: yields this rank's ``PlanItem`` for the current epoch."""

    def __init__(
        self, dataset, ratios: dict[str, float], default_ratio: float, seed: int, rank: int = 0, world_size: int = 1,
        mode: str = "epoch", batch_size: int = 1, iterations: int | None = None, lengths: np.ndarray | None = None,
    ):  # fmt: skip
        self.lengths = lengths  # group_by_length: token counts per dataset position
        if mode == "minigptv2" and not iterations:
            raise ValueError("data.mixture_mode minigptv2 needs data.iters_per_epoch (MiniGPT-v2: 1000)")
        self.mode, self.batch_size, self.iterations = mode, batch_size, iterations
        self.dataset, self.ratios, self.default_ratio = dataset, ratios, default_ratio
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.epoch = self.start = 0
        self._cached: tuple[int, list[PlanItem]] | None = None

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = epoch, start

    def items(self) -> list[PlanItem]:
        if self._cached is None or self._cached[0] != self.epoch:
            if self.mode == "minigptv2":
                names = self.dataset.source_names
                items = probability_plan(
                    self.dataset.source_codes, names, self.ratios, self.default_ratio, self.batch_size,
                    self.iterations, self.seed, self.epoch, self.rank, self.world_size,
                )  # fmt: skip
                self._cached = (self.epoch, items)
                return items
            plan = epoch_plan(
                self.dataset.source_codes, self.dataset.source_names, self.ratios, self.default_ratio, self.seed, self.epoch
            )
            share = rank_share(plan, self.rank, self.world_size)
            if self.lengths is not None:
                share = group_by_length(share, self.lengths, self.batch_size, self.seed, self.epoch)
            self._cached = (self.epoch, share)
        return self._cached[1]

    def __iter__(self) -> Iterator[PlanItem]:
        return iter(self.items()[self.start :])

    def __len__(self) -> int:
        return max(0, len(self.items()) - self.start)
