"""Published results to print beside a run's figures (``published.yaml`` next to this module).

The file is data, read with ``yaml.safe_load`` and checked here; its header says where every
figure comes from and which figures were left out because they could not be cited.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

DEFAULT_PUBLISHED = Path(__file__).with_name("published.yaml")
TASKS = ("captioning", "vqa", "grounding")


class PublishedError(ValueError):
    """The published-results file is malformed; the message names the entry and the field."""


@dataclass(frozen=True)
class PublishedEntry:
    model: str
    task: str
    source: str
    subset: str | None
    figures: dict[str, float]
    cited_in: str
    primary: bool
    note: str = ""

    def matches(self, task: str, source: str, subset: str | None) -> bool:
        return (self.task, self.source, self.subset) == (task, source, subset)


def _entry(raw: Any, index: int, path: Path) -> PublishedEntry:
    where = f"{path}: entry {index + 1}"
    if not isinstance(raw, dict):
        raise PublishedError(f"{where} is not a mapping")
    missing = [k for k in ("model", "task", "source", "figures", "cited_in") if k not in raw]
    if missing:
        raise PublishedError(f"{where} lacks {', '.join(missing)}")
    if raw["task"] not in TASKS:
        raise PublishedError(f"{where}: task must be one of {', '.join(TASKS)}, got {raw['task']!r}")
    figures = raw["figures"]
    if not isinstance(figures, dict) or not figures:
        raise PublishedError(f"{where}: figures must be a non-empty mapping of metric name to number")
    for name, value in figures.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise PublishedError(f"{where}: figure {name!r} is {value!r}, not a number")
    if not str(raw["cited_in"]).strip():
        raise PublishedError(f"{where}: cited_in is empty; every published figure needs its source")
    return PublishedEntry(
        model=str(raw["model"]),
        task=raw["task"],
        source=str(raw["source"]),
        subset=raw.get("subset"),
        figures={str(k): float(v) for k, v in figures.items()},
        cited_in=str(raw["cited_in"]),
        primary=bool(raw.get("primary", False)),
        note=str(raw.get("note") or ""),
    )


def load_published(path: Path = DEFAULT_PUBLISHED) -> list[PublishedEntry]:
    """Every entry of a published-results file (default: the bundled one)."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise PublishedError(f"cannot read {path}: {error}") from None
    except yaml.YAMLError as error:
        raise PublishedError(f"{path} is not valid YAML: {error}") from None
    if data is None:
        return []
    if not isinstance(data, dict) or not isinstance(data.get("entries", []), list):
        raise PublishedError(f"{path}: expected a mapping with a list under 'entries'")
    return [_entry(raw, i, path) for i, raw in enumerate(data.get("entries") or [])]


def published_for(entries: list[PublishedEntry], task: str, source: str, subset: str | None) -> list[PublishedEntry]:
    return [e for e in entries if e.matches(task, source, subset)]
