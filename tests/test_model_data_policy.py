"""The length policy and the mixture modes: no sample reaches the loss without a label unreported,
4-frame videos fit the shipped recipes, and MiniGPT-v2's per-iteration dataset sampling."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
torch = pytest.importorskip("torch")

from _model_fixtures import make_build_output, tiny_config, tiny_model_dir, tokenizer  # noqa: E402, F401
from typer.testing import CliRunner  # noqa: E402

from skyeye_data.cli import app  # noqa: E402
from skyeye_model.template import IGNORE_INDEX, ChatTemplate  # noqa: E402

PROJECT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def demo_build(mini_raw_root, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("demo") / "build"
    result = CliRunner().invoke(app, ["build", str(PROJECT / "recipes" / "demo.yaml"), "--raw-root", str(mini_raw_root), "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


@pytest.mark.parametrize("max_length", [None, 40], ids=["tiny.yaml caps", "tight max_length"])
def test_no_demo_sample_reaches_the_loss_without_labels_unreported(max_length, demo_build, tiny_model_dir, tokenizer):
    from skyeye_model.config import load_config
    from skyeye_model.data import SampleDataset

    model_config = load_config(PROJECT / "recipes" / "train" / "tiny.yaml").model
    template = ChatTemplate(tokenizer, (56 // 14) ** 2 // 4, max_length=max_length or model_config.max_length,
                            max_txt_len=model_config.max_txt_len, max_context_len=model_config.max_context_len)  # fmt: skip
    dataset = SampleDataset(demo_build, template, image_size=56)
    shards = pq.read_table(demo_build / "samples", columns=["source", "review_status"]).to_pylist()
    in_shards = Counter(row["source"] for row in shards if row["review_status"] != "rejected")
    report = dataset.length_report
    assert {s: c.kept + c.skipped for s, c in report.items()} == dict(in_shards)  # every sample kept or reported
    assert len(dataset) == sum(c.kept for c in report.values())
    for position in range(len(dataset)):
        sample = dataset[position]
        assert int((sample.labels != IGNORE_INDEX).sum()) > 0, sample.id
        assert int(sample.image_mask.sum()) == template.tokens_per_image * sample.pixel_values.shape[0]  # every frame kept
    if max_length:  # a tight limit truncates and skips, and says so
        assert sum(c.truncated for c in report.values()) and sum(c.skipped for c in report.values())
    else:
        assert not sum(c.skipped for c in report.values())


def test_four_frame_capera_sample_under_stage1_keeps_frames_and_labels(tokenizer, monkeypatch):
    from skyeye_model.config import load_config

    monkeypatch.setenv("SKYEYE_WEIGHTS", "/weights")
    model_config = load_config(PROJECT / "recipes" / "train" / "stage1.yaml").model
    tokens_per_image = (model_config.image_size // 14) ** 2 // model_config.tokens_per_group  # 256 for EVA-g at 448
    answer = " ".join(["a drone flying over people near the river bank"] * 12)
    for style in ("minigptv2", "skyeye"):
        template = ChatTemplate(tokenizer, tokens_per_image, max_length=model_config.max_length, style=style,
                                max_txt_len=model_config.max_txt_len, max_context_len=model_config.max_context_len)  # fmt: skip
        encoded = template.encode_dialog([("[caption] Briefly describe this video.", answer)], num_images=4)
        assert encoded.status == "ok" and sum(encoded.image_mask) == 4 * 256
        assert encoded.supervised == len(template.chunk_ids(answer)) + 1


def test_train_run_prints_what_was_truncated_or_skipped_before_the_first_step(tiny_model_dir, tmp_path):
    import yaml

    data_root = make_build_output(tmp_path / "build")
    config = tiny_config(tiny_model_dir, data_root, tmp_path / "run", max_steps=1, model__max_length=30).model_dump(mode="json")
    (tmp_path / "train.yaml").write_text(yaml.safe_dump(config))
    result = CliRunner().invoke(app, ["train", "run", str(tmp_path / "train.yaml")])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    report = next(i for i, line in enumerate(lines) if line.startswith("capera:"))
    assert "0 samples, 0 truncated, 1 skipped" in lines[report] and "capera-0000" in lines[report]
    assert any(line.startswith("ucm_conversa: 1 samples, 1 truncated") for line in lines)
    assert report < next(i for i, line in enumerate(lines) if line.startswith("trained 1 steps"))


# -- mixture modes -----------------------------------------------------------------------------


class Sources:
    def __init__(self, sizes: dict[str, int]):
        self.source_names = sorted(sizes)
        self.source_codes = np.concatenate([np.full(sizes[n], c, dtype=np.int32) for c, n in enumerate(self.source_names)])


def test_minigptv2_mixture_draws_each_batch_from_one_source_by_probability():
    from skyeye_model.sampler import MixtureSampler

    data = Sources({"a": 50, "b": 21, "c": 5})
    ratios = {"a": 3.0, "b": 1.0, "c": 0.0}

    def batches(rank: int, epoch: int) -> list[list[int]]:
        sampler = MixtureSampler(data, ratios, 1.0, seed=3, rank=rank, world_size=2, mode="minigptv2", batch_size=2, iterations=1000)
        sampler.set_epoch(epoch)
        items = [item.index for item in sampler]
        assert all(item.weight == 1.0 for item in sampler.items())
        return [items[i : i + 2] for i in range(0, len(items), 2)]

    ranks = [batches(0, 0), batches(1, 0)]
    assert len(ranks[0]) == len(ranks[1]) == 1000  # lock-step
    for rank_batches in ranks:
        sources = [{int(data.source_codes[i]) for i in batch} for batch in rank_batches]
        assert all(len(s) == 1 for s in sources)  # one source per batch, as MultiIterLoader
        share_a = sum(s == {0} for s in sources) / len(sources)
        assert abs(share_a - 0.75) < 0.06 and not any(s == {2} for s in sources)
    # a source's first pass: every sample of this rank's shard once before any repeat, ranks disjoint
    b_items = [[i for batch in rank_batches for i in batch if data.source_codes[i] == 1] for rank_batches in ranks]
    first_pass = [items[:10] for items in b_items]  # 21 samples over 2 ranks: shards of 11 and 10
    assert all(len(set(p)) == 10 for p in first_pass) and not set(first_pass[0]) & set(first_pass[1])
    assert batches(0, 0) == ranks[0] and batches(0, 1) != ranks[0]  # deterministic; epochs continue the streams


def test_epoch_mixture_stays_exactly_once_and_the_docstring_says_what_it_is():
    import skyeye_model.sampler as sampler

    data = Sources({"a": 7, "b": 4})
    shares = [sampler.MixtureSampler(data, {}, 1.0, seed=1, rank=r, world_size=3).items() for r in range(3)]
    trained = sorted(item.index for share in shares for item in share if item.weight > 0)
    assert trained == list(range(11)) and len({len(s) for s in shares}) == 1
    assert "not* MiniGPT-v2's ``sample_ratio``" in sampler.__doc__ and "MultiIterLoader" in sampler.__doc__


# -- packing and length grouping ---------------------------------------------------------------


def test_packed_loss_equals_the_padded_loss(tiny_model_dir, tmp_path):
    from skyeye_model.collate import Collator, PackingCollator
    from skyeye_model.data import SampleDataset
    from skyeye_model.model import build_model, pad_id

    data_root = make_build_output(tmp_path / "build")
    config = tiny_config(tiny_model_dir, data_root, tmp_path / "run")
    torch.manual_seed(0)
    model = build_model(config.model).eval()  # eval: no LoRA dropout, the same function both ways
    dataset = SampleDataset(data_root, model.chat_template(), image_size=56)
    by_id = {dataset.row(i)["id"]: i for i in range(len(dataset))}
    samples = [dataset[by_id[name]] for name in ("ucm_conversa-0000", "rsicd-0000", "capera-0000", "ucm_captions-0001")]
    with torch.no_grad():
        padded, padded_count = model(Collator(pad_id(model.tokenizer))(samples))
        for pack_length in (None, 70):
            batch = PackingCollator(pad_id(model.tokenizer), pack_length)(samples)
            assert batch.input_ids.shape[0] == (1 if pack_length is None else 3)
            packed, packed_count = model(batch)
            assert packed_count == padded_count and abs(float(packed) - float(padded)) <= 1e-5, (pack_length, packed, padded)
    # without the per-sample positions the samples would see each other: the loss would differ
    batch = PackingCollator(pad_id(model.tokenizer))(samples)
    batch.position_ids = None
    with torch.no_grad():
        assert abs(float(model(batch)[0]) - float(padded)) > 1e-3


def test_length_grouping_reorders_without_adding_or_dropping():
    from skyeye_model.sampler import MixtureSampler

    data = Sources({"a": 61, "b": 30})
    lengths = np.random.default_rng(0).integers(10, 1000, size=91)
    plain = MixtureSampler(data, {}, 1.0, seed=2, rank=1, world_size=2, batch_size=4).items()
    grouped = MixtureSampler(data, {}, 1.0, seed=2, rank=1, world_size=2, batch_size=4, lengths=lengths).items()
    assert sorted(plain) == sorted(grouped) and plain != grouped
    def spread(items):
        batches = [[lengths[i.index] for i in items[k : k + 4]] for k in range(0, len(items) - 3, 4)]
        return np.mean([max(b) - min(b) for b in batches])
    assert spread(grouped) < spread(plain) / 3
    assert max(lengths[i.index] for i in grouped[:4]) == max(lengths[i.index] for i in grouped)  # longest batch first
