"""The guarded raw reader: every raw dataset file is opened through this module.

A raw folder is untrusted input. Names come from annotation files (a JSON ``filename``, a split-file
id, an RSVG image name) and from the folder itself (a label file that is a symlink, a FIFO, a device).
The rules, checked before anything is read:

- **Names** (:func:`check_name`), before any filesystem call: no NUL, not absolute, no ``..``
  part, no part over 255 bytes (the Linux limit, ``NAME_MAX``), not over 4,095 bytes in all.
- **Where** (:func:`check_path`): the file's real path (symlinks and symlinked folders resolved)
  lies inside the raw root of the current :func:`scope`, or inside one of the recipe's
  ``input.allow_outside`` roots. A symlink whose target stays inside is fine (re-packs use them).
- **What**: a regular file only — never a FIFO (it would block the build forever), a device
  (``/dev/zero`` never ends) or a directory. The file is opened with ``O_NONBLOCK`` and checked
  again with ``fstat`` on the open descriptor, so a swap between the check and the open cannot
  make the build block or read something else.
- **How much**: a size cap per kind of file (:data:`skyeye_data.limits.DEFAULT_SIZE_CAPS`); reads
  never go past the cap even if the file grows.

Every refusal is a :class:`RawAccessError` whose ``reason`` names the file relative to the raw root
and never holds an absolute local path (quarantine files are shared with the dataset).

The scope is a context variable: :func:`skyeye_data.convert.convert_source` and the build enter
it, so converters need no extra argument. Without a scope (a converter called directly in a test)
the name, type and size rules still hold; only the "inside the raw root" rule has no root to check.
"""

from __future__ import annotations

import contextlib
import contextvars
import io
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterable, Iterator, TypeVar

from skyeye_data.limits import DEFAULT_LIMITS, InputLimits

NAME_MAX = 255  # bytes per path component (Linux, most file systems)
PATH_MAX = 4095
KINDS = ("label", "text", "json", "xml", "image", "video")
T = TypeVar("T")


class RawAccessError(Exception):
    """A raw file (or name) refused by the guarded reader; ``reason`` is the quarantine reason."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class RawFileMissing(RawAccessError):
    """The named file does not exist (callers often word this one themselves)."""


@dataclass(frozen=True)
class Scope:
    root: Path | None  # the raw root, resolved; None: no root check
    given: str | None  # the raw root as the caller named it (absolute, unresolved), for messages
    allowed: tuple[Path, ...]  # resolved roots outside the raw root that symlinks may reach
    limits: InputLimits


_SCOPE: contextvars.ContextVar[Scope | None] = contextvars.ContextVar("skyeye_raw_scope", default=None)


def _make_scope(raw_root: Path | None, limits: InputLimits | None) -> Scope:
    limits = limits or DEFAULT_LIMITS
    root = Path(os.path.realpath(raw_root)) if raw_root is not None else None
    allowed = tuple(Path(os.path.realpath(p)) for p in limits.allow_outside)
    given = os.path.abspath(raw_root) if raw_root is not None else None
    return Scope(root, given, allowed, limits)


@contextlib.contextmanager
def scope(raw_root: Path | None, limits: InputLimits | None = None) -> Iterator[Scope]:
    """Guard every raw read inside the block against ``raw_root`` under ``limits``."""
    token = _SCOPE.set(_make_scope(raw_root, limits))
    try:
        yield _SCOPE.get()
    finally:
        _SCOPE.reset(token)


def within(raw_root: Path, items: Iterable[T]) -> Iterator[T]:
    """``items`` (a converter's records generator) read under the active scope, or, when none is
    active (``skyeye convert``), under a default scope rooted at ``raw_root``.

    The scope is entered around each step only, so nothing leaks into the caller between items.
    """
    if _SCOPE.get() is not None:
        yield from items
        return
    rooted = _make_scope(raw_root, None)
    iterator = iter(items)
    while True:
        token = _SCOPE.set(rooted)
        try:
            item = next(iterator)
        except StopIteration:
            return
        finally:
            _SCOPE.reset(token)
        yield item


def current_scope() -> Scope | None:
    return _SCOPE.get()


def current_limits() -> InputLimits:
    active = _SCOPE.get()
    return active.limits if active is not None else DEFAULT_LIMITS


def shown(path: Path | str) -> str:
    """``path`` for a message: relative to the raw root when inside it, else only its last part(s).

    Never an absolute local path.
    """
    text = os.fspath(path)
    active = _SCOPE.get()
    if active is not None and active.root is not None:
        absolute = os.path.abspath(text)
        for candidate in (active.given, str(active.root)):
            if candidate and absolute.startswith(candidate.rstrip(os.sep) + os.sep):
                return absolute[len(candidate.rstrip(os.sep)) + 1 :]
    if os.path.isabs(text):
        parts = Path(text).parts
        return "/".join(parts[-2:]) if len(parts) > 2 else parts[-1]
    return text


_ABSOLUTE_PATH = re.compile(r"(?<![\w.])/(?:[^\s'\"/]+/)+([^\s'\"/]*)")


def strip_paths(text: str) -> str:
    """``text`` with every absolute path reduced to its last part (``/home/me/raw/x.jpg`` → ``x.jpg``).

    Library messages (Pillow, FFmpeg, an XML parser naming an external entity) carry local paths;
    quarantine files and manifests are shared with the dataset and must not.
    """
    if "/" not in text:  # no path without one (RSVQA-HR: 59k quarantine lines, a third of their cost)
        return text
    return _ABSOLUTE_PATH.sub(lambda m: m.group(1) or "?", text)


def _printable(name: str) -> str:
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")[:120]


def check_name(name: object, what: str = "file name") -> str:
    """``name`` if it is a safe relative name to join to a folder, else RawAccessError (no fs call)."""
    if not isinstance(name, str) or not name.strip():
        raise RawAccessError(f"{what} is not a non-empty string: {name!r}"[:200])
    if "\x00" in name:
        raise RawAccessError(f"{what} {_printable(name)!r} holds a NUL character")
    try:
        encoded = name.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        raise RawAccessError(f"{what} {_printable(name)!r} holds a lone surrogate, not a file name") from None
    if name.startswith(("/", "\\")) or (name[1:3] in (":/", ":\\") and name[0].isalpha()):
        shown_part = _printable(name.replace("\\", "/").rsplit("/", 1)[-1])
        raise RawAccessError(f"{what} ending in {shown_part!r} is an absolute path; a name relative to the dataset folder is expected")
    parts = name.replace("\\", "/").split("/")
    if ".." in parts:
        raise RawAccessError(f"{what} {_printable(name)!r} climbs out of its folder with '..'")
    for part in parts:
        length = len(part.encode("utf-8", "surrogateescape"))
        if length > NAME_MAX:
            raise RawAccessError(f"{what} {_printable(name)!r}... has a part of {length} bytes; file names hold at most {NAME_MAX}")
    if len(encoded) > PATH_MAX:
        raise RawAccessError(f"{what} is {len(encoded)} bytes long; paths hold at most {PATH_MAX}")
    return name


def child(base: Path, name: object, what: str = "file name") -> Path:
    """``base / name`` after :func:`check_name`: the way to turn a name read from a file into a path."""
    return Path(base) / check_name(name, what)


def _inside(real: str, roots: tuple[Path, ...]) -> bool:
    return any(real == str(r) or real.startswith(str(r).rstrip(os.sep) + os.sep) for r in roots)


def _kind_of(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def check_path(path: Path | str, kind: str) -> os.stat_result:
    """The ``stat`` of ``path`` if it may be read as a ``kind`` file, else RawAccessError."""
    if kind not in KINDS:
        raise ValueError(f"unknown raw file kind {kind!r}; one of {KINDS}")
    path = os.fspath(path)
    if "\x00" in path:
        raise RawAccessError(f"{_printable(shown(path))!r} holds a NUL character")
    try:
        os.lstat(path)
    except FileNotFoundError:
        raise RawFileMissing(f"file not found: {shown(path)}") from None
    except OSError as error:
        raise RawAccessError(f"{shown(path)} cannot be read ({error.strerror})") from None
    active = _SCOPE.get()
    real = os.path.realpath(path)
    if active is not None and active.root is not None and not _inside(real, (active.root, *active.allowed)):
        raise RawAccessError(
            f"{shown(path)} resolves to a file outside the raw root (a symlink?); refused — "
            "list its folder under the recipe's input.allow_outside to allow it"
        )
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise RawFileMissing(f"{shown(path)} is a broken symlink (its target does not exist)") from None
    except OSError as error:
        raise RawAccessError(f"{shown(path)} cannot be read ({error.strerror})") from None
    _check_stat(path, info, kind)
    return info


def _check_stat(path: str, info: os.stat_result, kind: str) -> None:
    if not stat.S_ISREG(info.st_mode):
        raise RawAccessError(f"{shown(path)} is {_kind_of(info.st_mode)}, not a regular file; refused")
    cap = current_limits().size_cap(kind)
    if info.st_size > cap:
        raise RawAccessError(
            f"{shown(path)} is {info.st_size:,} bytes, over the {cap:,}-byte cap for a {kind} file "
            "(input.size_caps in the recipe)"
        )


class _CappedReader(io.RawIOBase):
    """A read-only view of a file descriptor that never yields more than ``cap`` bytes."""

    def __init__(self, fd: int, cap: int, name: str):
        self._file = os.fdopen(fd, "rb", buffering=0)
        self._left = cap + 1  # one byte past the cap tells a grown file from one exactly at it
        self._cap = cap
        self.label = name

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        position = self._file.seek(offset, whence)
        self._left = self._cap + 1 - position
        return position

    def tell(self) -> int:
        return self._file.tell()

    def readinto(self, buffer) -> int:
        if self._left <= 0:
            raise RawAccessError(f"{self.label} grew past its size cap while being read")
        view = memoryview(buffer)[: self._left]
        count = self._file.readinto(view)
        self._left -= count or 0
        if self._left <= 0:
            raise RawAccessError(f"{self.label} grew past its size cap while being read")
        return count

    def close(self) -> None:
        self._file.close()
        super().close()


def _open_checked(path: Path | str, kind: str) -> tuple[int, os.stat_result]:
    """A file descriptor on a checked raw file and its ``fstat`` (what was opened, not what was looked at)."""
    check_path(path, kind)
    try:
        fd = os.open(os.fspath(path), os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as error:
        raise RawAccessError(f"{shown(path)} cannot be opened ({error.strerror})") from None
    try:
        info = os.fstat(fd)
        _check_stat(os.fspath(path), info, kind)
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd, info


def open_raw(path: Path | str, kind: str) -> BinaryIO:
    """A binary, buffered, seekable handle on a checked raw file (use it in a ``with``)."""
    fd, _ = _open_checked(path, kind)
    return io.BufferedReader(_CappedReader(fd, current_limits().size_cap(kind), shown(path)), buffer_size=1 << 20)


def read_bytes(path: Path | str, kind: str) -> bytes:
    """The whole file in one read of its ``fstat`` size (a file that grew past its cap is refused)."""
    fd, info = _open_checked(path, kind)
    with os.fdopen(fd, "rb", buffering=0) as handle:
        data = handle.read(info.st_size + 1)
        if len(data) > info.st_size:  # it grew since the fstat: read on in chunks, within the cap
            cap, parts = current_limits().size_cap(kind), [data]
            while (total := sum(map(len, parts))) <= cap and (block := handle.read(1 << 20)):
                parts.append(block)
            if total > cap:
                raise RawAccessError(f"{shown(path)} grew past its size cap while being read")
            data = b"".join(parts)
    return data


def read_text(path: Path | str, kind: str, encoding: str = "utf-8", errors: str = "strict") -> str:
    """The file decoded; a decoding failure (with ``errors="strict"``) raises UnicodeDecodeError."""
    return read_bytes(path, kind).decode(encoding, errors)


def open_text(path: Path | str, kind: str, encoding: str = "utf-8", errors: str = "strict", newline: str | None = None):
    """A text handle on a checked raw file, read line by line (the file is never held whole)."""
    return io.TextIOWrapper(open_raw(path, kind), encoding=encoding, errors=errors, newline=newline)


def present(path: Path | str) -> bool:
    """Whether something (file, symlink, FIFO ...) is at ``path``; no open, no read.

    Use it to choose between candidate locations; the open then says exactly what is wrong.
    """
    try:
        return not stat.S_ISDIR(os.stat(os.fspath(path)).st_mode)
    except FileNotFoundError:
        return os.path.lexists(os.fspath(path))  # a broken symlink is "present": the open names it
    except (OSError, ValueError):
        return False
