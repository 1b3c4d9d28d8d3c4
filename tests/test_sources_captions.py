"""Image-captioning converters: ucm_captions, sydney_captions, rsicd, rsitmd, nwpu_captions.

Real text: the UCM and Sydney captions in ../shared/real-samples/captions_text come in AMFMN's
retrieval layout (one caption a line, filenames in a parallel file). The tests rebuild the
published Karpathy ``dataset.json`` from them, so the converters read real sentences with their
real quirks (pre-tokenised periods, repeated sentences, typos).
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from skyeye_data.convert import convert_source, read_records
from skyeye_data.sources import get_source
from skyeye_data.sources._karpathy import normalise_caption
from skyeye_data.synth import synth_image, synthesize

CAPTION_SOURCES = ("ucm_captions", "sydney_captions", "rsicd", "rsitmd", "nwpu_captions")
REAL_SIZES = {"ucm_captions": 256, "sydney_captions": 500, "rsicd": 224, "rsitmd": 256, "nwpu_captions": 256}
TOKENISER_SPACE = re.compile(r"\s[.,;:!?]|\s{2}|^\s|\s$")


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------


def read_lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def amfmn_images(caps: Path, filenames: Path) -> list[tuple[str, list[str]]]:
    """(filename, its 5 caption lines) in file order.

    AMFMN's filename file has one line per image for train but one line per caption for test;
    both are real, so both are handled.
    """
    captions, names = read_lines(caps), read_lines(filenames)
    if len(names) == len(captions):
        groups = [names[i : i + 5] for i in range(0, len(names), 5)]
        assert all(len(set(group)) == 1 for group in groups), "test filenames should repeat 5 times"
        names = [group[0] for group in groups]
    usable = min(len(names), len(captions) // 5)
    return [(names[i], captions[5 * i : 5 * i + 5]) for i in range(usable)]


def karpathy_entry(filename: str, imgid: int, split: str, raws: list[str]) -> dict:
    return {
        "filename": filename,
        "imgid": imgid,
        "split": split,
        "sentids": [imgid * 5 + k for k in range(len(raws))],
        "sentences": [
            {"raw": raw, "tokens": raw.lower().split()[:-1], "imgid": imgid, "sentid": imgid * 5 + k}
            for k, raw in enumerate(raws)
        ],
    }


def build_real_dataset(real_dir: Path, prefix: str, raw_dir: Path, size: int, family: str) -> list[dict]:
    """dataset.json + images/ under raw_dir from the real AMFMN caption files; returns the entries."""
    entries = []
    for split, caps_glob in (("train", f"{prefix}_train_caps.*"), ("test", f"{prefix}_test_caps.*")):
        caps = next(real_dir.glob(caps_glob))
        names = next(real_dir.glob(caps_glob.replace("_caps.*", "_filename.*")))
        for filename, raws in amfmn_images(caps, names):
            entries.append(karpathy_entry(filename, len(entries), split, raws))
            synth_image(raw_dir / "images" / filename, size, size, seed=f"{family}:{filename}")
    (raw_dir / "dataset.json").write_text(json.dumps({"images": entries, "dataset": family}), encoding="utf-8")
    return entries


def records_by_id(out_dir: Path, name: str) -> dict:
    return {r.record_id: r for r in read_records(out_dir / f"{name}.parquet")}


def quarantine_lines(out_dir: Path, name: str) -> list[dict]:
    text = (out_dir / f"{name}.quarantine.jsonl").read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines()]


def synth_mini(tmp_path: Path, name: str, seed: int = 0) -> Path:
    raw_dir = tmp_path / name
    synthesize(name, raw_dir, "mini", random.Random(seed))
    return raw_dir


def load_json(path: Path):
    return json.loads(path.read_text(encoding="utf-8"))


def save_json(path: Path, data) -> None:
    path.write_text(json.dumps(data), encoding="utf-8")


# ---------------------------------------------------------------------------------------------
# normalisation
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("There is a piece of farmland .", "There is a piece of farmland."),
        ("many buildings , some trees and a road .", "many buildings, some trees and a road."),
        ("  a   plane\tis parked  .  ", "a plane is parked."),
        ("two tanks ( white ) !", "two tanks (white)!"),
        ("no punctuation", "no punctuation"),
    ],
)
def test_normalise_caption(raw, expected):
    assert normalise_caption(raw) == expected


# ---------------------------------------------------------------------------------------------
# real captions
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "family", "size", "filename", "split", "real_caption"),
    [
        ("ucm_captions", "ucm", 256, "1.tif", "train", "There is a piece of farmland."),
        (
            "sydney_captions",
            "sydney",
            500,
            "195.tif",
            "test",
            "Many houses arranged nratly with some roads go through this area.",  # the typo is real
        ),
    ],
)
def test_real_captions_convert(real_samples, tmp_path, name, family, size, filename, split, real_caption):
    real_dir = real_samples / "captions_text" / family
    raw_dir = tmp_path / name
    entries = build_real_dataset(real_dir, f"amfmn_{family}_precomp", raw_dir, size, family)

    summary = convert_source(name, raw_dir, tmp_path / "out")

    assert summary.quarantined == 0 and summary.written == len(entries)
    assert summary.by_split == Counter(e["split"] for e in entries)
    records = records_by_id(tmp_path / "out", name)
    record = records[f"{name}:{Path(filename).stem}"]
    assert record.split == split
    assert real_caption in record.captions
    assert record.image_key == f"{family}:{Path(filename).stem}"
    assert record.image_path == f"images/{filename}"
    assert (record.width, record.height) == (size, size)
    assert len(record.captions) == 5
    # every real sentence arrives, normalised, in file order
    entry = next(e for e in entries if e["filename"] == filename)
    assert record.captions == [normalise_caption(s["raw"]) for s in entry["sentences"]]
    all_captions = [c for r in records.values() for c in r.captions]
    assert len(all_captions) == 5 * len(entries)
    assert not [c for c in all_captions if TOKENISER_SPACE.search(c)]


def test_real_repeated_captions_are_kept(real_samples, tmp_path):
    """UCM repeats sentences across and within images; SkyEye counts one sample per caption."""
    raw_dir = tmp_path / "ucm_captions"
    build_real_dataset(real_samples / "captions_text" / "ucm", "amfmn_ucm_precomp", raw_dir, 256, "ucm")
    records = list(get_source("ucm_captions").records(raw_dir))
    assert all(len(r.captions) == 5 for r in records)
    distinct = Counter(c for r in records for c in r.captions)
    assert distinct["There is a piece of farmland."] > 1


# ---------------------------------------------------------------------------------------------
# synthetic full layout, end to end
# ---------------------------------------------------------------------------------------------


def json_entries(name: str, raw_dir: Path) -> list[dict]:
    source = get_source(name)
    data = load_json(raw_dir / source.find_layout(raw_dir).paths["annotations"])
    if name == "nwpu_captions":
        return [dict(e, _class=cls) for cls, images in data.items() for e in images]
    return data["images"]


@pytest.mark.parametrize("name", CAPTION_SOURCES)
def test_mini_layout_converts_end_to_end(tmp_path, name):
    raw_dir = synth_mini(tmp_path, name)
    entries = json_entries(name, raw_dir)
    assert 6 <= len(entries) <= 10

    summary = convert_source(name, raw_dir, tmp_path / "out")

    assert summary.records_in == len(entries) == summary.written + summary.quarantined
    assert summary.quarantined == 0
    assert summary.by_split == Counter(e["split"] for e in entries)
    rows = pq.read_table(tmp_path / "out" / f"{name}.parquet").to_pylist()
    assert len({row["record_id"] for row in rows}) == len(rows)
    size = REAL_SIZES[name]
    family = get_source(name).family
    for row in rows:
        assert (raw_dir / row["image_path"]).is_file()
        assert (row["width"], row["height"]) == (size, size)
        assert row["task"] == "caption" and len(row["captions"]) == 5
        assert row["image_key"] == f"{family}:{Path(row['image_path']).stem}"
        assert not [c for c in row["captions"] if TOKENISER_SPACE.search(c)]
    if name == "nwpu_captions":
        assert all(row["image_path"].startswith("NWPU_images/") and row["image_path"].count("/") == 2 for row in rows)


@pytest.mark.parametrize("name", CAPTION_SOURCES)
def test_synthesis_is_deterministic(tmp_path, name):
    first = synth_mini(tmp_path / "a", name, seed=3)
    second = synth_mini(tmp_path / "b", name, seed=3)
    annotation = get_source(name).find_layout(first).paths["annotations"]
    assert (first / annotation).read_bytes() == (second / annotation).read_bytes()
    assert not list(first.glob(".*.tmp"))


def test_paper_scale_ucm_has_the_paper_train_caption_count(tmp_path):
    raw_dir = tmp_path / "ucm_captions"
    written = synthesize("ucm_captions", raw_dir, "paper", random.Random(0))
    assert written == 2100

    summary = convert_source("ucm_captions", raw_dir, tmp_path / "out")

    assert summary.by_split == Counter(train=1680, val=210, test=210)
    table = pq.read_table(tmp_path / "out" / "ucm_captions.parquet", columns=["split", "captions", "width"])
    train_captions = sum(
        len(c) for s, c in zip(table["split"].to_pylist(), table["captions"].to_pylist()) if s == "train"
    )
    assert train_captions == 8400  # the SkyEye-968k table's "UCM-Captions 8.4k"
    assert set(table["width"].to_pylist()) == {8}


def test_cli_convert_prints_summary(tmp_path):
    from typer.testing import CliRunner

    from skyeye_data.cli import app

    raw_dir = synth_mini(tmp_path, "rsicd")
    result = CliRunner().invoke(app, ["convert", "rsicd", str(raw_dir), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "rsicd.parquet").is_file()
    splits = Counter(e["split"] for e in json_entries("rsicd", raw_dir))
    total = sum(splits.values())
    # the summary row: records in, written, quarantined, train, val, test
    row = r"\W+".join(map(str, ["rsicd", total, total, 0, splits["train"], splits["val"], splits["test"]]))
    assert re.search(row + r"\W", result.output), result.output


def test_sources_are_registered():
    from skyeye_data.sources import all_sources

    sources = all_sources()
    for name in CAPTION_SOURCES:
        assert sources[name].task == "caption"
        assert sources[name].citation and sources[name].layout


# ---------------------------------------------------------------------------------------------
# Published layouts: where the annotation file and the images are in the downloads
# ---------------------------------------------------------------------------------------------


def test_nwpu_lists_airplane_111_which_the_archive_lacks(tmp_path):
    """NWPU-Captions' dataset_nwpu.json names airplane_111.jpg; the image archive has no such file."""
    raw = tmp_path / "nwpu_captions"
    captions = {field: "A plane ." for field in ("raw", "raw_1", "raw_2", "raw_3", "raw_4")}
    entries = [{"filename": f"airplane_{n:03d}.jpg", "imgid": n, "split": "train", **captions} for n in (110, 111)]
    (raw / "NWPU_images" / "airplane").mkdir(parents=True)
    synth_image(raw / "NWPU_images" / "airplane" / "airplane_110.jpg", 256, 256, seed=1)
    (raw / "dataset_nwpu.json").write_text(json.dumps({"airplane": entries}))
    summary = convert_source("nwpu_captions", raw, tmp_path / "out")
    quarantine = [json.loads(line) for line in summary.quarantine_path.read_text().splitlines()]
    assert (summary.written, summary.quarantined, len(quarantine)) == (1, 1, 1)
    assert quarantine[0]["reason"] == ("class 'airplane': image file not found: airplane_111.jpg "
                                       "(expected at NWPU_images/airplane/airplane_111.jpg)")  # fmt: skip


@pytest.mark.parametrize(
    ("name", "annotation", "images", "variant"),
    [
        ("rsicd", "annotations_rsicd/dataset_rsicd.json", "RSICD_images", "archive"),
        ("rsicd", "dataset_rsicd.json", "RSICD_images", "flattened"),
        ("ucm_captions", "dataset.json", "imgs", "archive"),
        ("ucm_captions", "dataset.json", "images", "images folder"),
        ("sydney_captions", "dataset.json", "imgs", "archive"),
    ],
)
def test_published_caption_layouts_convert(tmp_path, name, annotation, images, variant):
    raw = tmp_path / name
    entries = [{"filename": "1.jpg", "imgid": 0, "split": "train", "sentences": [{"raw": "a field ."}]}]
    synth_image(raw / images / "1.jpg", 64, 64, seed=0)
    (raw / annotation).parent.mkdir(parents=True, exist_ok=True)
    (raw / annotation).write_text(json.dumps({"images": entries}))
    assert get_source(name).find_layout(raw).layout.name == variant
    summary = convert_source(name, raw, tmp_path / "out")
    record = next(iter(read_records(summary.records_path)))
    assert (summary.written, record.image_path, record.provenance.raw_file) == (1, f"{images}/1.jpg", annotation)
