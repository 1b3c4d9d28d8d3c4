"""The output tables' Arrow schemas, declared once (docs/ARCHITECTURE.md, "Build output").

Bottom layer: the compiler writes these tables, review reads and queues samples, export and
evaluation read them, ``skyeye_model`` reads samples/images/eval and writes predictions. Nothing
here imports from the rest of the toolkit, so every layer may import it.
"""

from __future__ import annotations

import pyarrow as pa

TURN = pa.struct([pa.field("role", pa.string()), pa.field("content", pa.string())])

# OUT/samples/<split>-NNNNN-of-NNNNN.parquet
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

# OUT/review-queue/queue-NNNNN.parquet: samples the review gate holds back, same columns as samples
REVIEW_QUEUE_SCHEMA = SAMPLES_SCHEMA

# OUT/images/images-NNNNN.parquet: image_id is the sha256 of the stored bytes
IMAGES_SCHEMA = pa.schema(
    [
        pa.field("image_id", pa.string()),
        pa.field("bytes", pa.binary()),
        pa.field("format", pa.string()),
        pa.field("width", pa.int64()),
        pa.field("height", pa.int64()),
    ]
)

# OUT/eval/<source>-<split>-NNNNN.parquet: the sample columns plus the references
EVAL_SCHEMA = pa.schema(
    list(SAMPLES_SCHEMA)
    + [
        pa.field("references", pa.list_(pa.string())),
        pa.field("ref_boxes", pa.list_(pa.list_(pa.float64()))),
        pa.field("question_type", pa.string()),
        pa.field("subset", pa.string()),
        pa.field("width", pa.int64()),
        pa.field("height", pa.int64()),
    ]
)

# `skyeye predict` output: these eval columns carried over, plus the generated answer
PREDICTION_CARRIED_COLUMNS = ["id", "source", "task", "split", "subset", "question_type", "references", "ref_boxes", "width", "height"]
PREDICTION_SCHEMA = pa.schema(
    [EVAL_SCHEMA.field(name) for name in PREDICTION_CARRIED_COLUMNS]
    + [pa.field("prediction", pa.string()), pa.field("pred_boxes", pa.list_(pa.list_(pa.float64())))]
)
