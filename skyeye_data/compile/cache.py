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
* **Stamp** (``CACHE/stamp.json``, :mod:`skyeye_data.compile.quick`): the same decision for the
  ``skyeye build`` command line, taken before the recipe is parsed.

``skyeye build --no-cache`` ignores and rewrites neither: it builds from scratch.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

from skyeye_data.compile.fingerprint import raw_fingerprint, toolkit_version
from skyeye_data.compile.quick import file_stat
from skyeye_data.convert import ConvertSummary
from skyeye_data.hashing import file_sha256
from skyeye_data.io import link_or_copy, write_json_atomic

CACHE_FORMAT = "skyeye-cache/1"


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
