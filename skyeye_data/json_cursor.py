"""The Python reader of ``{"key": [element, ...]}`` JSON files: the exact reference the C readers of
:mod:`skyeye_data.json_stream` hand over to, and the text helpers quarantine lines use.

It reads in 1 MiB chunks and decodes one element at a time, so memory stays at one chunk plus one
element. Text is decoded as UTF-8 with ``surrogateescape``: a byte that is not UTF-8 does not stop
the file, it stays visible in the one element holding it (:func:`undecodable_byte` finds it,
:func:`printable` shows it as ``\\xNN``). A file that stops being valid JSON raises
:class:`JsonStreamError` with the line and column, after every element before the problem was yielded.

Bottom layer: imports only the other foundation modules (:mod:`skyeye_data.rawfs` opens every file,
:mod:`skyeye_data.safejson` turns absurd nesting into a JSON error).
"""

from __future__ import annotations

import codecs
import json
import re
from pathlib import Path
from typing import Any, Iterator

from skyeye_data import rawfs, safejson
from skyeye_data.textguard import escaped_surrogates_apart

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


def python_json_list(path: Path, key: str, chunk_bytes: int = CHUNK_BYTES) -> Iterator[tuple[int, Any]]:
    """``(index, element)`` of the list under ``key``, read by the Python cursor (every value and error exact)."""
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
