"""The box codec: exact values from DESIGN.md, and hypothesis round-trips."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from skyeye_data.boxes import (
    box_iou,
    clip_box,
    denormalize_box,
    format_box,
    format_boxes,
    format_phrase,
    format_phrases,
    normalize_box,
    normalize_value,
    parse_boxes,
    parse_phrases,
    polygon_to_box,
)


def test_dior_rsvg_golffield_tokens():
    # the golffield of DIOR-RSVG 00001.xml on its 800x800 image
    assert format_box([133, 237, 684, 672], 800, 800) == "{<17><30><86><84>}"


def test_angle_style():
    assert format_box([133, 237, 684, 672], 800, 800, style="angle") == "<<17><30><86><84>>"


@pytest.mark.parametrize(
    ("coordinate", "side", "expected"),
    [(1, 8, 13), (3, 8, 38), (0.5, 100, 1), (0.49, 100, 0), (-5, 100, 0), (120, 100, 100), (800, 800, 100)],
)
def test_round_half_up_and_clamp(coordinate, side, expected):
    # 1/8*100 = 12.5 -> 13 (half up, not banker's 12); 3/8*100 = 37.5 -> 38
    assert normalize_value(coordinate, side) == expected


def test_phrase_answer_reads_like_the_paper():
    answer = format_phrase("the three airplanes", [[31, 69, 48, 87], [62, 35, 79, 50]], 100, 100)
    assert answer == "<p>the three airplanes</p> {<31><69><48><87>}<delim>{<62><35><79><50>}"
    assert format_phrases([("a", [[0, 0, 50, 50]]), ("b", [[50, 50, 100, 100]])], 100, 100) == (
        "<p>a</p> {<0><0><50><50>} <p>b</p> {<50><50><100><100>}"
    )


def test_parser_is_tolerant():
    text = "here: { <1> <2><3> <4> } and <<5><6><7><8>> and {<10><20><30><40>|<-45>} and {<1><2><3>}"
    boxes = parse_boxes(text)
    assert [b.coords for b in boxes] == [(1, 2, 3, 4), (5, 6, 7, 8), (10, 20, 30, 40)]
    assert boxes[2].angle == -45
    assert boxes[0].angle is None


def test_parse_phrases_groups_boxes_by_phrase():
    groups = parse_phrases("<p>ships</p> {<1><2><3><4>}<delim>{<5><6><7><8>} <p>a bridge</p> {<9><9><20><20>}")
    assert [(p, [b.coords for b in bs]) for p, bs in groups] == [
        ("ships", [(1, 2, 3, 4), (5, 6, 7, 8)]),
        ("a bridge", [(9, 9, 20, 20)]),
    ]


def test_parser_clamps_out_of_range_values():
    assert parse_boxes("{<-3><0><120><50>}")[0].coords == (0, 0, 100, 50)


def test_polygon_to_box():
    assert polygon_to_box([10, 20, 30, 5, 40, 25, 12, 33]) == [10, 5, 40, 33]
    with pytest.raises(ValueError, match="even number"):
        polygon_to_box([1, 2, 3, 4, 5, 6, 7])


def test_clip_box():
    assert clip_box([-10, 5, 50, 60], 40, 40) == ([0.0, 5.0, 40.0, 40.0], True)
    assert clip_box([1, 2, 3, 4], 40, 40) == ([1.0, 2.0, 3.0, 4.0], False)
    assert clip_box([50, 50, 60, 60], 40, 40) == (None, True)


def test_iou():
    assert box_iou([0, 0, 10, 10], [0, 0, 10, 10]) == 1.0
    assert box_iou([0, 0, 10, 10], [5, 0, 15, 10]) == pytest.approx(50 / 150)
    assert box_iou([0, 0, 1, 1], [2, 2, 3, 3]) == 0.0


sides = st.integers(min_value=1, max_value=10_000)


@st.composite
def image_and_box(draw):
    width, height = draw(sides), draw(sides)
    x1 = draw(st.floats(0, width, allow_nan=False))
    x2 = draw(st.floats(0, width, allow_nan=False))
    y1 = draw(st.floats(0, height, allow_nan=False))
    y2 = draw(st.floats(0, height, allow_nan=False))
    return width, height, [min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2)]


@settings(max_examples=300, deadline=None)
@given(image_and_box(), st.sampled_from(["brace", "angle"]))
def test_format_then_parse_round_trips(case, style):
    width, height, box = case
    parsed = parse_boxes(format_box(box, width, height, style))
    assert len(parsed) == 1
    assert parsed[0].coords == normalize_box(box, width, height)


@settings(max_examples=300, deadline=None)
@given(image_and_box())
def test_pixels_survive_within_half_a_percent(case):
    width, height, box = case
    back = denormalize_box(normalize_box(box, width, height), width, height)
    for original, restored, side in zip(box, back, (width, height, width, height)):
        assert abs(original - restored) <= side * 0.005 + 1e-9


@settings(max_examples=200, deadline=None)
@given(st.lists(image_and_box(), min_size=1, max_size=6))
def test_delim_lists_round_trip(cases):
    width, height = cases[0][0], cases[0][1]
    boxes = [[min(v, s) for v, s in zip(b, (width, height, width, height))] for _, _, b in cases]
    text = format_boxes(boxes, width, height)
    assert text.count("<delim>") == len(boxes) - 1
    assert [p.coords for p in parse_boxes(text)] == [normalize_box(b, width, height) for b in boxes]


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_characters="<>{}"), min_size=1, max_size=30).map(str.strip).filter(bool),
       image_and_box())
def test_phrase_round_trip(phrase, case):
    width, height, box = case
    [(got_phrase, got_boxes)] = parse_phrases(format_phrase(phrase, [box], width, height))
    assert got_phrase == phrase
    assert got_boxes[0].coords == normalize_box(box, width, height)
