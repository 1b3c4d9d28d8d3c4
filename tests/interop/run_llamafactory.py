"""Run LLaMA-Factory's own data pipeline on ``skyeye export llamafactory`` (in .venv-interop).

``python run_llamafactory.py EXPORT_DIR PROCESSOR_DIR WORK_DIR``: parses the arguments with
``llamafactory.hparams.get_train_args`` (as ``llamafactory-cli train`` does), loads the tokenizer and
processor with ``llamafactory.model.load_tokenizer``, and calls ``llamafactory.data.get_dataset``
(stage ``sft``, template ``qwen2_vl``) with the export's own ``dataset_info.json`` (``dataset_dir`` =
the export; ``media_dir`` left to its default, which is ``dataset_dir``). Prints one JSON line: the
rows tokenized and, per row, the ``<|vision_start|>`` count (one per image the mm_plugin expanded).
"""

from __future__ import annotations

import json
import sys


def main(export_dir: str, processor_dir: str, work_dir: str) -> None:
    from llamafactory.data import get_dataset, get_template_and_fix_tokenizer
    from llamafactory.hparams import get_train_args
    from llamafactory.model import load_tokenizer

    model_args, data_args, training_args, _finetuning, _generating = get_train_args(
        {
            "model_name_or_path": processor_dir, "stage": "sft", "do_train": True, "finetuning_type": "lora",
            "dataset": "skyeye", "dataset_dir": export_dir, "template": "qwen2_vl", "cutoff_len": 8192,
            "output_dir": work_dir, "overwrite_cache": True, "report_to": "none", "image_max_pixels": 112 * 112,
            "image_min_pixels": 28 * 28, "cache_dir": f"{work_dir}/cache",  # a fresh datasets cache, never a stale one
        }
    )  # fmt: skip
    modules = load_tokenizer(model_args)
    tokenizer = modules["tokenizer"]
    template = get_template_and_fix_tokenizer(tokenizer, data_args)
    dataset = get_dataset(template, model_args, data_args, training_args, stage="sft", **modules)["train_dataset"]
    vision_start = tokenizer.convert_tokens_to_ids("<|vision_start|>")
    rows = [
        {"vision_starts": sum(1 for t in row["input_ids"] if t == vision_start), "labelled": sum(1 for t in row["labels"] if t != -100)}
        for row in dataset
    ]
    print(json.dumps({"rows": len(rows), "per_row": rows, "media_dir": data_args.media_dir}))


if __name__ == "__main__":
    main(*sys.argv[1:4])
