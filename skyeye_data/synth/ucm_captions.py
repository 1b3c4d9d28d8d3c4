"""Synthetic UCM-Captions: ``dataset.json`` + ``imgs/<n>.tif`` (see :mod:`skyeye_data.synth._karpathy`)."""

from __future__ import annotations

from skyeye_data.sources.ucm_captions import UCM_CLASSES, UCMCaptions
from skyeye_data.synth._karpathy import numbered_tif_writer

write = numbered_tif_writer(UCMCaptions(), UCM_CLASSES, image_size=(256, 256), mini_splits={"train": 5, "val": 2, "test": 1})
