"""Text normalisation at the record boundary (``sources.base.build_record`` calls :func:`clean_fields`).

Annotation text is untrusted input. What a JSON file may legally hold but no caption should:

- **lone surrogates** (``"\\ud800"`` is a valid JSON escape): not encodable as UTF-8, so Parquet
  (pyarrow) refuses the whole table and the build stops;
- **control characters** (NUL, ESC and the ANSI colour sequences it starts, C1 controls) and
  **bidirectional overrides** (U+202E RIGHT-TO-LEFT OVERRIDE and friends, the "Trojan Source"
  characters): invisible, they make a caption display differently from what a model is trained on;
- **absurd lengths**: a 1 MB "caption" is a broken file, not a description.

The recipe's ``input.text_controls`` decides: ``strip`` (default) removes the characters and flags
the record (``text_surrogate_stripped``, ``text_control_stripped``); ``quarantine`` rejects the
record naming the field and the character. A text field longer than ``input.max_text_chars`` is
always quarantined with its length. Identity fields (record id, image path and key) are never
altered: a control character or surrogate there quarantines the record, since stripping would point
at another file. Tab, newline and carriage return are ordinary whitespace and stay.
"""

from __future__ import annotations

import re
from typing import Any

from skyeye_data.rawfs import current_limits

TEXT_FIELDS = ("captions", "question", "answer", "expression", "label", "question_type", "subset")
IDENTITY_FIELDS = ("source", "record_id", "image_path", "image_key", "split", "image_sha256")

_SURROGATE = re.compile("[\ud800-\udfff]")
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b[@-_]")
# C0 controls but tab/newline/CR, DEL, C1 controls, bidi embeddings/overrides/isolates and marks,
# the BOM inside text, and the noncharacters U+FFFE/U+FFFF
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ufeff\ufffe\uffff]")


class TextProblem(Exception):
    """A record's text that the recipe says to quarantine; the message is the reason."""


def safe_text(text: str) -> str:
    """``text`` that always encodes as UTF-8: lone surrogates written as ``\\udXXX`` escapes."""
    if _SURROGATE.search(text) is None:
        return text
    return _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


# a JSON escape of a low surrogate in U+DC80..U+DCFF that is not the second half of a pair
_ESCAPED_LOW = re.compile(r"(?<!\\u[dD][89abAB][0-9a-fA-F]{2})(?<!\\)\\u[dD][cC][89a-fA-F][0-9a-fA-F]")


def escaped_surrogates_apart(json_text: str) -> str:
    """JSON text (decoded as strict UTF-8) whose ``\\udc80``..``\\udcff`` escapes cannot pass for bad bytes.

    Readers decode with ``surrogateescape``, which turns an undecodable byte 0xNN into U+DC00+NN;
    a JSON escape ``\\udc80`` gives the very same character, and was reported as "bad byte 0x80".
    In a file that decodes strictly there are no bad bytes, so such an escape is moved to U+DC7F
    (still a lone surrogate: :func:`clean_fields` strips or quarantines it as one).
    """
    return _ESCAPED_LOW.sub(r"\\udc7f", json_text)


def _describe(char: str) -> str:
    return f"U+{ord(char):04X}"


# one search finds whatever any rule below would act on: most text holds none of it and costs one scan
_SUSPECT = re.compile("[\ud800-\udfff" + _CONTROL.pattern[1:])
_TEXT = frozenset(TEXT_FIELDS)
_IDENTITY = frozenset(IDENTITY_FIELDS)


def _clean_text(value: str, field: str, policy: str, flags: set[str]) -> str:
    if (match := _SURROGATE.search(value)) is not None:
        if policy == "quarantine":
            raise TextProblem(f"{field} holds a lone surrogate {_describe(match.group())} (not a character)")
        value = _SURROGATE.sub("", value)
        flags.add("text_surrogate_stripped")
    ansi, control = _ANSI.search(value), _CONTROL.search(value)
    if ansi or control:
        if policy == "quarantine":
            what = "an ANSI escape sequence" if ansi else f"the control/bidi character {_describe(control.group())}"
            raise TextProblem(f"{field} holds {what}")
        value = _CONTROL.sub("", _ANSI.sub("", value))
        flags.add("text_control_stripped")
    return value


def _text_value(value: str, field: str, limits, flags: set[str]) -> str:
    if _SUSPECT.search(value) is not None:
        value = _clean_text(value, field, limits.text_controls, flags)
    if len(value) > limits.max_text_chars:
        cap = limits.max_text_chars
        raise TextProblem(f"{field} is {len(value):,} characters long, over the cap of {cap:,} (input.max_text_chars)")
    return value


def clean_fields(fields: dict[str, Any]) -> dict[str, Any]:
    """The record fields with their text normalised (see the module docstring); TextProblem to reject.

    Returns ``fields`` itself when nothing changes (the common case: one regex scan per text field).
    """
    limits = current_limits()
    flags: set[str] = set()
    changed: dict[str, Any] = {}
    for name, value in fields.items():
        if isinstance(value, str):
            if name in _TEXT:
                cleaned = _text_value(value, name, limits, flags)
                if cleaned is not value:
                    changed[name] = cleaned
            elif name in _IDENTITY and (match := _SUSPECT.search(value)) is not None:
                raise TextProblem(
                    f"{name} {safe_text(value)[:80]!r} holds {_describe(match.group())}, which no file name or id may hold"
                )
        elif isinstance(value, list) and name in _TEXT:
            items = [_text_value(v, f"{name[:-1]} {i}", limits, flags) if isinstance(v, str) else v for i, v in enumerate(value)]
            if any(a is not b for a, b in zip(items, value)):
                changed[name] = items
    if flags:
        changed["flags"] = sorted(set(fields.get("flags") or ()) | flags)
    return fields | changed if changed else fields


def reviewed_text(value: str) -> tuple[str, str | None]:
    """A reviewer's corrected text held to the rules of record text: Windows line ends made ``\n``,
    lone surrogates and control/bidi characters stripped (a paste from a PDF or a chat brings them
    in, invisible in the browser). Returns the text and, when it is over ``input.max_text_chars``,
    the reason it cannot be taken."""
    limits = current_limits()
    flags: set[str] = set()
    value = value.replace("\r\n", "\n").replace("\r", "\n")
    if _SUSPECT.search(value) is not None:
        value = _clean_text(value, "corrected text", "strip", flags)
    if len(value) > limits.max_text_chars:
        return value, f"the corrected text is {len(value):,} characters long, over the cap of {limits.max_text_chars:,}"
    return value, None
