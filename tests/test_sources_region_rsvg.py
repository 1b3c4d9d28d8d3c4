"""DIOR-RSVG (global object indices, real annotation + splits) and RSVG (assumed JSON export layout)."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import pytest
from PIL import Image

from skyeye_data.boxes import format_box
from skyeye_data.convert import convert_source, read_records
from skyeye_data.sources import LayoutError, Rejected, get_source
from skyeye_data.sources.dior_rsvg import read_split_index
from skyeye_data.synth.rsvg import PAPER_SPLIT_SIZES, _assign_images, _expressions_per_image
from skyeye_data.synth import synthesize

DIOR_RSVG = get_source("dior_rsvg")
RSVG = get_source("rsvg")


def write_jpg(path: Path, width: int, height: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (width, height), (90, 110, 90)).save(path, format="JPEG")
    return path


def rsvg_xml(objects: list[tuple[str, list[float], str]], size=(100, 100)) -> str:
    body = "".join(
        f"<object><name>{name}</name><bndbox><xmin>{b[0]}</xmin><ymin>{b[1]}</ymin><xmax>{b[2]}</xmax>"
        f"<ymax>{b[3]}</ymax></bndbox><description>{text}</description></object>"
        for name, b, text in objects
    )
    return f"<annotation><size><width>{size[0]}</width><height>{size[1]}</height></size>{body}</annotation>"


def split_items(items):
    records = [i for i in items if not isinstance(i, Rejected)]
    rejected = [i for i in items if isinstance(i, Rejected) and i.level == "record"]
    parts = [i for i in items if isinstance(i, Rejected) and i.level == "part"]
    return records, rejected, parts


def split_containing(folder: Path, index: int) -> list[str]:
    """Which real split files list ``index`` (plain reading, independent of the converter)."""
    return [s for s in ("train", "val", "test") if str(index) in (folder / f"{s}.txt").read_text().split()]


# -- DIOR-RSVG -------------------------------------------------------------------------------------


@pytest.mark.real_samples
def test_real_golffield_box_tokens_and_split(real_samples, tmp_path):
    raw = tmp_path / "dior_rsvg"
    (raw / "Annotations").mkdir(parents=True)
    shutil.copy(real_samples / "dior_rsvg/00001.xml", raw / "Annotations/00001.xml")
    for split in ("train", "val", "test"):
        shutil.copy(real_samples / f"dior_rsvg/{split}.txt", raw / f"{split}.txt")
    (raw / "JPEGImages").mkdir()
    shutil.copy(real_samples / "dior/00001.jpg", raw / "JPEGImages/00001.jpg")  # the same DIOR image
    records, rejected, parts = split_items(list(DIOR_RSVG.records(raw)))
    (record,) = records
    assert not rejected
    assert record.boxes == [[133, 237, 684, 672]] and record.label == "golffield"
    assert format_box(record.boxes[0], record.width, record.height) == "{<17><30><86><84>}"
    assert record.expression == "A green and brown golf field"
    assert record.record_id == "dior_rsvg:0" and record.image_key == "dior:00001"
    assert [record.split] == split_containing(real_samples / "dior_rsvg", 0) == ["test"]
    # the other 38,319 indices point past the one annotation here: one summary line per split file
    assert sorted(p.raw_file for p in parts) == ["test.txt", "train.txt", "val.txt"]
    assert all("refer to no object; the annotations hold 1" in p.reason for p in parts)


@pytest.mark.real_samples
def test_real_split_files_are_complete_and_disjoint(real_samples):
    index = read_split_index(real_samples / "dior_rsvg")
    assert not index.conflicts and not index.bad_lines
    assert sorted(index.split_of) == list(range(38320))
    counts = {s: sum(1 for v in index.split_of.values() if v == s) for s in ("train", "val", "test")}
    assert counts == {"train": 26991, "val": 3829, "test": 7500}
    for number in (2, 3, 38319):
        assert split_containing(real_samples / "dior_rsvg", number) == [index.split_of[number]]


def make_rsvg_root(tmp_path: Path, files: dict[str, str], splits: dict[str, list[int]]) -> Path:
    raw = tmp_path / "dior_rsvg"
    (raw / "Annotations").mkdir(parents=True)
    for stem, text in files.items():
        (raw / "Annotations" / f"{stem}.xml").write_text(text)
        write_jpg(raw / "JPEGImages" / f"{stem}.jpg", 100, 100)
    for split, indices in splits.items():
        (raw / f"{split}.txt").write_text("".join(f"{i}\n" for i in indices))
    return raw


def test_global_indices_follow_sorted_files_and_survive_a_broken_file(tmp_path):
    files = {
        "00003": rsvg_xml([("ship", [1, 1, 9, 9], "the ship"), ("vehicle", [10, 10, 20, 20], "a car")]),
        "00001": rsvg_xml([("dam", [5, 5, 50, 50], "the dam")]),
        # truncated mid-file: it held two objects, which still take indices 1 and 2
        "00002": rsvg_xml([("bridge", [1, 1, 9, 9], "a"), ("bridge", [1, 1, 9, 9], "b")])[:-30],
        "00004": '<?xml version="1.0"?><!DOCTYPE a [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]>'
        "<annotation><object><name>&b;</name></object></annotation>",  # entity expansion refused
    }
    raw = make_rsvg_root(tmp_path, files, {"train": [0, 1, 3], "val": [2, 4, 5], "test": [4]})
    records, rejected, parts = split_items(list(DIOR_RSVG.records(raw)))
    assert [(r.record_id, r.split, r.expression) for r in records] == [
        ("dior_rsvg:0", "train", "the dam"),
        ("dior_rsvg:3", "train", "the ship"),
    ]
    reasons = [(r.raw_file, r.reason) for r in rejected]
    assert reasons[0][0] == reasons[1][0] == "Annotations/00002.xml"
    assert "XML cannot be parsed" in reasons[0][1] and "(object global index 1)" in reasons[0][1]
    assert "(object global index 2)" in reasons[1][1]
    assert "object global index 4 is in several split files: ['val', 'test']" in reasons[2][1]
    assert reasons[3][0] == "Annotations/00004.xml" and reasons[3][1].startswith("unsafe XML refused")
    # index 6 in no file: 00004 took index 5 (one <object> tag)
    assert len(records) + len(rejected) == 6 and not parts


def test_object_problems_are_quarantined_or_flagged(tmp_path):
    files = {
        "00001": rsvg_xml(
            [
                ("ship", [1, 1, 9, 9], "   "),  # empty expression
                ("ship", [200, 200, 220, 220], "outside"),  # wholly outside
                ("vehicle", [90, 90, 120, 120], "the car at the corner"),  # clipped
                ("spaceship", [1, 1, 9, 9], "a strange craft"),  # unknown class: kept, flagged
                ("ship", [1, 1, 9, 9], "not in any split"),
            ],
            size=(800, 800),  # disagrees with the 100x100 image
        )
    }
    raw = make_rsvg_root(tmp_path, files, {"train": [0, 1, 2, 3]})
    records, rejected, _ = split_items(list(DIOR_RSVG.records(raw)))
    assert [r.record_id for r in records] == ["dior_rsvg:2", "dior_rsvg:3"]
    assert records[0].boxes == [[90, 90, 100, 100]]
    assert records[0].flags == ["box_clipped", "size_mismatch"]
    assert records[1].label is None and "unknown_class" in records[1].flags
    reasons = [r.reason for r in rejected]
    assert "expression: expression is empty" in reasons[0]
    assert "wholly outside the 100x100 image" in reasons[1]
    assert "object global index 4 is in no split file" in reasons[2]
    assert all(r.raw_file == "Annotations/00001.xml" for r in rejected)


def test_missing_image_quarantines_each_object(tmp_path):
    raw = make_rsvg_root(tmp_path, {"00001": rsvg_xml([("ship", [1, 1, 9, 9], "a"), ("ship", [1, 1, 9, 9], "b")])}, {"train": [0, 1]})
    (raw / "JPEGImages/00001.jpg").unlink()
    records, rejected, _ = split_items(list(DIOR_RSVG.records(raw)))
    assert not records and len(rejected) == 2 and all("image file not found" in r.reason for r in rejected)


def test_dior_rsvg_mini_shares_images_with_dior_and_converts(tmp_path):
    written = synthesize("dior_rsvg", tmp_path / "dior_rsvg", "mini", random.Random(1))
    synthesize("dior", tmp_path / "dior", "mini", random.Random(2))
    for image in (tmp_path / "dior_rsvg/JPEGImages").glob("*.jpg"):
        dior_copy = next((tmp_path / "dior").glob(f"JPEGImages-*/{image.name}"))
        assert image.read_bytes() == dior_copy.read_bytes()
    summary = convert_source("dior_rsvg", tmp_path / "dior_rsvg", tmp_path / "out")
    assert (summary.written, summary.quarantined, summary.parts_quarantined) == (written, 0, 0)
    dior = convert_source("dior", tmp_path / "dior", tmp_path / "out")
    grounding = list(read_records(summary.records_path))
    detection = {r.image_key: r for r in read_records(dior.records_path)}
    for record in grounding:
        # the join key and the split agree with DIOR, and the referred box is one of DIOR's boxes
        assert record.image_key in detection and detection[record.image_key].split == record.split
        assert record.boxes[0] in [o.box for o in detection[record.image_key].objects]


def test_dior_rsvg_layout_error(tmp_path):
    with pytest.raises(LayoutError, match="Annotations/ and train.txt/val.txt/test.txt"):
        DIOR_RSVG.check_layout(tmp_path)


# -- RSVG ------------------------------------------------------------------------------------------


def test_rsvg_layout_errors_name_what_was_expected(tmp_path):
    with pytest.raises(LayoutError, match="no images/ folder"):
        RSVG.check_layout(tmp_path)
    (tmp_path / "images").mkdir()
    with pytest.raises(LayoutError, match="none of rsvg_train.pth, rsvg_val.pth, rsvg_test.pth"):
        RSVG.check_layout(tmp_path)
    (tmp_path / "rsvg_train.pth").write_bytes(b"PK")
    with pytest.raises(LayoutError, match=r"lacks rsvg_val.pth, rsvg_test.pth"):  # a split absent: an error
        RSVG.check_layout(tmp_path)


def write_authors_pth(path: Path, entries: list) -> None:
    """A split list the way the authors' files are: torch.save of a list of tuples (name, box, phrase, ...)."""
    import torch  # the test environment has torch; skyeye_data never imports it

    torch.save(entries, path)


def test_rsvg_reads_the_released_pth_files_directly(tmp_path):
    raw = tmp_path / "rsvg"
    write_jpg(raw / "images/00001.jpg", 100, 80)
    write_jpg(raw / "images/00002.jpg", 100, 80)
    write_authors_pth(raw / "rsvg_train.pth", [("00001.jpg", [10, 10, 50, 40], "find a water tower.", 7),
                                               ("00002.jpg", (5, 6, 60, 70), "the storage tank on the left", "x")])
    write_authors_pth(raw / "rsvg_val.pth", [("00001.jpg", [1, 2, 30, 40], "a bridge", None)])
    write_authors_pth(raw / "rsvg_test.pth", [])
    assert RSVG.find_layout(raw).layout.name == "published"
    summary = convert_source("rsvg", raw, tmp_path / "out")
    assert (summary.written, summary.quarantined) == (3, 0) and dict(summary.by_split) == {"train": 2, "val": 1}
    records = {r.record_id: r for r in read_records(summary.records_path)}
    assert records["rsvg:train:1"].boxes == [[5, 6, 60, 70]] and records["rsvg:train:1"].provenance.raw_file == "rsvg_train.pth"
    assert records["rsvg:train:0"].expression == "find a water tower."


def test_rsvg_refuses_a_pth_that_is_not_plain_data(tmp_path):
    import torch

    raw = tmp_path / "rsvg"
    write_jpg(raw / "images/00001.jpg", 100, 80)
    write_authors_pth(raw / "rsvg_train.pth", [("00001.jpg", torch.tensor([1, 2, 3, 4]), "a tensor box")])

    class Payload:  # a pickle that would run code when loaded by pickle.load
        def __reduce__(self):
            return (print, ("pwned",))

    write_authors_pth(raw / "rsvg_val.pth", [Payload()])
    torch.save([("00001.jpg", [1, 2, 3, 4], "old format")], raw / "rsvg_test.pth", _use_new_zipfile_serialization=False)
    summary = convert_source("rsvg", raw, tmp_path / "out")
    quarantine = [json.loads(line) for line in (tmp_path / "out/rsvg.quarantine.jsonl").read_text().splitlines()]
    reasons = {q["raw_file"]: q["reason"] for q in quarantine}
    assert summary.written == 0 and summary.quarantined == 3
    assert reasons["rsvg_train.pth"].startswith("rsvg_train.pth holds a tensor; only plain Python lists")
    assert "holds a __builtin__.print object" in reasons["rsvg_val.pth"]  # protocol 2 names builtins so
    assert "legacy (pre-1.6) format" in reasons["rsvg_test.pth"]


def test_rsvg_synthetic_pth_is_what_torch_load_reads(tmp_path):
    import torch

    synthesize("rsvg", tmp_path / "rsvg", "mini", random.Random(0))
    loaded = torch.load(tmp_path / "rsvg" / "rsvg_train.pth", weights_only=True)
    assert len(loaded) == 3 and isinstance(loaded[0], tuple) and loaded[0][0].endswith(".jpg")


def test_rsvg_entries_good_and_broken(tmp_path):
    raw = tmp_path / "rsvg"
    write_jpg(raw / "images/a.jpg", 100, 80)
    entries = [
        ["a.jpg", [10, 10, 50, 40], "find a water tower that is about 170 square meters.", None],
        ["a.jpg", [90, 70, 130, 90], "the tank at the corner"],  # clipped
        ["a.jpg", [10, 10, 50], "three numbers"],
        ["missing.jpg", [10, 10, 50, 40], "no such image"],
        ["../../etc/passwd", [10, 10, 50, 40], "escape"],
        ["a.jpg", [10, 10, 50, 40], ""],
        {"image": "a.jpg"},
        ["a.jpg", [200, 200, 300, 300], "outside"],
    ]
    (raw / "rsvg_train.json").write_text(json.dumps(entries))
    (raw / "rsvg_val.json").write_text("[]")
    (raw / "rsvg_test.json").write_text('[["a.jpg", [1, 2')  # truncated JSON
    summary = convert_source("rsvg", raw, tmp_path / "out")
    assert summary.records_in == 9 == summary.written + summary.quarantined and summary.written == 2
    records = list(read_records(summary.records_path))
    assert records[0].record_id == "rsvg:train:0" and records[0].image_key == "rsvg:a"
    assert (records[0].width, records[0].height) == (100, 80) and records[0].boxes == [[10, 10, 50, 40]]
    assert records[1].boxes == [[90, 70, 100, 80]] and records[1].flags == ["box_clipped"]
    quarantine = [json.loads(line) for line in (tmp_path / "out/rsvg.quarantine.jsonl").read_text().splitlines()]
    reasons = {(q["raw_file"], q["raw_index"]): q["reason"] for q in quarantine}
    assert "box is not a list of 4 numbers" in reasons[("rsvg_train.json", 2)]
    assert "image file not found" in reasons[("rsvg_train.json", 3)]
    assert "climbs out of its folder" in reasons[("rsvg_train.json", 4)]
    assert "expression is empty" in reasons[("rsvg_train.json", 5)]
    assert "entry is not a list" in reasons[("rsvg_train.json", 6)]
    assert "wholly outside the 100x80 image" in reasons[("rsvg_train.json", 7)]
    assert "not valid JSON" in reasons[("rsvg_test.json", None)]


def test_rsvg_paper_split_plan_is_exact_and_image_disjoint():
    counts = _expressions_per_image(4239, 7933)
    assert len(counts) == 4239 and sum(counts) == 7933
    split_of = _assign_images(counts, PAPER_SPLIT_SIZES)
    totals = {s: sum(c for c, sp in zip(counts, split_of) if sp == s) for s in PAPER_SPLIT_SIZES}
    assert totals == {"train": 5505, "val": 1201, "test": 1227}


def test_rsvg_synth_mini_converts_end_to_end(tmp_path):
    written = synthesize("rsvg", tmp_path / "rsvg", "mini", random.Random(0))
    summary = convert_source("rsvg", tmp_path / "rsvg", tmp_path / "out")
    assert (summary.written, summary.quarantined) == (written, 0)
    assert dict(summary.by_split) == {"train": 3, "val": 1, "test": 2}
    records = list(read_records(summary.records_path))
    splits_of_image: dict[str, set] = {}
    for record in records:
        splits_of_image.setdefault(record.image_key, set()).add(record.split)
    assert all(len(s) == 1 for s in splits_of_image.values())  # no image in two splits
