"""Size of `skyeye export hf` three ways: images embedded once per shard (what the export writes),
referenced (path-only image structs + each image once as a file), and one embedded copy per row.

    python benchmarks/export_hf_size.py BUILD_DIR [--work DIR] [--shard-mb 100] [--shard-rows 50000]

Exports BUILD_DIR with `export_hf`, then rewrites the same shards the two other ways and prints a
table (bytes as files hold them, and disk usage in 4 KiB blocks, which is what many small image
files really cost). "copies_per_image_if_per_row" is the image bytes of all rows over the
distinct image bytes: what one copy per row costs before compression. "Duplication" is the sum over shards of the distinct image bytes in each shard
over the distinct image bytes of the build: what storing once per shard costs over storing once.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from skyeye_data.export.hf import export_hf

BLOCK = 4096


def disk(size: int) -> int:
    return -(-size // BLOCK) * BLOCK


def measure(build_dir: Path, work: Path, shard_mb: int, shard_rows: int) -> dict[str, int | float]:
    started = time.perf_counter()
    summary = export_hf(build_dir, work / "hf", shard_mb=shard_mb, shard_rows=shard_rows)
    seconds = time.perf_counter() - started
    shards = sorted((work / "hf" / "data").glob("*.parquet"))
    embedded = sum(p.stat().st_size for p in shards)
    per_row = referenced_tables = 0
    image_sizes: dict[str, int] = {}
    per_shard_distinct = row_refs = 0
    for index, path in enumerate(shards):
        table = pq.read_table(path)
        flat = pc.list_flatten(table.column("images"))
        ids = pc.list_flatten(table.column("image_ids")).to_pylist()
        lengths = pc.binary_length(pc.struct_field(flat, "bytes")).to_pylist()
        distinct = dict(zip(ids, lengths))
        per_shard_distinct += sum(distinct.values())
        row_refs += sum(lengths)
        image_sizes.update(distinct)
        copy = work / f"per-row-{index}.parquet"
        pq.write_table(table, copy, use_dictionary=False, compression="zstd", row_group_size=max(1, table.num_rows))
        per_row += copy.stat().st_size
        paths = referenced_images(table.column("images").combine_chunks())
        ref = work / f"referenced-{index}.parquet"
        pq.write_table(table.set_column(table.schema.get_field_index("images"), "images", paths), ref, compression="zstd")
        referenced_tables += ref.stat().st_size
        copy.unlink()
        ref.unlink()
    unique = sum(image_sizes.values())
    return {
        "samples": summary.samples, "images": len(image_sizes), "shards": len(shards), "export_seconds": round(seconds, 1),
        "image_bytes_once": unique, "embedded_once_per_shard": embedded, "referenced_parquet": referenced_tables,
        "referenced_total": referenced_tables + unique,
        "referenced_total_disk": disk(referenced_tables) + sum(disk(s) for s in image_sizes.values()),
        "embedded_per_row": per_row, "duplication": round(per_shard_distinct / max(1, unique), 3),
        "copies_per_image_if_per_row": round(row_refs / max(1, unique), 2),
    }  # fmt: skip


def referenced_images(images: pa.ListArray) -> pa.ListArray:
    """The same list<struct<bytes, path>> column with the bytes left out (the image then lives in images/<path>)."""
    flat = images.flatten()
    paths = pc.binary_join_element_wise("images/", pc.struct_field(flat, "path"), "")
    struct = pa.StructArray.from_arrays([pa.nulls(len(flat), pa.binary()), paths], fields=list(flat.type))
    return pa.ListArray.from_arrays(images.offsets, struct)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("build_dir", type=Path)
    parser.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temporary one)")
    parser.add_argument("--shard-mb", type=int, default=100)
    parser.add_argument("--shard-rows", type=int, default=50_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        os.makedirs(work, exist_ok=True)
        result = measure(args.build_dir, work, args.shard_mb, args.shard_rows)
    width = max(map(len, result))
    for key, value in result.items():
        print(f"{key:<{width}}  {value:,}" if isinstance(value, int) else f"{key:<{width}}  {value}")


if __name__ == "__main__":
    main()
