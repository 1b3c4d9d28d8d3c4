"""The paper's own sets: RSPG phrase grounding, ERA-VQA, the Conversa dialogs (mix builders).

Builds run on the synthetic mini corpus; answers are checked against the converted records
(``OUT/records/*.parquet``), with box tokens written out independently of the box codec.
"""

from __future__ import annotations

import json
import math
import shutil
from collections import Counter
from fractions import Fraction
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from skyeye_data.compile.build import build
from skyeye_data.compile.mixes._common import phraseable_classes
from skyeye_data.compile.phrases import count_phrase, plural
from skyeye_data.compile.options import MixOptions
from skyeye_data.compile.recipe import RecipeError, load_recipe, parse_recipe
from skyeye_data.convert import read_records
from skyeye_data.schema import DetectedObject, DetectionRecord, Provenance
from skyeye_data.sources import all_sources

PROJECT = Path(__file__).resolve().parents[1]
IDENTIFIERS = ("[caption]", "[vqa]", "[refer]", "[identify]", "[detection]")

MIX_RECIPE = """\
name: compose
seed: {seed}
sources:
  ucm_captions: {{}}
  sydney_captions: {{}}
  rsivqa: {{}}
  dior_rsvg: {{}}
  dior: {{}}
  dota: {{}}
  era: {{}}
mixes:
  rspg: {{builder: rspg, sources: [dior], options: {{max_phrases: 3, samples_per_image: 3}}}}
  era_vqa: {{builder: era_vqa, sources: [era], options: {{frames: 3, samples_per_image: 2}}}}
  ucm_conversa: {{builder: conversa, sources: [ucm_captions, rsivqa], options: {{turns: [caption, vqa], min_turns: 2, max_turns: 3}}}}
  sydney_conversa: {{builder: conversa, sources: [sydney_captions, rsivqa], options: {{turns: [caption, vqa], min_turns: 2, max_turns: 3}}}}
  dior_conversa: {{builder: conversa, sources: [dior_rsvg, dior], options: {{turns: [refer, identify, detection], min_turns: 2, max_turns: 5}}}}
  dota_conversa: {{builder: conversa, sources: [dota, rsivqa], options: {{turns: [vqa, detection], min_turns: 3, max_turns: 4}}}}
"""


def samples_of(out: Path) -> list[dict]:
    return [r for p in sorted((out / "samples").glob("*.parquet")) for r in pq.read_table(p).to_pylist()]


def records_of(out: Path, source: str) -> dict[str, object]:
    return {r.record_id: r for r in read_records(out / "records" / f"{source}.parquet")}


def tokens(box, width, height) -> str:
    """{<x1><y1><x2><y2>} written out here: v / side * 100, rounded half up, clamped."""
    sides = (width, height, width, height)
    values = [min(100, max(0, math.floor(Fraction(v) * 100 / s + Fraction(1, 2)))) for v, s in zip(box, sides)]
    return "{" + "".join(f"<{v}>" for v in values) + "}"


@pytest.fixture(scope="module")
def composed(mini_raw_root, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("compose")
    build(parse_recipe(MIX_RECIPE.format(seed=0)), mini_raw_root, out)
    return out


# -- phrases -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("label", "count", "phrase"),
    [
        ("airplane", 3, "the three airplanes"),
        ("airplane", 1, "the airplane"),
        ("storagetank", 2, "the two storage tanks"),
        ("Expressway-Service-area", 1, "the expressway service area"),
        ("overpass", 4, "the four overpasses"),
        ("small-vehicle", 24, "the 24 small vehicles"),
        ("chimney", 2, "the two chimneys"),
        ("baseballfield", 20, "the twenty baseball fields"),
    ],
)
def test_count_phrases_read_as_english(label, count, phrase):
    assert count_phrase(label, count) == phrase


def test_plural_rules():
    assert [plural(w) for w in ("ship", "bus", "factory", "harbor", "church")] == ["ships", "buses", "factories", "harbors", "churches"]


def detection_record(objects) -> DetectionRecord:
    return DetectionRecord(
        source="dior", record_id="dior:1", split="train", image_path="a.jpg", image_key="dior:1", width=800, height=800,
        provenance=Provenance(raw_file="a.xml"),
        objects=[DetectedObject(label=label, box=box, difficult=difficult) for label, box, difficult in objects],
    )  # fmt: skip


def test_limits_drop_whole_classes_with_reasons():
    record = detection_record(
        [("ship", [0, 300, 10, 330], False), ("ship", [0, 10, 10, 40], False)]  # two ships, listed bottom first
        + [("vehicle", [i * 20, 0, i * 20 + 12, 12], False) for i in range(4)]  # four vehicles
        + [("airplane", [100, 100, 200, 200], False), ("airplane", [300, 300, 302, 340], False)]  # one 2 px wide
        + [("bridge", [400, 400, 500, 500], True)]
    )
    kept, left_out = phraseable_classes(record, MixOptions(max_boxes=3, min_box_side=4, skip_difficult=True))
    assert set(kept) == {"ship"}
    assert kept["ship"] == [[0, 10, 10, 40], [0, 300, 10, 330]]  # reading order: top first
    assert "4 boxes, more than max_boxes 3" in left_out["vehicle"]
    assert "2 px" in left_out["airplane"] and "min_box_side 4" in left_out["airplane"]
    assert "difficult" in left_out["bridge"]
    kept, left_out = phraseable_classes(record, MixOptions(max_boxes=10, min_box_side=0))
    assert set(kept) == {"ship", "vehicle", "airplane", "bridge"} and not left_out


# -- RSPG ----------------------------------------------------------------------------------------


def test_rspg_names_every_box_of_each_class_with_its_count(composed):
    records = records_of(composed, "dior")
    rspg = [s for s in samples_of(composed) if s["source"] == "rspg"]
    train = [r for r in records.values() if r.split == "train"]
    assert rspg and all(s["task"] == "detection" for s in rspg)
    seen_multi = False
    for sample in rspg:
        provenance = json.loads(sample["provenance"])
        record = records[provenance["record_ids"][0]]
        assert record.split == "train"
        user, answer = (t["content"] for t in sample["conversation"])
        expected_groups = []
        for label in provenance["classes"]:
            boxes = sorted((o.box for o in record.objects if o.label == label), key=lambda b: (b[1], b[0]))
            phrase = count_phrase(label, len(boxes))
            assert phrase in user
            expected_groups.append(f"<p>{phrase}</p> " + "<delim>".join(tokens(b, record.width, record.height) for b in boxes))
        assert answer == " ".join(expected_groups)
        assert user.startswith("[detection] ")
        seen_multi |= len(provenance["classes"]) > 1
    assert seen_multi, "max_phrases 3 must give some multi-phrase answers"
    # several samples per image never reuse a class
    by_record = Counter()
    for sample in rspg:
        provenance = json.loads(sample["provenance"])
        for label in provenance["classes"]:
            by_record[(provenance["record_ids"][0], label)] += 1
    assert max(by_record.values()) == 1
    assert {json.loads(s["provenance"])["record_ids"][0] for s in rspg} == {r.record_id for r in train}


def test_rspg_limits_are_quarantined_and_counted(mini_raw_root, tmp_path):
    recipe = parse_recipe(MIX_RECIPE.format(seed=0).replace("options: {max_phrases: 3, samples_per_image: 3}", "options: {min_box_side: 1000}"))
    result = build(recipe, mini_raw_root, tmp_path)
    train = [r for r in read_records(tmp_path / "records" / "dior.parquet") if r.split == "train"]
    assert sum(result.mixes["rspg"].samples.values()) == 0
    assert result.mixes["rspg"].quarantined == len(train) > 0
    lines = [json.loads(x) for x in (tmp_path / "quarantine.jsonl").read_text().splitlines()]
    rspg = [q for q in lines if q.get("mix") == "rspg"]
    assert len(rspg) == len(train) and all("below min_box_side 1000" in q["reason"] for q in rspg)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["mixes"]["rspg"]["quarantined"] == len(train)


# -- ERA-VQA -------------------------------------------------------------------------------------


def test_era_vqa_asks_the_event_of_each_train_video_on_its_frames(composed):
    from skyeye_data.compile.mixes.era_vqa import EVENT_QUESTIONS

    records = records_of(composed, "era")
    era = [s for s in samples_of(composed) if s["source"] == "era_vqa"]
    train = {rid for rid, r in records.items() if r.split == "train"}
    per_video = Counter(json.loads(s["provenance"])["record_ids"][0] for s in era)
    assert set(per_video) == train and set(per_video.values()) == {2}
    questions = Counter()
    for sample in era:
        record = records[json.loads(sample["provenance"])["record_ids"][0]]
        user, answer = (t["content"] for t in sample["conversation"])
        assert user.startswith("[vqa] ") and user.removeprefix("[vqa] ") in EVENT_QUESTIONS
        assert answer == record.label and sample["task"] == "vqa"
        assert len(sample["image_ids"]) == 3  # frames: 3
        questions[(record.record_id, user)] += 1
    assert max(questions.values()) == 1, "two samples of one video ask two different phrasings"
    assert len({q for _, q in questions}) > 2


# -- Conversa ------------------------------------------------------------------------------------


def test_conversa_dialogs_join_records_of_the_same_image(composed):
    samples = samples_of(composed)
    records = {src: records_of(composed, src) for src in ("ucm_captions", "sydney_captions", "rsivqa", "dior_rsvg", "dior", "dota")}
    limits = {"ucm_conversa": (2, 3, {"[caption]", "[vqa]"}), "sydney_conversa": (2, 3, {"[caption]", "[vqa]"}),
              "dior_conversa": (2, 5, {"[refer]", "[identify]", "[detection]"}), "dota_conversa": (3, 4, {"[vqa]", "[detection]"})}  # fmt: skip
    for name, (low, high, allowed) in limits.items():
        dialogs = [s for s in samples if s["source"] == name]
        assert dialogs, name
        for dialog in dialogs:
            turns = dialog["conversation"]
            assert dialog["task"] == "conversation" and [t["role"] for t in turns] == ["user", "assistant"] * (len(turns) // 2)
            users = [t["content"] for t in turns if t["role"] == "user"]
            kinds = {u.split(" ", 1)[0] for u in users}
            assert kinds <= allowed and len(kinds) >= 2 and low <= len(users) <= high, (name, users)
            provenance = json.loads(dialog["provenance"])
            used = [records[s][r] for s, r in zip(provenance["sources"], provenance["record_ids"])]
            assert len({r.image_key for r in used}) == 1 and len({r.image_sha256 for r in used}) == 1
            assert all(r.split == "train" for r in used)
            check_turn_answers(turns, used)


def check_turn_answers(turns, used) -> None:
    """Each answer is the joined records' own: a question's answer, an expression's box, a caption."""
    questions = {r.question: r.answer for r in used if r.task == "vqa"}
    expressions = {r.expression: tokens(r.boxes[0], r.width, r.height) for r in used if r.task == "grounding"}
    captions = {c.strip() for r in used if r.task == "caption" for c in r.captions}
    for user, answer in zip(turns[0::2], turns[1::2]):
        text, reply = user["content"], answer["content"]
        if text.startswith("[vqa]"):
            assert any(q in text and questions[q] == reply for q in questions), text
        elif text.startswith("[refer]"):
            assert any(e in text and expressions[e] == reply for e in expressions), text
        elif text.startswith("[identify]"):
            assert expressions.get(reply) and expressions[reply] in text, text
        elif text.startswith("[caption]"):
            assert reply in captions
        else:
            assert text.startswith("[detection]") and reply.startswith("<p>")


def test_conversa_is_deterministic_and_follows_the_seed(composed, mini_raw_root, tmp_path):
    again = tmp_path / "again"
    build(parse_recipe(MIX_RECIPE.format(seed=0)), mini_raw_root, again)
    first = {s["id"]: s["conversation"] for s in samples_of(composed) if s["task"] == "conversation"}
    assert {s["id"]: s["conversation"] for s in samples_of(again) if s["task"] == "conversation"} == first
    other = tmp_path / "other"
    build(parse_recipe(MIX_RECIPE.format(seed=7)), mini_raw_root, other)
    reseeded = {s["id"]: s["conversation"] for s in samples_of(other) if s["task"] == "conversation"}
    assert reseeded != first  # another seed draws other turns, orders or phrasings


def test_conversa_turn_order_from_the_recipe(mini_raw_root, tmp_path):
    text = MIX_RECIPE.format(seed=0).replace(
        "options: {turns: [vqa, detection], min_turns: 3, max_turns: 4}",
        "options: {turns: [detection, vqa], min_turns: 2, max_turns: 4, shuffle_turns: false}",
    )
    build(parse_recipe(text), mini_raw_root, tmp_path)
    dialogs = [s for s in samples_of(tmp_path) if s["source"] == "dota_conversa"]
    assert dialogs
    for dialog in dialogs:
        kinds = [t["content"].split(" ", 1)[0] for t in dialog["conversation"] if t["role"] == "user"]
        assert kinds == sorted(kinds, key=["[detection]", "[vqa]"].index)


def test_conversa_min_tasks_holds_in_every_dialog(mini_raw_root, tmp_path):
    text = MIX_RECIPE.format(seed=0).replace(
        "options: {turns: [refer, identify, detection], min_turns: 2, max_turns: 5}",
        "options: {turns: [refer, identify, detection], min_turns: 2, max_turns: 2, min_tasks: 3}",
    )
    result = build(parse_recipe(text), mini_raw_root, tmp_path)
    dialogs = [s for s in samples_of(tmp_path) if s["source"] == "dior_conversa"]
    for dialog in dialogs:
        kinds = {t["content"].split(" ", 1)[0] for t in dialog["conversation"] if t["role"] == "user"}
        assert kinds == {"[refer]", "[identify]", "[detection]"}
    mix = result.mixes["dior_conversa"]
    images = {r.image_key for r in read_records(tmp_path / "records" / "dior_rsvg.parquet") if r.split == "train"}
    assert dialogs and len(dialogs) + mix.quarantined == len(images)
    reasons = [json.loads(x)["reason"] for x in (tmp_path / "quarantine.jsonl").read_text().splitlines()]
    assert sum("at least 3" in r for r in reasons) == mix.quarantined > 0


def test_same_key_different_content_is_not_joined(mini_raw_root, tmp_path):
    """UCM images replaced by other bytes under the same names: RSIVQA's questions must not join them."""
    from skyeye_data.synth import synth_image

    raw = tmp_path / "raw"
    for name in ("ucm_captions", "rsivqa"):
        shutil.copytree(mini_raw_root / name, raw / name)
    shutil.copytree(raw / "ucm_captions", raw / "ucm_other")
    for image in (raw / "ucm_other").rglob("*.tif"):  # images/ or imgs/, as the layout has it
        synth_image(image, 32, 32, seed=f"other:{image.name}")
    text = """\
name: clash
sources:
  ucm_captions: {raw: ucm_other}
  rsivqa: {}
mixes:
  ucm_conversa: {builder: conversa, sources: [ucm_captions, rsivqa], options: {turns: [caption, vqa]}}
"""
    result = build(parse_recipe(text), raw, tmp_path / "out")
    ucm_train = [r for r in read_records(tmp_path / "out" / "records" / "ucm_captions.parquet") if r.split == "train"]
    keys = {r.image_key for r in ucm_train}
    rsivqa_on_them = [r for r in read_records(tmp_path / "out" / "records" / "rsivqa.parquet") if r.split == "train" and r.image_key in keys]
    assert rsivqa_on_them, "the mini corpus must ask RSIVQA questions of some UCM train image"
    mix = result.mixes["ucm_conversa"]
    assert sum(mix.samples.values()) == 0
    assert mix.parts_quarantined == len(rsivqa_on_them) and mix.quarantined == len(ucm_train)
    lines = [json.loads(x) for x in (tmp_path / "out" / "quarantine.jsonl").read_text().splitlines()]
    assert sum("names different content" in q["reason"] for q in lines) == len(rsivqa_on_them)


# -- recipes -------------------------------------------------------------------------------------


def test_conversa_needs_turns_and_sane_turn_counts():
    base = MIX_RECIPE.format(seed=0)
    with pytest.raises(RecipeError, match="needs options.turns"):
        parse_recipe(base.replace("options: {turns: [caption, vqa], min_turns: 2, max_turns: 3}}", "options: {}}"))
    with pytest.raises(RecipeError, match="min_turns is larger than max_turns"):
        parse_recipe(base.replace("min_turns: 3, max_turns: 4", "min_turns: 5, max_turns: 4"))


def test_paper_recipes_declare_every_set_of_the_table():
    paper = load_recipe(PROJECT / "recipes" / "skyeye-968k.yaml")
    clean = load_recipe(PROJECT / "recipes" / "skyeye-968k-clean.yaml")
    assert not paper.dedupe and clean.dedupe
    # the paper's construction keeps each source's published split; the clean set keeps every eval image out
    assert (paper.leak_guard, clean.leak_guard) == ("within_source", "all")
    with_expected = {n for n, s in {**paper.sources, **paper.mixes}.items() if s.expected}
    assert with_expected == {
        "rsicd", "rsitmd", "ucm_captions", "sydney_captions", "nwpu_captions", "capera", "rsivqa", "rsvqa_lr",
        "rsvqa_hr", "rsvg", "dior_rsvg", "rspg", "era_vqa", "dota_conversa", "dior_conversa", "ucm_conversa", "sydney_conversa",
    }  # fmt: skip
    # the clean recipe is the paper recipe with dedupe on and the whole leak guard (and its own name)
    strip = lambda r: r.model_dump() | {"name": "", "description": "", "dedupe": None, "leak_guard": None}  # noqa: E731
    clean_body = strip(clean)
    for spec in [*clean_body["sources"].values(), *clean_body["mixes"].values()]:
        spec["expected"] = None
    paper_body = strip(paper)
    for spec in [*paper_body["sources"].values(), *paper_body["mixes"].values()]:
        spec["expected"] = None
    assert clean_body == paper_body


def test_demo_recipe_builds_every_mix_from_the_records_it_needs(mini_raw_root, tmp_path):
    demo = load_recipe(PROJECT / "recipes" / "demo.yaml")
    assert {m.builder for m in demo.mixes.values()} == {"rspg", "era_vqa", "conversa"}
    # each mix reads sources of the kind its builder joins on (the recipe check guarantees the names exist)
    tasks = {name: all_sources()[name].task for name in demo.sources}
    for name, mix in demo.mixes.items():
        first = tasks[mix.sources[0]]
        assert first == {"rspg": "detection", "era_vqa": "classification"}.get(mix.builder, first), name
    result = build(demo, mini_raw_root, tmp_path / "out")
    samples = [r for p in sorted((tmp_path / "out" / "samples").glob("*.parquet")) for r in pq.read_table(p).to_pylist()]
    by_source = Counter(s["source"] for s in samples)
    for name, mix in demo.mixes.items():
        tally = result.mixes[name]
        assert tally.status == "built" and tally.samples_total > 0, name
        assert by_source[name] == tally.samples_total == sum((mix.expected or tally.samples).values()), name
        for sample in (s for s in samples if s["source"] == name):
            provenance = json.loads(sample["provenance"])
            assert set(provenance["sources"]) <= set(mix.sources) and provenance["builder"] == mix.builder
            assert sample["image_ids"] and sample["conversation"][0]["role"] == "user"
