"""A block of VQA record rows held as columns: what a converter yields instead of one record object
per row where a source has a million rows (RSVQA-HR), and what ``skyeye convert`` writes as is.

A :class:`VqaRowBlock` holds the rows of one source, split and raw file in file order. Its
:meth:`~VqaRowBlock.to_table` is the Arrow table of exactly the rows :func:`skyeye_data.schema.record_to_row`
gives for the same records, in :data:`~skyeye_data.schema.RECORD_SCHEMA` (the fields of other record
kinds null), so the Parquet file is byte for byte the one written from records
(``tests/test_sources_rsvqa_rows.py`` compares the two on every RSVQA case).

Rows come in three ways: :meth:`~VqaRowBlock.add_row` for a row whose every check is known to pass
(the values :func:`skyeye_data.sources._plain_record.plain_vqa_record` would store),
:meth:`~VqaRowBlock.extend` for a run of such rows given column by column, and
:meth:`~VqaRowBlock.add_record` for a record built the usual way (validated; it may carry flags).
"""

from __future__ import annotations

from array import array
from itertools import groupby, repeat
from operator import is_not as _IS_NOT_NONE
from typing import Any, Iterable

import numpy as np
import pyarrow as pa

from skyeye_data.schema import RECORD_SCHEMA, VQARecord, record_to_row

# fields that are the same for every row of a block (checked on add_record)
_CONSTANT = ("source", "split", "subset", "media", "task")
_PROVENANCE_TYPE = RECORD_SCHEMA.field("provenance").type
_FLAGS_TYPE = RECORD_SCHEMA.field("flags").type
_MEDIA = ("image_path", "image_key", "image_sha256", "width", "height")


class VqaRowBlock:
    """Rows of VQA records of one source, split and raw file, held as six columns (one list each):
    ``record_ids``, ``media`` (the tuple ``(image_path, image_key, image_sha256, width, height)``,
    one object shared by the rows of one image), ``questions``, ``answers``, ``types`` and
    ``indexes`` (raw index). A reader that knows a whole run of rows passes every check extends
    the columns at once (:meth:`extend`): no tuple per row, and :meth:`to_table` takes them as they are."""

    __slots__ = ("constants", "raw_file", "record_ids", "media", "questions", "answers", "types", "indexes", "flags")

    def __init__(self, source: str, split: str, subset: str | None, raw_file: str):
        self.constants = {"source": source, "split": split, "subset": subset, "media": "image", "task": "vqa"}
        self.raw_file = raw_file  # as provenance stores it (already safe_text)
        self.record_ids: list[str] = []
        self.media: list[tuple] = []
        self.questions: list[str] = []
        self.answers: list[str] = []
        self.types: list[str | None] = []
        self.indexes: list[int] = []
        self.flags: dict[int, list[str]] = {}  # row -> its flags, for the few rows that have any

    @property
    def rows(self) -> int:
        return len(self.record_ids)

    @property
    def split(self) -> str:
        return self.constants["split"]

    def add_row(self, record_id: str, media: tuple, question: str, answer: str, question_type: str | None, raw_index: int) -> None:
        """One row known to pass every check (the values ``plain_vqa_record`` would store)."""
        self.record_ids.append(record_id)
        self.media.append(media)
        self.questions.append(question)
        self.answers.append(answer)
        self.types.append(question_type)
        self.indexes.append(raw_index)

    def extend(self, record_ids: Iterable[str], media: Iterable[tuple], questions: Iterable[str], answers: Iterable[str],
               types: Iterable[str | None], indexes: Iterable[int]) -> None:  # fmt: skip
        """Rows known to pass every check, column by column (the iterables are of one length)."""
        self.record_ids.extend(record_ids)
        self.media.extend(media)
        self.questions.extend(questions)
        self.answers.extend(answers)
        self.types.extend(types)
        self.indexes.extend(indexes)
        if not len(self.record_ids) == len(self.media) == len(self.questions) == len(self.answers) == len(self.types) == len(self.indexes):
            raise ValueError("VqaRowBlock.extend: columns of different lengths")

    def add_record(self, record: VQARecord) -> None:
        """One validated record (of this block's source, split and raw file)."""
        row = record_to_row(record)
        provenance = row["provenance"]
        if any(row[name] != value for name, value in self.constants.items()) or provenance["raw_file"] != self.raw_file \
                or provenance["raw_line"] is not None:  # fmt: skip
            raise ValueError(f"record {record.record_id} does not belong to this block ({self.constants}, {self.raw_file})")
        if row["flags"]:
            self.flags[self.rows] = list(row["flags"])
        media = tuple(row[name] for name in _MEDIA)
        self.add_row(row["record_id"], media, row["question"], row["answer"], row["question_type"], provenance["raw_index"])

    def eval_notes(self) -> list[Any]:
        """One stand-in per run of rows on the same image (``split``, ``source``, ``image_key``,
        ``image_sha256``): what the build's leak guard notes of val/test records (it keeps each
        image's splits once, in the order first seen, so one note per run is the same)."""
        notes: list[Any] = []
        if self.constants["split"] == "train":
            return notes
        last = None
        for media in self.media:
            key, sha = media[1], media[2]
            if (key, sha) != last:
                notes.append(_Note(self.constants["source"], self.constants["split"], key, sha))
                last = (key, sha)
        return notes

    def to_table(self) -> pa.Table:
        n = self.rows
        arrays: dict[str, pa.Array] = {}
        for name, value in self.constants.items():
            arrays[name] = _repeated(value, n, RECORD_SCHEMA.field(name).type)
        record_ids, questions, answers, types, indexes = self.record_ids, self.questions, self.answers, self.types, self.indexes
        images, rows = _runs(self.media)
        for name, values in zip(_MEDIA, zip(*images) if n else ((),) * 5):
            arrays[name] = _array(list(values), RECORD_SCHEMA.field(name).type).take(rows)
        for name, values in (("record_id", record_ids), ("question", questions), ("answer", answers), ("question_type", types)):
            arrays[name] = _array(values, RECORD_SCHEMA.field(name).type)
        arrays["provenance"] = pa.StructArray.from_arrays(
            [_repeated(self.raw_file, n, pa.string()), pa.nulls(n, pa.int64()), _array(indexes, pa.int64())],
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
        offsets.extend([end] * (self.rows + 1 - len(offsets)))
        return pa.ListArray.from_arrays(_array(offsets, pa.int32()), _array(values, pa.string()), type=_FLAGS_TYPE)


def _runs(media: list[tuple]) -> tuple[list[tuple], pa.Array]:
    """The media tuples of a block once per run (the rows of one image share one tuple) and each row's
    run: the media columns are built from the ~100x fewer runs and taken per row (the same values;
    converting them per row was most of ``to_table``). A run is equal tuples in a row (groupby), and
    the row numbers are made by numpy from the run lengths (no Python int per row)."""
    images, lengths = [], []
    for value, rows in groupby(media):
        images.append(value)
        lengths.append(len(list(rows)))
    runs = np.repeat(np.arange(len(images), dtype=np.int32), np.array(lengths, dtype=np.int64))
    return images, pa.Array.from_buffers(pa.int32(), len(runs), [None, pa.py_buffer(runs)])


# Arrays built from buffers, not converted from Python values by ``pa.array``: pyarrow's conversion
# of Python values imports pandas the first time (pyarrow/array.pxi ``_is_array_like`` asks its
# pandas shim), 0.6 s of every ``skyeye convert`` of a row-block source. What the buffers cannot
# hold exactly (text that is not ASCII, a None in a number column, an integer out of range) goes
# through ``pa.array``, with the same result (tests/test_sources_rsvqa_rows.py compares the bytes).
_INT_CODES = {pa.int64(): "q", pa.int32(): "i"}


def _array(values: list, type_: pa.DataType) -> pa.Array:
    """``pa.array(values, type_)`` for a string, int64 or int32 column."""
    try:
        if type_ == pa.string():
            return _strings(values)
        if type_ in _INT_CODES:
            return pa.Array.from_buffers(type_, len(values), [None, pa.py_buffer(array(_INT_CODES[type_], values))])
    except (TypeError, OverflowError, _NotAscii):
        pass
    return pa.array(values, type_)


class _NotAscii(Exception):
    pass


def _strings(values: list) -> pa.Array:
    """A string array of ``values`` (str or None), ASCII text: one join, the offsets a cumulative sum
    of the lengths (numpy: a loop of Python ints cost as much as the join)."""
    n = len(values)
    present = values if None not in values else ["" if value is None else value for value in values]
    data = "".join(present)  # a TypeError for anything but str
    if not data.isascii() or len(data) >= 1 << 31:  # a character is a byte; int32 offsets
        raise _NotAscii
    offsets = np.zeros(n + 1, np.int32)
    np.cumsum(np.fromiter(map(len, present), np.int32, n), out=offsets[1:])
    if present is values:
        return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data.encode("ascii")))
    valid = np.fromiter(map(_IS_NOT_NONE, values, repeat(None)), np.bool_, n)
    bitmap = np.packbits(valid, bitorder="little")  # Arrow's validity bitmap: least significant bit first
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data.encode("ascii")), pa.py_buffer(bitmap),
                                       n - int(valid.sum()))  # fmt: skip


def _repeated(value: Any, n: int, type_: pa.DataType) -> pa.Array:
    if value is None:
        return pa.nulls(n, type_)
    if type_ == pa.string() and type(value) is str and value.isascii() and (n + 1) * len(value) < 1 << 31:
        width = len(value)
        offsets = np.arange(0, (n + 1) * width, width, dtype=np.int32) if width else np.zeros(n + 1, np.int32)
        return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(value.encode("ascii") * n))
    return pa.repeat(pa.scalar(value, type_), n)


class _Note:
    __slots__ = ("source", "split", "image_key", "image_sha256")

    def __init__(self, source: str, split: str, image_key: str, image_sha256: str | None):
        self.source, self.split, self.image_key, self.image_sha256 = source, split, image_key, image_sha256
