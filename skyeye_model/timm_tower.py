"""A vision tower folder in timm's hub layout, opened so that every rank shares one copy of its weights.

The layout (``timm/models/_hub.py`` ``push_to_hf_hub`` / ``save_for_hf``, and the tiny tower of
``skyeye_model.tiny.write_timm_tower``): ``config.json`` with ``architecture``, ``model_args`` (the
constructor's arguments) and ``pretrained_cfg``, beside ``model.safetensors`` (or ``pytorch_model.bin``).

timm's own loading, ``create_model(pretrained=True, pretrained_cfg_overlay={"file": ...})``
(timm 1.0.31 ``models/_builder.py`` ``load_pretrained`` → ``models/_helpers.py`` ``load_state_dict``),
builds the model with random weights first, reads the file with ``safetensors.torch.load_file`` and
copies every tensor into those weights (``model.load_state_dict(state_dict, strict=strict)``): two
full copies in each rank's memory while it loads, one private copy after. Here the model is built
with its parameters on the meta device (``accelerate.init_empty_weights(include_buffers=False)``: no
random init; buffers that are not in the file, such as EVA's rotary tables, are computed as usual),
and ``load_state_dict(assign=True)`` makes the parameters the file's own tensors: ``safe_open`` maps
the file, so on the CPU they are views of its pages, shared by every rank through the page cache
(copy-on-write: the tower is frozen, nothing writes them). A tensor in another dtype than the run's
is converted (a private copy of that tensor); the position embeddings are resampled to
``image_size`` when the file's grid differs (a small private tensor).

Of ``load_pretrained``'s steps, the ones that apply to a tower used as a feature extractor are done the
same way: the architecture's checkpoint filter (each timm model module's ``checkpoint_filter_fn``, the
``pretrained_filter_fn`` its ``_create_*`` passes to ``build_model_with_cfg``, e.g. ``models/eva.py``
``_create_eva``; it remaps original EVA/OpenCLIP keys and resamples ``pos_embed`` to the model's grid),
and dropping the classifier named in ``pretrained_cfg["classifier"]`` (the tower is built with
``num_classes=0``). The input-channel adaptation is not needed (RGB in, RGB weights). That the
module-level name is the filter in use is read from timm's code (eva.py, vision_transformer.py), not
an API: a module without one loads the file's keys as they are, checked strictly.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from torch import nn

from skyeye_model.eva_minigptv2 import load_pth

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


def weights_file(path: Path) -> Path:
    found = next((path / name for name in WEIGHT_FILES if (path / name).exists()), None)
    if found is None:
        raise FileNotFoundError(f"{path} has neither model.safetensors nor pytorch_model.bin")
    return found


def mapped_state_dict(weights: Path) -> dict[str, torch.Tensor]:
    """The file's tensors as views of its memory mapping (safetensors ``safe_open``; a ``.bin`` through
    ``eva_minigptv2.load_pth``: ``torch.load(mmap=True, weights_only=True)``, a legacy-format file read whole)."""
    if weights.suffix == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(weights), framework="pt", device="cpu") as handle:
            return {key: handle.get_tensor(key) for key in handle.keys()}
    return load_pth(weights)


def open_timm_tower(path: Path, image_size: int, dtype: torch.dtype) -> nn.Module:
    """The timm model of the folder at ``image_size``, without its classifier, its weights the file's."""
    try:
        import timm
    except ImportError as error:
        raise ImportError("EVA-CLIP towers need timm: pip install -e '.[train]' (see docs/training.md)") from error
    from accelerate import init_empty_weights

    config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    weights = weights_file(path)
    arguments = {**config.get("model_args", {}), "img_size": image_size, "num_classes": 0}  # img_size: the run's grid
    with init_empty_weights(include_buffers=False):
        encoder = timm.create_model(config["architecture"], pretrained=False, **arguments)
    state = mapped_state_dict(weights)
    filter_fn = getattr(sys.modules[type(encoder).__module__], "checkpoint_filter_fn", None)
    if filter_fn is not None:
        state = filter_fn(state, encoder)
    classifiers = encoder.pretrained_cfg.get("classifier") or ()
    for name in (classifiers,) if isinstance(classifiers, str) else classifiers:
        if f"{name}.weight" not in encoder.state_dict():  # num_classes=0: the head is an Identity
            state.pop(f"{name}.weight", None), state.pop(f"{name}.bias", None)
    encoder.load_state_dict(state, strict=True, assign=True)
    return encoder.to(dtype)
