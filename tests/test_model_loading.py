"""Model loading keeps a full copy of the weights out of each rank's host memory: on the CPU the frozen
LLM and vision tower stay memory-mapped views of their safetensors files (shared through the page cache
by all ranks), on a GPU they load straight onto the rank's device (``model.device_placement``)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from _model_fixtures import tiny_model_dir  # noqa: E402, F401  (fixture)

os.environ["HF_HUB_OFFLINE"] = "1"


def file_mappings(suffix: str = ".safetensors") -> list[tuple[int, int, str]]:
    """(start, end, path) of this process's memory mappings of files ending in ``suffix`` (Linux)."""
    mappings = []
    for line in Path("/proc/self/maps").read_text().splitlines():
        parts = line.split()
        if len(parts) >= 6 and parts[5].endswith(suffix):
            start, end = (int(value, 16) for value in parts[0].split("-"))
            mappings.append((start, end, parts[5]))
    return mappings


def mapped_from(module: torch.nn.Module, folder: Path) -> tuple[int, int]:
    """(parameters inside a mapping of a file in ``folder``, all parameters) of ``module``."""
    mappings = [(a, b) for a, b, path in file_mappings() if Path(path).parent == folder]
    parameters = list(module.parameters())
    inside = sum(1 for p in parameters if any(a <= p.data_ptr() < b for a, b in mappings))
    return inside, len(parameters)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/maps")
def test_frozen_weights_stay_file_backed_on_the_cpu(tiny_model_dir):
    from skyeye_model.config import ModelConfig
    from skyeye_model.model import build_model

    config = ModelConfig(llm_path=tiny_model_dir / "llm", vision_path=tiny_model_dir / "vision", image_size=56, precision="fp32")
    model = build_model(config, device=torch.device("cpu")).to("cpu")
    base = model.llm.get_base_model()
    frozen_llm = [p for n, p in base.named_parameters() if "lora_" not in n]
    inside, total = mapped_from(torch.nn.ParameterList(frozen_llm), (tiny_model_dir / "llm").resolve())
    assert total > 10 and inside == total  # no private copy of the LLM in this process
    inside, total = mapped_from(model.vision.encoder, (tiny_model_dir / "vision").resolve())
    assert total > 10 and inside == total
    # the trainable parts are ordinary memory, and training them leaves the mapped weights untouched
    assert mapped_from(model.projector, (tiny_model_dir / "llm").resolve())[0] == 0


def test_placement_on_a_gpu_names_the_rank_device():
    from skyeye_model.model import device_placement

    assert device_placement(torch.device("cuda", 3)) == {"device_map": {"": "cuda:3"}}
    assert device_placement(torch.device("cpu")) == {} == device_placement(None)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/maps")
def test_an_eva_pth_stays_file_backed_and_gives_the_plain_loads_features(tmp_path):
    """eva_vit_g.pth (MiniGPT-4's raw state dict, 40 blocks, 16x16 grid; here tiny): every rank maps it."""
    from _model_fixtures import minigpt4_eva_state

    from skyeye_model import eva_minigptv2

    state = minigpt4_eva_state(32, 3, 4)
    pth = tmp_path / "eva_vit_g.pth"
    torch.save(state, pth)
    encoder = eva_minigptv2.open_tower(pth, 56, torch.float32)  # 56 px = the file's 4x4 grid: no resampling
    mappings = [(a, b) for a, b, path in file_mappings(".pth") if Path(path) == pth.resolve()]
    parameters = list(encoder.parameters())
    assert len(parameters) > 10 and all(any(a <= p.data_ptr() < b for a, b in mappings) for p in parameters)
    assert not any(b.is_meta for b in encoder.buffers())  # k_bias is real, not left on the meta device

    # the features of an ordinary build + copy of the same weights (the loader before memory mapping)
    plain = eva_minigptv2.build_encoder(eva_minigptv2.eva_arguments(state), 56)
    plain.load_state_dict(eva_minigptv2.check_keys(plain, state, "EVA"), strict=True)
    pixels = torch.randn(2, 3, 56, 56, generator=torch.Generator().manual_seed(0))
    expected = eva_minigptv2.minigptv2_features(plain.eval(), pixels)
    assert torch.equal(eva_minigptv2.minigptv2_features(encoder.eval(), pixels), expected)

    legacy = tmp_path / "legacy" / "eva_vit_g.pth"  # torch's pre-1.6 format cannot be mapped: read whole
    legacy.parent.mkdir()
    torch.save(state, legacy, _use_new_zipfile_serialization=False)
    assert torch.equal(eva_minigptv2.minigptv2_features(eva_minigptv2.open_tower(legacy, 56, torch.float32).eval(), pixels), expected)


def timm_plain_load(folder: Path, image_size: int) -> torch.nn.Module:
    """timm's own loading of the folder (random init, then the file copied in): what the tower loaded before."""
    import json

    import timm

    config = json.loads((folder / "config.json").read_text())
    overlay = {"file": str(folder / "model.safetensors"), "num_classes": config["pretrained_cfg"]["num_classes"]}
    arguments = {**config["model_args"], "img_size": image_size, "num_classes": 0}
    return timm.create_model(config["architecture"], pretrained=True, pretrained_cfg_overlay=overlay, **arguments).eval()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/maps")
@pytest.mark.parametrize("image_size", [56, 84], ids=["file-grid", "resampled-grid"])
def test_a_timm_tower_folder_stays_file_backed_and_gives_timms_own_features(tmp_path, image_size):
    """A tiny EVA-CLIP in timm's hub layout (config.json + model.safetensors, with a classifier head in the
    file): its parameters are the file's pages, and its features equal those of timm's own loader."""
    pytest.importorskip("timm")
    import json

    import timm
    from safetensors.torch import save_file

    from skyeye_model.model import VisionTower
    from skyeye_model.tiny import write_timm_tower

    folder = tmp_path / "eva"
    folder.mkdir()
    write_timm_tower(folder, 56, 32)  # a 4x4 grid of 14 px patches
    config = json.loads((folder / "config.json").read_text())  # give the file a 5-class head, as a hub tower can have
    headed = timm.create_model(config["architecture"], pretrained=False, num_classes=5, **config["model_args"])
    save_file({k: v.contiguous() for k, v in headed.state_dict().items()}, folder / "model.safetensors")
    config["num_classes"] = config["pretrained_cfg"]["num_classes"] = 5
    (folder / "config.json").write_text(json.dumps(config))

    tower = VisionTower(folder, "timm", image_size, torch.float32)
    mappings = [(a, b) for a, b, path in file_mappings() if Path(path) == (folder / "model.safetensors").resolve()]
    named = dict(tower.encoder.named_parameters())
    backed = {name for name, p in named.items() if any(a <= p.data_ptr() < b for a, b in mappings)}
    resampled = {"pos_embed"} if image_size != 56 else set()  # a new grid is a new (small) tensor
    assert len(named) > 10 and backed == set(named) - resampled
    assert not any(t.is_meta for t in [*tower.encoder.parameters(), *tower.encoder.buffers()])

    plain = timm_plain_load(folder, image_size)
    pixels = torch.randn(2, 3, image_size, image_size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(tower.encoder.forward_features(pixels), plain.forward_features(pixels))
    assert tower.prefix_tokens == plain.num_prefix_tokens == 1 and tower.hidden_size == 32
