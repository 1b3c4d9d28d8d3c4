"""The image store takes the header columns (format, width, height) of bytes stored unchanged from the
open that verified them, instead of opening the bytes a third time: the columns must be exactly what
reading the stored bytes gives, for every format the datasets ship, and re-encoded bytes still get
theirs from the bytes themselves."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from PIL import Image

from skyeye_data import rawfs
from skyeye_data.compile.builders import MediaFile
from skyeye_data.compile.images import ImageTableWriter, image_header
from skyeye_data.compile.shards import commit_files
from skyeye_data.imagecheck import verified_image, verified_image_and_header
from skyeye_data.limits import InputLimits

# the datasets' formats: JPEG (RSICD, DIOR, NWPU), PNG (DOTA), TIFF (UCM, RSVQA, RSITMD); and modes they use
CASES = [
    ("JPEG", "RGB", {"quality": 90}),
    ("JPEG", "L", {}),
    ("PNG", "RGB", {}),
    ("PNG", "RGBA", {}),
    ("PNG", "P", {}),
    ("PNG", "I;16", {}),
    ("TIFF", "RGB", {}),
    ("TIFF", "RGB", {"compression": "tiff_lzw"}),
    ("TIFF", "L", {"compression": "tiff_deflate"}),
    ("BMP", "RGB", {}),
    ("WEBP", "RGB", {"lossless": True}),
    ("GIF", "P", {}),
]


def encoded(fmt: str, mode: str, size: tuple[int, int], **options) -> bytes:
    image = Image.linear_gradient("L").resize(size).convert(mode if mode != "I;16" else "I").convert(mode)
    out = io.BytesIO()
    image.save(out, format=fmt, **options)
    return out.getvalue()


@pytest.mark.parametrize("fmt, mode, options", CASES, ids=[f"{f}-{m}-{i}" for i, (f, m, _) in enumerate(CASES)])
@pytest.mark.parametrize("size", [(37, 23), (300, 200)])
def test_header_of_unchanged_bytes_is_what_reading_them_gives(fmt, mode, options, size):
    data = encoded(fmt, mode, size, **options)
    stored, header = verified_image_and_header(data, max_side=1024)
    assert stored == data == verified_image(data, max_side=1024)
    assert header == image_header(data)
    assert header[1:] == size


def test_reencoded_bytes_have_no_header_from_the_verify():
    data = encoded("PNG", "RGB", (300, 200))
    stored, header = verified_image_and_header(data, max_side=64)
    assert stored != data and header is None
    assert image_header(stored) == ("PNG", 64, 43)


@pytest.mark.parametrize("max_side", [None, 64])
def test_image_table_rows_carry_the_stored_bytes_header(tmp_path: Path, max_side):
    files = []
    for i, (fmt, mode, options) in enumerate(CASES):
        path = tmp_path / "raw" / f"{i}.{fmt.lower()}"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(encoded(fmt, mode, (120, 80), **options))
        files.append(path)
    writer = ImageTableWriter(tmp_path / "out" / "images", max_side=max_side)
    with rawfs.scope(tmp_path / "raw", InputLimits()):
        ids = [writer.image_ids(MediaFile(path, sha256=hashlib.sha256(path.read_bytes()).hexdigest()))[0] for path in files]
    commit_files(writer.close())
    rows = [row for shard in sorted((tmp_path / "out" / "images").glob("*.parquet")) for row in pq.read_table(shard).to_pylist()]
    assert [row["image_id"] for row in rows] == list(dict.fromkeys(ids))  # stored once, in first-use order
    for row in rows:
        assert (row["format"], row["width"], row["height"]) == image_header(row["bytes"])
        assert row["image_id"] == hashlib.sha256(row["bytes"]).hexdigest()
