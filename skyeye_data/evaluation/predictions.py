"""Read and validate a predictions Parquet (the output of ``skyeye predict``).

The columns are fixed by docs/ARCHITECTURE.md ("Predictions"): the eval-shard columns ``id``,
``source``, ``task``, ``split``, ``subset``, ``question_type``, ``references``, ``ref_boxes``,
``width``, ``height`` plus ``prediction`` (the generated text). Every problem found is reported in
one :class:`PredictionsError` that names the file, the column and what was expected, so a user
fixes a malformed file in one go instead of meeting a traceback deep inside a metric.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pyarrow as pa
import pyarrow.parquet as pq


class PredictionsError(ValueError):
    """The predictions file cannot be scored; the message says why."""


@dataclass(frozen=True)
class Prediction:
    """One generated answer together with the references it is scored against."""

    id: str
    source: str
    task: str
    split: str
    subset: str | None
    question_type: str | None
    references: list[str]
    ref_boxes: list[list[float]]
    width: int  # 0 when unknown (only grounding needs it)
    height: int
    prediction: str


def _is_string(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t)


def _is_nullable_string(t: pa.DataType) -> bool:
    # a column that is null in every row is stored with Arrow's null type
    return _is_string(t) or pa.types.is_null(t)


def _is_list(t: pa.DataType) -> bool:
    return pa.types.is_list(t) or pa.types.is_large_list(t)


def _is_string_list(t: pa.DataType) -> bool:
    return _is_list(t) and (_is_string(t.value_type) or pa.types.is_null(t.value_type))


def _is_number(t: pa.DataType) -> bool:
    return pa.types.is_integer(t) or pa.types.is_floating(t)


def _is_box_list(t: pa.DataType) -> bool:
    # list<list<double>>; an all-empty column may come out as list<null> or list<list<null>>
    if not _is_list(t):
        return False
    inner = t.value_type
    if pa.types.is_null(inner):
        return True
    return _is_list(inner) and (_is_number(inner.value_type) or pa.types.is_null(inner.value_type))


@dataclass(frozen=True)
class ColumnRule:
    name: str
    expected: str
    accepts: Callable[[pa.DataType], bool]
    nullable: bool


COLUMN_RULES: tuple[ColumnRule, ...] = (
    ColumnRule("id", "string", _is_string, nullable=False),
    ColumnRule("source", "string", _is_string, nullable=False),
    ColumnRule("task", "string", _is_string, nullable=False),
    ColumnRule("split", "string", _is_string, nullable=False),
    ColumnRule("subset", "string or null", _is_nullable_string, nullable=True),
    ColumnRule("question_type", "string or null", _is_nullable_string, nullable=True),
    # the task decides what must be present: references for captions and VQA, a box and the
    # image size for grounding (checked per row in evaluate.check_rows)
    ColumnRule("references", "list<string>", _is_string_list, nullable=True),
    ColumnRule("ref_boxes", "list<list<double>>", _is_box_list, nullable=True),
    ColumnRule("width", "integer", pa.types.is_integer, nullable=True),
    ColumnRule("height", "integer", pa.types.is_integer, nullable=True),
    # a null prediction (the model produced nothing) is scored as an empty answer
    ColumnRule("prediction", "string", _is_nullable_string, nullable=True),
)
REQUIRED_COLUMNS: tuple[str, ...] = tuple(rule.name for rule in COLUMN_RULES)


def read_table(path: Path) -> pa.Table:
    """The Parquet table at ``path``, or a PredictionsError saying why it cannot be read."""
    if not path.exists():
        raise PredictionsError(f"{path}: no such file")
    if path.is_dir():
        raise PredictionsError(f"{path} is a folder; give the predictions Parquet file written by `skyeye predict`")
    try:
        return pq.read_table(path)
    except (pa.ArrowException, OSError) as error:
        raise PredictionsError(f"{path} is not a readable Parquet file ({error})") from None


def schema_problems(schema: pa.Schema) -> list[str]:
    """Missing columns and columns of the wrong type, one line each."""
    missing = [rule.name for rule in COLUMN_RULES if rule.name not in schema.names]
    problems = [f"missing column(s): {', '.join(missing)}"] if missing else []
    for rule in COLUMN_RULES:
        if rule.name in schema.names and not rule.accepts(schema.field(rule.name).type):
            problems.append(f"column '{rule.name}' has type {schema.field(rule.name).type}, expected {rule.expected}")
    return problems


def null_problems(table: pa.Table) -> list[str]:
    problems = []
    for rule in COLUMN_RULES:
        nulls = table.column(rule.name).null_count
        if nulls and not rule.nullable:
            problems.append(f"column '{rule.name}' is null in {nulls} row(s)")
    return problems


# the columns a Prediction takes as they are; the others are cleaned of nulls below
_VERBATIM = ("id", "source", "task", "split", "subset", "question_type")


def _to_prediction(row: dict) -> Prediction:
    return Prediction(
        **{column: row[column] for column in _VERBATIM},
        references=[r for r in (row["references"] or []) if r is not None],
        ref_boxes=[[float(v) for v in box if v is not None] for box in (row["ref_boxes"] or []) if box is not None],
        width=int(row["width"] or 0),
        height=int(row["height"] or 0),
        prediction=row["prediction"] or "",
    )


def duplicate_problems(predictions: list[Prediction]) -> list[str]:
    seen: set[tuple[str, str]] = set()
    duplicates: list[str] = []
    for p in predictions:
        key = (p.source, p.id)
        if key in seen:
            duplicates.append(f"{p.source}/{p.id}")
        seen.add(key)
    if not duplicates:
        return []
    return [f"{len(duplicates)} duplicate (source, id) pair(s), e.g. {', '.join(duplicates[:3])}"]


def box_problem(p: Prediction) -> str | None:
    """Why a grounding row cannot be scored, or None."""
    if p.width <= 0 or p.height <= 0:
        return f"{p.source}/{p.id}: width/height must be positive, got {p.width}x{p.height}"
    if not p.ref_boxes:
        return f"{p.source}/{p.id}: grounding row without a reference box in 'ref_boxes'"
    box = p.ref_boxes[0]
    if len(box) != 4 or not all(math.isfinite(v) for v in box):
        return f"{p.source}/{p.id}: reference box {box} is not four finite numbers [x1, y1, x2, y2]"
    return None


def load_predictions(path: Path) -> list[Prediction]:
    """Every row of the predictions file, validated; raises PredictionsError listing all problems."""
    table = read_table(path)
    problems = schema_problems(table.schema)
    if problems:
        raise PredictionsError(_describe(path, problems))
    if table.num_rows == 0:
        raise PredictionsError(f"{path} has no rows: nothing to score")
    problems = null_problems(table)
    if problems:
        raise PredictionsError(_describe(path, problems))
    predictions = [_to_prediction(row) for row in table.select(list(REQUIRED_COLUMNS)).to_pylist()]
    problems = duplicate_problems(predictions)
    if problems:
        raise PredictionsError(_describe(path, problems))
    return predictions


def _describe(path: Path, problems: list[str]) -> str:
    lines = "\n".join(f"  - {problem}" for problem in problems)
    return (
        f"{path} is not a valid predictions file:\n{lines}\n"
        f"expected columns: {', '.join(REQUIRED_COLUMNS)} (see docs/ARCHITECTURE.md, 'Predictions')"
    )
