"""RSIVQA converter: real lines of the UCM, Sydney and AID files, quirks, splits, broken lines."""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image

from skyeye_data.convert import convert_source, read_records
from skyeye_data.sources import get_source
from skyeye_data.sources.base import Rejected
from skyeye_data.sources.rsivqa import Triplet, parse_line, question_type
from skyeye_data.synth import synthesize

# real sample file -> (published path under RAW/rsivqa, image side in pixels)
REAL_FILES = {
    "UCM_ucm_vqa.head200.txt": ("UCM/ucm_vqa.txt", 256),
    "UCM_ucm_res.head200.txt": ("UCM/ucm_res.txt", 256),
    "Sydney_sydney_vqa.head200.txt": ("Sydney/sydney_vqa.txt", 500),
    "AID_rsicd_vqa.head200.txt": ("AID/rsicd_vqa.txt", 224),
}


def small_image(path: Path, size: int) -> None:
    """An image of the real size, cheap to write (flat colour; uncompressed TIFF is the fastest)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.new("RGB", (size, size), (len(path.stem) * 20 % 256, 90, 40))
    image.save(path, format={".tif": "TIFF", ".jpg": "JPEG"}.get(path.suffix, "PNG"))


# where each subset's parent caption dataset says its images' splits (the first accepted layout)
PARENT_FILES = {"UCM": "ucm_captions/dataset.json", "Sydney": "sydney_captions/dataset.json",
                "AID": "rsicd/annotations_rsicd/dataset_rsicd.json"}  # fmt: skip


def copy_real(real_samples: Path, raw: Path, max_lines: int | None = None, parents: bool = True) -> None:
    """The real RSIVQA excerpts under their published names, with images of the real sizes; with
    ``parents``, the parent caption datasets' files beside it, every image in their train split."""
    for sample, (published, size) in REAL_FILES.items():
        target = raw / published
        target.parent.mkdir(parents=True, exist_ok=True)
        lines = (real_samples / "rsivqa" / sample).read_text().splitlines(keepends=True)[:max_lines]
        target.write_text("".join(lines))
        names = sorted({line.split(":", 1)[0].strip() for line in lines if line.strip()})
        for name in names:
            if not (target.parent / "images" / name).exists():
                small_image(target.parent / "images" / name, size)
        if parents:
            parent = raw.parent / PARENT_FILES[published.split("/")[0]]
            parent.parent.mkdir(parents=True, exist_ok=True)
            listed = json.loads(parent.read_text())["images"] if parent.exists() else []
            listed += [{"filename": n, "imgid": len(listed) + i, "split": "train", "sentences": []} for i, n in enumerate(names)]
            parent.write_text(json.dumps({"images": listed}))


def records_and_rejections(raw: Path):
    items = list(get_source("rsivqa").records(raw))
    return [i for i in items if not isinstance(i, Rejected)], [i for i in items if isinstance(i, Rejected)]


@pytest.fixture(scope="module")
def real_converted(real_samples, tmp_path_factory):
    """All 800 real lines converted once (the tests below only read the result)."""
    raw = tmp_path_factory.mktemp("real-rsivqa") / "rsivqa"
    copy_real(real_samples, raw)
    return records_and_rejections(raw)


def test_real_lines_convert_with_parent_family_keys(real_converted):
    records, rejected = real_converted
    assert rejected == []
    assert len(records) == 800  # 4 files x 200 real lines
    by_id = {r.record_id: r for r in records}

    theme = by_id["rsivqa:UCM/ucm_res.txt:1"]
    assert (theme.image_key, theme.question, theme.answer, theme.question_type) == (
        "ucm:1", "What is the theme of this picture?", "farmland", "scene")  # fmt: skip
    assert (theme.subset, theme.width, theme.height, theme.image_path) == ("UCM", 256, 256, "UCM/images/1.tif")
    count = by_id["rsivqa:UCM/ucm_res.txt:4"]
    assert (count.question, count.answer, count.question_type) == ("How many trees in the picture?", "one", "count")
    location = by_id["rsivqa:UCM/ucm_res.txt:5"]
    assert (location.answer, location.question_type) == ("top left corner", "location")
    presence = by_id["rsivqa:UCM/ucm_res.txt:2"]
    assert (presence.question, presence.answer, presence.question_type) == (
        "Does this picture contain an airplane?", "no", "presence")  # fmt: skip

    sydney = by_id["rsivqa:Sydney/sydney_vqa.txt:1"]
    assert (sydney.image_key, sydney.answer, sydney.width, sydney.subset) == ("sydney:1", "residential", 500, "Sydney")
    aid = by_id["rsivqa:AID/rsicd_vqa.txt:1"]
    assert (aid.image_key, aid.answer, aid.image_path, aid.width) == (
        "rsicd:00433",
        "airport",
        "AID/images/00433.jpg",
        224,
    )
    assert aid.provenance.raw_file == "AID/rsicd_vqa.txt" and aid.provenance.raw_line == 1


def test_real_empty_object_slot_is_kept_and_flagged(real_converted):
    records, _ = real_converted
    by_id = {r.record_id: r for r in records}
    # real line 9 of ucm_res.txt: "10.tif:How many  in the picture?zero"
    slot = by_id["rsivqa:UCM/ucm_res.txt:9"]
    assert (slot.question, slot.answer, slot.image_key) == ("How many in the picture?", "zero", "ucm:10")
    assert "question_missing_object" in slot.flags
    assert "question_missing_object" not in by_id["rsivqa:UCM/ucm_res.txt:4"].flags


def test_real_question_types_follow_the_opening_words(real_converted):
    records, _ = real_converted
    res = Counter(r.question_type for r in records if r.provenance.raw_file == "UCM/ucm_res.txt")
    # ucm_res asks each of its 40 images: theme, airplane?, trees?, how many, where
    assert res == Counter(scene=40, presence=80, count=40, location=40)
    theme_only = {r.question_type for r in records if r.provenance.raw_file != "UCM/ucm_res.txt"}
    assert theme_only == {"scene"}


def test_split_from_the_parent_json(real_converted):
    records, _ = real_converted
    assert {r.split for r in records} == {"train"} and not any(r.flags for r in records if r.question_type == "scene")


def test_without_the_parent_json_the_split_is_unknown_never_train(real_samples, tmp_path):
    """RSICD absent (or unreadable): RSIVQA-AID's questions, whose images include RSICD test images, are
    quarantined with the reason, none is put in train; the same for UCM and Sydney."""
    raw = tmp_path / "rsivqa"
    copy_real(real_samples, raw, parents=False)
    records, rejected = records_and_rejections(raw)
    assert records == [] and len(rejected) == 800
    aid = [r for r in rejected if r.raw_file == "AID/rsicd_vqa.txt"]
    assert len(aid) == 200 and all(not r.deliberate for r in aid)
    assert aid[0].reason.startswith("split unknown: no parent caption file (rsicd/annotations_rsicd/dataset_rsicd.json "
                                    "or rsicd/dataset_rsicd.json in the raw root)")  # fmt: skip
    assert aid[0].reason.endswith("the question is not put in train")


def test_split_and_image_come_from_the_parent_dataset(real_samples, tmp_path):
    """With UCM-Captions in the raw root, its dataset.json decides the split and its file is used."""
    real_rsivqa = tmp_path / "rsivqa"
    copy_real(real_samples, real_rsivqa, max_lines=5)
    ucm = tmp_path / "ucm_captions"
    small_image(ucm / "images" / "1.tif", 256)
    small_image(ucm / "images" / "2.tif", 256)
    (ucm / "dataset.json").write_text(json.dumps({"images": [
        {"filename": "1.tif", "imgid": 0, "split": "test", "sentences": []},
        {"filename": "2.tif", "imgid": 1, "split": "val", "sentences": []},
    ]}))  # fmt: skip
    records, _ = records_and_rejections(real_rsivqa)
    by_id = {r.record_id: r for r in records}
    one = by_id["rsivqa:UCM/ucm_vqa.txt:1"]
    assert (one.split, one.image_path, one.flags) == ("test", "../ucm_captions/images/1.tif", [])
    assert by_id["rsivqa:UCM/ucm_res.txt:1"].split == "test"  # same image, other file: same split
    assert by_id["rsivqa:UCM/ucm_vqa.txt:2"].split == "val"
    three = by_id["rsivqa:UCM/ucm_vqa.txt:3"]  # not in the parent json: train, flagged
    assert (three.split, three.image_path, three.flags) == ("train", "UCM/images/3.tif", ["split_not_official"])


# ---------------------------------------------------------------------------------------------
# Line parsing and quirks
# ---------------------------------------------------------------------------------------------


def test_parse_line_quirks():
    assert parse_line(" 1.tif:what is the theme of this picture?residential") == Triplet(
        "1.tif", "what is the theme of this picture?", "residential")  # fmt: skip
    assert parse_line("P0000: how many planes are there in this picture?21\r") == Triplet(
        "P0000", "how many planes are there in this picture?", "21")  # fmt: skip
    assert parse_line("1.tif:what is this?a:b") == Triplet("1.tif", "what is this?", "a:b")
    assert parse_line("1.tif what is the theme farmland") == "malformed line: no ':' between image name and question"
    assert parse_line("1.tif:what is the theme farmland") == "malformed line: no '?' between question and answer"
    assert parse_line("1.tif:?farmland") == "answer without question: nothing between ':' and '?'"
    assert parse_line("1.tif:what is the theme of this picture?  ") == "question without answer: nothing after '?'"
    assert parse_line(":what?farmland") == "malformed line: no image name before ':'"
    assert parse_line("../x.tif:what?no").startswith("malformed line: image name '../x.tif'")


@pytest.mark.parametrize(
    ("question", "answer", "expected"),
    [
        ("does this picture contain ship?", "no", "presence"),
        ("Are there any buildings?", "yes", "presence"),
        ("how many small vehicles are there in this picture?", "272", "count"),
        ("What is the theme of this picture?", "farmland", "scene"),
        ("What is the location of the trees in this picture?", "diagonal", "location"),
        ("Is the river wide?", "yes", "yes_no"),
        ("What color is the roof?", "red", "other"),
    ],
)
def test_question_type_rule(question, answer, expected):
    assert question_type(question, answer) == expected


# ---------------------------------------------------------------------------------------------
# Detection subsets, splits by file and by parent folder
# ---------------------------------------------------------------------------------------------


def test_dota_and_hrrsd_names_get_extensions_and_file_splits(tmp_path):
    raw = tmp_path / "rsivqa"
    (raw / "DOTA").mkdir(parents=True)
    (raw / "HRRSD").mkdir(parents=True)
    # real lines of dota_train_vqa2.txt / opt_val_vqa.txt (spectralpublic/RSIVQA)
    (raw / "DOTA" / "dota_train_vqa2.txt").write_text(
        "P0000: how many planes are there in this picture?21\nP0000: does this picture contain ship?no\n"
    )
    (raw / "DOTA" / "dota_val_vqa2.txt").write_text("P0003: how many ships are there in this picture?4\n")
    (raw / "HRRSD" / "opt_val_vqa.txt").write_text("00001: does this picture contain airplane?yes\n")
    small_image(raw / "DOTA" / "images" / "P0000.png", 64)
    small_image(raw / "HRRSD" / "images" / "00001.jpg", 48)
    # P0003 lives in the DOTA detection source's val folder
    small_image(tmp_path / "dota" / "val" / "images" / "P0003.png", 80)
    records, rejected = records_and_rejections(raw)
    assert rejected == []
    by_key = {(r.image_key, r.question): r for r in records}
    planes = by_key[("dota:P0000", "how many planes are there in this picture?")]
    assert (planes.answer, planes.split, planes.question_type, planes.image_path) == (
        "21", "train", "count", "DOTA/images/P0000.png")  # fmt: skip
    val = by_key[("dota:P0003", "how many ships are there in this picture?")]
    assert (val.split, val.image_path, val.width) == ("val", "../dota/val/images/P0003.png", 80)
    hrrsd = by_key[("hrrsd:00001", "does this picture contain airplane?")]
    assert (hrrsd.split, hrrsd.subset, hrrsd.answer, hrrsd.width) == ("val", "HRRSD", "yes", 48)


def test_parent_split_folder_wins_over_file_name(tmp_path):
    raw = tmp_path / "rsivqa"
    (raw / "DOTA").mkdir(parents=True)
    (raw / "DOTA" / "dota_train_vqa2.txt").write_text("P0007: how many ships are there in this picture?2\n")
    small_image(tmp_path / "dota" / "val" / "images" / "P0007.png", 32)
    [record], _ = records_and_rejections(raw)
    assert (record.split, record.flags) == ("val", ["split_from_parent_folder"])


def test_repository_level_rsivqa_folder_is_accepted(tmp_path):
    raw = tmp_path / "rsivqa"
    (raw / "RSIVQA" / "Sydney").mkdir(parents=True)
    (raw / "RSIVQA" / "Sydney" / "sydney_vqa.txt").write_text("1.tif:what is the theme of this picture?residential\n")
    small_image(raw / "RSIVQA" / "Sydney" / "images" / "1.tif", 500)
    (tmp_path / "sydney_captions").mkdir()
    (tmp_path / "sydney_captions" / "dataset.json").write_text(json.dumps({"images": [{"filename": "1.tif", "split": "val"}]}))
    [record], _ = records_and_rejections(raw)
    assert record.provenance.raw_file == "RSIVQA/Sydney/sydney_vqa.txt"
    assert record.image_path == "RSIVQA/Sydney/images/1.tif"


# ---------------------------------------------------------------------------------------------
# Synthetic corpus end to end, broken inputs
# ---------------------------------------------------------------------------------------------


def test_mini_end_to_end_counts_add_up(tmp_path):
    raw = tmp_path / "rsivqa"
    raw_lines = synthesize("rsivqa", raw, "mini", random.Random(3))
    for parent in ("ucm_captions", "sydney_captions", "rsicd"):  # their files give UCM/Sydney/AID splits
        synthesize(parent, tmp_path / parent, "mini", random.Random(0))
    summary = convert_source("rsivqa", raw, tmp_path / "out")
    assert summary.records_in == raw_lines == 64
    assert summary.quarantined == 0
    # DOTA val (15) and HRRSD (15) are val by file name; UCM/Sydney/AID take their parents' splits
    assert summary.by_split["val"] >= 30 and sum(summary.by_split.values()) == 64
    records = list(read_records(summary.records_path))
    assert Counter(r.subset for r in records) == Counter(UCM=13, Sydney=3, AID=3, DOTA=30, HRRSD=15)
    assert any(line.startswith(" ") for line in (raw / "UCM" / "ucm_res.txt").read_text().splitlines())
    assert {r.image_key.split(":")[0] for r in records} == {"ucm", "sydney", "rsicd", "dota", "hrrsd"}


@pytest.fixture()
def broken_file(tmp_path) -> tuple[Path, Path]:
    raw = tmp_path / "rsivqa"
    (raw / "UCM").mkdir(parents=True)
    small_image(raw / "UCM" / "images" / "1.tif", 256)
    lines = [
        b"1.tif:what is the theme of this picture?farmland",  # 1 ok
        b"",  # 2 blank: skipped, not a triplet
        b"1.tif:what is the theme of this picture farmland",  # 3 no '?'
        b"1.tif:Does this picture contain trees?",  # 4 question without answer
        b"1.tif:?yes",  # 5 answer without question
        b"1.tif:Does this picture contain an airplane?n\xf6",  # 6 bad encoding
        b"1.tif:What is the theme of this picture?farmland",  # 7 duplicate of line 1 (case-insensitive)
        b"2.tif:what is the theme of this picture?forest",  # 8 missing image
        b" 1.tif:How many trees in the picture?one",  # 9 ok, leading space
    ]
    path = raw / "UCM" / "ucm_res.txt"
    path.write_bytes(b"\r\n".join(lines) + b"\r\n")
    (tmp_path / "ucm_captions").mkdir()  # the parent's split file (no image folder: UCM/images is used)
    (tmp_path / "ucm_captions" / "dataset.json").write_text(json.dumps({"images": [{"filename": "1.tif", "split": "train"}]}))
    return raw, path


def test_broken_lines_are_quarantined_with_line_and_reason(broken_file, tmp_path):
    raw, _ = broken_file
    summary = convert_source("rsivqa", raw, tmp_path / "out")
    quarantine = [json.loads(x) for x in summary.quarantine_path.read_text().splitlines()]
    by_line = {q["raw_line"]: q["reason"] for q in quarantine}
    assert by_line == {
        3: "malformed line: no '?' between question and answer",
        4: "question without answer: nothing after '?'",
        5: "answer without question: nothing between ':' and '?'",
        6: "bad encoding: byte 0xF6 is not UTF-8",
        7: "duplicate triplet: image '1.tif' already asked 'What is the theme of this picture?' at line 1",
        8: "image file not found: 2.tif (looked in ../ucm_captions/imgs, ../ucm_captions/images, UCM/images)",
    }
    assert all(q["raw_file"] == "UCM/ucm_res.txt" for q in quarantine)
    assert (summary.written, summary.quarantined) == (2, 6)  # 8 non-blank lines in, 2 + 6 out
    records = list(read_records(summary.records_path))
    assert [r.provenance.raw_line for r in records] == [1, 9]
    assert records[1].question == "How many trees in the picture?" and records[1].answer == "one"


def test_unreadable_image_is_quarantined(broken_file, tmp_path):
    raw, _ = broken_file
    (raw / "UCM" / "images" / "1.tif").write_bytes(b"\x00" * 64)
    summary = convert_source("rsivqa", raw, tmp_path / "out")
    assert summary.written == 0
    assert summary.reasons["image cannot be read"] == 2
