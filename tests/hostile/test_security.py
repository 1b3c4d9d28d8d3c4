"""Nothing outside the raw root is read (issue 18, 'Security' 1-3, and what already held).

Every build also passes the invariants of ``conftest.Case.build``: no output file holds the canary
planted in every file of the outside folder, and no reason holds an absolute local path.
"""

from __future__ import annotations

import os

import pytest

pytestmark = pytest.mark.timeout(600)


def _climb(start, target) -> str:
    """A ``../../..`` path from folder ``start`` to ``target`` (what an attacker writes)."""
    return os.path.relpath(target, start)


def test_dior_split_file_traversal_is_quarantined(case):
    main = case.find("dior", "train.txt").parent
    annotations = case.find("dior", "*.xml").parent
    with open(main / "train.txt", "a", encoding="utf-8") as handle:
        handle.write(_climb(annotations, case.outside / "secret") + "\n")
    outcome = case.build()
    entry = outcome.expect_quarantined("dior", "train.txt", "climbs out of its folder with '..'")
    assert entry["level"] == "record"
    assert all("secret" not in r["record_id"] for r in outcome.records("dior"))


def test_dior_absolute_split_id_is_quarantined_not_a_crash(case):
    with open(case.find("dior", "train.txt"), "a", encoding="utf-8") as handle:
        handle.write(str(case.outside / "secret") + "\n")
    outcome = case.build()
    outcome.expect_quarantined("dior", "train.txt", "is an absolute path")


def test_dota_label_symlink_to_a_file_outside_is_refused(case):
    label = case.find("dota", "P0001.txt")
    case.link(label, case.outside / "passwd")
    outcome = case.build()
    entry = outcome.expect_quarantined("dota", "P0001.txt", "resolves to a file outside the raw root")
    assert entry["level"] == "record"
    assert outcome.source("dota")["records_in"] == 6  # the label file still counts as one raw record


def test_rsivqa_text_file_symlinked_to_an_env_file_is_refused(case):
    target = case.find("rsivqa", "ucm_vqa.txt")
    case.link(target, case.outside / ".env")
    outcome = case.build()
    outcome.expect_quarantined("rsivqa", "ucm_vqa.txt", "resolves to a file outside the raw root")


def test_dior_rsvg_split_file_symlinked_outside_fails_closed(case):
    val = case.src("dior_rsvg") / "val.txt"
    listed = [line for line in val.read_text().split() if line]
    case.link(val, case.outside / "passwd")
    outcome = case.build()
    outcome.expect_quarantined("dior_rsvg", "val.txt", "resolves to a file outside the raw root")
    # the objects it listed are not moved to another split: each is quarantined as in no split file
    records = outcome.records("dior_rsvg")
    assert not [r for r in records if r["record_id"] in {f"dior_rsvg:{i}" for i in listed}]
    assert len(outcome.entries("dior_rsvg", reason="in no split file")) == len(listed)


def test_image_symlinked_outside_is_refused(case):
    image = case.find("ucm_captions", "1.tif")
    case.link(image, case.outside / "secret.tif")
    outcome = case.build()
    outcome.expect_quarantined("ucm_captions", "", "resolves to a file outside the raw root")
    assert "ucm:1" not in {r["image_key"] for r in outcome.records("ucm_captions")}


def test_symlink_that_stays_inside_the_raw_root_is_fine(case, clean_build):
    image = case.find("ucm_captions", "2.tif")
    moved = case.raw / "shared" / "2.tif"  # another folder of the raw root, as re-packs do
    moved.parent.mkdir()
    image.rename(moved)
    image.symlink_to(os.path.relpath(moved, image.parent))
    outcome = case.build()
    assert outcome.rc == 0
    assert not outcome.entries("ucm_captions", reason="outside")
    assert outcome.source("ucm_captions")["records_in"] == clean_build.source("ucm_captions")["records_in"]
    assert outcome.source("ucm_captions")["quarantined"] == clean_build.source("ucm_captions")["quarantined"]


def test_recipe_may_allow_a_named_outside_root(case, clean_build):
    shared = case.base / "shared-images"  # outside the raw root, holds no canary
    shared.mkdir()
    image = case.find("ucm_captions", "1.tif")
    (shared / "1.tif").write_bytes(image.read_bytes())
    case.link(image, shared / "1.tif")
    refused = case.build()
    refused.expect_quarantined("ucm_captions", "", "outside the raw root")
    allowed = case.build(recipe=case.recipe(f"input:\n  allow_outside: [{shared}]\n"), out=case.base / "out2")
    assert allowed.rc == 0
    assert not allowed.entries("ucm_captions", reason="outside")
    assert "ucm:1" in {r["image_key"] for r in allowed.records("ucm_captions")}


def test_json_file_name_climbing_out_is_quarantined(case):
    """Held before: a caption file naming ``../`` images."""
    path = case.find("rsicd", "*.json")
    text = path.read_text(encoding="utf-8")
    first = text.index('"filename": "') + len('"filename": "')
    end = text.index('"', first)
    path.write_text(text[:first] + "../../outside/secret.jpg" + text[end:], encoding="utf-8")
    outcome = case.build()
    outcome.expect_quarantined("rsicd", "json", "is not a plain file name")


def test_rsvg_image_name_climbing_out_is_quarantined(case):
    case.rsvg_as_json()
    path = case.src("rsvg") / "rsvg_train.json"
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace('"00001.jpg"', f'"{_climb(case.src("rsvg") / "images", case.outside / "secret.jpg")}"', 1))
    outcome = case.build()
    assert outcome.entries("rsvg", "rsvg_train.json", "climbs out") or outcome.entries("rsvg", "rsvg_train.json", "outside")


def test_xml_external_entity_is_refused(case):
    """Held before: defusedxml refuses a DTD with an external entity."""
    xml = case.find("dior", "00001.xml")
    xml.write_text(
        f'<?xml version="1.0"?>\n<!DOCTYPE a [<!ENTITY secret SYSTEM "file://{case.outside / "passwd"}">]>\n'
        "<annotation><filename>00001.jpg</filename><object><name>airplane</name><description>&secret;</description>"
        "<bndbox><xmin>1</xmin><ymin>1</ymin><xmax>9</xmax><ymax>9</ymax></bndbox></object></annotation>"
    )
    outcome = case.build()
    outcome.expect_quarantined("dior", "00001.xml", "unsafe XML refused")


def test_xml_entity_bomb_is_refused(case):
    """Held before: billion laughs."""
    xml = case.find("dior_rsvg", "00002.xml")
    entities = '<!ENTITY a0 "lol">' + "".join(f'<!ENTITY a{i} "{("&a" + str(i - 1) + ";") * 10}">' for i in range(1, 10))
    xml.write_text(f'<?xml version="1.0"?>\n<!DOCTYPE annotation [{entities}]>\n<annotation><object>&a9;</object></annotation>')
    outcome = case.build()
    outcome.expect_quarantined("dior_rsvg", "00002.xml", "unsafe XML refused")
