"""Synthetic Sydney-Captions: ``dataset.json`` + ``imgs/<n>.tif`` (see :mod:`skyeye_data.synth._karpathy`)."""

from __future__ import annotations

from skyeye_data.sources.sydney_captions import SYDNEY_CLASSES, SydneyCaptions
from skyeye_data.synth._karpathy import numbered_tif_writer

write = numbered_tif_writer(SydneyCaptions(), SYDNEY_CLASSES, image_size=(500, 500), mini_splits={"train": 4, "val": 2, "test": 1})
