"""The quarantine's lines (skyeye_data/quarantine.py): one JSON object a line, keys sorted, UTF-8,
read back as the entry that was written -- from orjson, or from the stdlib encoder for what orjson
refuses -- and never a line lost or a run stopped by an odd value."""

from __future__ import annotations

import json

import pytest

from skyeye_data.quarantine import QuarantineLog, StrictModeError, entry_line

ENTRIES = [
    {"source": "rsvqa_hr", "raw_file": "USGS_split_train_questions.json", "raw_line": None, "raw_index": 7, "level": "record",
     "deliberate": True, "reason": "inactive question (active: false) \u2014 excluded as the dataset authors ask",
     "excerpt": '{"id": 7, "question": "Is there a \\"road\\"?", "active": false}'},
    {"source": "rsicd", "raw_file": "caf\u00e9.json", "raw_line": 3, "raw_index": None, "level": "part", "deliberate": False,
     "reason": "bidi \u202e and tab\t and newline\n", "excerpt": None},
    {"stage": "build", "builder": None, "record_id": "x:1", "reason": "float 0.1 and int 2**63-1", "raw_index": 2**63 - 1},
]


@pytest.mark.parametrize("entry", ENTRIES)
def test_a_line_reads_back_as_its_entry(entry):
    line = entry_line(entry)
    assert line.endswith(b"\n") and line.count(b"\n") == 1  # a newline in a value is escaped
    assert json.loads(line) == entry
    keys = list(json.loads(line))
    assert keys == sorted(keys)


def test_what_orjson_refuses_is_written_by_the_stdlib_encoder():
    big = {"raw_index": 2**70, "reason": "x"}  # orjson stops at 64-bit integers
    assert json.loads(entry_line(big)) == big
    lone = {"reason": "lone \udc80 surrogate"}  # not encodable as UTF-8: written as an escape, never a crash
    line = entry_line(lone)
    line.decode("utf-8")
    assert "surrogate" in json.loads(line)["reason"]


def test_the_log_writes_every_entry_and_strict_stops_at_bad_input(tmp_path):
    log = QuarantineLog(tmp_path / "q.jsonl")
    for entry in ENTRIES:
        log.write(entry)
    pending = log.close()
    pending.tmp.replace(pending.final)
    assert [json.loads(line) for line in (tmp_path / "q.jsonl").read_text(encoding="utf-8").splitlines()] == ENTRIES
    strict = QuarantineLog(tmp_path / "s.jsonl", strict=True)
    strict.write(ENTRIES[0])  # deliberate (the authors' withdrawal): never bad input
    with pytest.raises(StrictModeError, match="rsicd"):
        strict.write(ENTRIES[1])
    strict.abort()
