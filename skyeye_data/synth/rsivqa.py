"""Synthetic RSIVQA: every subset's text files, and stand-in images under ``<Subset>/images/``."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from skyeye_data.io import atomic_path
from skyeye_data.sources.base import Scale
from skyeye_data.sources.rsivqa import SUBSETS, Subset
from skyeye_data.synth.painter import synth_image
from skyeye_data.synth.rsicd import rsicd_names


@dataclass(frozen=True)
class SubsetSynth:
    """How one subset's synthetic copy looks."""

    # file name -> (images, triplets) at paper scale (estimated, see write)
    paper_files: tuple[tuple[str, int, int], ...]
    image_size: tuple[int, int]  # mini
    image_ext: str  # synthetic images


# paper scale: the real per-file line counts (RSIVQA.published_files, counted in the published files);
# images per file: one scene question per image in ucm_vqa / sydney_vqa / rsicd_vqa (the RSICD images),
# ucm_res asks its images five questions each (as its first 200 lines do), DOTA and HRRSD their image counts
SYNTH: dict[str, SubsetSynth] = {
    "UCM": SubsetSynth((("ucm_vqa.txt", 2100, 2100), ("ucm_res.txt", 559, 2795)), (256, 256), ".tif"),
    "Sydney": SubsetSynth((("sydney_vqa.txt", 613, 613),), (500, 500), ".tif"),
    "AID": SubsetSynth((("rsicd_vqa.txt", 10921, 10921),), (224, 224), ".jpg"),
    "DOTA": SubsetSynth((("dota_train_vqa2.txt", 1411, 12389), ("dota_val_vqa2.txt", 458, 4041)), (200, 150), ".png"),
    "HRRSD": SubsetSynth((("opt_val_vqa.txt", 21761, 78834),), (160, 120), ".jpg"),
}

def write(raw_dir: Path, scale: Scale, rng: random.Random) -> int:
    """Write every subset's text files and images under ``raw_dir/<Subset>/``.

    mini: two or three images per file, 1-5 triplets each, with the real quirks (a line with a
    leading space, the DOTA/HRRSD space after ':', a question with an empty object slot, a blank
    line). paper: per-file triplet and image counts estimated from the published files (their
    sizes over the mean line length of their first 200 lines, scaled to the README's 111,693
    triplets and 37,264 images); 8x8 images. UCM and Sydney images are named 1.tif.. like the
    caption datasets' so the Conversa joins line up.
    """
    written = 0
    for subset in SUBSETS:
        for file_name, paper_images, paper_triplets in SYNTH[subset.folder].paper_files:
            if scale == "mini":
                images, triplets = 3 if file_name != "ucm_res.txt" else 2, None
            else:
                images, triplets = paper_images, paper_triplets
            written += _write_file(raw_dir, subset, file_name, images, triplets, scale, rng)
    return written

def _write_file(raw_dir, subset, file_name, images, triplets, scale, rng) -> int:
    names = _synthetic_names(subset, file_name, images)
    size = SYNTH[subset.folder].image_size if scale == "mini" else (8, 8)
    image_dir = raw_dir / subset.folder / "images"
    for name in names:
        path = image_dir / (name if Path(name).suffix else name + SYNTH[subset.folder].image_ext)
        if not path.exists():  # UCM's two files share images
            synth_image(path, size[0], size[1], seed=f"rsivqa:{subset.folder}:{name}")
    per_image = _spread(triplets, len(names)) if triplets is not None else None
    count = 0
    path = raw_dir / subset.folder / file_name
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="\n") as out:
        sep = " " if subset.default_ext else ""  # DOTA/HRRSD: "P0000: how many ..."
        for index, name in enumerate(names):
            n = per_image[index] if per_image is not None else _mini_questions_per_image(subset, file_name)
            for k, (question, answer) in enumerate(_synthetic_questions(subset, file_name, rng, n)):
                lead = " " if scale == "mini" and index == 1 and k == 0 else ""  # the leading-space quirk
                out.write(f"{lead}{name}:{sep}{question}{answer}\n")
                count += 1
        if scale == "mini":
            out.write("\n")  # a trailing blank line, as some files have
    return count



_SCENES = ("farmland", "residential", "airport", "forest", "industrial", "river", "beach", "parking")
_OBJECTS = ("airplane", "trees", "ship", "storage tank", "small vehicle", "tennis court", "bridge")
_WHERE = ("top left corner", "central section", "diagonal", "everywhere", "i cannot see it")


def _synthetic_names(subset: Subset, file_name: str, images: int) -> list[str]:
    if subset.folder in ("UCM", "Sydney"):
        return [f"{i}.tif" for i in range(1, images + 1)]
    if subset.folder == "AID":  # rsicd_vqa.txt names RSICD's own files: the synthetic RSICD's names
        return rsicd_names(images)
    if subset.folder == "DOTA":
        start = 0 if "train" in file_name else 5000  # train and val images never share a name
        return [f"P{start + i:04d}" for i in range(images)]
    return [f"{i:05d}" for i in range(1, images + 1)]


def _mini_questions_per_image(subset: Subset, file_name: str) -> int:
    # the scene files ask one theme question per image; the others ask several
    return 1 if subset.folder in ("UCM", "Sydney", "AID") and file_name != "ucm_res.txt" else 5


def _spread(total: int, parts: int) -> list[int]:
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


def _synthetic_questions(subset: Subset, file_name: str, rng: random.Random, n: int) -> Iterator[tuple[str, str]]:
    """(question with its '?', answer) pairs in the styles of the real files."""
    if subset.default_ext:  # detection subsets: counts and presence
        for k in range(n):
            obj = _OBJECTS[k % len(_OBJECTS)]
            if k % 2 == 0:
                yield f"how many {obj}s are there in this picture?", str(rng.randrange(1, 60))
            else:
                yield f"does this picture contain {obj}?", rng.choice(("yes", "no"))
        return
    human = file_name == "ucm_res.txt"
    templates = [
        (("What" if human else "what") + " is the theme of this picture?", lambda: rng.choice(_SCENES)),
        ("Does this picture contain an airplane?", lambda: rng.choice(("yes", "no"))),
        ("Does this picture contain trees?", lambda: rng.choice(("yes", "no"))),
        ("How many  in the picture?", lambda: "zero"),  # the real files' empty object slot
        ("What is the location of the trees in this picture?", lambda: rng.choice(_WHERE)),
    ]
    for k in range(n):
        question, answer = templates[k % len(templates)]
        yield question, answer()
