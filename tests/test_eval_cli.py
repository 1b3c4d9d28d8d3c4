"""`skyeye eval` end to end on a small hand-made predictions Parquet, and its errors on bad input."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from skyeye_data.cli import app

PREDICTIONS_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("source", pa.string()),
        ("task", pa.string()),
        ("split", pa.string()),
        ("subset", pa.string()),
        ("question_type", pa.string()),
        ("references", pa.list_(pa.string())),
        ("ref_boxes", pa.list_(pa.list_(pa.float64()))),
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("prediction", pa.string()),
    ]
)


def row(id, source, task, prediction, references=(), ref_boxes=(), question_type=None, subset=None, width=800, height=800):
    return {
        "id": id, "source": source, "task": task, "split": "test", "subset": subset, "question_type": question_type,
        "references": list(references), "ref_boxes": [list(b) for b in ref_boxes], "width": width, "height": height,
        "prediction": prediction,
    }


HAND_MADE_ROWS = [
    row("c1", "ucm_captions", "caption", "A plane is parked at the airport.",
        ["a plane is parked at the airport", "an airplane stands at the airport"]),
    row("c2", "ucm_captions", "caption", "many green trees in a dense forest", ["many green trees are in a dense forest"]),
    row("c3", "ucm_captions", "caption", "", ["some buildings and a road"]),
    row("v1", "rsvqa_lr", "vqa", "Yes", ["yes"], question_type="presence"),
    row("v2", "rsvqa_lr", "vqa", "Two.", ["2"], question_type="count"),
    row("v3", "rsvqa_lr", "vqa", "urban", ["rural"], question_type="rural_urban"),
    row("v4", "rsvqa_hr", "vqa", "no", ["no"], question_type="comp", subset="test"),
    row("v5", "rsvqa_hr", "vqa", "no", ["yes"], question_type="comp", subset="test_phili"),
    # {<10><10><50><50>} on 800 x 800 is [80, 80, 400, 400]: IoU 1
    row("g1", "dior_rsvg", "refer", "{<10><10><50><50>}", ref_boxes=[[80, 80, 400, 400]]),
    # angle style, [0, 0, 200, 200] vs [400, 400, 800, 800]: IoU 0
    row("g2", "dior_rsvg", "refer", "<<0><0><25><25>>", ref_boxes=[[400, 400, 800, 800]]),
    row("g3", "dior_rsvg", "refer", "the bridge on the left", ref_boxes=[[0, 0, 100, 100]]),
    row("i1", "dior_rsvg", "identify", "the bridge", ["the bridge"]),
]


def write_predictions(path: Path, rows: list[dict], schema: pa.Schema = PREDICTIONS_SCHEMA) -> Path:
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)
    return path


def flat(text: str) -> str:
    """Output with rich's line wrapping undone."""
    return " ".join(text.split())


def run_eval(*args: str):
    return CliRunner().invoke(app, ["eval", *args])


@pytest.fixture(scope="module")
def hand_made(tmp_path_factory) -> Path:
    return write_predictions(tmp_path_factory.mktemp("preds") / "predictions.parquet", HAND_MADE_ROWS)


@pytest.fixture(scope="module")
def java_report(hand_made, tmp_path_factory) -> Path:
    """One full run with the Java tools (PTB tokenizer + METEOR); shared by the tests below."""
    if shutil.which("java") is None:
        pytest.skip("java is not installed: the COCO caption evaluation (PTB tokenizer, METEOR) needs it")
    out = tmp_path_factory.mktemp("report")
    result = run_eval(str(hand_made), "--out", str(out))
    assert result.exit_code == 0, result.output
    return out


def test_end_to_end_writes_markdown_json_and_plots(java_report):
    assert (java_report / "report.md").is_file()
    assert (java_report / "report.json").is_file()
    plots = sorted(p.name for p in (java_report / "plots").iterdir())
    assert plots == ["iou_dior_rsvg.png", "vqa_rsvqa_hr_test.png", "vqa_rsvqa_hr_test_phili.png", "vqa_rsvqa_lr.png"]
    assert all((java_report / "plots" / p).read_bytes().startswith(b"\x89PNG") for p in plots)
    assert not list(java_report.glob(".*.tmp")), "temporary files left behind"


def test_end_to_end_figures(java_report):
    data = json.loads((java_report / "report.json").read_text())
    (caption,) = data["results"]["captioning"]
    assert caption["tokenizer"] == "ptb" and caption["unavailable"] == []
    assert set(caption["figures"]) == {"BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "METEOR", "ROUGE-L", "CIDEr"}
    assert 0 < caption["figures"]["METEOR"] < 100 and 0 < caption["figures"]["BLEU-4"] < 100
    vqa = {(r["source"], r["subset"]): r for r in data["results"]["vqa"]}
    lr = vqa[("rsvqa_lr", None)]["figures"]
    assert lr["presence"] == 100.0 and lr["count"] == 100.0 and lr["rural_urban"] == 0.0  # "Two." == "2"
    assert lr["average_accuracy"] == pytest.approx(66.67) and lr["overall_accuracy"] == pytest.approx(66.67)
    assert vqa[("rsvqa_hr", "test")]["figures"]["average_accuracy"] == 100.0  # test set 1
    assert vqa[("rsvqa_hr", "test_phili")]["figures"]["average_accuracy"] == 0.0  # test set 2, separate
    (grounding,) = data["results"]["grounding"]
    assert grounding["figures"]["Acc@0.5"] == pytest.approx(33.33)
    assert grounding["figures"]["mean_IoU"] == pytest.approx(33.33)
    assert grounding["unparseable"] == [{"id": "g3", "prediction": "the bridge on the left"}]
    assert data["not_scored"] == {"identify": 1}


def test_end_to_end_markdown_tables(java_report):
    markdown = (java_report / "report.md").read_text()
    assert "| Dataset | Model | BLEU-1 | BLEU-2 | BLEU-3 | BLEU-4 | METEOR | ROUGE-L | CIDEr | n |" in markdown
    assert "| UCM-Captions | this run |" in markdown
    assert "### RSVQA-LR" in markdown and "| this run | 100.00 | 100.00 | 0.00 | 66.67 | 66.67 | 3 |" in markdown
    assert "| test set 1 | this run |" in markdown and "| test set 2 | this run |" in markdown
    assert "| DIOR-RSVG | this run | 33.33 | 33.33 | 33.33 | 33.33 |" in markdown
    assert "`g3`" in markdown  # the unparseable output is listed
    assert "](plots/iou_dior_rsvg.png)" in markdown


def test_without_java_metric_marked_unavailable(hand_made, tmp_path):
    result = run_eval(str(hand_made), "--out", str(tmp_path), "--no-java", "--no-plots")
    assert result.exit_code == 0, result.output
    (caption,) = json.loads((tmp_path / "report.json").read_text())["results"]["captioning"]
    assert caption["tokenizer"] == "python-fallback" and caption["unavailable"] == ["METEOR"]
    assert "METEOR" not in caption["figures"] and "CIDEr" in caption["figures"]
    assert "--no-java" in (tmp_path / "report.md").read_text()
    assert not (tmp_path / "plots").exists()


def test_missing_java_is_a_clear_error(hand_made, tmp_path, monkeypatch):
    monkeypatch.setattr("skyeye_data.evaluation.captions.shutil.which", lambda name: None)
    result = run_eval(str(hand_made), "--out", str(tmp_path))
    assert result.exit_code == 2
    assert "java was not found" in flat(result.output) and "--no-java" in flat(result.output)
    assert not (tmp_path / "report.md").exists()


def test_count_buckets_and_excluded_types(tmp_path):
    rows = [
        row("a", "rsvqa_lr", "vqa", "42", ["57"], question_type="count"),
        row("b", "rsvqa_lr", "vqa", "yes", ["no"], question_type="presence"),
    ]
    preds = write_predictions(tmp_path / "p.parquet", rows)
    assert run_eval(str(preds), "--out", str(tmp_path / "plain"), "--no-plots").exit_code == 0
    assert run_eval(str(preds), "--out", str(tmp_path / "binned"), "--no-plots", "--count-buckets").exit_code == 0
    assert run_eval(str(preds), "--out", str(tmp_path / "nocount"), "--no-plots", "--exclude-type", "count").exit_code == 0

    def figures(name):
        return json.loads((tmp_path / name / "report.json").read_text())["results"]["vqa"][0]["figures"]

    assert figures("plain")["count"] == 0.0 and figures("binned")["count"] == 100.0
    assert "count" not in figures("nocount") and figures("nocount")["overall_accuracy"] == 0.0


# -- malformed prediction files ---------------------------------------------------------------------


def _not_parquet(path: Path) -> Path:
    path.write_text("id,prediction\n1,yes\n")
    return path


def _missing_columns(path: Path) -> Path:
    schema = pa.schema([f for f in PREDICTIONS_SCHEMA if f.name not in ("prediction", "ref_boxes")])
    rows = [{k: v for k, v in HAND_MADE_ROWS[3].items() if k in schema.names}]
    return write_predictions(path, rows, schema)


def _wrong_types(path: Path) -> Path:
    schema = PREDICTIONS_SCHEMA.set(PREDICTIONS_SCHEMA.get_field_index("width"), pa.field("width", pa.string()))
    return write_predictions(path, [{**HAND_MADE_ROWS[3], "width": "800"}], schema)


def _empty(path: Path) -> Path:
    return write_predictions(path, [])


def _null_ids(path: Path) -> Path:
    return write_predictions(path, [{**HAND_MADE_ROWS[3], "id": None}])


def _duplicate_ids(path: Path) -> Path:
    return write_predictions(path, [HAND_MADE_ROWS[3], HAND_MADE_ROWS[3]])


def _grounding_without_box(path: Path) -> Path:
    return write_predictions(path, [row("g", "dior_rsvg", "refer", "{<1><1><2><2>}")])


def _caption_without_references(path: Path) -> Path:
    return write_predictions(path, [row("c", "rsicd", "caption", "a harbour with boats", references=[])])


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (_not_parquet, "is not a readable Parquet file"),
        (_missing_columns, "missing column(s): ref_boxes, prediction"),
        (_wrong_types, "column 'width' has type string, expected integer"),
        (_empty, "has no rows"),
        (_null_ids, "column 'id' is null in 1 row(s)"),
        (_duplicate_ids, "duplicate (source, id)"),
        (_grounding_without_box, "grounding row without a reference box"),
        (_caption_without_references, "caption row without any reference"),
    ],
)
def test_malformed_predictions_give_a_clear_error(make, message, tmp_path):
    path = make(tmp_path / "predictions.parquet")
    result = run_eval(str(path), "--out", str(tmp_path / "report"), "--no-java")
    assert result.exit_code == 2, result.output
    assert message in flat(result.output)
    assert "Traceback" not in result.output
    assert isinstance(result.exception, SystemExit)
    assert not (tmp_path / "report" / "report.md").exists()


def test_missing_file_from_the_real_command_line(tmp_path):
    """Through the installed entry point: exit status, message, no traceback."""
    result = subprocess.run(
        [sys.executable, "-m", "skyeye_data.cli", "eval", str(tmp_path / "nope.parquet"), "--out", str(tmp_path / "r")],
        capture_output=True, text=True, check=False,
    )
    assert result.returncode != 0
    assert "no such file" in flat(result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
