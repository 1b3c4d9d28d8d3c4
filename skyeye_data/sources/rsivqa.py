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

    1. the parent dataset's folder in the raw root, so both sources name the very same file:
       UCM → ``RAW/ucm_captions/images/``, Sydney → ``RAW/sydney_captions/images/``,
       AID → ``RAW/rsicd/RSICD_images/``, DOTA → ``RAW/dota/{train,val}/images/``;
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
      ``dataset_rsicd.json`` in the raw root), so a UCM test image never becomes a training question.
    - Otherwise (no parent file, or the image is not in it): ``train``, with the flag
      ``split_not_official`` so a recipe can leave such records out.

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

import json
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from skyeye_data.io import atomic_path
from skyeye_data.schema import SPLITS, Record, VQARecord
from skyeye_data.sources import register
from skyeye_data.sources.base import (
    ImageProblem,
    LayoutError,
    Rejected,
    Scale,
    SourceConverter,
    build_record,
    image_key,
    media_fields,
    probe_image,
)
from skyeye_data.synth import synth_image


@dataclass(frozen=True)
class Subset:
    """One RSIVQA folder and where its images and splits come from."""

    folder: str  # as published: "UCM"
    family: str  # the parent dataset's image_key family
    parent_image_dirs: tuple[str, ...]  # relative to the raw root, tried in order
    parent_split_json: str | None  # Karpathy json in the raw root giving each image's split
    default_ext: str | None  # added to names without an extension
    # synthesis: file name -> (images, triplets) at paper scale (estimated, see synthesize)
    paper_files: tuple[tuple[str, int, int], ...]
    image_size: tuple[int, int]  # mini
    image_ext: str  # synthetic images


SUBSETS: tuple[Subset, ...] = (
    Subset("UCM", "ucm", ("ucm_captions/images",), "ucm_captions/dataset.json", None,
           (("ucm_vqa.txt", 2100, 2100), ("ucm_res.txt", 539, 2693)), (256, 256), ".tif"),
    Subset("Sydney", "sydney", ("sydney_captions/images",), "sydney_captions/dataset.json", None,
           (("sydney_vqa.txt", 613, 613),), (500, 500), ".tif"),
    Subset("AID", "rsicd", ("rsicd/RSICD_images",), "rsicd/dataset_rsicd.json", None,
           (("rsicd_vqa.txt", 10723, 10723),), (224, 224), ".jpg"),
    Subset("DOTA", "dota", ("dota/train/images", "dota/val/images"), None, ".png",
           (("dota_train_vqa2.txt", 1411, 11905), ("dota_val_vqa2.txt", 458, 3887)), (200, 150), ".png"),
    Subset("HRRSD", "hrrsd", (), None, ".jpg",
           (("opt_val_vqa.txt", 21959, 79772),), (160, 120), ".jpg"),
)  # fmt: skip

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
    layout = "{UCM,Sydney,AID,DOTA,HRRSD}/*.txt ('image:question?answer' lines); images from the parent datasets"
    title = "RSIVQA"
    citation = (
        "Zheng, Wang, Du, Lu. Mutual Attention Inception Network for Remote Sensing Visual Question "
        "Answering. IEEE TGRS, 2021."
    )
    license = "research use (no license stated by the authors); images: those of UCM, Sydney, AID/RSICD, DOTA, HRRSD"
    homepage = "https://github.com/spectralpublic/RSIVQA"

    def base_dir(self, raw_dir: Path) -> Path:
        """The folder holding the subset folders (the repository's ``RSIVQA/`` level is optional)."""
        nested = raw_dir / "RSIVQA"
        if nested.is_dir() and not any((raw_dir / s.folder).is_dir() for s in SUBSETS):
            return nested
        return raw_dir

    def text_files(self, raw_dir: Path) -> list[tuple[Subset, Path]]:
        base = self.base_dir(raw_dir)
        return [(s, f) for s in SUBSETS if (base / s.folder).is_dir() for f in sorted((base / s.folder).glob("*.txt"))]

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
                split_maps[subset.folder] = parent_splits(raw_dir.parent / subset.parent_split_json)
            yield from self._read_file(raw_dir, subset, path, split_maps.get(subset.folder))

    def _read_file(self, raw_dir: Path, subset: Subset, path: Path, splits: dict | None) -> Iterator:
        raw_file = path.relative_to(raw_dir).as_posix()
        file_split = _split_in_name(path.stem)
        seen: dict[tuple[str, str], int] = {}
        with open(path, encoding="utf-8", errors="surrogateescape", newline=None) as handle:
            for number, text in enumerate(handle, start=1):
                if not text.strip():
                    continue  # a blank line holds no triplet
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

    def _record(self, raw_dir, subset, raw_file, number, triplet, file_split, splits) -> Record | Rejected:
        file_name = triplet.image
        if subset.default_ext and not Path(file_name).suffix:
            file_name += subset.default_ext
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
        split = file_split or (splits or {}).get(file_name)
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

    # -- synthesis ----------------------------------------------------------------------------

    def synthesize(self, raw_dir: Path, scale: Scale, rng: random.Random) -> int:
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
            for file_name, paper_images, paper_triplets in subset.paper_files:
                if scale == "mini":
                    images, triplets = 3 if file_name != "ucm_res.txt" else 2, None
                else:
                    images, triplets = paper_images, paper_triplets
                written += self._write_file(raw_dir, subset, file_name, images, triplets, scale, rng)
        return written

    def _write_file(self, raw_dir, subset, file_name, images, triplets, scale, rng) -> int:
        names = _synthetic_names(subset, file_name, images)
        size = subset.image_size if scale == "mini" else (8, 8)
        image_dir = raw_dir / subset.folder / "images"
        for name in names:
            path = image_dir / (name if Path(name).suffix else name + subset.image_ext)
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


def _split_in_name(stem: str) -> str | None:
    match = _SPLIT_IN_NAME.search(stem.lower())
    return match.group(1) if match else None


def _split_of_folder(image_rel: str) -> str | None:
    """The split named by a parent folder the image was found in (``../dota/val/images/...``)."""
    parts = image_rel.split("/")
    if parts[0] != "..":
        return None
    return next((part for part in parts[2:-1] if part in SPLITS), None)


def parent_splits(path: Path) -> dict[str, str] | None:
    """file name -> split from a Karpathy-style caption json, or None when absent/unreadable."""
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig", errors="replace"))
        images = data["images"]
        return {
            entry["filename"]: entry["split"]
            for entry in images
            if isinstance(entry, dict) and isinstance(entry.get("filename"), str) and entry.get("split") in SPLITS
        }
    except (ValueError, KeyError, TypeError):
        return None  # the caption converter quarantines a broken file; here it only costs the split


def find_image(raw_dir: Path, base: Path, subset: Subset, file_name: str) -> tuple[str, Path] | str:
    """(path relative to raw_dir, path) of the first existing candidate, or the reason none exists."""
    candidates = [f"../{d}/{file_name}" for d in subset.parent_image_dirs]
    local = (base / subset.folder / "images" / file_name).relative_to(raw_dir).as_posix()
    candidates.append(local)
    for rel in candidates:
        if (raw_dir / rel).is_file():
            return rel, raw_dir / rel
    return f"image file not found: {file_name} (looked in {', '.join(c.rsplit('/', 1)[0] for c in candidates)})"


# ---------------------------------------------------------------------------------------------
# Synthetic content
# ---------------------------------------------------------------------------------------------

_SCENES = ("farmland", "residential", "airport", "forest", "industrial", "river", "beach", "parking")
_OBJECTS = ("airplane", "trees", "ship", "storage tank", "small vehicle", "tennis court", "bridge")
_COUNTS = ("zero", "one", "two", "three", "nine", "fourteen")
_WHERE = ("top left corner", "central section", "diagonal", "everywhere", "i cannot see it")


def _synthetic_names(subset: Subset, file_name: str, images: int) -> list[str]:
    if subset.folder in ("UCM", "Sydney"):
        return [f"{i}.tif" for i in range(1, images + 1)]
    if subset.folder == "AID":
        return [f"{433 + i:05d}.jpg" for i in range(images)]
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
