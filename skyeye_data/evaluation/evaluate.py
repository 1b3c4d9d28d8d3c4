"""Score a predictions file: group the rows by benchmark and run each task's metric.

Rows are grouped by (task family, source, split, subset): one dataset, or one RSVQA-HR test set,
per group. Task families: ``caption`` → captioning, ``vqa`` → VQA, ``refer`` / ``grounding`` →
visual grounding. Rows of other tasks (identify, detection, conversation) have no benchmark
metric here; they are counted as "not scored" in the report rather than silently dropped.

Every figure is stored in percent (x100, CIDEr included), the scale of the papers' tables and of
``published.yaml``.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from skyeye_data.evaluation.captions import CaptionSet, score_caption_sets
from skyeye_data.evaluation.grounding import THRESHOLDS, GroundingItem, score_grounding
from skyeye_data.evaluation.predictions import Prediction, PredictionsError, box_problem, load_predictions
from skyeye_data.evaluation.vqa import score_vqa

TASK_FAMILIES: dict[str, str] = {
    "caption": "captioning",
    "vqa": "vqa",
    "refer": "grounding",
    "grounding": "grounding",
}
FAMILY_ORDER: tuple[str, ...] = ("captioning", "vqa", "grounding")
IOU_BINS: tuple[float, ...] = tuple(i / 10 for i in range(11))


@dataclass(frozen=True)
class EvalOptions:
    count_buckets: bool = False  # bin RSVQA-LR count answers (see vqa.py)
    exclude_types: tuple[str, ...] = ()  # VQA question types left out of every figure
    use_java: bool = True  # False: caption fallback without Java (METEOR unavailable)


@dataclass
class DatasetResult:
    """The figures of one benchmark group, JSON-ready."""

    family: str
    source: str
    split: str
    subset: str | None
    count: int
    figures: dict[str, float]  # metric name → percent
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.family,
            "source": self.source,
            "split": self.split,
            "subset": self.subset,
            "count": self.count,
            "figures": self.figures,
            **self.details,
        }


@dataclass
class EvalReport:
    predictions_path: str
    rows: int
    options: EvalOptions
    results: list[DatasetResult]
    not_scored: dict[str, int]

    def by_family(self, family: str) -> list[DatasetResult]:
        return [r for r in self.results if r.family == family]

    def to_dict(self) -> dict[str, Any]:
        return {
            "predictions": self.predictions_path,
            "rows": self.rows,
            "units": "percent (x100, CIDEr included), as in the papers' tables",
            "options": {
                "count_buckets": self.options.count_buckets,
                "exclude_question_types": list(self.options.exclude_types),
                "java": self.options.use_java,
            },
            "not_scored": self.not_scored,
            "results": {family: [r.to_dict() for r in self.by_family(family)] for family in FAMILY_ORDER},
        }


GroupKey = tuple[str, str, str, str | None]


def group_rows(predictions: list[Prediction]) -> tuple[dict[GroupKey, list[Prediction]], dict[str, int]]:
    """Rows by (family, source, split, subset), in a stable order; and the count of unscored rows by task."""
    groups: dict[GroupKey, list[Prediction]] = defaultdict(list)
    not_scored: Counter[str] = Counter()
    for p in predictions:
        family = TASK_FAMILIES.get(p.task)
        if family is None:
            not_scored[p.task] += 1
            continue
        groups[(family, p.source, p.split, p.subset)].append(p)
    ordered = dict(sorted(groups.items(), key=lambda kv: (FAMILY_ORDER.index(kv[0][0]), kv[0][1], kv[0][2], kv[0][3] or "")))
    return ordered, dict(not_scored)


def check_rows(groups: dict[GroupKey, list[Prediction]]) -> None:
    """Problems that make a row unscorable for its task, all listed in one error."""
    problems = []
    for (family, _, _, _), rows in groups.items():
        for p in rows:
            if family == "grounding":
                problem = box_problem(p)
            elif not p.references:
                problem = f"{p.source}/{p.id}: {p.task} row without any reference in 'references'"
            else:
                problem = None
            if problem:
                problems.append(problem)
    if problems:
        shown = "\n".join(f"  - {p}" for p in problems[:10])
        more = f"\n  ... and {len(problems) - 10} more" if len(problems) > 10 else ""
        raise PredictionsError(f"{len(problems)} row(s) cannot be scored:\n{shown}{more}")


def _percent(value: float) -> float:
    return round(100.0 * value, 2)


def caption_results(groups: dict[GroupKey, list[Prediction]], options: EvalOptions) -> list[DatasetResult]:
    keys = [k for k in groups if k[0] == "captioning"]
    sets = [
        CaptionSet(
            references={p.id: list(p.references) for p in groups[k]},
            predictions={p.id: p.prediction for p in groups[k]},
        )
        for k in keys
    ]
    results = []
    for key, scores in zip(keys, score_caption_sets(sets, use_java=options.use_java)):
        _, source, split, subset = key
        results.append(
            DatasetResult(
                "captioning", source, split, subset, scores.count,
                figures={name: _percent(value) for name, value in scores.metrics.items()},
                details={"tokenizer": scores.tokenizer, "unavailable": scores.unavailable},
            )
        )
    return results


def vqa_result(key: GroupKey, rows: list[Prediction], options: EvalOptions) -> DatasetResult:
    _, source, split, subset = key
    scores = score_vqa(
        ((p.prediction, p.references, p.question_type) for p in rows),
        count_buckets=options.count_buckets and source == "rsvqa_lr",
        exclude_types=options.exclude_types,
    )
    figures = {qtype: _percent(t.accuracy) for qtype, t in scores.per_type.items()}
    if scores.count:  # every question excluded: no average to report, rather than a false 0
        figures["average_accuracy"] = _percent(scores.average_accuracy)
        figures["overall_accuracy"] = _percent(scores.overall_accuracy)
    details = {
        "per_type": {q: {"total": t.total, "correct": t.correct} for q, t in scores.per_type.items()},
        "excluded_question_types": scores.excluded_types,
        "count_buckets": scores.count_buckets,
    }
    return DatasetResult("vqa", source, split, subset, scores.count, figures, details)


def iou_histogram(ious: list[float]) -> list[int]:
    """Counts of IoU in [0, .1), [.1, .2), ... [.9, 1.0] (the last bin closed)."""
    counts = [0] * (len(IOU_BINS) - 1)
    for iou in ious:
        counts[min(int(iou * 10), len(counts) - 1)] += 1
    return counts


def grounding_result(key: GroupKey, rows: list[Prediction]) -> DatasetResult:
    _, source, split, subset = key
    scores = score_grounding(
        [GroundingItem(p.id, p.prediction, p.ref_boxes[0], p.width, p.height) for p in rows]
    )
    figures = {f"Acc@{t}": _percent(scores.accuracy_at(t)) for t in THRESHOLDS}
    figures["mean_IoU"] = _percent(scores.mean_iou)
    figures["cum_IoU"] = _percent(scores.cumulative_iou)
    details = {
        "unparseable": scores.unparseable,
        "iou_histogram": {"bin_edges": list(IOU_BINS), "counts": iou_histogram(scores.ious)},
    }
    return DatasetResult("grounding", source, split, subset, scores.count, figures, details)


def evaluate(predictions: list[Prediction], options: EvalOptions, predictions_path: str = "") -> EvalReport:
    groups, not_scored = group_rows(predictions)
    if not groups:
        tasks = ", ".join(sorted(not_scored))
        raise PredictionsError(f"no row has a scorable task (caption, vqa, refer, grounding); found: {tasks}")
    check_rows(groups)
    results = caption_results(groups, options)
    for key, rows in groups.items():
        if key[0] == "vqa":
            results.append(vqa_result(key, rows, options))
        elif key[0] == "grounding":
            results.append(grounding_result(key, rows))
    return EvalReport(predictions_path, len(predictions), options, results, not_scored)


def evaluate_file(path: Path, options: EvalOptions) -> EvalReport:
    return evaluate(load_predictions(path), options, str(path))
