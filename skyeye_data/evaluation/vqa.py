"""VQA accuracy with the RSVQA conventions (RSVQA-LR, RSVQA-HR, RSIVQA, ERA-VQA).

Scoring is exact match after normalisation (:func:`normalize_answer`): lower case; punctuation
removed (a decimal point or thousands comma inside a number is kept/dropped as a number needs);
the articles a/an/the dropped; number words written as digits ("two" == "2", "twenty-one" ==
"21"). A generated sentence such as "Yes, there is a road." therefore does *not* match "yes": the
RSVQA benchmarks are scored as classification, and so is the generated answer.

Two summary figures, both from the RSVQA paper (Lobry et al., "RSVQA: Visual Question Answering
for Remote Sensing Data", IEEE TGRS 58(12), 2020) and used by the MLLM papers since:

- **average accuracy (AA)**: the mean of the per-question-type accuracies, every type weighing
  the same however many questions it has. The "Average" column of SkyEyeGPT's and GeoChat's
  RSVQA tables is this figure.
- **overall accuracy (OA)**: correct answers / all questions.

Count buckets (RSVQA-LR, on request). In RSVQA-LR the count answers are integers; the benchmark
convention bins them at evaluation into ``0``, ``between 1 and 10``, ``between 11 and 100``,
``between 101 and 1000`` and ``more than 1000`` (the classes of the RSVQA-LR answer space; the
same bins are implemented in google-research/big_vision's RSVQA-LR TFDS builder,
``bin_answer``). With ``count_buckets=True`` both the reference and the prediction of every
``count`` question are mapped to their bin before comparison; a prediction already written as a
bin label is accepted as it is.

RSVQA-HR has two test sets, reported separately: subset ``test`` (test set 1, same area as
training) and ``test_phili`` (test set 2, Philadelphia). Each (source, subset) is its own table row.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Iterable

_UNITS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15,
    "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19,
}
_TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90}
_SCALES = {"hundred": 100, "thousand": 1000, "million": 1_000_000}
_ARTICLES = {"a", "an", "the"}
_NUMBER_WORDS = set(_UNITS) | set(_TENS) | set(_SCALES)

COUNT_BUCKETS: tuple[str, ...] = ("0", "between 1 and 10", "between 11 and 100", "between 101 and 1000", "more than 1000")


def _words_to_number(words: list[str]) -> int:
    """A run of number words ("twenty one", "three hundred five") → its value."""
    total, current = 0, 0
    for word in words:
        if word in _UNITS:
            current += _UNITS[word]
        elif word in _TENS:
            current += _TENS[word]
        elif word == "hundred":
            current = max(current, 1) * 100
        else:  # thousand, million
            total += max(current, 1) * _SCALES[word]
            current = 0
    return total + current


def _numbers_as_digits(tokens: list[str]) -> list[str]:
    out: list[str] = []
    run: list[str] = []
    for token in tokens + [""]:
        if token in _NUMBER_WORDS:
            run.append(token)
            continue
        if run:
            out.append(str(_words_to_number(run)))
            run = []
        if token:
            out.append(token)
    return out


def _canonical_number(token: str) -> str:
    # "2.0" == "2", "007" == "7"; other tokens unchanged
    if re.fullmatch(r"\d+(\.\d+)?", token):
        value = float(token)
        return str(int(value)) if value.is_integer() else repr(value)
    return token


def normalize_answer(text: str) -> str:
    """The comparable form of an answer (see the module docstring for the rules)."""
    text = (text or "").lower().strip()
    text = re.sub(r"(?<=\d),(?=\d{3}\b)", "", text)  # thousands separator: 1,000 → 1000
    text = re.sub(r"(?<=\d)\.(?=\d)", "\0", text)  # protect decimal points
    text = re.sub(r"[^\w\s\0]|_", " ", text).replace("\0", ".")
    tokens = [t for t in text.split() if t not in _ARTICLES]
    return " ".join(_canonical_number(t) for t in _numbers_as_digits(tokens))


def count_bucket(normalized: str) -> str:
    """The RSVQA-LR bin of a normalized count answer; a non-number (e.g. a bin label) is returned as is."""
    if not re.fullmatch(r"\d+", normalized):
        return normalized
    count = int(normalized)
    if count == 0:
        return COUNT_BUCKETS[0]
    if count <= 10:
        return COUNT_BUCKETS[1]
    if count <= 100:
        return COUNT_BUCKETS[2]
    if count <= 1000:
        return COUNT_BUCKETS[3]
    return COUNT_BUCKETS[4]


def is_correct(prediction: str, references: Iterable[str], question_type: str | None, count_buckets: bool) -> bool:
    """Exact match of the normalized prediction with any normalized reference answer."""
    def comparable(text: str) -> str:
        normalized = normalize_answer(text)
        return count_bucket(normalized) if count_buckets and question_type == "count" else normalized

    predicted = comparable(prediction)
    return any(predicted == comparable(ref) for ref in references)


@dataclass
class TypeAccuracy:
    total: int = 0
    correct: int = 0

    @property
    def accuracy(self) -> float:
        return self.correct / self.total if self.total else 0.0


@dataclass
class VqaScores:
    """Accuracy per question type, average accuracy (AA) and overall accuracy (OA), as fractions."""

    per_type: dict[str, TypeAccuracy]
    excluded_types: list[str] = field(default_factory=list)
    count_buckets: bool = False

    @property
    def count(self) -> int:
        return sum(t.total for t in self.per_type.values())

    @property
    def average_accuracy(self) -> float:
        accuracies = [t.accuracy for t in self.per_type.values() if t.total]
        return sum(accuracies) / len(accuracies) if accuracies else 0.0

    @property
    def overall_accuracy(self) -> float:
        total = self.count
        return sum(t.correct for t in self.per_type.values()) / total if total else 0.0


UNTYPED = "all"  # the type bucket of questions without a question_type (e.g. ERA-VQA)


def score_vqa(
    items: Iterable[tuple[str, list[str], str | None]],
    count_buckets: bool = False,
    exclude_types: Iterable[str] = (),
) -> VqaScores:
    """Score ``(prediction, reference answers, question_type)`` triples of one dataset/test set.

    Questions of ``exclude_types`` are left out of every figure (papers that drop e.g. ``count``
    or ``area`` from RSVQA averages do exactly this) and listed in the result.
    """
    excluded = set(exclude_types)
    per_type: dict[str, TypeAccuracy] = defaultdict(TypeAccuracy)
    skipped: set[str] = set()
    for prediction, references, question_type in items:
        key = question_type or UNTYPED
        if key in excluded:
            skipped.add(key)
            continue
        per_type[key].total += 1
        per_type[key].correct += is_correct(prediction, references, question_type, count_buckets)
    return VqaScores(per_type=dict(per_type), excluded_types=sorted(skipped), count_buckets=count_buckets)
