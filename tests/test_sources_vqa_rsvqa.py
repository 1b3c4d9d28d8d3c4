"""RSVQA-LR and RSVQA-HR converters: real samples, a synthetic corpus end to end, broken inputs."""

from __future__ import annotations

import json
import random
import shutil
from collections import Counter
from pathlib import Path

import pytest

from skyeye_data.convert import convert_source, read_records
from skyeye_data.schema import VQARecord
from skyeye_data.sources import get_source
from skyeye_data.json_stream import JsonStreamError, iter_json_list
from skyeye_data.sources.base import Rejected
from skyeye_data.synth import synth_image, synthesize

KINDS = ("questions", "answers", "images")


def split_items(items):
    records = [i for i in items if not isinstance(i, Rejected)]
    rejected = [i for i in items if isinstance(i, Rejected) and i.level == "record"]
    return records, rejected


# ---------------------------------------------------------------------------------------------
# Real sample: the authors' demo copy of RSVQA-LR, first 3 images, 300 questions
# ---------------------------------------------------------------------------------------------


# The authors' AutomaticDB/Splits.py (github.com/syvlo/RSVQA), transcribed: how each published split
# file was made from the database lists (images, questions, answers indexed by id).


def splits_py_images(db_images: list, in_split) -> list:
    return [entry if in_split(entry) else {"id": index, "active": False} for index, entry in enumerate(db_images)]


def splits_py_get_questions(subset_images: list, questions: list) -> list:
    questions_out, last_question_id = [], 0
    for image_index in range(len(subset_images)):
        if subset_images[image_index]["active"]:
            questions_ids = subset_images[image_index]["questions_ids"]
            while last_question_id < questions_ids[0]:
                questions_out.append({"id": last_question_id, "active": False})
                last_question_id += 1
            for question_id in questions_ids:
                questions_out.append(questions[question_id])
            last_question_id = question_id + 1
    return questions_out


def splits_py_get_answers(subset_questions: list, answers: list) -> list:
    answers_out, last_answer_id = [], 0
    for question_index in range(len(subset_questions)):
        if subset_questions[question_index]["active"]:
            answers_ids = subset_questions[question_index]["answers_ids"]
            while last_answer_id < answers_ids[0]:
                answers_out.append({"id": last_answer_id, "active": False})
                last_answer_id += 1
            for answers_id in answers_ids:
                answers_out.append(answers[answers_id])
            last_answer_id = answers_id + 1
    return answers_out


def write_splits_py(raw: Path, prefix: str, db: dict, split_of_image: dict) -> None:
    """Every split's three files exactly as Splits.py writes them (json.dump of each list)."""
    raw.mkdir(parents=True, exist_ok=True)
    for tag in sorted(set(split_of_image.values())):
        images = splits_py_images(db["images"], lambda e: split_of_image[e["id"]] == tag)
        questions = splits_py_get_questions(images, db["questions"])
        answers = splits_py_get_answers(questions, db["answers"])
        for kind, items in (("images", images), ("questions", questions), ("answers", answers)):
            with open(raw / f"{prefix}_split_{tag}_{kind}.json", "w") as handle:
                json.dump({kind: items}, handle)


def real_lr_db(real_samples) -> dict:
    sample = real_samples / "rsvqa_lr"
    return {kind: json.loads((sample / name).read_text())[kind] for kind, name in (
        ("questions", "website_LR_questions_first3imgs.json"), ("answers", "website_LR_answers_first3imgs.json"),
        ("images", "website_LR_images_first3.json"))}  # fmt: skip


@pytest.fixture()
def real_lr(real_samples, tmp_path) -> Path:
    """The real sample (all three images) as the train split, the val and test files as Splits.py writes
    them for a split none of these images is in (every image a stub, no questions)."""
    raw = tmp_path / "rsvqa_lr"
    write_splits_py(raw, "LR", real_lr_db(real_samples), {0: "train", 1: "train", 2: "train"})
    for tag in ("val", "test"):
        images = splits_py_images(real_lr_db(real_samples)["images"], lambda e: False)
        for kind, items in (("images", images), ("questions", []), ("answers", [])):
            (raw / f"LR_split_{tag}_{kind}.json").write_text(json.dumps({kind: items}))
    for img_id in range(3):
        synth_image(raw / "Images_LR" / f"{img_id}.tif", 256, 256, seed=img_id)
    return raw


def test_splits_py_layout_of_the_real_sample_has_no_false_quarantine(real_samples, tmp_path):
    """The real 3-image database split as the authors' script splits it (image 1 in val, with two of
    its questions withdrawn by the authors): stubs are "not in this split", never quarantine lines."""
    db = real_lr_db(real_samples)
    for q in db["questions"][100:102]:
        q["active"] = False  # withdrawn questions: their answers become Splits.py stubs too
    raw = tmp_path / "rsvqa_lr"
    write_splits_py(raw, "LR", db, {0: "train", 1: "val", 2: "test"})
    val_questions = json.loads((raw / "LR_split_val_questions.json").read_text())["questions"]
    assert val_questions[:100] == [{"id": i, "active": False} for i in range(100)]  # the stubs are really there
    for img_id in range(3):
        synth_image(raw / "Images_LR" / f"{img_id}.tif", 256, 256, seed=img_id)
    summary, rejected = convert(raw, tmp_path)
    assert summary.by_split == Counter(train=100, val=98, test=100)
    assert [r["reason"][:19] for r in rejected] == ["inactive question ("] * 2 and all(r["deliberate"] for r in rejected)
    strict = convert_source("rsvqa_lr", raw, tmp_path / "strict", strict=True)  # deliberate exclusions only
    assert strict.written == 298


def test_real_lr_sample_question_answer_and_type(real_lr):
    records, rejected = split_items(list(get_source("rsvqa_lr").records(real_lr)))
    assert rejected == []
    assert len(records) == 300  # 3 images x 100 questions, all active
    by_id = {r.record_id: r for r in records}
    first = by_id["rsvqa_lr:0"]
    assert isinstance(first, VQARecord)
    assert (first.question, first.answer, first.question_type) == (
        "Is it a rural or an urban area",
        "rural",
        "rural_urban",
    )
    assert (first.split, first.subset, first.width, first.height) == ("train", None, 256, 256)
    assert first.image_path == "Images_LR/0.tif" and first.image_key == "rsvqa_lr:0"
    assert first.provenance.raw_file == "LR_split_train_questions.json" and first.provenance.raw_index == 0
    count = by_id["rsvqa_lr:299"]
    assert (count.question, count.answer, count.question_type) == ("What is the amount of schools?", "6", "count")
    assert count.image_key == "rsvqa_lr:2"
    assert Counter(r.question_type for r in records) == Counter(comp=111, presence=96, count=90, rural_urban=3)


def test_real_lr_sample_answer_joined_by_answers_ids(real_lr):
    """Each record's answer is the answer whose id the question lists (and which points back)."""
    answers = {a["id"]: a for a in json.loads((real_lr / "LR_split_train_answers.json").read_text())["answers"]}
    questions = json.loads((real_lr / "LR_split_train_questions.json").read_text())["questions"]
    records = {r.record_id: r for r in get_source("rsvqa_lr").records(real_lr)}
    for question in questions[::37]:
        assert records[f"rsvqa_lr:{question['id']}"].answer == answers[question["answers_ids"][0]]["answer"]


# ---------------------------------------------------------------------------------------------
# The streaming JSON reader
# ---------------------------------------------------------------------------------------------


def test_stream_reader_matches_json_load_across_tiny_chunks(real_samples):
    path = real_samples / "rsvqa_lr" / "website_LR_questions_first3imgs.json"
    expected = json.loads(path.read_text())["questions"]
    streamed = [value for _, value in iter_json_list(path, "questions", chunk_bytes=7)]
    assert streamed == expected


def test_stream_reader_reports_line_and_column_of_truncation(tmp_path):
    path = tmp_path / "q.json"
    text = '{"questions": [\n  {"id": 0},\n  {"id": 1, "question": "Is th'
    path.write_text(text)
    with pytest.raises(json.JSONDecodeError) as reference:
        json.loads(text)
    seen = []
    with pytest.raises(JsonStreamError) as error:
        for index, value in iter_json_list(path, "questions", chunk_bytes=5):
            seen.append(value)
    assert seen == [{"id": 0}]
    # the same place json.loads names, though read in 5-byte chunks
    assert (reference.value.lineno, reference.value.colno) == (3, 25)
    assert error.value.reason == "invalid JSON at line 3 col 25: Unterminated string starting at"
    assert error.value.line == 3


def test_stream_reader_skips_other_keys_and_needs_the_list(tmp_path):
    path = tmp_path / "a.json"
    path.write_text('{"info": {"v": [1, 2]}, "answers": [{"id": 3}], "n": 1}')
    assert list(iter_json_list(path, "answers")) == [(0, {"id": 3})]
    with pytest.raises(JsonStreamError, match="no top-level 'questions' list"):
        list(iter_json_list(path, "questions"))


# ---------------------------------------------------------------------------------------------
# Synthetic corpora end to end
# ---------------------------------------------------------------------------------------------


def test_lr_mini_end_to_end_counts_add_up(tmp_path):
    raw = tmp_path / "raw" / "rsvqa_lr"
    raw_questions = synthesize("rsvqa_lr", raw, "mini", random.Random(1))
    summary = convert_source("rsvqa_lr", raw, tmp_path / "out")
    assert summary.records_in == raw_questions == 25
    assert summary.written == 24 and summary.quarantined == 1
    assert summary.reasons == Counter({"inactive question": 1})
    # 3 train, 1 val, 2 test images with 4 questions each (one withdrawn on the first train image)
    assert summary.by_split == Counter(train=12, val=4, test=8)
    lines = [json.loads(x) for x in summary.quarantine_path.read_text().splitlines()]
    assert lines[0]["reason"] == "inactive question (active: false) — excluded as the dataset authors ask"
    assert lines[0]["raw_file"] == "LR_split_train_questions.json" and lines[0]["raw_index"] == 4
    records = list(read_records(summary.records_path))
    assert len({r.record_id for r in records}) == 24
    images_by_split = {}
    for r in records:
        images_by_split.setdefault(r.image_key, set()).add(r.split)
    assert all(len(splits) == 1 for splits in images_by_split.values())  # no image in two splits


def test_hr_mini_second_test_set_is_test_split_subset_test_phili(tmp_path):
    raw = tmp_path / "rsvqa_hr"
    raw_questions = synthesize("rsvqa_hr", raw, "mini", random.Random(2))
    summary = convert_source("rsvqa_hr", raw, tmp_path / "out")
    assert summary.records_in == raw_questions == 21
    records = list(read_records(summary.records_path))
    pairs = Counter((r.split, r.subset) for r in records)
    assert pairs == Counter({("train", None): 8, ("val", None): 4, ("test", "test"): 4, ("test", "test_phili"): 4})
    phili = [r for r in records if r.subset == "test_phili"]
    assert {r.provenance.raw_file for r in phili} == {"USGS_split_test_phili_questions.json"}
    assert all((r.width, r.height) == (512, 512) and r.image_path.startswith("Data/") for r in records)
    area = [r for r in records if r.question_type == "area"]
    assert area and all(r.answer.endswith("m2") for r in area)


# ---------------------------------------------------------------------------------------------
# Broken inputs
# ---------------------------------------------------------------------------------------------


def write_trio(raw: Path, tag: str, images: list, questions: list, answers: list, prefix: str = "LR") -> None:
    raw.mkdir(parents=True, exist_ok=True)
    for kind, items in (("images", images), ("questions", questions), ("answers", answers)):
        (raw / f"{prefix}_split_{tag}_{kind}.json").write_text(json.dumps({kind: items}))


def question(qid: int, img_id: int, text: str = "Is there a road?", active: bool = True, answers_ids=None) -> dict:
    return {"id": qid, "img_id": img_id, "type": "presence", "question": text,
            "answers_ids": [qid] if answers_ids is None else answers_ids, "active": active}  # fmt: skip


def answer(aid: int, qid: int, text: str = "yes", active: bool = True) -> dict:
    return {"id": aid, "question_id": qid, "answer": text, "active": active}


@pytest.fixture()
def small_lr(tmp_path) -> Path:
    """Two train images (0, 1) and one val image (2), three questions each."""
    raw = tmp_path / "rsvqa_lr"
    images = [{"id": i, "questions_ids": [3 * i, 3 * i + 1, 3 * i + 2]} for i in range(3)]
    questions = [question(q, q // 3) for q in range(9)]
    answers = [answer(q, q) for q in range(9)]
    for tag, active_ids in (("train", {0, 1}), ("val", {2}), ("test", set())):
        write_trio(raw, tag, [{**img, "active": img["id"] in active_ids} for img in images], questions, answers)
    for i in range(3):
        synth_image(raw / "Images_LR" / f"{i}.tif", 16, 16, seed=i)
    return raw


def convert(raw: Path, tmp_path: Path, name: str = "rsvqa_lr"):
    summary = convert_source(name, raw, tmp_path / "out")
    lines = [json.loads(x) for x in summary.quarantine_path.read_text().splitlines()]
    return summary, [x for x in lines if x["level"] == "record"]


def rewrite(path: Path, kind: str, edit) -> None:
    data = json.loads(path.read_text())
    edit(data[kind])
    path.write_text(json.dumps(data))


def test_full_list_files_count_each_question_once(small_lr, tmp_path):
    summary, rejected = convert(small_lr, tmp_path)
    assert (summary.written, summary.quarantined) == (9, 0)  # not 18: each split file lists all 9
    assert summary.by_split == Counter(train=6, val=3)


def test_truncated_questions_file_keeps_what_came_before(small_lr, tmp_path):
    path = small_lr / "LR_split_train_questions.json"
    text = path.read_text()
    path.write_text(text[: text.index('{"id": 4,')] + '{"id": 4, "img_')
    summary, rejected = convert(small_lr, tmp_path)
    assert summary.written == 4 + 3  # train questions 0-3 before the cut, val untouched
    [bad] = rejected
    assert bad["raw_file"] == "LR_split_train_questions.json"
    assert bad["reason"].startswith("invalid JSON at line 1 col ")
    assert "cannot be read" in bad["reason"]


def test_truncated_answers_file_quarantines_unanswered_questions(small_lr, tmp_path):
    path = small_lr / "LR_split_train_answers.json"
    path.write_text(path.read_text()[:150])
    summary, rejected = convert(small_lr, tmp_path)
    reasons = [r["reason"] for r in rejected]
    assert any(r.startswith("invalid JSON at line 1 col") and r.endswith("quarantined as unanswered)") for r in reasons)
    unanswered = [r for r in reasons if r.startswith("question without answer: answer id")]
    assert summary.written + len(unanswered) == 9
    assert summary.records_in == summary.written + summary.quarantined


def test_missing_image_quarantines_its_questions(small_lr, tmp_path):
    (small_lr / "Images_LR" / "1.tif").unlink()
    summary, rejected = convert(small_lr, tmp_path)
    assert summary.written == 6
    assert [r["raw_index"] for r in rejected] == [3, 4, 5]
    assert all(r["reason"].startswith("image file not found: 1.tif (expected at Images_LR/1.tif)") for r in rejected)


def test_unreadable_image_is_quarantined(small_lr, tmp_path):
    (small_lr / "Images_LR" / "2.tif").write_bytes(b"not a tiff at all")
    summary, rejected = convert(small_lr, tmp_path)
    assert summary.by_split == Counter(train=6)
    assert len(rejected) == 3 and all(r["reason"].startswith("image cannot be read") for r in rejected)


def test_bad_encoding_quarantines_only_that_question(small_lr, tmp_path):
    path = small_lr / "LR_split_train_questions.json"
    data = path.read_bytes().replace(b'"question": "Is there a road?", "answers_ids": [2]',
                                     b'"question": "Is there a r\xe9ad?", "answers_ids": [2]')  # fmt: skip
    assert data != path.read_bytes()
    path.write_bytes(data)
    summary, rejected = convert(small_lr, tmp_path)
    assert summary.written == 8
    [bad] = rejected
    assert bad["raw_index"] == 2
    assert bad["reason"] == "bad encoding: question 'Is there a r\\xe9ad?' holds byte 0xE9, which is not UTF-8"


def test_escaped_low_surrogate_is_a_lone_surrogate_not_a_bad_byte(small_lr, tmp_path):
    # "\\udc80" is a JSON escape of U+DC80, the character surrogateescape makes of byte 0x80: the
    # question holding it is stripped and flagged as a lone surrogate; a real byte 0x80 stays "bad encoding"
    path = small_lr / "LR_split_train_questions.json"
    data = path.read_bytes()
    data = data.replace(b'"question": "Is there a road?", "answers_ids": [2]', b'"question": "Is there a r\\udc80oad?", "answers_ids": [2]')
    data = data.replace(b'"question": "Is there a road?", "answers_ids": [4]', b'"question": "Is there a r\x80oad?", "answers_ids": [4]')
    path.write_bytes(data)
    summary, rejected = convert(small_lr, tmp_path)
    assert summary.written == 8
    [bad] = rejected
    assert bad["raw_index"] == 4 and bad["reason"].startswith("bad encoding: question 'Is there a r\\x80oad?' holds byte 0x80")
    [flagged] = [r for r in read_records(summary.records_path) if r.flags]
    assert (flagged.record_id, flagged.question, flagged.flags) == ("rsvqa_lr:2", "Is there a road?", ["text_surrogate_stripped"])


def test_duplicate_question_id_keeps_the_first(small_lr, tmp_path):
    path = small_lr / "LR_split_train_questions.json"
    rewrite(path, "questions", lambda qs: qs.insert(2, question(1, 0, "Is there a farmland?")))
    summary, rejected = convert(small_lr, tmp_path)
    [dup] = rejected
    assert dup["reason"] == "duplicate question id 1 (first at index 1); second occurrence left out"
    assert dup["raw_index"] == 2
    assert summary.written == 9


def test_answer_without_question_and_question_without_answer(small_lr, tmp_path):
    for tag in ("train", "val"):  # the full lists are the same in every split's files
        rewrite(small_lr / f"LR_split_{tag}_answers.json", "answers",
                lambda ans: (ans.append(answer(50, 77)), ans.pop(4)))  # fmt: skip
    summary, rejected = convert(small_lr, tmp_path)
    reasons = sorted(r["reason"] for r in rejected)
    assert reasons == [
        "answer without question: answer 50 names question 77, which is not in the questions file",
        "question without answer: answer id 4 of question 4 is not in the answers file",
    ]
    assert summary.written == 8 and summary.records_in == 10  # 9 questions + 1 orphan answer


def test_inactive_question_and_answer_are_excluded_and_counted(small_lr, tmp_path):
    for tag in ("train", "val"):
        rewrite(small_lr / f"LR_split_{tag}_questions.json", "questions", lambda qs: qs[0].update(active=False))
        rewrite(small_lr / f"LR_split_{tag}_answers.json", "answers", lambda ans: ans[7].update(active=False))
    summary, rejected = convert(small_lr, tmp_path)
    assert [r["reason"] for r in rejected] == [
        "inactive question (active: false) — excluded as the dataset authors ask",
        "inactive answer (active: false) to question 7 — excluded as the dataset authors ask",
    ]
    assert (summary.written, summary.quarantined) == (7, 2)
    assert all(r["deliberate"] for r in rejected)
    # the authors' own exclusions are no bad input: --strict converts the same
    strict = convert_source("rsvqa_lr", small_lr, tmp_path / "strict", strict=True)
    assert (strict.written, strict.quarantined) == (7, 2)


def test_strict_conversion_stops_at_a_question_without_answer(small_lr, tmp_path):
    from skyeye_data.convert import StrictModeError

    rewrite(small_lr / "LR_split_train_answers.json", "answers", lambda ans: ans.pop(0))
    with pytest.raises(StrictModeError, match=r"rsvqa_lr: LR_split_train_questions.json\[0\]: question without answer"):
        convert_source("rsvqa_lr", small_lr, tmp_path / "strict", strict=True)
    assert not (tmp_path / "strict" / "rsvqa_lr.parquet").exists()


def test_image_active_in_no_split_counts_its_questions_once(small_lr, tmp_path):
    rewrite(small_lr / "LR_split_val_images.json", "images", lambda imgs: imgs[2].update(active=False))
    summary, rejected = convert(small_lr, tmp_path)
    assert summary.written == 6
    assert len(rejected) == 3  # once, although both split files list those questions
    assert all("image 2 of question" in r["reason"] and "not active in any split" in r["reason"] for r in rejected)


def test_image_active_in_two_splits_is_not_leaked(small_lr, tmp_path):
    rewrite(small_lr / "LR_split_val_images.json", "images", lambda imgs: imgs[0].update(active=True))
    summary, rejected = convert(small_lr, tmp_path)
    assert summary.written == 6 and len(rejected) == 3
    assert all(r["reason"].startswith("image 0 is active in several splits (train, val)") for r in rejected)


def test_split_with_missing_answers_file_is_a_layout_error(small_lr, tmp_path):
    from skyeye_data.sources import LayoutError

    (small_lr / "LR_split_val_answers.json").unlink()
    with pytest.raises(LayoutError, match=r"lacks LR_split_val_answers.json.*never skipped silently"):
        convert(small_lr, tmp_path)
    for kind in ("questions", "answers", "images"):
        (small_lr / f"LR_split_test_{kind}.json").unlink(missing_ok=True)
    with pytest.raises(LayoutError, match="LR_split_test_questions.json"):  # a whole split absent, too
        convert(small_lr, tmp_path)


def test_not_an_rsvqa_folder_is_a_layout_error(tmp_path):
    from skyeye_data.sources import LayoutError

    (tmp_path / "empty").mkdir()
    with pytest.raises(LayoutError, match="LR_split_<split>"):
        list(get_source("rsvqa_lr").records(tmp_path / "empty"))


def test_hr_test_phili_files_from_handwritten_trio(tmp_path):
    raw = tmp_path / "rsvqa_hr"
    images = [{"id": 0, "questions_ids": [0]}, {"id": 1, "questions_ids": [1]}]
    questions = [question(0, 0, "What is the area covered by residential buildings?"), question(1, 1)]
    answers = [answer(0, 0, "10632m2"), answer(1, 1, "no")]
    for tag, active in (("train", None), ("val", None), ("test", 0), ("test_phili", 1)):
        write_trio(raw, tag, [{**img, "active": img["id"] == active} for img in images], questions, answers, "USGS")
        if active is not None:
            synth_image(raw / "Data" / f"{active}.tif", 512, 512, seed=active)
    records = {r.record_id: r for r in get_source("rsvqa_hr").records(raw)}
    assert (records["rsvqa_hr:0"].split, records["rsvqa_hr:0"].subset, records["rsvqa_hr:0"].answer) == (
        "test", "test", "10632m2")  # fmt: skip
    assert (records["rsvqa_hr:1"].split, records["rsvqa_hr:1"].subset) == ("test", "test_phili")


def test_entries_of_the_wrong_shape_never_crash_and_are_counted(small_lr, tmp_path):
    for tag in ("train", "val"):
        rewrite(
            small_lr / f"LR_split_{tag}_questions.json",
            "questions",
            lambda qs: (
                qs.__setitem__(0, {**qs[0], "img_id": [0]}),
                qs.__setitem__(1, {**qs[1], "answers_ids": [[1]]}),
                qs.__setitem__(2, "not a question"),
            ),
        )
        rewrite(small_lr / f"LR_split_{tag}_answers.json", "answers", lambda ans: ans[0].update(question_id=None))
    summary, rejected = convert(small_lr, tmp_path)
    reasons = sorted(r["reason"] for r in rejected)
    assert reasons == [
        "answer without question: answer 0 names question None, which is not in the questions file",
        # question 2 is unreadable, so its answer has no question either
        "answer without question: answer 2 names question 2, which is not in the questions file",
        "question 'id' and 'img_id' must be integers",
        "question entry is str, not an object",
        "question without answer: answer id [1] of question 1 is not in the answers file",
    ]
    assert summary.written == 6 and summary.records_in == 11


def test_truncated_images_file_leaves_its_questions_unplaced_and_counted(small_lr, tmp_path):
    path = small_lr / "LR_split_val_images.json"
    text = path.read_text()
    path.write_text(text[: text.index('{"id": 2')])
    summary = convert_source("rsvqa_lr", small_lr, tmp_path / "out")
    lines = [json.loads(x) for x in summary.quarantine_path.read_text().splitlines()]
    [note] = [x for x in lines if x["level"] == "part"]
    assert note["raw_file"] == "LR_split_val_images.json"
    assert note["reason"].startswith("invalid JSON at line 1 col ") and "images list is lost" in note["reason"]
    unplaced = [x for x in lines if x["level"] == "record"]
    assert [x["raw_index"] for x in unplaced] == [6, 7, 8]
    assert (summary.written, summary.quarantined) == (6, 3)


# ---------------------------------------------------------------------------------------------
# The unvalidated fast path gives exactly what validation gives (or steps aside)
# ---------------------------------------------------------------------------------------------


def vqa_fields(**changes) -> dict:
    fields = dict(source="rsvqa_hr", record_id="rsvqa_hr:7", split="train", subset=None, image_path="Data/3.tif",
                  image_key="rsvqa_hr:3", image_sha256="ab" * 32, width=512, height=512,
                  question="Is there a road?", answer="yes", question_type="presence")  # fmt: skip
    return {**fields, **changes}


def test_plain_vqa_record_and_row_equal_the_validated_ones():
    from skyeye_data.schema import dumped_row, record_to_row
    from skyeye_data.sources._plain_record import plain_vqa_record as _plain_vqa_record
    from skyeye_data.sources.base import build_record

    for fields in (vqa_fields(), vqa_fields(subset="test_phili", question_type=None, answer="10632m2")):
        fast = _plain_vqa_record("USGS_split_train_questions.json", 11, dict(fields))
        slow = build_record(VQARecord, raw_file="USGS_split_train_questions.json", raw_index=11, **dict(fields))
        assert fast is not None and fast == slow and fast.model_dump() == slow.model_dump()
        assert record_to_row(fast) == dumped_row(slow) and list(record_to_row(fast)) == list(dumped_row(slow))
    # with text the guard strips (flags), would refuse or validation would refuse: the slow path decides
    for changes in ({"question": "Is there a ro\u202ead?"}, {"answer": "caf\u00e9"}, {"question": "a\tb"},
                    {"answer": "x" * 1_000_000}, {"width": 0}, {"image_path": "/abs/3.tif"}, {"question": ""},
                    {"record_id": "rsvqa_hr:\x1b7"}, {"split": "dev"}):  # fmt: skip
        assert _plain_vqa_record("q.json", 0, vqa_fields(**changes)) is None, changes
    flagged = build_record(VQARecord, raw_file="q.json", raw_index=0, **vqa_fields(question="Is there a ro\u202ead?"))
    assert flagged.flags == ["text_control_stripped"] and record_to_row(flagged) == dumped_row(flagged)
