"""Streaming reader of big ``{"key": [element, ...]}`` JSON files, at C speed where that is exact.

The RSVQA-HR questions file of one split is ~200 MB: :func:`iter_json_list` / :func:`iter_json_chunks`
read it a chunk at a time with orjson (or yajl), so memory stays at one chunk plus its elements, and
hand over to the Python cursor of :mod:`skyeye_data.json_cursor` -- the reference for every value,
every ``surrogateescape`` bad byte and every error's line and column -- at the first thing the C
readers would read otherwise. A file that stops being valid JSON raises :class:`JsonStreamError` with
the line and column, after every element before the problem was yielded. The text helpers
(:func:`printable`, :func:`undecodable_byte`, :func:`excerpt_of`) live in ``json_cursor`` and are
imported from here too.

Bottom layer: imports only the other foundation modules (:mod:`skyeye_data.rawfs` opens every file).
"""

from __future__ import annotations

import json
import re
from functools import partial
from pathlib import Path
from typing import Any, Callable, Iterator, Sized

from skyeye_data import rawfs
from skyeye_data.json_cursor import CHUNK_BYTES, JsonStreamError, python_json_list
from skyeye_data.json_cursor import excerpt_of, printable, undecodable_byte

__all__ = ["CHUNK_BYTES", "JsonStreamError", "excerpt_of", "iter_json_chunks", "iter_json_list", "printable", "undecodable_byte"]

try:  # yajl's C parser through ijson; without it the Python cursor reads everything
    import ijson.backends.yajl2_c as _ijson
    from ijson.common import JSONError as _YajlError
except ImportError:  # pragma: no cover - ijson without its C extension
    _ijson = None

try:  # orjson parses a whole chunk of elements in one C call (several times faster than yajl's items)
    import orjson as _orjson
except ImportError:  # pragma: no cover - orjson is a dependency; without it yajl reads everything
    _orjson = None


def iter_json_list(path: Path, key: str, chunk_bytes: int = CHUNK_BYTES) -> Iterator[tuple[int, Any]]:
    """Yield ``(index, element)`` for the list under ``key`` of the JSON object in ``path``.

    Reads in chunks: memory stays at one chunk plus its elements. Raises :class:`JsonStreamError`
    (after yielding every element before the problem) when the file is not such a document.
    :func:`iter_json_chunks` gives the same elements a chunk at a time.
    """
    for start, elements in iter_json_chunks(path, key, chunk_bytes):
        yield from enumerate(elements, start)


SkipRuns = Callable[[bytes, int], "tuple[int, int, int] | None"]
Canonical = Callable[[bytes], "Sized | None"]


def iter_json_chunks(path: Path, key: str, chunk_bytes: int = CHUNK_BYTES, skip_runs: SkipRuns | None = None,
                     canonical: Canonical | None = None) -> Iterator[tuple[int, "list | Sized"]]:  # fmt: skip
    """Yield ``(index of the first, elements)``: the elements of :func:`iter_json_list`, in order, a
    chunk at a time (a million-element file costs a generator step per chunk, not per element).

    ``skip_runs(text, pos)``: the caller's finder of runs of elements it knows byte for byte and need
    not see decoded (RSVQA's padding stubs): ``(start, end, count)`` of the next run at or after
    ``pos`` in ``text`` (elements joined by ``", "``, the last one too), ``start`` just after a
    ``", "``, ``end`` just after the run's last ``", "``; or None. A run is left out of the elements
    (the gap in the indexes is its ``count``); the text around it is decoded piece by piece, and a
    run found inside a string leaves a piece that is not JSON, so the next reader takes over.

    ``canonical(body)``: the caller's reader of a piece of whole elements joined by ", " (the text
    orjson would decode as ``[body]``) that it can read exactly without decoding, or None to have it
    decoded; what it returns is yielded in place of the element list (``len()``: its elements). It
    must refuse a piece with a run of 19 or more digits in a number (orjson would round it), and
    one holding a raw control byte, a backslash or the quoted ``key`` followed by ":" (such a piece
    is not scanned for what :func:`_c_path_safe` refuses: every other byte of the file is).
    RSVQA's files written the authors' one way (:mod:`skyeye_data.sources._rsvqa_text`).

    Well-formed files go through orjson, a chunk of whole elements per call (:func:`_orjson_chunks`;
    memory: one 4 MiB chunk and its elements), else yajl's C parser (``ijson``, backend ``yajl2_c``),
    about twice as fast as the Python cursor. The two agree element for element on every file :func:`_c_path_safe`
    admits (orjson's reader checks each block it decodes, yajl's only reads a file the whole scan
    admits); at the first thing yajl refuses (bad UTF-8, NaN, a 20-digit integer, a truncated file,
    trailing data) the Python cursor takes over at that element, so the values, the reasons and the
    line/column of every error are exactly the Python reader's.
    """
    try:  # the guarded reader's rules (inside the raw root, a regular file, size cap) before any read
        rawfs.check_path(path, "json")
    except rawfs.RawAccessError as error:
        raise JsonStreamError(error.reason) from None
    done = 0
    # the C readers in turn; one that gives up hands over at the element it stopped at. orjson's
    # reader makes _c_path_safe's checks on each block before it decodes it (one read of the file,
    # not two); yajl's is only taken for a file the whole scan admits
    readers = [partial(_orjson_chunks, skip_runs=skip_runs, canonical=canonical)] if _orjson is not None else []
    readers += [_yajl_chunks] if _ijson is not None else []
    for reader in readers:
        try:
            if reader is _yajl_chunks and not _c_path_safe(path, key):
                break
            for start, elements in reader(path, key):
                end = start + len(elements)
                if end > done or (start > done and not elements):
                    yield max(start, done), elements[done - start :] if done > start else elements
                    done = end
            return
        except _NotForC:
            break  # what yajl would read otherwise: the Python reader goes on from the first element not yielded
        except _C_READER_ERRORS:
            pass  # the next reader re-reads the file from the start and skips what was yielded
    for index, element in python_json_list(path, key, chunk_bytes):
        if index >= done:
            yield index, [element]


class _NoFastPath(Exception):
    """The orjson reader cannot cut this file into element chunks within its memory budget."""


class _NotForC(Exception):
    """The file holds something :func:`_c_path_safe` refuses: only the Python reader reads it exactly."""


_C_READER_ERRORS: tuple[type[BaseException], ...] = (_NoFastPath, ValueError, UnicodeError) + (
    (_YajlError,) if _ijson is not None else ()
)  # orjson.JSONDecodeError is a ValueError
ORJSON_CHUNK_BYTES = 4 << 20  # memory: one chunk of bytes plus its decoded elements (~8x the bytes)
_ELEMENT_END = re.compile(rb"\}[ \t\n\r]*,[ \t\n\r]*(?=\{)")


def _yajl_chunks(path: Path, key: str, size: int = 1024) -> Iterator[tuple[int, list]]:
    """yajl's elements in lists of ``size``; at an error, the elements read before it first."""
    if _ijson is None:
        raise _NoFastPath("ijson's C backend is not installed")
    chunk: list = []
    start = 0
    with rawfs.open_raw(path, "json") as handle:
        try:
            for element in _ijson.items(handle, f"{key}.item", use_float=True):
                chunk.append(element)
                if len(chunk) >= size:
                    yield start, chunk
                    start, chunk = start + len(chunk), []
        except _C_READER_ERRORS:
            if chunk:
                yield start, chunk
            raise
    if chunk:
        yield start, chunk


def _orjson_chunks(path: Path, key: str, skip_runs: SkipRuns | None = None, canonical: Canonical | None = None) -> Iterator[tuple[int, "list | Sized"]]:
    """The list's elements, decoded by orjson one chunk of whole elements at a time (one list per chunk).

    It makes :func:`_c_path_safe`'s checks itself (``{"key": [`` at the top, the key once, no escaped
    surrogate or raw control byte: where orjson, yajl and the Python reader agree on every value) on
    every byte before decoding it -- the head, each decoded piece, the tail; a piece the ``canonical``
    reader takes holds none of it -- and raises :class:`_NotForC` at the first that fails (the
    elements yielded before came from bytes that passed): the file is read once, not twice.
    A chunk is cut after an object element's closing brace followed by ``,`` and ``{``: a cut that
    falls inside a string or a nested value leaves that chunk invalid JSON (an unclosed string or
    bracket), so a wrong cut raises and the yajl reader takes over; it never yields wrong values.
    A list whose elements are not objects is read whole if it fits in four chunks, else handed over.
    """
    if _orjson is None:
        raise _NoFastPath("orjson is not installed")
    quoted = json.dumps(key).encode()
    index, chunk_bytes, scan = 0, ORJSON_CHUNK_BYTES, _SafeScan(key)
    with rawfs.open_raw(path, "json") as handle:
        data = handle.read(chunk_bytes)
        head = re.match(rb"[ \t\n\r]*\{[ \t\n\r]*" + re.escape(quoted) + rb"[ \t\n\r]*:[ \t\n\r]*\[", data)
        if head is None:
            raise _NoFastPath("the file does not start with the list")
        scan.check(data[: head.end()])
        data = data[head.end():]
        while block := handle.read(chunk_bytes):
            data += block
            cut = _last_element_end(data)
            if cut is None:
                if len(data) > 4 * chunk_bytes:
                    raise _NoFastPath("no element boundary within the memory budget")
                continue
            end, start = cut  # between them: JSON whitespace and the comma
            for index, elements in _decoded_pieces(data[:end], index, skip_runs, canonical, scan):
                yield index, elements
            index += len(elements)
            data = data[start:]
        # the last elements, the list's end and whatever follows it in the top-level object
        body = _before_list_end(data) if canonical is not None else None
        piece = canonical(body) if body else None
        if piece is not None:  # whole elements, then "]}": the document is '{key:[' + piece + ']}'
            scan.check(data[len(body):])
            yield index, piece
            return
        scan.check(data)
        document = _orjson.loads(_exact_numbers(b"{" + quoted + b":[" + data))
        yield index, document[key]


def _before_list_end(data: bytes) -> bytes | None:
    """``data`` without the ``]`` and ``}`` (and JSON whitespace) that end it, or None if it does not end so."""
    data = data.rstrip(b" \t\n\r")
    if not data.endswith(b"}"):
        return None
    data = data[:-1].rstrip(b" \t\n\r")
    return data[:-1] if data.endswith(b"]") else None


def _decoded_pieces(body: bytes, index: int, skip_runs: SkipRuns | None, canonical: Canonical | None = None,
                    scan: "_SafeScan | None" = None) -> Iterator[tuple[int, "list | Sized"]]:  # fmt: skip
    """``(index, elements)`` of ``body`` (whole elements joined by commas), the runs ``skip_runs``
    finds left out; or the ``canonical`` reader's piece of the whole body (its numbers have at most
    18 digits a run, so :func:`_exact_numbers` has nothing to refuse there). Exact: each piece decodes
    on its own as a list of values and each run is elements the caller knows, so together they are
    the one way to read ``[body]``. A body that is decoded passes ``scan`` first (a canonical piece
    holds none of what it looks for: see :func:`iter_json_chunks`)."""
    piece = canonical(body) if canonical is not None else None
    if piece is not None:
        yield index, piece
        return
    if scan is not None:
        scan.check(body)
    body = _exact_numbers(body)
    if skip_runs is None:
        yield index, _orjson.loads(b"[" + body + b"]")
        return
    text = body + b", "
    pos = 0  # start of the next piece
    while (run := skip_runs(text, pos)) is not None:
        start, end, count = run
        if start > pos:
            elements = _orjson.loads(b"[" + text[pos : start - 2] + b"]")
            yield index, elements
            index += len(elements)
        index, pos = index + count, end
    yield index, _orjson.loads(b"[" + text[pos:-2] + b"]") if pos < len(text) else []


_DIGITS_AS_ZERO = bytes.maketrans(b"123456789", b"000000000")
_LONG_DIGITS = b"0" * 19


def _exact_numbers(chunk: bytes) -> bytes:
    """``chunk``, unless it has a 19+ digit run: orjson turns an integer past 64 bits into a float
    (the other readers keep it exact), so such a chunk is handed to yajl / the Python reader.
    (Every digit becomes '0' and the run is one ``find``: both at memory speed, where the regex
    ``[0-9]{19,}`` read ~45 MB/s and cost RSVQA-HR 12 s.)"""
    if chunk.translate(_DIGITS_AS_ZERO).find(_LONG_DIGITS) >= 0:
        raise _NoFastPath("an integer may exceed 64 bits")
    return chunk


def _last_element_end(data: bytes) -> tuple[int, int] | None:
    """(end of an element's '}', start of the next element's '{') of the last such boundary in ``data``."""
    pos = len(data)
    while (pos := data.rfind(b"}", 0, pos)) >= 0:
        match = _ELEMENT_END.match(data, pos)
        if match is not None:
            return pos + 1, match.end()
    return None


def _c_path_safe(path: Path, key: str, scan_bytes: int = 16 << 20) -> bool:
    """True when yajl reads this file exactly as the Python reader does.

    yajl differs on four things, all excluded here: it replaces an escaped lone surrogate
    (``"\\ud800"``) by '?'; it takes a vertical tab or form feed for whitespace; it yields the
    elements of a repeated top-level key twice; it yields nothing (no error) when the value under the
    key is not a list. So the file must start with ``{"key": [``, hold that key once, and have no
    ``\\ud8..``-``\\udf..`` escape and no raw control byte but tab, CR and LF (regex scans, in C).
    """
    head_pattern = re.compile(rb"\s*\{\s*" + re.escape(json.dumps(key).encode()) + rb"\s*:\s*\[")
    scan = _SafeScan(key)
    with rawfs.open_raw(path, "json") as handle:
        first = True
        while block := handle.read(scan_bytes):
            if first and not head_pattern.match(block):
                return False
            first = False
            if not scan.admits(block):
                return False
    return scan.keys == 1


_ESCAPED_SURROGATE = re.compile(rb"\\[uU][dD][89a-fA-F]")


class _SafeScan:
    """:func:`_c_path_safe`'s checks on a file's blocks, fed in order: no raw control byte but tab,
    CR and LF (yajl takes a vertical tab or form feed for whitespace; Python refuses every raw
    control byte), no escaped surrogate, the key once."""

    def __init__(self, key: str):
        self.quoted = json.dumps(key).encode()
        self.key_pattern = re.compile(re.escape(self.quoted) + rb"\s*:")
        self.keys, self.tail = 0, b""

    def check(self, part: bytes) -> None:
        """:meth:`admits` or :class:`_NotForC` (before the C reader decodes ``part``)."""
        if not self.admits(part):
            raise _NotForC("the file holds what only the Python reader reads exactly")

    def admits(self, block: bytes) -> bool:
        """False as soon as the file so far holds something the C readers may read otherwise."""
        data = self.tail + block
        # bytes.translate / find run at memory speed; one regex with an alternation, ~60 MB/s
        if data.translate(None, _NOT_CONTROL_BYTES) or _has_escaped_surrogate(data, _ESCAPED_SURROGATE):
            return False
        # a match lying across two blocks is found once: count in the new part only (the quoted key
        # looked for at memory speed first: the regex scan stops at every quote of the block)
        if self.quoted in data:
            self.keys += sum(1 for m in self.key_pattern.finditer(data) if m.end() > len(self.tail))
        self.tail = data[-64:]
        return self.keys <= 1


_NOT_CONTROL_BYTES = bytes(b for b in range(256) if not (b < 0x20 and b not in (0x09, 0x0A, 0x0D)))


def _has_escaped_surrogate(data: bytes, pattern: re.Pattern) -> bool:
    pos = data.find(b"\\")
    while pos >= 0:
        if pattern.match(data, pos):
            return True
        pos = data.find(b"\\", pos + 1)
    return False
