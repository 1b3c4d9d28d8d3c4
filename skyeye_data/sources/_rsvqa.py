"""Shared reading and writing of the RSVQA question/answer/image JSON trios (RSVQA-LR and RSVQA-HR).

Both RSVQA datasets (Lobry et al. 2020) publish, per split, three JSON files::

    <P>_split_<split>_images.json     {"images": [{"id", "active", "questions_ids", "original_name",
                                                     "sensor", "people_id", "date_added", ...}, ...]}
    <P>_split_<split>_questions.json  {"questions": [{"id", "img_id", "type", "question",
                                                        "answers_ids", "active", "people_id", ...}]}
    <P>_split_<split>_answers.json    {"answers": [{"id", "question_id", "answer", "active", ...}]}

with ``<P>`` = ``LR`` or ``USGS`` and the images at ``<image_dir>/<image id>.tif``.

How the published files were made (github.com/syvlo/RSVQA, ``AutomaticDB/Splits.py``, the script
that wrote them from the authors' database; read with ``VQA_model/VQALoader.py``): ids are global
across splits and a record's ``id`` equals its list index. Each split's images file lists *every*
image: the split's own as the full database entry (``"active": true``), every other one as the stub
``{"id": N, "active": false}``. Its questions file holds, image by image, the split's own questions
(withdrawn ones included, ``"active": false`` with all their fields), the id gaps before them filled
with the same stubs; its answers file likewise for the answers of the split's active questions. A
stub carries no other field and means "this id belongs to another split": it is passed over, is no
raw record of this split and is never quarantined (``state.stubs`` counts them). The authors' loader
reads a split as the ``questions_ids`` of the images active in its images file, each question's
answer being ``answers[answers_ids[0]]``. Copies that hold the full lists in every split file (no
stubs; the split's images marked active) are read by the same rules. Reading rules:

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
- **Streaming.** The HR questions file of one split is ~140 MB. :func:`iter_json_chunks` reads a
  ``{"key": [...]}`` file a chunk of elements at a time (Splits.py's runs of padding stubs checked
  byte for byte and left undecoded), so only the indexes the join needs are held: image id → home
  split, and answer id → (question id, answer, active). ``skyeye convert`` takes the rows in bulk
  (:meth:`RsvqaSource.row_items`, :mod:`skyeye_data.sources._rsvqa_rows`; chunks in the authors' one
  form read from their text, :mod:`skyeye_data.sources._rsvqa_text`); :meth:`records` is the reference.
  Images are probed with one raw-root check per folder (:mod:`skyeye_data.sources.folder_probe`).
- **Broken files.** A file that stops being valid JSON (truncated download) gives one record-level
  rejection "invalid JSON at line L col C" for the unreadable rest (what came before it is kept);
  bytes that are not UTF-8 are read with ``surrogateescape`` and quarantine the one record holding
  them ("bad encoding"). A duplicate question id quarantines the second occurrence; a missing or
  unreadable image quarantines its questions (each image is probed once: ``probe_image`` is cached).
- Every split's three files must be there (:meth:`RsvqaSource.check_layout`): a missing one is a
  LayoutError naming it, never a split skipped without a word.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, ClassVar, Iterator


from skyeye_data.json_stream import JsonStreamError, excerpt_of, iter_json_list, printable, undecodable_byte
from skyeye_data.schema import Record, VQARecord
from skyeye_data.sources.base import (
    ImageInfo,
    ImageProblem,
    LayoutError,
    Rejected,
    SourceConverter,
    build_record,
    media_fields,
    probe_image,
)
from skyeye_data.sources.folder_probe import FolderProbe
from skyeye_data.sources._plain_record import plain_vqa_record
from skyeye_data.sources._rsvqa_rows import INACTIVE_QUESTION, RsvqaAnswer, answer_elements, every_owner_known, is_stub, read_question_rows
from skyeye_data.sources.row_block import VqaRowBlock

def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# ---------------------------------------------------------------------------------------------
# Layout
# ---------------------------------------------------------------------------------------------


RSVQA_CITATION = (
    "Lobry, Marcos, Murray, Tuia. RSVQA: Visual Question Answering for Remote Sensing Data. "
    "IEEE TGRS 58(12), 2020."
)
RSVQA_HOMEPAGE = "https://rsvqa.sylvainlobry.com"


@dataclass(frozen=True)
class SplitFiles:
    """One published split: its file tag, and the record split/subset it becomes."""

    tag: str  # as in the file names: "train", "test_phili"
    split: str  # train | val | test
    subset: str | None  # e.g. HR "test" (test set 1) / "test_phili" (test set 2)


@dataclass
class _ReadState:
    """What one conversion run remembers across split files (all small)."""

    homes: dict[Any, str] = field(default_factory=dict)  # image id -> split tag where it is active
    active_in: dict[Any, list[str]] = field(default_factory=dict)  # image id -> tags where active
    reported: set = field(default_factory=set)  # problems already counted in an earlier split file
    stubs: int = 0  # question stubs passed over ("not in this split")


class RsvqaSource(SourceConverter):
    """A VQA source published as RSVQA JSON trios. Subclasses set the class attributes."""

    task: ClassVar[str] = "vqa"
    prefix: ClassVar[str]  # "LR" | "USGS"
    image_dir: ClassVar[str]  # "Images_LR" | "Data"
    splits: ClassVar[tuple[SplitFiles, ...]]

    def file_name(self, tag: str, kind: str) -> str:
        return f"{self.prefix}_split_{tag}_{kind}.json"

    def present_splits(self, raw_dir: Path) -> list[SplitFiles]:
        return [s for s in self.splits if any((raw_dir / self.file_name(s.tag, k)).is_file() for k in KINDS)]

    def check_layout(self, raw_dir: Path) -> None:
        super().check_layout(raw_dir)
        if not self.present_splits(raw_dir):
            raise LayoutError(
                f"{self.name}: {raw_dir} holds no {self.file_name('<split>', '<questions|answers|images>')} file; "
                f"expected {self.layout} ({self.title} as published)"
            )
        missing = self.missing_files(raw_dir)
        if missing:
            raise LayoutError(
                f"{self.name}: {raw_dir} lacks {', '.join(missing)}: the published {self.title} has the three files "
                f"of every split ({', '.join(s.tag for s in self.splits)}); download the missing ones from "
                f"{self.homepage} into {raw_dir} (a split is never skipped silently)"
            )

    def count_raw(self, raw_dir: Path, found) -> dict[str, int] | None:
        """Images active in each split's images file (the small file; questions are not read)."""
        counts: dict[str, int] = {}
        for files in self.splits:
            try:
                counts[files.tag] = sum(1 for _, image in iter_json_list(raw_dir / self.file_name(files.tag, "images"), "images")
                                        if isinstance(image, dict) and image.get("active", True) is True)  # fmt: skip
            except JsonStreamError:
                return None
        return counts

    def missing_files(self, raw_dir: Path) -> list[str]:
        return [self.file_name(s.tag, k) for s in self.splits for k in KINDS if not (raw_dir / self.file_name(s.tag, k)).is_file()]

    # -- reading ------------------------------------------------------------------------------

    def records(self, raw_dir: Path) -> Iterator[Record | Rejected]:
        return self._items(raw_dir, rows=False)

    def row_items(self, raw_dir: Path) -> Iterator[VqaRowBlock | Rejected]:
        """:meth:`records` with the records as row blocks (``skyeye convert``'s path): the same rows, the same
        rejections in the same order, a run of withdrawn questions as one ``RejectedRun`` (``_rsvqa_rows``)."""
        return self._items(raw_dir, rows=True)

    def _items(self, raw_dir: Path, rows: bool) -> Iterator[Record | VqaRowBlock | Rejected]:
        self.check_layout(raw_dir)
        self._last_probe = None  # files may have changed since the last run
        self._images = FolderProbe(raw_dir / self.image_dir)  # one raw-root check for the folder
        state = _ReadState()
        present = self.present_splits(raw_dir)
        for files in present:
            yield from self._read_homes(raw_dir, files, state)
        for files in present:
            yield from self._read_split(raw_dir, files, state, rows)

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

    def _read_split(self, raw_dir: Path, files: SplitFiles, state: _ReadState, rows: bool) -> Iterator[Record | VqaRowBlock | Rejected]:
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
        read = partial(read_question_rows, self) if rows else self._question_records
        try:
            yield from read(raw_dir, files, state, answers, seen_questions, all_question_ids, missing_answers)
        except JsonStreamError as error:
            yield Rejected(questions_name, error.reason + "; the questions after this point cannot be read",
                           raw_line=error.line, excerpt=error.excerpt)  # fmt: skip
            return  # with questions unread, an answer's question cannot be said to be missing
        yield from self._orphan_answers(files, answers, all_question_ids, state)

    def _question_records(self, raw_dir, files, state, answers, seen, question_ids, missing_answers) -> Iterator[Record | Rejected]:
        """The items of one split's questions file, question by question (the reference path)."""
        for index, question in iter_json_list(raw_dir / self.file_name(files.tag, "questions"), "questions"):
            if type(question) is dict and len(question) <= 2 and is_stub(question):  # len: the cheap test first
                state.stubs += 1  # "not in this split" (Splits.py's padding): no raw record here
                continue
            if isinstance(question, dict) and _is_int(question.get("id")):
                question_ids.add(question["id"])
            item = self._question(raw_dir, files, state, index, question, answers, seen, missing_answers)
            if item is not None:
                yield from item

    def _read_answers(self, raw_dir: Path, files: SplitFiles, state: _ReadState):
        """Answer id -> RsvqaAnswer for the whole file (a generator: yields its rejections, returns the index)."""
        name = self.file_name(files.tag, "answers")
        answers: dict[Any, RsvqaAnswer] = {}
        try:
            for index, answer in answer_elements(raw_dir / name, answers):
                problem = None
                if not isinstance(answer, dict) or not _is_int(answer.get("id")):
                    problem = "answer entry without an integer 'id'"
                elif answer["id"] in answers:
                    problem = f"duplicate answer id {answer['id']} (first at index {answers[answer['id']].index})"
                if problem:
                    if _first_report(state, ("answer", index, excerpt_of(answer))):
                        yield Rejected(name, problem + "; left out", raw_index=index, excerpt=excerpt_of(answer))
                    continue
                answers[answer["id"]] = RsvqaAnswer(index, answer.get("question_id"), answer.get("answer"),
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
            return reject(INACTIVE_QUESTION, deliberate=True)
        answer = self._answer_of(question, answers, missing_answers)
        if isinstance(answer, str):
            return reject(answer, deliberate=answer.startswith("inactive answer"))
        text = question["question"]
        qtype = question.get("type") or ""
        if undecodable_byte(text + answer.text + qtype) is not None:  # one scan; which field, only when found
            for label, value in (("question", text), ("answer", answer.text), ("type", qtype)):
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
        fields = dict(
            source=self.name,
            record_id=f"{self.name}:{qid}",
            split=files.split,
            subset=files.subset,
            # = image_key(family, "<id>.tif"), without building a Path per question (HR: a million)
            **media_fields(image_rel, f"{self.family}:{img_id}", info),
            question=text.strip(),
            answer=answer.text.strip(),
            question_type=question.get("type") or None,
        )
        items.append(plain_vqa_record(name, index, fields) or build_record(VQARecord, raw_file=name, raw_index=index, **fields))
        return items

    def _probe(self, raw_dir: Path, image_rel: str) -> ImageInfo | str:
        """The image's header info or the reason it cannot be read; questions come in image order, so
        the last answer is remembered. ``probe_image``'s answer, through one raw-root check for the
        image folder (:mod:`skyeye_data.sources.folder_probe`)."""
        last = self.__dict__.get("_last_probe")
        if last and last[0] == (raw_dir, image_rel):
            return last[1]
        images, (folder, _, name) = self.__dict__.get("_images"), image_rel.rpartition("/")
        try:
            fast = images is not None and images.folder == raw_dir / folder
            info: ImageInfo | str = images.probe(name) if fast else probe_image(raw_dir / image_rel)
        except ImageProblem as error:
            info = str(error)
        self._last_probe = ((raw_dir, image_rel), info)
        return info

    @staticmethod
    def _answer_of(question: dict, answers: dict, missing_answers: str | None) -> RsvqaAnswer | str:
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
        if every_owner_known(answers, question_ids):  # a million answers: the loop only when one has no owner
            return
        # type() is int: _is_int for JSON values (no int subclass but bool)
        orphans = [(answer_id, answer) for answer_id, answer in answers.items()
                   if type(answer.question_id) is not int or answer.question_id not in question_ids]  # fmt: skip
        for answer_id, answer in orphans:
            if _first_report(state, ("orphan", answer.index, answer_id, repr(answer.question_id))):
                yield Rejected(name, f"answer without question: answer {answer_id} names question "
                               f"{answer.question_id!r}, which is not in the questions file",
                               raw_index=answer.index)  # fmt: skip


KINDS = ("questions", "answers", "images")


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
