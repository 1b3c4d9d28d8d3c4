"""Fingerprints of what a build reads: the toolkit's code, the libraries it writes with, and the raw folders.

Standard library only: the no-change shortcut of ``skyeye build`` (:mod:`skyeye_data.compile.quick`)
computes them before it imports the recipe model, the converters or the stages (their imports,
pyarrow, pydantic, PIL and PyAV among them, are most of a no-change rebuild's time).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import sys
from pathlib import Path
from typing import Iterable, NamedTuple

# modules a conversion never runs: their edits do not invalidate converted records
NOT_CONVERSION = ("skyeye_data.compile", "skyeye_data.review", "skyeye_data.evaluation", "skyeye_data.export",
                  "skyeye_data.synth", "skyeye_data.cli", "skyeye_data.console", "skyeye_data.preview")  # fmt: skip
PACKAGE_ROOT = Path(__file__).resolve().parents[1]  # skyeye_data/
# installed libraries whose code shapes what a build writes (Parquet bytes and their ``created_by``, image
# decoding and verification, parsing, validation): an upgrade of any of them rebuilds instead of reusing a
# cache a clean build would no longer reproduce byte for byte. pyproject.toml's runtime dependencies are
# each here or in CONSOLE_ONLY (tests/test_compile_cache_quick.py checks that).
OUTPUT_LIBRARIES = ("pyarrow", "pandas", "datasets", "numpy", "pydantic", "pydantic-core", "pillow", "av",
                    "defusedxml", "pyyaml", "ijson", "orjson")  # fmt: skip
CONSOLE_ONLY = ("typer", "rich")  # what the terminal shows, not what is written


def library_versions() -> dict[str, str | None]:
    """The installed version of each of :data:`OUTPUT_LIBRARIES` (None: not installed), from its metadata
    only: nothing is imported (the no-change shortcut runs before pyarrow or PIL is)."""
    versions: dict[str, str | None] = {}
    for name in OUTPUT_LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def _code_version(include) -> str:
    digest = hashlib.sha256()
    for path in sorted(PACKAGE_ROOT.rglob("*.py")):
        module = "skyeye_data." + ".".join(path.relative_to(PACKAGE_ROOT).with_suffix("").parts)
        if include(module.removesuffix(".__init__")):
            digest.update(f"{module}\0".encode() + path.read_bytes() + b"\0")
    digest.update(sys.version.encode())
    digest.update(repr(sorted(library_versions().items())).encode())
    return digest.hexdigest()


def converter_version() -> str:
    """The source of every toolkit module a conversion can run (converters, schema, guarded input, ...),
    the Python version and :func:`library_versions`."""
    return _code_version(lambda m: not any(m == p or m.startswith(p + ".") for p in NOT_CONVERSION))


def toolkit_version() -> str:
    """The source of the whole toolkit (a build's output can depend on any of it), the Python version and
    :func:`library_versions`."""
    return _code_version(lambda m: True)


class FolderScan(NamedTuple):
    """One walk of a raw folder: its fingerprint, and the counts the convert pool orders its work by
    (``stages/convert.py`` ``convert_cost``: no second walk of ~220k paper-scale entries)."""

    digest: str  # raw_fingerprint
    files: int  # every entry below that is not a folder (a symlinked folder is one entry: it is not walked)
    top_bytes: int  # the sizes of those entries at the folder's top level (the annotation files)


def scan_folder(raw_dir: Path) -> FolderScan:
    """Every file under ``raw_dir``: relative path, size and mtime (ns); a symlink by its target text
    and by its target's size and mtime (a changed target behind an unchanged link must reconvert).

    ``os.scandir`` and one hash over the sorted lines: a paper-scale raw root (218k files) in about 2 s.
    """
    lines: list[str] = []
    top_bytes = 0
    folders = [("", os.fspath(raw_dir))]
    while folders:
        relative, path = folders.pop()
        with os.scandir(path) as entries:
            for entry in entries:
                name = relative + entry.name
                if entry.is_dir(follow_symlinks=False):
                    folders.append((name + "/", entry.path))
                    continue
                info = entry.stat(follow_symlinks=False)
                if not relative:
                    top_bytes += info.st_size
                link = ""
                if entry.is_symlink():
                    try:
                        target = os.stat(entry.path)
                        link = f"{os.readlink(entry.path)}\0{target.st_size}\0{target.st_mtime_ns}"
                    except OSError:  # a dangling link: the converter reports it; its text is the key
                        link = os.readlink(entry.path)
                lines.append(f"{name}\0{info.st_size}\0{info.st_mtime_ns}\0{link}")
    return FolderScan(hashlib.sha256("\n".join(sorted(lines)).encode()).hexdigest(), len(lines), top_bytes)


def raw_fingerprint(raw_dir: Path) -> str:
    """The fingerprint of every file under ``raw_dir`` (:func:`scan_folder`)."""
    return scan_folder(raw_dir).digest


def raw_scans(folders: Iterable[Path]) -> dict[Path, FolderScan]:
    """:func:`scan_folder` of each folder, once each, one after the other. Not in threads: each ``stat``
    releases and takes back the GIL, and four threads spent their time handing it over (the paper
    corpus' 218k files on the 2-core machine: 1.9 s wall, 1.0 s system alone; 4.6 s wall, 5.4 s system
    with four threads; 2.4 s with two)."""
    unique = list(dict.fromkeys(f for f in folders if f.is_dir()))
    return {folder: scan_folder(folder) for folder in unique}


def raw_fingerprints(folders: Iterable[Path]) -> dict[Path, str]:
    """:func:`raw_fingerprint` of each folder (:func:`raw_scans`)."""
    return {folder: scan.digest for folder, scan in raw_scans(folders).items()}
