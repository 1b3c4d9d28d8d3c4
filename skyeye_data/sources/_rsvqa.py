"""Shared reading and writing of the RSVQA question/answer/image JSON trios (RSVQA-LR and RSVQA-HR).

Both RSVQA datasets (Lobry et al. 2020) publish, per split, three JSON files::

    <P>_split_<split>_images.json     {"images": [{"id", "active", "questions_ids", "original_name",
                                                     "sensor", "people_id", "date_added", ...}, ...]}
    <P>_split_<split>_questions.json  {"questions": [{"id", "img_id", "type", "question",
                                                        "answers_ids", "active", "people_id", ...}]}
    <P>_split_<split>_answers.json    {"answers": [{"id", "question_id", "answer", "active", ...}]}

with ``<P>`` = ``LR`` or ``USGS`` and the images at ``<image_dir>/<image id>.tif``.

How the files really work (from the authors' loader and the torchrs loader, which index these
lists by id): ids are global across splits and, in the full files, a record's ``id`` equals its
list index. Each split's images file lists *every* image and marks the split's own images
``"active": true``; the questions and answers files are likewise the full lists. A split is
therefore "the questions of the images active in that split's images file", and a question file of
one split holds the questions of the other splits too. Reading rules that follow:

- **Home split.** Every images file is read first (they are small) to find each image's home split:
  the split whose images file marks it active. A question is converted only while reading its image's
  home split file; in the other split files it is another split's record and is passed over (it is
  counted where it belongs, so nothing is counted twice). An image active in two splits is a leak
  risk: its questions are quarantined. A question whose image is active nowhere is quarantined once
  ("image not active in any split").
- **Inactive records.** A question (or its answer) with ``"active": false`` was deliberately
  withdrawn by the authors. It is still a raw record, so it is accounted as a record-level
  :class:`Rejected` ("inactive question (active: false) — excluded as the dataset authors ask"):
  ``records in = written + quarantined`` holds and the quarantine file lists what was withdrawn.
- **Join.** A question's answer is ``answers[answers_ids[0]]`` (what the authors' loader reads); the
  answer's ``question_id`` must point back at the question. Further answer ids are ignored with a
  part-level note. ``question_type`` is the question's ``type`` (LR: rural_urban, presence, count,
  comp; HR: presence, comp, count, area).
- **Counting unit** is the question. Besides the questions, an answer that no question of the file
  can own (its ``question_id`` is not in the questions file) is raw content left out and is counted
  as one record-level rejection ("answer without question"). Problems of the same raw item repeated
  in every split's full-list file are reported once.
- **Streaming.** The HR questions file of one split is ~200 MB. :func:`iter_json_list` reads a
  ``{"key": [...]}`` file in 1 MiB chunks and decodes one element at a time, so only the indexes
  the join needs are held: image id → home split, and answer id → (question id, answer, active).
- **Broken files.** A file that stops being valid JSON (truncated download) gives one record-level
  rejection "invalid JSON at line L col C" for the unreadable rest (what came before it is kept);
  bytes that are not UTF-8 are read with ``surrogateescape`` and quarantine the one record holding
  them ("bad encoding"). A duplicate question id quarantines the second occurrence; a missing or
  unreadable image quarantines its questions (each image is probed once: ``probe_image`` is cached).
- A split whose three files are all absent is not converted (people build what they have); a split
  with only some of its three files quarantines its questions with the name of the missing file.
"""

from __future__ import annotations

import codecs
import contextlib
import json
import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterator, TextIO

from skyeye_data.io import atomic_path
from skyeye_data.schema import Record, VQARecord
from skyeye_data.sources.base import (
    ImageInfo,
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

# ---------------------------------------------------------------------------------------------
# Streaming JSON: the elements of the list under one top-level key
# ---------------------------------------------------------------------------------------------

CHUNK_BYTES = 1 << 20
_WHITESPACE = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()
_ESCAPED_BYTE = re.compile("[\udc80-\udcff]")


class JsonStreamError(Exception):
    """The file stops being a readable ``{"key": [...]}`` document; the message is the reason."""

    def __init__(self, reason: str, line: int | None = None, excerpt: str | None = None):
        super().__init__(reason)
        self.reason, self.line, self.excerpt = reason, line, excerpt


class _Cursor:
    """A text buffer over a binary file that refills on demand and knows line/column positions."""

    def __init__(self, handle, chunk_bytes: int):
        self.handle, self.chunk_bytes = handle, chunk_bytes
        # utf-8-sig drops a byte-order mark; surrogateescape keeps bad bytes visible per record
        self.decoder = codecs.getincrementaldecoder("utf-8-sig")(errors="surrogateescape")
        self.buf, self.pos, self.eof = "", 0, False
        self.lines_before = 0  # newlines in text already dropped from the buffer
        self.col_before = 0  # characters since the last dropped newline

    def fill(self) -> None:
        """Drop the consumed text and append the next chunk (or mark the end of the file)."""
        consumed = self.buf[: self.pos]
        newlines = consumed.count("\n")
        if newlines:
            self.lines_before += newlines
            self.col_before = len(consumed) - consumed.rfind("\n") - 1
        else:
            self.col_before += len(consumed)
        data = self.handle.read(self.chunk_bytes)
        self.eof = not data
        self.buf = self.buf[self.pos :] + self.decoder.decode(data, final=self.eof)
        self.pos = 0

    def peek(self) -> str:
        """The next non-whitespace character ('' at the end of the file), without consuming it."""
        while True:
            self.pos = _WHITESPACE.match(self.buf, self.pos).end()
            if self.pos < len(self.buf) or self.eof:
                return self.buf[self.pos : self.pos + 1]
            self.fill()

    def expect(self, allowed: str, what: str) -> str:
        char = self.peek()
        if not char or char not in allowed:
            found = "the end of the file (truncated?)" if not char else repr(char)
            raise self.error(f"expected {what}, found {found}")
        self.pos += 1
        return char

    def value(self) -> Any:
        """Decode the JSON value at the cursor, reading more of the file while it is incomplete."""
        self.peek()
        while True:
            try:
                value, end = _DECODER.raw_decode(self.buf, self.pos)
            except json.JSONDecodeError as error:
                if self.eof:
                    raise self.error(error.msg, error.pos) from None
                self.fill()
                continue
            # a number that ends the buffer may continue in the next chunk
            if end == len(self.buf) and not self.eof:
                self.fill()
                continue
            self.pos = end
            return value

    def error(self, message: str, at: int | None = None) -> JsonStreamError:
        at = self.pos if at is None else at
        before = self.buf[:at]
        newlines = before.count("\n")
        line = self.lines_before + newlines + 1
        col = at - before.rfind("\n") if newlines else self.col_before + at + 1
        excerpt = printable(self.buf[max(0, at - 120) : at + 40])
        return JsonStreamError(f"invalid JSON at line {line} col {col}: {message}", line, excerpt)


def iter_json_list(path: Path, key: str, chunk_bytes: int = CHUNK_BYTES) -> Iterator[tuple[int, Any]]:
    """Yield ``(index, element)`` for the list under ``key`` of the JSON object in ``path``.

    Reads in chunks: memory stays at one chunk plus one element. Raises :class:`JsonStreamError`
    (after yielding every element before the problem) when the file is not such a document.
    """
    with open(path, "rb") as handle:
        cursor = _Cursor(handle, chunk_bytes)
        cursor.expect("{", "a JSON object at the top of the file")
        found = False
        if cursor.peek() == "}":
            cursor.pos += 1
        else:
            while True:
                name = cursor.value()
                cursor.expect(":", "':' after an object key")
                if name == key and not found:
                    found = True
                    yield from _list_elements(cursor, key)
                else:
                    cursor.value()  # another top-level entry: read past it
                if cursor.expect(",}", "',' or '}' in the top-level object") == "}":
                    break
        if cursor.peek():
            raise cursor.error("extra data after the top-level object")
        if not found:
            raise JsonStreamError(f"the file has no top-level {key!r} list")


def _list_elements(cursor: _Cursor, key: str) -> Iterator[tuple[int, Any]]:
    cursor.expect("[", f"a list under {key!r}")
    if cursor.peek() == "]":
        cursor.pos += 1
        return
    index = 0
    while True:
        yield index, cursor.value()
        index += 1
        if cursor.expect(",]", f"',' or ']' after element {index - 1} of {key!r}") == "]":
            return


def printable(text: str) -> str:
    """``text`` safe to write as UTF-8: undecodable bytes shown as ``\\xNN``."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def undecodable_byte(text: str) -> int | None:
    match = _ESCAPED_BYTE.search(text)
    return None if match is None else ord(match.group()) - 0xDC00


def excerpt_of(value: Any) -> str:
    return json.dumps(value, ensure_ascii=True)[:300]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# ---------------------------------------------------------------------------------------------
# Layout
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SplitFiles:
    """One published split: its file tag, and the record split/subset it becomes."""

    tag: str  # as in the file names: "train", "test_phili"
    split: str  # train | val | test
    subset: str | None  # e.g. HR "test" (test set 1) / "test_phili" (test set 2)


@dataclass(slots=True)
class _Answer:
    index: int
    question_id: Any
    text: Any
    active: Any


@dataclass
class _ReadState:
    """What one conversion run remembers across split files (all small)."""

    homes: dict[Any, str] = field(default_factory=dict)  # image id -> split tag where it is active
    active_in: dict[Any, list[str]] = field(default_factory=dict)  # image id -> tags where active
    reported: set = field(default_factory=set)  # problems already counted in an earlier split file


class RsvqaSource(SourceConverter):
    """A VQA source published as RSVQA JSON trios. Subclasses set the class attributes."""

    task: ClassVar[str] = "vqa"
    prefix: ClassVar[str]  # "LR" | "USGS"
    image_dir: ClassVar[str]  # "Images_LR" | "Data"
    splits: ClassVar[tuple[SplitFiles, ...]]
    synth: ClassVar["RsvqaSynthSpec"]

    def file_name(self, tag: str, kind: str) -> str:
        return f"{self.prefix}_split_{tag}_{kind}.json"

    def present_splits(self, raw_dir: Path) -> list[SplitFiles]:
        return [s for s in self.splits if any((raw_dir / self.file_name(s.tag, k)).is_file() for k in _KINDS)]

    def check_layout(self, raw_dir: Path) -> None:
        super().check_layout(raw_dir)
        if not self.present_splits(raw_dir):
            raise LayoutError(
                f"{self.name}: {raw_dir} holds no {self.file_name('<split>', '<questions|answers|images>')} file; "
                f"expected {self.layout} ({self.title} as published)"
            )

    # -- reading ------------------------------------------------------------------------------

    def records(self, raw_dir: Path) -> Iterator[Record | Rejected]:
        self.check_layout(raw_dir)
        self._last_probe = None  # files may have changed since the last run
        state = _ReadState()
        present = self.present_splits(raw_dir)
        for files in present:
            yield from self._read_homes(raw_dir, files, state)
        for files in present:
            yield from self._read_split(raw_dir, files, state)

    def _read_homes(self, raw_dir: Path, files: SplitFiles, state: _ReadState) -> Iterator[Rejected]:
        """Record which images this split's images file marks active (problems: part-level)."""
        name = self.file_name(files.tag, "images")
        if not (raw_dir / name).is_file():
            yield Rejected(name, f"images file of split {files.tag!r} is missing: its questions cannot be placed "
                           "in a split and are quarantined", level="part")  # fmt: skip
            return
        try:
            for index, image in iter_json_list(raw_dir / name, "images"):
                if not isinstance(image, dict) or not _is_int(image.get("id")):
                    yield Rejected(name, "image entry without an integer 'id'; its questions cannot be placed",
                                   raw_index=index, excerpt=excerpt_of(image), level="part")  # fmt: skip
                elif image.get("active", True) is True:
                    tags = state.active_in.setdefault(image["id"], [])
                    tags.append(files.tag)
                    state.homes.setdefault(image["id"], files.tag)
        except JsonStreamError as error:
            # level part: the questions of the images it lost are counted as unplaceable
            yield Rejected(name, error.reason + "; the rest of the images list is lost", raw_line=error.line,
                           excerpt=error.excerpt, level="part")  # fmt: skip

    def _read_split(self, raw_dir: Path, files: SplitFiles, state: _ReadState) -> Iterator[Record | Rejected]:
        questions_name = self.file_name(files.tag, "questions")
        if not (raw_dir / questions_name).is_file():
            yield Rejected(questions_name, f"questions file of split {files.tag!r} is missing while its other "
                           "files are present; none of its questions can be read")  # fmt: skip
            return
        answers, missing_answers = {}, None
        if (raw_dir / self.file_name(files.tag, "answers")).is_file():
            answers = yield from self._read_answers(raw_dir, files, state)
        else:
            missing_answers = self.file_name(files.tag, "answers")
        seen_questions: dict[Any, int] = {}  # this split's question ids -> first index
        all_question_ids: set = set()  # every question id of the file, to find answers without question
        try:
            for index, question in iter_json_list(raw_dir / questions_name, "questions"):
                if isinstance(question, dict) and _is_int(question.get("id")):
                    all_question_ids.add(question["id"])
                item = self._question(raw_dir, files, state, index, question, answers, seen_questions, missing_answers)
                if item is not None:
                    yield from item
        except JsonStreamError as error:
            yield Rejected(questions_name, error.reason + "; the questions after this point cannot be read",
                           raw_line=error.line, excerpt=error.excerpt)  # fmt: skip
            return  # with questions unread, an answer's question cannot be said to be missing
        yield from self._orphan_answers(files, answers, all_question_ids, state)

    def _read_answers(self, raw_dir: Path, files: SplitFiles, state: _ReadState):
        """Answer id -> _Answer for the whole file (a generator: yields its rejections, returns the index)."""
        name = self.file_name(files.tag, "answers")
        answers: dict[Any, _Answer] = {}
        try:
            for index, answer in iter_json_list(raw_dir / name, "answers"):
                problem = None
                if not isinstance(answer, dict) or not _is_int(answer.get("id")):
                    problem = "answer entry without an integer 'id'"
                elif answer["id"] in answers:
                    problem = f"duplicate answer id {answer['id']} (first at index {answers[answer['id']].index})"
                if problem:
                    if _first_report(state, ("answer", index, excerpt_of(answer))):
                        yield Rejected(name, problem + "; left out", raw_index=index, excerpt=excerpt_of(answer))
                    continue
                answers[answer["id"]] = _Answer(index, answer.get("question_id"), answer.get("answer"),
                                                answer.get("active", True))  # fmt: skip
        except JsonStreamError as error:
            yield Rejected(name, error.reason + "; the answers after this point are lost (their questions are "
                           "quarantined as unanswered)", raw_line=error.line, excerpt=error.excerpt)  # fmt: skip
        return answers

    def _question(self, raw_dir, files, state, index, question, answers, seen, missing_answers):
        """The items for one question element, or None when it belongs to another split."""
        name = self.file_name(files.tag, "questions")

        def reject(reason: str, deliberate: bool = False) -> list[Rejected]:
            return [Rejected(name, reason, raw_index=index, excerpt=excerpt_of(question), deliberate=deliberate)]

        img_id = question.get("img_id") if isinstance(question, dict) else None
        if _is_int(img_id) and state.homes.get(img_id, files.tag) != files.tag:
            return None  # fast path: most of a full-list file belongs to the other splits
        problem = _question_shape_problem(question)
        if problem:
            if _first_report(state, ("question", index, excerpt_of(question))):
                return reject(problem)
            return None
        qid, img_id = question["id"], question["img_id"]
        home = state.homes.get(img_id)
        if home is None:
            if _first_report(state, ("question", index, qid, img_id)):
                return reject(f"image {img_id} of question {qid} is not active in any split's images file "
                              "(withdrawn image or missing entry); question left out")  # fmt: skip
            return None
        if home != files.tag:
            return None  # another split's question: converted while reading that split's files
        if len(state.active_in[img_id]) > 1:
            return reject(f"image {img_id} is active in several splits ({', '.join(state.active_in[img_id])}); "
                          "its questions are left out so no image sits in two splits")  # fmt: skip
        if qid in seen:
            return reject(f"duplicate question id {qid} (first at index {seen[qid]}); second occurrence left out")
        seen[qid] = index
        if question.get("active", True) is not True:
            return reject("inactive question (active: false) — excluded as the dataset authors ask", deliberate=True)
        answer = self._answer_of(question, answers, missing_answers)
        if isinstance(answer, str):
            return reject(answer, deliberate=answer.startswith("inactive answer"))
        text = question["question"]
        for label, value in (("question", text), ("answer", answer.text), ("type", question.get("type") or "")):
            bad = undecodable_byte(value)
            if bad is not None:
                return reject(f"bad encoding: {label} '{printable(value)}' holds byte 0x{bad:02X}, which is not UTF-8")
        image_rel = f"{self.image_dir}/{img_id}.tif"
        info = self._probe(raw_dir, image_rel)
        if isinstance(info, str):
            return reject(f"{info} (expected at {image_rel}); question {qid} left out")
        items: list[Record | Rejected] = []
        if len(question["answers_ids"]) > 1:
            items.append(Rejected(name, f"question {qid} lists {len(question['answers_ids'])} answers; the first "
                                  "is kept", raw_index=index, level="part"))  # fmt: skip
        items.append(
            build_record(
                VQARecord,
                raw_file=name,
                raw_index=index,
                source=self.name,
                record_id=f"{self.name}:{qid}",
                split=files.split,
                subset=files.subset,
                **media_fields(image_rel, image_key(self.family, f"{img_id}.tif"), info),
                question=text.strip(),
                answer=answer.text.strip(),
                question_type=question.get("type") or None,
            )
        )
        return items

    def _probe(self, raw_dir: Path, image_rel: str) -> ImageInfo | str:
        """The image's header info or the reason it cannot be read; questions come in image order, so
        the last answer is remembered (cheaper than building a Path for the cached probe_image)."""
        last = self.__dict__.get("_last_probe")
        if last and last[0] == (raw_dir, image_rel):
            return last[1]
        try:
            info: ImageInfo | str = probe_image(raw_dir / image_rel)
        except ImageProblem as error:
            info = str(error)
        self._last_probe = ((raw_dir, image_rel), info)
        return info

    @staticmethod
    def _answer_of(question: dict, answers: dict, missing_answers: str | None) -> _Answer | str:
        """The question's answer, or the reason it has none that can be used."""
        qid = question["id"]
        if missing_answers:
            return f"question without answer: the answers file {missing_answers} is missing"
        if not question["answers_ids"]:
            return f"question without answer: question {qid} has an empty 'answers_ids'"
        answer_id = question["answers_ids"][0]
        answer = answers.get(answer_id) if _is_int(answer_id) else None
        if answer is None:
            return f"question without answer: answer id {answer_id} of question {qid} is not in the answers file"
        if answer.question_id != qid:
            return f"answer {answer_id} belongs to question {answer.question_id!r}, not to question {qid}"
        if answer.active is not True:
            return f"inactive answer (active: false) to question {qid} — excluded as the dataset authors ask"
        if not isinstance(answer.text, str) or not answer.text.strip():
            return f"answer {answer_id} of question {qid} is empty or not text ({excerpt_of(answer.text)})"
        return answer

    def _orphan_answers(self, files, answers, question_ids, state) -> Iterator[Rejected]:
        name = self.file_name(files.tag, "answers")
        for answer_id, answer in answers.items():
            if _is_int(answer.question_id) and answer.question_id in question_ids:
                continue
            if _first_report(state, ("orphan", answer.index, answer_id, repr(answer.question_id))):
                yield Rejected(name, f"answer without question: answer {answer_id} names question "
                               f"{answer.question_id!r}, which is not in the questions file",
                               raw_index=answer.index)  # fmt: skip

    # -- synthesis ----------------------------------------------------------------------------

    def synthesize(self, raw_dir: Path, scale: Scale, rng: random.Random) -> int:
        return write_synthetic(self, raw_dir, scale, rng)


_KINDS = ("questions", "answers", "images")


def _first_report(state: _ReadState, key: tuple) -> bool:
    """True the first time a raw item's problem is seen (full-list files repeat it per split)."""
    if key in state.reported:
        return False
    state.reported.add(key)
    return True


def _question_shape_problem(question: Any) -> str | None:
    if not isinstance(question, dict):
        return f"question entry is {type(question).__name__}, not an object"
    missing = [k for k in ("id", "img_id", "question", "answers_ids") if k not in question]
    if missing:
        return f"question entry is missing field(s) {', '.join(missing)}"
    if not _is_int(question["id"]) or not _is_int(question["img_id"]):
        return "question 'id' and 'img_id' must be integers"
    if not isinstance(question["question"], str) or not question["question"].strip():
        return f"question {question['id']} has an empty or non-text 'question'"
    if not isinstance(question["answers_ids"], list):
        return f"question {question['id']}: 'answers_ids' is not a list"
    if question.get("type") is not None and not isinstance(question["type"], str):
        return f"question {question['id']}: 'type' is not text"
    return None


# ---------------------------------------------------------------------------------------------
# Synthesis: the full-list layout, streamed
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RsvqaSynthSpec:
    """What a synthetic copy of one RSVQA dataset looks like."""

    image_size: int  # mini images have the real size; paper images are tiny
    mini_images: dict[str, int]  # split tag -> images
    mini_questions_per_image: int
    paper_images: dict[str, int]
    paper_questions: dict[str, int]  # split tag -> active questions
    paper_inactive: int  # withdrawn questions (active: false), spread over the images
    make_question: Callable[[random.Random], tuple[str, str, str]]  # -> (type, question, answer)


def write_synthetic(source: RsvqaSource, raw_dir: Path, scale: Scale, rng: random.Random) -> int:
    """Write the trio of every split in the full-list layout; return the questions written (per split file
    set, i.e. the distinct raw questions)."""
    spec = source.synth
    if scale == "mini":
        images = dict(spec.mini_images)
        questions = {tag: n * spec.mini_questions_per_image for tag, n in images.items()}
        inactive, size = 1, spec.image_size
    else:
        images, questions, inactive, size = dict(spec.paper_images), dict(spec.paper_questions), spec.paper_inactive, 8
    tags = [s.tag for s in source.splits]
    home: list[str] = [tag for tag in tags for _ in range(images[tag])]  # image id -> home split tag
    per_image = _questions_per_image(home, questions, inactive, images)
    image_dir = raw_dir / source.image_dir
    for img_id, tag in enumerate(home):
        # mini: real size; paper: tiny images keep the benchmark about annotation handling
        synth_image(image_dir / f"{img_id}.tif", size, size, seed=f"{source.name}:{img_id}")
    with _TrioWriters(source, raw_dir, tags) as out:
        qid = 0
        for img_id, tag in enumerate(home):
            active_n, inactive_n = per_image[img_id]
            qids = list(range(qid, qid + active_n + inactive_n))
            out.image({"id": img_id, "date_added": 1579865382.0 + img_id, "original_name": f"{img_id}.png",
                       "people_id": 0, "type": "0", "questions_ids": qids}, tag)  # fmt: skip
            for number, q in enumerate(qids):
                qtype, text, answer = spec.make_question(rng)
                active = number < active_n
                out.question({"id": q, "date_added": 1579865382.5, "img_id": img_id, "people_id": 0, "type": qtype,
                              "question": text, "answers_ids": [q], "active": active})  # fmt: skip
                out.answer({"id": q, "date_added": 1579865382.5, "question_id": q, "people_id": 0,
                            "answer": answer, "active": active})  # fmt: skip
            qid += len(qids)
    return qid


def _questions_per_image(home: list[str], questions: dict[str, int], inactive: int, images: dict[str, int]):
    """(active, inactive) question counts per image: each split's total spread evenly; withdrawn
    questions go to the first images of the first split (mini: exactly one)."""
    counts: list[list[int]] = []
    seen: dict[str, int] = {}
    for tag in home:
        k = seen.get(tag, 0)
        seen[tag] = k + 1
        base, extra = divmod(questions[tag], images[tag])
        counts.append([base + (1 if k < extra else 0), 0])
    for i in range(inactive):
        counts[i % len(counts)][1] += 1
    return counts


class _TrioWriters:
    """Streams every split's three files at once. Questions and answers are the same full lists in
    every split file (serialised once, written to each); the images lists differ only in ``active``."""

    def __init__(self, source: RsvqaSource, raw_dir: Path, tags: list[str]):
        self.source, self.raw_dir, self.tags = source, raw_dir, tags
        self.stack = contextlib.ExitStack()
        self.files: dict[tuple[str, str], TextIO] = {}
        self.count = dict.fromkeys(_KINDS, 0)

    def __enter__(self) -> "_TrioWriters":
        self.raw_dir.mkdir(parents=True, exist_ok=True)
        with self.stack as stack:
            for tag in self.tags:
                for kind in _KINDS:
                    # atomic: each file appears under its name only once it is complete
                    tmp = stack.enter_context(atomic_path(self.raw_dir / self.source.file_name(tag, kind)))
                    handle = stack.enter_context(open(tmp, "w", encoding="utf-8"))
                    handle.write(f'{{"{kind}": [')
                    self.files[(tag, kind)] = handle
            self.stack = stack.pop_all()
        return self

    def _write(self, kind: str, texts: dict[str, str]) -> None:
        sep = ", " if self.count[kind] else ""
        self.count[kind] += 1
        for tag in self.tags:
            self.files[(tag, kind)].write(sep + texts[tag])

    def image(self, entry: dict, home_tag: str) -> None:
        self._write("images", {tag: json.dumps({**entry, "active": tag == home_tag}) for tag in self.tags})

    def question(self, entry: dict) -> None:
        self._write("questions", dict.fromkeys(self.tags, json.dumps(entry)))

    def answer(self, entry: dict) -> None:
        self._write("answers", dict.fromkeys(self.tags, json.dumps(entry)))

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is None:
            for handle in self.files.values():
                handle.write("]}")
        return self.stack.__exit__(exc_type, exc, tb)
