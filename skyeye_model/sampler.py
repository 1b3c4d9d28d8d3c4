"""Which samples an epoch trains on, and which rank sees which.

**The epoch plan.** Each source has a sample ratio (MiniGPT-v2's ``sample_ratio``, from the training
config's ``data.mixture``): ratio ``w`` puts every sample of the source ``floor(w)`` times into the
epoch plus a random ``frac(w)`` share of them once more (drawn again every epoch), so ``1`` = each
sample once, ``0.5`` = a different random half each epoch, ``2`` = twice, ``0`` = left out. The plan is
then shuffled. Everything is a function of ``(seed, epoch)``.

**Ranks.** The plan is padded to a multiple of the world size with copies of its first items, and
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


class MixtureSampler:
    """A sampler for ``DataLoader``: yields this rank's ``PlanItem`` for the current epoch."""

    def __init__(self, dataset, ratios: dict[str, float], default_ratio: float, seed: int, rank: int = 0, world_size: int = 1):
        self.dataset = dataset
        self.ratios = ratios
        self.default_ratio = default_ratio
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0
        self.start = 0
        self._cached: tuple[int, list[PlanItem]] | None = None

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = epoch, start

    def items(self) -> list[PlanItem]:
        if self._cached is None or self._cached[0] != self.epoch:
            plan = epoch_plan(
                self.dataset.source_codes, self.dataset.source_names, self.ratios, self.default_ratio, self.seed, self.epoch
            )
            self._cached = (self.epoch, rank_share(plan, self.rank, self.world_size))
        return self._cached[1]

    def __iter__(self) -> Iterator[PlanItem]:
        return iter(self.items()[self.start :])

    def __len__(self) -> int:
        return max(0, len(self.items()) - self.start)
