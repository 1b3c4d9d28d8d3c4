"""The normalized record schema, declared once.

Every converter under :mod:`skyeye_data.sources` yields records of one of the models below.
``Record`` is a tagged union over ``task``; the Parquet schema of record tables
(:func:`record_arrow_schema`) is derived from these models, so a field added here appears in
every table with the right Arrow type and nowhere else needs to change.

Boxes are pixel ``[x1, y1, x2, y2]`` in the image's own coordinate frame (origin top-left).
"""

from __future__ import annotations

import types
import typing
from typing import Annotated, Any, Literal, Union

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator, model_validator

Split = Literal["train", "val", "test"]
Task = Literal["caption", "vqa", "grounding", "detection", "classification"]
Media = Literal["image", "video"]
PixelBox = Annotated[list[float], Field(min_length=4, max_length=4)]

SPLITS: tuple[str, ...] = typing.get_args(Split)
TASKS: tuple[str, ...] = typing.get_args(Task)


class Provenance(BaseModel):
    """Where a record came from: the raw file (relative to the source folder) and its line or index."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    raw_file: str
    raw_line: int | None = None  # 1-based line number in a text file
    raw_index: int | None = None  # 0-based index in a JSON list / XML object order


class _RecordBase(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: str
    record_id: str = Field(description="stable id: the same raw record always gets the same id")
    split: Split
    subset: str | None = Field(
        default=None, description="a source's sub-collection, e.g. RSIVQA 'UCM' or RSVQA-HR 'test_phili'"
    )
    media: Media = "image"
    image_path: str = Field(description="relative to the raw root of the source (video: the video path)")
    image_key: str = Field(description="canonical image identity '<family>:<stem>', e.g. 'dior:00001'")
    image_sha256: str | None = Field(default=None, description="sha256 of the image (or video) file bytes")
    width: int = Field(gt=0)
    height: int = Field(gt=0)
    provenance: Provenance
    flags: list[str] = Field(default_factory=list, description="non-fatal issues, e.g. 'box_clipped'")

    @field_validator("image_path")
    @classmethod
    def _posix_relative(cls, value: str) -> str:
        if value.startswith("/") or "\\" in value:
            raise ValueError(f"image_path must be a relative POSIX path, got {value!r}")
        return value


def _non_blank(value: str, what: str) -> str:
    if not value or not value.strip():
        raise ValueError(f"{what} is empty")
    return value


def _check_box(box: list[float]) -> list[float]:
    x1, y1, x2, y2 = box
    if not (x2 > x1 and y2 > y1):
        raise ValueError(f"box {box} has no area (need x2 > x1 and y2 > y1)")
    return box


def _check_in_bounds(record: "_RecordBase", boxes: list[list[float]]) -> None:
    for box in boxes:
        x1, y1, x2, y2 = box
        if x1 < 0 or y1 < 0 or x2 > record.width or y2 > record.height:
            raise ValueError(f"box {box} lies outside the {record.width}x{record.height} image")


class CaptionRecord(_RecordBase):
    task: Literal["caption"] = "caption"
    captions: list[str] = Field(min_length=1)

    @field_validator("captions")
    @classmethod
    def _captions_non_blank(cls, value: list[str]) -> list[str]:
        for caption in value:
            _non_blank(caption, "caption")
        return value


class VQARecord(_RecordBase):
    task: Literal["vqa"] = "vqa"
    question: str
    answer: str
    question_type: str | None = None

    @field_validator("question", "answer")
    @classmethod
    def _text_non_blank(cls, value: str, info) -> str:
        return _non_blank(value, info.field_name)


class GroundingRecord(_RecordBase):
    task: Literal["grounding"] = "grounding"
    expression: str
    boxes: list[PixelBox] = Field(min_length=1)
    label: str | None = Field(default=None, description="object class of the referred object, when known")

    @field_validator("expression")
    @classmethod
    def _expression_non_blank(cls, value: str) -> str:
        return _non_blank(value, "expression")

    @field_validator("boxes")
    @classmethod
    def _boxes_have_area(cls, value: list[list[float]]) -> list[list[float]]:
        return [_check_box(box) for box in value]

    @model_validator(mode="after")
    def _boxes_inside_image(self) -> "GroundingRecord":
        _check_in_bounds(self, self.boxes)
        return self


class DetectedObject(BaseModel):
    model_config = ConfigDict(extra="forbid")

    label: str
    box: PixelBox
    difficult: bool = False
    clipped: bool = Field(default=False, description="the raw box reached outside the image and was clipped")

    @field_validator("box")
    @classmethod
    def _box_has_area(cls, value: list[float]) -> list[float]:
        return _check_box(value)


class DetectionRecord(_RecordBase):
    task: Literal["detection"] = "detection"
    objects: list[DetectedObject] = Field(min_length=1)

    @model_validator(mode="after")
    def _boxes_inside_image(self) -> "DetectionRecord":
        _check_in_bounds(self, [obj.box for obj in self.objects])
        return self


class ClassificationRecord(_RecordBase):
    """An image or video with one class label (ERA events); the compiler turns it into questions."""

    task: Literal["classification"] = "classification"
    label: str

    @field_validator("label")
    @classmethod
    def _label_non_blank(cls, value: str) -> str:
        return _non_blank(value, "label")


RECORD_MODELS: tuple[type[_RecordBase], ...] = (
    CaptionRecord,
    VQARecord,
    GroundingRecord,
    DetectionRecord,
    ClassificationRecord,
)
Record = Annotated[
    Union[CaptionRecord, VQARecord, GroundingRecord, DetectionRecord, ClassificationRecord],
    Field(discriminator="task"),
]
RECORD_ADAPTER: TypeAdapter[Record] = TypeAdapter(Record)


# ---------------------------------------------------------------------------------------------
# Arrow schema derived from the models
# ---------------------------------------------------------------------------------------------

_SCALARS: dict[Any, pa.DataType] = {str: pa.string(), int: pa.int64(), float: pa.float64(), bool: pa.bool_()}


def arrow_type(annotation: Any) -> pa.DataType:
    """The Arrow type of a pydantic field annotation (str, int, float, bool, Literal, list, model, Optional)."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is Annotated:
        return arrow_type(args[0])
    if origin in (Union, types.UnionType):
        non_null = [a for a in args if a is not type(None)]
        if len(non_null) != 1:
            raise TypeError(f"cannot map union {annotation} to one Arrow type")
        return arrow_type(non_null[0])
    if origin is Literal:
        return _SCALARS[type(args[0])]
    if origin is list:
        return pa.list_(arrow_type(args[0]))
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return pa.struct([pa.field(name, arrow_type(f.annotation)) for name, f in annotation.model_fields.items()])
    if annotation in _SCALARS:
        return _SCALARS[annotation]
    raise TypeError(f"no Arrow type for {annotation!r}")


def record_arrow_schema() -> pa.Schema:
    """One flat Arrow schema for all record kinds: the union of their fields, in declaration order."""
    fields: dict[str, pa.Field] = {}
    for model in RECORD_MODELS:
        for name, info in model.model_fields.items():
            field = pa.field(name, arrow_type(info.annotation))
            if name in fields and fields[name].type != field.type:
                raise TypeError(f"field {name!r} has two Arrow types: {fields[name].type} and {field.type}")
            fields.setdefault(name, field)
    return pa.schema(list(fields.values()))


RECORD_SCHEMA: pa.Schema = record_arrow_schema()


_EMPTY_ROW = dict.fromkeys(RECORD_SCHEMA.names)


def record_to_row(record: _RecordBase) -> dict[str, Any]:
    """A record as a row of :data:`RECORD_SCHEMA` (fields of other record kinds are null).

    A VQA record's fields are scalars but ``provenance`` (a flat model: its field dict) and ``flags``
    (a list of str), so its field dict is the dump without pydantic's serializer: RSVQA-HR writes a
    million of them. ``tests/test_sources_vqa_rsvqa.py`` checks it equals :func:`dumped_row`."""
    if type(record) is not VQARecord:
        return dumped_row(record)
    row = _EMPTY_ROW.copy()
    row.update(record.__dict__)
    row["provenance"] = dict(record.provenance.__dict__)
    row["flags"] = list(record.flags)
    return row


def dumped_row(record: _RecordBase) -> dict[str, Any]:
    """:func:`record_to_row` through pydantic's serializer, for every record kind."""
    row = _EMPTY_ROW.copy()
    row.update(record.model_dump())
    return row


# task -> the field names of its model, computed once: row_to_record runs for every record read
_FIELDS_BY_TASK: dict[str, frozenset[str]] = {m.model_fields["task"].default: frozenset(m.model_fields) for m in RECORD_MODELS}


def row_to_record(row: dict[str, Any]) -> Record:
    """The inverse of :func:`record_to_row`: nulls of fields foreign to the row's task are dropped."""
    fields = _FIELDS_BY_TASK[row["task"]]
    data = {k: v for k, v in row.items() if k in fields}
    return RECORD_ADAPTER.validate_python(data)


# ---------------------------------------------------------------------------------------------
# Records read back from a table the toolkit wrote itself
# ---------------------------------------------------------------------------------------------

_MODEL_BY_TASK: dict[str, type[_RecordBase]] = {m.model_fields["task"].default: m for m in RECORD_MODELS}
_ORDER_BY_TASK: dict[str, tuple[str, ...]] = {task: tuple(m.model_fields) for task, m in _MODEL_BY_TASK.items()}


def unvalidated(model: type[BaseModel], data: dict[str, Any], fields_set: set[str] | None = None) -> Any:
    """``model`` holding ``data`` (every field, in declaration order) as validation would have left
    it -- no extras, no private attributes, ``fields_set`` given (default: all of ``data``) --
    without running a validator: only for values every check is known to pass."""
    instance = object.__new__(model)
    object.__setattr__(instance, "__dict__", data)
    object.__setattr__(instance, "__pydantic_fields_set__", set(data) if fields_set is None else fields_set)
    object.__setattr__(instance, "__pydantic_extra__", None)
    object.__setattr__(instance, "__pydantic_private__", None)
    return instance


def verified_records(batch: pa.RecordBatch) -> list[Record]:
    """The records of a batch of a records table that is known to hold only validated records, as
    :func:`row_to_record` gives them, without validating them again.

    Sound only for a table written by :func:`skyeye_data.convert.convert_records` from records its
    converter validated, and read back unchanged: the build's staged records tables (written in this
    build) and the records cache's tables (checked against the sha256 noted when they were stored,
    ``compile/cache.py``). Every validator of the models above only checks (none rewrites a value),
    and Arrow gives back the Python types validation produced (int64 → int, float64 → float, structs
    → dicts), so the instance is the one validation builds; ``tests/test_schema_verified_records.py``
    compares them field by field for every record kind. Anything else (a table from outside, a user's
    file) goes through :func:`row_to_record`. Reading RSVQA-HR's 1.07 M records back through pydantic
    was ~20% of compiling it."""
    columns = {name: batch.column(i).to_pylist() for i, name in enumerate(batch.schema.names)}
    records = []
    for i, task in enumerate(columns["task"]):
        data = {name: columns[name][i] for name in _ORDER_BY_TASK[task]}
        data["provenance"] = unvalidated(Provenance, data["provenance"])
        if task == "detection":
            data["objects"] = [unvalidated(DetectedObject, obj) for obj in data["objects"]]
        records.append(unvalidated(_MODEL_BY_TASK[task], data))
    return records
