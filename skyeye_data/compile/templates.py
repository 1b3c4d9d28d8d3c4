"""Instruction template pools, and the deterministic choice of one template per sample.

A pool is a list of phrasings of one instruction, *without* the task identifier: the builder puts
``[caption]``/``[vqa]``/... in front, so a recipe's own pool can never produce a sample without its
identifier. Placeholders are ``str.format`` fields; each pool allows a fixed set of them.

The choice is a function of (seed, sample id) only -- sha256, never Python's ``hash()``, which is
salted per process -- so a rebuild gives the same instruction for the same sample whatever the
order records are processed in. The defaults follow MiniGPT-v2's pools, which SkyEyeGPT reuses.
"""

from __future__ import annotations

import hashlib
import string
from typing import Mapping, Sequence

# pool name -> the placeholders its templates must (and may only) use
POOL_FIELDS: dict[str, frozenset[str]] = {
    "caption": frozenset(),
    "video_caption": frozenset(),
    "vqa": frozenset({"question"}),
    "refer": frozenset({"expression"}),
    "identify": frozenset({"box"}),
    "detection": frozenset({"phrase"}),
}

DEFAULT_POOLS: dict[str, tuple[str, ...]] = {
    "caption": (
        "Briefly describe this image.",
        "Provide a concise depiction of this image.",
        "Present a short description of this image.",
        "Summarize this image in a few words.",
        "A short image caption:",
        "A short image description:",
        "Write a short description for the image.",
        "Briefly describe the content of the image.",
        "Can you briefly explain what you see in the image?",
        "Please provide a short depiction of the picture.",
    ),
    "video_caption": (
        "Briefly describe this video.",
        "Provide a concise depiction of this video.",
        "Summarize what happens in this video in a few words.",
        "Write a short description for the video.",
        "Briefly describe the content of the aerial video.",
    ),
    "vqa": (
        "{question}",
        "Based on the image, respond to this question with a short answer: {question}",
    ),
    "refer": (
        "{expression}",
        "give me the location of {expression}",
        "where is {expression} ?",
        "from this image, tell me the location of {expression}",
        "the location of {expression} is",
        "could you tell me the location for {expression} ?",
    ),
    "identify": (
        "this {box} is",
        "what object is in this location {box}",
        "identify the object present at this location {box}",
        "what is it in {box}",
        "describe this object in {box}",
        "the object in {box} is",
    ),
    "detection": ("{phrase}",),
}


def template_fields(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}


def template_problems(pool: str, templates: Sequence[str]) -> list[tuple[int | None, str]]:
    """What is wrong with a recipe's pool: (index or None for the pool, message)."""
    if pool not in POOL_FIELDS:
        return [(None, f"unknown template pool {pool!r}; known: {', '.join(POOL_FIELDS)}")]
    if not templates:
        return [(None, "a template pool needs at least one template")]
    problems: list[tuple[int | None, str]] = []
    allowed = POOL_FIELDS[pool]
    for i, template in enumerate(templates):
        try:
            fields = template_fields(template)
        except ValueError as error:
            problems.append((i, f"malformed template ({error}); write a literal brace as {{{{ or }}}}"))
            continue
        if fields != allowed:
            want = ", ".join("{" + f + "}" for f in sorted(allowed)) or "no placeholder"
            problems.append((i, f"template uses {sorted(fields) or 'no placeholder'}; pool {pool!r} needs {want}"))
        if template.lstrip().startswith("["):
            problems.append((i, "leave out the task identifier: the builder adds [task] itself"))
    return problems


def stable_index(seed: int, key: str, size: int) -> int:
    """A deterministic index in 0..size-1 from a seed and a key (first 8 bytes of a sha256)."""
    digest = hashlib.sha256(f"{seed}\x00{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % size


def stable_fraction(seed: int, key: str) -> float:
    """A deterministic number in [0, 1) from a seed and a key: seeded sampling without state."""
    digest = hashlib.sha256(f"fraction\x00{seed}\x00{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


class ReadPools(dict):
    """A dict of pools that notes which pools were read (``used``): the compiled-samples cache keys a
    source's samples on the contents of the pools its compilation actually drew from."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.used: set[str] = set()

    def __getitem__(self, name: str) -> tuple[str, ...]:
        self.used.add(name)
        return super().__getitem__(name)


class TemplatePools:
    """The pools of one build: built-ins overridden by the recipe's, and a seed."""

    def __init__(self, overrides: Mapping[str, Sequence[str]], seed: int):
        self.pools = ReadPools({name: tuple(overrides.get(name, default)) for name, default in DEFAULT_POOLS.items()})
        self.seed = seed

    def used(self) -> dict[str, list[str]]:
        """The pools read so far, by name, with their templates."""
        return {name: list(dict.__getitem__(self.pools, name)) for name in sorted(self.pools.used)}

    def instruction(self, task: str, pool: str, sample_id: str, **fields: str) -> str:
        """``[task] <template chosen by sample id, filled in>``."""
        templates = self.pools[pool]
        template = templates[stable_index(self.seed, sample_id, len(templates))]
        return f"[{task}] {template.format(**fields)}"

    def first(self, task: str, pool: str, **fields: str) -> str:
        """The pool's first template: the fixed instruction of eval items, comparable across builds."""
        return f"[{task}] {self.pools[pool][0].format(**fields)}"
