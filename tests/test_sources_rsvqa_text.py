"""RSVQA elements read from their JSON text (sources/_rsvqa_text.py) against orjson, the real sample
files, and the record path; and the image folder probe (sources/folder_probe.py) against probe_image."""

from __future__ import annotations

import json
import os
import random

import orjson
import pytest

from skyeye_data import json_stream, rawfs
from skyeye_data.imagecheck import ImageProblem
from skyeye_data.limits import InputLimits
from skyeye_data.sources import _rsvqa_rows, folder_probe
from skyeye_data.sources._rsvqa_rows import is_stub
from skyeye_data.sources._rsvqa_text import CanonicalPiece, answer_piece, decode, question_piece
from skyeye_data.sources.base import probe_image
from skyeye_data.sources.folder_probe import FolderProbe
from skyeye_data.synth import synth_image
from test_sources_rsvqa_rows import assert_row_path_is_the_record_path, corpus, mutate

# printable ASCII that looks like the file's own syntax ('"' and '\' are escaped by json.dumps: not canonical)
TRICKY = ["Is there a road?", "", "  ", "{id: 3, active: false}, {", "}, {id: 4", "x" * 300, "a]}", "5m2"]


def question(rng: random.Random, qid: int) -> dict:
    """A question as AutomaticDB/DatabaseIO.py add_question builds it (its key order)."""
    return {"id": qid, "date_added": rng.choice([1579865382.190055, 1579865382.5, 0.0, 1e-07, 12]), "img_id": rng.randrange(50),
            "people_id": rng.choice([0, 3]), "type": rng.choice(["presence", "count", ""]), "question": rng.choice(TRICKY),
            "answers_ids": rng.choice([[qid], [], [qid, qid + 1]]), "active": rng.random() < 0.9}  # fmt: skip


def answer(rng: random.Random, aid: int) -> dict:
    """An answer as DatabaseIO.py add_answer builds it."""
    return {"id": aid, "date_added": 1579865382.5, "question_id": rng.randrange(10**6), "people_id": 0,
            "answer": rng.choice(TRICKY), "active": rng.random() < 0.9}  # fmt: skip


def body_of(elements: list) -> bytes:
    """Elements as Splits.py's json.dump joins them."""
    return ", ".join(json.dumps(e) for e in elements).encode()


def with_stubs(rng: random.Random, make) -> list:
    elements = []
    while len(elements) < 300:
        if rng.random() < 0.3:
            elements.extend({"id": len(elements) + k, "active": False} for k in range(rng.randrange(1, 20)))
        else:
            elements.append(make(rng, len(elements)))
    return elements


def expanded(piece: CanonicalPiece) -> list:
    """The piece's elements, stubs spelled out, each decoded from its own text."""
    out = []
    for element, *_, run in piece.rows:
        out.extend(orjson.loads(b"[" + run[:-2] + b"]") if run else [decode(element)])
    return out


@pytest.mark.parametrize("seed", range(6))
def test_a_canonical_piece_holds_what_orjson_decodes(seed):
    rng = random.Random(seed)
    for read, make, fields in ((question_piece, question, ("id", "img_id", "type", "question", "answers_ids", "active")),
                               (answer_piece, answer, ("id", "question_id", "answer", "active"))):  # fmt: skip
        elements = with_stubs(rng, make)
        piece = read(body_of(elements))
        assert piece is not None and len(piece) == len(elements)
        assert piece.stubs == sum(map(is_stub, elements))
        assert expanded(piece) == orjson.loads(b"[" + body_of(elements) + b"]") == elements
        rows = [row for row in piece.rows if not row[-1]]
        for row, element in zip(rows, [e for e in elements if not is_stub(e)]):
            text = dict(zip(fields, row[1:-1]))
            assert int(text["id"]) == element["id"]
            assert text["active"] == (b"true" if element["active"] else b"false")
            for name in set(fields) - {"id", "active", "answers_ids"}:
                value = element[name]
                assert (int(text[name]) if isinstance(value, int) else text[name].decode()) == value
            if "answers_ids" in text:
                assert [int(i) for i in text["answers_ids"].split(b", ") if i] == element["answers_ids"]


NOT_CANONICAL = [
    ('"question": "Is there a road?"', '"question": "Is there a\\nroad?"'),  # an escape
    ('"question": "Is there a road?"', '"question": "Is there a caf\\u00e9?"'),  # non-ASCII, escaped
    ('"question": "Is there a road?"', '"question": "Is there a caf\u00e9?"'),  # non-ASCII, raw
    ('{"id": 7, "date_added"', '{"date_added"'),  # a key missing
    ('"img_id": 3, "people_id": 0', '"people_id": 0, "img_id": 3'),  # another key order
    ('{"id": 7,', '{"id": 07,'),  # a leading zero: not JSON
    ('{"id": 7,', '{"id": 1234567890123456789,'),  # past int64: orjson would round it
    ('"date_added": 1579865382.5', '"date_added": 1579865382.1234567890123456789'),  # a 19-digit run
    ('"date_added": 1579865382.5', '"date_added": 1579865382.'),  # not a number
    ('"type": "presence"', '"type": null'),
    ('"active": true}', '"active": 1}'),
    (", ", ",  "),  # spacing json.dump does not write
    ('"active": true}', '"active": true, "x": 1}'),
]


@pytest.mark.parametrize("old,new", NOT_CANONICAL)
def test_anything_else_is_decoded_by_orjson(old, new):
    element = {"id": 7, "date_added": 1579865382.5, "img_id": 3, "people_id": 0, "type": "presence",
               "question": "Is there a road?", "answers_ids": [7], "active": True}  # fmt: skip
    stubs = ", ".join(json.dumps({"id": i, "active": False}) for i in range(3))
    body = (stubs + ", " + json.dumps(element) + ", " + stubs).encode()
    assert question_piece(body) is not None
    assert question_piece(body.replace(old.encode(), new.encode(), 1)) is None
    assert question_piece(body[:-3]) is None  # cut inside the last element
    assert question_piece(body + b", ") is None and question_piece(b"") is None


def test_the_real_sample_files_are_canonical(real_samples):
    """The authors' demo copy of RSVQA-LR (rsvqa.sylvainlobry.com): its elements read from their text."""
    for name, key, read in (("website_LR_questions_first3imgs.json", "questions", question_piece),
                            ("website_LR_answers_first3imgs.json", "answers", answer_piece)):  # fmt: skip
        data = (real_samples / "rsvqa_lr" / name).read_bytes()
        elements = orjson.loads(data)[key]
        head = b'{"%s": [' % key.encode()
        assert data.startswith(head)
        piece = read(json_stream._before_list_end(data[len(head):]))
        assert piece is not None and len(piece) == len(elements) > 100
        assert expanded(piece) == elements


def test_the_bulk_rows_take_canonical_pieces_and_write_the_record_path_bytes(tmp_path, monkeypatch):
    """Splits.py files with every kind of question in canonical form (withdrawn, duplicated, blank,
    over the length cap, two answers, answers of other questions) and some that are not."""
    raw = tmp_path / "raw" / "rsvqa_hr"
    corpus(raw, 11, n_images=40)
    mutate(raw, 11)
    train = raw / "USGS_split_train_answers.json"
    answers = json.loads(train.read_text())["answers"]
    for entry in answers[5::17]:
        if len(entry) > 2:
            entry.update(question_id=entry["question_id"] + 1)  # an answer pointing at another question
    for entry in answers[9::23]:
        if len(entry) > 2:
            entry.update(active=False)
    train.write_text(json.dumps({"answers": answers}))
    kinds = {"canonical": 0, "decoded": 0}
    real_piece = _rsvqa_rows.question_piece

    def counted(body):
        piece = real_piece(body)
        kinds["canonical" if piece is not None else "decoded"] += 1
        return piece

    monkeypatch.setattr(_rsvqa_rows, "question_piece", counted)
    monkeypatch.setattr(json_stream, "ORJSON_CHUNK_BYTES", 4096)
    monkeypatch.setattr(_rsvqa_rows, "BLOCK_ROWS", 61)
    assert assert_row_path_is_the_record_path("rsvqa_hr", raw, tmp_path) > 500
    assert kinds["canonical"] > 10 and kinds["decoded"] > 3


# ---------------------------------------------------------------------------------------------
# The folder probe: probe_image's answer for every kind of entry of an image folder
# ---------------------------------------------------------------------------------------------


def outcome(probe, name):
    try:
        return probe(name)
    except ImageProblem as error:
        return f"problem: {error}"


def test_folder_probe_answers_as_probe_image(tmp_path, monkeypatch):
    root = tmp_path / "raw"
    folder = root / "rsvqa_hr" / "Data"
    folder.mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    for i in range(4):
        synth_image(folder / f"{i}.tif", 16 + i, 16, seed=i)
    synth_image(outside / "secret.tif", 8, 8, seed=9)
    (folder / "link-inside.tif").symlink_to("0.tif")
    (folder / "link-outside.tif").symlink_to(outside / "secret.tif")
    (folder / "broken-link.tif").symlink_to("nowhere.tif")
    (folder / "dir.tif").mkdir()
    os.mkfifo(folder / "fifo.tif")
    (folder / "garbage.tif").write_bytes(b"not a tiff")
    (folder / "big.tif").write_bytes((folder / "0.tif").read_bytes() + b"\0" * 5000)
    names = sorted(os.listdir(folder)) + ["missing.tif"]
    for limits in (None, InputLimits(size_caps={"image": 3000})):
        with rawfs.scope(root, limits):
            fast = FolderProbe(folder)
            got = {name: outcome(fast.probe, name) for name in names}
            want = {name: outcome(probe_image, folder / name) for name in names}
        assert got == want
        assert sum(isinstance(v, str) for v in want.values()) >= 5  # the problems are there to compare
    asked = []  # the plain images never reach probe_image: one check for the folder
    monkeypatch.setattr(folder_probe, "probe_image", lambda path: asked.append(path.name) or probe_image(path))
    with rawfs.scope(root):
        assert [FolderProbe(folder).probe(f"{i}.tif") for i in range(4)] == [probe_image(folder / f"{i}.tif") for i in range(4)]
    assert asked == []
    monkeypatch.undo()
    (folder / "1.tif").unlink()
    (folder / "1.tif").symlink_to(outside / "secret.tif")  # swapped for a symlink after the listing
    with rawfs.scope(root):
        assert outcome(fast.probe, "1.tif") == outcome(probe_image, folder / "1.tif")
        assert "outside the raw root" in outcome(fast.probe, "1.tif")


def test_folder_probe_of_a_folder_linked_outside_the_root(tmp_path):
    root = tmp_path / "raw"
    (root / "rsvqa_hr").mkdir(parents=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    synth_image(elsewhere / "0.tif", 16, 16, seed=0)
    (root / "rsvqa_hr" / "Data").symlink_to(elsewhere)
    with rawfs.scope(root):
        reason = outcome(FolderProbe(root / "rsvqa_hr" / "Data").probe, "0.tif")
    assert "outside the raw root" in reason
    # with no scope (a converter called directly) only the type and size rules hold, as in probe_image
    assert FolderProbe(root / "rsvqa_hr" / "Data").probe("0.tif") == probe_image(root / "rsvqa_hr" / "Data" / "0.tif")
