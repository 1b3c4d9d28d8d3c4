"""`skyeye export minigptv2` through MiniGPT-v2's stock dataset classes (contract reimplemented, cited) and
through the dataset classes and configs the export writes (run as they are).

MiniGPT-4 is not installable (its environment pins torch 2.0 and a CUDA toolchain), so the stock
classes' data handling is reimplemented from Vision-CAIR/MiniGPT-4:
``minigpt4/datasets/builders/base_dataset_builder.py`` (``build``: ``vis_root = images.storage +
"/train"``; ``_download_ann``: ``url`` and ``storage`` zipped, a local ``url`` copied unless the
destination exists), ``minigpt4/datasets/datasets/base_dataset.py`` (``BaseDataset``: a JSON list,
or a dict's ``annotations``), ``caption_datasets.py`` ``COCOCaptionDataset`` (= ``coco_caption.py``
``COCOCapDataset``) and ``coco_vqa_datasets.py`` ``COCOVQADataset``.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import random
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from PIL import Image
from interop_helpers import invoke


def base_dataset_annotations(ann_paths):
    annotation = []
    for ann_path in ann_paths:
        ann = json.load(open(ann_path))
        annotation.extend(ann["annotations"] if isinstance(ann, dict) else ann)
    return annotation


def stock_build_paths(config: dict) -> tuple[list[str], str]:
    """BaseDatasetBuilder.build + _download_ann: (annotation paths, vis_root) of the train split."""
    build_info = config["build_info"]
    train = build_info["annotations"]["train"]
    urls, storage = train.get("url"), train["storage"]
    urls, storage = [urls] if isinstance(urls, str) else urls, [storage] if isinstance(storage, str) else storage
    assert len(urls) == len(storage)  # _download_ann's assert
    for url, dst in zip(urls, storage):
        assert os.path.isfile(url) and os.path.exists(dst)  # a local url, already in place: nothing is downloaded
    return storage, os.path.join(build_info["images"]["storage"], "train")


def coco_caption_items(ann_paths, vis_root):
    annotation = [ann for ann in base_dataset_annotations(ann_paths) if "train" in ann["image"]]
    items = []
    for ann in annotation:
        image = Image.open(os.path.join(vis_root, ann["image"].split("/")[-1])).convert("RGB")
        items.append({"image": image, "answer": ann["caption"], "image_id": ann["image_id"]})
    return items


def coco_vqa_items(ann_paths, vis_root):
    annotation = [a for a in base_dataset_annotations(ann_paths) if os.path.exists(os.path.join(vis_root, a["image"].split("/")[-1]))]
    items = []
    for ann in annotation:
        image = Image.open(os.path.join(vis_root, ann["image"].split("/")[-1])).convert("RGB")
        weights = {}
        for answer in ann["answer"]:  # a string here would be split into characters
            weights[answer] = weights.get(answer, 0) + 1 / len(ann["answer"])
        answer = random.choices(list(weights), weights=list(weights.values()), k=1)[0]
        items.append({"image": image, "question": ann["question"], "answer": answer})
    return items


def counts(build: Path) -> dict[str, int]:
    found: dict[str, int] = {}
    for p in (build / "samples").glob("*.parquet"):
        for row in pq.read_table(p, columns=["task", "image_ids"]).to_pylist():
            key = row["task"] if len(row["image_ids"]) == 1 else "video"
            found[key] = found.get(key, 0) + 1
    return found


@pytest.fixture(scope="module")
def export(export_of) -> Path:
    return export_of("minigptv2")


def config(export: Path, builder: str) -> dict:
    return yaml.safe_load((export / "minigpt4_skyeye" / "configs" / f"{builder}.yaml").read_text())["datasets"][builder]


def test_stock_caption_and_vqa_classes_yield_every_sample(export, mini_build):
    expected = counts(mini_build)
    captions = coco_caption_items(*stock_build_paths(config(export, "skyeye_caption")))
    assert len(captions) == expected["caption"] > 0
    vqa = coco_vqa_items(*stock_build_paths(config(export, "skyeye_vqa")))
    assert len(vqa) == expected["vqa"] > 0
    assert not any(item["question"].startswith("[vqa]") for item in vqa)  # the stock pool adds "[vqa] "


def load_generated(export: Path):
    spec = importlib.util.spec_from_file_location("skyeye_datasets", export / "minigpt4_skyeye" / "skyeye_datasets.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_classes_read_refer_identify_detection_and_conversa(export, mini_build):
    module = load_generated(export)
    expected = counts(mini_build)
    train = yaml.safe_load((export / "train_configs" / "skyeye_minigptv2_finetune.yaml").read_text())
    instruction_tasks = sorted(set(expected) - {"caption", "vqa", "conversation", "video"})
    assert instruction_tasks == ["detection", "identify", "refer"]
    for task in [*instruction_tasks, "conversation"]:
        builder = f"skyeye_{task}"
        assert builder in train["datasets"]
        info = config(export, builder)["build_info"]
        cls = module.SkyEyeConversationDataset if task == "conversation" else module.SkyEyeInstructionDataset
        dataset = cls(vis_processor=lambda im: im.size, text_processor=None, vis_root=info["image_path"], ann_path=info["ann_path"])
        assert len(dataset) == expected[task]
        for item in (dataset[i] for i in range(len(dataset))):
            if task == "conversation":
                questions, answers = item["conv_q"].split(item["connect_sym"]), item["conv_a"].split(item["connect_sym"])
                assert len(questions) == len(answers) >= 2 and questions[0].startswith("<Img><ImageHere></Img> [")
            else:
                assert item["instruction_input"].startswith(f"<Img><ImageHere></Img> [{task}] ") and item["answer"]
    assert train["datasets"].keys() == {f"skyeye_{t}" for t in expected if t != "video"}


def test_builders_register_every_dataset_of_the_train_config(export):
    source = (export / "minigpt4_skyeye" / "skyeye_builders.py").read_text()
    tree = ast.parse(source)
    registered = {
        d.args[0].value for node in ast.walk(tree) if isinstance(node, ast.ClassDef) for d in node.decorator_list
        if isinstance(d, ast.Call) and getattr(d.func, "attr", "") == "register_builder"
    }  # fmt: skip
    train = yaml.safe_load((export / "train_configs" / "skyeye_minigptv2_finetune.yaml").read_text())
    assert registered == set(train["datasets"])
    for builder in registered:
        assert config(export, builder)["data_type"] == "images"
        assert str((export / "minigpt4_skyeye" / "configs").resolve()) in source


def test_video_samples_are_left_out_with_their_count(mini_build, tmp_path):
    output = " ".join(invoke("export", "minigptv2", mini_build, "--to", tmp_path).split())
    assert f"{counts(mini_build)['video']} left out (video samples" in output
