"""`skyeye export llamafactory` through LLaMA-Factory 0.9.5's own `get_dataset` (in .venv-interop)."""

from __future__ import annotations

import json

from interop_helpers import run_python, tiny_processor


def test_get_dataset_tokenizes_every_row_with_the_written_dataset_info(export_of, interop_python, tmp_path):
    out = export_of("llamafactory")
    info = json.loads((out / "dataset_info.json").read_text())
    rows = json.loads((out / info["skyeye"]["file_name"]).read_text())
    assert rows and all(isinstance(r["images"], list) and r["images"] for r in rows)  # one type for the column
    assert any(len(r["images"]) == 4 for r in rows) and any(len(r["conversations"]) > 2 for r in rows)
    texts = [t["value"].replace("<image>", "") for r in rows for t in r["conversations"]]
    processor = tiny_processor(interop_python, texts, tmp_path / "processor")
    report = json.loads(run_python(interop_python, "run_llamafactory.py", out, processor, tmp_path / "work").strip().splitlines()[-1])
    assert report["rows"] == len(rows)  # LLaMA-Factory drops malformed rows with a warning: none was dropped
    assert report["media_dir"] == str(out)  # defaulted to dataset_dir: nothing else to set
    # get_dataset keeps the file's order: each row's images expanded by the qwen2_vl mm_plugin, one block per image
    assert [r["vision_starts"] for r in report["per_row"]] == [len(r["images"]) for r in rows]
    assert all(r["labelled"] > 0 for r in report["per_row"])
