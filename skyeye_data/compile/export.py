"""Exports of a build to the layouts other trainers read.

``llava`` (LLaVA / GeoChat): ``DIR/skyeye_llava.json``, a JSON list of
``{"id", "image", "conversations": [{"from": "human"|"gpt", "value"}]}`` with ``"<image>\\n"``
before the first human turn, and ``DIR/images/<image_id>.<ext>`` (``image`` is relative to DIR).
A video sample has a list of frame paths as ``image`` and one ``<image>\\n`` per frame (the
LLaVA-OneVision multi-image convention); single-image LLaVA loaders need ``--no-video``.

``minigptv2``: MiniGPT-v2's dataset classes (Vision-CAIR/MiniGPT-4,
``minigpt4/datasets/datasets/*.py``) each read a JSON list from an ``ann_path`` and images from a
``vis_root``, and prepend ``<Img><ImageHere></Img>`` to the instruction themselves. This export
writes ``DIR/images/`` (the ``vis_root``; flat, so ``ann["image"].split('/')[-1]`` also works) and one
annotation file per task:

* ``caption.json``: ``{image, caption, image_id, instruction_input}`` -- the fields
  ``COCOCapDataset`` (``coco_caption.py``) reads (``image``, ``caption``, ``image_id``);
* ``vqa.json``: ``{image, question, question_id, answer: [..], instruction_input}`` -- the fields
  ``COCOVQADataset`` (``coco_vqa_datasets.py``) reads (``answer`` is a list there);
* ``refer.json``, ``identify.json``, ``detection.json``, ...: ``{id, image, instruction_input,
  answer}`` -- exactly what every MiniGPT-v2 dataset's ``__getitem__`` returns (their RefCOCO
  readers use the REFER pickle format, which has no equivalent for remote-sensing sources);
* ``conversation.json``: ``{id, image, conversations}`` in the LLaVA form that
  ``MultiTaskConversationDataset`` (``multitask_conversation.py``) reads.

``instruction_input`` carries the task identifier (``[refer] ...``) but not the image tag.
Only training samples are exported (eval items stay in ``OUT/eval``). Files appear under their
final names only when complete.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import pyarrow.parquet as pq

from skyeye_data.compile.build import read_manifest
from skyeye_data.io import atomic_path, temporary_name, write_text_atomic

EXTENSIONS = {"JPEG": "jpg", "PNG": "png", "TIFF": "tif", "BMP": "bmp", "GIF": "gif", "WEBP": "webp"}
BATCH_ROWS = 1024


@dataclass
class ExportSummary:
    out: Path
    samples: int = 0
    images: int = 0
    skipped: int = 0
    files: list[str] = field(default_factory=list)


class JsonListWriter:
    """A JSON list written item by item to a temporary file, renamed when closed."""

    def __init__(self, final: Path):
        self.final = final
        final.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = temporary_name(final)
        self._file = open(self.tmp, "w", encoding="utf-8")
        self._file.write("[")
        self.items = 0

    def write(self, item: dict[str, Any]) -> None:
        self._file.write(("\n" if self.items == 0 else ",\n") + json.dumps(item, ensure_ascii=False))
        self.items += 1

    def close(self) -> None:
        self._file.write("\n]\n")
        self._file.close()
        self.tmp.replace(self.final)

    def abort(self) -> None:
        self._file.close()
        self.tmp.unlink(missing_ok=True)


def iter_samples(build_dir: Path) -> Iterator[dict[str, Any]]:
    for path in sorted((build_dir / "samples").glob("*.parquet")):
        for batch in pq.ParquetFile(path).iter_batches(batch_size=BATCH_ROWS):
            yield from batch.to_pylist()


def image_formats(build_dir: Path) -> dict[str, str]:
    """image_id -> file extension (small strings only; the bytes are read later, batch by batch)."""
    formats: dict[str, str] = {}
    for path in sorted((build_dir / "images").glob("*.parquet")):
        for batch in pq.ParquetFile(path).iter_batches(batch_size=BATCH_ROWS, columns=["image_id", "format"]):
            for row in batch.to_pylist():
                formats[row["image_id"]] = EXTENSIONS.get(row["format"], (row["format"] or "bin").lower())
    return formats


def write_images(build_dir: Path, out: Path, wanted: set[str], formats: dict[str, str], on_image: Callable[[], None] | None = None) -> int:
    """Write each wanted image once as ``out/images/<image_id>.<ext>``; how many were written."""
    written = 0
    for path in sorted((build_dir / "images").glob("*.parquet")):
        parquet = pq.ParquetFile(path)
        for batch in parquet.iter_batches(batch_size=64):
            for row in batch.to_pylist():
                if row["image_id"] not in wanted:
                    continue
                with atomic_path(out / "images" / f"{row['image_id']}.{formats[row['image_id']]}") as tmp:
                    tmp.write_bytes(row["bytes"])
                written += 1
                if on_image:
                    on_image()
    return written


def image_paths(sample: dict[str, Any], formats: dict[str, str]) -> list[str]:
    return [f"images/{image_id}.{formats[image_id]}" for image_id in sample["image_ids"]]


def llava_entry(sample: dict[str, Any], paths: list[str]) -> dict[str, Any]:
    tags = "<image>\n" * len(paths)
    conversations = [
        {"from": "human" if turn["role"] == "user" else "gpt", "value": (tags if i == 0 else "") + turn["content"]}
        for i, turn in enumerate(sample["conversation"])
    ]
    return {"id": sample["id"], "image": paths[0] if len(paths) == 1 else paths, "conversations": conversations}


def export_llava(build_dir: Path, out: Path, include_video: bool = True, on_item: Callable[[], None] | None = None) -> ExportSummary:
    build_dir, out = Path(build_dir), Path(out)
    read_manifest(build_dir)  # refuse an incomplete build
    formats = image_formats(build_dir)
    summary, wanted = ExportSummary(out), set()
    writer = JsonListWriter(out / "skyeye_llava.json")
    try:
        for sample in iter_samples(build_dir):
            paths = image_paths(sample, formats)
            if len(paths) > 1 and not include_video:
                summary.skipped += 1
                continue
            writer.write(llava_entry(sample, paths))
            wanted.update(sample["image_ids"])
            summary.samples += 1
            if on_item:
                on_item()
        summary.images = write_images(build_dir, out, wanted, formats)
    except BaseException:
        writer.abort()
        raise
    writer.close()
    summary.files.append("skyeye_llava.json")
    write_format_note(out, "llava", build_dir)
    return summary


def minigptv2_entry(sample: dict[str, Any], paths: list[str]) -> tuple[str, dict[str, Any]]:
    """(annotation file stem, entry) for one sample; see the module docstring for the shapes."""
    image = paths[0] if len(paths) == 1 else paths
    task, turns = sample["task"], sample["conversation"]
    if len(turns) > 2:
        return "conversation", {"id": sample["id"], **llava_entry(sample, paths)}
    instruction, answer = turns[0]["content"], turns[1]["content"]
    if task == "caption":
        return "caption", {"image": image, "caption": answer, "image_id": sample["id"], "instruction_input": instruction}
    if task == "vqa":
        question = instruction.removeprefix("[vqa]").strip()
        return "vqa", {"image": image, "question": question, "question_id": sample["id"], "answer": [answer],
                       "instruction_input": instruction}  # fmt: skip
    return task, {"id": sample["id"], "image": image, "instruction_input": instruction, "answer": answer}


def export_minigptv2(build_dir: Path, out: Path, on_item: Callable[[], None] | None = None) -> ExportSummary:
    build_dir, out = Path(build_dir), Path(out)
    read_manifest(build_dir)
    formats = image_formats(build_dir)
    summary, wanted = ExportSummary(out), set()
    writers: dict[str, JsonListWriter] = {}
    try:
        for sample in iter_samples(build_dir):
            paths = image_paths(sample, formats)
            stem, entry = minigptv2_entry(sample, paths)
            if stem not in writers:
                writers[stem] = JsonListWriter(out / f"{stem}.json")
            writers[stem].write(entry)
            wanted.update(sample["image_ids"])
            summary.samples += 1
            if on_item:
                on_item()
        summary.images = write_images(build_dir, out, wanted, formats)
    except BaseException:
        for writer in writers.values():
            writer.abort()
        raise
    for stem, writer in sorted(writers.items()):
        writer.close()
        summary.files.append(f"{stem}.json")
    write_format_note(out, "minigptv2", build_dir)
    return summary


def write_format_note(out: Path, layout: str, build_dir: Path) -> None:
    """``DIR/README.md``: what the export holds (this module's docstring) and where it came from."""
    manifest = read_manifest(build_dir)
    recipe = manifest["recipe"]
    write_text_atomic(
        out / "README.md",
        f"# SkyEye export ({layout})\n\nFrom build recipe `{recipe['name']}` (fingerprint `{recipe['fingerprint']}`).\n\n"
        f"```\n{__doc__.strip()}\n```\n",
    )
