"""Evaluation metrics against values computed by hand on small cases (no Java needed here)."""

from __future__ import annotations

import math
import shutil

import pytest

from skyeye_data.boxes import box_iou
from skyeye_data.evaluation.captions import fallback_tokenize, ptb_tokenize, score_tokenized
from skyeye_data.evaluation.grounding import GroundingItem, predicted_box, score_grounding
from skyeye_data.evaluation.published import PublishedError, load_published
from skyeye_data.evaluation.vqa import count_bucket, is_correct, normalize_answer, score_vqa

# -- IoU and grounding ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ([0, 0, 10, 10], [0, 0, 10, 10], 1.0),
        ([0, 0, 10, 10], [5, 5, 15, 15], 25 / 175),  # 5x5 overlap, 100 + 100 - 25 union
        ([0, 0, 10, 10], [0, 0, 5, 10], 0.5),  # half contained
        ([0, 0, 10, 10], [20, 20, 30, 30], 0.0),
        ([0, 0, 10, 10], [10, 0, 20, 10], 0.0),  # touching edges
    ],
)
def test_iou_of_known_boxes(a, b, expected):
    assert box_iou(a, b) == pytest.approx(expected)


def test_predicted_box_is_scaled_to_pixels_in_either_style():
    # 0..100 coordinates on a 100 x 200 image: x scales by 1, y by 2
    assert predicted_box("{<10><10><50><50>}", 100, 200) == [10, 20, 50, 100]
    assert predicted_box("<<10><10><50><50>>", 100, 200) == [10, 20, 50, 100]
    assert predicted_box("{<50><50><10><10>}", 100, 200) == [10, 20, 50, 100]  # corners put in order
    assert predicted_box("the bridge", 100, 200) is None


def _grounding_items() -> list[GroundingItem]:
    w, h = 100, 200
    return [
        # exact hit: IoU 1
        GroundingItem("p1", "{<10><10><50><50>}", [10, 20, 50, 100], w, h),
        # angle style, [0, 0, 50, 100] vs [0, 0, 50, 50]: 2500 / 5000 = 0.5
        GroundingItem("p2", "<<0><0><50><50>>", [0, 0, 50, 50], w, h),
        # [0, 0, 20, 40] vs [10, 20, 30, 60]: 10 x 20 = 200 / (800 + 800 - 200) = 1/7
        GroundingItem("p3", "{<0><0><20><20>}", [10, 20, 30, 60], w, h),
        # no box at all: a miss, listed
        GroundingItem("p4", "a small bridge over the river", [0, 0, 10, 10], w, h),
        # two boxes: the first one is the answer ([50, 100, 100, 200]), the second would miss
        GroundingItem("p5", "<p>the ship</p> {<50><50><100><100>}<delim>{<0><0><10><10>}", [50, 100, 100, 200], w, h),
    ]


def test_accuracy_at_thresholds_with_unparseable_and_angle_style():
    scores = score_grounding(_grounding_items())
    assert scores.count == 5
    assert scores.accuracy_at(0.5) == pytest.approx(3 / 5)  # p1, p2 (IoU exactly 0.5), p5
    assert scores.accuracy_at(0.25) == pytest.approx(3 / 5)
    assert scores.accuracy_at(0.75) == pytest.approx(2 / 5)
    assert scores.mean_iou == pytest.approx((1 + 0.5 + 1 / 7 + 0 + 1) / 5)
    # intersections 3200 + 2500 + 200 + 0 + 5000; unions 3200 + 5000 + 1400 + 100 (miss: ref area) + 5000
    assert scores.cumulative_iou == pytest.approx(10900 / 14700)
    assert scores.unparseable == [{"id": "p4", "prediction": "a small bridge over the river"}]


def test_all_misses_score_zero():
    items = [GroundingItem("x", "", [0, 0, 10, 10], 100, 100), GroundingItem("y", "{<90><90><100><100>}", [0, 0, 10, 10], 100, 100)]
    scores = score_grounding(items)
    assert scores.accuracy_at(0.5) == 0.0 and scores.mean_iou == 0.0 and scores.cumulative_iou == 0.0
    assert [m["id"] for m in scores.unparseable] == ["x"]


# -- VQA -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("Two.", "2"),
        ("2", "2"),
        ("Yes", "yes"),
        ("yes!", "yes"),
        ("The urban area", "urban area"),
        ("twenty-one", "21"),
        ("three hundred five", "305"),
        ("1,000", "1000"),
        ("2.0", "2"),
        ("between 1 and 10", "between 1 and 10"),
        ("  More than 1000. ", "more than 1000"),
    ],
)
def test_answer_normalisation(raw, normalized):
    assert normalize_answer(raw) == normalized


def test_exact_match_uses_normalisation():
    assert is_correct("Two.", ["2"], "count", count_buckets=False)
    assert is_correct("Yes", ["yes"], "presence", count_buckets=False)
    assert not is_correct("Yes, there is.", ["yes"], "presence", count_buckets=False)  # a sentence is not the answer
    assert not is_correct("3", ["2"], "count", count_buckets=False)
    assert is_correct("rural", ["urban", "rural"], "rural_urban", count_buckets=False)  # any reference


@pytest.mark.parametrize(
    ("count", "bucket"),
    [("0", "0"), ("1", "between 1 and 10"), ("10", "between 1 and 10"), ("11", "between 11 and 100"),
     ("100", "between 11 and 100"), ("101", "between 101 and 1000"), ("1000", "between 101 and 1000"),
     ("1001", "more than 1000")],
)
def test_rsvqa_lr_count_bucket_edges(count, bucket):
    assert count_bucket(count) == bucket


def test_count_buckets_only_when_asked_and_only_for_count_questions():
    assert not is_correct("42", ["57"], "count", count_buckets=False)
    assert is_correct("42", ["57"], "count", count_buckets=True)
    assert is_correct("between 11 and 100", ["57"], "count", count_buckets=True)
    assert not is_correct("4", ["57"], "count", count_buckets=True)
    assert not is_correct("42", ["57"], "area", count_buckets=True)


def test_average_and_overall_accuracy_by_hand():
    items = [
        ("yes", ["yes"], "presence"),
        ("no", ["no"], "presence"),
        ("no", ["yes"], "presence"),
        ("yes", ["yes"], "comp"),
    ]
    scores = score_vqa(items)
    assert scores.per_type["presence"].accuracy == pytest.approx(2 / 3)
    assert scores.per_type["comp"].accuracy == 1.0
    assert scores.average_accuracy == pytest.approx((2 / 3 + 1) / 2)  # AA: types weigh the same
    assert scores.overall_accuracy == pytest.approx(3 / 4)  # OA: questions weigh the same


def test_excluded_question_types_leave_every_figure():
    items = [("yes", ["yes"], "presence"), ("7", ["3"], "count"), ("1", ["3"], "count")]
    scores = score_vqa(items, exclude_types=["count"])
    assert set(scores.per_type) == {"presence"}
    assert scores.overall_accuracy == 1.0 and scores.excluded_types == ["count"]


# -- captions (pycocoevalcap scorers on tokenized text, METEOR needs Java and is tested end to end) --

CAPTIONS = {
    "1": ["a plane parked near the terminal"],
    "2": ["green trees cover the hill"],
    "3": ["cars drive along the highway"],
}


def test_identical_captions_score_one_and_cider_ten():
    scores = score_tokenized(CAPTIONS, CAPTIONS, meteor=None)
    for n in range(1, 5):
        assert scores[f"BLEU-{n}"] == pytest.approx(1.0, abs=1e-6)
    assert scores["ROUGE-L"] == pytest.approx(1.0)
    # CIDEr-D: cosine 1 for every n-gram order, times 10, no length penalty
    assert scores["CIDEr"] == pytest.approx(10.0, abs=1e-6)
    assert scores["METEOR"] is None


def test_disjoint_captions_score_zero():
    hypotheses = {"1": ["blue water with small waves"], "2": ["one large stadium seen"], "3": ["white snow on mountains"]}
    scores = score_tokenized(CAPTIONS, hypotheses, meteor=None)
    for name in ("BLEU-1", "BLEU-4", "ROUGE-L", "CIDEr"):
        assert scores[name] == pytest.approx(0.0, abs=1e-6), name


def test_bleu_by_hand_on_one_pair():
    # unigrams: the, red match 2 of 4 -> 0.5; bigrams: "the red" 1 of 3; equal lengths, no brevity penalty
    scores = score_tokenized({"1": ["the red car stops"]}, {"1": ["the red bus leaves"]}, meteor=None)
    assert scores["BLEU-1"] == pytest.approx(0.5, abs=1e-6)
    assert scores["BLEU-2"] == pytest.approx(math.sqrt(0.5 * 1 / 3), abs=1e-6)
    assert scores["BLEU-4"] < 1e-4


def test_all_references_of_an_image_are_used():
    one = score_tokenized({"1": ["a red roof"], "2": ["two white ships"]}, {"1": ["a red roof"], "2": ["a blue lake"]}, meteor=None)
    refs = {"1": ["a red roof"], "2": ["two white ships", "a blue lake"]}
    both = score_tokenized(refs, {"1": ["a red roof"], "2": ["a blue lake"]}, meteor=None)
    # corpus unigram precision: 3 of 6 words match with one reference, all 6 with both
    assert one["BLEU-1"] == pytest.approx(0.5, abs=1e-6)
    assert both["BLEU-1"] == pytest.approx(1.0, abs=1e-6) and both["BLEU-3"] == pytest.approx(1.0, abs=1e-6)


def test_fallback_tokenizer_mirrors_coco_punctuation_removal():
    assert fallback_tokenize(["A plane, parked at the airport.", "It's  two trees; some grass!"]) == [
        "a plane parked at the airport",
        "it 's two trees some grass",
    ]


@pytest.mark.skipif(shutil.which("java") is None, reason="the PTB tokenizer needs java")
def test_ptb_tokenizer_keeps_one_line_per_caption():
    # a line break inside a caption, non-ASCII text and an empty last caption must not shift lines
    captions = ["A plane,\nparked at the airport.", "Café near the “river”\u2028today", "Two trees; some grass", ""]
    assert ptb_tokenize(captions) == ["a plane parked at the airport", "café near the river today", "two trees some grass", ""]


# -- published results file ------------------------------------------------------------------------


def test_bundled_published_results_cite_every_figure():
    entries = load_published()
    for entry in entries:
        assert entry.cited_in.strip()
        assert all(0 <= v <= 1000 for v in entry.figures.values())


def test_malformed_published_file_is_a_clear_error(tmp_path):
    path = tmp_path / "published.yaml"
    path.write_text("entries:\n  - model: X\n    task: vqa\n    source: rsvqa_lr\n    figures: {average_accuracy: 80}\n")
    with pytest.raises(PublishedError, match="cited_in"):
        load_published(path)
    path.write_text("entries:\n  - model: X\n    task: vqa\n    source: s\n    figures: {a: high}\n    cited_in: p\n")
    with pytest.raises(PublishedError, match="not a number"):
        load_published(path)
