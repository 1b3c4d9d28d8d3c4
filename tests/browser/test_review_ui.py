"""The whole review loop as annotators live it: the real Label Studio UI in headless Chromium.

build recipes/demo.yaml (no review: section, not edited) → push (default policy: RSPG, ERA-VQA and
the Conversa dialogs; images uploaded, the server's local-files serving is off) → in the browser,
per kind of task: the header names dataset and sample (no JSON), the image has loaded (TIFF
sources too), each region's label names its phrase or turn, the instructions are the guidelines;
verdicts by clicks, hotkeys and drags, Submit moving to the next task → pull → rebuild with
--ledger holds exactly those outcomes → a second look rejects a corrected sample → it leaves training.

Set SKYEYE_REVIEW_SCREENSHOTS=DIR to keep a screenshot of each view (docs/img/ has the last ones).
"""

from __future__ import annotations

import os
import re
import uuid
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from selenium.webdriver.support.ui import WebDriverWait
from typer.testing import CliRunner

import ui
from skyeye_data.boxes import format_box, parse_boxes
from skyeye_data.cli import app
from skyeye_data.review import labelstudio
from skyeye_data.review.corrections import rectangle_to_pixels
from skyeye_data.review.ledger import ReviewLedger
from skyeye_data.review.task_view import distinct_boxes

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEMO_RECIPE = PROJECT_ROOT / "recipes" / "demo.yaml"
NAME = f"browser {uuid.uuid4().hex[:6]}"
EMAIL = "reviewer@skyeye.test"


def cli(server, *args: str) -> str:
    result = CliRunner().invoke(app, [str(a) for a in args], env=server.env(), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert server.token not in result.output
    return result.output


def rows(folder: Path) -> list[dict]:
    return [r for p in sorted(folder.glob("*.parquet")) for r in pq.read_table(p).to_pylist()]


@pytest.fixture(scope="module")
def loop(labelstudio_server, mini_raw_root, tmp_path_factory):
    base = tmp_path_factory.mktemp("browser-loop")
    out, ledger = base / "out", base / "ledger.sqlite"
    cli(labelstudio_server, "build", DEMO_RECIPE, "--raw-root", mini_raw_root, "--out", out)
    pushed = cli(labelstudio_server, "review", "push", out, "--project", NAME, "--ledger", ledger)
    assert "label them at" in pushed
    from label_studio_sdk import LabelStudio

    client = LabelStudio(base_url=labelstudio_server.url, api_key=labelstudio_server.token)
    projects = {kind: labelstudio.find_project(client, labelstudio.project_title(NAME, kind)) for kind in labelstudio.KINDS}
    assert all(projects.values()), projects
    return {"base": base, "out": out, "ledger": ledger, "raw": mini_raw_root, "projects": projects, "client": client, "done": {}}


def screenshot(driver, name: str) -> None:
    folder = os.environ.get("SKYEYE_REVIEW_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(Path(folder) / f"review-{name}.png"))


def check_view(driver, data: dict, image_formats: dict[str, str], seen: dict) -> None:
    """What an annotator must see at a glance on every task."""
    headers = ui.header_texts(driver)
    assert headers[0] == f"{data['dataset']} · {data['sample_id']}", headers[:2]
    assert not any(re.search(r'\{\s*"|\[object', h) for h in headers), "a header shows JSON"
    assert any(h.startswith("flags: ") for h in headers) and any("keys: a accept" in h for h in headers)
    width = ui.image_natural_width(driver)
    assert width > 0, f"the image of {data['sample_id']} did not load"
    fmt = image_formats[data["image_ids"][0]].upper()
    seen.setdefault(fmt, []).append(width)
    expected = {b.region_id: b for b in distinct_boxes(data["dialog"])}
    shown = {r["id"]: r for r in ui.regions(driver) if r["x"] is not None}
    assert set(shown) == set(expected), "one region per distinct box"
    panel = "\n".join(ui.region_list_texts(driver))
    for region_id, box in expected.items():
        label = shown[region_id]["label"]
        assert label == box.label and re.search(r"turns? \d", label), label
        assert label in panel
        if box.phrase:
            assert box.phrase in label
    for turn in data["dialog"]:
        if turn["role"] in ("user", "assistant") and data.get("task") == "conversation":
            assert f"turn {turn['index'] + 1} · {turn['role']}" in headers


def run_stream(driver, server, loop, kind: str, plan) -> dict[str, dict]:
    """Open the kind's stream and work through it; ``plan(data, n)`` acts on the n-th task and
    returns what it did (or None to stop). Every Submit must open the next task."""
    view = ui.open_stream(driver, server, loop["projects"][kind])
    assert "SkyEye review guidelines" in view.instructions  # the project's instructions are GUIDELINES.md
    done, task_id, n = {}, view.task_id, 0
    formats = loop.setdefault("formats", _image_formats(loop["out"]))
    while task_id is not None:
        data = ui.task_data(driver)
        check_view(driver, data, formats, loop.setdefault("widths", {}))
        shots = loop.setdefault("shots", set())
        if kind not in shots and (kind == "caption_vqa" or distinct_boxes(data["dialog"])):
            shots.add(kind)  # the first task of the kind that shows what the view is for
            screenshot(driver, kind)
        action = plan(data, n)
        if action is None:
            break
        done[data["sample_id"]] = {**action, "data": data}
        following = ui.submit(driver)
        assert following != task_id, "Submit did not move to the next task"
        task_id, n = following, n + 1
    return done


def _image_formats(out: Path) -> dict[str, str]:
    return {r["image_id"]: r["format"] for r in rows(out / "images")} if (out / "images").is_dir() else {}


def test_first_round_in_the_browser(browser, labelstudio_server, loop):
    driver, server = browser, labelstudio_server

    def caption_vqa(data, n):
        if n == 0:
            ui.choose(driver, "accept", by_key=True)
            return {"verdict": "accepted"}
        if n == 1:
            ui.edit_text(driver, "corrected_answer", "a corrected answer .")
            ui.choose(driver, "edit")
            return {"verdict": "corrected", "answer": "a corrected answer ."}
        if n == 2:
            ui.choose(driver, "reject")
            return {"verdict": "rejected"}
        return None

    def grounding(data, n):
        if n == 0:
            moved = ui.drag_region(driver, "box1", 12, 6)
            ui.choose(driver, "edit", by_key=True)
            return {"verdict": "corrected", "moved": moved}
        if n == 1:
            ui.choose(driver, "accept")
            return {"verdict": "accepted"}
        return None

    state = {"moved": False, "rejected_tiff": False}

    def conversa(data, n):
        formats = loop["formats"]
        boxes = distinct_boxes(data["dialog"])
        if boxes and not state["moved"]:
            shared = max(boxes, key=lambda b: len({t for t, _ in b.slots}))
            state["moved"] = True
            moved = ui.drag_region(driver, shared.region_id, -6, 8)
            ui.choose(driver, "edit")
            return {"verdict": "corrected", "moved": moved, "region": shared.region_id}
        if formats[data["image_ids"][0]].upper() == "TIFF" and not state["rejected_tiff"]:
            state["rejected_tiff"] = True
            ui.choose(driver, "reject", by_key=True)
            return {"verdict": "rejected"}
        if state["moved"] and state["rejected_tiff"]:
            return None
        ui.choose(driver, "accept")
        return {"verdict": "accepted"}

    for kind, plan in (("caption_vqa", caption_vqa), ("grounding", grounding), ("conversa", conversa)):
        loop["done"].update(run_stream(driver, server, loop, kind, plan))
    assert loop["widths"].get("TIFF"), "no task with a TIFF source was opened"
    assert state["moved"] and state["rejected_tiff"]

    cli(server, "review", "pull", "--project", NAME, "--ledger", loop["ledger"])
    with ReviewLedger(loop["ledger"]) as book:
        verdicts = {v.sample_id: v for v in book.verdicts()}
    assert {k: v.verdict for k, v in verdicts.items()} == {k: a["verdict"] for k, a in loop["done"].items()}
    assert {v.annotator for v in verdicts.values()} == {EMAIL}

    cli(server, "build", DEMO_RECIPE, "--raw-root", loop["raw"], "--out", loop["out"], "--ledger", loop["ledger"])
    assert_rebuild_holds(loop)


def expected_content(action: dict) -> list[str]:
    """The conversation the annotator's action leaves (texts in turn order)."""
    data = action["data"]
    turns = [t["content"] for t in data["dialog"]]
    if "answer" in action:
        turns[-1] = action["answer"]
    if "moved" in action:
        region = action.get("region", "box1")
        box = next(b for b in distinct_boxes(data["dialog"]) if b.region_id == region)
        token = format_box(rectangle_to_pixels(action["moved"], data["width"], data["height"]), data["width"], data["height"])
        old = box.box.coords
        for turn, k in box.slots:
            matches = [m for m in re.finditer(r"\{<[^}]*\}", turns[turn])]
            assert parse_boxes(matches[k].group(0))[0].coords == old
        for turn in sorted({t for t, _ in box.slots}):
            turns[turn] = re.sub(r"\{<[^}]*\}", lambda m: token if parse_boxes(m.group(0))[0].coords == old else m.group(0), turns[turn])
    return turns


def assert_rebuild_holds(loop) -> None:
    samples = {s["id"]: s for s in rows(loop["out"] / "samples")}
    queued = {s["id"] for s in rows(loop["out"] / "review-queue")}
    for sample_id, action in loop["done"].items():
        if action["verdict"] == "rejected":
            assert sample_id not in samples and sample_id not in queued
            continue
        status = samples[sample_id]["review_status"]
        assert status == action["verdict"], (sample_id, status, action["verdict"])
        assert [t["content"] for t in samples[sample_id]["conversation"]] == expected_content(action)
    reviewed = set(loop["done"])
    assert all(s["review_status"] == "not_required" for k, s in samples.items() if k not in reviewed)
    assert queued and not queued & reviewed  # the rest still waits


def test_second_look_rejects_a_corrected_sample(browser, labelstudio_server, loop):
    if not loop["done"]:
        pytest.skip("needs the first round")
    driver, server = browser, labelstudio_server
    second_look = loop["base"] / "second-look.yaml"
    second_look.write_text("review:\n  second_look: true\n")
    cli(server, "review", "push", loop["out"], "--project", NAME, "--recipe", second_look, "--ledger", loop["ledger"])
    corrected = {k for k, a in loop["done"].items() if a["verdict"] == "corrected"}
    target = next(k for k, a in loop["done"].items() if a["verdict"] == "corrected" and a["data"]["task"] != "conversation"
                  and "moved" in a)  # fmt: skip

    project_id = loop["projects"]["grounding"]
    first = loop["done"][target]["data"]["fingerprint"]
    tasks = [t for page in labelstudio.task_pages(loop["client"], project_id, 100) for t in page if t.data["sample_id"] == target]
    assert [t.data["fingerprint"] == first for t in tasks] == [True, False]  # the corrected content, pushed once more
    second = tasks[1]
    assert "second_look" in second.data["reasons"]
    ui.open_task(driver, server, project_id, second.id)  # from the task list, as a reviewer picks one
    data = ui.task_data(driver)
    check_view(driver, data, loop["formats"], loop["widths"])
    ui.choose(driver, "reject")
    ui.click_submit(driver)
    WebDriverWait(driver, 30).until(lambda d: loop["client"].tasks.get(second.id).annotations)
    cli(server, "review", "pull", "--project", NAME, "--ledger", loop["ledger"])
    cli(server, "build", DEMO_RECIPE, "--raw-root", loop["raw"], "--out", loop["out"], "--ledger", loop["ledger"])
    samples = {s["id"]: s for s in rows(loop["out"] / "samples")}
    assert target not in samples
    assert {k for k in corrected - {target}} <= set(samples)
    queued = cli(server, "review", "queue", loop["out"], "--ledger", loop["ledger"], "--recipe", second_look)
    assert "second_look" in queued
