"""The acceptance loop with the real compiler: build → push → annotate → pull → rebuild.

A recipe whose `review:` section routes every sample (audit_rate 1.0) builds an output whose
training shards are empty and whose review queue holds every sample; after review, the rebuilt
shards hold exactly the accepted and corrected samples, with the corrections, pixel-exact.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from typer.testing import CliRunner

from review_server import labelstudio_server  # noqa: F401 (fixture)
from skyeye_data.boxes import format_box, parse_boxes
from skyeye_data.cli import app
from skyeye_data.review import labelstudio
from skyeye_data.review.corrections import pixels_to_rectangle_value

pytestmark = pytest.mark.labelstudio
SOURCES = ["rsicd", "dior_rsvg"]


def rows(folder: Path) -> list[dict]:
    return [r for p in sorted(folder.glob("*.parquet")) for r in pq.read_table(p).to_pylist()]


def cli(server, *args: str):
    result = CliRunner().invoke(app, list(args), env=server.env(), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert server.token not in result.output
    return result


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from skyeye_data.synth import synthesize_raw_root

    base = tmp_path_factory.mktemp("review-build")
    raw = base / "raw"
    synthesize_raw_root(raw, "mini", SOURCES, seed=0)
    recipe = base / "recipe.yaml"
    recipe.write_text(
        yaml.safe_dump(
            {
                "name": "review-loop",
                "sources": {"rsicd": {"builders": ["caption"]}, "dior_rsvg": {"builders": ["refer"]}},
                "review": {"audit_rate": 1.0, "seed": 1, "ledger": str(base / "ledger" / "review.sqlite")},
            }
        )
    )
    return base, raw, recipe


def test_build_push_review_pull_rebuild(labelstudio_server, setup):
    from label_studio_sdk import LabelStudio

    base, raw, recipe = setup
    out, server = base / "out", labelstudio_server
    cli(server, "build", str(recipe), "--raw-root", str(raw), "--out", str(out))
    queued = rows(out / "review-queue")
    assert rows(out / "samples") == [] and len(queued) > 4
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["review"]["totals"]["unreviewed_left_out"] == len(queued)

    name = f"build loop {uuid.uuid4().hex[:6]}"
    cli(server, "review", "push", str(out), "--project", name, "--recipe", str(recipe))
    cli(server, "review", "push", str(out), "--project", name, "--recipe", str(recipe))  # idempotent
    client = LabelStudio(base_url=server.url, api_key=server.token)
    tasks = {}
    for kind in labelstudio.KINDS:
        project_id = labelstudio.find_project(client, labelstudio.project_title(name, kind))
        if project_id is not None:
            for page in labelstudio.task_pages(client, project_id, 100):
                tasks.update({t.data["sample_id"]: t for t in page})
    assert sorted(tasks) == sorted(s["id"] for s in queued)  # one task per sample, pushed twice

    captions = sorted(s["id"] for s in queued if s["task"] == "caption")
    refer = next(s for s in queued if s["task"] == "refer")
    choice = lambda v: {"from_name": "verdict", "to_name": "image", "type": "choices", "value": {"choices": [v]}}  # noqa: E731
    client.annotations.create(id=tasks[captions[0]].id, result=[choice("accept")])
    client.annotations.create(id=tasks[captions[1]].id, result=[choice("reject")])
    fix = {"from_name": "corrected_answer", "to_name": "image", "type": "textarea", "value": {"text": ["a corrected caption ."]}}
    client.annotations.create(id=tasks[captions[2]].id, result=[fix, choice("edit")])
    width, height = tasks[refer["id"]].data["width"], tasks[refer["id"]].data["height"]
    region = next(r for r in tasks[refer["id"]].predictions[0].result if r["type"] == "rectanglelabels")
    moved = [width * 0.25, height * 0.125, width * 0.5 + 0.5, height * 0.625]
    region = {**region, "value": pixels_to_rectangle_value(moved, width, height)}
    client.annotations.create(id=tasks[refer["id"]].id, result=[region, choice("edit")])

    cli(server, "review", "pull", "--project", name, "--recipe", str(recipe))
    cli(server, "build", str(recipe), "--raw-root", str(raw), "--out", str(out))
    rebuilt = {s["id"]: s for s in rows(out / "samples")}
    assert {k: s["review_status"] for k, s in rebuilt.items()} == {
        captions[0]: "accepted", captions[2]: "corrected", refer["id"]: "corrected"
    }
    assert rebuilt[captions[2]]["conversation"][-1]["content"] == "a corrected caption ."
    assert rebuilt[refer["id"]]["conversation"][-1]["content"] == format_box(moved, width, height)
    assert parse_boxes(rebuilt[refer["id"]]["conversation"][-1]["content"])
    still_queued = {s["id"] for s in rows(out / "review-queue")}
    assert still_queued == {s["id"] for s in queued} - {captions[0], captions[1], captions[2], refer["id"]}
    totals = json.loads((out / "manifest.json").read_text())["review"]["totals"]
    assert (totals["accepted"], totals["corrected"], totals["rejected"]) == (1, 2, 1)
    stats = json.loads(cli(server, "stats", str(out), "--json").output)["review"]
    assert stats["samples_by_status"]["rsicd"] == {"accepted": 1, "corrected": 1}
    assert stats["samples_by_status"]["dior_rsvg"] == {"corrected": 1}
    assert stats["outcomes"]["by_source"]["rsicd"]["rejected"] == 1
    waiting = sum(v["unreviewed_left_out"] for v in stats["outcomes"]["by_source"].values())
    assert waiting == len(still_queued)

    cli(server, "build", str(recipe), "--raw-root", str(raw), "--out", str(out), "--include-unreviewed")
    everything = {s["id"]: s["review_status"] for s in rows(out / "samples")}
    assert set(everything) == {s["id"] for s in queued} - {captions[1]}
    assert rows(out / "review-queue") == []

    token = server.token.encode()
    written = [p for p in base.rglob("*") if p.is_file()]
    assert [p for p in written if token in p.read_bytes()] == []
