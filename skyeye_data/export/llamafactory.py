"""``skyeye export llamafactory``: LLaMA-Factory's sharegpt format and its ``dataset_info.json``.

Read from LLaMA-Factory 0.9.5 (PyPI ``llamafactory``; ``data/README.md``, ``llamafactory/data/parser.py``,
``converter.py``, ``mm_plugin.py``, ``hparams/data_args.py``):

* ``DIR/skyeye_sharegpt.json``: a JSON list of ``{"conversations": [{"from": "human"|"gpt", "value"}],
  "images": [path, ...], "id", "source", "task"}``. ``images`` is a list in EVERY row (one type per
  column: ``datasets`` rejects a file whose ``images`` is sometimes a string, sometimes a list), and the
  first human turn starts with one ``<image>`` tag per image (``mm_plugin`` checks the counts match).
  A video sample is its frames as an image list (``<image>`` per frame): LLaMA-Factory 0.9.5's
  ``videos`` path calls ``video_processor(images=None, ...)``, which the transformers 5.x video
  processors its own install resolves reject, so video goes through the image path, always.
* ``DIR/dataset_info.json``: ``{"skyeye": {"file_name": "skyeye_sharegpt.json", "formatting":
  "sharegpt", "columns": {"messages": "conversations", "images": "images"}}}`` (``parser.py``
  ``DatasetAttr``; role tags are sharegpt's defaults ``from``/``value``/``human``/``gpt``).
* ``DIR/images/<image_id>.<ext>``: image paths are relative to DIR. ``converter.py`` joins them to
  ``media_dir``, which is a run argument (``DataArguments.media_dir``), not a dataset_info.json key,
  and defaults to ``dataset_dir``: with ``dataset_dir: DIR`` nothing else is needed; when the entry
  is merged into another ``dataset_info.json``, set ``media_dir: DIR``.
  ``DIR/skyeye_sft.yaml`` is a ``llamafactory-cli train`` config with both set.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import yaml

from skyeye_data.export.common import ExportSummary, export_json_lists, image_paths, write_format_note
from skyeye_data.export.llava import llava_conversations
from skyeye_data.io import write_json_atomic, write_text_atomic

DATA_FILE = "skyeye_sharegpt.json"
DATASET_NAME = "skyeye"
IMAGE_TAG = "<image>"


def dataset_info() -> dict[str, Any]:
    return {DATASET_NAME: {"file_name": DATA_FILE, "formatting": "sharegpt", "columns": {"messages": "conversations", "images": "images"}}}


def sharegpt_entry(sample: dict[str, Any], paths: list[str]) -> dict[str, Any]:
    conversations = llava_conversations(sample, len(paths), tag=IMAGE_TAG)
    return {"conversations": conversations, "images": paths, "id": sample["id"], "source": sample["source"], "task": sample["task"]}


def train_config(out: Path, template: str = "qwen2_vl", model: str = "Qwen/Qwen2-VL-2B-Instruct") -> dict[str, Any]:
    """A ``llamafactory-cli train`` YAML (keys of LLaMA-Factory's examples/train_lora/qwen2vl_lora_sft.yaml)."""
    return {
        "model_name_or_path": model, "stage": "sft", "do_train": True, "finetuning_type": "lora", "lora_target": "all",
        "dataset": DATASET_NAME, "dataset_dir": str(out.resolve()), "media_dir": str(out.resolve()), "template": template,
        "cutoff_len": 2048, "preprocessing_num_workers": 4, "output_dir": "saves/skyeye-lora", "per_device_train_batch_size": 1,
        "gradient_accumulation_steps": 8, "learning_rate": 1.0e-4, "num_train_epochs": 1.0, "bf16": True,
    }  # fmt: skip


def export_llamafactory(build_dir: Path, out: Path, on_item: Callable[[], None] | None = None) -> ExportSummary:
    out = Path(out)

    def route(sample: dict[str, Any], formats: dict[str, str]) -> tuple[str, dict[str, Any]]:
        return DATA_FILE, sharegpt_entry(sample, image_paths(sample, formats))

    manifest, summary = export_json_lists(build_dir, out, route, out / "images", on_item)
    write_json_atomic(out / "dataset_info.json", dataset_info())
    write_text_atomic(out / "skyeye_sft.yaml", yaml.safe_dump(train_config(out), sort_keys=False))
    summary.files += ["dataset_info.json", "skyeye_sft.yaml"]
    write_format_note(out, "llamafactory", manifest, __doc__)
    return summary
