"""The record schema: one declaration, an Arrow schema derived from it, validation with clear reasons."""

from __future__ import annotations

import subprocess
import sys

import pyarrow as pa
import pytest
from pydantic import ValidationError

from skyeye_data.schema import (
    RECORD_SCHEMA,
    CaptionRecord,
    DetectionRecord,
    GroundingRecord,
    Provenance,
    VQARecord,
    record_to_row,
    row_to_record,
)
from skyeye_data.sources.base import Rejected, build_record

BASE = dict(
    source="test",
    record_id="test:1",
    split="train",
    image_path="images/1.tif",
    image_key="ucm:1",
    width=256,
    height=256,
    provenance=Provenance(raw_file="dataset.json", raw_index=0),
)


def test_arrow_schema_is_derived_from_all_record_kinds():
    for name in ("captions", "question", "answer", "question_type", "expression", "boxes", "objects", "label"):
        assert name in RECORD_SCHEMA.names
    assert RECORD_SCHEMA.field("boxes").type == pa.list_(pa.list_(pa.float64()))
    assert RECORD_SCHEMA.field("objects").type.value_type.field("difficult").type == pa.bool_()
    assert RECORD_SCHEMA.field("provenance").type.field("raw_line").type == pa.int64()


@pytest.mark.parametrize(
    "record",
    [
        CaptionRecord(**BASE, captions=["a plane.", "two planes."]),
        VQARecord(**BASE, question="Is it urban?", answer="yes", question_type="rural_urban"),
        GroundingRecord(**BASE, expression="the bridge", boxes=[[1, 2, 30, 40]], label="bridge"),
        DetectionRecord(**BASE, objects=[{"label": "ship", "box": [0, 0, 10, 10], "difficult": True}]),
    ],
)
def test_row_round_trip_through_arrow(record):
    table = pa.Table.from_pylist([record_to_row(record)], schema=RECORD_SCHEMA)
    assert row_to_record(table.to_pylist()[0]) == record


def test_empty_caption_is_rejected_with_a_reason():
    rejected = build_record(CaptionRecord, raw_file="dataset.json", raw_index=3, **{
        k: v for k, v in BASE.items() if k != "provenance"}, captions=["  "])
    assert isinstance(rejected, Rejected)
    assert rejected.raw_index == 3
    assert "caption is empty" in rejected.reason


def test_box_outside_the_image_is_invalid():
    with pytest.raises(ValidationError, match="outside the 256x256 image"):
        GroundingRecord(**BASE, expression="x", boxes=[[0, 0, 300, 10]])


def test_box_without_area_is_invalid():
    with pytest.raises(ValidationError, match="no area"):
        GroundingRecord(**BASE, expression="x", boxes=[[5, 5, 5, 10]])


def test_unknown_split_is_invalid():
    with pytest.raises(ValidationError):
        CaptionRecord(**{**BASE, "split": "dev"}, captions=["a"])


def test_data_package_never_imports_torch():
    code = (
        "import sys, importlib, pkgutil, skyeye_data\n"
        "for m in pkgutil.walk_packages(skyeye_data.__path__, 'skyeye_data.'):\n"
        "    importlib.import_module(m.name)\n"
        "from skyeye_data.cli import app\n"
        "assert 'torch' not in sys.modules, 'torch imported by skyeye_data'\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
