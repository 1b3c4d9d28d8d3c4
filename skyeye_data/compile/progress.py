"""What the build reports its progress to (the CLI adapts it to rich progress bars)."""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    def stage(self, description: str, total: int | None) -> None: ...
    def advance(self, n: int = 1) -> None: ...


class NullProgress:
    def stage(self, description: str, total: int | None) -> None:  # noqa: D102
        pass

    def advance(self, n: int = 1) -> None:  # noqa: D102
        pass
