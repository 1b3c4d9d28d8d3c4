"""No broken image reaches training, no bad value passes without a quarantine line (issue 18, 11-13).

The invariants of ``conftest.Case.build`` decode every image of the images table in full, so each
case here also proves that no undecodable image was stored.
"""

from __future__ import annotations

import io
import struct
import zlib

import pytest
from PIL import Image

pytestmark = pytest.mark.timeout(600)


def _replace_once(path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path.name}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_bytes(width: int, height: int, rows: int, colour: int = 2, depth: int = 8) -> bytes:
    """A real PNG: ``rows`` scanlines of data under a ``width`` x ``height`` header (streamed zlib)."""
    line = b"\x00" + b"\x40" * ((width * depth * {0: 1, 2: 3}[colour] + 7) // 8)
    deflate = zlib.compressobj(1)
    data = b"".join(deflate.compress(line) for _ in range(rows)) + deflate.flush()
    header = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", data) + _chunk(b"IEND", b"")


def _truncate(path, keep: float) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def test_truncated_jpeg_body_never_enters_the_images_table(case):
    _truncate(case.find("dior", "00001.jpg"), 0.5)
    outcome = case.build()
    entry = outcome.expect_quarantined("dior", "00001.xml", "image cannot be decoded")
    assert entry["stage"] in ("images", "build", "media")


def test_truncated_png_body_never_enters_the_images_table(case):
    _truncate(case.find("dota", "P0000.png"), 0.6)
    outcome = case.build()
    outcome.expect_quarantined("dota", "P0000.txt", "image")
    assert not [e for e in outcome.entries("dota", "P0000.txt") if "P0000__" in e.get("raw_file", "")]


def test_truncated_tiff_body_never_enters_the_images_table(case):
    _truncate(case.find("ucm_captions", "1.tif"), 0.5)
    outcome = case.build()
    outcome.expect_quarantined("ucm_captions", "dataset.json", "image cannot be decoded")


def test_jpeg_with_garbage_inside_is_quarantined_or_decodes_in_full(case):
    """libjpeg repairs some damage itself; whatever is stored must decode (checked on every build)."""
    path = case.find("rsicd", "airport_1.jpg")
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 64] = b"\xff\xd9" * 32  # end-of-image markers inside the entropy-coded body
    path.write_bytes(bytes(data))
    outcome = case.build()
    assert outcome.rc == 0


def test_png_header_40000_square_with_ten_rows_is_refused_by_the_pixel_cap(case):
    case.find("dota", "P0001.png").write_bytes(png_bytes(40000, 40000, rows=10))
    outcome = case.build()
    outcome.expect_quarantined("dota", "P0001.txt", "over the cap of 484,000,000")


def test_png_with_fewer_rows_than_its_header_is_refused(case):
    case.find("dota", "P0001.png").write_bytes(png_bytes(1000, 1000, rows=10))
    outcome = case.build()
    outcome.expect_quarantined("dota", "P0001.txt", "PNG image data is truncated")


def test_valid_30000_square_png_is_refused_before_any_decode(case):
    case.find("dota", "P0002.png").write_bytes(png_bytes(30000, 30000, rows=30000, colour=0, depth=1))
    outcome = case.build()
    outcome.expect_quarantined("dota", "P0002.txt", "30000x30000 = 900,000,000 pixels, over the cap")


def test_jpeg_renamed_mp4_is_not_a_video(case):
    video = case.find("capera", "NonEvent_002.mp4")
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), "blue").save(buffer, format="JPEG")
    video.write_bytes(buffer.getvalue())
    outcome = case.build()
    outcome.expect_quarantined("capera", "", "still image")


def test_missing_and_zero_byte_images_are_quarantined(case):
    """Held before."""
    case.find("sydney_captions", "1.tif").unlink()
    case.find("sydney_captions", "2.tif").write_bytes(b"")
    outcome = case.build()
    outcome.expect_quarantined("sydney_captions", "dataset.json", "image file not found: 1.tif")
    outcome.expect_quarantined("sydney_captions", "dataset.json", "image cannot be read")


def test_truncated_parent_caption_file_keeps_rsivqa_questions_out_of_train(case):
    _truncate(case.find("ucm_captions", "dataset.json"), 0.5)
    outcome = case.build()
    ucm = [r for r in outcome.records("rsivqa") if r["subset"] == "UCM"]
    assert all(r["split"] != "train" for r in ucm)
    entry = outcome.expect_quarantined("rsivqa", "UCM/", "cannot be read")
    assert "dataset.json" in entry["reason"] and "not put in train" in entry["reason"]


def test_truncated_dior_rsvg_xml_keeps_the_numbering_of_later_objects(case, clean_build):
    xml = case.find("dior_rsvg", "00002.xml")
    text = xml.read_text()
    xml.write_text(text[: text.rindex("<description>")])  # cut inside the last object: the tag count holds
    outcome = case.build()
    outcome.expect_quarantined("dior_rsvg", "00002.xml", "XML cannot be parsed")
    later = {r["record_id"]: (r["split"], r["expression"]) for r in outcome.records("dior_rsvg") if r["provenance"]["raw_file"] > "Annotations/00002.xml"}
    before = {r["record_id"]: (r["split"], r["expression"]) for r in clean_build.records("dior_rsvg") if r["provenance"]["raw_file"] > "Annotations/00002.xml"}
    assert later == before and later


def test_dior_rsvg_xml_cut_before_an_object_fails_closed(case):
    xml = case.find("dior_rsvg", "00002.xml")
    text = xml.read_text()
    assert text.count("<object>") >= 2
    xml.write_text(text[: text.index("<object>", text.index("<object>") + 1)])  # the second object is gone
    outcome = case.build()
    outcome.expect_quarantined("dior_rsvg", "00002.xml", "XML cannot be parsed")
    later = [r for r in outcome.records("dior_rsvg") if r["provenance"]["raw_file"] > "Annotations/00002.xml"]
    assert later == []  # their global indices can no longer be known: none is put in any split
    outcome.expect_quarantined("dior_rsvg", "Annotations/0000", "numbering")


def test_empty_rsivqa_text_file_gets_a_quarantine_line(case):
    case.find("rsivqa", "sydney_vqa.txt").write_bytes(b"")
    outcome = case.build()
    outcome.expect_quarantined("rsivqa", "sydney_vqa.txt", "holds no triplet")


def test_rsvg_file_with_a_byte_order_mark_is_read(case, clean_build):
    case.rsvg_as_json()
    path = case.src("rsvg") / "rsvg_train.json"
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    outcome = case.build()
    assert outcome.rc == 0
    assert outcome.source("rsvg")["compiled"] == clean_build.source("rsvg")["compiled"] > 0
    assert not outcome.entries("rsvg", "rsvg_train.json")


RSVG_EDITS = [  # (what, text in rsvg_train.json, replaced by, reason expected)
    ("inverted box", "[44, 1, 170, 74]", "[170, 74, 44, 1]", "is inverted (x2 < x1 or y2 < y1)"),
    ("1e308 coordinate", "[44, 1, 170, 74]", "[44, 1, 1e308, 74]", "far outside the"),
    ("NUL in image name", '"00001.jpg"', '"000\\u00001.jpg"', "holds a NUL character"),
    ("image name over 255 bytes", '"00001.jpg"', '"' + "c" * 300 + '.jpg"', "file names hold at most 255"),
]


@pytest.mark.parametrize(("what", "old", "new", "reason"), RSVG_EDITS, ids=[e[0] for e in RSVG_EDITS])
def test_broken_rsvg_entry_is_quarantined_with_its_reason(case, what, old, new, reason):
    _replace_once(case.rsvg_as_json() / "rsvg_train.json", old, new)
    outcome = case.build()
    entry = outcome.expect_quarantined("rsvg", "rsvg_train.json", reason)
    assert entry["raw_index"] == 0 and entry["level"] == "record", what


def test_control_characters_are_stripped_and_flagged(case):
    _replace_once(case.find("ucm_captions", "dataset.json"), '"raw": "', '"raw": "\\u0000\\u001b[31m\\u202e')
    outcome = case.build()
    flagged = [r for r in outcome.records("ucm_captions") if "text_control_stripped" in r["flags"]]
    assert len(flagged) == 1
    assert all("\x00" not in c and "\x1b" not in c and "\u202e" not in c and "[31m" not in c for c in flagged[0]["captions"])


def test_control_characters_quarantined_when_the_recipe_says_so(case):
    _replace_once(case.find("ucm_captions", "dataset.json"), '"raw": "', '"raw": "\\u202e')
    outcome = case.build(recipe=case.recipe("input: {text_controls: quarantine}\n"))
    outcome.expect_quarantined("ucm_captions", "dataset.json", "control/bidi character U+202E")


def test_one_megabyte_caption_is_quarantined(case):
    _replace_once(case.find("ucm_captions", "dataset.json"), '"raw": "', '"raw": "' + "x" * (1 << 20))
    outcome = case.build()
    outcome.expect_quarantined("ucm_captions", "dataset.json", "characters long, over the cap of 4,096")
