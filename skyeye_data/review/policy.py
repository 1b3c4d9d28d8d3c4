"""The routing policy: which samples a person must see before they reach training.

This model is the recipe's ``review:`` section. A sample is routed (queued for review, and held back
from training until reviewed) for every reason :meth:`ReviewPolicy.route` returns:

- ``required_source`` — its source matches ``require_sources``: by default every generated or
  composed set (RSPG, ERA-VQA, every *-Conversa), which the paper only kept after manual checks;
- ``audit`` — a seeded share (``audit_rate``) of every other source; the draw depends only on the
  seed and the sample id, so the same samples are audited in every rebuild;
- a named automatic flag (see :data:`FLAG_NAMES`), which routes a sample of any source.

Box checks work on the box tokens (0..100 of each side), so they need no image size.
"""

from __future__ import annotations

import fnmatch
import hashlib
import re
from functools import cached_property
from pathlib import Path
from typing import Any, Callable, Literal, Mapping, get_args

from pydantic import BaseModel, ConfigDict, Field

from skyeye_data.boxes import parse_boxes
from skyeye_data.review.chain import ConflictRule

FlagName = Literal[
    "tiny_box",
    "whole_image_box",
    "empty_answer",
    "duplicated_answer",
    "answer_out_of_vocabulary",
    "caption_too_short",
    "caption_too_long",
]
FLAG_NAMES: tuple[str, ...] = get_args(FlagName)
REQUIRED_SOURCE = "required_source"
AUDIT = "audit"
SECOND_LOOK = "second_look"  # a corrected sample sent back for another review

DEFAULT_REQUIRED_SOURCES = ["rspg", "era_vqa", "*conversa"]
_TASK_IDENTIFIER = re.compile(r"^\s*\[(\w+)\]\s*")
_NUMBER_WORDS = "zero|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve"


class QuestionType(BaseModel):
    """A family of questions with a closed set of answers, recognized by the question's wording."""

    model_config = ConfigDict(extra="forbid")

    name: str
    question_pattern: str = Field(description="regex (case-insensitive) searched in the question text")
    answers: list[str] = Field(default_factory=list, description="allowed answers (case-insensitive)")
    answer_pattern: str | None = Field(default=None, description="regex the whole answer must match instead")

    # compiled once per question type: the build asks every VQA sample's question (~1 M of them)
    @cached_property
    def _question_re(self) -> re.Pattern[str]:
        return re.compile(self.question_pattern, re.IGNORECASE)

    @cached_property
    def _answer_re(self) -> re.Pattern[str] | None:
        return re.compile(self.answer_pattern, re.IGNORECASE) if self.answer_pattern is not None else None

    @cached_property
    def _answer_set(self) -> frozenset[str]:
        return frozenset(a.lower() for a in self.answers)

    def matches_question(self, question: str) -> bool:
        return self._question_re.search(question) is not None

    def allows(self, answer: str) -> bool:
        answer = answer.strip().rstrip(".").strip()
        if self._answer_re is not None:
            return self._answer_re.fullmatch(answer) is not None
        return answer.lower() in self._answer_set


DEFAULT_QUESTION_TYPES = [
    # "Is it a rural or an urban area" is a choice, not a yes/no question: no " or " allowed
    QuestionType(
        name="yes_no",
        question_pattern=r"^(is|are|does|do|did|can|could|was|were|has|have|will)\b(?!.*\bor\b)",
        answers=["yes", "no"],
    ),
    QuestionType(
        name="count",
        question_pattern=r"^how many\b",
        answer_pattern=rf"\d+|{_NUMBER_WORDS}|(more than|less than|between) .*",
    ),
]


class ReviewPolicy(BaseModel):
    """The recipe's ``review:`` section."""

    model_config = ConfigDict(extra="forbid")

    ledger: Path | None = Field(
        default=None, description="SQLite review ledger; keep it outside the build output so it survives rebuilds"
    )
    second_look: bool = Field(
        default=False,
        description="send corrected samples back for another review (they stay in training meanwhile); that verdict counts",
    )
    conflict: ConflictRule = Field(
        default="any_reject_wins",
        description="how verdicts of several annotators on the same content combine: any_reject_wins, majority or latest",
    )
    require_sources: list[str] = Field(
        default_factory=lambda: list(DEFAULT_REQUIRED_SOURCES),
        description="source name patterns (fnmatch, case-insensitive, '-' and '_' alike) that always need review",
    )
    audit_rate: float = Field(default=0.0, ge=0.0, le=1.0, description="share of other sources' samples audited")
    seed: int = Field(default=0, description="seed of the audit draw")
    flags: list[FlagName] = Field(default_factory=lambda: list(FLAG_NAMES), description="automatic flags in force")
    tiny_box_area: float = Field(default=0.0004, ge=0, le=1, description="box area share of the image below which a box is tiny")
    whole_image_area: float = Field(default=0.9, ge=0, le=1, description="box area share from which a box covers the image")
    caption_min_words: int = Field(default=3, ge=0)
    caption_max_words: int = Field(default=60, ge=1)
    duplicate_min_words: int = Field(
        default=3, ge=1, description="repeated answers this long or longer are flagged ('yes' twice is normal)"
    )
    question_types: list[QuestionType] = Field(default_factory=lambda: list(DEFAULT_QUESTION_TYPES))

    @classmethod
    def from_recipe_section(cls, section: Mapping[str, Any] | None) -> "ReviewPolicy":
        return cls.model_validate(dict(section or {}))

    @cached_property
    def _required_patterns(self) -> list[str]:
        return [normalize_source_name(p) for p in self.require_sources]

    @cached_property
    def _required_by_source(self) -> dict[str, bool]:
        return {}  # source name -> requires_source: a build asks it once per sample of a handful of sources

    def requires_source(self, source: str) -> bool:
        known = self._required_by_source.get(source)
        if known is None:
            name = normalize_source_name(source)
            known = self._required_by_source[source] = any(fnmatch.fnmatchcase(name, p) for p in self._required_patterns)
        return known

    def audited(self, sample_id: str) -> bool:
        return audit_draw(self.seed, sample_id) < self.audit_rate

    def flags_of(self, sample: Mapping[str, Any]) -> list[str]:
        view = SampleView(sample)  # the exchanges, answers and boxes are worked out once for all the flags
        return [name for name in self.flags if FLAG_CHECKS[name](self, view)]

    def route(self, sample: Mapping[str, Any]) -> list[str]:
        """Every reason this sample needs review; empty when it goes to training unreviewed."""
        reasons: list[str] = []
        if self.requires_source(sample["source"]):
            reasons.append(REQUIRED_SOURCE)
        elif self.audit_rate and self.audited(sample["id"]):
            reasons.append(AUDIT)
        return reasons + self.flags_of(sample)


def normalize_source_name(name: str) -> str:
    return name.strip().lower().replace("-", "_")


def audit_draw(seed: int, sample_id: str) -> float:
    """A uniform number in [0, 1) fixed by seed and sample id (not by order or by Python's hash seed)."""
    digest = hashlib.sha256(f"{seed}\x00{sample_id}".encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


# -- the conversation seen as (task, instruction, answer) exchanges ----------------------------------


class SampleView:
    """What the flag checks read of one sample, each part worked out at most once.

    Every flag reads the same few views of the conversation (its exchanges, its answers, its box
    areas); before this class each check recomputed them, so routing one sample walked the
    conversation about seven times (17% of the paper-scale compile under cProfile, HEAD 584b60e).
    """

    __slots__ = ("sample", "_exchanges", "_answers", "_box_shares")

    def __init__(self, sample: Mapping[str, Any]):
        self.sample = sample
        self._exchanges: list[tuple[str, str, str]] | None = None
        self._answers: list[str] | None = None
        self._box_shares: list[float] | None = None

    @property
    def exchanges(self) -> list[tuple[str, str, str]]:
        if self._exchanges is None:
            self._exchanges = exchanges(self.sample)
        return self._exchanges

    @property
    def answers(self) -> list[str]:
        if self._answers is None:
            self._answers = answers(self.sample)
        return self._answers

    @property
    def box_shares(self) -> list[float]:
        if self._box_shares is None:
            self._box_shares = box_area_shares(self.sample)
        return self._box_shares


def exchanges(sample: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """(task identifier, instruction text without it, answer) for each user turn and its answer."""
    turns = sample["conversation"]
    if not isinstance(turns, list):
        turns = list(turns)
    result = []
    task = ""
    last = len(turns) - 1
    for i, turn in enumerate(turns):
        if turn["role"] != "user":
            continue
        content = turn["content"]
        match = _TASK_IDENTIFIER.match(content)
        if match:
            task = match.group(1)  # a follow-up turn without one keeps the dialog's last task
            instruction = content[match.end() :]
        else:
            instruction = content
        answer = turns[i + 1]["content"] if i < last and turns[i + 1]["role"] == "assistant" else ""
        result.append((task, instruction, answer))
    return result


def answers(sample: Mapping[str, Any]) -> list[str]:
    return [turn["content"] for turn in sample["conversation"] if turn["role"] == "assistant"]


def box_area_shares(sample: Mapping[str, Any]) -> list[float]:
    shares = []
    for turn in sample["conversation"]:
        content = turn["content"]
        if not content or "<" not in content:  # every box of either style holds "<": most turns have none
            continue
        for box in parse_boxes(content):
            shares.append(max(0.0, box.x2 - box.x1) * max(0.0, box.y2 - box.y1) / 10_000)
    return shares


def _view(sample: Mapping[str, Any] | SampleView) -> SampleView:
    return sample if isinstance(sample, SampleView) else SampleView(sample)


# Each check takes the policy and a sample (a mapping, or the SampleView route() shares among them).
SampleLike = Mapping[str, Any] | SampleView
_WORD_CHARACTER = re.compile(r"[^\W_]")  # an answer without one is empty (punctuation, spaces, "_")


def has_tiny_box(policy: ReviewPolicy, sample: SampleLike) -> bool:
    return any(share < policy.tiny_box_area for share in _view(sample).box_shares)


def has_whole_image_box(policy: ReviewPolicy, sample: SampleLike) -> bool:
    return any(share >= policy.whole_image_area for share in _view(sample).box_shares)


def has_empty_answer(policy: ReviewPolicy, sample: SampleLike) -> bool:
    # a user turn without an assistant turn after it also leaves an empty answer
    view = _view(sample)
    return any(_WORD_CHARACTER.search(answer) is None for *_, answer in view.exchanges) or not view.answers


def has_duplicated_answer(policy: ReviewPolicy, sample: SampleLike) -> bool:
    view = _view(sample)
    seen: set[str] = set()
    for answer in view.answers:
        key = " ".join(answer.lower().split())
        if len(key.split()) >= policy.duplicate_min_words and key in seen:
            return True
        seen.add(key)
    instructions = [" ".join(instruction.lower().split()) for _, instruction, _ in view.exchanges]
    return len(instructions) != len(set(instructions))


def has_answer_out_of_vocabulary(policy: ReviewPolicy, sample: SampleLike) -> bool:
    for task, question, answer in _view(sample).exchanges:
        if task != "vqa":
            continue
        question = question.strip()
        for question_type in policy.question_types:
            if question_type.matches_question(question) and not question_type.allows(answer):
                return True
    return False


def caption_word_counts(sample: SampleLike) -> list[int]:
    return [len(answer.split()) for task, _, answer in _view(sample).exchanges if task == "caption"]


def has_short_caption(policy: ReviewPolicy, sample: SampleLike) -> bool:
    return any(n < policy.caption_min_words for n in caption_word_counts(sample))


def has_long_caption(policy: ReviewPolicy, sample: SampleLike) -> bool:
    return any(n > policy.caption_max_words for n in caption_word_counts(sample))


FLAG_CHECKS: dict[str, Callable[[ReviewPolicy, SampleLike], bool]] = {
    "tiny_box": has_tiny_box,
    "whole_image_box": has_whole_image_box,
    "empty_answer": has_empty_answer,
    "duplicated_answer": has_duplicated_answer,
    "answer_out_of_vocabulary": has_answer_out_of_vocabulary,
    "caption_too_short": has_short_caption,
    "caption_too_long": has_long_caption,
}
assert set(FLAG_CHECKS) == set(FLAG_NAMES), "every named flag needs a check"
