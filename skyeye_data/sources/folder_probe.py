"""``probe_image`` for the many images of one folder, with the raw-root check made once for the folder.

:func:`skyeye_data.sources.base.probe_image` runs the guarded reader's checks on every call
(:func:`skyeye_data.rawfs.check_path`: an ``lstat``, a ``realpath`` that ``lstat``s every part of
the path, a ``stat``; then the same again to open it): RSVQA-HR probes 10,659 images of one folder,
~25 system calls each. Here one ``scandir`` lists the folder's regular files (``d_type``, no call
per file), and one of them goes through ``check_path``: a regular file that is not a symlink has
the folder's real path plus its name as real path, so once one of them lies inside the raw root,
every other one does. Each listed image is then opened with ``O_NOFOLLOW`` (a name turned into a
symlink since the listing fails to open) and ``O_NONBLOCK``, checked with ``fstat`` on the open
descriptor (a regular file within the image size cap: what was opened, not what was listed), and
read whole; its header and hash are those ``probe_image`` computes from the same bytes.

Whenever any of that does not hold -- a name not listed as a regular file, a failed open, a file
over the cap or too big to read whole, a header Pillow refuses, a file that grew -- the image goes
through ``probe_image`` itself, so every problem and its reason are exactly the guarded reader's.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

from skyeye_data import rawfs
from skyeye_data.imagecheck import ImageProblem
from skyeye_data.sources.base import ImageInfo, probe_image
from skyeye_data.sources.header_memo import memo_read_header

WHOLE_READ_BYTES = 16 << 20  # larger images: probe_image (it hashes them in blocks)
_UNCHECKED = object()
_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


class FolderProbe:
    """The probes of images in one folder, under the raw-reader scope active when asked."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self._scope: object = _UNCHECKED  # the rawfs scope the listing was checked under
        self._regular: frozenset[str] = frozenset()

    def probe(self, name: str) -> ImageInfo:
        """``probe_image(folder / name)`` (ImageProblem when the image cannot be used)."""
        info = self._read(os.path.join(self.folder, name)) if name in self._listed() else None
        return info if info is not None else probe_image(self.folder / name)

    def _listed(self) -> frozenset[str]:
        scope = rawfs.current_scope()
        if scope is not self._scope:
            self._scope, self._regular = scope, frozenset()
            try:
                with os.scandir(self.folder) as entries:
                    regular = [entry.name for entry in entries if entry.is_file(follow_symlinks=False)]
            except OSError:
                return self._regular
            try:
                if regular:
                    rawfs.check_path(self.folder / regular[0], "image")  # the folder's real path is inside
                    self._regular = frozenset(regular)
            except rawfs.RawAccessError:
                pass  # every image of the folder goes through probe_image, which says why
        return self._regular

    def _read(self, path: str) -> ImageInfo | None:
        limits = rawfs.current_limits()
        try:
            fd = os.open(path, _FLAGS)
        except OSError:
            return None
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode) or info.st_size > min(limits.size_cap("image"), WHOLE_READ_BYTES):
                return None
            data = _read_all(fd, info.st_size + 1)
        finally:
            os.close(fd)
        if len(data) != info.st_size:
            return None  # it changed since the fstat
        try:
            fmt, width, height = memo_read_header(data, limits.max_image_pixels)
        except ImageProblem:
            return None
        return ImageInfo(width, height, hashlib.sha256(data).hexdigest(), fmt)


def _read_all(fd: int, size: int) -> bytes:
    parts, left = [], size
    while left > 0 and (block := os.read(fd, left)):
        parts.append(block)
        left -= len(block)
    return b"".join(parts)
