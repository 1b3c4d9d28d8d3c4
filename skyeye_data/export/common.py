"""What every export reads from a build, and how it writes its files.

A build (``skyeye build``) holds ``samples/*.parquet`` (one instruction sample a row, images by
``image_ids``) and ``images/*.parquet`` (``image_id`` = sha256 of ``bytes``). Exports stream both
in batches (a paper-scale build does not fit in memory as Python objects) and write every file
under a temporary name, renamed when complete.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import pyarrow.parquet as pq

from skyeye_data.compile.errors import BuildError
from skyeye_data.compile.manifest import read_manifest
from skyeye_data.io import atomic_path, temporary_name, write_text_atomic

# Pillow format name (the images table's ``format``) -> file extension
EXTENSIONS = {"JPEG": "jpg", "PNG": "png", "TIFF": "tif", "BMP": "bmp", "GIF": "gif", "WEBP": "webp"}
BATCH_ROWS = 1024
IMAGE_BATCH_ROWS = 64
IMAGE_DIR = "images"


@dataclass
class ExportSummary:
    out: Path
    samples: int = 0
    images: int = 0
    files: list[str] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)  # JSON list file -> entries written
    # samples a layout cannot hold, by reason (e.g. "video: ..."), each written nowhere else
    left_out: dict[str, int] = field(default_factory=dict)

    def leave_out(self, reason: str) -> None:
        self.left_out[reason] = self.left_out.get(reason, 0) + 1

    def describe(self) -> str:
        left = "".join(f"; {n} left out ({reason})" for reason, n in sorted(self.left_out.items()))
        return f"{self.samples} samples, {self.images} images → {self.out}: {', '.join(self.files)}{left}"


class JsonListWriter:
    """A JSON list written item by item to a temporary file, renamed when closed."""

    def __init__(self, final: Path):
        self.final = final
        final.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = temporary_name(final)
        self._file = open(self.tmp, "w", encoding="utf-8")
        self._file.write("[")
        self.items = 0

    def write(self, item: dict[str, Any]) -> None:
        self._file.write(("\n" if self.items == 0 else ",\n") + json.dumps(item, ensure_ascii=False))
        self.items += 1

    def close(self) -> None:
        self._file.write("\n]\n")
        self._file.close()
        self.tmp.replace(self.final)

    def abort(self) -> None:
        self._file.close()
        self.tmp.unlink(missing_ok=True)


class JsonListFiles:
    """Several JSON list files opened on first use, all renamed on ``close`` or all removed on ``abort``."""

    def __init__(self, out: Path):
        self.out = out
        self.writers: dict[str, JsonListWriter] = {}

    def write(self, name: str, item: dict[str, Any]) -> None:
        if name not in self.writers:
            self.writers[name] = JsonListWriter(self.out / name)
        self.writers[name].write(item)

    def close(self) -> dict[str, int]:
        """Rename every file into place; file name -> entries written."""
        for writer in self.writers.values():
            writer.close()
        return {name: self.writers[name].items for name in sorted(self.writers)}

    def abort(self) -> None:
        for writer in self.writers.values():
            writer.abort()

    def __enter__(self) -> "JsonListFiles":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.abort()


def open_build(build_dir: Path) -> dict[str, Any]:
    """The build's manifest; refuses a folder that is not a complete build (BuildError)."""
    return read_manifest(Path(build_dir))


def iter_samples(build_dir: Path) -> Iterator[dict[str, Any]]:
    for path in sorted((Path(build_dir) / "samples").glob("*.parquet")):
        for batch in pq.ParquetFile(path).iter_batches(batch_size=BATCH_ROWS):
            yield from batch.to_pylist()


def image_formats(build_dir: Path) -> dict[str, str]:
    """image_id -> file extension (small strings only; the bytes are read later, batch by batch)."""
    formats: dict[str, str] = {}
    for path in sorted((Path(build_dir) / "images").glob("*.parquet")):
        for batch in pq.ParquetFile(path).iter_batches(batch_size=BATCH_ROWS, columns=["image_id", "format"]):
            for row in batch.to_pylist():
                formats[row["image_id"]] = EXTENSIONS.get(row["format"], (row["format"] or "bin").lower())
    return formats


def iter_image_bytes(build_dir: Path, wanted: set[str] | None = None) -> Iterator[tuple[str, bytes]]:
    """(image_id, bytes) of the wanted images (all when None), 64 rows in memory at a time."""
    for path in sorted((Path(build_dir) / "images").glob("*.parquet")):
        for batch in pq.ParquetFile(path).iter_batches(batch_size=IMAGE_BATCH_ROWS, columns=["image_id", "bytes"]):
            for image_id, data in zip(batch.column("image_id").to_pylist(), batch.column("bytes").to_pylist()):
                if wanted is None or image_id in wanted:
                    yield image_id, data


def image_file_name(image_id: str, formats: dict[str, str]) -> str:
    if image_id not in formats:
        raise BuildError(f"a sample refers to image {image_id}, which is not in the build's images/ table (an incomplete or edited build)")
    return f"{image_id}.{formats[image_id]}"


def write_image_files(build_dir: Path, folder: Path, wanted: set[str], formats: dict[str, str]) -> int:
    """Write each wanted image once as ``folder/<image_id>.<ext>``; how many were written."""
    written = 0
    for image_id, data in iter_image_bytes(build_dir, wanted):
        with atomic_path(folder / image_file_name(image_id, formats)) as tmp:
            tmp.write_bytes(data)
        written += 1
    return written


def image_paths(sample: dict[str, Any], formats: dict[str, str], prefix: str = IMAGE_DIR) -> list[str]:
    return [f"{prefix}/{image_file_name(image_id, formats)}" for image_id in sample["image_ids"]]


def is_video(sample: dict[str, Any]) -> bool:
    """A video sample is stored as its frames, in order (several image_ids)."""
    return len(sample["image_ids"]) > 1


def write_format_note(out: Path, layout: str, manifest: dict[str, Any], doc: str, extra: Iterable[str] = ()) -> None:
    """``DIR/README.md``: what the export holds (the exporting module's docstring) and where it came from."""
    recipe = manifest["recipe"]
    parts = [
        f"# SkyEye export ({layout})\n\nFrom build recipe `{recipe['name']}` (fingerprint `{recipe['fingerprint']}`).\n",
        *extra,
        f"## Format\n\n```\n{doc.strip()}\n```\n",
    ]
    write_text_atomic(out / "README.md", "\n".join(parts))


def progress_call(on_item: Callable[[], None] | None) -> Callable[[], None]:
    return on_item or (lambda: None)


# (file name, entry) for a sample the layout holds, or (None, why it is left out)
Route = Callable[[dict[str, Any], dict[str, str]], tuple[str | None, Any]]


def export_json_lists(build_dir: Path, out: Path, route: Route, image_folder: Path, on_item: Callable[[], None] | None = None) -> tuple[dict[str, Any], ExportSummary]:
    """The shared loop of the JSON exports: each sample routed to a JSON list file (or counted as left
    out), then each image used written once into ``image_folder``. Returns (manifest, summary)."""
    build_dir, out = Path(build_dir), Path(out)
    manifest = open_build(build_dir)
    advance = progress_call(on_item)
    formats = image_formats(build_dir)
    summary, wanted = ExportSummary(out), set()
    with JsonListFiles(out) as files:
        for sample in iter_samples(build_dir):
            name, entry = route(sample, formats)
            if name is None:
                summary.leave_out(entry)
                continue
            files.write(name, entry)
            wanted.update(sample["image_ids"])
            summary.samples += 1
            advance()
        summary.images = write_image_files(build_dir, image_folder, wanted, formats)
        summary.rows = files.close()
    summary.files = list(summary.rows)
    return manifest, summary
