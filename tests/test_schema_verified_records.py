"""``verified_records``: records read back from the toolkit's own records tables without a second
validation are the instances ``row_to_record`` (pydantic) builds, for every record kind every
converter writes -- so the compile stage may use it on staged and sha256-checked cached tables."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from skyeye_data import rawfs
from skyeye_data.convert import convert_records
from skyeye_data.schema import RECORD_SCHEMA, DetectionRecord, GroundingRecord, Provenance, record_to_row, row_to_record, verified_records
from skyeye_data.sources import all_sources
from skyeye_data.synth import synthesize_raw_root


def assert_same_instance(built, validated) -> None:
    """Equal, and equal in everything pydantic keeps on an instance (type, field order, fields set)."""
    assert type(built) is type(validated)
    assert built == validated
    assert list(built.__dict__) == list(validated.__dict__)
    assert built.model_fields_set == validated.model_fields_set
    assert built.__pydantic_extra__ == validated.__pydantic_extra__
    assert built.model_dump() == validated.model_dump()
    assert built.model_dump_json() == validated.model_dump_json()
    for name, value in validated.__dict__.items():
        assert type(built.__dict__[name]) is type(value), name
    assert_same_nested(built.provenance, validated.provenance)
    for ours, theirs in zip(getattr(built, "objects", []), getattr(validated, "objects", [])):
        assert_same_nested(ours, theirs)


def assert_same_nested(built, validated) -> None:
    assert type(built) is type(validated) and built == validated
    assert list(built.__dict__) == list(validated.__dict__)
    assert built.model_fields_set == validated.model_fields_set


@pytest.fixture(scope="module")
def converted_tables(tmp_path_factory) -> dict[str, Path]:
    """Every registered source, synthesized at the mini scale and converted by its own converter."""
    root = tmp_path_factory.mktemp("raw")
    synthesize_raw_root(root, "mini")
    tables = {}
    for name in all_sources():
        path = root.parent / f"{root.name}-{name}.parquet"
        with rawfs.scope(root):
            convert_records(name, root / name, path, on_rejected=lambda entry: None)
        tables[name] = path
    return tables


def test_every_source_reads_back_as_validation_builds_it(converted_tables):
    kinds = set()
    for name, path in converted_tables.items():
        for batch in pq.ParquetFile(path).iter_batches(batch_size=97):  # batches that end mid-source
            built = verified_records(batch)
            validated = [row_to_record(row) for row in batch.to_pylist()]
            assert len(built) == len(validated) == batch.num_rows, name
            for ours, theirs in zip(built, validated):
                assert_same_instance(ours, theirs)
                kinds.add(theirs.task)
    assert kinds == {"caption", "vqa", "grounding", "detection", "classification"}  # every kind was compared


def test_the_values_validation_coerces_come_back_as_validation_left_them(tmp_path):
    # ints in boxes are floats after validation, so in the table; optional fields null; flags and
    # a difficult/clipped object: the corners of the nested models
    base = dict(source="t", record_id="t:1", split="val", subset=None, image_path="a/1.png", image_key="t:1", width=50,
                height=40, provenance=Provenance(raw_file="x.json", raw_line=3), flags=["box_clipped"])  # fmt: skip
    records = [
        GroundingRecord(**base, expression="the ship", boxes=[[1, 2, 30, 40], [0.5, 0.5, 9.25, 9.75]]),
        DetectionRecord(**base, objects=[{"label": "ship", "box": [0, 0, 10, 10], "difficult": True},
                                         {"label": "car", "box": [1, 1, 50, 40], "clipped": True}]),  # fmt: skip
    ]
    path = tmp_path / "records.parquet"
    pq.write_table(pa.Table.from_pylist([record_to_row(r) for r in records], schema=RECORD_SCHEMA), path)
    batch = next(pq.ParquetFile(path).iter_batches())
    for built, original in zip(verified_records(batch), records):
        assert built == original  # (the fields set differ: the original was given only some of them)
        assert_same_instance(built, row_to_record(record_to_row(original)))
