"""``skyeye preview``: boxes are drawn where the records say, from records Parquet or a raw folder."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import pytest
import typer
from PIL import Image
from typer.testing import CliRunner

from skyeye_data import preview
from skyeye_data.convert import convert_source, read_records
from skyeye_data.schema import CaptionRecord, DetectedObject, DetectionRecord, GroundingRecord, Provenance
from skyeye_data.sources import get_source
from skyeye_data.synth import synthesize
from skyeye_data.synth.painter import PALETTE

WHITE = (255, 255, 255)


def near(colour, palette, tolerance=40) -> bool:
    return any(all(abs(a - b) <= tolerance for a, b in zip(colour, p)) for p in palette)


@pytest.fixture(scope="module")
def cli() -> typer.Typer:
    """An app with only the preview command: these tests do not depend on other modules' commands."""
    app = typer.Typer()
    app.command("noop")(lambda: None)  # typer flattens a one-command app; keep "preview" a subcommand
    preview.register(app)
    return app


def white_image(path: Path, width: int, height: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (width, height), WHITE).save(path)
    return path


def grounding(image_path: str, box, width=200, height=100, label="ship") -> GroundingRecord:
    return GroundingRecord(
        source="test", record_id="test:0", split="train", image_path=image_path, image_key="test:a",
        width=width, height=height, provenance=Provenance(raw_file="x"), expression="the ship on the left",
        boxes=[box], label=label,
    )  # fmt: skip


def test_box_is_drawn_at_the_scaled_position_in_the_label_colour(tmp_path):
    white_image(tmp_path / "a.png", 200, 100)
    style = preview.PreviewStyle(tile=400, line_width=2)
    tile = preview.render_tile(grounding("a.png", [20, 40, 60, 80]), tmp_path, style)
    colour = preview.colour_for("ship")
    # scale 2: the box spans x 40..120, y 80..160 in the tile; the label sits above it
    assert tile.getpixel((40, 120)) == colour  # left edge
    assert tile.getpixel((119, 159)) == colour  # bottom edge
    assert tile.getpixel((80, 120)) == WHITE  # inside stays the image
    assert tile.getpixel((300, 40)) == WHITE  # far from the box
    assert tile.width == 400 and tile.height > 200  # the text panel is below the 400x200 image


def test_record_texts_per_task():
    record = grounding("a.png", [20, 40, 60, 80])
    assert preview.record_text(record)[1:] == ["refer: the ship on the left", "-> {<10><40><30><80>}"]
    detection = DetectionRecord(
        source="t", record_id="t:1", split="val", image_path="a.png", image_key="t:a", width=10, height=10,
        provenance=Provenance(raw_file="x"), flags=["box_clipped"],
        objects=[DetectedObject(label="ship", box=[0, 0, 5, 5], difficult=True),
                 DetectedObject(label="ship", box=[1, 1, 5, 5]), DetectedObject(label="dam", box=[1, 1, 9, 9])],
    )  # fmt: skip
    lines = preview.record_text(detection)
    assert lines[1] == "3 objects: 2 ship, 1 dam" and lines[-1] == "flags: box_clipped"
    assert [label for _, label, _ in preview.record_boxes(detection)] == ["ship [d]", "ship", "dam"]
    caption = CaptionRecord(
        source="t", record_id="t:2", split="test", image_path="a.png", image_key="t:a", width=10, height=10,
        provenance=Provenance(raw_file="x"), captions=["many planes.", "an airport ."],
    )  # fmt: skip
    assert preview.record_text(caption)[1:] == ["- many planes.", "- an airport ."]


def test_missing_image_draws_a_placeholder_not_a_crash(tmp_path):
    style = preview.PreviewStyle(tile=200)
    tile = preview.render_tile(grounding("gone.png", [1, 1, 5, 5]), tmp_path, style)
    placeholder = tile.crop((0, 0, 200, 100))  # tile x tile/2, dark grey, the reason written in red
    colours = {colour for _, colour in placeholder.getcolors(maxcolors=1 << 16)}
    assert placeholder.getpixel((2, 2)) == (40, 40, 40) and placeholder.getpixel((199, 99)) == (40, 40, 40)
    assert preview.colour_for("ship") not in colours  # no box is drawn on an image that is not there
    assert any(r > 200 and g < 160 for r, g, b in colours)  # the "image not found" text
    assert tile.width == 200 and tile.height > 100  # the record's text panel still follows


def test_an_image_outside_the_raw_root_is_not_read(tmp_path):
    # a records file may name any path: the preview reads images through the guarded raw reader
    outside = tmp_path / "elsewhere" / "secret.png"
    outside.parent.mkdir()
    Image.new("RGB", (200, 100), (0, 200, 0)).save(outside)
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "link.png").symlink_to(outside)
    out = tmp_path / "grid.png"
    records = [grounding("link.png", [1, 1, 5, 5]), grounding("../elsewhere/secret.png", [1, 1, 5, 5])]
    assert preview.write_preview(records, raw, out, style=preview.PreviewStyle(tile=200, columns=2)) == 2
    with Image.open(out) as grid:
        colours = {colour for _, colour in grid.convert("RGB").getcolors(maxcolors=1 << 20)}
    assert (0, 200, 0) not in colours  # neither the symlink nor the ../ path drew the outside image
    image, reason = preview._load_image(raw / "link.png")  # no scope: the check is the scope's
    assert image is not None and reason is None
    with preview.rawfs.scope(raw):
        image, reason = preview._load_image(raw / "link.png")
    assert image is None and "not read" in reason


def test_grid_from_a_records_parquet(tmp_path, cli):
    synthesize("dior_rsvg", tmp_path / "raw", "mini", random.Random(0))
    summary = convert_source("dior_rsvg", tmp_path / "raw", tmp_path / "out")
    out = tmp_path / "grid.png"
    args = ["preview", str(summary.records_path), "--raw-dir", str(tmp_path / "raw"), "--out", str(out)]
    result = CliRunner().invoke(cli, args + ["--limit", "5", "--columns", "2", "--tile", "128"])
    assert result.exit_code == 0, result.output
    assert "drew 5 records" in result.output
    with Image.open(out) as grid:
        assert grid.format == "PNG" and grid.width == 2 * 128 + 3 * 4
        assert grid.height > 3 * 128  # three rows of tiles with their text panels
        grid = grid.convert("RGB")
    # each tile shows its record's box where the record says: the outline (the label's colour) on the
    # box's left edge, and inside it the synthetic object the painter filled with a palette colour
    records = list(read_records(summary.records_path))[:5]
    tiles = [preview.render_tile(r, tmp_path / "raw", preview.PreviewStyle(tile=128)) for r in records]
    top, checked = 4, 0
    for row in range(0, 5, 2):
        for column, record in enumerate(records[row : row + 2]):
            scale = 128 / max(record.width, record.height)
            x1, y1, x2, y2 = (round(v * scale) for v in record.boxes[0])
            left, mid_y = 4 + column * (128 + 4), top + (y1 + y2) // 2
            assert grid.getpixel((left + x1, mid_y)) == preview.colour_for(record.label or "ref"), record.record_id
            assert near(grid.getpixel((left + (x1 + x2) // 2, mid_y)), PALETTE), record.record_id
            checked += 1
        top += max(t.height for t in tiles[row : row + 2]) + 4
    assert checked == 5


def test_raw_folder_with_source_and_input_errors(tmp_path, cli):
    synthesize("dota", tmp_path / "dota", "mini", random.Random(0))
    out = tmp_path / "p.png"
    runner = CliRunner()
    ok = runner.invoke(cli, ["preview", str(tmp_path / "dota"), "--out", str(out), "--split", "val", "--tile", "96"])
    assert ok.exit_code == 0 and "drew 2 records" in ok.output, ok.output  # the folder name names the source
    no_raw = runner.invoke(cli, ["preview", str(tmp_path / "x.parquet"), "--out", str(out)])
    assert no_raw.exit_code != 0
    (tmp_path / "records.parquet").write_bytes(b"")
    no_raw = runner.invoke(cli, ["preview", str(tmp_path / "records.parquet"), "--out", str(out)])
    assert no_raw.exit_code == 2 and "--raw-dir" in no_raw.output
    (tmp_path / "other").mkdir()
    unknown = runner.invoke(cli, ["preview", str(tmp_path / "other"), "--out", str(out)])
    assert unknown.exit_code == 2 and "--source" in unknown.output
    wrong_layout = runner.invoke(cli, ["preview", str(tmp_path / "other"), "--source", "dota", "--out", str(out)])
    assert wrong_layout.exit_code == 2 and "labelTxt" in wrong_layout.output


@pytest.mark.real_samples
def test_real_p1888_boxes_land_where_the_labels_say(real_samples, tmp_path, cli):
    raw = tmp_path / "dota"
    (raw / "train/images").mkdir(parents=True)
    (raw / "train/labelTxt").mkdir(parents=True)
    for folder in ("val/images", "val/labelTxt"):  # DOTA has train and val labels; val is empty here
        (raw / folder).mkdir(parents=True)
    shutil.copy(real_samples / "dota/images/P1888.png", raw / "train/images")
    shutil.copy(real_samples / "dota/labelTxt/P1888.txt", raw / "train/labelTxt")
    out = tmp_path / "p1888.png"
    result = CliRunner().invoke(cli, ["preview", str(raw), "--source", "dota", "--out", str(out), "--tile", "712"])
    assert result.exit_code == 0, result.output
    with Image.open(out) as grid:
        # tile = 712 = the image width, so pixel coordinates are the label's, shifted by the 4-px margin.
        # Line 3 of the real label: small-vehicle with x 674..684, y 375..395; its left edge is drawn.
        assert grid.convert("RGB").getpixel((4 + 674, 4 + 385)) == preview.colour_for("small-vehicle")
        # line 5: large-vehicle spanning x 451..465, y 323..372
        assert grid.convert("RGB").getpixel((4 + 451, 4 + 350)) == preview.colour_for("large-vehicle")
