"""The questions file of one RSVQA split read into :class:`~skyeye_data.sources.row_block.VqaRowBlock` rows:
the bulk form of :meth:`RsvqaSource._question <skyeye_data.sources._rsvqa.RsvqaSource._question>`.

RSVQA-HR has a million questions (and three times as many ``{"id": N, "active": false}`` stubs);
building a record object per question, then a row dict per record, cost more than reading the
JSON. Here a question takes the fast path only when every check the exact path makes is known to
pass, with values of plain types: a dict with integer ``id`` and ``img_id``, the image active in
this split only, an id not seen before, ``active`` true, one answer id naming an answer of the file
that points back, is active and is text; question, answer and type printable ASCII (nothing for
:mod:`skyeye_data.textguard` to strip or refuse: each character it acts on is a control, non-ASCII
or a surrogate), non-blank after ``strip`` and within ``input.max_text_chars``; the image readable
with a positive width and height. Its row then holds the values
:func:`~skyeye_data.sources._plain_record.plain_vqa_record` would store (the identity fields are
built from integers and the source's names, so they are printable ASCII too).

Every other element -- not a dict, another split's, a problem of any kind, text to clean -- goes
through the exact path (``_question``) at its place in the file, so each rejection, its reason and
its order, and each record, are exactly those of :meth:`RsvqaSource.records`
(``tests/test_sources_rsvqa_rows.py`` compares both on every RSVQA case).

A chunk in the authors' one form (:mod:`skyeye_data.sources._rsvqa_text`: the real files and the
paper-scale corpus) is never decoded into dicts: :func:`_piece_rows` makes the same checks on the
fields' text (and rejects a withdrawn question as ``_question`` does, the 59k of RSVQA-HR), and
decodes with orjson only the elements it hands to ``_question``; :func:`_piece_answers` fills the
answer index the same way, with each answer's fast-path text worked out once
(:attr:`RsvqaAnswer.plain`). :func:`_piece_rows` takes a piece column by column (each image's
facts once per piece) when no question's fate depends on another's (every id new to the file, each
question with one answer id), else question by question (:func:`_piece_rows_each`); both make the
same decisions (``tests/test_sources_rsvqa_bulk.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import compress, repeat
from operator import attrgetter, itemgetter
from pathlib import Path
from typing import Any, Iterator

from skyeye_data.json_stream import iter_json_chunks
from skyeye_data.rawfs import current_limits
from skyeye_data.sources.base import ImageInfo, Rejected, RejectedRun
from skyeye_data.sources.row_block import VqaRowBlock
from skyeye_data.sources._rsvqa_padding import padding_runs
from skyeye_data.sources._rsvqa_text import CanonicalPiece, answer_piece, decode, question_excerpt, question_piece
from skyeye_data.textguard import safe_text

BLOCK_ROWS = 16384  # rows per yielded block (memory: a few MB of Python strings)


def read_question_rows(source: Any, raw_dir: Path, files: Any, state: Any, answers: dict,
                       seen: dict, question_ids: set, missing_answers: str | None) -> Iterator[Rejected | RejectedRun | VqaRowBlock]:  # fmt: skip
    """The rejections and row blocks of one split's questions file, in file order (a JsonStreamError
    from the file is raised after the rows read before it were yielded). ``source``, ``files`` and
    ``state``: the RsvqaSource, SplitFiles and _ReadState of :mod:`skyeye_data.sources._rsvqa`
    (which imports this module); ``seen`` and ``question_ids`` are filled as ``_read_split`` does."""
    name = source.file_name(files.tag, "questions")
    tag, homes, active_in, cap = files.tag, state.homes, state.active_in, current_limits().max_text_chars
    raw_file = safe_text(name)
    block = VqaRowBlock(source.name, files.split, files.subset, raw_file)
    media = _ImageMedia(source, raw_dir)
    record_prefix, next_index = f"{source.name}:", 0
    try:
        for start, elements in iter_json_chunks(raw_dir / name, "questions", skip_runs=padding_runs, canonical=question_piece):
            if isinstance(elements, CanonicalPiece):
                state.stubs += start - next_index + elements.stubs
                next_index = start + len(elements)
                for item in _piece_rows(source, raw_dir, files, state, start, elements, answers, seen, question_ids,
                                        missing_answers, block, media, cap):  # fmt: skip
                    yield item
                if block.rows >= BLOCK_ROWS:
                    yield block
                    block = VqaRowBlock(source.name, files.split, files.subset, raw_file)
                continue
            kept = without_stubs(start, elements)
            # "not in this split" (Splits.py's padding, decoded or left out as a run): no raw record here
            state.stubs += start - next_index + len(elements) - len(kept)
            next_index = start + len(elements)
            add = block.add_row
            for index, question in kept:
                if type(question) is dict:
                    qid, img_id = question.get("id"), question.get("img_id")
                    if type(qid) is int:
                        question_ids.add(qid)
                    if type(img_id) is int:
                        home = homes.get(img_id)
                        if home is not None and home != tag:
                            continue  # another split's question: converted while reading that split's files
                        # the fast path (module docstring): every check known to pass, else the exact path
                        text, answer_ids, qtype = question.get("question"), question.get("answers_ids"), question.get("type")
                        if home is not None and type(qid) is int and missing_answers is None and type(text) is str \
                                and type(answer_ids) is list and len(answer_ids) == 1 and (qtype is None or type(qtype) is str) \
                                and len(active_in[img_id]) == 1 and qid not in seen and question.get("active", True) is True:  # fmt: skip
                            answer = answers.get(answer_ids[0]) if type(answer_ids[0]) is int else None
                            if answer is not None and answer.question_id == qid and answer.active is True and type(answer.text) is str:
                                qtype = qtype or ""
                                joined = text + answer.text + qtype
                                text, answer_text = text.strip(), answer.text.strip()
                                if joined.isascii() and joined.isprintable() and text and answer_text and len(text) <= cap \
                                        and len(answer_text) <= cap and len(qtype) <= cap:  # fmt: skip
                                    fields = media.fields if img_id == media.img_id else media.of(img_id)
                                    if fields is not None:
                                        seen[qid] = index
                                        add(f"{record_prefix}{qid}", fields, text, answer_text, qtype or None, index)
                                        continue
                yield from _exact_path(source, raw_dir, files, state, index, question, answers, seen, missing_answers, block)
            if block.rows >= BLOCK_ROWS:
                yield block
                block = VqaRowBlock(source.name, files.split, files.subset, raw_file)
    except Exception:
        if block.rows:
            yield block  # the rows read before the file stopped being readable
        raise
    if block.rows:
        yield block


def _piece_rows(source: Any, raw_dir: Path, files: Any, state: Any, index: int, piece: CanonicalPiece, answers: dict,
               seen: dict, question_ids: set, missing_answers: str | None, block: VqaRowBlock, media: "_ImageMedia",
               cap: int) -> Iterator[Rejected | RejectedRun]:  # fmt: skip
    """The loop of :func:`read_question_rows` over a canonical piece (:mod:`skyeye_data.sources._rsvqa_text`),
    column by column: the element rows' indexes, ids, answers and texts in C-level passes, each image's
    facts once, then one expression per question for its fate (a row, a withdrawn question, another
    split's, the exact path); the runs of rows between exact-path questions go into ``block`` a column
    at a time, and each exact-path question is judged by ``_question`` at its place. A piece that needs the question-by-question order of
    ``seen`` (an id met before in the file, or twice in it), or whose answers cannot all be looked up the plain way
    (no answers file, an empty or multi-answer ``answers_ids``), goes to :func:`_piece_rows_each`,
    which makes the same decisions one question at a time."""
    rows, indexes = _element_rows(piece, index)
    if not rows:
        return
    elements, qid_texts, img_texts, type_texts, texts, answer_texts, actives, _ = zip(*rows)
    qids = list(map(int, qid_texts))
    known = len(question_ids)
    question_ids.update(qids)
    # every id new to the file (``seen`` is a part of question_ids): no question's fate hangs on another's
    if len(question_ids) - known != len(qids) or missing_answers is not None \
            or b"" in answer_texts or b"," in b" ".join(answer_texts):  # fmt: skip
        yield from _piece_rows_each(source, raw_dir, files, state, index, piece, answers, seen, missing_answers,
                                    block, media, cap)  # fmt: skip
        return
    tag, homes, active_in, prefix = files.tag, state.homes, state.active_in, f"{source.name}:"
    images = {}  # image id text -> _OTHER_SPLIT, its media fields (alone in this split), or None (the exact path)
    for img_text in dict.fromkeys(img_texts):  # file order: the media of the last image is remembered
        image = int(img_text)
        home = homes.get(image)
        if home is not None and home != tag:
            images[img_text] = _OTHER_SPLIT  # another split's question: converted while reading that split's files
        elif home is not None and len(active_in[image]) == 1:
            images[img_text] = media.fields if image == media.img_id else media.of(image)
        else:
            images[img_text] = None
    # each question's fate, from its columns: a row, a withdrawn question, another split's, or the exact path
    kinds = {}  # a type's text -> its question_type (None for ""), or _TOO_LONG
    for qtype in dict.fromkeys(type_texts):
        kinds[qtype] = (qtype.decode() or None) if len(qtype) <= cap else _TOO_LONG
    media_col = list(map(images.__getitem__, img_texts))
    found = list(map(answers.get, map(int, answer_texts), repeat(_NO_ANSWER)))
    answer_col = list(map(_PLAIN, found))  # RsvqaAnswer.plain: active, printable ASCII, non-blank, within the cap
    questions = list(map(bytes.decode, map(bytes.strip, texts)))  # printable ASCII: bytes.strip is str.strip
    types = list(map(kinds.__getitem__, type_texts))
    fates = [(_ROW if active == b"true" and owner == qid and plain is not None and question and len(question) <= cap
              and kind is not _TOO_LONG else _WITHDRAWN if active == b"false" and question else _EXACT)
             if type(fields) is tuple else _SKIP if fields is _OTHER_SPLIT else _EXACT
             for fields, active, owner, qid, plain, question, kind
             in zip(media_col, actives, map(_QUESTION_ID, found), qids, answer_col, questions, types)]  # fmt: skip
    name = source.file_name(files.tag, "questions")
    start, exact = 0, [at for at, fate in enumerate(fates) if fate == _EXACT]
    for stop in exact + [len(fates)]:  # the runs between exact-path questions, column by column
        if stop > start:
            run = slice(start, stop)
            run_fates, run_indexes, run_qids = fates[run], indexes[run], qids[run]
            rows = list(map(_ROW.__eq__, run_fates))
            row_indexes = list(compress(run_indexes, rows))
            row_qids = list(compress(run_qids, rows))
            seen.update(zip(row_qids, row_indexes))
            block.extend(map(prefix.__add__, map(str, row_qids)), compress(media_col[run], rows), compress(questions[run], rows),
                         compress(answer_col[run], rows), compress(types[run], rows), row_indexes)  # fmt: skip
            if _WITHDRAWN in run_fates:  # RSVQA-HR: 59k withdrawn questions, rejected as _question does
                withdrawn = list(map(_WITHDRAWN.__eq__, run_fates))
                at = list(compress(run_indexes, withdrawn))
                seen.update(zip(compress(run_qids, withdrawn), at))
                yield RejectedRun(name, INACTIVE_QUESTION, at, list(map(question_excerpt, compress(elements[run], withdrawn))),
                                  deliberate=True)  # fmt: skip
        if stop < len(fates):
            yield from _exact_path(source, raw_dir, files, state, indexes[stop], decode(elements[stop]), answers, seen,
                                   missing_answers, block)  # fmt: skip
        start = stop + 1


# a question's fate in _piece_rows
_ROW, _WITHDRAWN, _SKIP, _EXACT = 0, 1, 2, 3


_OTHER_SPLIT, _TOO_LONG = object(), object()


def _exact_path(source: Any, raw_dir: Path, files: Any, state: Any, index: int, question: Any, answers: dict,
                seen: dict, missing_answers: str | None, block: VqaRowBlock) -> Iterator[Rejected]:  # fmt: skip
    """``_question``'s items for one element at its place: its rejections yielded, its record into ``block``."""
    for item in source._question(raw_dir, files, state, index, question, answers, seen, missing_answers) or ():
        if isinstance(item, Rejected):
            yield item
        else:
            block.add_record(item)


def _element_rows(piece: CanonicalPiece, index: int) -> tuple[list[tuple[bytes, ...]], Any]:
    """The element rows of ``piece`` (its stub runs left out) and each one's index in the file, the
    first element or run being at ``index`` (a run of n stubs takes n indexes)."""
    rows = piece.rows
    if not piece.stubs:
        return rows, range(index, index + len(rows))
    runs = list(map(_RUN, rows))
    elements, indexes, last = [], [], 0
    for at in compress(range(len(rows)), runs):  # the few stub-run rows: the elements between them at once
        elements += rows[last:at]
        indexes += range(index, index + at - last)
        index += at - last + runs[at].count(b"{")  # a stub's text has one '{'
        last = at + 1
    elements += rows[last:]
    indexes += range(index, index + len(rows) - last)
    return elements, indexes


def _piece_rows_each(source: Any, raw_dir: Path, files: Any, state: Any, index: int, piece: CanonicalPiece,
                     answers: dict, seen: dict, missing_answers: str | None, block: VqaRowBlock,
                     media: "_ImageMedia", cap: int) -> Iterator[Rejected]:  # fmt: skip
    """:func:`_piece_rows` one question at a time (``question_ids`` is filled by the caller): the same
    checks on the fields' text (printable ASCII by the pattern: nothing for textguard to do), rows
    into ``block``; a withdrawn question that passes every check before ``active`` is rejected here
    as ``_question`` rejects it; every other element is decoded and judged by ``_question`` at its place."""
    tag, homes, active_in, prefix = files.tag, state.homes, state.active_in, f"{source.name}:"
    name = source.file_name(files.tag, "questions")
    add = block.add_row
    last_image, home, alone = None, None, False  # questions come image by image: its facts once per run
    for element, qid, img_id, qtype, text, answer_ids, active, run in piece.rows:
        if run:
            index += run.count(b"{")  # padding stubs: no raw record here
            continue
        qid = int(qid)
        if img_id != last_image:
            last_image, image = img_id, int(img_id)
            home = homes.get(image)
            alone = home is not None and len(active_in[image]) == 1
        if home is not None and home != tag:
            index += 1
            continue  # another split's question: converted while reading that split's files
        if alone and qid not in seen:
            if active == b"true" and missing_answers is None and answer_ids and b"," not in answer_ids:
                answer = answers.get(int(answer_ids))
                if answer is not None and answer.question_id == qid and (answer_text := answer.plain) is not None:
                    question, kind = text.decode().strip(), qtype.decode()
                    if question and len(question) <= cap and len(kind) <= cap:
                        fields = media.fields if image == media.img_id else media.of(image)
                        if fields is not None:
                            seen[qid] = index
                            add(prefix + str(qid), fields, question, answer_text, kind or None, index)
                            index += 1
                            continue
            elif active == b"false" and text.strip():  # RSVQA-HR: 59k withdrawn questions
                seen[qid] = index
                yield Rejected(name, INACTIVE_QUESTION, raw_index=index, excerpt=question_excerpt(element), deliberate=True)
                index += 1
                continue
        yield from _exact_path(source, raw_dir, files, state, index, decode(element), answers, seen, missing_answers, block)
        index += 1


# the reason of a question the authors withdrew (_rsvqa.RsvqaSource._question gives it too)
INACTIVE_QUESTION = "inactive question (active: false) — excluded as the dataset authors ask"


_STUB_KEYS = frozenset({"id", "active"})


def without_stubs(start: int, elements: list) -> list[tuple[int, Any]]:
    """``(index, element)`` of the elements that are not :func:`is_stub` (inlined: RSVQA-HR has
    three million stubs in its questions files, three million in its answers files)."""
    return [(index, element) for index, element in enumerate(elements, start)
            if type(element) is not dict or len(element) > 2 or element.get("active") is not False
            or not element.keys() <= _STUB_KEYS]  # fmt: skip


class _ImageMedia:
    """The media columns of the last image asked for (questions come image by image), or None when
    its probe gives a problem or values the fast path does not take (the exact path then decides)."""

    __slots__ = ("source", "raw_dir", "img_id", "fields")

    def __init__(self, source: Any, raw_dir: Path):
        self.source, self.raw_dir, self.img_id, self.fields = source, raw_dir, None, None

    def of(self, img_id: int) -> tuple[Any, ...] | None:
        if img_id != self.img_id:
            image_rel = f"{self.source.image_dir}/{img_id}.tif"
            info = self.source._probe(self.raw_dir, image_rel)
            good = isinstance(info, ImageInfo) and type(info.width) is int and type(info.height) is int \
                and info.width > 0 and info.height > 0 and type(info.sha256) is str and info.sha256.isascii() \
                and info.sha256.isprintable()  # fmt: skip
            key = f"{self.source.family}:{img_id}"
            self.img_id, self.fields = img_id, (image_rel, key, info.sha256, info.width, info.height) if good else None
        return self.fields


def is_stub(value: Any) -> bool:
    """``{"id": N, "active": false}`` and nothing else: Splits.py's filler for an id of another split."""
    return type(value) is dict and value.get("active") is False and len(value) <= 2 and value.keys() <= {"id", "active"}


@dataclass(slots=True)
class RsvqaAnswer:
    """One answer of the answers file."""

    index: int
    question_id: Any
    text: Any
    active: Any
    # ``text.strip()`` when the answer can take the fast path (active, printable ASCII text, non-blank
    # and within input.max_text_chars: :func:`plain_answer`), else None
    plain: str | None = None


_NO_ANSWER = RsvqaAnswer(-1, None, None, False)  # what _piece_rows finds for an answer id not in the file


def every_owner_known(answers: dict, question_ids: set) -> bool:
    """True when every answer names a question of ``question_ids`` with an integer (``type() is int``):
    two passes in C over RSVQA-HR's million answers instead of a loop."""
    owners = list(map(_QUESTION_ID, answers.values()))
    return set(map(type, owners)) <= {int} and question_ids.issuperset(owners)


_QUESTION_ID, _PLAIN = attrgetter("question_id"), attrgetter("plain")


def plain_answer(text: Any, active: Any, cap: int) -> str | None:
    """:attr:`RsvqaAnswer.plain` of an answer with this ``text`` and ``active``."""
    if active is True and type(text) is str and text.isascii() and text.isprintable():
        stripped = text.strip()
        return stripped if stripped and len(stripped) <= cap else None
    return None


def answer_elements(path: Path, answers: dict) -> Iterator[tuple[int, Any]]:
    """The answers file's elements but the stubs, with a plain answer (a dict with a new integer
    ``id``) put straight into ``answers``: a million of them in RSVQA-HR (the rest is yielded for
    ``_read_answers`` to judge)."""
    cap = current_limits().max_text_chars
    for start, elements in iter_json_chunks(path, "answers", skip_runs=padding_runs, canonical=answer_piece):
        if isinstance(elements, CanonicalPiece):
            yield from _piece_answers(start, elements, answers, cap)
            continue
        for index, answer in without_stubs(start, elements):
            if type(answer) is dict:
                answer_id = answer.get("id")
                if type(answer_id) is int and answer_id not in answers:
                    text, active = answer.get("answer"), answer.get("active", True)
                    answers[answer_id] = RsvqaAnswer(index, answer.get("question_id"), text, active, plain_answer(text, active, cap))
                    continue
            yield index, answer


def _piece_answers(index: int, piece: CanonicalPiece, answers: dict, cap: int) -> Iterator[tuple[int, Any]]:
    """:func:`answer_elements` over a canonical piece (:mod:`skyeye_data.sources._rsvqa_text`): the
    text is printable ASCII (the pattern), so :func:`plain_answer` is decided by ``active`` and the
    stripped text alone."""
    for element, answer_id, question_id, text, active, run in piece.rows:
        if run:
            index += run.count(b"{")
            continue
        answer_id = int(answer_id)
        if answer_id not in answers:
            text = text.decode()
            if active == b"true":
                plain = text.strip()
                answers[answer_id] = RsvqaAnswer(index, int(question_id), text, True, plain if plain and len(plain) <= cap else None)
            else:
                answers[answer_id] = RsvqaAnswer(index, int(question_id), text, False)
        else:
            yield index, decode(element)
        index += 1


_RUN = itemgetter(-1)  # a row's stub-run text (b"" for an element)
