"""The quarantine: every record (or part of one) left out, one JSON object a line, and the --strict rule.

Bottom layer: ``skyeye convert`` writes ``<source>.quarantine.jsonl`` with it and ``skyeye build``
writes ``OUT/quarantine.jsonl`` with it (converter, leak guard, builder, image and mix entries
alike), so both commands share one rule for what stops a ``--strict`` run (:func:`is_bad_input`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson

from skyeye_data.io import PendingFile, temporary_name
from skyeye_data.rawfs import strip_paths
from skyeye_data.textguard import safe_text

# stages that *select* records (the leak guard's scope, a mix that cannot use an image): never bad input
SELECTION_STAGES = frozenset({"leak_guard", "mix"})


class StrictModeError(Exception):
    """--strict: a raw record was bad input (the message says where and why)."""


def is_bad_input(entry: dict[str, Any]) -> bool:
    """The one --strict rule: bad input stops a strict run; a selection (leak guard, mixes) and an
    exclusion the dataset's authors ask for (``deliberate``) never do."""
    return entry.get("stage") not in SELECTION_STAGES and not entry.get("deliberate")


def quarantine_location(entry: dict[str, Any]) -> str:
    """'rsicd: dataset_rsicd.json[12]' or 'rsivqa: UCM/ucm_vqa.txt:7' from a quarantine entry."""
    where = f"{entry.get('source')}: {entry.get('raw_file') or '?'}"
    if entry.get("raw_line") is not None:
        where += f":{entry['raw_line']}"
    if entry.get("raw_index") is not None:
        where += f"[{entry['raw_index']}]"
    return where


def short_reason(reason: str) -> str:
    """The reason without its specifics (for counting by kind)."""
    return reason.split(":")[0].split("(")[0].strip()


def record_entry(record, stage: str, reason: str, builder: str | None = None, level: str = "record") -> dict[str, Any]:
    """The quarantine entry of a converted record the build could not use (where it came from, and why)."""
    return {
        "source": record.source,
        "stage": stage,
        "builder": builder,
        "record_id": record.record_id,
        "raw_file": record.provenance.raw_file,
        "raw_line": record.provenance.raw_line,
        "raw_index": record.provenance.raw_index,
        "level": level,
        "reason": reason,
        "excerpt": None,
    }


_STDLIB_JSON = json.JSONEncoder(ensure_ascii=False, sort_keys=True).encode


def entry_line(entry: dict[str, Any]) -> bytes:
    """One quarantine line: the entry as compact JSON, keys sorted, UTF-8, and its newline.

    orjson writes it in ~1 us; the stdlib encoder took ~8 us a line (RSVQA-HR: 59k lines, 0.4 s).
    What orjson refuses (an integer past 64 bits, a lone surrogate in a field no guard cleaned) is
    written by the stdlib encoder instead, the surrogate as an escape, rather than stopping the run."""
    try:
        return orjson.dumps(entry, option=orjson.OPT_SORT_KEYS | orjson.OPT_APPEND_NEWLINE)
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return (_STDLIB_JSON(entry) + "\n").encode("utf-8", "backslashreplace")


class QuarantineLog:
    """A quarantine JSONL file written under a temporary name; :meth:`close` hands it over for the rename.

    With ``strict``, an entry that :func:`is_bad_input` raises :class:`StrictModeError` instead of
    being written.
    """

    def __init__(self, final: Path, strict: bool = False):
        self.final = final
        self.strict = strict
        final.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = temporary_name(final)
        self._file = open(self.tmp, "wb")
        self.lines = 0

    def write(self, entry: dict[str, Any]) -> None:
        reason = entry.get("reason")
        if isinstance(reason, str):  # no absolute local path, no lone surrogate reaches the file
            cleaned = strip_paths(safe_text(reason))
            entry = entry if cleaned is reason else entry | {"reason": cleaned}
        if self.strict and is_bad_input(entry):
            raise StrictModeError(f"{quarantine_location(entry)}: {entry.get('reason')}")
        self._file.write(entry_line(entry))
        self.lines += 1

    def close(self) -> PendingFile:
        self._file.close()
        return PendingFile(self.tmp, self.final)

    def abort(self) -> None:
        self._file.close()
        self.tmp.unlink(missing_ok=True)
