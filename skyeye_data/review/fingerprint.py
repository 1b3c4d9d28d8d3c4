"""A sample's content fingerprint: what a reviewer saw.

A verdict is keyed by ``(sample id, fingerprint)``. The id is stable across rebuilds, but the content
behind it can change (a converter fix, a new instruction template); the fingerprint changes with it,
so an old verdict never applies to content nobody reviewed.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Mapping, Sequence


def canonical_conversation(conversation: Sequence[Mapping[str, Any]]) -> list[dict[str, str]]:
    """Only role and content count: other keys (and their order) do not change what a reviewer saw."""
    return [{"role": str(turn["role"]), "content": str(turn["content"])} for turn in conversation]


def fingerprint_of(image_ids: Sequence[str], conversation: Sequence[Mapping[str, Any]]) -> str:
    payload = {"image_ids": [str(i) for i in image_ids], "conversation": canonical_conversation(conversation)}
    text = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def sample_fingerprint(sample: Mapping[str, Any]) -> str:
    """sha256 of the canonical JSON of the sample's ``image_ids`` and ``conversation``."""
    return fingerprint_of(sample["image_ids"], sample["conversation"])
