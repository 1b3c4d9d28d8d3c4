"""Write the evaluation report: ``report.md``, ``report.json`` and ``plots/*.png``.

The Markdown has one table per task in the layout of the SkyEyeGPT paper's tables (captioning:
BLEU-1..4, METEOR, ROUGE-L, CIDEr per dataset; RSVQA-LR: accuracy per question type and the
average; RSVQA-HR: one row per test set; grounding: Acc@0.5 and friends), with published results
(``published.yaml``) as extra rows. ``report.json`` holds every figure. Plots: an IoU histogram
per grounding dataset and an accuracy-per-question-type bar chart per VQA test set. matplotlib is
imported only when plots are drawn, and through its Agg canvas, so no display and no global
backend switch are involved.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from skyeye_data.evaluation.captions import CAPTION_METRICS
from skyeye_data.evaluation.evaluate import DatasetResult, EvalReport
from skyeye_data.evaluation.grounding import THRESHOLDS
from skyeye_data.evaluation.published import PublishedEntry, published_for
from skyeye_data.io import atomic_path, write_json_atomic, write_text_atomic
from skyeye_data.sources import dataset_title, report_order, subset_title

QUESTION_TYPE_TITLES: dict[str, str] = {
    "count": "Count",
    "presence": "Presence",
    "comp": "Comparison",
    "comparison": "Comparison",
    "rural_urban": "Rural/Urban",
    "area": "Area",
    "scene": "Scene",
    "location": "Location",
    "yes_no": "Yes/No",
    "other": "Other",
}
GROUNDING_COLUMNS: tuple[str, ...] = tuple(f"Acc@{t}" for t in THRESHOLDS) + ("mean_IoU", "cum_IoU")
UNPARSEABLE_SHOWN = 20
THIS_RUN = "this run"


def _dataset_rank(source: str) -> int:
    # the papers' order (each converter's report_rank), unknown sources last
    names = report_order()
    return names.index(source) if source in names else len(names)


def in_paper_order(results: list[DatasetResult]) -> list[DatasetResult]:
    return sorted(results, key=lambda r: _dataset_rank(r.source))


def group_label(result: DatasetResult) -> str:
    """'RSVQA-HR test set 2', 'RSIVQA UCM', 'RSICD (val)'."""
    label = dataset_title(result.source)
    if result.subset:
        label += " " + subset_title(result.source, result.subset)
    if result.split != "test":
        label += f" ({result.split})"
    return label


def type_title(question_type: str) -> str:
    return QUESTION_TYPE_TITLES.get(question_type, question_type.replace("_", " ").title())


def _cell(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def _model_label(entry: PublishedEntry) -> str:
    return entry.model if entry.primary else f"{entry.model} †"


def _table(header: list[str], rows: Iterable[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


@dataclass
class ReportContext:
    report: EvalReport
    published: list[PublishedEntry]

    def published_rows(self, result: DatasetResult) -> list[PublishedEntry]:
        # published figures are test-set figures; a val run has nothing to be compared with
        if result.split != "test":
            return []
        return published_for(self.published, result.family, result.source, result.subset)

    def cited(self) -> list[PublishedEntry]:
        shown = {id(e) for r in self.report.results for e in self.published_rows(r)}
        return [e for e in self.published if id(e) in shown]


# -- Markdown sections --------------------------------------------------------------------------


def captioning_section(ctx: ReportContext) -> str:
    results = in_paper_order(ctx.report.by_family("captioning"))
    if not results:
        return ""
    header = ["Dataset", "Model", *CAPTION_METRICS, "n"]
    rows = []
    for r in results:
        rows.append([group_label(r), THIS_RUN, *(_cell(r.figures.get(m)) for m in CAPTION_METRICS), str(r.count)])
        for entry in ctx.published_rows(r):
            rows.append([group_label(r), _model_label(entry), *(_cell(entry.figures.get(m)) for m in CAPTION_METRICS), ""])
    notes = []
    if any(r.details.get("tokenizer") == "python-fallback" for r in results):
        notes.append(
            "Scored without Java (--no-java): a Python approximation of the PTB tokenizer, METEOR "
            "unavailable. These figures are close to, not identical with, the COCO protocol of the papers."
        )
    text = "## Image and video captioning\n\n" + _table(header, rows)
    return text + ("\n\n" + "\n".join(f"> {n}" for n in notes) if notes else "")


def _vqa_types(results: list[DatasetResult]) -> list[str]:
    seen: list[str] = []
    for r in results:
        for qtype in r.details.get("per_type", {}):
            if qtype not in seen:
                seen.append(qtype)
    canonical = [t for t in QUESTION_TYPE_TITLES if t in seen]
    return canonical + sorted(t for t in seen if t not in canonical)


def vqa_source_table(ctx: ReportContext, source: str, results: list[DatasetResult]) -> str:
    types = _vqa_types(results)
    with_subset = any(r.subset for r in results) or any(r.split != "test" for r in results)
    subset_column = "Test set" if source == "rsvqa_hr" else "Subset"
    header = ([subset_column] if with_subset else []) + ["Model", *(type_title(t) for t in types),
                                                      "Average (AA)", "Overall (OA)", "n"]
    rows = []
    for r in results:
        lead = [group_label(r).removeprefix(dataset_title(source)).strip() or "–"] if with_subset else []
        figures = [*(r.figures.get(t) for t in types), r.figures.get("average_accuracy"), r.figures.get("overall_accuracy")]
        rows.append(lead + [THIS_RUN, *map(_cell, figures), str(r.count)])
        for entry in ctx.published_rows(r):
            published = [*(entry.figures.get(t) for t in types), entry.figures.get("average_accuracy"),
                         entry.figures.get("overall_accuracy")]
            rows.append(lead + [_model_label(entry), *map(_cell, published), ""])
    notes = []
    excluded = sorted({t for r in results for t in r.details.get("excluded_question_types", [])})
    if excluded:
        notes.append(f"Question types left out of every figure: {', '.join(excluded)}.")
    if any(r.details.get("count_buckets") for r in results):
        notes.append("Count answers binned: 0, 1-10, 11-100, 101-1000, more than 1000 (RSVQA-LR convention).")
    text = f"### {dataset_title(source)}\n\n" + _table(header, rows)
    return text + ("\n\n" + "\n".join(f"> {n}" for n in notes) if notes else "")


def vqa_section(ctx: ReportContext) -> str:
    results = in_paper_order(ctx.report.by_family("vqa"))
    if not results:
        return ""
    by_source: dict[str, list[DatasetResult]] = {}
    for r in results:
        by_source.setdefault(r.source, []).append(r)
    tables = [vqa_source_table(ctx, source, rs) for source, rs in by_source.items()]
    intro = (
        "Exact match after normalisation (case, punctuation, articles, number words as digits). "
        "AA: mean of the per-type accuracies; OA: correct / all questions."
    )
    return "## Visual question answering\n\n" + intro + "\n\n" + "\n\n".join(tables)


def unparseable_list(results: list[DatasetResult]) -> str:
    blocks = []
    for r in results:
        misses = r.details.get("unparseable", [])
        if not misses:
            continue
        lines = [f"- `{m['id']}`: {m['prediction'][:120]!r}" for m in misses[:UNPARSEABLE_SHOWN]]
        if len(misses) > UNPARSEABLE_SHOWN:
            lines.append(f"- ... and {len(misses) - UNPARSEABLE_SHOWN} more (all in report.json)")
        blocks.append(f"{group_label(r)}: {len(misses)} output(s) without a box, counted as misses\n\n" + "\n".join(lines))
    return "\n\n".join(blocks)


def grounding_section(ctx: ReportContext) -> str:
    results = in_paper_order(ctx.report.by_family("grounding"))
    if not results:
        return ""
    header = ["Dataset", "Model", *(c.replace("_", " ") for c in GROUNDING_COLUMNS), "n", "unparseable"]
    rows = []
    for r in results:
        rows.append([group_label(r), THIS_RUN, *(_cell(r.figures.get(c)) for c in GROUNDING_COLUMNS),
                     str(r.count), str(len(r.details.get("unparseable", [])))])
        for entry in ctx.published_rows(r):
            rows.append([group_label(r), _model_label(entry), *(_cell(entry.figures.get(c)) for c in GROUNDING_COLUMNS), "", ""])
    text = "## Visual grounding\n\n" + _table(header, rows)
    misses = unparseable_list(results)
    return text + (f"\n\n### Unparseable outputs\n\n{misses}" if misses else "")


def header_section(report: EvalReport) -> str:
    lines = [
        "# SkyEye evaluation report",
        "",
        f"Predictions: `{report.predictions_path}` ({report.rows} rows). "
        "Figures in percent (x100, CIDEr included), as in the papers' tables.",
    ]
    if report.not_scored:
        unscored = ", ".join(f"{task} {n}" for task, n in sorted(report.not_scored.items()))
        lines.append(f"\nNot scored (no benchmark metric for these tasks): {unscored}.")
    return "\n".join(lines)


def citations_section(ctx: ReportContext) -> str:
    cited = ctx.cited()
    if not cited:
        return ""
    lines = ["## Published results shown", ""]
    for e in cited:
        mark = "" if e.primary else " †"
        note = f" ({e.note})" if e.note else ""
        lines.append(f"- {e.model}{mark}, {group_label_for(e)}: {e.cited_in}{note}")
    if any(not e.primary for e in cited):
        lines.append("\n† quoted from another paper's table, not checked against the model's own paper.")
    return "\n".join(lines)


def group_label_for(entry: PublishedEntry) -> str:
    label = dataset_title(entry.source)
    if entry.subset:
        label += " " + subset_title(entry.source, entry.subset)
    return label


def plots_section(plot_paths: list[Path], out_dir: Path) -> str:
    if not plot_paths:
        return ""
    images = [f"![{p.stem}]({p.relative_to(out_dir).as_posix()})" for p in plot_paths]
    return "## Plots\n\n" + "\n\n".join(images)


def render_markdown(ctx: ReportContext, plot_paths: list[Path], out_dir: Path) -> str:
    sections = [
        header_section(ctx.report),
        captioning_section(ctx),
        vqa_section(ctx),
        grounding_section(ctx),
        plots_section(plot_paths, out_dir),
        citations_section(ctx),
    ]
    return "\n\n".join(s for s in sections if s) + "\n"


# -- plots --------------------------------------------------------------------------------------


def _slug(*parts: str | None) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", "_".join(p for p in parts if p))


def _plot_name(result: DatasetResult) -> str:
    return _slug(result.source, result.subset, None if result.split == "test" else result.split)


def _save_figure(figure, path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(figure)
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=100, bbox_inches="tight")


def iou_histogram_plot(result: DatasetResult, path: Path) -> None:
    from matplotlib.figure import Figure

    hist = result.details["iou_histogram"]
    edges, counts = hist["bin_edges"], hist["counts"]
    figure = Figure(figsize=(6, 3.5))
    axes = figure.add_subplot()
    from matplotlib.ticker import MaxNLocator

    axes.bar(edges[:-1], counts, width=0.1, align="edge", edgecolor="black")
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes.axvline(0.5, color="red", linestyle="--", label="IoU 0.5")
    axes.set_xlabel("IoU with the reference box (outputs without a box: 0)")
    axes.set_ylabel("expressions")
    axes.set_title(f"{group_label(result)}: IoU distribution")
    axes.legend()
    _save_figure(figure, path)


def vqa_accuracy_plot(result: DatasetResult, path: Path) -> None:
    from matplotlib.figure import Figure

    types = _vqa_types([result])
    values = [result.figures[t] for t in types]
    figure = Figure(figsize=(max(4, 1.2 * len(types) + 2), 3.5))
    axes = figure.add_subplot()
    axes.bar([type_title(t) for t in types], values, edgecolor="black")
    axes.axhline(result.figures["average_accuracy"], color="red", linestyle="--", label="average (AA)")
    axes.set_ylim(0, 100)
    axes.set_ylabel("accuracy (%)")
    axes.set_title(f"{group_label(result)}: accuracy per question type")
    axes.legend()
    _save_figure(figure, path)


def draw_plots(report: EvalReport, out_dir: Path) -> list[Path]:
    paths = []
    for r in report.results:
        if r.family == "grounding":
            path = out_dir / "plots" / f"iou_{_plot_name(r)}.png"
            iou_histogram_plot(r, path)
        elif r.family == "vqa" and r.count:
            path = out_dir / "plots" / f"vqa_{_plot_name(r)}.png"
            vqa_accuracy_plot(r, path)
        else:
            continue
        paths.append(path)
    return paths


def write_report(report: EvalReport, out_dir: Path, published: list[PublishedEntry], plots: bool = True) -> list[Path]:
    """Write report.md, report.json and the plots under ``out_dir``; returns the files written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    plot_paths = draw_plots(report, out_dir) if plots else []
    ctx = ReportContext(report, published)
    data = report.to_dict()
    data["published"] = [
        {"model": e.model, "task": e.task, "source": e.source, "subset": e.subset, "figures": e.figures,
         "cited_in": e.cited_in, "primary": e.primary}
        for e in ctx.cited()
    ]
    write_json_atomic(out_dir / "report.json", data)
    write_text_atomic(out_dir / "report.md", render_markdown(ctx, plot_paths, out_dir))
    return [out_dir / "report.md", out_dir / "report.json", *plot_paths]
