"""Crash-safe file writing: every output is written under a temporary name and renamed when complete,
so a killed run never leaves a half-written file under the final name."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Iterator


def temporary_name(final: Path) -> Path:
    return final.with_name(f".{final.name}.{os.getpid()}.tmp")


@contextlib.contextmanager
def atomic_path(final: Path) -> Iterator[Path]:
    """Yield a temporary path next to ``final``; rename it onto ``final`` only if the block succeeds."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_name(final)
    try:
        yield tmp
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_text_atomic(final: Path, text: str) -> None:
    with atomic_path(final) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json_atomic(final: Path, data) -> None:
    write_text_atomic(final, json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
