"""The build cache: converted records per source, and the fingerprint of a whole build.

* **Records cache** (``CACHE/records/<source>/``): a source's records table, its converter
  rejections and its val/test image notes, kept under a key made of the source's name, the
  fingerprint of every raw file it can read (relative path, size, mtime in ns: a changed, added or
  removed file changes it) and the converter's code version (the source of every toolkit module a
  conversion can run). A hit replays exactly what the conversion gave, so a template change
  recompiles without reconverting, and a changed raw file reconverts only its source.
* **Compiled samples** (``CACHE/compiled/<source|mix>-<name>/``): each source's and mix's compiled
  segment, keyed by its records keys, recipe section, the pools it drew from, ...
  (:mod:`skyeye_data.compile.segments`).
* **Build key** (``CACHE/build.json``, beside the manifest's sha256 and every output file's size and
  mtime): the recipe fingerprint, every source's records key, the toolkit's code version and the
  build options. A rebuild whose key matches, and whose listed files all still have the size and
  mtime noted (or else their recorded sha256), only verifies: it stats files, it reads none.

``skyeye build --no-cache`` ignores and rewrites neither: it builds from scratch.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterable

from skyeye_data.convert import ConvertSummary
from skyeye_data.hashing import file_sha256
from skyeye_data.io import link_or_copy, write_json_atomic

CACHE_FORMAT = "skyeye-cache/1"
# modules a conversion never runs: their edits do not invalidate converted records
NOT_CONVERSION = ("skyeye_data.compile", "skyeye_data.review", "skyeye_data.evaluation", "skyeye_data.export",
                  "skyeye_data.synth", "skyeye_data.cli", "skyeye_data.console", "skyeye_data.preview")  # fmt: skip
PACKAGE_ROOT = Path(__file__).resolve().parents[1]  # skyeye_data/


def _code_version(include) -> str:
    digest = hashlib.sha256()
    for path in sorted(PACKAGE_ROOT.rglob("*.py")):
        module = "skyeye_data." + ".".join(path.relative_to(PACKAGE_ROOT).with_suffix("").parts)
        if include(module.removesuffix(".__init__")):
            digest.update(f"{module}\0".encode() + path.read_bytes() + b"\0")
    digest.update(sys.version.encode())
    return digest.hexdigest()


def converter_version() -> str:
    """The source of every toolkit module a conversion can run (converters, schema, guarded input, ...)."""
    return _code_version(lambda m: not any(m == p or m.startswith(p + ".") for p in NOT_CONVERSION))


def toolkit_version() -> str:
    """The source of the whole toolkit (a build's output can depend on any of it)."""
    return _code_version(lambda m: True)


def raw_fingerprint(raw_dir: Path) -> str:
    """Every file under ``raw_dir``: relative path, size and mtime (ns); a symlink by its target text
    and by its target's size and mtime (a changed target behind an unchanged link must reconvert).

    ``os.scandir`` and one hash over the sorted lines: a paper-scale raw root (~220k files) in a few seconds.
    """
    lines: list[str] = []
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
                link = ""
                if entry.is_symlink():
                    try:
                        target = os.stat(entry.path)
                        link = f"{os.readlink(entry.path)}\0{target.st_size}\0{target.st_mtime_ns}"
                    except OSError:  # a dangling link: the converter reports it; its text is the key
                        link = os.readlink(entry.path)
                lines.append(f"{name}\0{info.st_size}\0{info.st_mtime_ns}\0{link}")
    return hashlib.sha256("\n".join(sorted(lines)).encode()).hexdigest()


def raw_fingerprints(folders: Iterable[Path]) -> dict[Path, str]:
    """:func:`raw_fingerprint` of each folder, once each, four at a time (``stat`` calls release the GIL)."""
    unique = list(dict.fromkeys(f for f in folders if f.is_dir()))
    with ThreadPoolExecutor(max_workers=4) as pool:
        return dict(zip(unique, pool.map(raw_fingerprint, unique)))


def records_key(name: str, raw_dir: Path, version: str, options: dict | None = None, also_reads: tuple[Path, ...] = (),
                fingerprints: dict[Path, str] | None = None) -> str:  # fmt: skip
    """The records cache key: the raw files, the converter code and the recipe's converter options
    (DOTA's ``version`` picks other label files); no options, the key of before options existed.
    ``also_reads``: other sources' folders the converter reads (RSIVQA takes its splits and images
    from its parent datasets), so a changed parent file reconverts the dependent source too.
    ``fingerprints``: the folders' fingerprints computed already (:func:`raw_fingerprints`)."""
    known = fingerprints or {}

    def fingerprint(folder: Path) -> str:
        return known[folder] if folder in known else raw_fingerprint(folder)

    extra = f"\0{json.dumps(options, sort_keys=True)}" if options else ""
    extra += "".join(f"\0{folder.name}:{fingerprint(folder)}" for folder in also_reads if folder.is_dir())
    return hashlib.sha256(f"{CACHE_FORMAT}\0{name}\0{fingerprint(raw_dir)}\0{version}{extra}".encode()).hexdigest()


class RecordsCache:
    """``CACHE/records/<source>/``: one entry per source (the latest), named by its key; and
    ``CACHE/build.json``: the key of the build in OUT and its manifest's sha256."""

    def __init__(self, directory: Path):
        self.directory = directory

    def note_build(self, out: Path, key: str) -> None:
        """The key of the build just written in ``out``, its manifest's sha256, and the size and mtime
        of every file the manifest lists (a rebuild compares those before it reads any file)."""
        files = json.loads((out / "manifest.json").read_text(encoding="utf-8")).get("files", {})
        stats = {relative: file_stat(out / relative) for relative in files}
        write_json_atomic(self.directory / "build.json", {"key": key, "manifest_sha256": file_sha256(out / "manifest.json"),
                                                          "stats": stats})  # fmt: skip

    def built_from(self, out: Path, key: str) -> dict[str, list[int]] | None:
        """When the manifest in ``out`` is the one a build with this key wrote: the file stats noted then."""
        try:
            noted = json.loads((self.directory / "build.json").read_text(encoding="utf-8"))
            if noted.get("key") == key and noted.get("manifest_sha256") == file_sha256(out / "manifest.json"):
                return noted.get("stats") or {}
        except (OSError, ValueError):
            pass
        return None

    def _entry(self, name: str) -> Path:
        return self.directory / "records" / name

    def load(self, name: str, key: str) -> tuple[Path, ConvertSummary, list[dict], dict[str, list[tuple[str, str]]]] | None:
        """(records table, summary, rejections, val/test image notes) of a matching entry, or None."""
        entry = self._entry(name)
        meta_path, records_path = entry / "converted.json", entry / "records.parquet"
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if meta.get("key") != key or not records_path.is_file() or file_sha256(records_path) != meta.get("records_sha256"):
            return None
        s = meta["summary"]
        summary = ConvertSummary(name, s["written"], s["quarantined"], s["parts_quarantined"], Counter(s["by_split"]),
                                 Counter(s["reasons"]), records_path)  # fmt: skip
        eval_images = {k: [tuple(split) for split in v] for k, v in meta["eval_images"].items()}
        return records_path, summary, meta["rejections"], eval_images

    def store(self, name: str, key: str, records_path: Path, summary: ConvertSummary, rejections: list[dict],
              eval_images: dict[str, list[tuple[str, str]]]) -> None:  # fmt: skip
        entry = self._entry(name)
        shutil.rmtree(entry, ignore_errors=True)
        entry.mkdir(parents=True, exist_ok=True)
        link_or_copy(records_path, entry / "records.parquet")
        meta: dict[str, Any] = {
            "format": CACHE_FORMAT,
            "key": key,
            "records_sha256": file_sha256(entry / "records.parquet"),
            "summary": {"written": summary.written, "quarantined": summary.quarantined, "parts_quarantined": summary.parts_quarantined,
                        "by_split": dict(summary.by_split), "reasons": dict(summary.reasons)},  # fmt: skip
            "rejections": rejections,
            "eval_images": eval_images,
        }
        write_json_atomic(entry / "converted.json", meta)  # last: an entry without it is no entry


def build_key(recipe_fingerprint: str, records_keys: dict[str, str | None], options: dict[str, Any]) -> str:
    body = json.dumps({"recipe": recipe_fingerprint, "records": records_keys, "code": toolkit_version(), "options": options},
                      sort_keys=True, default=str)  # fmt: skip
    return hashlib.sha256(body.encode()).hexdigest()


def file_stat(path: Path) -> list[int]:
    info = path.stat()
    return [info.st_size, info.st_mtime_ns]


def outputs_unchanged(out: Path, manifest: dict[str, Any], stats: dict[str, list[int]] | None = None) -> bool:
    """Every file the manifest lists is there with its recorded size and sha256; a file whose size and
    mtime are those ``stats`` noted when the build wrote it is taken as unchanged without reading it."""
    stats = stats or {}
    for relative, info in manifest.get("files", {}).items():
        path = out / relative
        try:
            if stats.get(relative) == file_stat(path):
                continue
            if path.stat().st_size != info["bytes"] or file_sha256(path) != info["sha256"]:
                return False
        except OSError:
            return False
    return bool(manifest.get("files"))
