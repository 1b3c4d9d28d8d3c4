"""DIOR converter: real DIOR-R oriented XML and image, class spellings, unsafe and broken XML, counting."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import pytest
from PIL import Image

from skyeye_data.convert import convert_source, read_records
from skyeye_data.sources import LayoutError, Rejected, get_source
from skyeye_data.sources.dior import DIOR_CLASSES, DiorSource, normalize_dior_class
from skyeye_data.synth import synthesize

DIOR = get_source("dior")
HBB = "Annotations/Horizontal Bounding Boxes"
OBB = "Annotations/Oriented Bounding Boxes"

BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<annotation><object><name>&lol9;</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>5</xmax><ymax>5</ymax></bndbox></object></annotation>
"""


def write_jpg(path: Path, width: int, height: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (width, height), (90, 110, 90)).save(path, format="JPEG")
    return path


def hbb_xml(objects: list[tuple[str, list[float]] | tuple[str, list[float], int]], size=(100, 100)) -> str:
    body = "".join(
        f"<object><name>{o[0]}</name><difficult>{o[2] if len(o) > 2 else 0}</difficult><bndbox>"
        f"<xmin>{o[1][0]}</xmin><ymin>{o[1][1]}</ymin><xmax>{o[1][2]}</xmax><ymax>{o[1][3]}</ymax></bndbox></object>"
        for o in objects
    )
    return f"<annotation><filename>x.jpg</filename><size><width>{size[0]}</width><height>{size[1]}</height></size>{body}</annotation>"


def make_dior(root: Path, splits: dict[str, list[str]]) -> Path:
    (root / "ImageSets/Main").mkdir(parents=True, exist_ok=True)
    for split, ids in splits.items():
        (root / "ImageSets/Main" / f"{split}.txt").write_text("".join(f"{i}\n" for i in ids))
    return root


def write_xml(root: Path, folder: str, image_id: str, text: str) -> None:
    (root / folder).mkdir(parents=True, exist_ok=True)
    (root / folder / f"{image_id}.xml").write_text(text)


def split_items(items):
    records = [i for i in items if not isinstance(i, Rejected)]
    rejected = [i for i in items if isinstance(i, Rejected) and i.level == "record"]
    parts = [i for i in items if isinstance(i, Rejected) and i.level == "part"]
    return records, rejected, parts


@pytest.mark.real_samples
def test_real_oriented_xml_and_image(real_samples, tmp_path):
    raw = make_dior(tmp_path / "dior", {"train": ["00001"]})
    (raw / OBB).mkdir(parents=True)
    shutil.copy(real_samples / "dior/00001_oriented.xml", raw / OBB / "00001.xml")
    (raw / "JPEGImages-trainval").mkdir()
    shutil.copy(real_samples / "dior/00001.jpg", raw / "JPEGImages-trainval/00001.jpg")
    (record,) = DIOR.records(raw)
    assert (record.width, record.height) == (800, 800)
    assert record.image_key == "dior:00001" and record.split == "train" and record.record_id == "dior:00001"
    assert record.image_path == "JPEGImages-trainval/00001.jpg"
    (obj,) = record.objects
    assert obj.label == "golffield" and obj.box == [133, 237, 684, 672] and not obj.difficult
    assert record.flags == ["from_oriented_box"]
    assert record.provenance.raw_file == f"{OBB}/00001.xml"


def test_horizontal_boxes_preferred_oriented_on_request(tmp_path):
    raw = make_dior(tmp_path / "dior", {"val": ["00002"]})
    write_jpg(raw / "JPEGImages-trainval/00002.jpg", 100, 100)
    write_xml(raw, HBB, "00002", hbb_xml([("ship", [10, 10, 20, 20], 1)]))
    rotated = "".join(f"<{t}>{v}</{t}>" for t, v in zip(
        ["x_left_top", "y_left_top", "x_right_top", "y_right_top", "x_right_bottom", "y_right_bottom",
         "x_left_bottom", "y_left_bottom"], [12, 8, 22, 12, 18, 22, 8, 18]))  # fmt: skip
    write_xml(raw, OBB, "00002", f"<annotation><object><name>ship</name><robndbox>{rotated}</robndbox></object></annotation>")
    (record,) = DIOR.records(raw)
    assert record.objects[0].box == [10, 10, 20, 20] and record.objects[0].difficult and record.flags == []
    (record,) = DiorSource(prefer="oriented").records(raw)
    assert record.objects[0].box == [8, 8, 22, 22] and record.flags == ["from_oriented_box"]


@pytest.mark.parametrize(
    "spelling",
    ["Expressway-Service-area", "expressway-service-area", "expresswayservicearea", "Expressway Service Area",
     "EXPRESSWAY_SERVICE_AREA"],
)  # fmt: skip
def test_class_spellings_normalised(spelling):
    assert normalize_dior_class(spelling) == "Expressway-Service-area"


def test_every_dior_class_maps_to_itself_and_unknown_is_none():
    assert len(DIOR_CLASSES) == 20
    assert [normalize_dior_class(c.lower()) for c in DIOR_CLASSES] == list(DIOR_CLASSES)
    assert normalize_dior_class("expressway-toll-station") == "Expressway-toll-station"
    assert normalize_dior_class("spaceship") is None


def test_broken_inputs_end_in_quarantine_with_reasons(tmp_path):
    raw = make_dior(tmp_path / "dior", {"train": ["00001", "00002", "00003", "00004"], "test": ["00005", "00006"]})
    for image_id in ("00001", "00002", "00003", "00004"):
        write_jpg(raw / "JPEGImages-trainval" / f"{image_id}.jpg", 100, 100)
    write_jpg(raw / "JPEGImages-test/00005.jpg", 100, 100)
    write_xml(raw, HBB, "00001", BILLION_LAUGHS)
    write_xml(raw, HBB, "00002", hbb_xml([("ship", [1, 1, 5, 5])])[:-40])  # truncated
    write_xml(raw, HBB, "00003", hbb_xml([
        ("spaceship", [1, 1, 5, 5]),  # unknown class
        ("vehicle", [90, 90, 130, 130]),  # reaches outside: clipped
        ("vehicle", [150, 150, 160, 160]),  # wholly outside
        ("ship", ["a", 1, 5, 5]),  # not a number
    ]))  # fmt: skip
    write_xml(raw, HBB, "00004", hbb_xml([("spaceship", [1, 1, 5, 5])]))  # nothing left
    write_xml(raw, HBB, "00005", hbb_xml([("ship", [1, 1, 5, 5])]))
    # 00006: listed but no annotation; 00007: annotated but in no split
    write_xml(raw, HBB, "00007", hbb_xml([("ship", [1, 1, 5, 5])]))
    records, rejected, parts = split_items(list(DIOR.records(raw)))
    assert [r.record_id for r in records] == ["dior:00003", "dior:00005"]
    assert records[0].objects[0].box == [90, 90, 100, 100] and records[0].objects[0].clipped
    assert records[0].flags == ["box_clipped"]
    reasons = {r.raw_file.rsplit("/", 1)[-1]: r.reason for r in rejected}
    assert reasons["00001.xml"].startswith("unsafe XML refused (EntitiesForbidden")
    assert reasons["00002.xml"].startswith("XML cannot be parsed")
    assert "unknown class 'spaceship'" in reasons["00004.xml"]
    assert reasons["test.txt"] == "no annotation file for image id 00006"
    assert reasons["00007.xml"].startswith("image id 00007 is in no split file")
    part_reasons = sorted(p.reason for p in parts)
    assert len(parts) == 4  # three in 00003, one in 00004
    assert any("unknown class 'spaceship'" in r for r in part_reasons)
    assert any("wholly outside the 100x100 image" in r for r in part_reasons)
    assert any("<xmin> is not a number: 'a'" in r for r in part_reasons)
    # counting: 7 image ids met (6 listed + 1 unlisted annotation) = 2 written + 5 quarantined
    assert len(records) + len(rejected) == 7


def test_id_in_two_splits_and_size_mismatch(tmp_path):
    raw = make_dior(tmp_path / "dior", {"train": ["00001", "00002"], "val": ["00001"]})
    write_jpg(raw / "JPEGImages-trainval/00001.jpg", 100, 100)
    write_jpg(raw / "JPEGImages-trainval/00002.jpg", 50, 40)
    write_xml(raw, HBB, "00001", hbb_xml([("ship", [1, 1, 5, 5])]))
    write_xml(raw, HBB, "00002", hbb_xml([("ship", [1, 1, 5, 5])], size=(800, 800)))
    records, rejected, _ = split_items(list(DIOR.records(raw)))
    assert "listed in several split files (train, val)" in rejected[0].reason
    assert records[0].record_id == "dior:00002" and (records[0].width, records[0].height) == (50, 40)
    assert "size_mismatch" in records[0].flags


def test_layout_error_names_expected_folders(tmp_path):
    with pytest.raises(LayoutError, match="Horizontal Bounding Boxes.*ImageSets/Main"):
        DIOR.check_layout(tmp_path)


def test_synth_mini_converts_end_to_end(tmp_path):
    written = synthesize("dior", tmp_path / "dior", "mini", random.Random(0))
    summary = convert_source("dior", tmp_path / "dior", tmp_path / "out")
    assert (summary.written, summary.quarantined, summary.parts_quarantined) == (written, 0, 0)
    assert dict(summary.by_split) == {"train": 3, "val": 1, "test": 2}
    records = list(read_records(summary.records_path))
    assert all(r.image_path.startswith("JPEGImages-test/") == (r.split == "test") for r in records)
    assert "Expressway-Service-area" in {o.label for r in records for o in r.objects}
