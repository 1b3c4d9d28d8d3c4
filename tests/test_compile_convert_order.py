"""The convert pool's order guess (``convert_cost``): files under the source's folder and the folders
it reads, plus its top-level bytes; it only orders the pool, the output never depends on it."""

from __future__ import annotations

import os
from pathlib import Path

from skyeye_data.compile.stages.convert import BYTES_PER_FILE, convert_cost, reads_of


def write(path: Path, size: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)


def test_counts_every_file_below_and_the_top_level_bytes(tmp_path):
    source = tmp_path / "src"
    write(source / "annotations.json", 3 * BYTES_PER_FILE + 7)
    for i in range(5):
        write(source / "images" / "a" / f"{i}.png", 10)
    write(source / "images" / "b" / "x.png", 10)
    top = sum(entry.stat(follow_symlinks=False).st_size for entry in os.scandir(source))  # the json and the folder's own size
    assert convert_cost(source) == 6 + 1 + top // BYTES_PER_FILE


def test_the_folders_a_source_reads_count_as_its_own(tmp_path):
    # RSIVQA: a few split files of its own, its parents' images; it must not sort last
    own, parent = tmp_path / "rsivqa", tmp_path / "ucm_captions"
    write(own / "split.txt", 10)
    for i in range(40):
        write(parent / "Images" / f"{i}.tif", 10)
    alone = convert_cost(own)
    assert convert_cost(own, [parent]) == alone + 40
    assert {p.name for p in reads_of("rsivqa", tmp_path)} >= {"ucm_captions"}


def test_symlinked_folders_and_missing_folders_are_not_walked(tmp_path):
    source, elsewhere = tmp_path / "src", tmp_path / "elsewhere"
    for i in range(30):
        write(elsewhere / f"{i}.png", 1)
    write(source / "a.txt", 1)
    (source / "link").symlink_to(elsewhere, target_is_directory=True)
    assert convert_cost(source, [tmp_path / "absent"]) == 2 + sum(
        e.stat(follow_symlinks=False).st_size for e in os.scandir(source)) // BYTES_PER_FILE  # fmt: skip
