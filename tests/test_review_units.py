"""Review pieces that need no server: routing, fingerprints, the ledger, corrections, apply, report."""

from __future__ import annotations

import sqlite3
import subprocess
import sys

import pytest

from review_server import image_row, sample_row, write_build_output
from skyeye_data.boxes import format_box
from skyeye_data.review.apply import ReviewCounts, apply_review
from skyeye_data.review.corrections import (
    InvalidVerdict,
    TaskDataError,
    pixels_to_rectangle_value,
    verdict_from_task,
)
from skyeye_data.review.fingerprint import sample_fingerprint
from skyeye_data.review.tasks import review_kind, task_payload
from skyeye_data.review.ledger import ReviewLedger, Verdict, ledger_state
from skyeye_data.review.policy import FLAG_NAMES, ReviewPolicy, audit_draw
from skyeye_data.review.queue import QueuedSample, QueueSummary, read_samples, review_queue, write_review_queue
from skyeye_data.review.report import review_report


def vqa(sample_id="s1", source="rsvqa_lr", question="Is there a road?", answer="yes"):
    return sample_row(sample_id, source, "vqa", "img1", [(f"[vqa] {question}", answer)])


def caption(sample_id="c1", source="rsicd", text="many green trees are around the white building ."):
    return sample_row(sample_id, source, "caption", "img1", [("[caption] Briefly describe this image.", text)])


def grounding(sample_id="g1", source="dior_rsvg", answer="{<10><20><30><40>}"):
    return sample_row(sample_id, source, "refer", "img1", [("[refer] the bridge over the river", answer)])


# -- policy -------------------------------------------------------------------------------------------


def test_import_skyeye_data_review_imports_neither_torch_nor_the_sdk():
    code = "import sys, skyeye_data.review, skyeye_data.review.cli; print('torch' in sys.modules, 'label_studio_sdk' in sys.modules)"
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert output.split() == ["False", "False"]


@pytest.mark.parametrize("source", ["rspg", "ERA-VQA", "era_vqa", "dior_conversa", "UCM-Conversa", "sydney_conversa"])
def test_generated_and_composed_sources_require_review_by_default(source):
    assert ReviewPolicy().route(caption(source=source)) == ["required_source"]


def test_converted_sources_are_not_routed_without_audit_or_flags():
    assert ReviewPolicy().route(caption(source="rsicd")) == []
    assert ReviewPolicy().route(vqa()) == []


def test_audit_is_a_seeded_deterministic_share():
    policy = ReviewPolicy(audit_rate=0.2, seed=7)
    ids = [f"rsicd-{i}" for i in range(5000)]
    audited = [i for i in ids if "audit" in policy.route(caption(sample_id=i))]
    assert 0.17 < len(audited) / len(ids) < 0.23
    assert audited == [i for i in ids if "audit" in ReviewPolicy(audit_rate=0.2, seed=7).route(caption(sample_id=i))]
    assert audited != [i for i in ids if "audit" in ReviewPolicy(audit_rate=0.2, seed=8).route(caption(sample_id=i))]
    assert audit_draw(7, "x") == audit_draw(7, "x")


@pytest.mark.parametrize(
    "sample, flag",
    [
        (grounding(answer="{<10><20><11><21>}"), "tiny_box"),
        (grounding(answer="{<0><1><99><100>}"), "whole_image_box"),
        (vqa(answer="  "), "empty_answer"),
        (vqa(answer="."), "empty_answer"),
        (vqa(question="Is there a road?", answer="maybe"), "answer_out_of_vocabulary"),
        (vqa(question="How many planes are there?", answer="several"), "answer_out_of_vocabulary"),
        (caption(text="trees ."), "caption_too_short"),
        (caption(text=" ".join(["tree"] * 61)), "caption_too_long"),
        (
            sample_row("d", "rsicd", "conversation", "img1", [("[caption] Describe it.", "a big river runs here"),
                                                              ("[caption] Describe the image.", "a big river runs here")]),
            "duplicated_answer",
        ),  # fmt: skip
        (
            sample_row("d", "rsicd", "conversation", "img1", [("[vqa] Is there a road?", "yes"), ("[vqa] Is there a road?", "no")]),
            "duplicated_answer",
        ),
    ],
)
def test_each_named_flag_routes_a_sample_of_any_source(sample, flag):
    assert flag in FLAG_NAMES
    assert flag in ReviewPolicy().route(sample)
    assert flag not in ReviewPolicy(flags=[f for f in FLAG_NAMES if f != flag]).route(sample)


@pytest.mark.parametrize(
    "sample",
    [
        vqa(question="Is it a rural or an urban area", answer="urban"),
        vqa(question="How many planes are there?", answer="3"),
        vqa(question="Is there a road?", answer="No."),
        grounding(answer="{<10><20><30><40>}"),
        sample_row("d", "rsivqa", "conversation", "img1", [("[vqa] Is there a road?", "yes"), ("[vqa] Is there water?", "yes")]),
    ],
)
def test_ordinary_samples_raise_no_flag(sample):
    assert ReviewPolicy().route(sample) == []


def test_policy_is_the_recipe_section_and_rejects_unknown_keys():
    policy = ReviewPolicy.from_recipe_section({"ledger": "review.sqlite", "audit_rate": 0.01, "flags": ["tiny_box"]})
    assert policy.audit_rate == 0.01 and policy.flags == ["tiny_box"]
    with pytest.raises(ValueError):
        ReviewPolicy.from_recipe_section({"audit_rat": 0.1})
    with pytest.raises(ValueError):
        ReviewPolicy.from_recipe_section({"flags": ["not_a_flag"]})


# -- fingerprint ----------------------------------------------------------------------------------------


def test_fingerprint_follows_content_not_status_or_key_order():
    a = caption()
    b = {**a, "review_status": "accepted", "provenance": '{"x": 1}'}
    b["conversation"] = [{"content": t["content"], "role": t["role"]} for t in a["conversation"]]
    assert sample_fingerprint(a) == sample_fingerprint(b)
    assert sample_fingerprint(a) != sample_fingerprint(caption(text="a different caption of the image ."))
    assert sample_fingerprint(a) != sample_fingerprint({**a, "image_ids": ["img2"]})


# -- ledger ---------------------------------------------------------------------------------------------


def verdict(kind="accepted", annotation_id=1, sample_id="c1", fingerprint="f", annotator="user:1", at="2026-01-01T00:00:00Z", **extra):
    return Verdict(sample_id, fingerprint, kind, annotator, at, task_id=annotation_id, annotation_id=annotation_id, **extra)


def test_ledger_records_each_annotation_once_and_takes_later_edits(tmp_path):
    with ReviewLedger(tmp_path / "ledger.sqlite") as ledger:
        assert ledger.record([verdict(), verdict(annotation_id=2)]) == 2
        assert ledger.record([verdict(), verdict(annotation_id=2)]) == 0
        assert ledger.count() == 2
        assert ledger.record([verdict("rejected", at="2026-02-01T00:00:00Z")]) == 1
        assert ledger.count() == 2
        assert ledger.verdicts()[0].verdict == "rejected"


def test_ledger_state_sees_a_pull_still_in_the_wal(tmp_path):
    # a build keys its output on the ledger: a verdict must change the key even while another
    # connection keeps it in the -wal file and the database file keeps its size and mtime
    path = tmp_path / "ledger.sqlite"
    holder = ReviewLedger(path)
    holder.record([verdict()])
    before, stat = ledger_state(path), path.stat()
    with ReviewLedger(path) as puller:
        puller.record([verdict("rejected", at="2026-02-01T00:00:00Z")])
    assert (path.stat().st_size, path.stat().st_mtime_ns) == (stat.st_size, stat.st_mtime_ns)  # the file says nothing
    assert ledger_state(path) != before
    assert ledger_state(path) == ledger_state(path)  # a pure function of the verdicts; reading changes nothing
    holder.close()
    assert ledger_state(tmp_path / "missing.sqlite").startswith("unreadable")


def test_ledger_batch_is_all_or_nothing(tmp_path):
    def failing():
        yield verdict(annotation_id=1)
        raise RuntimeError("interrupted")

    with ReviewLedger(tmp_path / "ledger.sqlite") as ledger:
        with pytest.raises(RuntimeError):
            ledger.record(failing())
        assert ledger.count() == 0


def test_ledger_schema_refuses_inconsistent_rows(tmp_path):
    with pytest.raises(ValueError):
        verdict("corrected")  # a correction without the corrected conversation
    ReviewLedger(tmp_path / "l.sqlite").close()
    db = sqlite3.connect(tmp_path / "l.sqlite")
    with pytest.raises(sqlite3.IntegrityError):
        db.execute(
            "INSERT INTO verdicts (sample_id, fingerprint, verdict, annotator, reviewed_at, task_id, annotation_id) "
            "VALUES ('a', 'f', 'maybe', 'u', 't', 1, 1)"
        )


# -- corrections --------------------------------------------------------------------------------------------


def pushed_task(sample, width=333, height=217, task_id=10):
    image = {"width": width, "height": height}
    payload = task_payload(QueuedSample(sample, sample_fingerprint(sample), ["audit"]), image, "/data/local-files/?d=x.png")
    return {"id": task_id, "data": payload["data"], "project": 3}, payload["predictions"][0]["result"]


def annotation(result, annotation_id=5, **extra):
    return {"id": annotation_id, "completed_by": 1, "updated_at": "2026-11-30T10:00:00Z", "result": result, **extra}


def choice(value):
    return {"from_name": "verdict", "to_name": "image", "type": "choices", "value": {"choices": [value]}}


def test_moved_box_comes_back_pixel_exact_and_untouched_boxes_stay():
    sample = sample_row("p1", "rspg", "detection", "img1", [("[detection] the two airplanes", "<p>the two airplanes</p> {<10><20><30><40>}<delim>{<50><50><70><80>}")])
    task, prefilled = pushed_task(sample)
    moved = [dict(r) for r in prefilled]
    new_box = [101.565, 60.0, 180.0, 150.0]
    moved[1] = {**moved[1], "value": pixels_to_rectangle_value(new_box, 333, 217)}
    result = verdict_from_task(task, annotation(moved + [choice("edit")]), 3)
    assert result.verdict == "corrected"
    expected = f"<p>the two airplanes</p> {{<10><20><30><40>}}<delim>{format_box(new_box, 333, 217)}"
    assert result.corrected_conversation[1]["content"] == expected
    assert {"slot": "t1b1", "box": new_box} in result.corrected_boxes
    # the prefilled rectangles unchanged give the sample back as it was
    assert verdict_from_task(task, annotation(prefilled + [choice("accept")]), 3).verdict == "accepted"


def test_deleted_and_drawn_boxes():
    sample = sample_row("p1", "rspg", "detection", "img1", [("[detection] the planes", "<p>the planes</p> {<10><20><30><40>}<delim>{<50><50><70><80>}")])
    task, prefilled = pushed_task(sample, 800, 600)
    drawn = {**prefilled[0], "id": "fresh", "value": pixels_to_rectangle_value([400, 300, 480, 360], 800, 600)}
    result = verdict_from_task(task, annotation([prefilled[1], drawn, choice("edit")]), 3)
    assert result.corrected_conversation[1]["content"] == "<p>the planes</p> {<50><50><70><80>}<delim>{<50><50><60><60>}"


def test_text_correction_reject_skip_and_no_decision():
    sample = caption()
    task, _ = pushed_task(sample)
    fixed = {"from_name": "corrected_answer", "to_name": "image", "type": "textarea", "value": {"text": ["a road runs through the forest ."]}}
    corrected = verdict_from_task(task, annotation([fixed, choice("edit")]), 3)
    assert corrected.verdict == "corrected"
    assert corrected.corrected_conversation[1]["content"] == "a road runs through the forest ."
    assert verdict_from_task(task, annotation([fixed, choice("reject")]), 3).verdict == "rejected"
    assert verdict_from_task(task, annotation([choice("accept")], was_cancelled=True), 3) is None
    assert verdict_from_task(task, annotation([]), 3) is None


def test_corrected_text_is_held_to_the_rules_of_record_text():
    task, _ = pushed_task(caption())
    pasted = "a road\u202e runs\x1b[31m through\r\nthe forest\u200f ."  # bidi override, ANSI colour, CRLF
    fixed = {"from_name": "corrected_answer", "to_name": "image", "type": "textarea", "value": {"text": [pasted]}}
    corrected = verdict_from_task(task, annotation([fixed, choice("edit")]), 3)
    assert corrected.corrected_conversation[1]["content"] == "a road runs through\nthe forest ."
    huge = {**fixed, "value": {"text": ["a road " * 1000]}}  # 7,000 characters: over input.max_text_chars
    with pytest.raises(InvalidVerdict, match="over the cap of 4,096"):
        verdict_from_task(task, annotation([huge, choice("edit")]), 3)


def test_edited_task_data_never_yields_a_verdict():
    task, _ = pushed_task(caption())
    task["data"]["dialog"][1]["content"] = "someone edited the task data in Label Studio"
    with pytest.raises(TaskDataError):
        verdict_from_task(task, annotation([choice("accept")]), 3)


def test_review_kinds():
    assert review_kind(caption()) == "caption_vqa"
    assert review_kind(vqa()) == "caption_vqa"
    assert review_kind(grounding()) == "grounding"
    assert review_kind(sample_row("d", "dior_conversa", "conversation", "i", [("[refer] a", "{<1><2><3><4>}"), ("[vqa] b", "no")])) == "conversa"


# -- apply --------------------------------------------------------------------------------------------------


def test_apply_review_outcomes_and_counts(tmp_path):
    accepted, rejected, corrected = caption("a", "rspg"), caption("r", "rspg"), caption("c", "rspg")
    unreviewed, free = caption("u", "rspg"), caption("f", "rsicd")
    changed = caption("x", "rspg")
    fixed = [dict(t) for t in corrected["conversation"]]
    fixed[1]["content"] = "a corrected caption of this image ."
    with ReviewLedger(tmp_path / "l.sqlite") as ledger:
        ledger.record(
            [
                verdict("accepted", 1, "a", sample_fingerprint(accepted)),
                verdict("rejected", 2, "r", sample_fingerprint(rejected)),
                verdict("corrected", 3, "c", sample_fingerprint(corrected), corrected_conversation=fixed),
                verdict("accepted", 4, "x", "fingerprint of older content"),
            ]
        )
        counts, held = ReviewCounts(), []
        stream = [accepted, rejected, corrected, unreviewed, free, changed]
        out = list(apply_review(stream, ReviewPolicy(), ledger, counts=counts, on_held_back=held.append))
        assert [(s["id"], s["review_status"]) for s in out] == [("a", "accepted"), ("c", "corrected"), ("f", "not_required")]
        assert out[1]["conversation"] == fixed
        assert [s["id"] for s in held] == ["u", "x"]
        totals = counts.to_json()["totals"]
        assert (totals["accepted"], totals["corrected"], totals["rejected"], totals["unreviewed_left_out"]) == (1, 1, 1, 2)
        assert counts.to_json()["content_changed_since_review"] == {"rspg": 1}
        included = list(apply_review(stream, ReviewPolicy(), ledger, include_unreviewed=True))
        assert [(s["id"], s["review_status"]) for s in included if s["review_status"] == "unreviewed"] == [("u", "unreviewed"), ("x", "unreviewed")]


def test_a_later_review_overrides_an_earlier_one(tmp_path):
    sample = caption("a", "rspg")
    fp = sample_fingerprint(sample)
    with ReviewLedger(tmp_path / "l.sqlite") as ledger:
        ledger.record([verdict("accepted", 1, "a", fp, at="2026-01-01T00:00:00Z"), verdict("rejected", 2, "a", fp, at="2026-01-02T00:00:00Z")])
        assert list(apply_review([sample], ReviewPolicy(), ledger)) == []


# -- queue and report -------------------------------------------------------------------------------------


def test_queue_reads_samples_and_held_back_queue_and_skips_reviewed(tmp_path):
    image = image_row(64, 48, 10)
    samples = [caption("a", "rspg"), caption("b", "rsicd"), vqa("v", "era_vqa")]
    for s in samples:
        s["image_ids"] = [image["image_id"]]
    out = write_build_output(tmp_path / "out", samples[:2], [image])
    write_review_queue(out, [samples[2]])
    assert {s["id"] for s in read_samples(out)} == {"a", "b", "v"}
    with ReviewLedger(tmp_path / "l.sqlite") as ledger:
        ledger.record([verdict("accepted", 1, "a", sample_fingerprint(samples[0]))])
        summary = QueueSummary()
        queued = list(review_queue(read_samples(out), ReviewPolicy(), ledger, summary))
    assert [q.sample["id"] for q in queued] == ["v"]
    assert summary.reviewed == 1 and summary.by_reason == {"required_source": 1}


def test_report_counts_and_agreement():
    verdicts = [
        verdict("accepted", 1, "a", annotator="ann"), verdict("accepted", 2, "a", annotator="bob"),
        verdict("accepted", 3, "b", annotator="ann"), verdict("corrected", 4, "b", annotator="bob", corrected_conversation=[]),
        verdict("rejected", 5, "c", annotator="ann"),
    ]  # fmt: skip
    report = review_report(verdicts)
    assert report.samples_reviewed == 3 and report.samples_reviewed_twice == 2
    assert report.exact_agreement == 0.5 and report.keep_drop_agreement == 1.0
    assert report.annotators["ann"].verdicts == {"accepted": 2, "rejected": 1}


# -- CLI without a server ------------------------------------------------------------------------------


def cli_output(tmp_path, *args, env=None):
    from typer.testing import CliRunner

    from skyeye_data.cli import app

    clean = {"LABEL_STUDIO_URL": "", "LABEL_STUDIO_API_KEY": "", "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT": str(tmp_path)}
    result = CliRunner().invoke(app, list(args), env={**clean, **(env or {})})
    return result.exit_code, " ".join(result.output.split())


def test_cli_queue_shows_waiting_samples_by_reason(tmp_path):
    image = image_row(32, 32, 1)
    samples = [caption("a", "rspg"), vqa("v", "rsvqa_lr", answer="maybe"), caption("b", "rsicd")]
    for s in samples:
        s["image_ids"] = [image["image_id"]]
    out = write_build_output(tmp_path / "out", samples, [image])
    code, text = cli_output(tmp_path, "review", "queue", str(out))
    assert code == 0 and "2 waiting" in text and "required_source" in text and "answer_out_of_vocabulary" in text
    recipe = tmp_path / "recipe.yaml"
    ledger = tmp_path / "not-yet" / "review.sqlite"
    recipe.write_text(f"name: x\nreview:\n  audit_rate: 1.0\n  ledger: {ledger}\n")
    code, text = cli_output(tmp_path, "review", "queue", str(out), "--recipe", str(recipe))
    assert code == 0 and "3 waiting" in text and "audit" in text
    assert not ledger.exists()  # reading the queue never creates the recipe's ledger
    recipe.write_text("review:\n  audit_rates: 1.0\n")
    code, text = cli_output(tmp_path, "review", "queue", str(out), "--recipe", str(recipe))
    assert code == 2 and "audit_rates" in text


def test_cli_push_and_pull_need_the_environment_and_say_so(tmp_path):
    image = image_row(32, 32, 1)
    sample = caption("a", "rspg")
    sample["image_ids"] = [image["image_id"]]
    out = write_build_output(tmp_path / "out", [sample], [image])
    code, text = cli_output(tmp_path, "review", "push", str(out), "--project", "p")
    assert code == 2 and "LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY" in text
    code, text = cli_output(tmp_path, "review", "pull", "--project", "p")
    assert code == 2 and "--ledger" in text
    code, text = cli_output(tmp_path, "review", "queue", str(tmp_path))
    assert code == 2 and "not a build output" in text


def test_cli_import_rejects_a_file_that_is_not_an_export(tmp_path):
    bad = tmp_path / "export.json"
    bad.write_text('{"not": "a list"}')
    code, text = cli_output(tmp_path, "review", "import", str(bad), "--ledger", str(tmp_path / "l.sqlite"))
    assert code == 2 and "not a Label Studio JSON export" in text


def test_rectangles_that_lost_their_ids_keep_their_place_by_overlap():
    sample = sample_row("p1", "rspg", "detection", "img1", [("[detection] the planes", "<p>the planes</p> {<10><20><30><40>}<delim>{<50><50><70><80>}")])
    task, prefilled = pushed_task(sample, 800, 600)
    renamed = [{**region, "id": f"copy{i}"} for i, region in enumerate(prefilled) if region["type"] == "rectanglelabels"]
    renamed[0]["value"] = pixels_to_rectangle_value([88, 120, 240, 240], 800, 600)  # moved a little
    result = verdict_from_task(task, annotation(renamed + [choice("edit")]), 3)
    assert result.corrected_conversation[1]["content"] == "<p>the planes</p> {<11><20><30><40>}<delim>{<50><50><70><80>}"
