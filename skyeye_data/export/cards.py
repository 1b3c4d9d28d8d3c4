"""The dataset card of ``skyeye export hf`` (``DIR/README.md``), built from the build card's parts.

Hub card fields (huggingface_hub ``DatasetCardData``; the Hub's card docs): ``license: other`` with
``license_name`` + ``license_link`` (the sources' licences differ, ``LICENSE.md`` lists them),
``size_categories``, ``task_categories``, ``configs`` (``data_files`` per split) and
``dataset_info.features`` (``images: list: image`` is what makes ``datasets`` and the viewer decode
the images).
"""

from __future__ import annotations

from typing import Any

import yaml

from skyeye_data.compile.card import counts_section, leak_guard_section, licence_header, license_file, sources_section

__all__ = ["hf_export_card", "license_file"]

USAGE = """## Use

```python
from datasets import load_dataset
ds = load_dataset("DIR", split="train")          # or the Hub repo id; streaming=True for the large VQA sets
ds[0]["images"][0]                                # a PIL image
ds[0]["messages"]                                 # [{"role": "user", "content": [{"type": "image"}, {"type": "text", ...}]}, ...]
```

TRL (`SFTTrainer` with a vision-language model) reads `messages` + `images` as they are:

```python
from trl import SFTConfig, SFTTrainer
trainer = SFTTrainer(model="Qwen/Qwen2.5-VL-3B-Instruct", train_dataset=ds, args=SFTConfig(output_dir="out"))
```
"""


def hf_export_card(manifest: dict[str, Any], n_samples: int, features_yaml: list[dict[str, Any]], doc: str) -> str:
    recipe = manifest["recipe"]
    header = {
        "pretty_name": f"SkyEye instruction data ({recipe['name']}, chat format)",
        **licence_header(n_samples),
        "configs": [{"config_name": "default", "default": True, "data_files": [{"split": "train", "path": "data/train-*"}]}],
        "dataset_info": {"config_name": "default", "features": features_yaml},
    }
    intro = (
        f"# SkyEye instruction data — recipe `{recipe['name']}`, chat format\n\n{recipe['body'].get('description') or ''}\n\n"
        f"Exported by `skyeye export hf` from a build of recipe fingerprint `{recipe['fingerprint']}`: {n_samples} samples.\n"
    )
    layout = f"## Layout\n\n```\n{doc.strip()}\n```\n"
    body = "\n".join([intro, counts_section(manifest), leak_guard_section(manifest), sources_section(manifest), USAGE, layout])
    return f"---\n{yaml.safe_dump(header, sort_keys=False, allow_unicode=True)}---\n\n{body}"
