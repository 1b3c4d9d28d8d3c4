"""``skyeye train merge``: a checkpoint → a standalone merged model folder.

    merged/
      llm/                     the causal LM with LoRA folded into its weights (+ tokenizer)
      vision/                  a copy of the vision tower folder
      projector.safetensors
      skyeye_model.json        the model config, paths relative to this folder

``skyeye predict`` and ``skyeye chat`` load it like a checkpoint (without peft at inference time).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from skyeye_model.files import atomic_directory
from skyeye_model.model import MODEL_CONFIG_FILE, PROJECTOR_FILE, load_trained_model


def merge_checkpoint(checkpoint: Path, out: Path, overwrite: bool = False) -> Path:
    model = load_trained_model(Path(checkpoint))
    merged_llm = model.llm.merge_and_unload()
    with atomic_directory(Path(out), replace=overwrite) as folder:
        merged_llm.save_pretrained(folder / "llm")
        model.tokenizer.save_pretrained(folder / "llm")
        shutil.copytree(model.config.vision_path, folder / "vision")
        shutil.copy2(Path(checkpoint) / PROJECTOR_FILE, folder / PROJECTOR_FILE)
        description = model.config.model_dump(mode="json") | {"llm_path": "llm", "vision_path": "vision"}
        (folder / MODEL_CONFIG_FILE).write_text(json.dumps(description, indent=2) + "\n", encoding="utf-8")
    return Path(out)
