"""JSON parsing that turns absurd nesting into an ordinary parse error.

CPython's JSON parser (C and Python alike) recurses once per nesting level and raises
``RecursionError`` past the interpreter's recursion limit (1,000 frames): a 1,500-deep ``[[[...]]]``
in an annotation file would escape every ``except json.JSONDecodeError`` and crash the build. No
real annotation file is nested more than a handful of levels (a Karpathy file: 4; RSVQA: 3).

:func:`loads` and :func:`raw_decode` behave as ``json.loads`` / ``JSONDecoder.raw_decode`` but raise
:class:`JsonTooDeep` — a ``json.JSONDecodeError``, so existing handlers quarantine it with its line
and column — when the document nests deeper than the parser can go. The parser's own limit is
caught rather than checked ahead: a scan of every document would cost more than the parse (RSVQA-HR
is 200 MB), and the scan runs only to place the error (the first bracket past
:data:`REPORT_DEPTH` levels).
"""

from __future__ import annotations

import json
import re
from typing import Any

REPORT_DEPTH = 500
_STRUCTURE = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.S)


class JsonTooDeep(json.JSONDecodeError):
    """The document nests deeper than allowed; a JSONDecodeError at the first too-deep bracket."""


def _too_deep(text: str, start: int, limit: int) -> JsonTooDeep | None:
    """The error at the first bracket past ``limit`` levels from ``start`` (strings skipped), or None."""
    depth = 0
    for match in _STRUCTURE.finditer(text, start):
        token = match.group()
        if token in "[{":
            depth += 1
            if depth > limit:
                return JsonTooDeep(f"nested more than {limit} levels deep, past what the parser can follow (no annotation file nests more than a few)", text, match.start())
        elif token in "]}":
            depth -= 1
            if depth <= 0:
                return None
    return None


def raw_decode(decoder: json.JSONDecoder, text: str, pos: int = 0) -> tuple[Any, int]:
    """``decoder.raw_decode(text, pos)``, with nesting too deep to parse raised as :class:`JsonTooDeep`."""
    try:
        return decoder.raw_decode(text, pos)
    except RecursionError:
        located = _too_deep(text, pos, REPORT_DEPTH)
        raise located or JsonTooDeep("nested deeper than the JSON parser can follow", text, pos) from None


_DECODER = json.JSONDecoder()


def loads(text: str) -> Any:
    """``json.loads(text)`` with the depth rule above (leading/trailing whitespace allowed)."""
    start = len(text) - len(text.lstrip())
    value, end = raw_decode(_DECODER, text, start)
    if text[end:].strip():
        rest = end + len(text[end:]) - len(text[end:].lstrip())
        raise json.JSONDecodeError("Extra data", text, rest)
    return value
