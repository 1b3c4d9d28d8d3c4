"""One bad record never stops a build (issue 18, 'Crashes' 4-8; the RSVG name cases are with the
other RSVG entry edits in test_bad_data.py)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.timeout(600)

DEEP = "[" * 1500 + "]" * 1500


def _replace_once(path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path.name}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


# (source, file glob, text to find, where the lone surrogate goes, record id prefix)
SURROGATE_CASES = [
    ("ucm_captions", "dataset.json", '"raw": "', "ucm_captions:"),
    ("rsvqa_hr", "USGS_split_train_questions.json", '"question": "', "rsvqa_hr:"),
    ("rsvg", "rsvg_train.json", '"find a ', "rsvg:train:"),
    ("capera", "*train*.json", '"English_caption": [\n     "', "capera:"),
]


@pytest.mark.parametrize(("source", "pattern", "before", "prefix"), SURROGATE_CASES, ids=[c[0] for c in SURROGATE_CASES])
def test_lone_surrogate_is_stripped_and_flagged(case, source, pattern, before, prefix):
    if source == "rsvg":
        case.rsvg_as_json()
    _replace_once(case.find(source, pattern), before, before + "\\ud800")
    outcome = case.build()
    assert outcome.rc == 0, outcome.output[-3000:]
    flagged = [r for r in outcome.records(source) if "text_surrogate_stripped" in r["flags"]]
    assert len(flagged) == 1 and flagged[0]["record_id"].startswith(prefix)
    assert "\ud800" not in repr(flagged[0])


def test_lone_surrogate_quarantined_when_the_recipe_says_so(case):
    _replace_once(case.find("ucm_captions", "dataset.json"), '"raw": "', '"raw": "\\ud800')
    outcome = case.build(recipe=case.recipe("input: {text_controls: quarantine}\n"))
    entry = outcome.expect_quarantined("ucm_captions", "dataset.json", "lone surrogate U+D800")
    assert entry["raw_index"] == 0


def test_escaped_low_surrogate_is_not_reported_as_a_bad_byte(case):
    _replace_once(case.find("ucm_captions", "dataset.json"), '"raw": "', '"raw": "\\udc80')
    outcome = case.build()
    assert not outcome.entries("ucm_captions", reason="bad encoding")
    assert [r for r in outcome.records("ucm_captions") if "text_surrogate_stripped" in r["flags"]]


DEEP_CASES = [
    ("rsicd", "dataset_rsicd.json", "{", '{"deep": ' + DEEP + ", "),
    ("rsvqa_lr", "LR_split_train_questions.json", "{", '{"deep": ' + DEEP + ", "),
    ("rsvg", "rsvg_val.json", "[", "[" + DEEP + ", "),
    ("capera", "*train*.json", "{", '{"deep": ' + DEEP + ", "),
]


@pytest.mark.parametrize(("source", "pattern", "old", "new"), DEEP_CASES, ids=[c[0] for c in DEEP_CASES])
def test_json_nested_1500_deep_is_quarantined(case, source, pattern, old, new):
    if source == "rsvg":
        case.rsvg_as_json()
    path = case.find(source, pattern)
    _replace_once(path, old, new)
    outcome = case.build()
    outcome.expect_quarantined(source, path.name, "nested more than 500 levels deep")


def test_caption_file_name_over_255_bytes_is_quarantined(case):
    _replace_once(case.find("ucm_captions", "dataset.json"), '"filename": "1.tif"', '"filename": "' + "a" * 300 + '.tif"')
    outcome = case.build()
    outcome.expect_quarantined("ucm_captions", "dataset.json", "file names hold at most 255")


def test_rsivqa_image_name_over_255_bytes_is_quarantined(case):
    path = case.find("rsivqa", "ucm_vqa.txt")
    with open(path, "a", encoding="utf-8") as handle:
        handle.write("b" * 300 + ".tif:is it a long name?yes\n")
    outcome = case.build()
    outcome.expect_quarantined("rsivqa", "ucm_vqa.txt", "file names hold at most 255")


def test_superscript_digit_in_dior_rsvg_split_file_is_a_bad_line(case):
    with open(case.src("dior_rsvg") / "train.txt", "a", encoding="utf-8") as handle:
        handle.write("\u00b2\n")
    outcome = case.build()
    entry = outcome.expect_quarantined("dior_rsvg", "train.txt", "not an object index")
    assert entry["level"] == "part"


def test_label_file_symlinked_to_dev_zero_is_refused(case):
    label = case.find("dota", "P0002.txt")
    case.link(label, "/dev/zero")
    outcome = case.build()
    outcome.expect_quarantined("dota", "P0002.txt", "outside the raw root")


def test_label_file_that_is_a_device_inside_the_root_is_refused(case):
    """With /dev allowed as an outside root, the device rule itself must refuse it."""
    label = case.find("dota", "P0002.txt")
    case.link(label, "/dev/zero")
    outcome = case.build(recipe=case.recipe("input:\n  allow_outside: [/dev]\n"))
    outcome.expect_quarantined("dota", "P0002.txt", "is a device, not a regular file")


def test_json_nested_1500_deep_inside_a_streamed_list_is_quarantined(case):
    """The RSVQA reader streams big files through yajl, which builds deep values without recursing."""
    path = case.find("rsvqa_hr", "USGS_split_train_questions.json")
    _replace_once(path, '{"questions": [', '{"questions": [' + DEEP + ", ")
    outcome = case.build()
    entry = outcome.expect_quarantined("rsvqa_hr", path.name, "")
    assert entry["raw_index"] == 0
