"""RSIVQA: 111k image-question-answer triplets on the images of five remote-sensing datasets.

Dataset
    Zheng et al. (2021) generated questions and answers for the images of three scene-classification
    datasets (UC Merced, Sydney, AID — the AID part uses RSICD's copies and file names) and two
    object-detection datasets (DOTA, HRRSD); a small part (UCM ``ucm_res.txt``) is human-written.
    The README counts 37,264 images and 111,134 triplets (64,610 yes/no, 32,331 number, 14,193
    other), 111,693 with the 559 triplets added later. SkyEye-968k uses 17.7k train triplets and
    joins the UCM, Sydney and DOTA questions with those datasets' captions/boxes (Conversa sets).

Raw layout (the ``RSIVQA/`` folder of github.com/spectralpublic/RSIVQA, under ``RAW/rsivqa/``;
the ``RSIVQA/`` level itself may be kept or dropped)::

    UCM/ucm_vqa.txt  UCM/ucm_res.txt  Sydney/sydney_vqa.txt  AID/rsicd_vqa.txt
    DOTA/dota_train_vqa2.txt  DOTA/dota_val_vqa2.txt  HRRSD/opt_val_vqa.txt

    one triplet a line: ``<image>:<question>?<answer>``, e.g. ``1.tif:what is the theme of this
    picture?residential`` or ``P0000: how many planes are there in this picture?21``.

Images (not part of the RSIVQA download) are looked up, first found wins:

    1. the parent dataset's folder in the raw root, in each of its accepted layouts, so both sources
       name the very same file: UCM → ``RAW/ucm_captions/imgs/`` (or ``images/``), Sydney →
       ``RAW/sydney_captions/imgs/`` (or ``images/``), AID → ``RAW/rsicd/RSICD_images/`` (or
       ``images/``), DOTA → ``RAW/dota/{train,val}/images/`` (or torchgeo's ``RAW/dota/images/``);
    2. ``RAW/rsivqa/<Subset>/images/<file>`` (what ``skyeye synth`` writes, or a user's copy).

    ``image_path`` is relative to ``RAW/rsivqa`` (``../ucm_captions/images/1.tif`` for case 1).
    ``image_key`` uses the PARENT family (``ucm:1``, ``sydney:1``, ``rsicd:00433``, ``dota:P0000``,
    ``hrrsd:00001``) so questions join the captions and boxes of the same image.

Splits ("the subset and its split where it has one")
    - A file whose name says its split (``dota_train_vqa2`` → train, ``dota_val_vqa2`` and HRRSD's
      ``opt_val_vqa`` → val) keeps it, unless the image was found in a parent folder named after
      another split (``RAW/dota/val/images``): the parent's folder wins (flag ``split_from_parent_folder``)
      so one image never sits in two splits across sources.
    - UCM, Sydney, AID: the split the parent caption dataset gives the image (``dataset.json`` /
      ``annotations_rsicd/dataset_rsicd.json`` or ``dataset_rsicd.json`` in the raw root), so a UCM
      test image never becomes a training question. When that parent file is absent or unreadable
      the split cannot be known: every question of the subset is quarantined ("split unknown"),
      never put in train (RSIVQA-AID's images are RSICD's, test images included).
    - An image the parent file does not list: ``train``, with the flag ``split_not_official`` so a
      recipe can leave such records out (the recipes select subsets whose images all have a split).

Reading rules and quirks
    - The image name ends at the FIRST ':' (names hold none); the question ends at the FIRST '?'
      (the question mark is the separator and stays part of the question); the answer is the rest.
      No real question holds a second '?'; an answer holding one is kept verbatim.
    - Whitespace around the three parts is dropped: some lines start with a space (``' 1.tif:...'``)
      and the DOTA/HRRSD files put one after the colon (``P0000: how many ...``); CRLF endings too.
      Runs of spaces inside a question are collapsed. A generated question with an empty object slot
      (``How many  in the picture?``) is kept with the flag ``question_missing_object``.
    - DOTA and HRRSD names have no extension: ``.png`` (DOTA) and ``.jpg`` (HRRSD) are added.
    - Blank lines carry no triplet and are skipped. A line with no ':' or no '?' is malformed; an
      empty question ("answer without question") or empty answer ("question without answer") is
      quarantined; so is a line with bytes that are not UTF-8 and the second copy of a triplet
      (same image and question, case-insensitive) within one file.
    - ``question_type`` comes from the question's opening words (the files have no type):
      ``presence`` (does this picture contain / is there / are there), ``count`` (how many),
      ``scene`` (what is the theme/scene/category), ``location`` (what is the location / where),
      else ``yes_no`` when the answer is yes/no, else ``other``. The first two with yes/no and number
      answers match the README's yes/no and number groups.

Citation
    X. Zheng, B. Wang, X. Du, X. Lu, "Mutual Attention Inception Network for Remote Sensing Visual
    Question Answering", IEEE Transactions on Geoscience and Remote Sensing, 2021.
    doi:10.1109/TGRS.2021.3079918
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from skyeye_data import rawfs, safejson
from skyeye_data.schema import SPLITS, Record, VQARecord
from skyeye_data.sources import register
from skyeye_data.sources.base import FoundLayout, Layout, LayoutError, SourceConverter
from skyeye_data.sources.base import ImageProblem, Rejected, build_record, image_key, media_fields, probe_image


@dataclass(frozen=True)
class Subset:
    """One RSIVQA folder and where its images and splits come from."""

    folder: str  # as published: "UCM"
    family: str  # the parent dataset's image_key family
    parent_image_dirs: tuple[str, ...]  # relative to the raw root, tried in order (every accepted layout)
    parent_split_json: tuple[str, ...]  # Karpathy json in the raw root giving each image's split, tried in order
    default_ext: str | None  # added to names without an extension


SUBSETS: tuple[Subset, ...] = (
    Subset("UCM", "ucm", ("ucm_captions/imgs", "ucm_captions/images"), ("ucm_captions/dataset.json",), None),
    Subset("Sydney", "sydney", ("sydney_captions/imgs", "sydney_captions/images"), ("sydney_captions/dataset.json",),
           None),
    Subset("AID", "rsicd", ("rsicd/RSICD_images", "rsicd/images"),
           ("rsicd/annotations_rsicd/dataset_rsicd.json", "rsicd/dataset_rsicd.json"), None),
    Subset("DOTA", "dota", ("dota/train/images", "dota/val/images", "dota/images"), (), ".png"),
    Subset("HRRSD", "hrrsd", (), (), ".jpg"),
)

_SPLIT_IN_NAME = re.compile(r"(?:^|_)(train|val|test)(?:_|\.|\d|$)")
_SPACES = re.compile(r"\s+")
_ESCAPED_BYTE = re.compile("[\udc80-\udcff]")
_YES_NO = {"yes", "no"}


def question_type(question: str, answer: str) -> str:
    """The type of an RSIVQA question from its opening words (see the module docstring)."""
    q = question.lower()
    if q.startswith(("does this picture contain", "is there", "are there")):
        return "presence"
    if q.startswith("how many"):
        return "count"
    if q.startswith(("what is the theme", "what is the scene", "what is the category", "what kind of scene")):
        return "scene"
    if q.startswith(("what is the location", "where")):
        return "location"
    return "yes_no" if answer.lower() in _YES_NO else "other"


@dataclass(frozen=True)
class Triplet:
    image: str
    question: str
    answer: str
    flags: tuple[str, ...] = ()


def parse_line(text: str) -> Triplet | str:
    """One line's triplet, or the reason it is not one. ``text`` is the line without its newline."""
    bad = _ESCAPED_BYTE.search(text)
    if bad:
        return f"bad encoding: byte 0x{ord(bad.group()) - 0xDC00:02X} is not UTF-8"
    line = text.strip().lstrip("\ufeff")
    if ":" not in line:
        return "malformed line: no ':' between image name and question"
    image, rest = (part.strip() for part in line.split(":", 1))
    if "?" not in rest:
        return "malformed line: no '?' between question and answer"
    question, answer = rest.split("?", 1)
    flags = ("question_missing_object",) if "  " in question.strip() else ()
    question, answer = _SPACES.sub(" ", question).strip(), answer.strip()
    if not image:
        return "malformed line: no image name before ':'"
    if "/" in image or "\\" in image or image in (".", ".."):
        return f"malformed line: image name {image!r} is not a plain file name"
    if not question:
        return "answer without question: nothing between ':' and '?'"
    if not answer:
        return "question without answer: nothing after '?'"
    return Triplet(image, question + "?", answer, flags)


def _printable(text: str) -> str:
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


@register
class RSIVQA(SourceConverter):
    name = "rsivqa"
    task = "vqa"
    family = "rsivqa"  # records use their parent dataset's family, see image_key
    reads_sources = tuple(sorted({path.split("/")[0] for s in SUBSETS for path in s.parent_image_dirs + s.parent_split_json}))
    layout = "{UCM,Sydney,AID,DOTA,HRRSD}/*.txt ('image:question?answer' lines); images from the parent datasets"
    title = "RSIVQA"
    citation = (
        "Zheng, Wang, Du, Lu. Mutual Attention Inception Network for Remote Sensing Visual Question "
        "Answering. IEEE TGRS, 2021."
    )
    license = "research use (no license stated by the authors); images: those of UCM, Sydney, AID/RSICD, DOTA, HRRSD"
    homepage = "https://github.com/spectralpublic/RSIVQA"
    short_title = "RSIVQA"
    report_rank = 8
    paper_counts = {"rsivqa": ("RSIVQA", 17_700)}
    # lines per published file (spectralpublic/RSIVQA RSIVQA/, counted in the files): 111,693 in all
    published_files = {
        "UCM/ucm_vqa.txt": 2_100, "UCM/ucm_res.txt": 2_795, "Sydney/sydney_vqa.txt": 613, "AID/rsicd_vqa.txt": 10_921,
        "DOTA/dota_train_vqa2.txt": 12_389, "DOTA/dota_val_vqa2.txt": 4_041, "HRRSD/opt_val_vqa.txt": 78_834,
    }  # fmt: skip
    published_unit = "lines"
    layouts = (
        Layout("repository", "{UCM,Sydney,AID,DOTA,HRRSD}/*.txt",
               "spectralpublic/RSIVQA, folder RSIVQA/ (its README and files); images from the parent datasets"),
        Layout("repository folder kept", "RSIVQA/{UCM,Sydney,AID,DOTA,HRRSD}/*.txt",
               "the same files with the repository's RSIVQA/ level kept (a git clone)"),
    )  # fmt: skip

    def base_dir(self, raw_dir: Path) -> Path:
        """The folder holding the subset folders (the repository's ``RSIVQA/`` level is optional)."""
        nested = raw_dir / "RSIVQA"
        if nested.is_dir() and not any((raw_dir / s.folder).is_dir() for s in SUBSETS):
            return nested
        return raw_dir

    def text_files(self, raw_dir: Path) -> list[tuple[Subset, Path]]:
        base = self.base_dir(raw_dir)
        return [(s, f) for s in SUBSETS if (base / s.folder).is_dir() for f in sorted((base / s.folder).glob("*.txt"))]

    def find_layout(self, raw_dir: Path) -> FoundLayout:
        self.check_layout(raw_dir)
        base = self.base_dir(raw_dir)
        files = {f.relative_to(base).as_posix() for _, f in self.text_files(raw_dir)}
        return FoundLayout(self.layouts[1 if base != raw_dir else 0], {"files": ", ".join(sorted(files))})

    def count_raw(self, raw_dir: Path, found: FoundLayout) -> dict[str, int] | None:
        """Non-blank lines per published file (one triplet a line)."""
        base = self.base_dir(raw_dir)
        counts = {}
        for _, path in self.text_files(raw_dir):
            with rawfs.open_raw(path, "label") as handle:  # the guarded reader: a FIFO or a link out is refused
                counts[path.relative_to(base).as_posix()] = sum(1 for line in handle if line.strip())
        return counts

    def check_layout(self, raw_dir: Path) -> None:
        super().check_layout(raw_dir)
        if not self.text_files(raw_dir):
            raise LayoutError(f"{self.name}: {raw_dir} holds no <Subset>/*.txt file; expected {self.layout}")

    # -- reading ------------------------------------------------------------------------------

    def records(self, raw_dir: Path) -> Iterator[Record | Rejected]:
        self.check_layout(raw_dir)
        self._found: dict[tuple[str, str], tuple[str, Path] | str] = {}  # (subset, file) -> where; per run
        split_maps: dict[str, dict[str, str] | None] = {}
        for subset, path in self.text_files(raw_dir):
            if subset.parent_split_json and subset.folder not in split_maps:
                candidates = [raw_dir.parent / c for c in subset.parent_split_json]
                present = next((c for c in candidates if rawfs.present(c)), None)
                # no parent file: the split of its images cannot be known, and a guess would leak test
                # images into training (RSIVQA-AID's images are RSICD's, test ones included)
                split_maps[subset.folder] = parent_splits(present) if present else (
                    f"no parent caption file ({' or '.join(subset.parent_split_json)} in the raw root) gives "
                    f"the {subset.folder} images' split")  # fmt: skip
            yield from self._read_file(raw_dir, subset, path, split_maps.get(subset.folder))

    def _read_file(self, raw_dir: Path, subset: Subset, path: Path, splits: dict | str | None) -> Iterator:
        raw_file = path.relative_to(raw_dir).as_posix()
        file_split = _split_in_name(path.stem)
        seen: dict[tuple[str, str], int] = {}
        try:  # the guarded reader: a FIFO, a device or a symlink out of the raw root is refused, never read
            handle = rawfs.open_text(path, "label", errors="surrogateescape")
        except rawfs.RawAccessError as error:
            yield Rejected(raw_file, error.reason)
            return
        lines = 0
        with handle:
            for number, text in enumerate(handle, start=1):
                if not text.strip():
                    continue  # a blank line holds no triplet
                lines += 1
                parsed = parse_line(text.rstrip("\n"))
                if isinstance(parsed, str):
                    yield Rejected(raw_file, parsed, raw_line=number, excerpt=_printable(text.strip()))
                    continue
                key = (parsed.image, parsed.question.lower())
                if key in seen:
                    yield Rejected(raw_file, f"duplicate triplet: image {parsed.image!r} already asked "
                                   f"{parsed.question!r} at line {seen[key]}", raw_line=number,
                                   excerpt=text.strip())  # fmt: skip
                    continue
                seen[key] = number
                yield self._record(raw_dir, subset, raw_file, number, parsed, file_split, splits)
        if lines == 0:  # one line says so: a file's questions never vanish without a word
            yield Rejected(raw_file, "the file holds no triplet (it is empty or holds only blank lines)")

    def _record(self, raw_dir, subset, raw_file, number, triplet, file_split, splits) -> Record | Rejected:
        file_name = triplet.image
        if subset.default_ext and not Path(file_name).suffix:
            file_name += subset.default_ext
        try:  # the name becomes a path: NUL, over 255 bytes, absolute or '..' are refused first
            rawfs.check_name(file_name, "image name")
        except rawfs.RawAccessError as error:
            return Rejected(raw_file, error.reason, raw_line=number)
        found = self._found.get((subset.folder, file_name))
        if found is None:  # an image is asked several questions: look it up once
            found = find_image(raw_dir, self.base_dir(raw_dir), subset, file_name)
            self._found[(subset.folder, file_name)] = found
        if isinstance(found, str):
            return Rejected(raw_file, found, raw_line=number, excerpt=f"{triplet.image}:{triplet.question}")
        image_rel, image_path = found
        try:
            info = probe_image(image_path)
        except ImageProblem as error:
            return Rejected(raw_file, f"{error} (at {image_rel})", raw_line=number)
        flags = list(triplet.flags)
        if isinstance(splits, str) and not file_split:  # the parent caption file is broken: fail closed
            return Rejected(raw_file, f"split unknown: {splits}; the question is not put in train", raw_line=number)
        split = file_split or (splits if isinstance(splits, dict) else {}).get(file_name)
        folder_split = _split_of_folder(image_rel)
        if folder_split and folder_split != split:
            # the parent's own split folder wins (DOTA): the image must not cross splits between sources
            flags.append("split_from_parent_folder" if split else "split_from_folder")
            split = folder_split
        if split is None:
            split = "train"
            flags.append("split_not_official")
        return build_record(
            VQARecord,
            raw_file=raw_file,
            raw_line=number,
            source=self.name,
            record_id=f"{self.name}:{raw_file}:{number}",
            split=split,
            subset=subset.folder,
            **media_fields(image_rel, image_key(subset.family, file_name), info),
            question=triplet.question,
            answer=triplet.answer,
            question_type=question_type(triplet.question, triplet.answer),
            flags=sorted(flags),
        )


def _split_in_name(stem: str) -> str | None:
    match = _SPLIT_IN_NAME.search(stem.lower())
    return match.group(1) if match else None


def _split_of_folder(image_rel: str) -> str | None:
    """The split named by a parent folder the image was found in (``../dota/val/images/...``)."""
    parts = image_rel.split("/")
    if parts[0] != "..":
        return None
    return next((part for part in parts[2:-1] if part in SPLITS), None)


def parent_splits(path: Path) -> dict[str, str] | str | None:
    """file name -> split from a Karpathy-style caption json; None when absent; a reason when the file
    is there but cannot be read (the questions that depend on it are then quarantined, never trained)."""
    if not rawfs.present(path):
        return None
    where = f"{path.parent.name}/{path.name}"
    try:
        data = safejson.loads(rawfs.read_text(path, "json", encoding="utf-8-sig", errors="replace"))
        images = data["images"]
        return {
            entry["filename"]: entry["split"]
            for entry in images
            if isinstance(entry, dict) and isinstance(entry.get("filename"), str) and entry.get("split") in SPLITS
        }
    except rawfs.RawAccessError as error:
        return f"the parent caption file {where} cannot be read ({error.reason})"
    except (ValueError, KeyError, TypeError) as error:
        return f"the parent caption file {where} cannot be read ({type(error).__name__}: {str(error)[:120]})"


def find_image(raw_dir: Path, base: Path, subset: Subset, file_name: str) -> tuple[str, Path] | str:
    """(path relative to raw_dir, path) of the first existing candidate, or the reason none exists."""
    candidates = [f"../{d}/{file_name}" for d in subset.parent_image_dirs]
    local = (base / subset.folder / "images" / file_name).relative_to(raw_dir).as_posix()
    candidates.append(local)
    for rel in candidates:
        if rawfs.present(raw_dir / rel):
            return rel, raw_dir / rel
    return f"image file not found: {file_name} (looked in {', '.join(c.rsplit('/', 1)[0] for c in candidates)})"
