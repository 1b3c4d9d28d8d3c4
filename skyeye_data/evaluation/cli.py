"""``skyeye eval PREDS --out DIR``: score a predictions Parquet and write the report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table


def eval_command(
    predictions: Annotated[Path, typer.Argument(metavar="PREDS", help="predictions Parquet written by `skyeye predict`")],
    out: Annotated[Path, typer.Option("--out", "-o", metavar="DIR", help="report folder: report.md, report.json, plots/")],
    count_buckets: Annotated[
        bool, typer.Option("--count-buckets", help="RSVQA-LR: bin count answers into 0, 1-10, 11-100, 101-1000, >1000")
    ] = False,
    exclude_type: Annotated[
        Optional[list[str]],
        typer.Option("--exclude-type", metavar="TYPE", help="VQA question type to leave out of every figure, e.g. count (repeatable)"),
    ] = None,
    java: Annotated[
        bool,
        typer.Option(help="--no-java: caption metrics without Java (approximate PTB tokenization, no METEOR)"),
    ] = True,
    plots: Annotated[bool, typer.Option(help="draw the IoU histograms and accuracy-per-question-type charts")] = True,
    published: Annotated[
        Optional[Path], typer.Option(metavar="YAML", help="published-results YAML to print beside the run (default: the bundled one)")
    ] = None,
) -> None:
    """Score generated answers: captioning (BLEU-1..4, METEOR, ROUGE-L, CIDEr), VQA (accuracy per
    question type, AA, OA) and visual grounding (Acc@0.25/0.5/0.75, mean and cumulative IoU).
    Writes report.md (tables in the layout of the SkyEyeGPT paper, published figures beside),
    report.json (every figure) and plots/ to DIR."""
    from skyeye_data.console import fail
    from skyeye_data.evaluation.captions import CaptionEvalError
    from skyeye_data.evaluation.evaluate import EvalOptions, evaluate_file
    from skyeye_data.evaluation.predictions import PredictionsError
    from skyeye_data.evaluation.published import DEFAULT_PUBLISHED, PublishedError, load_published
    from skyeye_data.evaluation.report import write_report

    options = EvalOptions(count_buckets=count_buckets, exclude_types=tuple(exclude_type or ()), use_java=java)
    try:
        entries = load_published(published or DEFAULT_PUBLISHED)
        report = evaluate_file(predictions, options)
        written = write_report(report, out, entries, plots=plots)
    except (PredictionsError, CaptionEvalError, PublishedError) as error:
        raise fail(str(error))
    except ImportError as error:
        # pycocoevalcap and matplotlib are the optional 'eval' extra
        raise fail(f"{error.name or error} is not installed: run `pip install -e '.[eval]'` (matplotlib only: --no-plots)")
    except OSError as error:
        raise fail(f"cannot write the report to {out}: {error}")
    print_summary(report)
    from skyeye_data.console import console

    console.print(f"wrote {len(written)} file(s) to {out} (report.md, report.json{', plots/' if plots else ''})")


HEADLINE = {"captioning": ("BLEU-4", "METEOR", "CIDEr"), "vqa": ("average_accuracy", "overall_accuracy"),
            "grounding": ("Acc@0.5", "mean_IoU")}


def print_summary(report) -> None:
    from skyeye_data.console import stdout
    from skyeye_data.evaluation.report import group_label

    table = Table(title="evaluation summary (percent)")
    for column in ("task", "benchmark", "n", "headline figures"):
        table.add_column(column, justify="right" if column == "n" else "left")
    for r in report.results:
        figures = ", ".join(f"{k} {r.figures[k]:.2f}" for k in HEADLINE[r.family] if k in r.figures)
        table.add_row(r.family, group_label(r), str(r.count), figures)
    stdout.print(table)


def register(app: typer.Typer) -> None:
    app.command("eval")(eval_command)
