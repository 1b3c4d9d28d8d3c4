"""RSVQA question and answer elements read from their JSON text when it is written the one way the
authors' scripts write it: their fields straight out of one regular-expression pass per chunk,
with no object per element.

Where the form comes from (github.com/syvlo/RSVQA): ``AutomaticDB/DatabaseIO.py`` builds each
entry as a dict with its keys in one order (``add_question``: id, date_added, img_id, people_id,
type, question, answers_ids, active; ``add_answer``: id, date_added, question_id, people_id, answer,
active) and ``AutomaticDB/Splits.py`` writes the split lists with ``json.dump`` (separators ", " and
": ", ASCII only), the ids of other splits as the stubs ``{"id": N, "active": false}``.

A piece of a file (whole elements joined by ", ", as :func:`skyeye_data.json_stream.iter_json_chunks`
cuts it) is taken here only when it is *exactly* a run of such elements: every byte of it belongs
to one match (the matches tile it), integers have at most 18 digits (orjson's exact int64, and no
leading zero), numbers follow the JSON grammar with at most 18 digits a run, and every string is
printable ASCII without ``"`` or ``\\`` -- so the bytes between the quotes are the string's value,
and the element is the object orjson would decode. Anything else (an escape, another key order, a
value of another type, a truncated element) makes the piece not canonical, and it is decoded by
orjson as before: this module never decides what a record is, it only reads values faster. An element that the bulk path
cannot take whole (a withdrawn question, a problem) is decoded from its own text by orjson, to the
very dict the chunk decoder gives (:func:`decode`).
"""

from __future__ import annotations

import re
from functools import lru_cache
from operator import itemgetter

import orjson

from skyeye_data.json_stream import excerpt_of

# possessive quantifiers (Python 3.11): nothing here needs backtracking, and they read ~25% faster
_INT = rb"(?:0|[1-9][0-9]{0,17}+)"
# at most 18 digits a run: orjson turns a longer integer into a float (json_stream._exact_numbers)
_NUMBER = rb"-?+(?:0|[1-9][0-9]{0,17}+)(?:\.[0-9]{1,18}+)?+(?:[eE][+-]?+[0-9]{1,18}+)?+"
_TEXT = rb'[ !#-\[\]-~]*+'  # printable ASCII but '"' and '\\': no escape, the bytes are the value
_STUBS = rb'((?:\{"id": ' + _INT + rb', "active": false\}, )++)'  # a run of Splits.py's padding stubs

# groups: element, id, img_id, type, question, answers_ids (their text), active | stub run
# (the element first: most matches are elements, and a stub's text is ruled out at its 10th byte)
_QUESTIONS = re.compile(
    rb'(\{"id": (' + _INT + rb'), "date_added": ' + _NUMBER + rb', "img_id": (' + _INT + rb'), "people_id": '
    + _NUMBER + rb', "type": "(' + _TEXT + rb')", "question": "(' + _TEXT + rb')", "answers_ids": \[((?:' + _INT
    + rb'(?:, ' + _INT + rb')*+)?+)\], "active": (true|false)\}), |' + _STUBS
)
# groups: element, id, question_id, answer, active | stub run
_ANSWERS = re.compile(
    rb'(\{"id": (' + _INT + rb'), "date_added": ' + _NUMBER + rb', "question_id": (' + _INT
    + rb'), "people_id": ' + _NUMBER + rb', "answer": "(' + _TEXT + rb')", "active": (true|false)\}), |' + _STUBS
)


_ELEMENT, _RUN = itemgetter(0), itemgetter(-1)


class CanonicalPiece:
    """The matches of one canonical piece, in file order: ``rows`` holds one tuple per element (its
    text, its fields' text, ``b""`` last) and per stub run (its text last, the other groups empty).
    ``len()`` is the number of elements, stubs included."""

    __slots__ = ("rows", "elements", "stubs")

    def __init__(self, rows: list[tuple[bytes, ...]], elements: int, stubs: int):
        self.rows, self.elements, self.stubs = rows, elements, stubs

    def __len__(self) -> int:
        return self.elements


def _piece(pattern: re.Pattern, body: bytes) -> CanonicalPiece | None:
    text = body + b", "
    rows = pattern.findall(text)
    runs = list(filter(None, map(_RUN, rows)))
    # findall skips what no alternative matches: the piece is canonical only if the matches tile it
    # (a run's text ends with its ", "; an element's does not)
    if sum(map(len, runs)) + sum(map(len, map(_ELEMENT, rows))) + 2 * (len(rows) - len(runs)) != len(text):
        return None
    stubs = sum(run.count(b"{") for run in runs)  # a stub's text has one '{'
    return CanonicalPiece(rows, stubs + len(rows) - len(runs), stubs)


def question_piece(body: bytes) -> CanonicalPiece | None:
    """The questions of ``body`` (whole elements joined by ", "), or None when it is not canonical."""
    return _piece(_QUESTIONS, body)


def answer_piece(body: bytes) -> CanonicalPiece | None:
    """The answers of ``body`` (whole elements joined by ", "), or None when it is not canonical."""
    return _piece(_ANSWERS, body)


def decode(element: bytes):
    """The element's value as the chunk decoder (orjson) gives it."""
    return orjson.loads(element)


# a question element's two numbers that are not ids (the pattern has checked the rest of it)
_QUESTION_NUMBERS = re.compile(rb'\{"id": [0-9]++, "date_added": ([^,]++), "img_id": [0-9]++, "people_id": ([^,]++), ')


def question_excerpt(element: bytes) -> str:
    """``excerpt_of(decode(element))`` of a question element of a canonical piece, without the round
    trip where it is the element's own text: ``json.dumps`` writes its keys in order with the same
    separators, its strings (printable ASCII, no quote or backslash) and ids as they stand, so only a
    number that does not read back as written (``1.50``, ``1e3``, ``-0``) makes the text differ
    (RSVQA-HR: 59k withdrawn questions quarantined with their text)."""
    numbers = _QUESTION_NUMBERS.match(element)
    if numbers is not None and all(map(_reads_back, numbers.groups())):
        return element.decode()[:300]
    return excerpt_of(orjson.loads(element))


@lru_cache(maxsize=4096)  # a file repeats a few numbers (one date_added per batch, people_id 0)
def _reads_back(number: bytes) -> bool:
    """``json.dumps`` writes this number as it stands."""
    return repr(orjson.loads(number)) == number.decode()
