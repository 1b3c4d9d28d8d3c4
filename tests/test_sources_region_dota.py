"""DOTA converter: real label files (CRLF, header, 8 coordinates), clipping, broken lines, counting."""

from __future__ import annotations

import hashlib
import math
import random
import shutil
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image

from skyeye_data.convert import convert_source, read_records
from skyeye_data.sources import LayoutError, Rejected, get_source
from skyeye_data.sources.dota import DOTA_CLASSES, parse_object_line, LineProblem
from skyeye_data.synth import synthesize

DOTA = get_source("dota")


def write_png(path: Path, width: int, height: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("1", (width, height)).save(path, format="PNG")  # 1-bit: a 4000-px side stays small
    return path


def both_splits(label_folder: Path) -> None:
    """DOTA publishes train and val labels: a test folder holds both splits' folders (one may be empty)."""
    split_dir = label_folder.parent
    for split in ("train", "val"):
        (split_dir.parent / split / label_folder.name).mkdir(parents=True, exist_ok=True)
        (split_dir.parent / split / "images").mkdir(parents=True, exist_ok=True)


def copy_into(source: Path, folder: Path) -> Path:
    both_splits(folder)
    return Path(shutil.copy(source, folder))


def write_label(path: Path, lines: list[str], header: bool = True) -> Path:
    both_splits(path.parent)
    head = ["imagesource:GoogleEarth", "gsd:0.146343590398"] if header else []
    path.write_bytes("".join(f"{line}\r\n" for line in head + lines).encode())
    return path


def split_items(items):
    records = [i for i in items if not isinstance(i, Rejected)]
    rejected = [i for i in items if isinstance(i, Rejected) and i.level == "record"]
    parts = [i for i in items if isinstance(i, Rejected) and i.level == "part"]
    return records, rejected, parts


def real_label_counts(path: Path) -> tuple[Counter, Counter]:
    """Class and (class, difficult) counts read with plain string code, independent of the converter."""
    classes, difficult = Counter(), Counter()
    for line in path.read_text().splitlines():
        fields = line.split()
        if len(fields) == 10:
            classes[fields[8]] += 1
            difficult[(fields[8], fields[9])] += 1
    return classes, difficult


@pytest.mark.real_samples
def test_real_p1888_with_its_real_image(real_samples, tmp_path):
    raw = tmp_path / "dota"
    image = copy_into(real_samples / "dota/images/P1888.png", raw / "train/images")
    copy_into(real_samples / "dota/labelTxt/P1888.txt", raw / "train/labelTxt")
    records, rejected, parts = split_items(list(DOTA.records(raw)))
    assert not rejected and not parts
    (record,) = records
    assert (record.width, record.height) == (712, 557)  # from the PNG header
    assert record.image_key == "dota:P1888" and record.record_id == "dota:train/P1888" and record.split == "train"
    assert record.image_sha256 == hashlib.sha256(image.read_bytes()).hexdigest()
    assert Counter(o.label for o in record.objects) == {"large-vehicle": 50, "small-vehicle": 14}
    assert not any(o.difficult or o.clipped for o in record.objects)
    # first line: 674 375 683 375 684 394 675 395 small-vehicle 0
    assert record.objects[0].box == [674, 375, 684, 395] and record.objects[0].label == "small-vehicle"
    assert record.provenance.raw_file == "train/labelTxt/P1888.txt"


@pytest.mark.real_samples
def test_all_real_label_files_class_and_difficult_counts(real_samples, tmp_path):
    raw = tmp_path / "dota"
    for label in sorted((real_samples / "dota/labelTxt").glob("*.txt")):
        copy_into(label, raw / "val/labelTxt")
        coords = [float(v) for line in label.read_text().splitlines()[2:] for v in line.split()[:8]]
        side = math.ceil(max(coords)) + 1  # the real images are not here: one large enough for every box
        write_png(raw / "val/images" / f"{label.stem}.png", side, side)
    records, rejected, parts = split_items(list(DOTA.records(raw)))
    assert not rejected and not parts and len(records) == 6
    for record in records:
        expected_classes, expected_difficult = real_label_counts(real_samples / "dota/labelTxt" / f"{record.image_key[5:]}.txt")
        assert Counter(o.label for o in record.objects) == expected_classes
        assert Counter((o.label, str(int(o.difficult))) for o in record.objects) == expected_difficult
        assert record.split == "val"
    by_name = {r.image_key: r for r in records}
    # values read off the real files: P1234 holds 44 difficult storage tanks, P2709 17
    assert sum(o.difficult for o in by_name["dota:P1234"].objects) == 44
    assert sum(o.difficult for o in by_name["dota:P2709"].objects) == 17
    assert Counter(o.label for o in by_name["dota:P1088"].objects)["plane"] == 22


@pytest.mark.real_samples
def test_real_labels_on_a_smaller_image_are_clipped_never_out_of_bounds(real_samples, tmp_path):
    raw = tmp_path / "dota"
    copy_into(real_samples / "dota/labelTxt/P1888.txt", raw / "train/labelTxt")
    write_png(raw / "train/images/P1888.png", 680, 557)
    records, rejected, parts = split_items(list(DOTA.records(raw)))
    (record,) = records
    assert "box_clipped" in record.flags
    assert all(0 <= o.box[0] < o.box[2] <= 680 and 0 <= o.box[1] < o.box[3] <= 557 for o in record.objects)
    assert sum(o.clipped for o in record.objects) == 3
    # 3 cars straddle x=680 (clipped); 5 lie wholly right of it (quarantined, each with its line)
    assert len(parts) == 5 and all("wholly outside the 680x557 image" in p.reason and p.raw_line > 2 for p in parts)
    assert len(record.objects) + len(parts) == 64


def test_broken_lines_are_quarantined_with_line_and_reason(tmp_path):
    raw = tmp_path / "dota"
    write_png(raw / "train/images/P0001.png", 100, 100)
    write_label(
        raw / "train/labelTxt/P0001.txt",
        [
            "10 10 30 10 30 30 10 30 plane 0",  # line 3: fine
            "90 10 120 10 120 20 90 20 ship 1",  # line 4: reaches outside → clipped
            "150 150 160 150 160 160 150 160 ship 0",  # line 5: wholly outside
            "1 2 3 4 5 6 7 plane 0",  # line 6: 7 numbers
            "1 2 3 4 5 6 7 x8 plane 0",  # line 7: non-numeric coordinate
            "10 10 30 10 30 30 10 30 spaceship 0",  # line 8: unknown class
            "10 10 30 10 30 30 10 30 plane 2",  # line 9: bad difficult flag
            "10 10 10 10 10 10 10 10 plane 0",  # line 10: no area
        ],
    )
    records, rejected, parts = split_items(list(DOTA.records(raw)))
    (record,) = records
    assert not rejected
    assert [o.box for o in record.objects] == [[10, 10, 30, 30], [90, 10, 100, 20]]
    assert [o.clipped for o in record.objects] == [False, True] and record.objects[1].difficult
    assert record.flags == ["box_clipped"]
    reasons = {p.raw_line: p.reason for p in parts}
    assert set(reasons) == {5, 6, 7, 8, 9, 10}
    assert "wholly outside the 100x100 image" in reasons[5]
    assert "8 coordinates, found 7 numbers" in reasons[6]
    assert "found 7 numbers" in reasons[7]
    assert "unknown class 'spaceship'" in reasons[8]
    assert "difficult flag must be 0 or 1" in reasons[9]
    assert "no area" in reasons[10]
    assert all(p.raw_file == "train/labelTxt/P0001.txt" and p.excerpt for p in parts)


def test_file_level_rejections_and_counting(tmp_path):
    raw = tmp_path / "dota"
    write_png(raw / "train/images/P0001.png", 100, 100)
    write_label(raw / "train/labelTxt/P0001.txt", ["10 10 30 10 30 30 10 30 plane 0"])
    write_png(raw / "train/images/P0002.png", 100, 100)
    write_label(raw / "train/labelTxt/P0002.txt", ["1 2 3 4 5 6 7 plane 0"])  # nothing usable
    write_label(raw / "val/labelTxt/P0003.txt", ["10 10 30 10 30 30 10 30 plane 0"])  # image missing
    write_png(raw / "val/images/P0004.png", 100, 100)
    write_label(raw / "val/labelTxt/P0004.txt", [])  # header only
    (raw / "val/images/P0005.png").write_bytes(b"not a png")
    write_label(raw / "val/labelTxt/P0005.txt", ["10 10 30 10 30 30 10 30 plane 0"])  # unreadable image
    write_png(raw / "test/images/P0009.png", 100, 100)  # test: images only, no record
    summary = convert_source("dota", raw, tmp_path / "out")
    assert summary.records_in == 5 == summary.written + summary.quarantined
    assert (summary.written, summary.quarantined, summary.parts_quarantined) == (1, 4, 1)
    lines = (tmp_path / "out/dota.quarantine.jsonl").read_text().splitlines()
    assert len(lines) == 5
    text = "\n".join(lines)
    assert "no usable object in the label file (1 unusable object lines)" in text
    assert "image file not found" in text and "no object lines" in text and "image cannot be read" in text


def test_split_patch_names_float_coordinates_no_header(tmp_path):
    raw = tmp_path / "dota"
    write_png(raw / "train/images/P0004__1__0___0.png", 1024, 1024)
    write_label(
        raw / "train/labelTxt/P0004__1__0___0.txt",
        ["1012.5 100.25 1030.0 100.25 1030.0 140.75 1012.5 140.75 small-vehicle 0"],
        header=False,
    )
    (record,) = DOTA.records(raw)
    assert record.image_key == "dota:P0004__1__0___0"
    assert record.objects[0].box == [1012.5, 100.25, 1024.0, 140.75] and record.objects[0].clipped


def test_parse_object_line_accepts_missing_difficult_like_the_devkit():
    coords, label, difficult = parse_object_line("1 2 3 4 5 6 7 8 container-crane")
    assert coords == [1, 2, 3, 4, 5, 6, 7, 8] and label == "container-crane" and difficult is False
    with pytest.raises(LineProblem, match="extra fields"):
        parse_object_line("1 2 3 4 5 6 7 8 plane 0 extra")
    assert len(DOTA_CLASSES) == 16


def test_layout_error_names_what_was_expected(tmp_path):
    (tmp_path / "images").mkdir()
    with pytest.raises(LayoutError, match=r"no DOTA label folder.*expected train/labelTxt-v1.0/labelTxt/.*train/labelTxt/"):
        DOTA.check_layout(tmp_path)


def test_synth_mini_converts_end_to_end(tmp_path):
    written = synthesize("dota", tmp_path / "dota", "mini", random.Random(0))
    labels = list((tmp_path / "dota").glob("*/labelTxt-v1.0/labelTxt/*.txt"))
    assert written == len(labels) and (tmp_path / "dota/test/images").is_dir()
    assert all(p.read_bytes().endswith(b"\r\n") for p in labels)
    summary = convert_source("dota", tmp_path / "dota", tmp_path / "out")
    assert (summary.written, summary.quarantined, summary.parts_quarantined) == (written, 0, 0)
    records = list(read_records(summary.records_path))
    assert {r.split for r in records} == {"train", "val"}
    assert len({r.image_sha256 for r in records}) == len(records)
    assert any(r.image_key == "dota:P0000__1__0___0" for r in records)


VARIANTS = {
    "archive v1.0": "{split}/labelTxt-v1.0/labelTxt",
    "archive v1.0 horizontal": "{split}/labelTxt-v1.0/{Split}_Task2_gt/{split}set_reclabelTxt",
    "archive v1.5": "{split}/labelTxt-v1.5/DOTA-v1.5_{split}",
    "archive v1.5 horizontal": "{split}/labelTxt-v1.5/DOTA-v1.5_{split}_hbb",
    "flattened": "{split}/labelTxt",
    "torchgeo v1.0": "{split}/annotations/version1.0",
    "torchgeo v1.5": "{split}/annotations/version1.5",
}


def dota_variant(raw: Path, pattern: str, real_samples: Path) -> None:
    """The real labels (P1888 in train, P0770 in val) in one published folder variant, images of their size."""
    for split, stem in (("train", "P1888"), ("val", "P0770")):
        folder = raw / pattern.format(split=split, Split=split.capitalize())
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(real_samples / "dota" / "labelTxt" / f"{stem}.txt", folder)
        write_png(raw / split / "images" / f"{stem}.png", 4000, 4000)


@pytest.mark.real_samples
@pytest.mark.parametrize("variant", VARIANTS)
def test_every_published_label_folder_variant_converts(real_samples, tmp_path, variant):
    raw = tmp_path / "dota"
    dota_variant(raw, VARIANTS[variant], real_samples)
    found = DOTA.find_layout(raw)
    assert found.layout.name == variant and found.layout.evidence
    records, rejected, _ = split_items(list(DOTA.records(raw)))
    assert rejected == [] and sorted(r.record_id for r in records) == ["dota:train/P1888", "dota:val/P0770"]
    assert records[0].provenance.raw_file.startswith(VARIANTS[variant].format(split="train", Split="Train"))


@pytest.mark.real_samples
def test_two_versions_are_never_mixed_the_recipe_picks_one(real_samples, tmp_path):
    raw = tmp_path / "dota"
    dota_variant(raw, VARIANTS["archive v1.0"], real_samples)
    dota_variant(raw, VARIANTS["archive v1.5"], real_samples)
    with pytest.raises(LayoutError, match=r'several versions \(1.0, 1.5\).*version: "1.0"'):
        DOTA.find_layout(raw)
    v15 = DOTA.configured(version="1.5")
    records = [r for r in v15.records(raw) if not isinstance(r, Rejected)]
    assert {r.provenance.raw_file.split("/")[1] for r in records} == {"labelTxt-v1.5"} and len(records) == 2
    with pytest.raises(ValueError, match="version must be one of"):
        DOTA.configured(version="2.0")


@pytest.mark.real_samples
def test_a_missing_val_label_folder_is_an_error_not_a_skip(real_samples, tmp_path):
    raw = tmp_path / "dota"
    dota_variant(raw, VARIANTS["archive v1.0"], real_samples)
    shutil.rmtree(raw / "val" / "labelTxt-v1.0")
    with pytest.raises(LayoutError, match=r"no val labels of the same version.*val/labelTxt-v1.0/labelTxt/ exists"):
        DOTA.find_layout(raw)
