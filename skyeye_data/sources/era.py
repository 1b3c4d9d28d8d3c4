"""ERA: Event Recognition in Aerial videos (Mou et al., 2020).

What it is
    2,864 YouTube drone clips, each 5 s at 24 fps and 640x640 pixels, each labelled with one of 25
    events (disasters, traffic, farming, sports, gatherings, and "non-event"). SkyEye-968k uses the
    videos through CapERA (captions) and ERA-VQA (questions generated from the event label); this
    converter yields one :class:`~skyeye_data.schema.ClassificationRecord` per video
    (``media="video"``, ``label`` = the readable event name) for the compiler to turn into questions.

Raw layout (under ``RAW/era/``; the variants are :attr:`ERASource.layouts`, with their evidence)
    ``Videos/Tra/<Class>/<Class>_<NNN>.mp4`` and ``Videos/Test/<Class>/<Class>_<NNN>.mp4``, as the
    archive extracts (the ``Videos/`` level may be dropped, ``Tra`` may be renamed ``Train``); both
    split folders must be there (one missing is a LayoutError, never a silent skip). There is no label
    file: the class is the folder name and the file-name prefix. The release splits the videos
    about 50/50 into training and test sets (1,473 train / 1,391 test videos, the split CapERA keeps;
    these counts are what the ``paper`` synthetic scale reproduces);
    numbering restarts in each split, so ``Baseball_001.mp4`` names two different videos, one in
    ``Train/`` and one in ``Test/``. Split folder names are matched case-insensitively
    (``Train``/``train``/``training``). A folder of class folders with no split level cannot be
    converted (the split is unknown, and guessing it would leak test videos into training): the
    converter stops with a :class:`LayoutError` saying so.

Class folders (raw name → label; the paper's 25 class names written in CamelCase, as CapERA's ids
    ``Baseball_001``/``TrafficCollision_...`` suggest — no public listing of the release's folders was
    found, hence the tolerant matching below)
    PostEarthquake → post-earthquake, Flood → flood, Fire → fire, Landslide → landslide,
    Mudslide → mudslide, TrafficCollision → traffic collision, TrafficCongestion → traffic congestion,
    Harvesting → harvesting, Ploughing → ploughing, Constructing → constructing,
    PoliceChase → police chase, Conflict → conflict, Baseball → baseball, Basketball → basketball,
    Boating → boating, Cycling → cycling, Running → running, Soccer → soccer, Swimming → swimming,
    CarRacing → car racing, Party → party, Concert → concert, ParadeProtest → parade/protest,
    ReligiousActivity → religious activity, NonEvent → non-event.
    Folder names are matched ignoring case, spaces, ``_`` and ``-`` (``Post-earthquake``,
    ``traffic_collision`` work). A folder outside this list is still a class (the folder is the
    label): its name is split into words and the record is flagged ``class_not_in_era_list``.

Quirks handled
    - A file name with a space before the extension (``Baseball_001 .mp4``, as one public loader
      reports the archive's names) is the same video as CapERA's ``Baseball_001.mp4``: stems are
      compared without trailing spaces (:func:`video_stem`), so record ids and image keys agree.
    - Hidden files (``.DS_Store``) are skipped; other non-video files, files lying directly in a
      split folder, and sub-folders inside a class folder are quarantined (one entry each).
    - A file whose name prefix names another class than its folder (``Soccer/Baseball_003.mp4``) is
      quarantined: the label would be ambiguous.
    - A missing, corrupt or truncated video (PyAV cannot open it, decode its first frame, or finds
      fewer packets than the header declares) is quarantined with the decoder's reason.
    - Two files with the same stem in one split (``Baseball_001.mp4`` and ``Baseball_001.avi``, or
      in two class folders) would share an ``image_key``: the second is quarantined.

Identity
    ``record_id`` = ``era:<split>/<stem>``; ``image_key`` = ``era:<split>/<stem>`` — the same key the
    CapERA converter gives the same video (CapERA ships ERA's videos under the same file names), so
    later steps can join the two sources on one video. ``image_sha256`` is the video file's hash.

Citation
    L. Mou, Y. Hua, P. Jin, X. X. Zhu, "ERA: A Data Set and Deep Learning Benchmark for Event
    Recognition in Aerial Videos", IEEE Geoscience and Remote Sensing Magazine 8(4), 2020.
    https://lcmou.github.io/ERA_Dataset/ (academic use only; not to be redistributed).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator

from skyeye_data.schema import ClassificationRecord, Record
from skyeye_data.sources import register
from skyeye_data.sources.base import FoundLayout, Layout, LayoutError, SourceConverter
from skyeye_data.sources.base import Rejected, build_record, media_fields, relpath
from skyeye_data.video import VideoError, probe_video

FAMILY = "era"
VIDEO_EXTENSIONS = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v"})

# raw class folder name → readable label; the 25 events of the paper, in its order
ERA_CLASSES: dict[str, str] = {
    "PostEarthquake": "post-earthquake",
    "Flood": "flood",
    "Fire": "fire",
    "Landslide": "landslide",
    "Mudslide": "mudslide",
    "TrafficCollision": "traffic collision",
    "TrafficCongestion": "traffic congestion",
    "Harvesting": "harvesting",
    "Ploughing": "ploughing",
    "Constructing": "constructing",
    "PoliceChase": "police chase",
    "Conflict": "conflict",
    "Baseball": "baseball",
    "Basketball": "basketball",
    "Boating": "boating",
    "Cycling": "cycling",
    "Running": "running",
    "Soccer": "soccer",
    "Swimming": "swimming",
    "CarRacing": "car racing",
    "Party": "party",
    "Concert": "concert",
    "ParadeProtest": "parade/protest",
    "ReligiousActivity": "religious activity",
    "NonEvent": "non-event",
}

# split name → folder names accepted for it (compared case-insensitively)
# split name → folder names accepted for it (compared case-insensitively); the ERA archive's own are
# ``Tra`` and ``Test`` (under ``Videos/``), ``Train``/``Training`` are common renames
SPLIT_FOLDERS: dict[str, tuple[str, ...]] = {"train": ("tra", "train", "training"), "test": ("test", "testing")}
VIDEOS_LEVEL = "Videos"  # the archive's top folder; kept by most users, dropped by some
PAPER_SPLIT_SIZES: dict[str, int] = {"train": 1473, "test": 1391}

_NUMBERED_STEM = re.compile(r"^(?P<prefix>.+?)[_ -](?P<number>\d+)\s*$")
_CAMEL_WORD = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")


def _squash(name: str) -> str:
    """Lower case, letters and digits only: 'Post-earthquake' and 'PostEarthquake' compare equal."""
    return re.sub(r"[^a-z0-9]", "", name.lower())


_LABEL_BY_SQUASHED = {_squash(raw): label for raw, label in ERA_CLASSES.items()}


def event_label(raw_class: str) -> tuple[str, bool]:
    """The readable label of a class folder name, and whether it is one of ERA's 25 classes."""
    known = _LABEL_BY_SQUASHED.get(_squash(raw_class))
    if known:
        return known, True
    words = _CAMEL_WORD.findall(raw_class)
    return " ".join(w.lower() for w in words) or raw_class.strip().lower(), False


def class_prefix(file_name: str) -> str | None:
    """The class part of '<Class>_<NNN>.mp4' ('Baseball' of 'Baseball_001.mp4'); None if unnumbered."""
    match = _NUMBERED_STEM.match(Path(file_name).stem)
    return match.group("prefix") if match else None


def video_key(split: str, file_name: str) -> str:
    """Canonical identity of an ERA video, shared by the ERA and CapERA converters."""
    return f"{FAMILY}:{split}/{video_stem(file_name)}"


def video_stem(file_name: str) -> str:
    """The file name's stem without trailing spaces: one public ERA loader reports ``Baseball_001 .mp4``
    (a space before the extension) where CapERA's JSON names ``Baseball_001.mp4``; both are one video."""
    return Path(file_name).stem.rstrip()


def find_split_dirs(root: Path) -> dict[str, Path]:
    """The split folders under ``root`` or ``root/Videos`` ({'train': root/'Videos'/'Tra', ...}),
    matched case-insensitively."""
    found: dict[str, Path] = {}
    if not root.is_dir():
        return found
    if (root / VIDEOS_LEVEL).is_dir() and not any(c.name.lower() in n for n in SPLIT_FOLDERS.values() for c in root.iterdir()):
        root = root / VIDEOS_LEVEL
    children = sorted(p for p in root.iterdir() if p.is_dir())
    for split, names in SPLIT_FOLDERS.items():
        for child in children:
            if child.name.lower() in names:
                found[split] = child
                break
    return found


# ---------------------------------------------------------------------------------------------
# The converter
# ---------------------------------------------------------------------------------------------


@register
class ERASource(SourceConverter):
    name = "era"
    task = "classification"
    family = FAMILY
    media = "video"
    layout = "Videos/Tra/<Class>/<Class>_NNN.mp4, Videos/Test/<Class>/<Class>_NNN.mp4 (class = folder; no label file)"
    title = "ERA: Event Recognition in Aerial videos"
    citation = (
        "Mou, L., Hua, Y., Jin, P., Zhu, X. X. ERA: A Data Set and Deep Learning Benchmark for Event "
        "Recognition in Aerial Videos. IEEE Geoscience and Remote Sensing Magazine 8(4), 2020."
    )
    license = "academic use only (no redistribution)"
    homepage = "https://lcmou.github.io/ERA_Dataset/"
    short_title = "ERA-VQA"  # SkyEyeGPT evaluates ERA through the questions generated from its labels
    report_rank = 9
    paper_counts = {"era_vqa": ("ERA-VQA", 1_500)}
    published_splits = PAPER_SPLIT_SIZES  # videos: 1,473 train / 1,391 test
    published_unit = "videos"
    layouts = (
        Layout("archive", "Videos/Tra/<Class>/<Class>_NNN.mp4 + Videos/Test/<Class>/<Class>_NNN.mp4",
               "the ERA archive as extracted (../shared/real-samples/README.md, 'Published folder layouts': two "
               "independent public loaders read Videos/Tra and Videos/Test; not re-found in our code index)"),
        Layout("no Videos level", "{Tra,Train}/<Class>/... + Test/<Class>/...",
               "inferred: the same folders with the archive's Videos/ level dropped, or Tra renamed Train"),
    )  # fmt: skip

    def check_layout(self, raw_dir: Path) -> None:
        self.find_layout(raw_dir)

    def find_layout(self, raw_dir: Path) -> FoundLayout:
        super().check_layout(raw_dir)
        splits = find_split_dirs(raw_dir)
        if splits:
            missing = [s for s in SPLIT_FOLDERS if s not in splits]
            if missing:  # the release has both: one absent is an incomplete download, never a silent skip
                where = next(iter(splits.values())).parent
                raise LayoutError(
                    f"era: {where} has {', '.join(p.name + '/' for p in splits.values())} but no "
                    f"{' or '.join('/'.join(n.capitalize() for n in SPLIT_FOLDERS[s][:2]) + '/' for s in missing)} "
                    f"folder: the ERA archive has both Videos/Tra/ and Videos/Test/; extract the missing one into {where}"
                )
            rel = {s: p.relative_to(raw_dir).as_posix() + "/" for s, p in splits.items()}
            variant = next(v for v in self.layouts if v.name == ("archive" if rel["train"].startswith(VIDEOS_LEVEL)
                                                               else "no Videos level"))  # fmt: skip
            return FoundLayout(variant, rel)
        class_dirs = [p.name for p in raw_dir.iterdir() if p.is_dir() and event_label(p.name)[1]]
        if class_dirs:
            raise LayoutError(
                f"era: {raw_dir} holds class folders ({', '.join(sorted(class_dirs)[:3])}, ...) but no "
                "Train/ and Test/ folders: the split of each video is unknown. Expected " + self.layout
            )
        raise LayoutError(f"era: no Train/ or Test/ folder in {raw_dir}; expected {self.layout}")

    def count_raw(self, raw_dir: Path, found: FoundLayout) -> dict[str, int] | None:
        """Video files per split folder (class folders one level down)."""
        return {split: sum(1 for p in (raw_dir / folder).glob("*/*") if p.suffix.lower() in VIDEO_EXTENSIONS)
                for split, folder in found.paths.items()}  # fmt: skip

    def records(self, raw_dir: Path) -> Iterator[Record | Rejected]:
        self.check_layout(raw_dir)
        for split, split_dir in find_split_dirs(raw_dir).items():
            seen: dict[str, str] = {}  # image_key → raw file that claimed it first
            for entry in sorted(split_dir.iterdir()):
                if entry.name.startswith("."):
                    continue
                if not entry.is_dir():
                    yield Rejected(relpath(entry, raw_dir), "file outside a class folder: its event class is unknown")
                    continue
                for path in sorted(entry.iterdir()):
                    if not path.name.startswith("."):
                        yield self._video_record(raw_dir, split, entry.name, path, seen)

    def _video_record(
        self, raw_dir: Path, split: str, raw_class: str, path: Path, seen: dict[str, str]
    ) -> Record | Rejected:
        rel = relpath(path, raw_dir)
        if path.is_dir():
            return Rejected(rel, "unexpected folder inside a class folder (videos must lie directly in it)")
        if path.suffix.lower() not in VIDEO_EXTENSIONS:
            return Rejected(rel, f"not a video file (extension {path.suffix or 'none'!r})")
        prefix = class_prefix(path.name)
        if prefix is not None and _squash(prefix) != _squash(raw_class) and event_label(prefix)[1]:
            return Rejected(rel, f"file name says class {prefix!r} but it lies in folder {raw_class!r}")
        key = video_key(split, path.name)
        if key in seen:
            return Rejected(rel, f"duplicate video {Path(path.name).stem!r} in split {split} (first: {seen[key]})")
        seen[key] = rel
        try:
            info = probe_video(path)
        except VideoError as error:
            return Rejected(rel, str(error))
        label, known = event_label(raw_class)
        return build_record(
            ClassificationRecord,
            raw_file=rel,
            source=self.name,
            record_id=key,
            split=split,
            media="video",
            **media_fields(rel, key, info),
            label=label,
            flags=[] if known else ["class_not_in_era_list"],
        )
