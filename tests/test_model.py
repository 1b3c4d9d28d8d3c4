"""The bundled trainer on tiny random models saved to disk and loaded back through from_pretrained."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

os.environ["HF_HUB_OFFLINE"] = "1"  # nothing may come from a model hub
torch = pytest.importorskip("torch")

from _model_fixtures import THREE_TURN_DIALOG, make_build_output, tiny_config, tiny_model_dir, tokenizer  # noqa: E402, F401

from skyeye_model.collate import Collator  # noqa: E402
from skyeye_model.template import IGNORE_INDEX, ChatTemplate, conversation_turns  # noqa: E402


@pytest.fixture(scope="session")
def data_root(tmp_path_factory) -> Path:
    return make_build_output(tmp_path_factory.mktemp("build"))


@pytest.fixture(scope="session")
def trained(tiny_model_dir, data_root, tmp_path_factory):
    """30 optimizer steps on the tiny set; shared by the loss, save/load, predict and merge tests."""
    from skyeye_model.train import train

    config = tiny_config(tiny_model_dir, data_root, tmp_path_factory.mktemp("run"), epochs=8, optim__lr=1e-2, max_steps=30)
    return config, train(config)


def labelled_runs(labels: list[int]) -> list[list[int]]:
    runs, current = [], []
    for label in labels + [IGNORE_INDEX]:
        if label != IGNORE_INDEX:
            current.append(label)
        elif current:
            runs.append(current)
            current = []
    return runs


# -- template ----------------------------------------------------------------------------------


def test_three_turn_dialog_labels_cover_exactly_the_answers(tokenizer):
    template = ChatTemplate(tokenizer, tokens_per_image=4)
    encoded = template.encode_dialog(conversation_turns(THREE_TURN_DIALOG), num_images=1)
    runs = labelled_runs(encoded.labels)
    answers = [m["content"] for m in THREE_TURN_DIALOG if m["role"] == "assistant"]
    assert len(runs) == 3
    for run, answer in zip(runs, answers):
        assert run[-1] == tokenizer.eos_token_id
        assert tokenizer.decode(run).replace(" ", "") == (answer + "</s>").replace(" ", "")
        assert tokenizer.decode(run[:-1]).strip() == answer
    # every labelled id is the input id at that position; three BOS, image tokens only in turn one
    assert all(label in (IGNORE_INDEX, token) for label, token in zip(encoded.labels, encoded.input_ids))
    assert encoded.input_ids.count(tokenizer.bos_token_id) == 3
    assert sum(encoded.image_mask) == 4
    assert not any(m for m, label in zip(encoded.image_mask, encoded.labels) if label != IGNORE_INDEX)


def test_prompt_text_matches_the_llama2_chat_template(tokenizer):
    template = ChatTemplate(tokenizer, tokens_per_image=2)
    encoded = template.encode_dialog([("[vqa] Is it urban", "yes"), ("[caption] describe", "a road")], num_images=1)
    text = tokenizer.decode(encoded.input_ids).replace("<ImageHere><ImageHere>", "<ImageHere>")
    compact = text.replace(" ", "")
    assert compact == "<s>[INST]<Img><ImageHere></Img>[vqa]Isiturban[/INST]yes</s><s>[INST][caption]describe[/INST]aroad</s>"


def test_video_frames_get_one_image_slot_each(tokenizer):
    template = ChatTemplate(tokenizer, tokens_per_image=4)
    encoded = template.encode_dialog([("[caption] Briefly describe this video.", "a drone")], num_images=3)
    assert sum(encoded.image_mask) == 12
    assert encoded.input_ids.count(tokenizer.convert_tokens_to_ids("<Img>")) == 3


def test_malformed_conversation_is_rejected():
    with pytest.raises(ValueError):
        conversation_turns([{"role": "assistant", "content": "no question"}])


# -- data --------------------------------------------------------------------------------------


def test_dataset_reads_contract_shards_lazily(tiny_model_dir, data_root, tokenizer):
    from skyeye_model.data import SampleDataset

    template = ChatTemplate(tokenizer, tokens_per_image=4, max_length=128)
    dataset = SampleDataset(data_root, template, image_size=56, max_frames=2)
    assert len(dataset) == 18  # the rejected sample is left out
    assert dataset.counts_by_source() == {"capera": 1, "rsicd": 8, "ucm_captions": 8, "ucm_conversa": 1}
    by_id = {dataset.row(i)["id"]: i for i in range(len(dataset))}
    video = dataset[by_id["capera-0000"]]
    assert video.pixel_values.shape == (2, 56, 56, 3) and video.pixel_values.dtype == torch.uint8
    assert int(video.image_mask.sum()) == 8
    dialog = dataset[by_id["ucm_conversa-0000"]]
    assert len(labelled_runs(dialog.labels.tolist())) == 3
    assert (data_root / ".index").is_dir() and list((data_root / ".index").glob("images-*.parquet"))


def test_image_index_finds_every_image_and_rejects_unknown_ids(data_root):
    from skyeye_model.images import ImageIndex, ImageStore

    table = pq.read_table(data_root / "images")
    store = ImageStore(ImageIndex.open(data_root / "images"), cache_bytes=1)
    for image_id, data in zip(table.column("image_id").to_pylist(), table.column("bytes").to_pylist()):
        assert store.read_bytes(image_id) == data
    with pytest.raises(KeyError):
        store.read_bytes("0" * 64)


def test_mixture_ratios_and_rank_padding():
    from skyeye_model.sampler import epoch_plan, rank_share

    codes = np.array([0] * 10 + [1] * 20 + [2] * 5)
    plan = epoch_plan(codes, ["a", "b", "c"], {"a": 2.0, "b": 0.5, "c": 0.0}, 1.0, seed=1, epoch=0)
    counts = np.bincount(codes[plan], minlength=3)
    assert counts.tolist() == [20, 10, 0]
    assert np.array_equal(plan, epoch_plan(codes, ["a", "b", "c"], {"a": 2.0, "b": 0.5, "c": 0.0}, 1.0, seed=1, epoch=0))
    assert not np.array_equal(plan, epoch_plan(codes, ["a", "b", "c"], {"a": 2.0, "b": 0.5, "c": 0.0}, 1.0, seed=1, epoch=1))
    shares = [rank_share(np.arange(7), rank, 3) for rank in range(3)]
    assert [len(s) for s in shares] == [3, 3, 3]
    trained_on = sorted(item.index for share in shares for item in share if item.weight > 0)
    assert trained_on == list(range(7))


def test_collator_masks_padding_items(tokenizer):
    from skyeye_model.data import EncodedSample

    template = ChatTemplate(tokenizer, tokens_per_image=4)
    encoded = template.encode_dialog([("[vqa] urban?", "yes")], 1)
    sample = EncodedSample("x", "s", torch.tensor(encoded.input_ids), torch.tensor(encoded.labels), torch.tensor(encoded.image_mask), torch.zeros(1, 56, 56, 3, dtype=torch.uint8))
    short = EncodedSample("y", "s", torch.tensor(encoded.input_ids[:5]), torch.tensor(encoded.labels[:5]), torch.tensor(encoded.image_mask[:5]), torch.zeros(1, 56, 56, 3, dtype=torch.uint8), weight=0.0)
    batch = Collator(pad_id=0)([sample, short])
    assert batch.input_ids.shape == (2, len(encoded.input_ids))
    assert (batch.labels[1] == IGNORE_INDEX).all() and (batch.labels[0] != IGNORE_INDEX).any()
    assert batch.attention_mask[1].sum() == 5
    left = Collator(pad_id=0, side="left")([sample, short])
    assert left.attention_mask[1, -5:].all() and not left.attention_mask[1, :-5].any()


# -- model -------------------------------------------------------------------------------------


def test_loss_decreases(trained):
    _, result = trained
    first, last = np.mean(result.losses[:5]), np.mean(result.losses[-5:])
    assert result.steps == 30
    assert last < first - 1.5, result.losses  # about 7.0 → 2.0 on this machine


def test_checkpoint_keeps_only_trainable_weights_and_state(trained):
    config, result = trained
    files = {p.name for p in result.checkpoint.iterdir()}
    assert {"adapter", "projector.safetensors", "optimizer.safetensors", "scheduler.json", "rng-rank0.safetensors", "trainer_state.json"} <= files
    from safetensors.torch import load_file

    adapter = load_file(result.checkpoint / "adapter" / "adapter_model.safetensors")
    assert adapter and all("lora_" in key for key in adapter)
    assert set(load_file(result.checkpoint / "projector.safetensors")) == {"weight", "bias"}
    assert not list(config.output_dir.glob(".*tmp"))
    log = [json.loads(line) for line in (config.output_dir / "losses.jsonl").read_text().splitlines()]
    assert [row["step"] for row in log] == list(range(1, 31))


def eval_batch(model, data_root):
    from skyeye_model.data import SampleDataset

    template = ChatTemplate(model.tokenizer, model.tokens_per_image, 128)
    dataset = SampleDataset(data_root, template, 56)
    return Collator(0)([dataset[i] for i in range(4)])


def test_save_load_gives_identical_logits(trained, data_root):
    from skyeye_model.model import load_trained_model

    config, result = trained
    reloaded = load_trained_model(result.checkpoint / "adapter")  # the adapter folder leads to its checkpoint
    assert_reload_matches_trained_weights(reloaded, config, result, data_root)


def assert_reload_matches_trained_weights(reloaded, config, result, data_root) -> None:
    """The reloaded model gives exactly the logits of a fresh model with the checkpoint's weights,
    and not those of an untrained one."""
    from skyeye_model.model import build_model, load_trainable_weights

    batch = eval_batch(reloaded, data_root)
    fresh = build_model(config.model).eval()
    load_trainable_weights(fresh, result.checkpoint)
    with torch.no_grad():
        assert torch.equal(reloaded.logits(batch), fresh.logits(batch))
        untrained = build_model(config.model).eval()
        assert not torch.allclose(untrained.logits(batch), fresh.logits(batch))


def test_checkpoint_of_relative_model_paths_loads_from_anywhere(trained, tiny_model_dir, tmp_path, monkeypatch):
    import os

    from skyeye_model.model import build_model, load_trained_model, save_trainable_weights

    config, _ = trained
    monkeypatch.chdir(tiny_model_dir.parent)  # train-time paths given relative to the working folder
    relative = config.model.model_copy(update={
        "llm_path": Path(os.path.relpath(config.model.llm_path)),
        "vision_path": Path(os.path.relpath(config.model.vision_path)),
    })  # fmt: skip
    assert not relative.llm_path.is_absolute()
    save_trainable_weights(build_model(relative), tmp_path / "ckpt")
    monkeypatch.chdir(tmp_path)  # predict runs somewhere else
    assert load_trained_model(tmp_path / "ckpt").config.llm_path == config.model.llm_path.resolve()


def test_merged_model_matches_the_checkpoint(trained, data_root, tmp_path):
    from skyeye_model.merge import merge_checkpoint
    from skyeye_model.model import load_trained_model

    _, result = trained
    merged_dir = merge_checkpoint(result.checkpoint, tmp_path / "merged")
    assert not (merged_dir / "adapter").exists() and (merged_dir / "llm" / "config.json").exists()
    merged, adapted = load_trained_model(merged_dir), load_trained_model(result.checkpoint)
    batch = eval_batch(merged, data_root)
    with torch.no_grad():
        torch.testing.assert_close(merged.logits(batch), adapted.logits(batch), atol=1e-4, rtol=1e-4)


def test_resume_gives_the_same_losses_as_an_uninterrupted_run(tiny_model_dir, data_root, tmp_path):
    from skyeye_model.train import train

    common = dict(epochs=3, grad_accum=2, max_steps=6, save_every=1000, optim__lr=1e-2)
    whole = train(tiny_config(tiny_model_dir, data_root, tmp_path / "whole", **common))
    config = tiny_config(tiny_model_dir, data_root, tmp_path / "split", **common)
    first = train(config, stop_after=2)  # 4 of the epoch's 5 micro-batches: stops mid-epoch
    rest = train(config, resume=True)
    assert first.losses + rest.losses == whole.losses
    assert rest.steps == 6


def test_stage2_starts_from_the_stage1_adapter(trained, tmp_path):
    from safetensors.torch import load_file

    from skyeye_model.model import build_model

    config, result = trained
    model = build_model(config.model, init_adapter=result.checkpoint)
    projector = load_file(result.checkpoint / "projector.safetensors")
    assert torch.equal(model.projector.weight, projector["weight"])
    assert all(p.requires_grad for p in model.trainable_state().values()) and len(model.trainable_state()) == 2 + 8


def test_weight_decay_spares_biases_and_norms(trained):
    from skyeye_model.model import build_model
    from skyeye_model.train import parameter_groups

    config, _ = trained
    model = build_model(config.model)
    decay, no_decay = parameter_groups(model, 0.05)
    assert decay["weight_decay"] == 0.05 and no_decay["weight_decay"] == 0.0
    assert any(p is model.projector.bias for p in no_decay["params"])
    assert any(p is model.projector.weight for p in decay["params"])
    frozen = [p for p in model.llm.parameters() if not p.requires_grad]
    assert frozen and not any(p.requires_grad for p in model.vision.parameters())


def test_siglip_tower_without_cls_token(tmp_path, data_root):
    from skyeye_model.model import build_model
    from skyeye_model.tiny import make_tiny_model
    from skyeye_model.train import train

    model_dir = make_tiny_model(tmp_path / "siglip-model", vision="siglip")
    config = tiny_config(model_dir, data_root, tmp_path / "run", max_steps=2)
    model = build_model(config.model)
    assert model.vision.kind == "siglip" and model.vision.prefix_tokens == 0
    pixels = torch.zeros(1, 56, 56, 3, dtype=torch.uint8)
    assert model.vision(pixels).shape == (1, 16, 32)  # all 4x4 patches, nothing dropped
    assert model.tokens_per_image == 4
    result = train(config)
    assert result.steps == 2 and all(np.isfinite(result.losses))


def test_clip_tower_drops_cls_and_interpolates(trained):
    config, _ = trained
    from skyeye_model.model import build_model

    wider = config.model.model_copy(update={"image_size": 112})
    model = build_model(wider)
    assert model.vision.prefix_tokens == 1 and model.vision.interpolate
    assert model.vision(torch.zeros(2, 112, 112, 3, dtype=torch.uint8)).shape == (2, 64, 32)
    assert model.tokens_per_image == 16


def test_bf16_and_activation_checkpointing(trained, data_root):
    from skyeye_model.model import build_model

    config, _ = trained
    settings = config.model.model_copy(update={"precision": "bf16", "gradient_checkpointing": True})
    model = build_model(settings).train()
    assert any(getattr(m, "gradient_checkpointing", False) for m in model.llm.modules())
    assert model.llm.base_model.model.model.layers[0].self_attn.q_proj.base_layer.weight.dtype == torch.bfloat16
    batch = eval_batch(model, data_root)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss, count = model(batch)
    loss.backward()
    assert count > 0 and torch.isfinite(loss)
    assert model.projector.weight.grad is not None and model.projector.weight.grad.abs().sum() > 0


# -- prediction --------------------------------------------------------------------------------


def test_predict_writes_the_contract_columns(trained, data_root, tmp_path):
    from typer.testing import CliRunner

    from skyeye_data.cli import app

    _, result = trained
    out = tmp_path / "preds.parquet"
    run = CliRunner().invoke(app, ["predict", str(result.checkpoint), str(data_root / "eval"), "--out", str(out), "--batch-size", "2", "--max-new-tokens", "6"])
    assert run.exit_code == 0, run.output
    table = pq.read_table(out)
    expected = ["id", "source", "task", "split", "subset", "question_type", "references", "ref_boxes", "width", "height", "prediction", "pred_boxes"]
    assert table.column_names == expected
    assert table.column("id").to_pylist() == [f"eval-{i}" for i in range(5)]
    assert all(isinstance(p, str) for p in table.column("prediction").to_pylist())


def test_pred_boxes_are_parsed_back_to_pixels():
    from skyeye_model.predict import prediction_row

    row = prediction_row({"id": "x", "width": 64, "height": 48}, "<p>a plane</p> {<10><10><30><40>}<delim>{<0><0><100><100>}")
    assert row["pred_boxes"] == [[6.4, 4.8, 19.2, 19.2], [0.0, 0.0, 64.0, 48.0]]


def test_chat_answers_each_line_until_exit(trained, tmp_path):
    from PIL import Image

    from skyeye_model.predict import chat

    _, result = trained
    image = tmp_path / "scene.png"
    Image.new("RGB", (80, 60), (30, 160, 40)).save(image)
    answers: list[str] = []
    turns = chat(result.checkpoint, image, io.StringIO("[caption] describe\n\n[vqa] is it urban\n/exit\n[vqa] ignored\n"), answers.append, max_new_tokens=4)
    assert turns == 2 and len(answers) == 2


def test_training_config_rejects_unknown_keys(tmp_path):
    from pydantic import ValidationError

    from skyeye_model.config import load_config

    path = tmp_path / "bad.yaml"
    path.write_text("model: {llm_path: a, vision_path: b, lora_rank: 8}\ndata: {root: r}\noutput_dir: o\n")
    with pytest.raises(ValidationError):
        load_config(path)


def test_recipes_load(monkeypatch):
    from skyeye_model.config import load_config

    monkeypatch.setenv("SKYEYE_WEIGHTS", "/weights")
    root = Path(__file__).resolve().parents[1] / "recipes" / "train"
    stage1, stage2 = load_config(root / "stage1.yaml"), load_config(root / "stage2.yaml")
    for config in (stage1, stage2):
        assert (config.model.lora_r, config.model.lora_alpha, config.model.lora_dropout) == (64, 16, 0.05)
        assert config.model.lora_target_modules == ["q_proj", "v_proj"] and config.model.image_size == 448
        assert (config.optim.lr, config.optim.weight_decay) == (1e-5, 0.05)
        assert str(config.model.llm_path).startswith("/weights/")
    assert "conversation" not in stage1.data.tasks and stage2.data.tasks is None
    assert stage2.init_adapter is not None
    # the paper's path: stage 1 from the imported MiniGPT-v2 checkpoint (35 epochs), stage 2 for 5
    assert stage1.init_adapter == Path("/weights/minigptv2-skyeye") and stage1.model.vision_path == Path("/weights/minigptv2-skyeye/vision")
    assert (stage1.epochs, stage2.epochs) == (35, 5)
    assert stage2.data.mixture["rsvqa_hr"] < stage1.data.mixture["rsvqa_hr"]
    assert load_config(root / "tiny.yaml").model.image_size == 56


def test_length_policy_keeps_every_frame_cuts_text_and_counts(tokenizer):
    turns = [("[caption] Briefly describe this video.", "a drone flying over people near the river bank")]
    whole = ChatTemplate(tokenizer, tokens_per_image=4).encode_dialog(turns, num_images=2)
    assert whole.status == "ok" and sum(whole.image_mask) == 8
    # max_length inside the answer: every image token stays, the answer is cut, the sample is 'truncated'
    cut = ChatTemplate(tokenizer, tokens_per_image=4, max_length=whole.context_length + 2).encode_dialog(turns, num_images=2)
    assert cut.status == "truncated" and sum(cut.image_mask) == 8 and cut.supervised == 2
    assert cut.input_ids == whole.input_ids[: whole.context_length + 2]
    # MiniGPT-v2's answer cap (max_txt_len) cuts the answer + </s> part only
    capped = ChatTemplate(tokenizer, tokens_per_image=4, max_txt_len=3).encode_dialog(turns, num_images=2)
    assert capped.status == "truncated" and capped.supervised == 3 and len(capped.input_ids) == whole.context_length + 3
    # images alone longer than the limit: skipped with a reason, never cut in part
    skipped = ChatTemplate(tokenizer, tokens_per_image=4, max_length=7).encode_dialog(turns, num_images=2)
    assert skipped.status == "skipped" and "max_length 7" in skipped.reason


def test_batched_generation_with_left_padding_matches_one_by_one(trained, tmp_path):
    from skyeye_model.model import load_trained_model
    from skyeye_model.predict import Generator

    _, result = trained
    model = load_trained_model(result.checkpoint)
    generator = Generator(model, None, torch.device("cpu"))
    pixels = torch.randint(0, 256, (1, 56, 56, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    prompts = [
        generator.encode([], "[caption] Briefly describe this image.", pixels),
        generator.encode([("[caption] describe", "a road")], "[vqa] Is it a rural or an urban area", pixels),
    ]
    batched = generator.answer(prompts, max_new_tokens=6)
    assert batched == [generator.answer([p], max_new_tokens=6)[0] for p in prompts]


def test_cli_reports_missing_weights_and_bad_options(tmp_path, data_root):
    from typer.testing import CliRunner

    from skyeye_data.cli import app

    config = tmp_path / "train.yaml"
    config.write_text(f"model: {{llm_path: {tmp_path}/nowhere, vision_path: {tmp_path}/nowhere}}\ndata: {{root: {data_root}}}\noutput_dir: {tmp_path}/run\n")
    runner = CliRunner()
    missing = runner.invoke(app, ["train", "run", str(config)])
    assert missing.exit_code == 2 and "is not a folder" in " ".join(missing.output.split())
    assert "train" not in missing.output.split("error:")[0]  # fails before any progress bar
    assert runner.invoke(app, ["train", "run", str(config), "--set", "optim.lr"]).exit_code == 2
    assert runner.invoke(app, ["train", "make-tiny", str(tmp_path / "m"), "--vision", "vit"]).exit_code == 2


def test_resume_refuses_another_layout(trained):
    from skyeye_model.checkpoint import TrainerState
    from skyeye_model.train import Distributed, check_same_layout

    config, _ = trained
    with pytest.raises(ValueError, match="same layout"):
        check_same_layout(TrainerState(world_size=2, batch_size=config.batch_size), Distributed(), config)


def test_mixture_warns_about_sources_it_cannot_find(caplog):
    from skyeye_model.train import warn_unknown_mixture_sources

    with caplog.at_level("WARNING"):
        warn_unknown_mixture_sources({"rsicdd": 0.5, "rsicd": 1.0}, ["rsicd", "ucm_captions"])
    assert "rsicdd" in caplog.text and "rsicd," not in caplog.text.split("present")[0]


# -- EVA-CLIP through timm ---------------------------------------------------------------------


@pytest.fixture(scope="session")
def eva_trained(data_root, tmp_path_factory):
    """A tiny EVA-CLIP tower in timm's hub layout (config.json + model.safetensors), trained 20 steps."""
    pytest.importorskip("timm")
    from skyeye_model.tiny import make_tiny_model
    from skyeye_model.train import train

    model_dir = make_tiny_model(tmp_path_factory.mktemp("eva-model"), vision="eva")
    config = tiny_config(model_dir, data_root, tmp_path_factory.mktemp("eva-run"), epochs=8, optim__lr=1e-2, max_steps=20)
    return config, train(config)


def test_eva_tower_drops_prefix_tokens_before_grouping(eva_trained, data_root):
    from skyeye_model.model import build_model

    config, _ = eva_trained
    vision_dir = Path(config.model.vision_path)
    assert json.loads((vision_dir / "config.json").read_text())["architecture"] and (vision_dir / "model.safetensors").exists()
    model = build_model(config.model).eval()
    assert model.vision.kind == "timm" and model.vision.prefix_tokens == model.vision.encoder.num_prefix_tokens == 1
    assert model.tokens_per_image == (56 // 14) ** 2 // 4
    batch = eval_batch(model, data_root)
    seen = []
    model.projector.register_forward_pre_hook(lambda module, inputs: seen.append(inputs[0].shape))
    with torch.no_grad():
        model.logits(batch)
        images = batch.pixel_values.shape[0]
        assert seen == [(images, model.tokens_per_image, 4 * model.vision.hidden_size)]  # 4x4 patches → 4 groups
        # The tokens are timm's forward_features without the CLS token, in patch order.
        pixels = (batch.pixel_values.permute(0, 3, 1, 2).float() / 255.0 - model.vision.mean) / model.vision.std
        full = model.vision.encoder.forward_features(pixels)
        assert full.shape[1] == 16 + 1
        assert torch.equal(model.vision(batch.pixel_values), full[:, 1:])


def test_eva_loss_decreases(eva_trained):
    _, result = eva_trained
    first, last = np.mean(result.losses[:5]), np.mean(result.losses[-5:])
    assert result.steps == 20
    assert last < first - 1.5, result.losses  # about 7.3 → 2.8 on this machine


def test_eva_save_load_gives_identical_logits(eva_trained, data_root):
    from skyeye_model.model import load_trained_model

    config, result = eva_trained
    reloaded = load_trained_model(result.checkpoint)
    assert reloaded.vision.kind == "timm"
    assert_reload_matches_trained_weights(reloaded, config, result, data_root)


def test_eva_tower_resamples_position_embeddings(eva_trained):
    from skyeye_model.model import VisionTower

    config, _ = eva_trained
    tower = VisionTower(config.model.vision_path, "auto", 112, torch.float32)
    assert tower.num_patches() == 64 and tower.encoder.pos_embed.shape[1] == 64 + 1
    assert tower(torch.zeros(2, 112, 112, 3, dtype=torch.uint8)).shape == (2, 64, 32)
