"""Caption converters on deliberately broken inputs: every bad record is quarantined with its
place and a reason a person understands, and records in = written + quarantined."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from skyeye_data.convert import convert_source, read_records
from skyeye_data.sources import LayoutError, get_source
from skyeye_data.synth import synthesize


def synth_mini(tmp_path: Path, name: str) -> Path:
    raw_dir = tmp_path / name
    synthesize(name, raw_dir, "mini", random.Random(0))
    return raw_dir


def annotation(raw_dir: Path, name: str) -> Path:
    return raw_dir / get_source(name).find_layout(raw_dir).paths["annotations"]


def load(path: Path):
    return json.loads(path.read_text(encoding="utf-8"))


def save(path: Path, data) -> None:
    path.write_text(json.dumps(data), encoding="utf-8")


def convert(tmp_path: Path, name: str, raw_dir: Path):
    """(summary, records by id, record-level quarantine lines, part-level quarantine lines)."""
    out = tmp_path / "out"
    summary = convert_source(name, raw_dir, out)
    lines = [json.loads(line) for line in (out / f"{name}.quarantine.jsonl").read_text(encoding="utf-8").splitlines()]
    records = {r.record_id: r for r in read_records(out / f"{name}.parquet")}
    record_lines = [q for q in lines if q["level"] == "record"]
    assert summary.quarantined == len(record_lines)
    assert summary.written == len(records)
    return summary, records, record_lines, [q for q in lines if q["level"] == "part"]


@pytest.fixture
def ucm(tmp_path):
    """A mini UCM-Captions folder and its parsed dataset.json."""
    raw_dir = synth_mini(tmp_path, "ucm_captions")
    return raw_dir, load(raw_dir / "dataset.json")


def test_truncated_json_is_one_visible_rejection(tmp_path, ucm):
    raw_dir, _ = ucm
    path = raw_dir / "dataset.json"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])

    summary, records, rejected, _ = convert(tmp_path, "ucm_captions", raw_dir)

    assert summary.written == 0 and summary.quarantined == 1 and not records
    reason = rejected[0]["reason"]
    assert reason.startswith("invalid JSON at line ")
    assert "truncated download?" in reason and "none of its records can be read" in reason
    assert rejected[0]["raw_file"] == "dataset.json" and rejected[0]["raw_line"] >= 1


def test_json_syntax_error_names_line_and_column(tmp_path, ucm):
    raw_dir, _ = ucm
    path = raw_dir / "dataset.json"
    lines = path.read_text(encoding="utf-8").splitlines()
    lines[3] = lines[3].replace('"imgid": ', '"imgid" ', 1)  # drop one colon on line 4
    path.write_text("\n".join(lines), encoding="utf-8")

    _, _, rejected, _ = convert(tmp_path, "ucm_captions", raw_dir)

    assert rejected[0]["raw_line"] == 4
    assert rejected[0]["reason"].startswith("invalid JSON at line 4 col ")
    assert "truncated" not in rejected[0]["reason"]


def test_missing_and_unreadable_images(tmp_path, ucm):
    raw_dir, data = ucm
    first, second = data["images"][0]["filename"], data["images"][1]["filename"]
    (raw_dir / "imgs" / first).unlink()
    (raw_dir / "imgs" / second).write_bytes(b"this is not a TIFF")

    summary, records, rejected, _ = convert(tmp_path, "ucm_captions", raw_dir)

    assert summary.records_in == len(data["images"])
    assert summary.written == len(data["images"]) - 2
    by_index = {q["raw_index"]: q["reason"] for q in rejected}
    assert by_index[0] == f"image file not found: {first} (expected at imgs/{first})"
    assert by_index[1].startswith("image cannot be read (")


def test_bad_encoding_quarantines_only_that_image(tmp_path, ucm):
    raw_dir, data = ucm
    path = raw_dir / "dataset.json"
    data["images"][2]["sentences"][1]["raw"] = "a CAFE_MARKER on the street ."
    raw = json.dumps(data, ensure_ascii=False).encode("utf-8")
    path.write_bytes(raw.replace(b"CAFE_MARKER", b"caf\xe9"))  # Latin-1 e-acute, not UTF-8

    summary, records, rejected, _ = convert(tmp_path, "ucm_captions", raw_dir)

    assert summary.written == len(data["images"]) - 1
    assert [q["raw_index"] for q in rejected] == [2]
    reason = rejected[0]["reason"]
    assert reason.startswith("bad encoding: sentence 1 ")
    assert "byte 0xE9, which is not UTF-8" in reason and "caf\\xe9" in reason


def test_bad_encoding_in_filename(tmp_path, ucm):
    raw_dir, data = ucm
    path = raw_dir / "dataset.json"
    data["images"][0]["filename"] = "NAME_MARKER.tif"
    path.write_bytes(json.dumps(data).encode().replace(b"NAME_MARKER", b"\xff\xfe1"))

    _, _, rejected, _ = convert(tmp_path, "ucm_captions", raw_dir)

    assert rejected[0]["raw_index"] == 0
    assert rejected[0]["reason"].startswith("bad encoding: filename ") and "0xFF" in rejected[0]["reason"]


def test_utf8_byte_order_mark_is_accepted(tmp_path, ucm):
    raw_dir, data = ucm
    path = raw_dir / "dataset.json"
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    summary, _, _, _ = convert(tmp_path, "ucm_captions", raw_dir)
    assert summary.written == len(data["images"]) and summary.quarantined == 0


def test_duplicate_imgid_and_filename_keep_the_first(tmp_path, ucm):
    raw_dir, data = ucm
    images = data["images"]
    same_id = dict(images[0], filename=images[1]["filename"].replace(".tif", "0.tif"))
    same_name = dict(images[1], imgid=999)
    (raw_dir / "imgs" / same_id["filename"]).write_bytes((raw_dir / "imgs" / images[0]["filename"]).read_bytes())
    images += [same_id, same_name]
    save(raw_dir / "dataset.json", data)

    summary, records, rejected, _ = convert(tmp_path, "ucm_captions", raw_dir)

    assert summary.records_in == len(images) and summary.written == len(images) - 2
    reasons = {q["raw_index"]: q["reason"] for q in rejected}
    n = len(images)
    assert reasons[n - 2].startswith(f"duplicate imgid {images[0]['imgid']} (first at index 0)")
    assert reasons[n - 1].startswith(f"duplicate filename '{images[1]['filename']}' (first at index 1)")
    assert f"ucm_captions:{Path(images[1]['filename']).stem}" in records


def test_same_stem_other_extension_is_a_duplicate(tmp_path, ucm):
    """'1.tif' and '1.jpg' would share one record id and image key: the second is left out."""
    raw_dir, data = ucm
    images = data["images"]
    twin = dict(images[0], imgid=500, filename=images[0]["filename"].replace(".tif", ".jpg"))
    images.append(twin)
    save(raw_dir / "dataset.json", data)

    _, _, rejected, _ = convert(tmp_path, "ucm_captions", raw_dir)

    assert [q["reason"] for q in rejected] == [
        f"duplicate filename '{twin['filename']}' (same stem as '{images[0]['filename']}') (first at index 0); "
        "second occurrence left out"
    ]


def test_empty_captions_dropped_then_image_quarantined(tmp_path, ucm):
    raw_dir, data = ucm
    images = data["images"]
    images[0]["sentences"][2]["raw"] = "   "
    images[0]["sentences"][4]["raw"] = " ."  # punctuation only: empty too
    for sentence in images[1]["sentences"]:
        sentence["raw"] = ""
    save(raw_dir / "dataset.json", data)

    summary, records, rejected, parts = convert(tmp_path, "ucm_captions", raw_dir)

    kept = records[f"ucm_captions:{Path(images[0]['filename']).stem}"]
    assert len(kept.captions) == 3 and kept.flags == ["empty_caption_dropped"]
    assert sorted(p["reason"].split(": ", 1)[1] for p in parts) == [
        "sentence 2 is empty; caption dropped, image kept",
        "sentence 4 is empty; caption dropped, image kept",
    ]
    assert summary.quarantined == 1
    assert rejected[0]["raw_index"] == 1
    assert rejected[0]["reason"].startswith("all 5 captions are empty or missing (sentence 0 is empty;")


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda e: e.pop("split"), "entry is missing field(s) split"),
        (lambda e: (e.pop("filename"), e.pop("sentences")), "entry is missing field(s) filename, sentences"),
        (lambda e: e.update(split="restval"), "unknown split 'restval' (expected one of train, val, test)"),
        (lambda e: e.update(filename="../1.tif"), "filename '../1.tif' is not a plain file name"),
        (lambda e: e.update(sentences="a plane ."), "'sentences' is str, not a list"),
        (lambda e: e.update(imgid=None), "'imgid' must be a number or string, got null"),
    ],
)
def test_malformed_entries(tmp_path, ucm, change, expected):
    raw_dir, data = ucm
    change(data["images"][3])
    save(raw_dir / "dataset.json", data)

    summary, _, rejected, _ = convert(tmp_path, "ucm_captions", raw_dir)

    assert summary.records_in == len(data["images"])
    assert [(q["raw_index"], q["reason"]) for q in rejected] == [(3, expected)]


def test_entry_that_is_not_an_object(tmp_path, ucm):
    raw_dir, data = ucm
    data["images"].append("7.tif")
    save(raw_dir / "dataset.json", data)
    _, _, rejected, _ = convert(tmp_path, "ucm_captions", raw_dir)
    assert rejected[0]["reason"] == "image entry is str, not an object"


def test_valid_json_of_the_wrong_shape(tmp_path, ucm):
    raw_dir, data = ucm
    save(raw_dir / "dataset.json", data["images"])  # a bare list, no {"images": ...}
    summary, _, rejected, _ = convert(tmp_path, "ucm_captions", raw_dir)
    assert summary.quarantined == 1 and summary.written == 0
    assert rejected[0]["reason"].startswith("not a Karpathy caption file: expected an object with an 'images' list")


@pytest.mark.parametrize("name", ["ucm_captions", "sydney_captions", "rsicd", "rsitmd", "nwpu_captions"])
def test_layout_error_names_the_expected_files(tmp_path, name):
    raw_dir = synth_mini(tmp_path, name)
    source = get_source(name)
    found = source.find_layout(raw_dir)
    (raw_dir / found.paths["annotations"]).unlink()
    expected = source.layouts[0].files.split(" + ")[0]
    with pytest.raises(LayoutError, match=f"not {source.title} as published .*put {source.annotation_file} at {expected}"):
        convert_source(name, raw_dir, tmp_path / "out")
    assert not (tmp_path / "out" / f"{name}.parquet").exists()


# ---------------------------------------------------------------------------------------------
# NWPU-Captions: its own flat layout
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def nwpu(tmp_path):
    raw_dir = synth_mini(tmp_path, "nwpu_captions")
    return raw_dir, load(raw_dir / "dataset_nwpu.json")


def test_nwpu_missing_and_empty_caption_fields(tmp_path, nwpu):
    raw_dir, data = nwpu
    classes = list(data)
    first = data[classes[0]][0]
    del first["raw_3"]
    first["raw_1"] = ""
    second = data[classes[1]][0]
    for field in ("raw", "raw_1", "raw_2", "raw_3", "raw_4"):
        second[field] = " "
    save(raw_dir / "dataset_nwpu.json", data)

    summary, records, rejected, parts = convert(tmp_path, "nwpu_captions", raw_dir)

    kept = records[f"nwpu_captions:{Path(first['filename']).stem}"]
    assert len(kept.captions) == 3
    assert kept.flags == ["empty_caption_dropped", "malformed_caption_dropped"]
    assert {p["reason"] for p in parts} == {
        f"class '{classes[0]}': {first['filename']}: raw_1 is empty; caption dropped, image kept",
        f"class '{classes[0]}': {first['filename']}: raw_3 is missing or not text (found null); caption dropped, image kept",
    }
    assert [q["raw_index"] for q in rejected] == [1]
    assert rejected[0]["reason"].startswith(f"class '{classes[1]}': all 5 captions are empty or missing")
    assert summary.records_in == sum(len(v) for v in data.values())


def test_nwpu_class_that_is_not_a_list_and_duplicates(tmp_path, nwpu):
    raw_dir, data = nwpu
    classes = list(data)
    copy = dict(data[classes[0]][0])
    data[classes[1]].append(copy)  # same imgid and filename under another class
    data["broken_class"] = {"filename": "x.jpg"}
    save(raw_dir / "dataset_nwpu.json", data)

    summary, _, rejected, _ = convert(tmp_path, "nwpu_captions", raw_dir)

    reasons = [q["reason"] for q in rejected]
    assert reasons[0] == (
        f"class '{classes[1]}': duplicate imgid {copy['imgid']} (first at index 0); second occurrence left out"
    )
    assert reasons[1].startswith("class 'broken_class': expected a list of images under a plain folder name")
    assert summary.records_in == sum(len(v) for v in data.values() if isinstance(v, list)) + 1


def test_nwpu_missing_image_names_the_class_folder(tmp_path, nwpu):
    raw_dir, data = nwpu
    cls = list(data)[2]
    entry = data[cls][0]
    (raw_dir / "NWPU_images" / cls / entry["filename"]).unlink()
    _, _, rejected, _ = convert(tmp_path, "nwpu_captions", raw_dir)
    assert rejected[0]["reason"] == (
        f"class '{cls}': image file not found: {entry['filename']} (expected at NWPU_images/{cls}/{entry['filename']})"
    )


def test_nwpu_karpathy_file_is_refused_with_reason(tmp_path, nwpu):
    raw_dir, _ = nwpu
    save(raw_dir / "dataset_nwpu.json", {"images": []})
    summary, _, rejected, _ = convert(tmp_path, "nwpu_captions", raw_dir)
    assert summary.quarantined == 1
    assert rejected[0]["reason"].startswith("not an NWPU-Captions file: expected an object keyed by class name")
