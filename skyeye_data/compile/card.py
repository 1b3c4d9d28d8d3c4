"""The dataset card ``OUT/README.md``: a Hugging Face hub YAML header, counts, sources and licences."""

from __future__ import annotations

from typing import Any

import yaml

from skyeye_data.sources import all_sources


# The Hub's size_categories buckets (huggingface_hub.DatasetCardData docs), upper bounds exclusive
SIZE_CATEGORIES = [(1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
                   (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M"), (1_000_000_000, "100M<n<1B")]  # fmt: skip
TASK_CATEGORIES = ["image-text-to-text", "visual-question-answering", "image-to-text", "object-detection"]
# Several source licences apply: the Hub's form for that is `license: other` + a name and a link
LICENSE_NAME = "skyeye-source-licenses"
LICENSE_FILE = "LICENSE.md"
IMAGES_FEATURES = [
    {"name": "image_id", "dtype": "string"},
    {"name": "bytes", "dtype": "image"},  # plain binary in Parquet; `datasets` decodes it to PIL with this
    {"name": "format", "dtype": "string"},
    {"name": "width", "dtype": "int64"},
    {"name": "height", "dtype": "int64"},
]


def size_category(n: int) -> str:
    return next((label for bound, label in SIZE_CATEGORIES if n < bound), "n>1B")


def licence_header(n_samples: int) -> dict[str, Any]:
    """The card fields every SkyEye card shares: licence (with name and link), size, tasks, language."""
    return {
        "license": "other",
        "license_name": LICENSE_NAME,
        "license_link": LICENSE_FILE,
        "language": ["en"],
        "size_categories": [size_category(n_samples)],
        "task_categories": TASK_CATEGORIES,
        "tags": ["remote-sensing", "instruction-tuning", "visual-grounding", "skyeye"],
    }


def hub_header(manifest: dict[str, Any], files: list[str]) -> dict[str, Any]:
    """The YAML front matter: one config per table so ``load_dataset(repo, "samples")`` works."""
    configs: list[dict[str, Any]] = []
    dataset_info: list[dict[str, Any]] = []
    splits = sorted({f.split("/")[1].split("-")[0] for f in files if f.startswith("samples/")})
    if splits:
        configs.append({"config_name": "samples", "default": True,
                        "data_files": [{"split": s, "path": f"samples/{s}-*.parquet"} for s in splits]})  # fmt: skip
    if any(f.startswith("images/") for f in files):
        configs.append({"config_name": "images", "data_files": [{"split": "train", "path": "images/*.parquet"}]})
        dataset_info.append({"config_name": "images", "features": IMAGES_FEATURES})
    eval_sets = sorted({(source, split) for source, splits_ in manifest["counts"]["eval"].items() for split in splits_})
    if eval_sets:
        configs.append({"config_name": "eval",
                        "data_files": [{"split": f"{src}_{spl}", "path": f"eval/{src}-{spl}-*.parquet"} for src, spl in eval_sets]})  # fmt: skip
    header = {"pretty_name": f"SkyEye instruction data ({manifest['recipe']['name']})", **licence_header(manifest["counts"]["samples_total"])}
    header["configs"] = configs
    if dataset_info:
        header["dataset_info"] = dataset_info
    return header


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


def leak_guard_section(manifest: dict[str, Any]) -> str:
    """The recipe's leak-guard scope, what it kept out, and the eval images it let into training (per source pair)."""
    counts = manifest["counts"]
    overlap = counts.get("eval_overlap") or {}
    rows = [[source, where, n] for source, splits in overlap.items() for where, n in splits.items()]
    kept_out = counts.get("leak_guard_excluded") or {}
    text = f"## Leak guard\n\nScope `{manifest.get('leak_guard', 'all')}`; train records kept out: {sum(kept_out.values())}.\n"
    if not rows:
        return text + "No training image is also in an eval split.\n"
    return text + "Training images that an eval split also holds (let through by the scope):\n\n" + _table(["train source", "eval split", "images"], rows) + "\n"


def origins(manifest: dict[str, Any]) -> dict[str, list[str]]:
    """Each built source or mix of the manifest -> the converters its records come from."""
    mixes = manifest["recipe"]["body"].get("mixes") or {}
    found = {name: [name] for name, s in manifest["sources"].items() if s["status"] == "built"}
    for name, mix in (manifest.get("mixes") or {}).items():
        if mix.get("status") == "built":
            found[name] = list((mixes.get(name) or {}).get("sources") or [])
    return found


def licence_rows(manifest: dict[str, Any]) -> list[list[Any]]:
    """| entry | from | licence | terms | train samples | for every built source and mix."""
    registry = all_sources()
    samples = manifest["counts"]["samples"]
    rows = []
    for name, from_sources in origins(manifest).items():
        known = [registry[s] for s in from_sources if s in registry]
        rows.append([
            f"`{name}`", ", ".join(src.title for src in known) or "?", "; ".join(src.license for src in known) or "?",
            " ".join(src.license_url or src.homepage for src in known), sum(t.get("train", 0) for t in samples.get(name, {}).values()),
        ])  # fmt: skip
    return rows


def citations(manifest: dict[str, Any]) -> str:
    registry = all_sources()
    used = sorted({s for from_sources in origins(manifest).values() for s in from_sources if s in registry})
    return "\n".join(f"### {registry[s].title} (`{s}`)\n\n```bibtex\n{registry[s].citation.strip()}\n```\n" for s in used)


def sources_section(manifest: dict[str, Any]) -> str:
    header = ["entry", "dataset", "licence", "terms", "train samples"]
    return (
        "## Sources, licences and citations\n\nThis data is derived from the datasets below; each one's licence "
        f"applies to the samples made from it (also in `{LICENSE_FILE}`).\n\n{_table(header, licence_rows(manifest))}\n\n"
        + citations(manifest)
    )


def license_file(manifest: dict[str, Any]) -> str:
    """``LICENSE.md`` (the card's ``license_link``): the licences and citations of the sources used."""
    return f"# Licences of the SkyEye data (recipe `{manifest['recipe']['name']}`)\n\n" + sources_section(manifest).split("\n", 2)[2]


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
    sections = [intro, counts_section(manifest), records_section(manifest), eval_section(manifest), leak_guard_section(manifest), sources_section(manifest), USAGE]
    return f"---\n{header}---\n\n" + "\n".join(s for s in sections if s)
