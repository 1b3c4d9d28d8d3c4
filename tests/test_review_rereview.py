"""Review pieces of issue 13 that need no server: what the annotator sees, one verdict vocabulary,
re-review chains, conflict rules, the build's review settings, display images, the report."""

from __future__ import annotations

import io
import sqlite3

import pytest
from PIL import Image

from review_server import image_row, sample_row, write_build_output
from skyeye_data.review.apply import ReviewGate, ReviewSetupError, open_review_gate
from skyeye_data.review.chain import VerdictChains, settle
from skyeye_data.review.corrections import InvalidVerdict, pixels_to_rectangle_value, verdict_from_task
from skyeye_data.review.fingerprint import sample_fingerprint
from skyeye_data.review.images import display_copy
from skyeye_data.review.ledger import ReviewLedger, Verdict
from skyeye_data.review.policy import ReviewPolicy
from skyeye_data.review.queue import QueuedSample, read_samples, review_queue
from skyeye_data.review.report import review_report
from skyeye_data.review.task_view import distinct_boxes, words
from skyeye_data.review.tasks import task_payload

DIALOG = [
    ("[refer] the bridge over the river", "{<20><30><40><45>}"),
    ("[identify] this {<20><30><40><45>} is", "the bridge"),
    ("[detection] the ships", "<p>the two ships</p> {<50><50><60><60>}<delim>{<70><70><80><80>}"),
]


def conversa(sample_id="d1"):
    return sample_row(sample_id, "dior_conversa", "conversation", "img1", DIALOG)


def pushed(sample, width=400, height=300):
    payload = task_payload(QueuedSample(sample, sample_fingerprint(sample), ["required_source"]), {"width": width, "height": height}, "/x.png")
    return {"id": 7, "data": payload["data"], "project": 2}, payload["predictions"][0]["result"]


def annotation(result, annotation_id=5, completed_by=1, at="2026-11-30T10:00:00Z", lead_time=12.5):
    return {"id": annotation_id, "completed_by": completed_by, "updated_at": at, "result": result, "lead_time": lead_time}


def choice(value):
    return {"from_name": "verdict", "to_name": "image", "type": "choices", "value": {"choices": [value]}}


# -- what the annotator sees -------------------------------------------------------------------------


def test_one_region_per_distinct_box_labelled_with_its_phrase_and_turns():
    boxes = distinct_boxes(conversa()["conversation"])
    assert [b.label for b in boxes] == [
        "box 1 · turns 2, 3 · the bridge",  # the [identify] answer names it more directly than the [refer] expression
        "box 2 · turn 6 · the two ships",
        "box 3 · turn 6 · the two ships",
    ]
    assert len({b.colour for b in boxes}) == 3
    identify_only = distinct_boxes([{"role": "user", "content": "[identify] this {<1><2><3><4>} is"}, {"role": "assistant", "content": "a ship"}])
    assert identify_only[0].label == "box 1 · turn 1 · a ship"
    assert words("<p>the two ships</p> {<50><50><60><60>}<delim>{<70><70><80><80>}", boxes) == "the two ships [box 2], [box 3]"


def test_task_data_has_no_source_key_and_shows_turns_flags_and_rule():
    task, prefilled = pushed(conversa())
    data = task["data"]
    assert "source" not in data and data["dataset"] == "dior_conversa"  # $source is the task object in Label Studio
    assert [t["title"] for t in data["dialog"]][:2] == ["turn 1 · user", "turn 2 · assistant"]
    assert data["dialog"][3]["words"] == "the bridge" and data["dialog"][2]["words"] == "[identify] this [box 1] is"
    assert data["reasons"] == "flags: required_source" and "keys: a accept" in data["rule"]
    assert [label["value"] for label in data["box_labels"]][0].startswith("box 1 · turns 2, 3")
    assert [r["id"] for r in prefilled if r["type"] == "rectanglelabels"] == ["box1", "box2", "box3"]


def test_moving_a_shared_box_changes_every_turn_that_names_it():
    sample = conversa()
    task, prefilled = pushed(sample)
    regions = [dict(r) for r in prefilled if r["type"] == "rectanglelabels"]
    regions[0] = {**regions[0], "value": pixels_to_rectangle_value([100, 120, 180, 150], 400, 300)}
    result = verdict_from_task(task, annotation(regions + [choice("edit")]), 2, {1: "ann@example.org"})
    assert result.verdict == "corrected" and result.annotator == "ann@example.org" and result.lead_time_s == 12.5
    texts = [t["content"] for t in result.corrected_conversation]
    assert texts[1] == "{<25><40><45><50>}" and texts[2] == "[identify] this {<25><40><45><50>} is"
    assert texts[5] == DIALOG[2][1]  # the other boxes stay
    assert result.corrected_fingerprint == sample_fingerprint({**sample, "conversation": result.corrected_conversation})


def test_one_verdict_vocabulary_and_contradictions_are_invalid():
    task, prefilled = pushed(conversa())
    assert verdict_from_task(task, annotation(prefilled + [choice("accept")]), 2).verdict == "accepted"
    with pytest.raises(InvalidVerdict, match="edit was chosen but no text or box was changed"):
        verdict_from_task(task, annotation(prefilled + [choice("edit")]), 2)
    moved = [dict(r) for r in prefilled]
    moved[0] = {**moved[0], "value": pixels_to_rectangle_value([0, 0, 10, 10], 400, 300)}
    with pytest.raises(InvalidVerdict, match="accept was chosen"):
        verdict_from_task(task, annotation(moved + [choice("accept")]), 2)
    with pytest.raises(InvalidVerdict, match="unknown verdict choice 'edited'"):
        verdict_from_task(task, annotation(moved + [choice("edited")]), 2)
    assert verdict_from_task(task, annotation([]), 2) is None


def test_display_copies_are_png_or_jpeg_at_a_screen_size():
    tiff = io.BytesIO()
    Image.new("RGB", (256, 256), (10, 200, 30)).save(tiff, format="TIFF")
    data, extension = display_copy(tiff.getvalue(), "TIFF")
    assert extension == "jpg" and Image.open(io.BytesIO(data)).format == "JPEG" and Image.open(io.BytesIO(data)).size == (768, 768)
    big = io.BytesIO()
    Image.new("I;16", (4000, 2000)).save(big, format="PNG")
    data, extension = display_copy(big.getvalue(), "PNG")
    assert extension == "png" and Image.open(io.BytesIO(data)).size == (1024, 512)


# -- chains, conflicts, second look ------------------------------------------------------------------------


def v(kind, annotation_id, sample_id, fingerprint, annotator="ann", at="2026-01-01T00:00:00Z", **extra):
    return Verdict(sample_id, fingerprint, kind, annotator, at, task_id=annotation_id, annotation_id=annotation_id, **extra)


def test_conflict_rules():
    votes = [v("accepted", 1, "s", "f", "ann"), v("rejected", 2, "s", "f", "bob"), v("accepted", 3, "s", "f", "cid")]
    assert settle(votes, "any_reject_wins").verdict == "rejected"
    assert settle(votes, "majority").verdict == "accepted"
    assert settle(votes[:2], "majority").verdict == "rejected"  # a tie rejects
    assert settle(votes, "latest").annotation_id == 3
    fixed = v("corrected", 4, "s", "f", "dan", corrected_conversation=[])
    assert settle([votes[0], fixed], "any_reject_wins").verdict == "corrected"
    # the same annotator changing their mind counts once, with the later verdict
    again = [v("rejected", 1, "s", "f", "ann"), v("accepted", 2, "s", "f", "ann", at="2026-01-02T00:00:00Z")]
    assert settle(again, "any_reject_wins").verdict == "accepted"


def second_round(tmp_path, second_kind, image_id="img1"):
    sample = sample_row("r1", "rspg", "detection", image_id, [("[detection] the ship", "<p>the ship</p> {<10><10><20><20>}")])
    fixed = [dict(t) for t in sample["conversation"]]
    fixed[1]["content"] = "<p>the ship</p> {<12><10><22><20>}"
    corrected = {**sample, "conversation": fixed}
    ledger = ReviewLedger(tmp_path / "l.sqlite")
    ledger.record([v("corrected", 1, "r1", sample_fingerprint(sample), corrected_conversation=fixed,
                     corrected_fingerprint=sample_fingerprint(corrected))])  # fmt: skip
    if second_kind:
        ledger.record([v(second_kind, 2, "r1", sample_fingerprint(corrected), "bob", at="2026-01-03T00:00:00Z")])
    return sample, corrected, ledger


@pytest.mark.parametrize("second, outcome", [(None, "corrected"), ("accepted", "corrected"), ("rejected", "rejected")])
def test_the_build_applies_the_last_verdict_of_the_chain(tmp_path, second, outcome):
    sample, corrected, ledger = second_round(tmp_path, second)
    with ledger:
        result, row = ReviewGate(ReviewPolicy(), ledger).decide(sample)
    assert result == outcome
    if outcome == "corrected":
        assert row["conversation"] == corrected["conversation"] and row["review_status"] == "corrected"
    else:
        assert row is None


def test_a_corrected_sample_goes_back_only_for_a_second_look(tmp_path):
    image = image_row(32, 32, 1)
    sample, corrected, ledger = second_round(tmp_path, None, image["image_id"])
    out = write_build_output(tmp_path / "out", [sample], [image])
    with ledger:
        assert list(review_queue(read_samples(out), ReviewPolicy(), ledger)) == []
        queued = list(review_queue(read_samples(out), ReviewPolicy(second_look=True), ledger))
        assert [(q.reasons, q.sample["conversation"]) for q in queued] == [(["second_look"], corrected["conversation"])]
        # the rebuilt output holds the corrected content itself: the same answer
        out2 = write_build_output(tmp_path / "out2", [corrected], [image])
        assert list(review_queue(read_samples(out2), ReviewPolicy(), ledger)) == []
        assert [q.reasons for q in review_queue(read_samples(out2), ReviewPolicy(second_look=True), ledger)] == [["second_look"]]
        chains = VerdictChains(ledger.verdicts())
        ledger.record([v("rejected", 2, "r1", queued[0].fingerprint, "bob", at="2026-01-03T00:00:00Z")])
        assert len(chains.chain("r1", sample_fingerprint(sample), sample["image_ids"])) == 1
        assert list(review_queue(read_samples(out), ReviewPolicy(second_look=True), ledger)) == []


# -- the build's review settings ------------------------------------------------------------------------


def test_the_build_needs_a_ledger_when_its_policy_routes_samples(tmp_path):
    with pytest.raises(ReviewSetupError, match="--ledger"):
        open_review_gate(ReviewPolicy(), tmp_path / "out")
    gate, warnings = open_review_gate(ReviewPolicy(), tmp_path / "out", include_unreviewed=True)
    assert gate.include_unreviewed and "unreviewed" in warnings[0]
    assert open_review_gate(None, tmp_path / "out") == (None, [])
    gate, warnings = open_review_gate(None, tmp_path / "out", ledger=tmp_path / "l.sqlite")  # a recipe without review:
    assert gate.policy == ReviewPolicy() and "does not exist yet" in warnings[0]
    gate, _ = open_review_gate(ReviewPolicy(ledger=tmp_path / "a.sqlite"), tmp_path / "out", ledger=tmp_path / "b.sqlite")
    assert "b.sqlite" in _[0]  # --ledger wins over review.ledger


def test_a_schema_1_ledger_is_upgraded_in_place(tmp_path):
    db = sqlite3.connect(tmp_path / "old.sqlite")
    db.execute(
        "CREATE TABLE verdicts (row_id INTEGER PRIMARY KEY, sample_id TEXT NOT NULL, fingerprint TEXT NOT NULL, verdict TEXT NOT NULL,"
        " corrected_conversation TEXT, corrected_boxes TEXT, annotator TEXT NOT NULL, reviewed_at TEXT NOT NULL, project_id INTEGER,"
        " task_id INTEGER NOT NULL, annotation_id INTEGER NOT NULL, UNIQUE (task_id, annotation_id))"
    )
    db.execute("INSERT INTO verdicts (sample_id, fingerprint, verdict, annotator, reviewed_at, task_id, annotation_id) VALUES ('a', 'f', 'accepted', 'u', 't', 1, 1)")
    db.commit()
    db.close()
    with ReviewLedger(tmp_path / "old.sqlite") as ledger:
        assert ledger.verdicts()[0].lead_time_s is None and ledger.count() == 1


def test_report_per_annotator_rates_and_time():
    verdicts = [
        v("accepted", 1, "a", "f", "ann@x", lead_time_s=10.0), v("rejected", 2, "b", "f", "ann@x", lead_time_s=20.0),
        v("corrected", 3, "a", "f", "bob@x", corrected_conversation=[], lead_time_s=30.0), v("accepted", 4, "c", "f", "bob@x"),
    ]  # fmt: skip
    report = review_report(verdicts)
    ann, bob = report.annotators["ann@x"], report.annotators["bob@x"]
    assert len(ann.tasks) == 2 and ann.rate("accepted") == 0.5 and ann.rate("rejected") == 0.5 and ann.seconds_per_task == 15.0
    assert bob.rate("corrected") == 0.5 and bob.seconds_per_task == 30.0
    assert report.pairs == 1 and report.exact_agreements == 0 and report.keep_drop_agreements == 1


def test_local_files_stay_an_option_for_a_shared_filesystem(tmp_path):
    from skyeye_data.review.images import LocalFilesStore

    store = LocalFilesStore(tmp_path, tmp_path / "skyeye-review" / "demo")
    urls = store.urls_for({"abc.png": b"png bytes"})
    assert urls == {"abc.png": "/data/local-files/?d=skyeye-review/demo/abc.png"}
    assert (tmp_path / "skyeye-review" / "demo" / "abc.png").read_bytes() == b"png bytes"
