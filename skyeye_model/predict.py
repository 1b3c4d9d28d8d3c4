"""Generation: ``skyeye predict`` over eval shards, and ``skyeye chat`` in the terminal.

Predictions follow docs/ARCHITECTURE.md "Predictions": the eval-shard columns ``id``, ``source``,
``task``, ``split``, ``subset``, ``question_type``, ``references``, ``ref_boxes``, ``width``, ``height``
plus ``prediction`` (the generated text) and ``pred_boxes`` (the boxes in it, read with
``skyeye_data.boxes.parse_boxes`` and scaled back to pixels of the original image). Eval shards are
read a batch at a time and predictions are written as they come, under a temporary name renamed at
the end.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Iterable, Iterator, TextIO

import pyarrow as pa
import pyarrow.parquet as pq
import torch

from skyeye_data.boxes import parse_boxes
from skyeye_data.tables import PREDICTION_CARRIED_COLUMNS as CARRIED_COLUMNS
from skyeye_data.tables import PREDICTION_SCHEMA
from skyeye_model.collate import Collator
from skyeye_model.data import EncodedSample, even_frames
from skyeye_model.decode import decode_frames
from skyeye_model.images import ImageIndex, ImageStore
from skyeye_model.model import SkyEyeGPT, load_trained_model, pad_id, resolved_precision

DECODE_THREADS = min(8, os.cpu_count() or 1)


def eval_files(paths: Iterable[Path]) -> list[Path]:
    """Files given directly, or every ``*.parquet`` of a folder given."""
    files: list[Path] = []
    for path in map(Path, paths):
        files += sorted(path.glob("*.parquet")) if path.is_dir() else [path]
    missing = [f for f in files if not f.exists()]
    if missing or not files:
        raise FileNotFoundError(f"eval shards not found: {missing or list(paths)}")
    return files


def default_images_dir(files: list[Path]) -> Path:
    # OUT/eval/<shard>.parquet → OUT/images
    return files[0].resolve().parent.parent / "images"


def pixel_boxes(text: str, width: int | None, height: int | None) -> list[list[float]]:
    if not width or not height:
        return []
    return [box.to_pixels(width, height) for box in parse_boxes(text)]


class Generator:
    """Prompts → greedy answers for one loaded model."""

    def __init__(self, model: SkyEyeGPT, images: ImageStore | None, device: torch.device, max_frames: int = 4):
        self.model = model
        self.images = images
        self.device = device
        self.max_frames = max_frames
        self.template = model.chat_template(training=False)
        self.collate = Collator(pad_id(model.tokenizer), side="left")

    def encode(self, history: list[tuple[str, str]], instruction: str, pixels: torch.Tensor) -> EncodedSample:
        encoded = self.template.encode_prompt(history, instruction, pixels.shape[0])
        return EncodedSample(
            id="",
            source="",
            input_ids=torch.tensor(encoded.input_ids),
            labels=torch.tensor(encoded.labels),
            image_mask=torch.tensor(encoded.image_mask),
            pixel_values=pixels,
        )

    def encoded_images(self, image_ids: list[str]) -> list[bytes]:
        return [self.images.read_bytes(i) for i in even_frames(image_ids, self.max_frames)]

    def pixels(self, encoded_images: list[bytes]) -> torch.Tensor:
        size = self.model.config.image_size
        draft = self.model.vision.kind != "minigptv2"  # MiniGPT-v2's towers see full-size decodes, as in its processors
        return decode_frames(encoded_images, size, draft)

    def answer(self, samples: list[EncodedSample], max_new_tokens: int) -> list[str]:
        batch = self.collate(samples).to(self.device)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=resolved_precision(self.model.config.precision) == "bf16"):
            return self.model.generate(batch, max_new_tokens=max_new_tokens)


def eval_batches(files: list[Path], batch_size: int) -> Iterator[list[dict]]:
    for path in files:
        parquet = pq.ParquetFile(path)
        columns = [c for c in CARRIED_COLUMNS + ["image_ids", "conversation"] if c in parquet.schema_arrow.names]
        for record_batch in parquet.iter_batches(batch_size=batch_size, columns=columns):
            yield record_batch.to_pylist()


def count_rows(files: list[Path]) -> int:
    return sum(pq.ParquetFile(f).metadata.num_rows for f in files)


def first_question(row: dict) -> str:
    for message in row["conversation"]:
        if message["role"] == "user":
            return message["content"]
    raise ValueError(f"eval sample {row.get('id')} has no user turn")


def prediction_row(row: dict, prediction: str) -> dict:
    out = {column: row.get(column) for column in CARRIED_COLUMNS}
    out["prediction"] = prediction
    out["pred_boxes"] = pixel_boxes(prediction, row.get("width"), row.get("height"))
    return out


def predict(
    adapter: Path,
    shards: list[Path],
    out: Path,
    images_dir: Path | None = None,
    batch_size: int = 8,
    max_new_tokens: int = 256,
    device: str | None = None,
    on_rows: Callable[[int], None] | None = None,
) -> int:
    """Answer the first question of every eval sample; returns the number of rows written."""
    files = eval_files(shards)
    target = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model = load_trained_model(adapter).to(target)
    generator = Generator(model, ImageStore(ImageIndex.open(images_dir or default_images_dir(files))), target)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    written = 0
    try:
        # Images are read in order (the store is not thread-safe) and decoded in threads (PIL releases the GIL).
        with pq.ParquetWriter(tmp, PREDICTION_SCHEMA) as writer, ThreadPoolExecutor(DECODE_THREADS) as pool:
            for rows in eval_batches(files, batch_size):
                encoded_images = [generator.encoded_images(r["image_ids"] or []) for r in rows]
                pixels = pool.map(generator.pixels, encoded_images)
                prompts = [generator.encode([], first_question(r), p) for r, p in zip(rows, pixels)]
                answers = generator.answer(prompts, max_new_tokens)
                writer.write_table(pa.Table.from_pylist([prediction_row(r, a) for r, a in zip(rows, answers)], schema=PREDICTION_SCHEMA))
                written += len(rows)
                if on_rows:
                    on_rows(len(rows))
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return written


def chat(
    adapter: Path, image: Path, lines: TextIO, write: Callable[[str], None], max_new_tokens: int = 128, device: str | None = None
) -> int:
    """A multi-turn dialog about one image: one question per input line; ends on EOF or ``/exit``.

    Returns the number of answered turns. Every answer conditions the next (the whole dialog is the prompt).
    """
    target = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model = load_trained_model(adapter).to(target)
    generator = Generator(model, None, target)
    pixels = generator.pixels([Path(image).read_bytes()])
    history: list[tuple[str, str]] = []
    for line in lines:
        question = line.strip()
        if question == "/exit":
            break
        if not question:
            continue
        answer = generator.answer([generator.encode(history, question, pixels)], max_new_tokens)[0]
        history.append((question, answer))
        write(answer)
    return len(history)
