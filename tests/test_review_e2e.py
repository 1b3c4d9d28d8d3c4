"""End to end against a real Label Studio server on 127.0.0.1 (see tests/review_server.py).

build output → push → annotate through the API as an annotator would → pull → apply: the result
holds exactly the accepted and corrected samples, with the corrections, pixel-exact. Also: pushing
twice adds nothing, an interrupted pull loses nothing and records nothing twice, a JSON export gives
the same ledger as a pull, and the token appears in no file the toolkit writes.
"""

from __future__ import annotations

import io
import json
import os
import uuid
from pathlib import Path

import httpx
import pytest
from PIL import Image
from typer.testing import CliRunner

from review_server import image_row, labelstudio_server, sample_row, write_build_output  # noqa: F401 (fixture)
from skyeye_data.boxes import format_box
from skyeye_data.cli import app
from skyeye_data.review import labelstudio
from skyeye_data.review import pull as review_pull
from skyeye_data.review.apply import ReviewCounts, apply_review
from skyeye_data.review.corrections import pixels_to_rectangle_value
from skyeye_data.review.ledger import ReviewLedger
from skyeye_data.review.policy import ReviewPolicy
from skyeye_data.review.queue import read_samples

pytestmark = pytest.mark.labelstudio

PROJECT = f"skyeye e2e {uuid.uuid4().hex[:8]}"  # unique: a reused server may hold older runs
# every sample is routed: generated sets by default, converted ones by a full audit
POLICY_YAML = "review:\n  audit_rate: 1.0\n  seed: 3\n"
MOVED_BOX = [76.25, 60.0, 180.0, 150.0]  # on the 250 x 217 image: x1 = 30.5% exactly, a rounding edge (half up: 31)


@pytest.fixture(scope="module")
def build_output(tmp_path_factory) -> Path:
    small, odd, wide = image_row(64, 48, 10), image_row(250, 217, 90), image_row(800, 600, 200)
    samples = [
        sample_row("rsicd-accept", "rsicd", "caption", small["image_id"],
                   [("[caption] Briefly describe this image.", "many green trees are around the white building .")]),
        sample_row("era_vqa-reject", "era_vqa", "vqa", small["image_id"],
                   [("[vqa] What event is taking place?", "a traffic collision")]),
        sample_row("ucm-correct-caption", "ucm_captions", "caption", wide["image_id"],
                   [("[caption] Describe this image in detail.", "a river runs through the dense forest .")]),
        sample_row("rspg-move-box", "rspg", "detection", odd["image_id"],
                   [("[detection] the two airplanes", "<p>the two airplanes</p> {<10><20><30><40>}<delim>{<50><50><70><80>}")]),
        sample_row("dior_conversa-unreviewed", "dior_conversa", "conversation", wide["image_id"],
                   [("[refer] the bridge over the river", "{<20><30><40><45>}"), ("[identify] this {<20><30><40><45>} is", "the bridge")]),
        sample_row("sydney_conversa-correct-turn", "sydney_conversa", "conversation", wide["image_id"],
                   [("[caption] Briefly describe this image.", "a residential area with many houses ."),
                    ("[vqa] Is there a river?", "yes")]),
    ]  # fmt: skip
    return write_build_output(tmp_path_factory.mktemp("build") / "out", samples, [small, odd, wide])


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("review")
    (folder / "recipe.yaml").write_text(POLICY_YAML)
    return folder


@pytest.fixture(scope="module")
def client(labelstudio_server):
    from label_studio_sdk import LabelStudio

    return LabelStudio(base_url=labelstudio_server.url, api_key=labelstudio_server.token)


def run_cli(server, *args: str):
    result = CliRunner().invoke(app, list(args), env=server.env(), catch_exceptions=False)
    assert server.token not in result.output
    return result


def project_tasks(client, name: str) -> dict[str, dict]:
    """sample_id → {task id, data, prefilled prediction result, project id} over the review projects."""
    tasks = {}
    for kind in labelstudio.KINDS:
        project_id = labelstudio.find_project(client, labelstudio.project_title(name, kind))
        if project_id is None:
            continue
        for page in labelstudio.task_pages(client, project_id, 100):
            for task in page:
                prediction = task.predictions[0]
                result = prediction.result if hasattr(prediction, "result") else prediction["result"]
                tasks[task.data["sample_id"]] = {"id": task.id, "data": task.data, "prefilled": result, "project": project_id}
    return tasks


def choice(value: str) -> dict:
    return {"from_name": "verdict", "to_name": "image", "type": "choices", "value": {"choices": [value]}}


def annotate(client, tasks: dict[str, dict]) -> None:
    """What an annotator does in the UI, through the same API the UI uses."""
    client.annotations.create(id=tasks["rsicd-accept"]["id"], result=[choice("accept")])
    client.annotations.create(id=tasks["era_vqa-reject"]["id"], result=[choice("reject")])
    caption_fix = {"from_name": "corrected_answer", "to_name": "image", "type": "textarea",
                   "value": {"text": ["a road runs through the dense forest ."]}}  # fmt: skip
    client.annotations.create(id=tasks["ucm-correct-caption"]["id"], result=[caption_fix, choice("edit")])
    boxes = [dict(region) for region in tasks["rspg-move-box"]["prefilled"] if region["type"] == "rectanglelabels"]
    boxes[1]["value"] = pixels_to_rectangle_value(MOVED_BOX, 250, 217)  # the annotator drags the second box
    client.annotations.create(id=tasks["rspg-move-box"]["id"], result=boxes + [choice("edit")])
    turns = [dict(r) for r in tasks["sydney_conversa-correct-turn"]["prefilled"] if r["type"] == "textarea"]
    turns[3]["value"] = {"text": ["no"]}  # the annotator corrects the last answer
    client.annotations.create(id=tasks["sydney_conversa-correct-turn"]["id"], result=turns + [choice("edit")])


@pytest.fixture(scope="module")
def pushed(labelstudio_server, client, build_output, workspace):
    result = run_cli(labelstudio_server, "review", "push", str(build_output), "--project", PROJECT,
                     "--recipe", str(workspace / "recipe.yaml"), "--batch-size", "2")  # fmt: skip
    assert result.exit_code == 0, result.output
    tasks = project_tasks(client, PROJECT)
    annotate(client, tasks)
    return tasks


def test_push_uploads_display_images_to_a_server_without_local_files(labelstudio_server, pushed, build_output):
    assert set(pushed) == {s["id"] for s in read_samples(build_output)}
    for task in pushed.values():
        url = task["data"]["image"]
        assert url.startswith("/data/upload/") and labelstudio_server.token not in url
    # Label Studio serves the uploaded copy to a logged-in user (and to nobody else)
    url = labelstudio_server.url + pushed["rspg-move-box"]["data"]["image"]
    served = httpx.get(url, headers={"Authorization": f"Token {labelstudio_server.token}"})
    assert served.status_code == 200 and served.content[:8] == b"\x89PNG\r\n\x1a\n"
    assert Image.open(io.BytesIO(served.content)).size == (768, 667)  # 250 x 217 shown at 768 wide (217 * 768 / 250 = 666.6)
    assert pushed["rspg-move-box"]["data"]["width"] == 250  # the task keeps the original size
    assert httpx.get(url).status_code in (401, 403, 302)
    boxes = [r["value"] for r in pushed["rspg-move-box"]["prefilled"] if r["type"] == "rectanglelabels"]
    assert boxes[0]["x"] == 10 and boxes[0]["width"] == 20 and boxes[1]["y"] == 50 and boxes[1]["height"] == 30


def test_pushing_again_adds_no_task(labelstudio_server, client, pushed, build_output, workspace):
    again = run_cli(labelstudio_server, "review", "push", str(build_output), "--project", PROJECT,
                    "--recipe", str(workspace / "recipe.yaml"))  # fmt: skip
    assert again.exit_code == 0, again.output
    tasks = project_tasks(client, PROJECT)
    assert {k: v["id"] for k, v in tasks.items()} == {k: v["id"] for k, v in pushed.items()}


def test_interrupted_pull_loses_nothing_and_records_nothing_twice(labelstudio_server, pushed, workspace, monkeypatch):
    ledger_path = workspace / "interrupted.sqlite"
    monkeypatch.setattr(os, "environ", {**os.environ, **labelstudio_server.env()})
    import skyeye_data.review.ledger as ledger_module

    real_row_of, real_record = ledger_module._row_of, ReviewLedger.record
    calls = {"rows": 0, "pages": 0}

    def crash_inside_the_page(verdict):  # the second row of the first page: the first is already written
        calls["rows"] += 1
        if calls["rows"] == 2:
            raise ConnectionError("killed while recording a page")
        return real_row_of(verdict)

    def crash_after_the_first_page(self, verdicts):
        calls["pages"] += 1
        if calls["pages"] == 2:
            raise ConnectionError("network dropped after the first page")
        return real_record(self, verdicts)

    with ReviewLedger(ledger_path) as ledger:
        with monkeypatch.context() as patch:
            patch.setattr(ledger_module, "_row_of", crash_inside_the_page)
            with pytest.raises(ConnectionError):
                review_pull.pull(labelstudio.connect(), PROJECT, ledger, page_size=2)
        assert ledger.count() == 0  # the page was rolled back whole
        with monkeypatch.context() as patch:
            patch.setattr(ReviewLedger, "record", crash_after_the_first_page)
            with pytest.raises(ConnectionError):
                review_pull.pull(labelstudio.connect(), PROJECT, ledger, page_size=1)
        assert ledger.count() == 1  # the first page stayed
    with ReviewLedger(ledger_path) as ledger:
        rerun = review_pull.pull(labelstudio.connect(), PROJECT, ledger, page_size=1)
        assert rerun.recorded == 4 and rerun.annotations == 5 and ledger.count() == 5
        again = review_pull.pull(labelstudio.connect(), PROJECT, ledger, page_size=2)
        assert again.recorded == 0 and ledger.count() == 5
        assert len({(v.task_id, v.annotation_id) for v in ledger.verdicts()}) == 5


@pytest.fixture(scope="module")
def pulled_ledger(labelstudio_server, pushed, workspace) -> Path:
    ledger_path = workspace / "ledger.sqlite"
    result = run_cli(labelstudio_server, "review", "pull", "--project", PROJECT, "--ledger", str(ledger_path))
    assert result.exit_code == 0, result.output
    return ledger_path


def test_apply_keeps_exactly_the_accepted_and_corrected_samples_with_their_corrections(build_output, pulled_ledger, workspace):
    counts = ReviewCounts()
    policy = ReviewPolicy(audit_rate=1.0, seed=3)
    with ReviewLedger(pulled_ledger) as ledger:
        kept = {s["id"]: s for s in apply_review(read_samples(build_output), policy, ledger, counts=counts)}
    assert {k: s["review_status"] for k, s in kept.items()} == {
        "rsicd-accept": "accepted",
        "ucm-correct-caption": "corrected",
        "rspg-move-box": "corrected",
        "sydney_conversa-correct-turn": "corrected",
    }
    assert kept["ucm-correct-caption"]["conversation"][1]["content"] == "a road runs through the dense forest ."
    moved = format_box(MOVED_BOX, 250, 217)
    assert moved == "{<31><28><72><69>}"
    assert kept["rspg-move-box"]["conversation"][1]["content"] == f"<p>the two airplanes</p> {{<10><20><30><40>}}<delim>{moved}"
    assert [t["content"] for t in kept["sydney_conversa-correct-turn"]["conversation"]][1:] == [
        "a residential area with many houses .", "[vqa] Is there a river?", "no"
    ]  # fmt: skip
    totals = counts.to_json()["totals"]
    assert (totals["accepted"], totals["corrected"], totals["rejected"], totals["unreviewed_left_out"]) == (1, 3, 1, 1)


def test_json_export_gives_the_same_ledger_as_pull(labelstudio_server, client, pushed, pulled_ledger, workspace):
    export = []
    for kind in labelstudio.KINDS:
        project_id = labelstudio.find_project(client, labelstudio.project_title(PROJECT, kind))
        export += json.loads(b"".join(client.projects.exports.download_sync(id=project_id, export_type="JSON")))
    export_file = workspace / "export.json"
    export_file.write_text(json.dumps(export))
    imported_path = workspace / "imported.sqlite"
    result = run_cli(labelstudio_server, "review", "import", str(export_file), "--ledger", str(imported_path))
    assert result.exit_code == 0, result.output
    with ReviewLedger(pulled_ledger) as pulled, ReviewLedger(imported_path) as imported:
        assert imported.verdicts() == pulled.verdicts()
        assert len(pulled.verdicts()) == 5


def test_review_queue_and_report_commands(labelstudio_server, build_output, pulled_ledger, workspace):
    queue = run_cli(labelstudio_server, "review", "queue", str(build_output), "--recipe", str(workspace / "recipe.yaml"),
                    "--ledger", str(pulled_ledger))  # fmt: skip
    assert queue.exit_code == 0 and "1 waiting, 5 already reviewed" in " ".join(queue.output.split())
    report = run_cli(labelstudio_server, "review", "report", "--ledger", str(pulled_ledger))
    assert report.exit_code == 0 and "reviewer@" in report.output and "user:" not in report.output  # e-mail, as Label Studio shows it


def test_the_token_is_in_no_file_the_toolkit_wrote(labelstudio_server, build_output, pulled_ledger, workspace, pushed):
    token = labelstudio_server.token.encode()
    written = [build_output, workspace]
    files = [p for folder in written for p in Path(folder).rglob("*") if p.is_file()]
    assert any(p.suffix == ".sqlite" for p in files)
    assert [p for p in files if token in p.read_bytes()] == []


def test_a_lost_import_response_is_retried_without_duplicates(labelstudio_server, client, tmp_path, monkeypatch):
    from skyeye_data.review.queue import review_queue

    image = image_row(40, 40, 33)
    samples = [
        sample_row(f"rspg-late-{i}", "rspg", "detection", image["image_id"], [(f"[detection] ship {i}", "<p>the ship</p> {<10><10><20><20>}")])
        for i in range(3)
    ]
    out = write_build_output(tmp_path / "out", samples, [image])
    projects_client = type(client.projects)
    real_import, calls = projects_client.import_tasks, {"n": 0}

    def import_then_lose_the_response(self, *args, **kwargs):
        response = real_import(self, *args, **kwargs)
        calls["n"] += 1
        if calls["n"] == 1:
            raise httpx.ReadTimeout("the server imported the batch but its answer was lost")
        return response

    monkeypatch.setattr(projects_client, "import_tasks", import_then_lose_the_response)
    monkeypatch.setattr(labelstudio.time, "sleep", lambda seconds: None)
    queued = list(review_queue(read_samples(out), ReviewPolicy(), None))
    name = f"{PROJECT} retry"
    summary = labelstudio.push(client, out, name, queued, batch_size=2)
    assert calls["n"] == 2  # the lost batch was not sent again; only the second batch was
    assert summary.imported["grounding"] == 3
    tasks = [t for page in labelstudio.task_pages(client, summary.projects[labelstudio.project_title(name, "grounding")], 50) for t in page]
    assert sorted(t.data["sample_id"] for t in tasks) == [s["id"] for s in samples]
