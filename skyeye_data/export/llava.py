"""``skyeye export llava``: LLaVA / GeoChat layout, one type per field.

Read from haotian-liu/LLaVA ``llava/train/train.py``: ``LazySupervisedDataset.__getitem__`` opens
``os.path.join(data_args.image_folder, sample["image"])`` -- ``image`` must be ONE path string (a
list fails in ``join``); ``preprocess_multimodal`` moves the ``<image>`` tag to the front of the
turn that holds it (so one tag per sample, in the first human turn); ``preprocess_v1`` asserts the
turns alternate ``human``/``gpt`` starting with ``human``; ``tokenizer_image_token`` turns each
``<image>`` into one image-token index, and the model expects one image per tag.
``DataCollatorForSupervisedDataset`` stacks the images. GeoChat (mbzuai-oryx/GeoChat
``geochat/train/train.py``) is a fork with the same contract (``Image.open(os.path.join(image_folder,
image_file).strip())``).

Written (``image`` paths relative to DIR, the ``--image_folder``):

* ``DIR/skyeye_llava.json``: the single-image samples, ``{"id", "image": "images/<id>.<ext>",
  "conversations": [{"from": "human"|"gpt", "value"}]}`` with ``"<image>\\n"`` before the first
  human turn -- every row loads in LLaVA and GeoChat;
* ``DIR/skyeye_llava_video.json``: the video samples (CapERA, ERA-VQA), ``image`` a list of frame
  paths and one ``"<image>\\n"`` per frame, the multi-image convention of LLaVA-NeXT /
  LLaVA-OneVision's ``train.py`` (``if type(image_file) is list``); haotian-liu/LLaVA cannot read
  it, so it is a file of its own. ``--no-video`` leaves it out and says how many samples that was;
* ``DIR/images/<image_id>.<ext>``: each image once.

Only training samples are exported (eval items stay in ``OUT/eval``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from skyeye_data.export.common import ExportSummary, export_json_lists, image_paths, is_video, write_format_note

IMAGE_FILE = "skyeye_llava.json"
VIDEO_FILE = "skyeye_llava_video.json"
VIDEO_LEFT_OUT = "video samples, --no-video"


def llava_conversations(sample: dict[str, Any], n_images: int, tag: str = "<image>\n") -> list[dict[str, str]]:
    """SkyEye turns as ``{from: human|gpt, value}``, one ``tag`` per image before the first human turn."""
    tags = tag * n_images
    return [
        {"from": "human" if turn["role"] == "user" else "gpt", "value": (tags if i == 0 else "") + turn["content"]}
        for i, turn in enumerate(sample["conversation"])
    ]


def llava_entry(sample: dict[str, Any], paths: list[str]) -> dict[str, Any]:
    image: str | list[str] = paths if is_video(sample) else paths[0]
    return {"id": sample["id"], "image": image, "conversations": llava_conversations(sample, len(paths))}


def export_llava(build_dir: Path, out: Path, include_video: bool = True, on_item: Callable[[], None] | None = None) -> ExportSummary:
    def route(sample: dict[str, Any], formats: dict[str, str]) -> tuple[str | None, Any]:
        if is_video(sample) and not include_video:
            return None, VIDEO_LEFT_OUT
        return VIDEO_FILE if is_video(sample) else IMAGE_FILE, llava_entry(sample, image_paths(sample, formats))

    manifest, summary = export_json_lists(build_dir, out, route, Path(out) / "images", on_item)
    write_format_note(Path(out), "llava", manifest, __doc__)
    return summary
