"""CapERA: Captioning Events in Aerial videos (Bashmal et al., 2023).

What it is
    Captions for the 2,864 drone videos of ERA (:mod:`skyeye_data.sources.era`): each video has one
    manual caption (event, objects, place, action, numbers, time) and four more generated from it,
    five in all. SkyEye-968k makes one video-captioning sample per training caption (1,473 train
    videos x 5 = 7.4k). This converter yields one :class:`~skyeye_data.schema.CaptionRecord` per
    video (``media="video"``, all its captions); frames are sampled later (:mod:`skyeye_data.video`).

Raw layout (under ``RAW/capera/``)
    ``CapERA_DATASET_train.json`` and ``CapERA_DATASET_test.json``::

        {"ERA_caption": [{"video_id": "Baseball_001.mp4",
                          "annotation": {"English_caption": ["five", "caption", "strings", ...]}}, ...]}

    and ERA's videos as its archive extracts: ``Videos/Tra/<Class>/<video_id>`` and
    ``Videos/Test/<Class>/<video_id>`` (``Tra``, not ``Train``: ../shared/real-samples/README.md,
    "Published folder layouts"; ``Train`` is accepted as a rename), where ``<Class>`` is ERA's class
    folder (``Baseball``, ``TrafficCollision``, ``NonEvent``, ...) and equals the ``video_id`` without
    its ``_<NNN>`` number. A file named with a space before the extension (``Baseball_001 .mp4``, as a
    public loader reports the archive's names) is the video CapERA's JSON calls ``Baseball_001.mp4``.
    A ``video_id`` is unique only within its split (ERA numbers each split from 001), so record ids
    and image keys carry the split. Both JSON files and both video folders are required: a missing
    one is a LayoutError naming it (the variants: :attr:`CapERASource.layouts`).

Quirks handled
    - A file that is not valid JSON (truncated download) is one record-level rejection
      "invalid JSON at line L col C"; a file that is not UTF-8, or has no ``ERA_caption`` list,
      likewise.
    - Entries that are not objects, lack a ``video_id`` string (or hold a path in it), or lack an
      ``annotation.English_caption`` list are quarantined; so is an entry whose captions are all
      blank. Single blank or non-string captions are dropped from a kept record (part-level
      quarantine line + flag ``empty_caption_dropped``). Whitespace in captions is collapsed.
    - A ``video_id`` repeated within one split quarantines the later entries.
    - The video is looked up in its class folder first; when the folder name differs from the id's
      prefix (a renamed folder) the video is found by file name anywhere under ``Videos/<Split>/``
      (flag ``video_in_other_folder``). A video that is missing, corrupt or truncated quarantines
      the entry with the decoder's reason.

Identity
    ``record_id`` = ``capera:<split>/<stem>``. ``image_key`` = ``era:<split>/<stem>``: the key
    family is ERA's because the videos are ERA's, under the same file names, so the key of a
    CapERA video equals the key the ERA converter gives it (``family = "era"``).
    ``image_sha256`` is the video file's hash; ``width``/``height`` come from the stream header.

Citation
    L. Bashmal, Y. Bazi, M. M. Al Rahhal, M. Zuair, F. Melgani, "CapERA: Captioning Events in Aerial
    Videos", Remote Sensing 15(8):2139, 2023. https://doi.org/10.3390/rs15082139
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

from skyeye_data import rawfs, safejson
from skyeye_data.schema import CaptionRecord, Record
from skyeye_data.sources import register
from skyeye_data.sources.base import FoundLayout, Layout, LayoutError, SourceConverter
from skyeye_data.sources.base import Rejected, build_record, media_fields, relpath
from skyeye_data.sources.era import FAMILY, class_prefix, find_split_dirs, video_key, video_stem
from skyeye_data.video import VideoError, probe_video


ANNOTATION_FILES: dict[str, str] = {"train": "CapERA_DATASET_train.json", "test": "CapERA_DATASET_test.json"}
VIDEOS_DIR = "Videos"
TOP_KEY = "ERA_caption"


def _clean(text: str) -> str:
    return " ".join(text.split())


class _AnnotationFileProblem(Exception):
    """The whole annotation file is unusable; the message is the quarantine reason."""


def load_entries(path: Path) -> list[Any]:
    """The ``ERA_caption`` list of one annotation file (small: ~1.5k entries, read whole)."""
    try:  # the guarded reader: a FIFO, a device or a symlink out of the raw root is refused, never read
        data = rawfs.read_bytes(path, "json")
    except rawfs.RawAccessError as error:
        raise _AnnotationFileProblem(error.reason) from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise _AnnotationFileProblem(f"file is not UTF-8 (byte 0x{data[error.start]:02x} at offset {error.start})")
    try:
        document = safejson.loads(text)  # deep nesting: a JSONDecodeError, not a RecursionError
    except json.JSONDecodeError as error:
        raise _AnnotationFileProblem(f"invalid JSON at line {error.lineno} col {error.colno}: {error.msg}")
    if not isinstance(document, dict) or not isinstance(document.get(TOP_KEY), list):
        raise _AnnotationFileProblem(f'expected {{"{TOP_KEY}": [...]}} at the top of the file')
    return document[TOP_KEY]


def _plain_name(file_name: str) -> str:
    """A video file name without a space before its extension (the key the finder matches on)."""
    return video_stem(file_name) + Path(file_name).suffix


class _VideoFinder:
    """Resolves a split's video ids to files: the class folder first, then any folder by file name."""

    def __init__(self, split_dir: Path | None):
        self.split_dir = split_dir
        self._by_name: dict[str, list[Path]] | None = None

    def find(self, video_id: str) -> tuple[Path | None, bool]:
        """(path or None, found outside its class folder)."""
        if self.split_dir is None:
            return None, False
        folder = self.split_dir / (class_prefix(video_id) or "")
        # the archive's own name, or the same with a space before the extension ("Baseball_001 .mp4")
        for name in (video_id, f"{video_stem(video_id)} {Path(video_id).suffix}"):
            if rawfs.present(folder / name):
                return folder / name, False
        if self._by_name is None:
            self._by_name = {}
            for path in sorted(self.split_dir.rglob("*")):
                if path.is_file():
                    self._by_name.setdefault(_plain_name(path.name), []).append(path)
        matches = self._by_name.get(_plain_name(video_id), [])
        return (matches[0], True) if len(matches) == 1 else (None, False)

    def expected_path(self, video_id: str, split: str) -> str:
        folder = self.split_dir.name if self.split_dir else split.capitalize()
        return f"{VIDEOS_DIR}/{folder}/{class_prefix(video_id) or '<Class>'}/{video_id}"


@register
class CapERASource(SourceConverter):
    name = "capera"
    task = "caption"
    family = FAMILY  # the videos are ERA's: one key family, so ERA and CapERA records join
    media = "video"
    layout = "CapERA_DATASET_{train,test}.json, Videos/{Tra,Test}/<Class>/<Class>_NNN.mp4 (ERA's archive)"
    title = "CapERA: Captioning Events in Aerial Videos"
    citation = (
        "Bashmal, L., Bazi, Y., Al Rahhal, M. M., Zuair, M., Melgani, F. CapERA: Captioning Events in "
        "Aerial Videos. Remote Sensing 15(8):2139, 2023."
    )
    license = "research use (videos: ERA, academic use only)"
    homepage = "https://doi.org/10.3390/rs15082139"
    short_title = "CapERA"
    benchmark_splits = ("test",)
    report_rank = 5
    paper_counts = {"capera": ("CapERA", 7_400)}
    published_splits = {"train": 1473, "test": 1391}  # videos (the JSON files' entries)
    published_unit = "videos"
    layouts = (
        Layout("archive", "CapERA_DATASET_{train,test}.json + Videos/Tra/<Class>/*.mp4 + Videos/Test/<Class>/*.mp4",
               "CapERA's two JSON files beside ERA's archive as extracted (../shared/real-samples/README.md, "
               "'Published folder layouts': public loaders read Videos/Tra and Videos/Test)"),
        Layout("renamed split folder", "CapERA_DATASET_{train,test}.json + Videos/Train/<Class>/... + Videos/Test/...",
               "inferred: copies that renamed Tra/ to Train/ (accepted, reported)"),
    )  # fmt: skip

    def check_layout(self, raw_dir: Path) -> None:
        self.find_layout(raw_dir)

    def find_layout(self, raw_dir: Path) -> FoundLayout:
        super().check_layout(raw_dir)
        missing = [name for name in ANNOTATION_FILES.values() if not (raw_dir / name).is_file()]
        splits = find_split_dirs(raw_dir / VIDEOS_DIR)
        lacking = [s for s in ANNOTATION_FILES if s not in splits]
        if missing or lacking:  # both splits are published: one absent is an error, never skipped
            found = sorted(p.name + ("/" if p.is_dir() else "") for p in raw_dir.iterdir())[:10]
            fixes = [f"put {name} (CapERA release) in {raw_dir}" for name in missing] + [
                f"extract ERA's Videos/{'Tra' if s == 'train' else 'Test'}/ into {raw_dir / VIDEOS_DIR}" for s in lacking
            ]
            raise LayoutError(f"capera: {raw_dir} is incomplete (found: {', '.join(found) or 'nothing'}); "
                              + "; ".join(fixes) + f"; expected {self.layout}")  # fmt: skip
        paths = {"annotations": ", ".join(ANNOTATION_FILES.values())}
        paths.update({s: p.relative_to(raw_dir).as_posix() + "/" for s, p in splits.items()})
        return FoundLayout(self.layouts[0 if splits["train"].name.lower() == "tra" else 1], paths)

    def count_raw(self, raw_dir: Path, found: FoundLayout) -> dict[str, int] | None:
        """Entries of each split's JSON file."""
        try:
            return {split: len(load_entries(raw_dir / name)) for split, name in ANNOTATION_FILES.items()}
        except _AnnotationFileProblem:
            return None

    def records(self, raw_dir: Path) -> Iterator[Record | Rejected]:
        self.check_layout(raw_dir)
        split_dirs = find_split_dirs(raw_dir / VIDEOS_DIR)
        for split, file_name in ANNOTATION_FILES.items():
            path = raw_dir / file_name
            try:
                entries = load_entries(path)
            except _AnnotationFileProblem as problem:
                yield Rejected(file_name, str(problem))
                continue
            finder = _VideoFinder(split_dirs.get(split))
            first_index: dict[str, int] = {}
            for index, entry in enumerate(entries):
                yield from self._entry(raw_dir, file_name, split, index, entry, finder, first_index)

    def _entry(
        self,
        raw_dir: Path,
        file_name: str,
        split: str,
        index: int,
        entry: Any,
        finder: _VideoFinder,
        first_index: dict[str, int],
    ) -> Iterator[Record | Rejected]:
        def reject(reason: str, level: str = "record") -> Rejected:
            return Rejected(file_name, reason, raw_index=index, excerpt=json.dumps(entry)[:300], level=level)

        if not isinstance(entry, dict):
            yield reject(f"entry is not an object (got {type(entry).__name__})")
            return
        video_id = entry.get("video_id")
        if not isinstance(video_id, str) or not video_id.strip():
            yield reject("entry has no video_id string")
            return
        video_id = video_id.strip()
        if "/" in video_id or "\\" in video_id or video_id in (".", ".."):
            yield reject(f"video_id {video_id!r} is not a file name")
            return
        try:  # NUL, over 255 bytes: refused before any filesystem call
            rawfs.check_name(video_id, "video_id")
        except rawfs.RawAccessError as error:
            yield reject(error.reason)
            return
        annotation = entry.get("annotation")
        raw_captions = annotation.get("English_caption") if isinstance(annotation, dict) else None
        if not isinstance(raw_captions, list):
            yield reject("entry has no annotation.English_caption list")
            return
        if video_id in first_index:
            yield reject(f"duplicate video_id {video_id!r} in split {split} (first at index {first_index[video_id]})")
            return
        first_index[video_id] = index

        captions: list[str] = []
        for position, caption in enumerate(raw_captions):
            if isinstance(caption, str) and caption.strip():
                captions.append(_clean(caption))
            else:
                yield reject(f"caption {position} of {video_id} is empty or not text; dropped", level="part")
        if not captions:
            yield reject(f"no non-empty caption for {video_id}")
            return

        video_path, moved = finder.find(video_id)
        if video_path is None:
            yield reject(f"video not found: {finder.expected_path(video_id, split)}")
            return
        try:
            info = probe_video(video_path)
        except VideoError as error:
            yield reject(f"{error} ({relpath(video_path, raw_dir)})")
            return
        flags = (["empty_caption_dropped"] if len(captions) < len(raw_captions) else []) + (
            ["video_in_other_folder"] if moved else []
        )
        yield build_record(
            CaptionRecord,
            raw_file=file_name,
            raw_index=index,
            source=self.name,
            record_id=f"{self.name}:{split}/{Path(video_id).stem}",
            split=split,
            media="video",
            **media_fields(relpath(video_path, raw_dir), video_key(split, video_id), info),
            captions=captions,
            flags=flags,
        )
