"""What an annotator sees of a sample: its distinct boxes, what each one means, the texts in words.

A box token (``{<x1><y1><x2><y2>}``, see :mod:`skyeye_data.boxes`) is a place on the image. The
same place named in several turns ("[refer] the bridge" → ``{<20><30><40><45>}``, then
"[identify] this {<20><30><40><45>} is") is *one* box: it becomes one Label Studio region, so a
move changes every turn that names it. Each distinct box gets a number, a colour, and a label that
says what it is: the phrase it grounds and the turns that name it, "box 1 · turn 2 · the bridge".

In the texts shown to the annotator each token is replaced by ``[box 1]`` (the same number as the
region's label); the editable texts keep the tokens, which is what training reads.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Mapping, Sequence

from skyeye_data.boxes import ParsedBox, parse_boxes

_TASK_ID = re.compile(r"^\s*\[(\w+)\]\s*")
_PHRASE_BEFORE = re.compile(r"<p>\s*((?:(?!</?p>).)*?)\s*</p>\s*$", re.S)  # the text before the box, tokens removed
_NUM = r"\s*<\s*-?\d+(?:\.\d+)?\s*>\s*"
_SUFFIX = r"(?:\s*\|\s*<\s*-?\d+(?:\.\d+)?\s*>\s*)?"
BOX_TOKEN = re.compile(r"\{" + _NUM * 4 + _SUFFIX + r"\}|<" + _NUM * 4 + _SUFFIX + r">")
DELIM_WORDS = ", "

# 12 colours that stay apart on satellite images (Sasha Trubetskoy's distinct colours, minus the
# greens and greys that vanish on vegetation and concrete)
PALETTE = (
    "#e6194b", "#ffe119", "#4363d8", "#f58231", "#911eb4", "#42d4f4",
    "#f032e6", "#bfef45", "#fabed4", "#dcbeff", "#9a6324", "#ffffff",
)  # fmt: skip


@dataclass
class DistinctBox:
    number: int  # 1-based, the order of first appearance
    box: ParsedBox
    slots: list[tuple[int, int]] = field(default_factory=list)  # (turn, k): the k-th token of turn `turn`
    phrase: str = ""
    phrase_rank: int = 99

    @property
    def region_id(self) -> str:
        return f"box{self.number}"

    @property
    def colour(self) -> str:
        return PALETTE[(self.number - 1) % len(PALETTE)]

    @property
    def label(self) -> str:
        turns = sorted({turn + 1 for turn, _ in self.slots})
        where = f"turn {turns[0]}" if len(turns) == 1 else "turns " + ", ".join(map(str, turns))
        return " · ".join(part for part in (f"box {self.number}", where, self.phrase) if part)


def _key(box: ParsedBox) -> tuple[float, ...]:
    return (*box.coords, box.angle if box.angle is not None else -1.0)


def distinct_boxes(conversation: Sequence[Mapping[str, str]]) -> list[DistinctBox]:
    """The sample's boxes, one per distinct place, with the turns that name them and their phrase."""
    found: dict[tuple[float, ...], DistinctBox] = {}
    for turn, message in enumerate(conversation):
        text = str(message["content"])
        for k, match in enumerate(BOX_TOKEN.finditer(text)):
            box = parse_boxes(match.group(0))[0]
            entry = found.setdefault(_key(box), DistinctBox(len(found) + 1, box))
            entry.slots.append((turn, k))
            rank, phrase = phrase_of(conversation, turn, text[: match.start()])
            if phrase and rank < entry.phrase_rank:  # the most direct naming of the box wins
                entry.phrase, entry.phrase_rank = phrase, rank
    return list(found.values())


def phrase_of(conversation: Sequence[Mapping[str, str]], turn: int, before: str) -> tuple[int, str]:
    """(rank, phrase): what the box at the end of ``before`` (in turn ``turn``) stands for.

    ``<p>the ship</p> {box}`` names it directly (rank 0); a box in ``[identify] this {box} is`` is
    named by the answer that follows (1); an answer to ``[refer] the bridge ...`` is the whole
    expression (2, often wrapped in an instruction template).
    """
    grounded = _PHRASE_BEFORE.search(BOX_TOKEN.sub("", before).replace("<delim>", ""))
    if grounded:
        return 0, grounded.group(1).strip()
    role = conversation[turn]["role"]
    if role == "user" and turn + 1 < len(conversation):
        task = _TASK_ID.match(str(conversation[turn]["content"]))
        answer = str(conversation[turn + 1]["content"])
        if task and task.group(1) == "identify" and not BOX_TOKEN.search(answer):
            return 1, answer.strip().rstrip(".").strip()
    if role == "assistant" and turn > 0:
        question = str(conversation[turn - 1]["content"])
        task = _TASK_ID.match(question)
        if task and task.group(1) in ("refer", "grounding"):
            return 2, words(question[task.end() :]).strip()
    return 9, ""


def words(text: str, boxes: Sequence[DistinctBox] = ()) -> str:
    """``text`` for reading: box tokens as ``[box N]``, ``<p>..</p>`` marks and ``<delim>`` removed."""
    numbers = {_key(b.box): b.number for b in boxes}

    def name(match: re.Match) -> str:
        number = numbers.get(_key(parse_boxes(match.group(0))[0]))
        return f"[box {number}]" if number is not None else "[box]"

    text = BOX_TOKEN.sub(name, text)
    text = text.replace("<delim>", DELIM_WORDS)
    return re.sub(r"</?p>", "", text)


def speaker(role: str) -> str:
    return {"user": "user", "assistant": "assistant"}.get(role, role)


def dialog_view(conversation: Sequence[Mapping[str, str]], boxes: Sequence[DistinctBox]) -> list[dict[str, object]]:
    """The dialog as the conversa view shows it: each turn with its number, speaker and words."""
    return [
        {
            "role": turn["role"],
            "content": turn["content"],
            "index": i,
            "title": f"turn {i + 1} · {speaker(turn['role'])}",
            "words": words(turn["content"], boxes),
        }
        for i, turn in enumerate(conversation)
    ]


def box_labels(boxes: Sequence[DistinctBox]) -> list[dict[str, str]]:
    """Label Studio dynamic labels (``<RectangleLabels value="$box_labels">``): one per box, own colour."""
    return [{"value": b.label, "background": b.colour} for b in boxes]
