"""The routing policy computes each view of a sample once (SampleView): its verdicts must be exactly
those of the straightforward per-check computation it replaced (kept here as the reference)."""

from __future__ import annotations

import fnmatch
import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from skyeye_data.boxes import format_box, parse_boxes
from skyeye_data.review.policy import FLAG_CHECKS, FLAG_NAMES, QuestionType, ReviewPolicy, SampleView, normalize_source_name

# -- the reference: each check walks the conversation itself (the code before SampleView) ------------

_TASK = re.compile(r"^\s*\[(\w+)\]\s*")


def ref_exchanges(sample):
    turns = list(sample["conversation"])
    result, task = [], ""
    for i, turn in enumerate(turns):
        if turn["role"] != "user":
            continue
        match = _TASK.match(turn["content"])
        task = match.group(1) if match else task
        instruction = turn["content"][match.end() :] if match else turn["content"]
        answer = turns[i + 1]["content"] if i + 1 < len(turns) and turns[i + 1]["role"] == "assistant" else ""
        result.append((task, instruction, answer))
    return result


def ref_answers(sample):
    return [t["content"] for t in sample["conversation"] if t["role"] == "assistant"]


def ref_shares(sample):
    return [max(0.0, b.x2 - b.x1) * max(0.0, b.y2 - b.y1) / 10_000 for t in sample["conversation"] for b in parse_boxes(t["content"])]


def ref_allows(qt: QuestionType, answer: str) -> bool:
    answer = answer.strip().rstrip(".").strip()
    if qt.answer_pattern is not None:
        return re.fullmatch(qt.answer_pattern, answer, re.IGNORECASE) is not None
    return answer.lower() in {a.lower() for a in qt.answers}


def ref_duplicated(policy, sample):
    seen = set()
    for answer in ref_answers(sample):
        key = " ".join(answer.lower().split())
        if len(key.split()) >= policy.duplicate_min_words and key in seen:
            return True
        seen.add(key)
    instructions = [" ".join(i.lower().split()) for _, i, _ in ref_exchanges(sample)]
    return len(instructions) != len(set(instructions))


def ref_oov(policy, sample):
    return any(
        re.search(qt.question_pattern, q.strip(), re.IGNORECASE) is not None and not ref_allows(qt, a)
        for task, q, a in ref_exchanges(sample)
        if task == "vqa"
        for qt in policy.question_types
    )


def ref_captions(sample):
    return [len(a.split()) for task, _, a in ref_exchanges(sample) if task == "caption"]


REFERENCE = {
    "tiny_box": lambda p, s: any(x < p.tiny_box_area for x in ref_shares(s)),
    "whole_image_box": lambda p, s: any(x >= p.whole_image_area for x in ref_shares(s)),
    "empty_answer": lambda p, s: any(not re.sub(r"[\W_]+", "", a) for *_, a in ref_exchanges(s)) or not ref_answers(s),
    "duplicated_answer": ref_duplicated,
    "answer_out_of_vocabulary": ref_oov,
    "caption_too_short": lambda p, s: any(n < p.caption_min_words for n in ref_captions(s)),
    "caption_too_long": lambda p, s: any(n > p.caption_max_words for n in ref_captions(s)),
}


def ref_route(policy: ReviewPolicy, sample) -> list[str]:
    name = normalize_source_name(sample["source"])
    reasons = []
    if any(fnmatch.fnmatchcase(name, normalize_source_name(p)) for p in policy.require_sources):
        reasons.append("required_source")
    elif policy.audit_rate and policy.audited(sample["id"]):
        reasons.append("audit")
    return reasons + [f for f in policy.flags if REFERENCE[f](policy, sample)]


# -- samples: the shapes the builders write, and the odd ones a correction or a bad record can give --

WORDS = ["yes", "no", "Yes.", "two", "12", "more than 10", "a", "road", "the", "building", "_", "...", " ", "",
         "between 1 and 5", "rural or urban", "ÉCOLE", "٣", "many green trees are around"]  # fmt: skip
PREFIXES = ["[vqa] ", "[caption] ", "[refer] ", "[grounding] ", "  [vqa]", "", "[detection] "]
QUESTIONS = ["Is there a road?", "How many buildings are there?", "is it a rural or an urban area?",
             "Are there houses", "What is the area covered by residential buildings?", "how many cars", ""]  # fmt: skip
boxes = st.tuples(st.tuples(*[st.integers(0, 100)] * 4), st.sampled_from(["brace", "angle"])).map(lambda b: format_box(b[0], 100, 100, b[1]))
texts = st.lists(st.one_of(st.sampled_from(WORDS), boxes, st.text(max_size=6)), max_size=70).map(" ".join)
user_turns = st.tuples(st.sampled_from(PREFIXES), st.one_of(st.sampled_from(QUESTIONS), texts)).map("".join)
roles = st.sampled_from(["user", "assistant", "user", "assistant", "system"])
turn_lists = st.one_of(
    st.lists(st.tuples(user_turns, texts), min_size=1, max_size=4).map(
        lambda pairs: [t for u, a in pairs for t in ({"role": "user", "content": u}, {"role": "assistant", "content": a})]
    ),
    st.lists(st.tuples(roles, st.one_of(user_turns, texts)), max_size=6).map(lambda ts: [{"role": r, "content": c} for r, c in ts]),
)
samples = st.builds(
    lambda source, i, conversation: {"id": f"s{i}", "source": source, "conversation": conversation},
    st.sampled_from(["rsicd", "rsvqa_hr", "RSPG", "dior-conversa", "ERA_VQA", "dior_rsvg", "ucm_conversa"]),
    st.integers(0, 10_000),
    turn_lists,
)
policies = st.builds(
    lambda audit, flags, tiny, whole, cmin, cmax, dup: ReviewPolicy(
        audit_rate=audit, flags=flags, tiny_box_area=tiny, whole_image_area=whole,
        caption_min_words=cmin, caption_max_words=cmax, duplicate_min_words=dup,
    ),  # fmt: skip
    st.sampled_from([0.0, 0.3]),
    st.lists(st.sampled_from(FLAG_NAMES), unique=True).map(lambda f: f or list(FLAG_NAMES)),
    st.sampled_from([0.0004, 0.01, 0.2]),
    st.sampled_from([0.9, 0.5]),
    st.integers(0, 5),
    st.integers(1, 40),
    st.integers(1, 4),
)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(policies, samples)
def test_route_is_the_per_check_reference(policy, sample):
    assert policy.route(sample) == ref_route(policy, sample)
    assert policy.route(sample) == ref_route(policy, sample)  # the policy's memo of sources gives the same


def test_each_flag_fires_and_matches_the_reference_on_a_sample_made_for_it():
    # one sample per flag (so the comparison above is not only over samples no flag fires on)
    cases = {
        "tiny_box": [("[refer] the car", "{<10><10><11><11>}")],
        "whole_image_box": [("[refer] the city", "{<0><0><100><100>}")],
        "empty_answer": [("[vqa] Is there a road?", " ._ ")],
        "duplicated_answer": [("[vqa] what is it?", "a large red building"), ("[vqa] and this?", "A large  red building")],
        "answer_out_of_vocabulary": [("[vqa] How many cars are there?", "several")],
        "caption_too_short": [("[caption] Describe the image.", "trees")],
        "caption_too_long": [("[caption] Describe the image.", " ".join(["tree"] * 61))],
    }
    policy = ReviewPolicy()
    for flag, turns in cases.items():
        sample = {"id": flag, "source": "rsicd", "conversation": [
            t for u, a in turns for t in ({"role": "user", "content": u}, {"role": "assistant", "content": a})]}  # fmt: skip
        assert flag in policy.route(sample), flag
        assert policy.route(sample) == ref_route(policy, sample)
        # the public checks still take a plain sample, and a SampleView gives the same answer
        assert FLAG_CHECKS[flag](policy, sample) is FLAG_CHECKS[flag](policy, SampleView(sample)) is True
