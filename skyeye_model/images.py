"""The images table (``OUT/images/*.parquet``: ``image_id``, ``bytes``, ``format``, ``width``, ``height``).

``ImageIndex`` maps ``image_id → (file, row group, row)``. It is built once by reading only the
``image_id`` column, then cached next to the data (``<root>/.index/``) under a fingerprint of the
files' names, sizes and modification times, so a rebuilt table gets a fresh index. The index lives in
sorted NumPy arrays (found by binary search): they are shared copy-on-write with forked dataloader
workers, unlike a dict of a million Python strings.

``ImageStore`` fetches an image's bytes by reading the ``bytes`` column of its row group (Parquet's
unit of random access) and keeps the most recent row groups in a small per-process cache. The cost
of a random image is one row-group read: write the images table with small row groups (tens to a few
hundred images) for training (the build writes 16 per group).

``training_images`` picks the pre-resized training tier (``train-images/``) when the build wrote one for
the model's input size. Decoding is :mod:`skyeye_model.decode`.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

INDEX_VERSION = 1


def files_fingerprint(files: list[Path]) -> str:
    digest = hashlib.sha256(f"v{INDEX_VERSION}".encode())
    for path in files:
        stat = path.stat()
        digest.update(f"{path.parent.name}/{path.name}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())  # images/ and train-images/ alike
    return digest.hexdigest()[:16]


class ImageIndex:
    """``image_id`` → (file number, row group, row), in sorted arrays."""

    def __init__(self, files: list[Path], ids: np.ndarray, locations: np.ndarray):
        self.files = files
        self.ids = ids  # sorted, dtype S<n>
        self.locations = locations  # int64 [n, 3]: file, row group, row

    def __len__(self) -> int:
        return len(self.ids)

    def locate(self, image_id: str) -> tuple[int, int, int]:
        key = image_id.encode()
        position = int(np.searchsorted(self.ids, key))
        if position >= len(self.ids) or self.ids[position] != key:
            raise KeyError(f"image {image_id} is not in the images table")
        file, row_group, row = self.locations[position]
        return int(file), int(row_group), int(row)

    @classmethod
    def scan(cls, files: list[Path]) -> "ImageIndex":
        ids: list[np.ndarray] = []
        locations: list[np.ndarray] = []
        for file_number, path in enumerate(files):
            parquet = pq.ParquetFile(path)
            for row_group in range(parquet.num_row_groups):
                column = parquet.read_row_group(row_group, columns=["image_id"]).column("image_id")
                group_ids = np.array(column.to_pylist(), dtype="S")
                ids.append(group_ids)
                rows = np.arange(len(group_ids), dtype=np.int64)
                locations.append(np.stack([np.full_like(rows, file_number), np.full_like(rows, row_group), rows], 1))
        if not ids:
            return cls(files, np.array([], dtype="S64"), np.zeros((0, 3), dtype=np.int64))
        all_ids = np.concatenate(ids)
        all_locations = np.concatenate(locations)
        order = np.argsort(all_ids, kind="stable")
        return cls(files, all_ids[order], all_locations[order])

    def save(self, path: Path) -> None:
        table = pa.table(
            {
                "image_id": pa.array(self.ids.astype(str).tolist(), pa.string()),
                "file": pa.array(self.locations[:, 0], pa.int32()),
                "row_group": pa.array(self.locations[:, 1], pa.int32()),
                "row": pa.array(self.locations[:, 2], pa.int32()),
            }
        ).replace_schema_metadata({"files": json.dumps([p.name for p in self.files])})
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        pq.write_table(table, tmp)
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path, files: list[Path]) -> "ImageIndex":
        table = pq.read_table(path)
        ids = np.array(table.column("image_id").to_pylist(), dtype="S")
        locations = np.stack([table.column(name).to_numpy().astype(np.int64) for name in ("file", "row_group", "row")], 1)
        return cls(files, ids, locations)

    @classmethod
    def open(cls, images_dir: Path, cache_dir: Path | None = None) -> "ImageIndex":
        """The cached index of ``images_dir/*.parquet``, built on first use."""
        files = sorted(Path(images_dir).glob("*.parquet"))
        if not files:
            raise FileNotFoundError(f"no images tables (*.parquet) in {images_dir}")
        cache = Path(cache_dir) if cache_dir else Path(images_dir).parent / ".index"
        cached = cache / f"images-{files_fingerprint(files)}.parquet"
        if cached.exists():
            return cls.load(cached, files)
        index = cls.scan(files)
        try:
            index.save(cached)
        except OSError:
            pass  # a read-only dataset folder: the index is rebuilt next time, nothing else changes
        return index


class ImageStore:
    """Image bytes by ``image_id``, through the index and a per-process row-group cache."""

    def __init__(self, index: ImageIndex, cache_bytes: int = 128 << 20):
        self.index = index
        self.cache_bytes = cache_bytes
        self._cache: OrderedDict[tuple[int, int], pa.Array] = OrderedDict()
        self._cached_bytes = 0
        self._files: dict[int, pq.ParquetFile] = {}
        self._pid = os.getpid()

    def _parquet(self, file_number: int) -> pq.ParquetFile:
        if self._pid != os.getpid():  # a forked worker must not share the parent's file handles
            self._files, self._cache, self._cached_bytes, self._pid = {}, OrderedDict(), 0, os.getpid()
        if file_number not in self._files:
            self._files[file_number] = pq.ParquetFile(self.index.files[file_number])
        return self._files[file_number]

    def _row_group(self, file_number: int, row_group: int) -> pa.Array:
        parquet = self._parquet(file_number)
        key = (file_number, row_group)
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        column = parquet.read_row_group(row_group, columns=["bytes"]).column("bytes").combine_chunks()
        self._cache[key] = column
        self._cached_bytes += column.nbytes
        while self._cached_bytes > self.cache_bytes and len(self._cache) > 1:
            _, evicted = self._cache.popitem(last=False)
            self._cached_bytes -= evicted.nbytes
        return column

    def read_bytes(self, image_id: str) -> bytes:
        file_number, row_group, row = self.index.locate(image_id)
        return self._row_group(file_number, row_group)[row].as_py()


def training_images(root: Path, image_size: int, use_tier: bool = True) -> tuple[Path, str]:
    """The images folder a trainer reads, and a log line saying which and why.

    A build with ``train_size`` in its recipe writes ``train-images/`` (images pre-resized to the model's
    square input, see ``skyeye_data.compile.images``) and names it in ``manifest.json`` (``train_images``).
    It is used when its size is the model's ``image_size``; otherwise the full-size ``images/`` table."""
    root = Path(root)
    full = root / "images"
    manifest_path = root / "manifest.json"
    tier = json.loads(manifest_path.read_text(encoding="utf-8")).get("train_images") if manifest_path.is_file() else None
    if not tier:
        return full, "training images: images/ (full size; a recipe with train_size: N writes a pre-resized tier)"
    tier_dir = root / tier["path"]
    if not use_tier:
        return full, "training images: images/ (full size; data.train_tier is off)"
    if int(tier["size"]) != image_size:
        return full, f"training images: images/ (full size): the {tier['size']} px tier in {tier['path']}/ does not match image_size {image_size}"
    if not any(tier_dir.glob("*.parquet")):
        return full, f"training images: images/ (full size): the manifest names {tier['path']}/, which holds no table"
    return tier_dir, f"training images: {tier['path']}/ (pre-resized to {image_size} px at build time)"
