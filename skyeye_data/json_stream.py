"""Streaming reader of big ``{"key": [element, ...]}`` JSON files, and the text helpers that go with it.

The RSVQA-HR questions file of one split is ~200 MB: :func:`iter_json_list` reads it in 1 MiB
chunks and decodes one element at a time, so memory stays at one chunk plus one element. Text is
decoded as UTF-8 with ``surrogateescape``: a byte that is not UTF-8 does not stop the file, it stays
visible in the one element holding it (:func:`undecodable_byte` finds it, :func:`printable` shows it
as ``\\xNN``). A file that stops being valid JSON raises :class:`JsonStreamError` with the line and
column, after every element before the problem was yielded.

Bottom layer: imports only the other foundation modules (:mod:`skyeye_data.rawfs` opens every file,
:mod:`skyeye_data.safejson` turns absurd nesting into a JSON error).
"""

from __future__ import annotations

import codecs
import json
import re
from functools import partial
from pathlib import Path
from typing import Any, Callable, Iterator

from skyeye_data import rawfs, safejson
from skyeye_data.textguard import escaped_surrogates_apart

try:  # yajl's C parser through ijson; without it the Python cursor reads everything
    import ijson.backends.yajl2_c as _ijson
    from ijson.common import JSONError as _YajlError
except ImportError:  # pragma: no cover - ijson without its C extension
    _ijson = None

try:  # orjson parses a whole chunk of elements in one C call (several times faster than yajl's items)
    import orjson as _orjson
except ImportError:  # pragma: no cover - orjson is a dependency; without it yajl reads everything
    _orjson = None

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
                value, end = safejson.raw_decode(_DECODER, self.buf, self.pos)
            except json.JSONDecodeError as error:
                if self.eof or isinstance(error, safejson.JsonTooDeep):  # more text cannot make it shallower
                    raise self.error(error.msg, error.pos) from None
                self.fill()
                continue
            # a number that ends the buffer may continue in the next chunk, and so may one cut just
            # before its fraction or exponent ("-0" + ".5", "1" + "e3": the decoder stops at the cut)
            if not self.eof and (end == len(self.buf) or (end + 2 >= len(self.buf) and self.buf[end] in ".eE")):
                self.fill()
                continue
            value, self.pos = self._surrogates_apart(value, self.pos, end), end
            return value

    def _surrogates_apart(self, value: Any, start: int, end: int) -> Any:
        """``value``, but for a ``\\udc80``..``\\udcff`` escape in a value without bad bytes: read as
        a lone surrogate U+DC7F, not as the bad byte 0x80 surrogateescape would make of the same
        character (:func:`~skyeye_data.textguard.escaped_surrogates_apart`; textguard then strips it
        or quarantines it as the lone surrogate it is)."""
        text = self.buf[start:end]
        if "\\u" not in text or _ESCAPED_BYTE.search(text) is not None:
            return value
        apart = escaped_surrogates_apart(text)
        return value if apart == text else safejson.raw_decode(_DECODER, apart, 0)[0]

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

    Reads in chunks: memory stays at one chunk plus its elements. Raises :class:`JsonStreamError`
    (after yielding every element before the problem) when the file is not such a document.
    :func:`iter_json_chunks` gives the same elements a chunk at a time.
    """
    for start, elements in iter_json_chunks(path, key, chunk_bytes):
        yield from enumerate(elements, start)


SkipRuns = Callable[[bytes, int], "tuple[int, int, int] | None"]


def iter_json_chunks(path: Path, key: str, chunk_bytes: int = CHUNK_BYTES, skip_runs: SkipRuns | None = None) -> Iterator[tuple[int, list]]:
    """Yield ``(index of the first, elements)``: the elements of :func:`iter_json_list`, in order, a
    chunk at a time (a million-element file costs a generator step per chunk, not per element).

    ``skip_runs(text, pos)``: the caller's finder of runs of elements it knows byte for byte and need
    not see decoded (RSVQA's padding stubs): ``(start, end, count)`` of the next run at or after
    ``pos`` in ``text`` (elements joined by ``", "``, the last one too), ``start`` just after a
    ``", "``, ``end`` just after the run's last ``", "``; or None. A run is left out of the elements
    (the gap in the indexes is its ``count``); the text around it is decoded piece by piece, and a
    run found inside a string leaves a piece that is not JSON, so the next reader takes over.

    Well-formed files go through orjson, a chunk of whole elements per call (:func:`_orjson_chunks`;
    memory: one 4 MiB chunk and its elements), else yajl's C parser (``ijson``, backend ``yajl2_c``),
    about twice as fast as the Python cursor. The two agree element for element on every file :func:`_c_path_safe`
    admits; at the first thing yajl refuses (bad UTF-8, NaN, a 20-digit integer, a truncated file,
    trailing data) the Python cursor takes over at that element, so the values, the reasons and the
    line/column of every error are exactly the Python reader's.
    """
    try:  # the guarded reader's rules (inside the raw root, a regular file, size cap) before any read
        rawfs.check_path(path, "json")
    except rawfs.RawAccessError as error:
        raise JsonStreamError(error.reason) from None
    done = 0
    if (_orjson is not None or _ijson is not None) and _c_path_safe(path, key):
        # the C readers in turn; one that gives up hands over at the element it stopped at
        for reader in (partial(_orjson_chunks, skip_runs=skip_runs), _yajl_chunks):
            try:
                for start, elements in reader(path, key):
                    end = start + len(elements)
                    if end > done or (start > done and not elements):
                        yield max(start, done), elements[done - start :] if done > start else elements
                        done = end
                return
            except _C_READER_ERRORS:
                pass  # the next reader re-reads the file from the start and skips what was yielded
    for index, element in _python_json_list(path, key, chunk_bytes):
        if index >= done:
            yield index, [element]


class _NoFastPath(Exception):
    """The orjson reader cannot cut this file into element chunks within its memory budget."""


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


def _orjson_chunks(path: Path, key: str, skip_runs: SkipRuns | None = None) -> Iterator[tuple[int, list]]:
    """The list's elements, decoded by orjson one chunk of whole elements at a time (one list per chunk).

    Only for files :func:`_c_path_safe` admits (``{"key": [`` at the top, the key once, no escaped
    surrogate or raw control byte), where orjson, yajl and the Python reader agree on every value.
    A chunk is cut after an object element's closing brace followed by ``,`` and ``{``: a cut that
    falls inside a string or a nested value leaves that chunk invalid JSON (an unclosed string or
    bracket), so a wrong cut raises and the yajl reader takes over; it never yields wrong values.
    A list whose elements are not objects is read whole if it fits in four chunks, else handed over.
    """
    if _orjson is None:
        raise _NoFastPath("orjson is not installed")
    quoted = json.dumps(key).encode()
    index, chunk_bytes = 0, ORJSON_CHUNK_BYTES
    with rawfs.open_raw(path, "json") as handle:
        data = handle.read(chunk_bytes)
        head = re.match(rb"[ \t\n\r]*\{[ \t\n\r]*" + re.escape(quoted) + rb"[ \t\n\r]*:[ \t\n\r]*\[", data)
        if head is None:
            raise _NoFastPath("the file does not start with the list")
        data = data[head.end():]
        while block := handle.read(chunk_bytes):
            data += block
            cut = _last_element_end(data)
            if cut is None:
                if len(data) > 4 * chunk_bytes:
                    raise _NoFastPath("no element boundary within the memory budget")
                continue
            end, start = cut
            for index, elements in _decoded_pieces(_exact_numbers(data[:end]), index, skip_runs):
                yield index, elements
            index += len(elements)
            data = data[start:]
        # the last elements, the list's end and whatever follows it in the top-level object
        document = _orjson.loads(_exact_numbers(b"{" + quoted + b":[" + data))
        yield index, document[key]


def _decoded_pieces(body: bytes, index: int, skip_runs: SkipRuns | None) -> Iterator[tuple[int, list]]:
    """``(index, elements)`` of ``body`` (whole elements joined by commas), the runs ``skip_runs``
    finds left out. Exact: each piece decodes on its own as a list of values and each run is elements
    the caller knows, so together they are the one way to read ``[body]``."""
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
    quoted = json.dumps(key).encode()
    head_pattern = re.compile(rb"\s*\{\s*" + re.escape(quoted) + rb"\s*:\s*\[")
    key_pattern = re.compile(re.escape(quoted) + rb"\s*:")
    # yajl also takes a vertical tab or form feed for whitespace; Python refuses every raw control byte
    escaped_surrogate = re.compile(rb"\\[uU][dD][89a-fA-F]")
    keys, tail = 0, b""
    with rawfs.open_raw(path, "json") as handle:
        first = True
        while block := handle.read(scan_bytes):
            data = tail + block
            if first and not head_pattern.match(data):
                return False
            first = False
            # bytes.translate / find run at memory speed; one regex with an alternation, ~60 MB/s
            if data.translate(None, _NOT_CONTROL_BYTES) or _has_escaped_surrogate(data, escaped_surrogate):
                return False
            # a match lying across two blocks is found once: count in the new part only
            keys += sum(1 for m in key_pattern.finditer(data) if m.end() > len(tail))
            if keys > 1:
                return False
            tail = data[-64:]
    return keys == 1


_NOT_CONTROL_BYTES = bytes(b for b in range(256) if not (b < 0x20 and b not in (0x09, 0x0A, 0x0D)))


def _has_escaped_surrogate(data: bytes, pattern: re.Pattern) -> bool:
    pos = data.find(b"\\")
    while pos >= 0:
        if pattern.match(data, pos):
            return True
        pos = data.find(b"\\", pos + 1)
    return False


def _python_json_list(path: Path, key: str, chunk_bytes: int) -> Iterator[tuple[int, Any]]:
    with rawfs.open_raw(path, "json") as handle:
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
    """The first byte that was not UTF-8 in ``text`` (decoded with surrogateescape), else None."""
    match = _ESCAPED_BYTE.search(text)
    return None if match is None else ord(match.group()) - 0xDC00


def excerpt_of(value: Any) -> str:
    """A JSON value as a short excerpt for a quarantine line; ensure_ascii escapes lone surrogates."""
    try:
        return json.dumps(value, ensure_ascii=True)[:300]
    except RecursionError:  # yajl builds 1,500-deep lists without recursing; json.dumps cannot write them
        return "(a value nested too deep to show)"
