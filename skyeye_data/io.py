"""Crash-safe file writing: every output is written under a temporary name and renamed when complete,
so a killed run never leaves a half-written file under the final name."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator


def temporary_name(final: Path) -> Path:
    return final.with_name(f".{final.name}.{os.getpid()}.tmp")


@dataclass(frozen=True)
class PendingFile:
    """A complete file still under its temporary name, and the final name it gets at commit."""

    tmp: Path
    final: Path


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


def link_or_copy(source: Path, final: Path) -> None:
    """``final`` as a hard link to ``source`` (a copy across file systems), replacing what was there atomically."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_name(final)
    tmp.unlink(missing_ok=True)
    try:
        os.link(source, tmp)
    except OSError:
        shutil.copyfile(source, tmp)
    os.replace(tmp, final)


def write_text_atomic(final: Path, text: str) -> None:
    with atomic_path(final) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json_atomic(final: Path, data) -> None:
    write_text_atomic(final, json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


# ---------------------------------------------------------------------------------------------
# one build at a time per output folder
# ---------------------------------------------------------------------------------------------

LOCK_NAME = ".skyeye-build.lock"
_TEMPORARY = re.compile(r"^\..+\.(\d+)\.tmp$")


class OutputLocked(Exception):
    """Another live process is building into the same output folder."""


def temporary_owner(path: Path) -> int | None:
    """The PID in a ``.<name>.<pid>.tmp`` temporary name, or None for any other name."""
    match = _TEMPORARY.match(path.name)
    return int(match.group(1)) if match else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def is_stale_temporary(path: Path) -> bool:
    """A temporary file a dead process left (never this process's, never a live build's)."""
    pid = temporary_owner(path)
    return pid is not None and pid != os.getpid() and not _alive(pid)


@contextlib.contextmanager
def output_lock(out: Path) -> Iterator[None]:
    """Hold ``OUT/.skyeye-build.lock`` (an exclusive ``flock``) for the block.

    A second build into the same folder raises :class:`OutputLocked` naming the holder's PID at
    once, before it touches anything. The kernel drops the lock when its holder dies (kill -9
    included), so a killed build never blocks the next one. The lock file is removed on the way
    out, and a folder this call had to create is removed again if the build left it empty (a failed
    ``--strict`` build leaves no trace).
    """
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    path = out / LOCK_NAME
    while True:
        handle = open(path, "a+", encoding="ascii")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "?"
            handle.close()
            raise OutputLocked(f"{out} is being built by PID {holder}; wait for it to finish (or stop it)") from None
        # the holder before us may have unlinked the file between our open and our lock: retry on the new one
        try:
            same = os.fstat(handle.fileno()).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        handle.close()
    try:
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        yield
    finally:
        path.unlink(missing_ok=True)
        handle.close()
        if created and not any(out.iterdir()):
            out.rmdir()
