"""The build cache: converted records per source, and the fingerprint of a whole build.

* **Records cache** (``CACHE/records/<source>/``): a source's records table, its converter
  rejections and its val/test image notes, kept under a key made of the source's name, the
  fingerprint of every raw file it can read (relative path, size, mtime in ns: a changed, added or
  removed file changes it) and the converter's code version (the source of every toolkit module a
  conversion can run). A hit replays exactly what the conversion gave, so a template change
  recompiles without reconverting, and a changed raw file reconverts only its source.
* **Build key** (``CACHE/build.json``, beside the manifest's sha256): the recipe fingerprint, every source's records
  key, the compiler's code version and the build options. A rebuild whose key matches the
  manifest's, and whose listed files all still have their recorded sha256, only verifies.

``skyeye build --no-cache`` ignores and rewrites neither: it builds from scratch.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from collections import Counter
from pathlib import Path
from typing import Any

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


def records_key(name: str, raw_dir: Path, version: str, options: dict | None = None, also_reads: tuple[Path, ...] = ()) -> str:
    """The records cache key: the raw files, the converter code and the recipe's converter options
    (DOTA's ``version`` picks other label files); no options, the key of before options existed.
    ``also_reads``: other sources' folders the converter reads (RSIVQA takes its splits and images
    from its parent datasets), so a changed parent file reconverts the dependent source too."""
    extra = f"\0{json.dumps(options, sort_keys=True)}" if options else ""
    extra += "".join(f"\0{folder.name}:{raw_fingerprint(folder)}" for folder in also_reads if folder.is_dir())
    return hashlib.sha256(f"{CACHE_FORMAT}\0{name}\0{raw_fingerprint(raw_dir)}\0{version}{extra}".encode()).hexdigest()


class RecordsCache:
    """``CACHE/records/<source>/``: one entry per source (the latest), named by its key; and
    ``CACHE/build.json``: the key of the build in OUT and its manifest's sha256."""

    def __init__(self, directory: Path):
        self.directory = directory

    def note_build(self, out: Path, key: str) -> None:
        write_json_atomic(self.directory / "build.json", {"key": key, "manifest_sha256": file_sha256(out / "manifest.json")})

    def built_from(self, out: Path, key: str) -> bool:
        """Whether the manifest in ``out`` is the one a build with this key wrote."""
        try:
            noted = json.loads((self.directory / "build.json").read_text(encoding="utf-8"))
            return noted.get("key") == key and noted.get("manifest_sha256") == file_sha256(out / "manifest.json")
        except (OSError, ValueError):
            return False

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


def outputs_unchanged(out: Path, manifest: dict[str, Any]) -> bool:
    """Every file the manifest lists is there with its recorded size and sha256."""
    for relative, info in manifest.get("files", {}).items():
        path = out / relative
        try:
            if path.stat().st_size != info["bytes"] or file_sha256(path) != info["sha256"]:
                return False
        except OSError:
            return False
    return bool(manifest.get("files"))
