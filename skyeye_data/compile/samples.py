"""The samples table schema (docs/ARCHITECTURE.md), declared once for the samples and eval shards."""

from __future__ import annotations

import pyarrow as pa

TURN = pa.struct([pa.field("role", pa.string()), pa.field("content", pa.string())])

SAMPLES_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string()),
        pa.field("source", pa.string()),
        pa.field("task", pa.string()),
        pa.field("split", pa.string()),
        pa.field("image_ids", pa.list_(pa.string())),
        pa.field("conversation", pa.list_(TURN)),
        pa.field("review_status", pa.string()),
        pa.field("provenance", pa.string()),
    ]
)
SAMPLE_TASKS = ("caption", "vqa", "refer", "identify", "detection", "grounding", "conversation")
