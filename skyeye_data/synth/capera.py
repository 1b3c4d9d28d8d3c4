"""Synthetic CapERA: ``CapERA_DATASET_{train,test}.json`` and ERA's videos under ``Videos/``."""

from __future__ import annotations

import json
import random
from pathlib import Path

from skyeye_data.io import write_text_atomic
from skyeye_data.sources.base import Scale
from skyeye_data.sources.capera import ANNOTATION_FILES, TOP_KEY, VIDEOS_DIR
from skyeye_data.synth.era import synthetic_videos, video_path, write_synthetic_video

# ---------------------------------------------------------------------------------------------
# Synthetic captions in CapERA's style: one detailed "manual" caption and four shorter variants
# ---------------------------------------------------------------------------------------------

# raw class → (what happens, where it happens)
_SCENES: dict[str, tuple[str, str]] = {
    "PostEarthquake": ("collapsed buildings and scattered rubble", "in a damaged town"),
    "Flood": ("brown water covering streets and houses", "in a flooded neighbourhood"),
    "Fire": ("thick smoke rising from a burning building", "next to a road"),
    "Landslide": ("a slope of loose earth that has slid over a road", "in the mountains"),
    "Mudslide": ("mud flowing between houses", "at the foot of a hill"),
    "TrafficCollision": ("two damaged cars stopped in the middle of the road", "at an intersection"),
    "TrafficCongestion": ("long lines of cars moving slowly", "on a highway"),
    "Harvesting": ("a combine harvester cutting crops", "in a large field"),
    "Ploughing": ("a tractor ploughing the soil", "in a farm field"),
    "Constructing": ("cranes and workers building a structure", "on a construction site"),
    "PoliceChase": ("police cars chasing a vehicle", "along a street"),
    "Conflict": ("a crowd of people clashing", "in a city square"),
    "Baseball": ("players playing a baseball game", "on a baseball field"),
    "Basketball": ("players playing basketball", "on an outdoor court"),
    "Boating": ("boats sailing", "on a lake"),
    "Cycling": ("a group of cyclists riding", "along a road"),
    "Running": ("many people running a race", "through the streets"),
    "Soccer": ("two teams playing soccer", "on a green field"),
    "Swimming": ("people swimming", "in a pool"),
    "CarRacing": ("race cars speeding", "around a track"),
    "Party": ("people dancing at a party", "in a garden"),
    "Concert": ("a large crowd watching a concert", "in front of a stage"),
    "ParadeProtest": ("people marching with banners", "down a main street"),
    "ReligiousActivity": ("people gathered in prayer", "around a place of worship"),
    "NonEvent": ("houses, trees and a quiet road", "in a residential area"),
}
_TIMES = ("during the day", "in the afternoon", "on a sunny day", "in the evening", "in the morning")
_OPENERS = ("An aerial video shows", "A drone video shows", "This aerial footage shows", "From above we see")


def synthetic_captions(raw_class: str, rng: random.Random) -> list[str]:
    what, where = _SCENES.get(raw_class, (f"a {raw_class.lower()} scene", "from above"))
    when, opener = rng.choice(_TIMES), rng.choice(_OPENERS)
    return [
        f"{opener} {what} {where} {when}.",
        f"The drone captures {what} {where}.",
        f"{what[0].upper()}{what[1:]} {where}.",
        f"A view from above of {what}.",
        f"This video shows {what} {when}.",
    ]


def write(raw_dir: Path, scale: Scale, rng: random.Random) -> int:
    """The two JSON files and Videos/{Tra,Test}/<Class>/ (ERA's archive); video bytes equal the ERA synth's."""
    videos = synthetic_videos(scale)
    entries: dict[str, list[dict]] = {"train": [], "test": []}
    for video in videos:
        write_synthetic_video(video_path(raw_dir / VIDEOS_DIR, video, scale), video, scale)
        captions = synthetic_captions(video.raw_class, rng)
        entries[video.split].append({"video_id": video.file_name, "annotation": {"English_caption": captions}})
    for split, file_name in ANNOTATION_FILES.items():
        write_text_atomic(raw_dir / file_name, json.dumps({TOP_KEY: entries[split]}, indent=1) + "\n")
    return len(videos)
