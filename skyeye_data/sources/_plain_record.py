"""Records built without validation where every check validation makes is known to pass (RSVQA-HR:
a million questions, for which two model validations and the text guard cost more than reading them)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from skyeye_data.rawfs import current_limits
from skyeye_data.schema import SPLITS, Provenance, VQARecord, unvalidated
from skyeye_data.textguard import safe_text

_IDENTITY_TEXT = ("source", "record_id", "image_path", "image_key", "image_sha256")
_FREE_TEXT = ("subset", "question", "answer", "question_type")


def plain_vqa_record(raw_file: str, raw_index: int, fields: dict[str, Any]) -> VQARecord | None:
    """The record :func:`build_record` would return, built without validation, when every check it
    makes is known to pass; None (validate the usual way) otherwise. RSVQA-HR has a million questions
    and two model validations plus the text guard cost more than reading them.

    Known to pass: all text printable ASCII (nothing for :mod:`skyeye_data.textguard` to strip or refuse:
    each character it acts on is a control, non-ASCII or a surrogate), within ``input.max_text_chars``;
    question and answer non-blank (already stripped); width and height positive ints; a known split;
    a relative POSIX image path. ``tests/test_sources_vqa_rsvqa.py`` checks both ways agree.
    """
    cap = current_limits().max_text_chars
    for name in _IDENTITY_TEXT:
        value = fields[name]
        if type(value) is not str or not (value.isascii() and value.isprintable()):
            return None
    for name in _FREE_TEXT:
        value = fields[name]
        if value is not None and (type(value) is not str or not (value.isascii() and value.isprintable()) or len(value) > cap):
            return None
    width, height = fields["width"], fields["height"]
    if not (type(width) is int and type(height) is int and width > 0 and height > 0):
        return None
    path = fields["image_path"]
    if not fields["question"] or not fields["answer"] or fields["split"] not in SPLITS or path.startswith("/") or "\\" in path:
        return None
    provenance = _trusted(Provenance, {"raw_file": safe_text(raw_file), "raw_line": None, "raw_index": raw_index})
    return _trusted(VQARecord, {**fields, "provenance": provenance})


def _trusted(model: type[BaseModel], values: dict[str, Any]) -> Any:
    """``model.model_construct(**values)`` for a model whose fields are plain values or a list factory:
    pydantic's own asks ``inspect`` for each default factory's signature (~1 ms per record here)."""
    data = {}
    for name, default, factory in _DEFAULTS[model]:
        data[name] = values[name] if name in values else factory() if factory is not None else default
    return unvalidated(model, data, set(values))


# field order, default and default factory of the models _trusted builds (model_post_init: none)
_DEFAULTS = {model: tuple((name, info.default, info.default_factory) for name, info in model.model_fields.items())
             for model in (Provenance, VQARecord)}  # fmt: skip
