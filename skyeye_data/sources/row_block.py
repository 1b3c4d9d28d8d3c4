"""A block of VQA record rows held as columns: what a converter yields instead of one record object
per row where a source has a million rows (RSVQA-HR), and what ``skyeye convert`` writes as is.

A :class:`VqaRowBlock` holds the rows of one source, split and raw file in file order. Its
:meth:`~VqaRowBlock.to_table` is the Arrow table of exactly the rows :func:`skyeye_data.schema.record_to_row`
gives for the same records, in :data:`~skyeye_data.schema.RECORD_SCHEMA` (the fields of other record
kinds null), so the Parquet file is byte for byte the one written from records
(``tests/test_sources_rsvqa_rows.py`` compares the two on every RSVQA case).

Rows come in two ways: :attr:`~VqaRowBlock.items` for a row whose every check is known to pass (the
values :func:`skyeye_data.sources._plain_record.plain_vqa_record` would store), and
:meth:`~VqaRowBlock.add_record` for a record built the usual way (validated; it may carry flags).
"""

from __future__ import annotations

from itertools import chain, groupby, repeat
from typing import Any

import pyarrow as pa

from skyeye_data.schema import RECORD_SCHEMA, VQARecord, record_to_row

# fields that are the same for every row of a block (checked on add_record)
_CONSTANT = ("source", "split", "subset", "media", "task")
_PROVENANCE_TYPE = RECORD_SCHEMA.field("provenance").type
_FLAGS_TYPE = RECORD_SCHEMA.field("flags").type
_MEDIA = ("image_path", "image_key", "image_sha256", "width", "height")


class VqaRowBlock:
    """Rows of VQA records of one source, split and raw file: one tuple per row,
    ``(record_id, media, question, answer, question_type, raw_index)`` with ``media`` the tuple
    ``(image_path, image_key, image_sha256, width, height)`` (shared by the rows of one image)."""

    __slots__ = ("constants", "raw_file", "items", "flags")

    def __init__(self, source: str, split: str, subset: str | None, raw_file: str):
        self.constants = {"source": source, "split": split, "subset": subset, "media": "image", "task": "vqa"}
        self.raw_file = raw_file  # as provenance stores it (already safe_text)
        self.items: list[tuple] = []  # append a row known to pass every check straight here
        self.flags: dict[int, list[str]] = {}  # row -> its flags, for the few rows that have any

    @property
    def rows(self) -> int:
        return len(self.items)

    @property
    def split(self) -> str:
        return self.constants["split"]

    def add_record(self, record: VQARecord) -> None:
        """One validated record (of this block's source, split and raw file)."""
        row = record_to_row(record)
        provenance = row["provenance"]
        if any(row[name] != value for name, value in self.constants.items()) or provenance["raw_file"] != self.raw_file \
                or provenance["raw_line"] is not None:  # fmt: skip
            raise ValueError(f"record {record.record_id} does not belong to this block ({self.constants}, {self.raw_file})")
        if row["flags"]:
            self.flags[len(self.items)] = list(row["flags"])
        media = tuple(row[name] for name in _MEDIA)
        self.items.append((row["record_id"], media, row["question"], row["answer"], row["question_type"], provenance["raw_index"]))

    def eval_notes(self) -> list[Any]:
        """One stand-in per run of rows on the same image (``split``, ``source``, ``image_key``,
        ``image_sha256``): what the build's leak guard notes of val/test records (it keeps each
        image's splits once, in the order first seen, so one note per run is the same)."""
        notes: list[Any] = []
        if self.constants["split"] == "train":
            return notes
        last = None
        for item in self.items:
            key, sha = item[1][1], item[1][2]
            if (key, sha) != last:
                notes.append(_Note(self.constants["source"], self.constants["split"], key, sha))
                last = (key, sha)
        return notes

    def to_table(self) -> pa.Table:
        n = len(self.items)
        arrays: dict[str, pa.Array] = {}
        for name, value in self.constants.items():
            arrays[name] = _repeated(value, n, RECORD_SCHEMA.field(name).type)
        record_ids, media, questions, answers, types, indexes = (list(column) for column in zip(*self.items)) if n else ([],) * 6
        images, rows = _runs(media)
        for name, values in zip(_MEDIA, zip(*images) if n else ((),) * 5):
            arrays[name] = pa.array(values, RECORD_SCHEMA.field(name).type).take(rows)
        for name, values in (("record_id", record_ids), ("question", questions), ("answer", answers), ("question_type", types)):
            arrays[name] = pa.array(values, RECORD_SCHEMA.field(name).type)
        arrays["provenance"] = pa.StructArray.from_arrays(
            [_repeated(self.raw_file, n, pa.string()), pa.nulls(n, pa.int64()), pa.array(indexes, pa.int64())],
            fields=list(_PROVENANCE_TYPE),
        )
        arrays["flags"] = self._flags_array()
        columns = [arrays[f.name] if f.name in arrays else pa.nulls(n, f.type) for f in RECORD_SCHEMA]
        return pa.Table.from_arrays(columns, schema=RECORD_SCHEMA)

    def _flags_array(self) -> pa.Array:
        """Each row's flags (most rows: none), built from offsets, not from a million empty lists."""
        offsets, values, end = [0], [], 0
        for row in sorted(self.flags):
            offsets.extend([end] * (row + 1 - len(offsets) + 1))
            values.extend(self.flags[row])
            end += len(self.flags[row])
            offsets[-1] = end
        offsets.extend([end] * (len(self.items) + 1 - len(offsets)))
        return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), pa.array(values, pa.string()), type=_FLAGS_TYPE)


def _runs(media: list[tuple]) -> tuple[list[tuple], pa.Array]:
    """The media tuples of a block once per run (the rows of one image share one tuple) and each row's
    run: the media columns are built from the ~100x fewer runs and taken per row (the same values;
    converting them per row was most of ``to_table``). A run is equal tuples in a row (groupby), and
    the row numbers are made in C from the run lengths."""
    images, lengths = [], []
    for value, rows in groupby(media):
        images.append(value)
        lengths.append(sum(1 for _ in rows))
    return images, pa.array(list(chain.from_iterable(map(repeat, range(len(images)), lengths))), pa.int32())


def _repeated(value: Any, n: int, type_: pa.DataType) -> pa.Array:
    return pa.nulls(n, type_) if value is None else pa.repeat(pa.scalar(value, type_), n)


class _Note:
    __slots__ = ("source", "split", "image_key", "image_sha256")

    def __init__(self, source: str, split: str, image_key: str, image_sha256: str | None):
        self.source, self.split, self.image_key, self.image_sha256 = source, split, image_key, image_sha256
