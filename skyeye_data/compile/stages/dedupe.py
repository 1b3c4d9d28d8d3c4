"""Dedupe (``dedupe: true``): a sample repeating an earlier one is left out, and counted.

A sample's identity is its images, task, answers, and its instructions' task and payload -- the
:func:`skyeye_data.compile.builders.payload_key` the builder handed on with the draft, so which
phrasing the pool drew does not count and nothing is parsed back out of the finished text: the
same caption twice on one image is a repeat whichever phrasing each drew, and so is the same
question with the same answer. Kept as 16-byte digests (about 100 MB at a million samples).
"""

from __future__ import annotations

import hashlib
from typing import Any, Sequence


def sample_digest(row: dict[str, Any], instruction_keys: Sequence[str]) -> bytes:
    """The digest of a sample row; user turns by their payload key (their text when the builder gave none)."""
    parts = [row["task"], *row["image_ids"]]
    keys = iter(instruction_keys)
    for turn in row["conversation"]:
        content = next(keys, turn["content"]) if turn["role"] == "user" else turn["content"]
        parts.append(f"{turn['role']}:{content}")
    return hashlib.blake2b("\x1f".join(parts).encode(), digest_size=16).digest()


class SampleDigests:
    """Which samples were written (their digests)."""

    def __init__(self) -> None:
        self.digests: set[bytes] = set()

    def first_time(self, row: dict[str, Any], instruction_keys: Sequence[str]) -> bool:
        key = sample_digest(row, instruction_keys)
        if key in self.digests:
            return False
        self.digests.add(key)
        return True
