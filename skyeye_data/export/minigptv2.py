"""``skyeye export minigptv2``: MiniGPT-v2 (Vision-CAIR/MiniGPT-4) annotation files, images, classes, config.

Read from Vision-CAIR/MiniGPT-4: every dataset class takes ``(vis_processor, text_processor,
vis_root, ann_path[s])``, reads a JSON list and prepends ``<Img><ImageHere></Img>`` itself;
``BaseDatasetBuilder.build`` (``minigpt4/datasets/builders/base_dataset_builder.py``) sets
``vis_root = images.storage + "/train"`` and first "downloads" each annotation ``url`` (a local
file is copied unless the destination exists, so ``url`` = ``storage`` = our file). Written:

* ``DIR/images/train/<image_id>.<ext>``: every image once (the ``vis_root`` of all files below).
* ``caption.json`` -> the STOCK ``COCOCapDataset`` (``coco_caption.py`` = ``caption_datasets.py``
  ``COCOCaptionDataset``): ``{image: "train/<id>.<ext>", caption, image_id}``. It keeps only entries
  whose ``image`` contains "train" (hence the prefix), opens ``vis_root/<last path part>``, lowercases
  the caption (``blip_caption``) and draws its own instruction from a pool ("[caption] Briefly describe
  this image." ...), replacing SkyEye's.
* ``vqa.json`` -> the STOCK ``COCOVQADataset`` (``coco_vqa_datasets.py``): ``{image, question,
  question_id, answer: [answer]}`` (``answer`` must be a list; entries whose image file is missing are
  dropped silently, so every path is written); its pool is "[vqa] {question}" and a variant.
* ``refer.json``, ``identify.json``, ``detection.json`` (each task present) -> no stock class fits (the
  RefCOCO readers need the REFER pickle, the Flickr ones build ``<image_id>.jpg`` and their own
  instructions): the generated ``SkyEyeInstructionDataset``, ``{id, image, instruction, answer}``,
  SkyEye's instruction and answer as they are.
* ``conversation.json`` (Conversa) -> the stock ``MultiTaskConversationDataset`` builds
  ``COCO_train2014_<id>.jpg`` and ignores ``image``: the generated ``SkyEyeConversationDataset``
  (same output: ``conv_q``/``conv_a`` joined by ``!@#``), ``{id, image, conversations}`` (LLaVA form).
* ``minigpt4_skyeye/``: ``skyeye_datasets.py`` (the two classes), ``skyeye_builders.py`` (registers
  ``skyeye_caption``, ``skyeye_vqa`` -- stock classes -- and ``skyeye_<task>``, ``skyeye_conversation``),
  ``configs/<builder>.yaml`` (build_info with this export's absolute paths), ``README.md`` (how to
  register them: two copies and one import line); ``train_configs/skyeye_minigptv2_finetune.yaml``
  (``minigptv2_finetune.yaml``'s model and run sections, the SkyEye datasets with sample ratios by size).
* Video samples (CapERA, ERA-VQA) are left out, with their count: MiniGPT-v2 encodes one image a
  sample (``minigpt4/models/minigpt_v2.py`` ``encode_img``); use ``skyeye train`` for SkyEyeGPT's frames.

Only training samples are exported (eval items stay in ``OUT/eval``).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any, Callable

import yaml

from skyeye_data.export.common import ExportSummary, export_json_lists, image_file_name, is_video, write_format_note
from skyeye_data.export.llava import llava_conversations
from skyeye_data.io import write_text_atomic

CLASS_DIR = "minigpt4_skyeye"
VIDEO_LEFT_OUT = "video samples: MiniGPT-v2 encodes one image a sample"
STOCK_BUILDERS = {"caption": "skyeye_caption", "vqa": "skyeye_vqa", "conversation": "skyeye_conversation"}
# model and run sections of Vision-CAIR/MiniGPT-4 train_configs/minigptv2_finetune.yaml (paths left for the user)
MODEL = {"arch": "minigpt_v2", "model_type": "pretrain", "max_txt_len": 1024, "image_size": 448, "end_sym": "</s>",
         "llama_model": "/path/to/llama_checkpoint", "ckpt": "/path/to/pretrained_checkpoint", "use_grad_checkpoint": True,
         "chat_template": True, "lora_r": 64, "lora_alpha": 16}  # fmt: skip
RUN = {"task": "image_text_pretrain", "lr_sched": "linear_warmup_cosine_lr", "init_lr": 1e-5, "min_lr": 1e-6, "warmup_lr": 1e-6,
       "weight_decay": 0.05, "max_epoch": 50, "num_workers": 6, "warmup_steps": 1000, "iters_per_epoch": 1000, "seed": 42,
       "output_dir": "/path/to/save_checkpoint", "amp": True, "resume_ckpt_path": None, "evaluate": False,
       "train_splits": ["train"], "device": "cuda", "world_size": 1, "dist_url": "env://", "distributed": True,
       "wandb_log": False, "job_name": "skyeye_minigptv2_finetune"}  # fmt: skip
PROCESSORS = {"vis_processor": {"train": {"name": "blip2_image_train", "image_size": 448}},
              "text_processor": {"train": {"name": "blip_caption"}}}  # fmt: skip


def builder_name(task: str) -> str:
    return STOCK_BUILDERS.get(task, f"skyeye_{task}")


def minigptv2_entry(sample: dict[str, Any], image: str) -> tuple[str, dict[str, Any]]:
    """(task file stem, entry) for one single-image sample; see the module docstring for the shapes."""
    task, turns = sample["task"], sample["conversation"]
    if task == "conversation" or len(turns) > 2:
        return "conversation", {"id": sample["id"], "image": image, "conversations": llava_conversations(sample, 0)}
    instruction, answer = turns[0]["content"], turns[1]["content"]
    if task == "caption":
        return "caption", {"image": f"train/{image}", "caption": answer, "image_id": sample["id"]}
    if task == "vqa":
        question = instruction.removeprefix("[vqa]").strip()  # the stock pool adds "[vqa] " back
        return "vqa", {"image": f"train/{image}", "question": question, "question_id": sample["id"], "answer": [answer]}
    return task, {"id": sample["id"], "image": image, "instruction": instruction, "answer": answer}


def dataset_config(out: Path, builder: str, ann: Path) -> dict[str, Any]:
    images = (out / "images").resolve()
    if builder in (STOCK_BUILDERS["caption"], STOCK_BUILDERS["vqa"]):  # BaseDatasetBuilder.build's layout
        build_info = {"annotations": {"train": {"url": str(ann), "storage": str(ann)}}, "images": {"storage": str(images)}}
    else:
        build_info = {"ann_path": str(ann), "image_path": str(images / "train")}
    return {"datasets": {builder: {"data_type": "images", "build_info": build_info}}}


def builder_block(builder: str) -> str:
    cls = "".join(part.title() for part in builder.split("_")) + "Builder"
    return (
        f'\n\n@registry.register_builder("{builder}")\nclass {cls}(SkyEyeFileBuilder):\n'
        f'    train_dataset_cls = SkyEyeInstructionDataset\n    DATASET_CONFIG_DICT = _config("{builder}")\n'
    )


def write_class_files(out: Path, counts: dict[str, int]) -> list[str]:
    """The dataset classes, builders, configs, README and train config for the files written."""
    files = resources.files("skyeye_data.export") / "minigpt4_files"
    configs = out / CLASS_DIR / "configs"
    builders = files.joinpath("skyeye_builders.py.txt").read_text(encoding="utf-8").replace("@CONFIGS@", str(configs.resolve()))
    builders += "".join(builder_block(builder_name(stem)) for stem in sorted(counts) if stem not in STOCK_BUILDERS)
    write_text_atomic(out / CLASS_DIR / "skyeye_builders.py", builders)
    write_text_atomic(out / CLASS_DIR / "skyeye_datasets.py", files.joinpath("skyeye_datasets.py.txt").read_text(encoding="utf-8"))
    write_text_atomic(out / CLASS_DIR / "README.md", files.joinpath("README.md.txt").read_text(encoding="utf-8"))
    written = [f"{CLASS_DIR}/skyeye_builders.py", f"{CLASS_DIR}/skyeye_datasets.py", f"{CLASS_DIR}/README.md"]
    total = sum(counts.values())
    datasets = {}
    for stem, n in sorted(counts.items()):
        builder = builder_name(stem)
        write_text_atomic(configs / f"{builder}.yaml", yaml.safe_dump(dataset_config(out, builder, (out / f"{stem}.json").resolve())))
        written.append(f"{CLASS_DIR}/configs/{builder}.yaml")
        # sample_ratio: the share of batches drawn from each set; by size, as SkyEyeGPT mixes its data
        datasets[builder] = {"batch_size": 2 if stem == "conversation" else 6, **PROCESSORS, "sample_ratio": max(1, round(100 * n / total))}
    train = {"model": MODEL, "datasets": datasets, "run": RUN}
    write_text_atomic(out / "train_configs" / "skyeye_minigptv2_finetune.yaml", yaml.safe_dump(train, sort_keys=False))
    return [*written, "train_configs/skyeye_minigptv2_finetune.yaml"]


def export_minigptv2(build_dir: Path, out: Path, on_item: Callable[[], None] | None = None) -> ExportSummary:
    out = Path(out)

    def route(sample: dict[str, Any], formats: dict[str, str]) -> tuple[str | None, Any]:
        if is_video(sample):
            return None, VIDEO_LEFT_OUT
        stem, entry = minigptv2_entry(sample, image_file_name(sample["image_ids"][0], formats))
        return f"{stem}.json", entry

    manifest, summary = export_json_lists(build_dir, out, route, out / "images" / "train", on_item)
    summary.files += write_class_files(out, {name.removesuffix(".json"): n for name, n in summary.rows.items()})
    write_format_note(out, "minigptv2", manifest, __doc__)
    return summary
