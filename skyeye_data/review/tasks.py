"""A queued sample as a Label Studio task: the data the labeling view shows, and the pre-filled answer.

The data keys are those of ``review/*.xml``. ``dataset`` names the source: a key named ``source``
would not do, since Label Studio's frontend replaces ``$source`` with the task object itself (the
header then prints the task JSON). ``sample_id``, ``fingerprint``, ``image_ids``, ``width``,
``height`` and ``dialog[].role/content`` are what pull reads back; the other keys are for reading.
"""

from __future__ import annotations

import json
from typing import Any, Mapping

from skyeye_data.review.corrections import ANSWER_CONTROL, conversation_rectangles
from skyeye_data.review.queue import QueuedSample
from skyeye_data.review.task_view import box_labels, dialog_view, distinct_boxes, words

KINDS = ("caption_vqa", "grounding", "conversa")
GROUNDING_TASKS = {"refer", "identify", "detection", "grounding"}
MODEL_VERSION = "skyeye-sample"

# the one-line rule of review/GUIDELINES.md shown on every task of a kind
RULES = {
    "caption_vqa": "Accept only if every statement is visible in the image; edit a word or a count; reject if wrong or unsure.",
    "grounding": "Each box must tightly cover the object its label names; drag a box to fix it, then edit. Reject if unsure.",
    "conversa": "Every turn must be right for the image and agree with the others; fix a turn or a box and edit, or reject.",
}
KEYS_HINT = "keys: a accept · r reject · e edit · ctrl+enter submit"


def review_kind(sample: Mapping[str, Any]) -> str:
    users = [t for t in sample["conversation"] if t["role"] == "user"]
    if len(users) > 1 or sample.get("task") == "conversation":
        return "conversa"
    if sample.get("task") in GROUNDING_TASKS or "{<" in json.dumps(sample["conversation"]):
        return "grounding"
    return "caption_vqa"


def task_payload(queued: QueuedSample, image: Mapping[str, Any], image_url: str) -> dict[str, Any]:
    """A Label Studio task: the data shown (and read back by pull) and the sample as a prediction."""
    sample = queued.sample
    kind = review_kind(sample)
    conversation = [{"role": str(t["role"]), "content": str(t["content"])} for t in sample["conversation"]]
    boxes = distinct_boxes(conversation)
    width, height = int(image["width"]), int(image["height"])
    users = [t["content"] for t in conversation if t["role"] == "user"]
    answers = [t["content"] for t in conversation if t["role"] == "assistant"]
    data = {
        "image": image_url,
        "sample_id": sample["id"],
        "fingerprint": queued.fingerprint,
        "dataset": sample["source"],
        "task": sample.get("task"),
        "image_ids": list(sample["image_ids"]),
        "width": width,
        "height": height,
        "reasons": "flags: " + (", ".join(queued.reasons) or "none"),
        "rule": f"{RULES[kind]}  ({KEYS_HINT})",
        "instruction": words(users[-1], boxes) if users else "",
        "answer": words(answers[-1], boxes) if answers else "",
        "dialog": dialog_view(conversation, boxes),
        "box_labels": box_labels(boxes) or [{"value": "new box", "background": "#e6194b"}],
    }
    return {"data": data, "predictions": [{"model_version": MODEL_VERSION, "result": prediction_result(kind, conversation, width, height)}]}


def prediction_result(kind: str, conversation: list[dict[str, str]], width: int, height: int) -> list[dict]:
    """The sample as Label Studio pre-annotations: its boxes as rectangles, its texts in the editors."""
    result = [] if kind == "caption_vqa" else conversation_rectangles(conversation, width, height)
    if kind == "conversa":
        for i, turn in enumerate(conversation):
            result.append(_textarea(f"correction_{i}", f"turn_{i}", turn["content"], f"text{i}"))
    else:
        answers = [t["content"] for t in conversation if t["role"] == "assistant"]
        if answers:
            result.append(_textarea(ANSWER_CONTROL, "image", answers[-1], "answer"))
    return result


def _textarea(control: str, target: str, text: str, region_id: str) -> dict[str, Any]:
    return {"id": region_id, "from_name": control, "to_name": target, "type": "textarea", "value": {"text": [text]}}


def task_key(data: Mapping[str, Any]) -> tuple[str, str] | None:
    if "sample_id" in data and "fingerprint" in data:
        return (str(data["sample_id"]), str(data["fingerprint"]))
    return None
