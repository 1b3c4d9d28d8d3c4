"""The column-by-column reading of canonical RSVQA pieces (sources/_rsvqa_rows.py ``_piece_rows`` and
its one-question-at-a-time fallback, ``question_excerpt`` of sources/_rsvqa_text.py) and the
streaming reader's safety checks made on the blocks it decodes (json_stream): each against the
reference it replaces, on inputs in the authors' exact form that the fast path must refuse."""

from __future__ import annotations

import json
import random

import orjson
import pytest

from skyeye_data import json_cursor, json_stream
from skyeye_data.json_stream import JsonStreamError, excerpt_of, iter_json_chunks
from skyeye_data.sources import _rsvqa_rows
from skyeye_data.sources._rsvqa_text import question_excerpt, question_piece
from skyeye_data.synth import synth_image
from test_sources_rsvqa_rows import assert_row_path_is_the_record_path
from test_sources_vqa_rsvqa import write_splits_py

TAGS = ("train", "val", "test", "test_phili")


def canonical_corpus(raw, seed: int) -> None:
    """A Splits.py corpus whose every file is in the authors' one form (DatabaseIO.py key order,
    json.dump spacing, printable ASCII), full of questions the fast path must hand to the exact path."""
    rng = random.Random(seed)
    db = {"images": [], "questions": [], "answers": []}
    for image_id in range(24):
        first = len(db["questions"])
        for _ in range(rng.randrange(5, 60)):
            qid, aid = len(db["questions"]), len(db["answers"])
            odd = rng.random()
            text = "  " if odd < 0.04 else "x" * 5000 if odd < 0.07 else f"Is there a road number {qid}?"
            db["questions"].append({"id": qid, "date_added": rng.choice([1579865382.5, 1.0, 0.1, 7]), "img_id": image_id,
                                    "people_id": 0, "type": rng.choice(["presence", "count", ""]), "question": text,
                                    "answers_ids": [aid], "active": rng.random() > 0.08})  # fmt: skip
            db["answers"].append({"id": aid, "date_added": 1579865382.5, "question_id": qid, "people_id": 0,
                                  "answer": rng.choice(["yes", "no", " 3 ", "  ", "12m2"]), "active": rng.random() > 0.03})  # fmt: skip
        db["images"].append({"id": image_id, "original_name": f"{image_id}.png", "active": True, "people_id": 0,
                             "questions_ids": list(range(first, len(db["questions"])))})  # fmt: skip
    write_splits_py(raw, "USGS", db, {i: TAGS[i % 4] for i in range(24)})
    # canonical edits: a duplicate id, no answer, two answers, an answer of another question, an
    # image active in two splits, a question of an image active nowhere
    for path in sorted(raw.glob("*_questions.json")):
        questions = json.loads(path.read_text())["questions"]
        full = [i for i, q in enumerate(questions) if len(q) > 2]
        for index in sorted(rng.sample(full, min(len(full), 8)), reverse=True):
            q, edit = questions[index], rng.randrange(5)
            if edit == 0:
                questions.insert(index + 1, dict(q))
            elif edit == 1:
                q["answers_ids"] = []
            elif edit == 2:
                q["answers_ids"] = q["answers_ids"] + [q["answers_ids"][0]]
            elif edit == 3:
                q["answers_ids"] = [q["answers_ids"][0] + 1]
            else:
                q["img_id"] = 999
        path.write_text(json.dumps({"questions": questions}))
    images = {tag: json.loads((raw / f"USGS_split_{tag}_images.json").read_text())["images"] for tag in TAGS}
    images["val"][0] = images["train"][0]  # image 0 active in train and val
    (raw / "USGS_split_val_images.json").write_text(json.dumps({"images": images["val"]}))
    for image_id in range(24):
        if image_id != 5:  # image 5 is missing: its questions are quarantined
            synth_image(raw / "Data" / f"{image_id}.tif", 16, 16, seed=image_id)


@pytest.mark.parametrize("seed", [0, 1])
def test_bulk_piece_rows_write_the_record_path_bytes(tmp_path, monkeypatch, seed):
    raw = tmp_path / "raw" / "rsvqa_hr"
    canonical_corpus(raw, seed)
    pieces = {"canonical": 0, "decoded": 0, "one by one": 0}
    real_piece, real_each = _rsvqa_rows.question_piece, _rsvqa_rows._piece_rows_each

    def counted_piece(body):
        piece = real_piece(body)
        pieces["canonical" if piece is not None else "decoded"] += 1
        return piece

    def counted_each(*args):
        pieces["one by one"] += 1
        return real_each(*args)

    monkeypatch.setattr(_rsvqa_rows, "question_piece", counted_piece)
    monkeypatch.setattr(_rsvqa_rows, "_piece_rows_each", counted_each)
    monkeypatch.setattr(json_stream, "ORJSON_CHUNK_BYTES", 3000)
    monkeypatch.setattr(_rsvqa_rows, "BLOCK_ROWS", 53)
    assert assert_row_path_is_the_record_path("rsvqa_hr", raw, tmp_path) > 200
    # every piece read from its text; some whole (column by column), some one question at a time
    assert pieces["decoded"] == 0 and pieces["canonical"] > pieces["one by one"] > 0


NUMBERS = ["1579865382.5", "1579865382.190055", "0", "7", "-3", "-0", "0.0", "-0.0", "1.50", "0.1", "1e3", "1E+3",
           "1e-07", "123456789012345678", "0.30000000000000004", "1.7976931348623157e308", "5e-324", "2.5E-2"]  # fmt: skip


@pytest.mark.parametrize("number", NUMBERS)
def test_question_excerpt_is_the_excerpt_of_the_decoded_element(number):
    for people, text in ((number, "Is there a road?"), ("0", "a]} {x" * 80), (number, "")):
        element = ('{"id": 12, "date_added": %s, "img_id": 3, "people_id": %s, "type": "count", "question": "%s", '
                   '"answers_ids": [12], "active": false}' % (number, people, text)).encode()  # fmt: skip
        assert question_piece(element) is not None  # the form the excerpt is taken from
        assert question_excerpt(element) == excerpt_of(orjson.loads(element))
    plain = b'{"id": 1, "date_added": 1579865382.5, "img_id": 0, "people_id": 0, "type": "", "question": "q", "answers_ids": [], "active": false}'
    assert question_excerpt(plain) == plain.decode()


def read_all(items) -> list:
    out = []
    try:
        out.extend(items)
    except JsonStreamError as error:
        out.append(("error", error.reason, error.line))
    return out


def chunked(path, canonical) -> list:
    return read_all((i, v) for start, values in iter_json_chunks(path, "questions", canonical=canonical)
                    for i, v in enumerate(orjson.loads(b"[" + b", ".join(row[0] for row in values.rows) + b"]")
                                          if hasattr(values, "rows") else values, start))  # fmt: skip


# what only the Python reader reads exactly, put after many chunks the C reader has decoded
LATE = {
    "lone surrogate": (b'"question": "q7"', b'"question": "\\ud800"'),
    "vertical tab": (b'"img_id": 0, "people_id"', b'"img_id":\x0b0, "people_id"'),
    "form feed after the list": (b"]}", b"]\x0c}"),
    "repeated key": (b"]}", b'], "questions": [1]}'),
    "nested key": (b'"active": true}', b'"active": true, "x": {"questions": 1}}'),
}


@pytest.mark.parametrize("name", LATE)
def test_a_late_unsafe_byte_hands_over_to_the_python_reader(tmp_path, monkeypatch, name):
    monkeypatch.setattr(json_stream, "ORJSON_CHUNK_BYTES", 700)
    elements = [{"id": i, "date_added": 1.5, "img_id": 0, "people_id": 0, "type": "count", "question": f"q{i}",
                 "answers_ids": [i], "active": True} for i in range(60)]  # fmt: skip
    old, new = LATE[name]
    data = json.dumps({"questions": elements}).encode()
    at = data.rindex(old) if name != "lone surrogate" else data.index(old)
    path = tmp_path / "q.json"
    path.write_bytes(data[:at] + new + data[at + len(old):])
    python = read_all(json_cursor.python_json_list(path, "questions", json_stream.CHUNK_BYTES))
    assert not json_stream._c_path_safe(path, "questions")
    for canonical in (None, question_piece):  # decoded pieces and pieces read from their text
        assert repr(chunked(path, canonical)) == repr(python), name


def test_row_block_conversion_does_not_import_pandas(tmp_path):
    """pandas costs 0.6 s to import and the conversion of a row-block source needs none of it."""
    import subprocess
    import sys

    raw = tmp_path / "raw" / "rsvqa_hr"
    canonical_corpus(raw, 4)  # the authors' form (text that is not ASCII goes through pa.array)
    script = ("import sys\nfrom pathlib import Path\nfrom skyeye_data.convert import convert_source\n"
              f"summary = convert_source('rsvqa_hr', Path({str(raw)!r}), Path({str(tmp_path / 'out')!r}))\n"
              "assert summary.written > 0\nprint('pandas' in sys.modules)\n")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "False"


def test_a_rejected_run_is_its_rejections():
    """RejectedRun (what the bulk reader yields for a run of withdrawn questions) gives the entries of
    the Rejected items it stands for, in order, and counts as that many record-level rejections."""
    from skyeye_data.convert import ConvertSummary
    from skyeye_data.sources.base import Rejected, RejectedRun

    excerpts = ['{"id": 1, "question": "a /home/me/raw/x.tif?"}', "lone \udc80", None, "x" * 400]
    run = RejectedRun("USGS_split_train_questions.json", _rsvqa_rows.INACTIVE_QUESTION, [3, 5, 8, 13], excerpts, deliberate=True)
    singles = [Rejected(run.raw_file, run.reason, raw_index=i, excerpt=e, deliberate=True) for i, e in zip(run.raw_indexes, excerpts)]
    assert list(run.entries("rsvqa_hr")) == [r.to_json("rsvqa_hr") for r in singles]
    summary = ConvertSummary("rsvqa_hr")
    summary.count_rejection(run)
    assert summary.quarantined == 4 and sum(summary.reasons.values()) == 4
    with pytest.raises(ValueError):  # an excerpt per index
        list(RejectedRun("f", "r", [1, 2], ["x"]).entries("s"))
