"""Synthetic ERA videos: ``Train/<Class>/<Class>_NNN.mp4`` and ``Test/...``; shared with CapERA.

The same (split, file name) always gives the same bytes, so CapERA's synthetic videos equal ERA's.
"""

from __future__ import annotations

import random
import zlib
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw

from skyeye_data.sources.base import Scale
from skyeye_data.sources.era import ERA_CLASSES, PAPER_SPLIT_SIZES, VIDEOS_LEVEL
from skyeye_data.video import write_video

@dataclass(frozen=True)
class SyntheticVideo:
    split: str
    raw_class: str
    file_name: str


def synthetic_videos(scale: Scale) -> list[SyntheticVideo]:
    """The videos of a synthetic ERA/CapERA corpus: mini = 3 classes, 2 train + 1 test video each;
    paper = the real 1,473 / 1,391 videos spread evenly over the 25 classes."""
    classes = list(ERA_CLASSES)
    if scale == "mini":
        per_class = {"train": {c: 2 for c in ("Baseball", "TrafficCollision", "NonEvent")},
                     "test": {c: 1 for c in ("Baseball", "TrafficCollision", "NonEvent")}}
    else:
        per_class = {}
        for split, total in PAPER_SPLIT_SIZES.items():
            base, extra = divmod(total, len(classes))
            per_class[split] = {c: base + (1 if i < extra else 0) for i, c in enumerate(classes)}
    return [
        SyntheticVideo(split, raw_class, f"{raw_class}_{number:03d}.mp4")
        for split in ("train", "test")
        for raw_class, count in per_class[split].items()
        for number in range(1, count + 1)
    ]


def synthetic_video_size(scale: Scale) -> tuple[int, int]:
    """(side, frames): mini videos are big enough to look at; paper ones only need to exist."""
    return (64, 12) if scale == "mini" else (16, 4)


def write_synthetic_video(path: Path, video: SyntheticVideo, scale: Scale) -> Path:
    """A drone-clip stand-in: a seeded ground colour and a square that moves across it."""
    side, frames = synthetic_video_size(scale)
    seed = zlib.crc32(f"{video.split}/{video.file_name}".encode())
    rng = random.Random(seed)
    ground = tuple(rng.randrange(40, 160) for _ in range(3))
    mover = tuple(rng.randrange(160, 256) for _ in range(3))
    box = max(2, side // 4)
    images = []
    for t in range(frames):
        image = Image.new("RGB", (side, side), ground)
        x = (t * (side - box)) // max(1, frames - 1)
        ImageDraw.Draw(image).rectangle([x, side // 3, x + box - 1, side // 3 + box - 1], fill=mover)
        images.append(image)
    return write_video(path, images)


def video_path(videos_dir: Path, video: SyntheticVideo, scale: Scale) -> Path:
    """Where the archive puts a video: ``Videos/Tra|Test/<Class>/<name>``; in the mini corpus one name has
    the space before ``.mp4`` that a public loader reports (``Baseball_002 .mp4``)."""
    folder = "Tra" if video.split == "train" else "Test"
    name = video.file_name
    if scale == "mini" and (video.split, name) == ("train", "Baseball_002.mp4"):
        name = "Baseball_002 .mp4"
    return videos_dir / folder / video.raw_class / name


def write(raw_dir: Path, scale: Scale, rng: random.Random) -> int:  # noqa: ARG001
    """Write Videos/Tra/<Class>/<Class>_NNN.mp4 and Videos/Test/...; the bytes depend only on the name."""
    videos = synthetic_videos(scale)
    for video in videos:
        write_synthetic_video(video_path(raw_dir / VIDEOS_LEVEL, video, scale), video, scale)
    return len(videos)
