"""Synthetic RSVQA trios (RSVQA-LR and RSVQA-HR), written the way the published files were made.

The authors' ``AutomaticDB/Splits.py`` (github.com/syvlo/RSVQA) wrote each split's three files from
the full database lists: the images file lists every image (the others as stubs), the questions and
answers files hold the split's own entries with the id gaps before them filled by stubs
``{"id": N, "active": false}``. :func:`write_synthetic` reproduces that function by function; the
reading rules are in :mod:`skyeye_data.sources._rsvqa`.
"""

from __future__ import annotations

import contextlib
import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, TextIO

from skyeye_data.io import atomic_path
from skyeye_data.sources._rsvqa import KINDS, RsvqaSource
from skyeye_data.sources.base import Scale
from skyeye_data.synth.painter import synth_image

@dataclass(frozen=True)
class RsvqaSynthSpec:
    """What a synthetic copy of one RSVQA dataset looks like."""

    image_size: int  # mini images have the real size; paper images are tiny
    mini_images: dict[str, int]  # split tag -> images
    mini_questions_per_image: int
    paper_images: dict[str, int]
    paper_questions: dict[str, int]  # split tag -> active questions
    paper_inactive: int  # withdrawn questions (active: false), spread over the images
    make_question: Callable[[random.Random], tuple[str, str, str]]  # -> (type, question, answer)


def write_synthetic(
    source: RsvqaSource, spec: "RsvqaSynthSpec", raw_dir: Path, scale: Scale, rng: random.Random
) -> int:
    """Write every split's trio as the authors' ``AutomaticDB/Splits.py`` did; return the question ids
    written (every raw question, withdrawn ones included)."""
    if scale == "mini":
        images = dict(spec.mini_images)
        questions = {tag: n * spec.mini_questions_per_image for tag, n in images.items()}
        inactive, size = 1, spec.image_size
    else:
        images, questions, inactive, size = dict(spec.paper_images), dict(spec.paper_questions), spec.paper_inactive, 8
    tags = [s.tag for s in source.splits]
    home: list[str] = [tag for tag in tags for _ in range(images[tag])]  # image id -> home split tag
    # the database numbers images tile by tile, and the tiles of the splits interleave: a split's
    # images (and so its question ids) are not one contiguous block, which is what makes the stubs
    rng.shuffle(home)
    per_image = _questions_per_image(home, questions, inactive, images)
    image_dir = raw_dir / source.image_dir
    for img_id in range(len(home)):
        # mini: real size; paper: tiny images keep the benchmark about annotation handling
        synth_image(image_dir / f"{img_id}.tif", size, size, seed=f"{source.name}:{img_id}")
    first_qid, qid = [], 0
    for active_n, inactive_n in per_image:
        first_qid.append(qid)
        qid += active_n + inactive_n
    raw_dir.mkdir(parents=True, exist_ok=True)
    for tag in tags:
        _write_split(source, spec, raw_dir, tag, home, per_image, first_qid, rng)
    return qid


def _write_split(source, spec, raw_dir: Path, tag: str, home, per_image, first_qid, rng: random.Random) -> None:
    """One split's three files, each ``json.dump({"<kind>": [...]})`` of the lists Splits.py builds:
    images: every image, the split's own as the database entry, the others ``{"id": N, "active": false}``;
    questions (``get_questions``): for each of the split's images, stubs ``{"id": N, "active": false}``
    up to its first question id, then its questions (withdrawn ones as they are); answers
    (``get_answers``): the same over the split's active questions and their answer ids."""
    with contextlib.ExitStack() as stack:
        out = {}
        for kind in KINDS:
            tmp = stack.enter_context(atomic_path(raw_dir / source.file_name(tag, kind)))
            out[kind] = _ListWriter(stack.enter_context(open(tmp, "w", encoding="utf-8")), kind)
        next_question = next_answer = 0
        for img_id, image_home in enumerate(home):
            active_n, inactive_n = per_image[img_id]
            qids = list(range(first_qid[img_id], first_qid[img_id] + active_n + inactive_n))
            if image_home != tag:
                out["images"].add({"id": img_id, "active": False})
                continue
            out["images"].add({
                "id": img_id, "date_added": 1579865382.0 + img_id, "original_name": f"{img_id}.png", "sensor": "S2",
                "people_id": 0, "type": "0", "questions_ids": qids, "active": True,
            })  # fmt: skip
            next_question = out["questions"].stubs(next_question, qids[0]) if qids else next_question
            for number, q in enumerate(qids):
                qtype, text, answer = spec.make_question(rng)
                active = number < active_n
                out["questions"].add({"id": q, "date_added": 1579865382.5, "img_id": img_id, "people_id": 0,
                                      "type": qtype, "question": text, "answers_ids": [q], "active": active})  # fmt: skip
                next_question = q + 1
                if active:  # get_answers reads the answers of active questions only
                    next_answer = out["answers"].stubs(next_answer, q)
                    out["answers"].add({"id": q, "date_added": 1579865382.5, "question_id": q, "people_id": 0,
                                        "answer": answer, "active": True})  # fmt: skip
                    next_answer = q + 1
        for writer in out.values():
            writer.close()


class _ListWriter:
    """Streams ``{"<kind>": [e0, e1, ...]}`` exactly as ``json.dump`` writes it (", " between elements)."""

    def __init__(self, handle: TextIO, kind: str):
        self.handle, self.count = handle, 0
        handle.write(f'{{"{kind}": [')

    def add(self, entry: dict) -> None:
        self.handle.write((", " if self.count else "") + json.dumps(entry))
        self.count += 1

    def stubs(self, start: int, stop: int) -> int:
        """The ids ``start..stop-1`` as stubs (Splits.py's padding); returns ``stop``."""
        for stub_id in range(start, stop):
            self.add({"id": stub_id, "active": False})
        return stop

    def close(self) -> None:
        self.handle.write("]}")


def _questions_per_image(home: list[str], questions: dict[str, int], inactive: int, images: dict[str, int]):
    """(active, inactive) question counts per image: each split's total spread evenly; withdrawn
    questions go to the first images of the first split (mini: exactly one)."""
    counts: list[list[int]] = []
    seen: dict[str, int] = {}
    for tag in home:
        k = seen.get(tag, 0)
        seen[tag] = k + 1
        base, extra = divmod(questions[tag], images[tag])
        counts.append([base + (1 if k < extra else 0), 0])
    for i in range(inactive):
        counts[i % len(counts)][1] += 1
    return counts


# ---------------------------------------------------------------------------------------------
# Questions in the style of the authors' generator (AutomaticDB), one table per dataset
# ---------------------------------------------------------------------------------------------


def yes_no(rng: random.Random) -> str:
    return rng.choice(("yes", "no"))


@dataclass(frozen=True)
class QuestionKind:
    """One question type: its text (``{a}``, ``{b}``: two distinct objects) and how its answer is drawn."""

    kind: str
    template: str
    answer: Callable[[random.Random], str]


def question_maker(objects: tuple[str, ...], kinds: tuple[QuestionKind, ...]):
    """A ``make_question(rng) -> (type, question, answer)`` drawing a kind, two objects, then the answer."""
    names = tuple(k.kind for k in kinds)

    def make_question(rng: random.Random) -> tuple[str, str, str]:
        kind = kinds[names.index(rng.choice(names))]
        a, b = rng.sample(objects, 2)
        return kind.kind, kind.template.format(a=a, b=b), kind.answer(rng)

    return make_question
