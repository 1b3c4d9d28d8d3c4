"""Splits.py's padding stubs found in JSON text: runs of ``{"id": N, "active": false}`` (ids of other
splits) that the streaming reader leaves undecoded (the ``skip_runs`` of
:func:`skyeye_data.json_stream.iter_json_chunks`), each checked byte for byte against the text
``json.dump`` writes for those ids (github.com/syvlo/RSVQA ``AutomaticDB/Splits.py``)."""

from __future__ import annotations

import re
from itertools import accumulate

# Splits.py writes its padding with json.dump: '{"id": N, "active": false}' joined by ", ", the ids
# of a gap consecutive (a record's id is its list index). A run of them is checked byte for byte
# against that text and left undecoded (RSVQA-HR: 6.8 million stubs, most of its elements).
_PAD_HINT = b', "active": false}, {"id": '  # an element ending like a stub, then one starting like one
_PAD_FIRST = re.compile(rb'\{"id": (0|[1-9][0-9]{0,17}), "active": false\}, ')


def padding_runs(text: bytes, pos: int) -> tuple[int, int, int] | None:
    """The next run of padding stubs at or after ``pos`` (``skip_runs`` of
    :func:`~skyeye_data.json_stream.iter_json_chunks`): ``(start, end, count)``, or None."""
    while (hint := text.find(_PAD_HINT, pos)) >= 0:
        start = hint + len(b', "active": false}, ')
        first = _PAD_FIRST.match(text, start)
        if first is None:
            pos = start
            continue
        first_id = int(first.group(1))
        # a lone stub (one format to tell) and a short run are decoded as usual
        if text.startswith(b'{"id": %d, "active": false}, ' % (first_id + 1), first.end()) \
                and text.startswith(_stub_text(first_id, MIN_RUN)[0], start):  # fmt: skip
            count, end = _consecutive_stubs(text, start, first_id)
            return start, end, count
        pos = start
    return None


MIN_RUN = 8


def _stub_text(first_id: int, count: int) -> tuple[bytes, list[str]]:
    """The text of ``count`` stubs from ``first_id`` on (each with its ", "), and their ids as text."""
    ids = list(map(str, range(first_id, first_id + count)))
    return ('{"id": ' + ', "active": false}, {"id": '.join(ids) + ', "active": false}, ').encode(), ids


_STUB_CHARS = len('{"id": , "active": false}, ')  # a stub's text but its id


def _consecutive_stubs(text: bytes, pos: int, first_id: int) -> tuple[int, int]:
    """How many stubs with ids ``first_id, first_id + 1, ...`` (each followed by ", ") start at
    ``pos``, and where they end: compared with their text in growing blocks, the last one bisected."""
    count, size = 0, 64
    while True:
        expected, ids = _stub_text(first_id + count, size)
        if text.startswith(expected, pos):
            count, pos, size = count + size, pos + len(expected), min(size * 2, 8192)
            continue
        ends = list(accumulate(len(i) + _STUB_CHARS for i in ids))
        matched, unmatched = 0, size  # the first `matched` parts are there, all `size` are not
        while unmatched - matched > 1:
            middle = (matched + unmatched) // 2
            if text.startswith(expected[: ends[middle - 1]], pos):
                matched = middle
            else:
                unmatched = middle
        return count + matched, pos + (ends[matched - 1] if matched else 0)
