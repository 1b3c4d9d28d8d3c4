"""Image headers read once per header layout: Pillow's answer for an image whose header bytes are the
ones of an image it has already read.

Opening an image with Pillow (``imagecheck.read_header``) costs ~0.3 ms for a small TIFF (each
plugin before TIFF tries the file, the TIFF plugin walks its tags in Python): RSVQA-HR probes 10,659
images, all written the same way. Pillow's ``open`` is a pure function of the bytes it reads (and of
the pixel cap): it decides where to read next from what it has read. So the reads of one open are
logged, and a later file of the same size holding the same bytes at every logged place gets the
same (format, width, height) without opening it: Pillow would read the same places, see the same
bytes and answer the same. A read the log does not see (a method other than ``read``, ``readline``,
``readinto``) keeps that image out of the memo, and so does a failure (each is opened as usual).
"""

from __future__ import annotations

import io

from skyeye_data.imagecheck import read_header

MAX_LAYOUTS = 64  # distinct layouts remembered per (size, pixel cap); past it, images are just opened
MAX_LOGGED_BYTES = 64 << 10  # an open that reads more than this (a whole small file) is not remembered


class _LoggedBytes(io.BytesIO):
    """BytesIO that logs ``(offset, bytes returned)`` of every read."""

    def __init__(self, data: bytes):
        super().__init__(data)
        self.reads: list[tuple[int, bytes]] = []
        self.untracked = False

    def read(self, size: int | None = -1) -> bytes:
        start = self.tell()
        data = super().read(size)
        self.reads.append((start, data))
        return data

    def readline(self, size: int | None = -1) -> bytes:
        start = self.tell()
        data = super().readline(size)
        self.reads.append((start, data))
        return data

    def readinto(self, buffer) -> int:
        start = self.tell()
        count = super().readinto(buffer)
        self.reads.append((start, bytes(memoryview(buffer)[:count])))
        return count

    def _untracked(self, name: str):
        self.untracked = True
        return getattr(super(), name)

    def read1(self, *args):  # noqa: D102
        return self._untracked("read1")(*args)

    def readinto1(self, *args):  # noqa: D102
        return self._untracked("readinto1")(*args)

    def readlines(self, *args):  # noqa: D102
        return self._untracked("readlines")(*args)

    def getvalue(self):  # noqa: D102
        return self._untracked("getvalue")()

    def getbuffer(self):  # noqa: D102
        return self._untracked("getbuffer")()

    def __next__(self):
        return self._untracked("__next__")()


_MEMO: dict[tuple[int, int], list[tuple[tuple[tuple[int, bytes], ...], tuple[str, int, int]]]] = {}


def memo_read_header(data: bytes, max_pixels: int) -> tuple[str, int, int]:
    """``read_header(io.BytesIO(data))``, from the memo when an image of the same layout was read."""
    layouts = _MEMO.setdefault((len(data), max_pixels), [])
    for reads, result in layouts:
        if all(data[offset : offset + len(chunk)] == chunk for offset, chunk in reads):
            return result
    handle = _LoggedBytes(data)
    result = read_header(handle)  # an ImageProblem propagates: failures are never remembered
    if not handle.untracked and len(layouts) < MAX_LAYOUTS and sum(len(chunk) for _, chunk in handle.reads) <= MAX_LOGGED_BYTES:
        layouts.append((tuple(handle.reads), result))
    return result
