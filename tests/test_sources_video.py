"""The video sources: CapERA (captions) and ERA (event classes), end to end and on broken input."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from PIL import Image

from skyeye_data.convert import convert_source, read_records
from skyeye_data.sources import get_source
from skyeye_data.sources.base import LayoutError, Rejected
from skyeye_data.sources.era import ERA_CLASSES, event_label
from skyeye_data.synth.capera import _SCENES, synthetic_captions
from skyeye_data.synth.era import synthetic_videos
from skyeye_data.video import write_video
from skyeye_data.synth import synthesize


def tiny_video(path: Path, seed: int = 0, frames: int = 6, side: int = 32) -> Path:
    """A short clip whose bytes differ by seed."""
    rng = random.Random(seed)
    images = [Image.new("RGB", (side, side), tuple(rng.randrange(256) for _ in range(3))) for _ in range(frames)]
    return write_video(path, images)


def collect(source: str, raw_dir: Path) -> tuple[list, list[Rejected]]:
    records, rejected = [], []
    for item in get_source(source).records(raw_dir):
        (rejected if isinstance(item, Rejected) else records).append(item)
    return records, rejected


def record_level(rejected: list[Rejected]) -> list[Rejected]:
    return [r for r in rejected if r.level == "record"]


# ---------------------------------------------------------------------------------------------
# Synthetic mini corpus, end to end
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mini_video_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("raw-video")
    for name in ("era", "capera"):
        synthesize(name, root / name, "mini", random.Random(f"0:{name}"))
    return root


@pytest.mark.parametrize("name", ["era", "capera"])
def test_mini_synth_converts_cleanly(mini_video_root, tmp_path, name):
    summary = convert_source(name, mini_video_root / name, tmp_path)
    expected = len(synthetic_videos("mini"))
    assert (summary.written, summary.quarantined, summary.records_in) == (expected, 0, expected)
    assert dict(summary.by_split) == {"train": 6, "test": 3}
    table = pq.read_table(tmp_path / f"{name}.parquet")
    assert table.num_rows == expected
    assert set(table.column("media").to_pylist()) == {"video"}
    assert (tmp_path / f"{name}.quarantine.jsonl").read_text() == ""
    for record in read_records(tmp_path / f"{name}.parquet"):
        assert (mini_video_root / name / record.image_path).is_file()
        assert (record.width, record.height) == (64, 64)


def test_era_and_capera_give_one_video_one_key(mini_video_root):
    era, _ = collect("era", mini_video_root / "era")
    capera, _ = collect("capera", mini_video_root / "capera")
    era_by_key = {r.image_key: r for r in era}
    assert {r.image_key for r in capera} == set(era_by_key)
    for record in capera:
        twin = era_by_key[record.image_key]
        assert record.split == twin.split
        assert record.image_sha256 == twin.image_sha256  # the same bytes under both raw folders
    assert era_by_key["era:test/Baseball_001"].image_sha256 != era_by_key["era:train/Baseball_001"].image_sha256
    assert get_source("capera").family == get_source("era").family == "era"


def test_mini_capera_records_carry_five_captions_and_split_in_ids(mini_video_root):
    capera, _ = collect("capera", mini_video_root / "capera")
    ids = {r.record_id for r in capera}
    assert {"capera:train/Baseball_001", "capera:test/Baseball_001"} <= ids
    assert all(len(r.captions) == 5 for r in capera)
    assert {r.image_path for r in capera if r.record_id == "capera:test/NonEvent_001"} == {
        "Videos/Test/NonEvent/NonEvent_001.mp4"
    }


def test_synthetic_captions_cover_every_class():
    assert set(_SCENES) == set(ERA_CLASSES)
    captions = synthetic_captions("TrafficCollision", random.Random(1))
    assert len(captions) == 5 and all(c.endswith(".") and "cars" in c for c in captions)


def test_paper_scale_plan_has_the_real_counts():
    videos = synthetic_videos("paper")
    assert len(videos) == 2864
    assert sum(v.split == "train" for v in videos) == 1473
    assert sum(v.split == "test" for v in videos) == 1391
    assert {v.raw_class for v in videos} == set(ERA_CLASSES)
    assert len({(v.split, v.file_name) for v in videos}) == 2864


# ---------------------------------------------------------------------------------------------
# CapERA on its published layout, written here
# ---------------------------------------------------------------------------------------------

TRAIN_ENTRIES = [
    {
        "video_id": "Baseball_001.mp4",
        "annotation": {
            "English_caption": [
                "Several players are playing baseball on a green baseball field during the day.",
                "A baseball game is being played on a field during the day.",
                "Players are playing baseball on a field.",
                "An aerial view of a baseball match in a stadium.",
                "A group  of people are playing baseball\non a baseball field.",
            ]
        },
    },
    {
        "video_id": "TrafficCollision_012.mp4",
        "annotation": {
            "English_caption": [
                "Two cars collided at an intersection and people are standing around them.",
                "A traffic accident happened at an intersection.",
                "Two damaged cars stand at a crossroad.",
                "",
                "An aerial view of a car crash on a city street.",
            ]
        },
    },
]
TEST_ENTRIES = [
    {
        "video_id": "Baseball_001.mp4",  # same id as in train: a different video
        "annotation": {"English_caption": ["Baseball players are training on a field in the evening."] * 5},
    },
]


def write_capera(root: Path, train: list, test: list, videos: dict[str, list[str]] | None = None) -> Path:
    """CapERA's layout: two JSON files and Videos/{Train,Test}/<Class>/<video_id>."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "CapERA_DATASET_train.json").write_text(json.dumps({"ERA_caption": train}, indent=4))
    (root / "CapERA_DATASET_test.json").write_text(json.dumps({"ERA_caption": test}, indent=4))
    if videos is None:
        videos = {
            "Train": [e["video_id"] for e in train if isinstance(e, dict) and isinstance(e.get("video_id"), str)],
            "Test": [e["video_id"] for e in test if isinstance(e, dict) and isinstance(e.get("video_id"), str)],
        }
    for seed, (folder, ids) in enumerate(videos.items()):
        (root / "Videos" / folder).mkdir(parents=True, exist_ok=True)
        for i, video_id in enumerate(ids):
            path = root / "Videos" / folder / video_id.rsplit("_", 1)[0] / video_id
            if not path.exists():
                tiny_video(path, seed=seed * 100 + i)
    return root


def test_capera_real_layout(tmp_path):
    root = write_capera(tmp_path / "capera", TRAIN_ENTRIES, TEST_ENTRIES)
    records, rejected = collect("capera", root)
    assert record_level(rejected) == []
    by_id = {r.record_id: r for r in records}
    assert sorted(by_id) == ["capera:test/Baseball_001", "capera:train/Baseball_001", "capera:train/TrafficCollision_012"]

    baseball = by_id["capera:train/Baseball_001"]
    assert baseball.task == "caption" and baseball.media == "video" and baseball.split == "train"
    assert baseball.image_path == "Videos/Train/Baseball/Baseball_001.mp4"
    assert baseball.image_key == "era:train/Baseball_001"
    assert (baseball.width, baseball.height) == (32, 32)
    assert baseball.captions[4] == "A group of people are playing baseball on a baseball field."  # whitespace collapsed
    assert baseball.provenance.raw_file == "CapERA_DATASET_train.json" and baseball.provenance.raw_index == 0
    assert baseball.image_sha256 != by_id["capera:test/Baseball_001"].image_sha256

    collision = by_id["capera:train/TrafficCollision_012"]
    assert len(collision.captions) == 4 and "empty_caption_dropped" in collision.flags
    [part] = [r for r in rejected if r.level == "part"]
    assert part.raw_index == 1 and "caption 3" in part.reason


def test_capera_cli_convert(tmp_path):
    from typer.testing import CliRunner

    from skyeye_data.cli import app

    root = write_capera(tmp_path / "capera", TRAIN_ENTRIES, TEST_ENTRIES)
    result = CliRunner().invoke(app, ["convert", "capera", str(root), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert pq.read_table(tmp_path / "out" / "capera.parquet").num_rows == 3


def test_capera_quarantines_bad_entries_and_counts_add_up(tmp_path):
    train = TRAIN_ENTRIES + [
        "Baseball_002.mp4",  # not an object
        {"annotation": {"English_caption": ["a caption."]}},  # no video_id
        {"video_id": "Soccer_001.mp4"},  # no annotation
        {"video_id": "Soccer_002.mp4", "annotation": {"English_caption": ["", "  "]}},  # all blank
        {"video_id": "Baseball_001.mp4", "annotation": {"English_caption": ["again."]}},  # duplicate id
        {"video_id": "Fire_007.mp4", "annotation": {"English_caption": ["smoke over a roof."]}},  # no video
        {"video_id": "Flood_003.mp4", "annotation": {"English_caption": ["water in the streets."]}},  # truncated
        {"video_id": "../../etc/passwd", "annotation": {"English_caption": ["x."]}},  # a path, not an id
    ]
    root = write_capera(
        tmp_path / "capera",
        train,
        TEST_ENTRIES,
        videos={"Train": ["Baseball_001.mp4", "TrafficCollision_012.mp4", "Flood_003.mp4"], "Test": ["Baseball_001.mp4"]},
    )
    flood = root / "Videos" / "Train" / "Flood" / "Flood_003.mp4"
    flood.write_bytes(flood.read_bytes()[: flood.stat().st_size // 2])

    summary = convert_source("capera", root, tmp_path / "out")
    assert summary.records_in == len(train) + len(TEST_ENTRIES)
    assert (summary.written, summary.quarantined) == (3, 8)
    lines = [json.loads(line) for line in (tmp_path / "out" / "capera.quarantine.jsonl").read_text().splitlines()]
    reasons = {line["raw_index"]: line["reason"] for line in lines if line["level"] == "record"}
    assert all(line["raw_file"] == "CapERA_DATASET_train.json" for line in lines)
    assert "not an object" in reasons[2]
    assert "no video_id" in reasons[3]
    assert "English_caption" in reasons[4]
    assert "no non-empty caption" in reasons[5]
    assert "duplicate video_id 'Baseball_001.mp4'" in reasons[6] and "first at index 0" in reasons[6]
    assert reasons[7] == "video not found: Videos/Train/Fire/Fire_007.mp4"
    assert reasons[8].startswith("video cannot be opened") and "Flood_003.mp4" in reasons[8]
    assert "not a file name" in reasons[9]


def test_capera_truncated_json_is_one_rejection_with_its_position(tmp_path):
    root = write_capera(tmp_path / "capera", TRAIN_ENTRIES, TEST_ENTRIES)
    text = (root / "CapERA_DATASET_train.json").read_text()
    (root / "CapERA_DATASET_train.json").write_text(text[: len(text) // 2])
    records, rejected = collect("capera", root)
    assert [r.record_id for r in records] == ["capera:test/Baseball_001"]  # the test file still converts
    [bad] = rejected
    assert bad.raw_file == "CapERA_DATASET_train.json"
    assert bad.reason.startswith("invalid JSON at line ") and " col " in bad.reason


def test_capera_wrong_top_level_and_missing_split_file(tmp_path):
    root = write_capera(tmp_path / "capera", TRAIN_ENTRIES, TEST_ENTRIES)
    (root / "CapERA_DATASET_test.json").write_text(json.dumps([{"video_id": "Baseball_001.mp4"}]))
    _, rejected = collect("capera", root)
    assert [r.reason for r in rejected if r.level == "record"] == ['expected {"ERA_caption": [...]} at the top of the file']
    (root / "CapERA_DATASET_test.json").unlink()  # a published split absent: an error, never a skip
    with pytest.raises(LayoutError, match="incomplete .*put CapERA_DATASET_test.json"):
        collect("capera", root)


def test_capera_under_the_era_archive_gives_every_train_video(tmp_path):
    """ERA's archive extracts to Videos/Tra and Videos/Test, and a public loader reports names with a
    space before the extension: every CapERA entry finds its video, none is "not found"."""
    root = write_capera(tmp_path / "capera", TRAIN_ENTRIES, TEST_ENTRIES, videos={"Tra": [], "Test": []})
    for seed, (folder, entries) in enumerate((("Tra", TRAIN_ENTRIES), ("Test", TEST_ENTRIES))):
        for i, entry in enumerate(entries):
            stem = entry["video_id"].removesuffix(".mp4")
            name = f"{stem} .mp4" if i == 0 else entry["video_id"]  # the spaced name for one of each split
            tiny_video(root / "Videos" / folder / stem.rsplit("_", 1)[0] / name, seed=seed * 100 + i)
    found = get_source("capera").find_layout(root)
    assert found.layout.name == "archive" and found.paths["train"] == "Videos/Tra/"
    records, rejected = collect("capera", root)
    assert record_level(rejected) == []
    assert sorted(r.record_id for r in records if r.split == "train") == sorted(
        f"capera:train/{e['video_id'][:-4]}" for e in TRAIN_ENTRIES)  # fmt: skip
    spaced = next(r for r in records if r.image_path.endswith(" .mp4") and r.split == "train")
    assert spaced.image_key == "era:train/" + TRAIN_ENTRIES[0]["video_id"][:-4] and "video_in_other_folder" not in spaced.flags
    (root / "Videos" / "Test").rename(root / "Videos" / "Testing_old")
    with pytest.raises(LayoutError, match=r"extract ERA's Videos/Test/"):
        collect("capera", root)


def test_capera_finds_a_video_in_a_renamed_class_folder(tmp_path):
    root = write_capera(tmp_path / "capera", TRAIN_ENTRIES[:1], [], videos={"Train": [], "Test": []})
    tiny_video(root / "Videos" / "Train" / "baseball games" / "Baseball_001.mp4")
    [record], _ = collect("capera", root)
    assert record.image_path == "Videos/Train/baseball games/Baseball_001.mp4"
    assert "video_in_other_folder" in record.flags


def test_capera_layout_error_names_the_expected_files(tmp_path):
    (tmp_path / "capera").mkdir()
    with pytest.raises(LayoutError, match="CapERA_DATASET_train.json"):
        convert_source("capera", tmp_path / "capera", tmp_path / "out")


# ---------------------------------------------------------------------------------------------
# ERA on its layout, written here
# ---------------------------------------------------------------------------------------------


def write_era(root: Path, files: dict[str, list[str]]) -> Path:
    """{split folder: ['<Class>/<file>', ...]} → videos (or, for other extensions, text files)."""
    for seed, (split_folder, names) in enumerate(files.items()):
        for i, name in enumerate(names):
            path = root / split_folder / name
            if path.suffix == ".mp4":
                tiny_video(path, seed=seed * 100 + i)
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text("not a video\n")
    return root


def test_era_layout_labels_and_splits(tmp_path):
    root = write_era(
        tmp_path / "era",
        {
            "Train": ["TrafficCollision/TrafficCollision_001.mp4", "PostEarthquake/PostEarthquake_004.mp4",
                      "NonEvent/NonEvent_010.mp4", "MountainHiking/MountainHiking_001.mp4"],
            "Test": ["TrafficCollision/TrafficCollision_001.mp4"],
        },
    )
    records, rejected = collect("era", root)
    assert rejected == []
    by_id = {r.record_id: r for r in records}
    assert {k: r.label for k, r in by_id.items()} == {
        "era:train/TrafficCollision_001": "traffic collision",
        "era:train/PostEarthquake_004": "post-earthquake",
        "era:train/NonEvent_010": "non-event",
        "era:train/MountainHiking_001": "mountain hiking",
        "era:test/TrafficCollision_001": "traffic collision",
    }
    collision = by_id["era:test/TrafficCollision_001"]
    assert collision.task == "classification" and collision.media == "video" and collision.split == "test"
    assert collision.image_path == "Test/TrafficCollision/TrafficCollision_001.mp4"
    assert collision.image_key == "era:test/TrafficCollision_001"
    assert by_id["era:train/MountainHiking_001"].flags == ["class_not_in_era_list"]
    assert by_id["era:train/NonEvent_010"].flags == []


@pytest.mark.parametrize(
    "raw, label, known",
    [("TrafficCollision", "traffic collision", True), ("traffic_collision", "traffic collision", True),
     ("Post-earthquake", "post-earthquake", True), ("ParadeProtest", "parade/protest", True),
     ("NonEvent", "non-event", True), ("HotAirBalloon", "hot air balloon", False)],
)
def test_event_label(raw, label, known):
    assert event_label(raw) == (label, known)


def test_era_quarantines_and_counts_add_up(tmp_path):
    root = write_era(
        tmp_path / "era",
        {
            "Train": [
                "Baseball/Baseball_001.mp4",
                "Baseball/Baseball_002.mp4",  # truncated below
                "Baseball/readme.txt",  # not a video
                "Soccer/Baseball_003.mp4",  # file name says another class
                "Soccer/Baseball_001.mp4",  # another class AND a duplicate stem
                "Fire/Fire_001.mp4",
                "Fire/Fire_001.avi",  # same stem as Fire_001.mp4: duplicate key
            ],
            "Test": ["Baseball/Baseball_001.mp4"],
        },
    )
    (root / "Train" / "Fire" / "Fire_001.avi").write_bytes((root / "Train" / "Fire" / "Fire_001.mp4").read_bytes())
    (root / "Train" / "stray.mp4").write_bytes(b"")  # outside a class folder
    (root / "Train" / "Baseball" / ".DS_Store").write_bytes(b"\0")  # hidden: not a record
    cut = root / "Train" / "Baseball" / "Baseball_002.mp4"
    cut.write_bytes(cut.read_bytes()[:200])

    summary = convert_source("era", root, tmp_path / "out")
    lines = [json.loads(line) for line in (tmp_path / "out" / "era.quarantine.jsonl").read_text().splitlines()]
    reasons = {line["raw_file"]: line["reason"] for line in lines}
    assert summary.records_in == 9  # 8 files in class folders + 1 stray
    assert (summary.written, summary.quarantined) == (3, 6)
    assert dict(summary.by_split) == {"train": 2, "test": 1}
    assert reasons["Train/Baseball/Baseball_002.mp4"].startswith("video cannot be opened")
    assert reasons["Train/Baseball/readme.txt"] == "not a video file (extension '.txt')"
    assert reasons["Train/Soccer/Baseball_003.mp4"] == "file name says class 'Baseball' but it lies in folder 'Soccer'"
    assert "Train/Soccer/Baseball_001.mp4" in reasons
    assert reasons["Train/Fire/Fire_001.mp4"].startswith("duplicate video 'Fire_001' in split train")
    assert "outside a class folder" in reasons["Train/stray.mp4"]


def test_era_without_split_folders_is_a_layout_error(tmp_path):
    root = write_era(tmp_path / "era", {"Baseball": ["Baseball_001.mp4"]})
    with pytest.raises(LayoutError, match="no Train/ and Test/ folders"):
        convert_source("era", root, tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(LayoutError, match="expected Videos/Tra/<Class>"):
        convert_source("era", tmp_path / "empty", tmp_path / "out")


def test_era_archive_layout_and_a_missing_split_folder(tmp_path):
    root = write_era(tmp_path / "era", {"Videos/Tra": ["Baseball/Baseball_001 .mp4", "Flood/Flood_002.mp4"],
                                        "Videos/Test": ["Baseball/Baseball_001.mp4"]})  # fmt: skip
    found = get_source("era").find_layout(root)
    assert (found.layout.name, found.paths) == ("archive", {"train": "Videos/Tra/", "test": "Videos/Test/"})
    records, rejected = collect("era", root)
    assert rejected == [] and sorted(r.record_id for r in records) == [
        "era:test/Baseball_001", "era:train/Baseball_001", "era:train/Flood_002"]  # the space is not part of the id
    shutil.rmtree(root / "Videos" / "Tra")  # the train split silently skipped before: now an error naming it
    with pytest.raises(LayoutError, match=r"has Test/ but no Tra/Train/ folder.*extract the missing one"):
        convert_source("era", root, tmp_path / "out")
