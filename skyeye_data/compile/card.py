"""The dataset card ``OUT/README.md``: a Hugging Face hub YAML header, counts, sources and licences."""

from __future__ import annotations

from typing import Any

import yaml

from skyeye_data.sources import all_sources


def hub_header(manifest: dict[str, Any], files: list[str]) -> dict[str, Any]:
    """The YAML front matter: one config per table so ``load_dataset(repo, "samples")`` works."""
    configs: list[dict[str, Any]] = []
    splits = sorted({f.split("/")[1].split("-")[0] for f in files if f.startswith("samples/")})
    if splits:
        configs.append({"config_name": "samples", "default": True,
                        "data_files": [{"split": s, "path": f"samples/{s}-*.parquet"} for s in splits]})  # fmt: skip
    if any(f.startswith("images/") for f in files):
        configs.append({"config_name": "images", "data_files": [{"split": "train", "path": "images/*.parquet"}]})
    eval_sets = sorted({(source, split) for source, splits_ in manifest["counts"]["eval"].items() for split in splits_})
    if eval_sets:
        configs.append({"config_name": "eval",
                        "data_files": [{"split": f"{src}_{spl}", "path": f"eval/{src}-{spl}-*.parquet"} for src, spl in eval_sets]})  # fmt: skip
    return {
        "pretty_name": f"SkyEye instruction data ({manifest['recipe']['name']})",
        "license": "other",
        "language": ["en"],
        "task_categories": ["image-to-text", "visual-question-answering", "object-detection"],
        "tags": ["remote-sensing", "instruction-tuning", "visual-grounding", "skyeye"],
        "configs": configs,
    }


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _expected(manifest: dict[str, Any], source: str, task: str) -> str:
    spec = manifest["recipe"]["body"]["sources"].get(source) or manifest["recipe"]["body"].get("mixes", {}).get(source) or {}
    expected = (spec.get("expected") or {}).get(task)
    return "" if expected is None else str(expected)


def counts_section(manifest: dict[str, Any]) -> str:
    rows = [
        [source, task, by_split.get("train", 0), _expected(manifest, source, task)]
        for source, tasks in manifest["counts"]["samples"].items()
        for task, by_split in tasks.items()
    ]
    total = manifest["counts"]["samples_total"]
    return f"## Samples\n\n{_table(['source', 'task', 'train samples', 'expected'], rows)}\n\nTotal: {total} samples, {manifest['counts']['images']} images.\n"


def records_section(manifest: dict[str, Any]) -> str:
    rows = []
    for name, s in manifest["sources"].items():
        rows.append([name, s["status"], s["records_in"], s["compiled"], s["eval_records"], sum(s["held_out"].values()),
                     sum(s["not_selected"].values()), s["quarantined"], "yes" if s["balanced"] else "**NO**"])  # fmt: skip
    header = ["source", "status", "records in", "compiled", "eval", "held out", "not selected", "quarantined", "balanced"]
    return (
        "## Records\n\nEvery record is accounted for: records in = compiled + eval + held out + not selected + "
        f"quarantined (reasons in `quarantine.jsonl`).\n\n{_table(header, rows)}\n"
    )


def eval_section(manifest: dict[str, Any]) -> str:
    rows = [[source, split, n] for source, splits in manifest["counts"]["eval"].items() for split, n in splits.items()]
    if not rows:
        return ""
    return "## Evaluation sets\n\nVal/test records of the benchmark sources, in `eval/<source>-<split>-NNNNN.parquet`, with `references`.\n\n" + _table(["source", "split", "items"], rows) + "\n"


def sources_section(manifest: dict[str, Any]) -> str:
    registry = all_sources()
    parts = ["## Sources, licences and citations\n\nThis data is derived from the datasets below; their licences apply.\n"]
    for name, s in manifest["sources"].items():
        if s["status"] != "built" or name not in registry:
            continue
        src = registry[name]
        homepage = f" — {src.homepage}" if getattr(src, "homepage", "") else ""
        parts.append(f"### {src.title} (`{name}`)\n\nLicence: {src.license}{homepage}\n\n```bibtex\n{src.citation.strip()}\n```\n")
    return "\n".join(parts)


USAGE = """## Layout and use

- `samples/<split>-NNNNN-of-NNNNN.parquet`: `id`, `source`, `task`, `split`, `image_ids` (video frames in
  order), `conversation` (`[{role, content}]`, user turns start with `[caption]`, `[vqa]`, `[refer]`,
  `[identify]` or `[detection]`), `review_status`, `provenance` (JSON).
- `images/images-NNNNN.parquet`: `image_id` (sha256 of `bytes`), `bytes`, `format`, `width`, `height`.
- `eval/`: evaluation items with references; `manifest.json`: counts and file checksums;
  `quarantine.jsonl`: every record left out, and why.

```python
from datasets import load_dataset
samples = load_dataset("parquet", data_files="samples/*.parquet", split="train")
images = load_dataset("parquet", data_files="images/*.parquet", split="train")
```
"""


def dataset_card(manifest: dict[str, Any], files: list[str]) -> str:
    header = yaml.safe_dump(hub_header(manifest, files), sort_keys=False, allow_unicode=True)
    recipe = manifest["recipe"]
    description = recipe["body"].get("description") or ""
    intro = (
        f"# SkyEye instruction data — recipe `{recipe['name']}`\n\n{description}\n\n"
        f"Built by the SkyEye data toolkit (`skyeye build`); recipe fingerprint `{recipe['fingerprint']}`.\n"
    )
    sections = [intro, counts_section(manifest), records_section(manifest), eval_section(manifest), sources_section(manifest), USAGE]
    return f"---\n{header}---\n\n" + "\n".join(s for s in sections if s)
