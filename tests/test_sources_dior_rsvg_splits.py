"""The real DIOR-RSVG split files shipped for `skyeye synth --scale paper` (skyeye_data/synth/data/dior_rsvg/)."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from skyeye_data.sources.dior_rsvg import PAPER_IMAGES, PAPER_SPLIT_SIZES, SPLIT_NAMES
from skyeye_data.synth import dior_rsvg as writer
from skyeye_data.synth.dior import MAX_OBJECTS, paper_object_counts


def shipped(split: str) -> list[int]:
    return [int(line) for line in writer.real_split_file(split).split()]


def test_shipped_splits_are_the_published_files(real_samples):
    for split in SPLIT_NAMES:  # byte for byte ZhanYang-nwpu/RSVG-pytorch DIOR_RSVG/<split>.txt
        assert writer.real_split_file(split) == (real_samples / "dior_rsvg" / f"{split}.txt").read_text()


def test_shipped_splits_place_every_object_once():
    splits = {split: shipped(split) for split in SPLIT_NAMES}
    assert {s: len(v) for s, v in splits.items()} == PAPER_SPLIT_SIZES
    every = [i for v in splits.values() for i in v]
    assert sorted(every) == list(range(sum(PAPER_SPLIT_SIZES.values())))  # disjoint, no gap
    assert splits["test"][:3] == [0, 1, 6] and splits["train"][:3] == [3, 4, 5]  # the real ones, not a draw


def test_paper_writer_refuses_objects_the_real_splits_do_not_index(tmp_path, monkeypatch):
    monkeypatch.setattr(writer, "PAPER_IMAGES", 3)  # a few synthetic objects, 38,320 real indices
    few = sum(paper_object_counts()[:3])
    with pytest.raises(RuntimeError, match=f"holds {few} objects"):
        writer.write(tmp_path, "paper", random.Random(0))
    assert not list(tmp_path.glob("*.txt"))  # no split file written beside a wrong corpus


def test_paper_objects_per_image_follow_the_published_totals_with_a_geometric_spread():
    counts = paper_object_counts()
    assert len(counts) == PAPER_IMAGES and sum(counts) == sum(PAPER_SPLIT_SIZES.values())  # 17,402 images, 38,320 objects
    assert counts[0] == 1  # the one public annotation file, RSVGD/Annotations/00001.xml, holds one object
    histogram = Counter(counts)
    assert min(histogram) == 1 and max(histogram) <= MAX_OBJECTS
    # geometric with mean 2.2: each count about 0.55 times as frequent as the one before it
    for k in (1, 2, 3, 4):
        assert 0.45 < histogram[k + 1] / histogram[k] < 0.65
