"""Between box tokens and Label Studio rectangles, and from an annotation back to a verdict.

Every distinct box of a sample (:func:`skyeye_data.review.task_view.distinct_boxes`) is one
pre-filled rectangle with the id ``box{n}``; the box's *slots* ``(turn, k)`` are the token places
that name it, so a moved rectangle rewrites every turn that names the box. Label Studio's percent
coordinates are converted to pixels with the image's original size and re-encoded with
:func:`skyeye_data.boxes.format_box`, so a moved box is pixel-exact in the corrected text.

:func:`verdict_from_task` reads a task (its data as pushed, one annotation) into a
:class:`~skyeye_data.review.ledger.Verdict`. It needs nothing but the task itself, so a pull from
the server and the import of a JSON export give the same verdicts.

One verdict vocabulary, in every labeling config: ``accept``, ``reject``, ``edit``. An ``edit``
whose texts and boxes are unchanged, or an ``accept`` with changes, is an :class:`InvalidVerdict`
(reported by pull, never recorded as something the annotator did not say).
"""

from __future__ import annotations

import logging
import re
import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from skyeye_data.boxes import DELIM, box_iou, format_box
from skyeye_data.textguard import reviewed_text
from skyeye_data.review.fingerprint import canonical_conversation, fingerprint_of
from skyeye_data.review.ledger import Verdict
from skyeye_data.review.task_view import BOX_TOKEN, DistinctBox, distinct_boxes

log = logging.getLogger(__name__)

BOX_CONTROL = "boxes"  # the RectangleLabels tag of grounding.xml and conversa.xml
VERDICT_CONTROL = "verdict"
ANSWER_CONTROL = "corrected_answer"  # corrects the last assistant turn
TURN_CONTROL = re.compile(r"^correction_(\d+)$")  # conversa.xml: corrects turn i
PIXEL_DECIMALS = 3  # float noise of percent → pixel conversions never reaches a rounding boundary

REGION_ID = re.compile(r"^box(\d+)$")
LEGACY_SLOT_ID = re.compile(r"^t(\d+)b(\d+)$")  # tasks pushed before regions were per distinct box

VERDICT_CHOICES = {"accept": "accepted", "reject": "rejected", "edit": "corrected"}


# -- boxes ↔ rectangles ------------------------------------------------------------------------------


def rectangle(box: DistinctBox, width: int, height: int) -> dict[str, Any]:
    """A pre-filled Label Studio rectangle for a distinct box (its values are already percents)."""
    x1, y1, x2, y2 = box.box.coords
    return {
        "id": box.region_id,
        "from_name": BOX_CONTROL,
        "to_name": "image",
        "type": "rectanglelabels",
        "original_width": width,
        "original_height": height,
        "image_rotation": 0,
        "value": {"x": x1, "y": y1, "width": x2 - x1, "height": y2 - y1, "rotation": 0, "rectanglelabels": [box.label]},
    }


def conversation_rectangles(conversation: Sequence[Mapping[str, str]], width: int, height: int) -> list[dict]:
    return [rectangle(box, width, height) for box in distinct_boxes(conversation)]


def rectangle_to_pixels(value: Mapping[str, Any], width: int, height: int) -> list[float]:
    """Percent x/y/width/height → pixel ``[x1, y1, x2, y2]`` on a ``width`` × ``height`` image."""
    x, y = float(value["x"]), float(value["y"])
    w, h = float(value["width"]), float(value["height"])
    return [
        round(x * width / 100, PIXEL_DECIMALS),
        round(y * height / 100, PIXEL_DECIMALS),
        round((x + w) * width / 100, PIXEL_DECIMALS),
        round((y + h) * height / 100, PIXEL_DECIMALS),
    ]


def pixels_to_rectangle_value(box: Sequence[float], width: int, height: int, label: str = "box") -> dict[str, Any]:
    """Pixel ``[x1, y1, x2, y2]`` → Label Studio percent value (what an annotator's drag produces)."""
    x1, y1, x2, y2 = box
    return {
        "x": x1 / width * 100,
        "y": y1 / height * 100,
        "width": (x2 - x1) / width * 100,
        "height": (y2 - y1) / height * 100,
        "rotation": 0,
        "rectanglelabels": [label],
    }


# -- reading an annotation -----------------------------------------------------------------------------


@dataclass
class AnnotationEdits:
    """What an annotation says, control by control."""

    choice: str | None
    texts: dict[int, str]  # turn → corrected text
    boxes: dict[tuple[int, int], list[float]]  # (turn, k) → pixel box (kept or moved)
    new_boxes: list[list[float]]  # drawn by the annotator, no slot
    has_rectangles: bool
    text_problems: list[str] = dataclasses.field(default_factory=list)  # corrections that cannot be taken


def read_edits(result: Sequence[Mapping[str, Any]], conversation: Sequence[Mapping[str, str]], width: int, height: int) -> AnnotationEdits:
    edits = AnnotationEdits(None, {}, {}, [], False)
    regions = {box.region_id: box.slots for box in distinct_boxes(conversation)}
    last_answer = max((i for i, t in enumerate(conversation) if t["role"] == "assistant"), default=None)
    for item in result:
        name, value = item.get("from_name"), item.get("value") or {}
        if name == VERDICT_CONTROL and value.get("choices"):
            edits.choice = str(value["choices"][0])
        elif item.get("type") == "rectanglelabels" and name == BOX_CONTROL:
            edits.has_rectangles = True
            pixels = rectangle_to_pixels(value, width, height)
            region_id = str(item.get("id", ""))
            legacy = LEGACY_SLOT_ID.match(region_id)
            if region_id in regions:  # one region, every token place that names the box
                edits.boxes.update({slot: pixels for slot in regions[region_id]})
            elif legacy:
                edits.boxes[(int(legacy.group(1)), int(legacy.group(2)))] = pixels
            else:
                edits.new_boxes.append(pixels)
        elif item.get("type") == "textarea":
            text, problem = reviewed_text("\n".join(value.get("text") or []))
            text = text.strip()
            turn = _text_target(name, last_answer)
            if problem:
                edits.text_problems.append(f"turn {turn}: {problem}")
            elif text and turn is not None and turn < len(conversation):
                edits.texts[turn] = text
    adopt_unslotted_boxes(edits, conversation, width, height)
    return edits


MIN_ADOPT_IOU = 0.1


def adopt_unslotted_boxes(edits: AnnotationEdits, conversation: Sequence[Mapping[str, str]], width: int, height: int) -> None:
    """Give rectangles without a slot id the slot of the original box they overlap most.

    A rectangle whose id is not a region id is normally one the annotator drew. But an editor that
    copies pre-filled regions under new ids would otherwise make every box look deleted and
    redrawn; matching by overlap keeps a moved box in its places in the text.
    """
    open_boxes = {
        box.region_id: (box.box.to_pixels(width, height), box.slots)
        for box in distinct_boxes(conversation)
        if not any(slot in edits.boxes for slot in box.slots)
    }
    drawn = []
    for pixels in edits.new_boxes:
        best = max(open_boxes, key=lambda r: box_iou(open_boxes[r][0], pixels), default=None)
        if best is not None and box_iou(open_boxes[best][0], pixels) >= MIN_ADOPT_IOU:
            edits.boxes.update({slot: pixels for slot in open_boxes[best][1]})
            del open_boxes[best]
        else:
            drawn.append(pixels)
    edits.new_boxes = drawn


def _text_target(control: str | None, last_answer: int | None) -> int | None:
    if control == ANSWER_CONTROL:
        return last_answer
    match = TURN_CONTROL.match(control or "")
    return int(match.group(1)) if match else None


# -- applying edits to the conversation -------------------------------------------------------------


def rewrite_boxes(text: str, turn: int, edits: AnnotationEdits, width: int, height: int) -> str:
    """Replace each box token of ``text`` by its slot's edited box; drop tokens whose slot was deleted."""
    pieces: list[str] = []
    cursor = 0
    for index, match in enumerate(BOX_TOKEN.finditer(text)):
        pieces.append(text[cursor : match.start()])
        box = edits.boxes.get((turn, index))
        if box is not None:
            style = "brace" if match.group(0).startswith("{") else "angle"
            pieces.append(format_box(box, width, height, style))
        else:
            pieces.append("")  # the annotator deleted this box
        cursor = match.end()
    pieces.append(text[cursor:])
    return _tidy_delimiters("".join(pieces))


def _tidy_delimiters(text: str) -> str:
    # a deleted box leaves "<delim><delim>" or a leading/trailing "<delim>" in its group
    text = re.sub(rf"(?:{re.escape(DELIM)}\s*){{2,}}", DELIM, text)
    text = re.sub(rf"(</p>\s*){re.escape(DELIM)}", r"\1", text)
    text = re.sub(rf"^{re.escape(DELIM)}|{re.escape(DELIM)}(?=\s*(?:<p>|$))", "", text)
    return text


def append_new_boxes(conversation: list[dict[str, str]], new_boxes: list[list[float]], width: int, height: int) -> None:
    """Boxes the annotator drew: appended to the last box group of the last turn that has boxes."""
    targets = [i for i, t in enumerate(conversation) if BOX_TOKEN.search(t["content"])]
    if not targets:
        if new_boxes:
            log.warning("new boxes drawn on a sample without boxes are ignored")
        return
    turn = targets[-1]
    last = list(BOX_TOKEN.finditer(conversation[turn]["content"]))[-1]
    content = conversation[turn]["content"]
    added = "".join(DELIM + format_box(box, width, height) for box in new_boxes)
    conversation[turn] = {**conversation[turn], "content": content[: last.end()] + added + content[last.end() :]}


def corrected_conversation(
    original: Sequence[Mapping[str, str]], edits: AnnotationEdits, width: int, height: int
) -> list[dict[str, str]]:
    """The conversation with the annotation's text and box edits applied.

    A text correction replaces its turn. Box edits then apply to that turn's tokens when the count
    of tokens is unchanged; if the annotator rewrote the boxes by hand in the text, the text wins.
    No rectangles at all in the annotation means the boxes were not touched.
    """
    result = canonical_conversation(original)
    for turn, message in enumerate(result):
        text = edits.texts.get(turn, message["content"])
        original_count = len(BOX_TOKEN.findall(message["content"]))
        if edits.has_rectangles and original_count:
            if len(BOX_TOKEN.findall(text)) == original_count:
                text = rewrite_boxes(text, turn, edits, width, height)
            else:
                log.warning("turn %d: the corrected text rewrote the boxes; its rectangle edits are ignored", turn)
        result[turn] = {"role": message["role"], "content": text}
    append_new_boxes(result, edits.new_boxes, width, height)
    return result


# -- task + annotation → verdict ---------------------------------------------------------------------


class TaskDataError(ValueError):
    """The task's data is not what push wrote (edited in Label Studio, or not a SkyEye task)."""


class InvalidVerdict(ValueError):
    """The annotation contradicts itself ("edit" with nothing changed, "accept" with changes)."""


def annotator_of(annotation: Mapping[str, Any], emails: Mapping[int, str] | None = None) -> str:
    """The annotator as Label Studio shows them: the e-mail (``emails``: user id → e-mail, from the
    server's user list), else ``user:<id>`` (an export read offline carries only the id)."""
    completed_by = annotation.get("completed_by")
    if isinstance(completed_by, Mapping):
        if completed_by.get("email"):
            return str(completed_by["email"])
        completed_by = completed_by.get("id")
    try:
        user_id = int(completed_by)
    except (TypeError, ValueError):
        return f"user:{completed_by}"
    return (emails or {}).get(user_id) or f"user:{user_id}"


def checked_task_data(data: Mapping[str, Any]) -> tuple[list[dict[str, str]], int, int]:
    """The original conversation and image size of a task, after checking its fingerprint."""
    try:
        conversation = canonical_conversation(data["dialog"])
        fingerprint = fingerprint_of(data["image_ids"], conversation)
        width, height = int(data["width"]), int(data["height"])
        expected = data["fingerprint"]
        data["sample_id"]
    except (KeyError, TypeError, ValueError) as error:
        raise TaskDataError(f"not a SkyEye review task (missing or bad {error})") from error
    if fingerprint != expected:
        raise TaskDataError("the task's dialog or images no longer match its fingerprint (task data edited?)")
    return conversation, width, height


def decide(choice: str | None, original: list[dict[str, str]], candidate: list[dict[str, str]]) -> str | None:
    """The verdict kind of a choice and the content it leaves; None: no verdict given."""
    changed = candidate != original
    if choice is None:
        if changed:
            raise InvalidVerdict("texts or boxes were changed but no verdict was chosen (choose edit)")
        return None
    if choice not in VERDICT_CHOICES:
        raise InvalidVerdict(f"unknown verdict choice {choice!r} (the choices are {', '.join(VERDICT_CHOICES)})")
    kind = VERDICT_CHOICES[choice]
    if kind == "corrected" and not changed:
        raise InvalidVerdict("edit was chosen but no text or box was changed")
    if kind == "accepted" and changed:
        raise InvalidVerdict("accept was chosen but a text or a box was changed (choose edit, or undo the change)")
    return kind


def verdict_from_task(
    task: Mapping[str, Any], annotation: Mapping[str, Any], project_id: int | None, emails: Mapping[int, str] | None = None
) -> Verdict | None:
    """The verdict one annotation gives; None when it gives none (skipped, or no decision and no edit).

    Raises :class:`TaskDataError` for a task push did not write, :class:`InvalidVerdict` for an
    annotation that contradicts itself.
    """
    if annotation.get("was_cancelled"):
        return None
    data = task["data"]
    conversation, width, height = checked_task_data(data)
    edits = read_edits(annotation.get("result") or [], conversation, width, height)
    if edits.text_problems:
        raise InvalidVerdict("; ".join(edits.text_problems))
    candidate = corrected_conversation(conversation, edits, width, height)
    kind = decide(edits.choice, conversation, candidate)
    if kind is None:
        return None
    corrected = candidate if kind == "corrected" else None
    lead_time = annotation.get("lead_time")
    return Verdict(
        sample_id=str(data["sample_id"]),
        fingerprint=str(data["fingerprint"]),
        verdict=kind,
        annotator=annotator_of(annotation, emails),
        reviewed_at=str(annotation.get("updated_at") or annotation.get("created_at")),
        task_id=int(task["id"]),
        annotation_id=int(annotation["id"]),
        project_id=project_id,
        corrected_conversation=corrected,
        corrected_boxes=annotated_pixel_boxes(edits) if corrected else None,
        corrected_fingerprint=fingerprint_of(data["image_ids"], corrected) if corrected else None,
        lead_time_s=float(lead_time) if isinstance(lead_time, (int, float)) else None,
    )


def annotated_pixel_boxes(edits: AnnotationEdits) -> list[dict] | None:
    """The annotator's boxes in pixels as drawn (before token rounding), kept in the ledger for audits."""
    if not edits.has_rectangles:
        return None
    kept = [{"slot": f"t{turn}b{k}", "box": box} for (turn, k), box in sorted(edits.boxes.items())]
    return kept + [{"slot": None, "box": box} for box in edits.new_boxes]
