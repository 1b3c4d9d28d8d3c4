"""The no-change shortcut of ``skyeye build``: "nothing changed" decided before the recipe is parsed.

A rebuild whose build key matches (:mod:`skyeye_data.compile.cache`) only verifies, but computing
that key means validating the recipe, which imports every converter and builder (pyarrow, pydantic,
PIL, PyAV: most of a no-change rebuild's seconds). The **stamp** (``CACHE/stamp.json``), written by
every build and verify that used the cache, keys the same decision on what that key is made of:

* the **command key**: the recipe file's bytes, the working directory (a relative ``review.ledger``
  or raw root is read from it), the resolved raw root, the command's options and the toolkit's code and libraries
  (:func:`~skyeye_data.compile.fingerprint.toolkit_version`). Same bytes and same code parse to the
  same recipe: its fingerprint, sources, raw folders, converter options and ledger path;
* what the build **looked at** given that recipe: every raw folder whose presence it tested (each
  source's, and the other sources' folders a converter reads), absent or with its
  :func:`~skyeye_data.compile.fingerprint.raw_fingerprint`; and the review ledger (its path, and
  absent or its verdicts' digest, :func:`skyeye_data.review.ledger.ledger_state`);
* the build key those gave, which must still be ``CACHE/build.json``'s, and the files it lists
  intact (:func:`outputs_unchanged`).

All equal: the build key would be equal too, and the build in OUT is the one these inputs make.
Anything else (no stamp, another key, a changed folder or ledger, a touched output): the ordinary
build runs, and it may still only verify. Standard library and the tallies only, on purpose.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from skyeye_data.compile.fingerprint import raw_fingerprints, toolkit_version
from skyeye_data.compile.result import BuildResult, verified_result
from skyeye_data.hashing import file_sha256
from skyeye_data.io import output_lock, write_json_atomic

STAMP_FORMAT = "skyeye-stamp/1"


def command_key(recipe: Path, raw_root: Path, options: dict[str, Any]) -> str | None:
    """The key of one ``skyeye build`` command line (module docstring); None when the recipe is unreadable."""
    try:
        body = Path(recipe).read_bytes()
    except OSError:
        return None
    parts = {"format": STAMP_FORMAT, "recipe": hashlib.sha256(body).hexdigest(), "cwd": os.getcwd(),
             "raw_root": str(Path(raw_root).resolve()), "options": options, "code": toolkit_version()}  # fmt: skip
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def looked_at(folders: list[Path], fingerprints: dict[Path, str], ledger: Path | None, ledger_state: list | None) -> dict[str, Any]:
    """What a build read besides the recipe and the code: each tested folder's fingerprint (None: absent), the ledger."""
    return {"folders": {str(f): fingerprints.get(f) for f in dict.fromkeys(folders)},
            "ledger": [None if ledger is None else str(ledger), ledger_state]}  # fmt: skip


def note(cache: Path, key: str, build_key: str, inputs: dict[str, Any]) -> None:
    """The stamp of the build just written or verified (``cache``: OUT/cache, beside build.json)."""
    write_json_atomic(cache / "stamp.json", {"format": STAMP_FORMAT, "key": key, "build_key": build_key, **inputs})


def unchanged_build(out: Path, key: str) -> BuildResult | None:
    """The build in ``out``, verified, when its stamp's command key is ``key`` and nothing it looked at changed."""
    out = Path(out)
    if not (out / "cache" / "stamp.json").is_file():
        return None
    with output_lock(out):  # not while another build writes there
        manifest = _stamped_manifest(out, key)
    return verified_result(out, manifest) if manifest is not None else None


def _stamped_manifest(out: Path, key: str) -> dict[str, Any] | None:
    try:
        stamp = json.loads((out / "cache" / "stamp.json").read_text(encoding="utf-8"))
        noted = json.loads((out / "cache" / "build.json").read_text(encoding="utf-8"))
        if stamp.get("key") != key or noted.get("key") != stamp.get("build_key"):
            return None
        if noted.get("manifest_sha256") != file_sha256(out / "manifest.json"):
            return None
        manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not outputs_unchanged(out, manifest, noted.get("stats")) or not _ledger_unchanged(stamp.get("ledger")):
        return None
    folders = {Path(f): fingerprint for f, fingerprint in stamp.get("folders", {}).items()}
    now = raw_fingerprints(folders)  # last: the costly check (a stat of every raw file)
    return manifest if all(now.get(f) == fingerprint for f, fingerprint in folders.items()) else None


def _ledger_unchanged(noted: list | None) -> bool:
    """The ledger the build checked is as it was: still absent, or holding the same verdicts."""
    if not isinstance(noted, list) or len(noted) != 2:
        return False
    path, state = noted
    if path is None or not Path(path).exists():
        return state is None
    # a ledger there: its verdicts decide (the review package, imported only when a ledger exists)
    from skyeye_data.review.ledger import ledger_state

    return state == [str(Path(path).resolve()), ledger_state(Path(path))]


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
