"""The streaming JSON reader (skyeye_data.json_stream): its C fast path agrees with the Python cursor."""

from __future__ import annotations

import json
import random

import pytest

from skyeye_data import json_cursor, json_stream
from skyeye_data.json_stream import JsonStreamError, iter_json_list

pytestmark = pytest.mark.skipif(json_stream._ijson is None, reason="ijson's yajl2_c backend is not installed")


def read_all(items) -> list:
    out = []
    try:
        out.extend(items)
    except JsonStreamError as error:
        out.append(("error", error.reason, error.line, error.excerpt))
    return out


def assert_paths_agree(path, key="q") -> bool:
    fast = read_all(iter_json_list(path, key))
    python = read_all(json_cursor.python_json_list(path, key, json_stream.CHUNK_BYTES))
    assert repr(fast) == repr(python), path.read_bytes()[:120]
    # tiny chunks put a boundary everywhere: the same values and reasons (the excerpt is the chunk's)
    tiny = read_all(json_cursor.python_json_list(path, key, 7))
    assert repr([x[:3] if x[0] == "error" else x for x in tiny]) == repr([x[:3] if x[0] == "error" else x for x in fast])
    return json_stream._c_path_safe(path, key)


CASES = {
    "plain": (b'{"q": [1, 2, {"a": "x", "b": [1.5, -0.0, 1e3]}]}', True),
    "stub": (b'{"q": [{"id": 0, "active": false}, {"id": 1, "img_id": 0}]}\n', True),
    "truncated": (b'{"q": [1, 2', True),  # C path, then the Python reader names line and column
    "bad utf-8": (b'{"q": [{"a": "x\xff"}, 3]}', True),  # yajl refuses it, Python keeps the byte visible
    "NaN": (b'{"q": [NaN, 1]}', True),
    "huge integer": (b'{"q": [12345678901234567890123, 2]}', True),
    "trailing data": (b'{"q": [1]} x', True),
    "empty list, spaces": (b'  {"q" : [ ]} ', True),
    "repeated key": (b'{"q": [1], "q": [2]}', False),  # yajl would yield both lists
    "lone surrogate": (b'{"q": ["\\ud800", 2]}', False),  # yajl would turn it into '?'
    "not a list": (b'{"q": {"a": 1}}', False),
    "key not first": (b'{"x": 1, "q": [1]}', False),
    "byte-order mark": (b'\xef\xbb\xbf{"q": [1]}', False),
    "vertical tab": (b'{"q": [{"id":\x0b6}]}', False),  # yajl would take it for whitespace
}


@pytest.mark.parametrize("name", CASES)
def test_c_path_and_python_cursor_agree(tmp_path, name):
    data, c_path = CASES[name]
    path = tmp_path / "f.json"
    path.write_bytes(data)
    assert assert_paths_agree(path) is c_path


def test_agree_on_random_cuts_and_flipped_bytes(tmp_path):
    rng = random.Random(0)
    base = json.dumps({"q": [{"id": k, "t": "é" * (k % 3), "v": k / 7, "e": -k * 1e-5} for k in range(150)]}).encode()
    for i in range(150):
        data = bytearray(base[: rng.randrange(len(base) + 1)] if rng.random() < 0.5 else base)
        if data and rng.random() < 0.6:
            data[rng.randrange(len(data))] = rng.randrange(256)
        path = tmp_path / f"{i}.json"
        path.write_bytes(bytes(data))
        assert_paths_agree(path)


def test_a_number_cut_by_a_chunk_boundary_is_read_whole(tmp_path):
    # "-0" | ".5" and "1" | "e3" across 7-byte chunks once read as -0 and 1, then failed on "."/"e"
    path = tmp_path / "n.json"
    path.write_text('{"q": [-0.5, 10e3, 2.5E-2]}')
    for size in range(1, 12):
        assert [v for _, v in json_cursor.python_json_list(path, "q", size)] == [-0.5, 10e3, 2.5e-2]
