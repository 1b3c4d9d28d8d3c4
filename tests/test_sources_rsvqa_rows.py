"""The row path of the RSVQA converters (``skyeye convert``: sources/_rsvqa_rows.py, sources/row_block.py
and the padding runs of json_stream.iter_json_chunks) against the record path (``records()``, each
record through schema.record_to_row): the same Parquet bytes, the same rejections in the same order,
the same leak-guard notes, on Splits.py-layout corpora full of the inputs the fast path must refuse."""

from __future__ import annotations

import hashlib
import io
import json
import random
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from skyeye_data import json_cursor, json_stream, rawfs
from skyeye_data.compile.stages.leak_guard import EvalImages
from skyeye_data import convert
from skyeye_data.convert import BATCH_ROWS, convert_records, records_writer
from skyeye_data.schema import RECORD_SCHEMA, record_to_row
from skyeye_data.sources import _rsvqa_rows, get_source
from skyeye_data.sources._rsvqa_rows import is_stub, padding_runs
from skyeye_data.sources.base import Rejected
from skyeye_data.synth import synth_image
from test_sources_vqa_rsvqa import write_splits_py

# question texts the fast path must hand to the exact path (textguard strips, refuses or caps them)
ODD_TEXTS = ["Is there a road?\n", "Is there a caf\u00e9?", "Is there a \x07bell?", "  ", "Is there \u202ea road?",
             "x" * 5000, "Is there a road\u0085?", "What is\tthis?"]  # fmt: skip


def corpus(raw: Path, seed: int, prefix: str = "USGS", n_images: int = 30) -> None:
    """A Splits.py-layout corpus with every kind of question the fast path does not take."""
    rng = random.Random(seed)
    db = {"images": [], "questions": [], "answers": []}
    for image_id in range(n_images):
        first = len(db["questions"])
        for _ in range(rng.randrange(1, 90)):
            qid = len(db["questions"])
            aid = len(db["answers"])
            text = rng.choice(ODD_TEXTS) if rng.random() < 0.08 else f"Is there a road number {qid}?"
            entry = {"id": qid, "date_added": 1579865382.5, "img_id": image_id, "people_id": 0,
                     "type": rng.choice(["presence", "count", "area", None, ""]), "question": text,
                     "answers_ids": [aid], "active": rng.random() > 0.05}  # fmt: skip
            db["questions"].append(entry)
            db["answers"].append({"id": aid, "date_added": 1579865382.5, "question_id": qid, "people_id": 0,
                                  "answer": rng.choice(["yes", "no", "12m2", " 3 ", "", "caf\u00e9"]) if rng.random() < 0.1 else "yes",
                                  "active": rng.random() > 0.02})  # fmt: skip
            if rng.random() < 0.03:  # two answers: the first is kept, with a part-level note
                db["answers"].append({"id": aid + 1, "question_id": qid, "answer": "no", "active": True})
                entry["answers_ids"].append(aid + 1)
        db["images"].append({"id": image_id, "original_name": f"{image_id}.png", "active": True, "people_id": 0,
                             "questions_ids": list(range(first, len(db["questions"])))})  # fmt: skip
    split_of_image = {i: rng.choice(["train", "train", "val", "test", "test_phili"]) for i in range(n_images)}
    write_splits_py(raw, prefix, db, split_of_image)
    image_dir = raw / ("Data" if prefix == "USGS" else "Images_LR")
    image_dir.mkdir()
    for image_id in range(n_images):
        if image_id % 11 != 5:  # some images are missing: their questions are quarantined
            synth_image(image_dir / f"{image_id}.tif", 16, 16, seed=image_id)
    (image_dir / "7.tif").write_bytes(b"not a tiff")  # an unreadable image


def mutate(raw: Path, seed: int) -> None:
    """Hostile edits of the questions files: wrong shapes, duplicates, stub-like and odd entries."""
    rng = random.Random(seed)
    images = {path: json.loads(path.read_text())["images"] for path in sorted(raw.glob("*_images.json"))}
    home = next(path for path, entries in images.items() if entries[3]["active"])
    other = next(path for path in images if path != home)
    images[other][3] = images[home][3]  # image 3 active in two splits: its questions are left out
    other.write_text(json.dumps({"images": images[other]}))
    for path in sorted(raw.glob("*_questions.json")):
        questions = json.loads(path.read_text())["questions"]
        full = [i for i, q in enumerate(questions) if len(q) > 2]
        for index in rng.sample(full, min(len(full), 12)):
            q = questions[index]
            edit = rng.randrange(9)
            if edit == 0:
                q["id"] = str(q["id"])
            elif edit == 1:
                q["img_id"] = True
            elif edit == 2:
                q["answers_ids"] = []
            elif edit == 3:
                q["type"] = 3
            elif edit == 4:
                questions[index] = 7
            elif edit == 5:
                questions.append(dict(q))  # a duplicate id
            elif edit == 6:
                q["question"] = None
            elif edit == 7:
                q["answers_ids"] = [q["answers_ids"][0] + 10**6]
            else:
                q.pop("active")
        questions.insert(rng.randrange(len(questions)), {"active": False})  # a stub without id
        questions.insert(rng.randrange(len(questions)), {"id": 3, "active": False, "x": 1})  # not a stub
        path.write_text(json.dumps({"questions": questions}))


def reference(name: str, raw: Path, out: Path) -> tuple[list, list]:
    """What the record path writes: rows of record_to_row in row groups of GROUP_ROWS, one table each."""
    rejections, notes, rows = [], EvalImages(), []
    with records_writer(out) as writer:
        for item in rawfs.within(raw.parent, get_source(name).records(raw)):
            if isinstance(item, Rejected):
                rejections.append(item.to_json(name))
                continue
            rows.append(record_to_row(item))
            notes.add(item)
            if len(rows) >= convert.GROUP_ROWS:
                writer.write_table(pa.Table.from_pylist(rows, schema=RECORD_SCHEMA))
                rows.clear()
        if rows:
            writer.write_table(pa.Table.from_pylist(rows, schema=RECORD_SCHEMA))
    return rejections, notes.where


def assert_row_path_is_the_record_path(name: str, raw: Path, tmp_path: Path, group_rows: int = 301) -> int:
    """Both paths' files the same bytes; row groups of ``group_rows`` so that group ends fall
    inside blocks and between them."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(convert, "GROUP_ROWS", group_rows)
        expected_rejections, expected_notes = reference(name, raw, tmp_path / "reference.parquet")
        rejections, notes = [], EvalImages()
        summary = convert_records(name, raw, tmp_path / "rows.parquet", rejections.append, on_record=notes.add)
    assert rejections == expected_rejections
    assert notes.where == expected_notes
    digest = [hashlib.sha256((tmp_path / f).read_bytes()).hexdigest() for f in ("reference.parquet", "rows.parquet")]
    assert digest[0] == digest[1]
    metadata = pq.ParquetFile(tmp_path / "rows.parquet").metadata
    assert summary.written == metadata.num_rows
    assert [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)][:-1] == [group_rows] * (metadata.num_row_groups - 1)
    return summary.written


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_row_path_writes_the_bytes_of_the_record_path(tmp_path, monkeypatch, seed):
    raw = tmp_path / "raw" / "rsvqa_hr"
    corpus(raw, seed)
    mutate(raw, seed)
    # small chunks and blocks: padding runs, chunk cuts and block ends fall everywhere
    monkeypatch.setattr(json_stream, "ORJSON_CHUNK_BYTES", 2048)
    monkeypatch.setattr(_rsvqa_rows, "BLOCK_ROWS", 97)
    written = assert_row_path_is_the_record_path("rsvqa_hr", raw, tmp_path)
    assert written > BATCH_ROWS // 4


def test_row_path_on_rsvqa_lr_and_a_truncated_file(tmp_path, monkeypatch):
    raw = tmp_path / "raw" / "rsvqa_lr"
    corpus(raw, 5, prefix="LR", n_images=20)
    train = raw / "LR_split_train_questions.json"
    train.write_bytes(train.read_bytes()[: len(train.read_bytes()) * 2 // 3])  # cut mid-file
    monkeypatch.setattr(json_stream, "ORJSON_CHUNK_BYTES", 4096)
    assert assert_row_path_is_the_record_path("rsvqa_lr", raw, tmp_path) > 0


def test_row_path_with_a_flagged_record_and_full_list_files(tmp_path):
    # full lists in every split file (no stubs): questions of other splits are passed over
    raw = tmp_path / "raw" / "rsvqa_lr"
    corpus(raw, 9, prefix="LR", n_images=12)
    files = sorted(raw.glob("*_questions.json"))
    merged = sorted({q["id"]: q for f in files for q in json.loads(f.read_text())["questions"] if len(q) > 2}.values(),
                    key=lambda q: q["id"])  # fmt: skip
    merged[0]["question"] = "Is there a\u200b road?"  # textguard strips the zero-width space and flags the record
    for f in files:
        f.write_text(json.dumps({"questions": merged}))
    assert assert_row_path_is_the_record_path("rsvqa_lr", raw, tmp_path) > 0


def padded_file(path: Path, rng: random.Random) -> bytes:
    elements, next_id = [], rng.randrange(0, 10**6)
    while len(elements) < 400:
        if rng.random() < 0.3:
            for _ in range(rng.randrange(1, 60)):
                elements.append({"id": next_id, "active": False})
                next_id += 1
        else:
            elements.append({"id": next_id, "img_id": 1, "question": rng.choice(['a "quoted" {x}', "b", "\u00e9"]),
                             "active": rng.random() < 0.8})  # fmt: skip
            next_id += rng.choice([1, 1, 2])  # ids not always consecutive
    data = json.dumps({"q": elements}).encode()
    path.write_bytes(data)
    return data


def test_padding_runs_leave_out_only_stubs_and_agree_with_the_python_reader(tmp_path, monkeypatch):
    monkeypatch.setattr(json_stream, "ORJSON_CHUNK_BYTES", 1024)
    rng = random.Random(3)
    skipped_any = False
    for i in range(60):
        path = tmp_path / f"{i}.json"
        data = bytearray(padded_file(path, rng))
        if i % 3:  # flip a byte or cut the file: the same elements up to the same error
            if rng.random() < 0.5:
                data[rng.randrange(len(data))] = rng.randrange(256)
            else:
                data = data[: rng.randrange(len(data))]
            path.write_bytes(bytes(data))
        python, python_error = [], None
        try:
            python.extend(v for _, v in json_cursor.python_json_list(path, "q", json_stream.CHUNK_BYTES))
        except json_stream.JsonStreamError as error:
            python_error = error.reason
        got, error_reason, next_index = {}, None, 0
        try:
            for start, elements in json_stream.iter_json_chunks(path, "q", skip_runs=padding_runs):
                assert start >= next_index
                skipped_any |= start > next_index
                assert all(is_stub(python[k]) for k in range(next_index, start))  # a gap holds stubs only
                got.update(enumerate(elements, start))
                next_index = start + len(elements)
        except json_stream.JsonStreamError as error:
            error_reason = error.reason
        assert error_reason == python_error
        assert got == {k: python[k] for k in got} and max(got, default=-1) < len(python)
        if python_error is None:
            assert all(is_stub(python[k]) for k in range(next_index, len(python)))
    assert skipped_any


def test_padding_runs_are_exact_stub_text():
    stubs = b", ".join(b'{"id": %d, "active": false}' % i for i in range(40, 60)) + b", "
    text = b'{"id": 39, "x": 1, "active": false}, ' + stubs + b'{"id": 61, "active": true}, '
    start, end, count = padding_runs(text, 0)
    assert (count, text[start:end]) == (20, stubs)
    # a gap in the ids, a leading zero, or spacing json.dump does not write: no run there
    assert padding_runs(text.replace(b'"id": 50,', b'"id": 70,'), 0)[2] == 10
    assert padding_runs(b'{"id": 1, "active": false}, {"id": 02, "active": false}, ' * 5, 0) is None
    assert padding_runs(stubs.replace(b", {", b",{"), 0) is None


def test_header_memo_answers_as_pillow_and_never_for_other_bytes(tmp_path, monkeypatch):
    from skyeye_data.imagecheck import ImageProblem, read_header
    from skyeye_data.sources import header_memo

    monkeypatch.setattr(header_memo, "_MEMO", {})
    opened = []
    monkeypatch.setattr(header_memo, "read_header", lambda handle: opened.append(1) or read_header(handle))
    images = []
    for i, (w, h, fmt) in enumerate([(16, 16, "TIFF"), (16, 16, "TIFF"), (17, 16, "TIFF"), (16, 16, "PNG"), (9, 30, "JPEG")]):
        synth_image(tmp_path / f"{i}.img", w, h, seed=i, fmt=fmt)
        images.append((tmp_path / f"{i}.img").read_bytes())
    first = images[0]
    width_at = first.find((16).to_bytes(2, "little") + b"\x00\x00", 8)  # the ImageWidth value in the first IFD
    images += [first[:width_at] + b"\x20" + first[width_at + 1 :],  # same size, another width: not the memo's answer
               first[:40], b"II*\x00" + b"\x00" * (len(first) - 4), b"not an image at all"]  # fmt: skip
    for round_ in range(2):  # the second round answers from the memo where it may
        opened.clear()
        for data in images:
            try:
                expected = read_header(io.BytesIO(data))
            except ImageProblem as error:
                with pytest.raises(ImageProblem, match=re.escape(str(error))):
                    header_memo.memo_read_header(data, 10**8)
                continue
            assert header_memo.memo_read_header(data, 10**8) == expected
        if round_:  # opened again: the three that fail only (failures are never remembered)
            assert len(opened) == 3
    assert images[1] != images[0] and images[5] != images[0] and len(images[5]) == len(images[0])
    assert sum(len(layouts) for layouts in header_memo._MEMO.values()) >= 3


def test_records_file_layout(tmp_path):
    """Every records file: row groups of GROUP_ROWS, the per-row-unique columns delta-encoded without
    a dictionary, every other column with one (the column paths are the ones pyarrow writes)."""
    raw = tmp_path / "raw" / "rsvqa_hr"
    corpus(raw, 3)
    summary = convert_records("rsvqa_hr", raw, tmp_path / "rows.parquet", lambda entry: None)
    parquet = pq.ParquetFile(tmp_path / "rows.parquet")
    paths = [parquet.schema.column(i).path for i in range(len(parquet.schema))]
    assert paths == convert._leaf_paths(RECORD_SCHEMA)
    group = parquet.metadata.row_group(0)
    assert group.num_rows == min(summary.written, convert.GROUP_ROWS) > 0
    encodings = {group.column(i).path_in_schema: set(group.column(i).encodings) for i in range(group.num_columns)}
    assert encodings["record_id"] >= {"DELTA_BYTE_ARRAY"} and "RLE_DICTIONARY" not in encodings["record_id"]
    assert "DELTA_BINARY_PACKED" in encodings["provenance.raw_index"]
    assert "RLE_DICTIONARY" in encodings["question"] and "RLE_DICTIONARY" in encodings["provenance.raw_file"]
    ids = pq.read_table(tmp_path / "rows.parquet").column("record_id").to_pylist()  # the delta pages read back
    assert len(set(ids)) == len(ids) == summary.written and all(re.fullmatch(r"rsvqa_hr:[0-9]+", i) for i in ids)


def test_block_columns_from_buffers_are_pyarrows_arrays():
    """row_block builds its string and integer columns from buffers (pyarrow's conversion of Python
    values imports pandas): the same arrays as pa.array, nulls and non-ASCII text included."""
    from skyeye_data.sources.row_block import _array, _repeated

    rng = random.Random(5)
    cases = [(["a", "bc", None, ""], pa.string()), (["caf\u00e9", "a"], pa.string()), ([1, 2, None], pa.int64()),
             ([1, 2**40], pa.int64()), ([], pa.string()), ([None], pa.string()), ([0, 5], pa.int32())]  # fmt: skip
    cases += [([rng.choice([None, "x", "yy", "", "\u202e"]) for _ in range(rng.randrange(40))], pa.string()) for _ in range(60)]
    for values, type_ in cases:
        built = _array(values, type_)
        built.validate(full=True)
        assert built.equals(pa.array(values, type_)), values
    for value in ("rsvqa_hr", "", None, "caf\u00e9"):
        built = _repeated(value, 5, pa.string())
        built.validate(full=True)
        assert built.to_pylist() == [value] * 5

