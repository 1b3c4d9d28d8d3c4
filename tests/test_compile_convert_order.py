"""The convert pool's order guess (``convert_cost``): files under the source's folder and the folders
it reads, plus its top-level bytes, all from the walk the raw fingerprints made (``raw_scans``); it
only orders the pool, the output never depends on it."""

from __future__ import annotations

from pathlib import Path

from skyeye_data.compile.fingerprint import raw_fingerprint, raw_scans, scan_folder
from skyeye_data.compile.stages.convert import BYTES_PER_FILE, convert_cost
from skyeye_data.sources import get_source


def write(path: Path, size: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)


def test_counts_every_file_below_and_the_top_level_bytes(tmp_path):
    source = tmp_path / "src"
    write(source / "annotations.json", 3 * BYTES_PER_FILE + 7)
    write(source / "readme.txt", 5)
    for i in range(5):
        write(source / "images" / "a" / f"{i}.png", 10 * BYTES_PER_FILE)  # below the top: counted as files only
    write(source / "images" / "b" / "x.png", 10)
    scan = scan_folder(source)
    assert (scan.files, scan.top_bytes) == (8, 3 * BYTES_PER_FILE + 12)
    assert scan.digest == raw_fingerprint(source)
    assert convert_cost(raw_scans([source]), source) == 8 + 3


def test_the_folders_a_source_reads_count_as_its_own(tmp_path):
    # RSIVQA: a few split files of its own, its parents' images; it must not sort last
    own, parent = tmp_path / "rsivqa", tmp_path / "ucm_captions"
    write(own / "split.txt", 10)
    for i in range(40):
        write(parent / "Images" / f"{i}.tif", 10)
    scans = raw_scans([own, parent])
    alone = convert_cost(scans, own)
    assert convert_cost(scans, own, [parent]) == alone + 40
    assert convert_cost(scans, own, [parent, parent]) == alone + 40  # a folder named twice counts once
    assert "ucm_captions" in get_source("rsivqa").reads_sources


def test_symlinked_folders_and_missing_folders_are_not_walked(tmp_path):
    source, elsewhere = tmp_path / "src", tmp_path / "elsewhere"
    for i in range(30):
        write(elsewhere / f"{i}.png", 1)
    write(source / "a.txt", 1)
    (source / "link").symlink_to(elsewhere, target_is_directory=True)
    absent = tmp_path / "absent"
    scans = raw_scans([source, absent])
    assert absent not in scans
    assert convert_cost(scans, source, [absent]) == 2  # the file and the link, not the 30 behind it
    assert convert_cost(scans, absent) == 0
