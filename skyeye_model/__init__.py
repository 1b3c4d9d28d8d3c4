"""SkyEyeGPT-style LoRA fine-tuning on SkyEye shards.

Modules, one job each:

- ``config``     — the training config (pydantic, loaded from YAML).
- ``template``   — the Llama-2 chat template (ours or MiniGPT-v2's exact strings) per segment, and the length policy.
- ``images``     — the images table: an on-disk ``image_id → (file, row group, row)`` index and decoding.
- ``data``       — the map-style sample dataset over ``OUT/samples`` (indexed by row group, read lazily).
- ``sampler``    — the per-epoch mixture plan and its deterministic split over ranks.
- ``collate``    — padding (or packing) a list of encoded samples into a batch.
- ``model``      — frozen vision tower → 4-patch grouping → linear projector → causal LM with LoRA.
- ``eva_minigptv2`` — MiniGPT-v2's EVA ViT-g features (39 blocks, unit LayerNorm) and its ``eva_vit_g.pth`` layout.
- ``minigptv2``  — MiniGPT-v2 / SkyEyeGPT ``.pth`` checkpoints imported into, and exported from, checkpoint folders.
- ``strategy``   — what an accelerate config asks for (mixed precision, FSDP2 sharding), honoured or refused.
- ``checkpoint`` — trainable weights + optimizer / scheduler / RNG state + data position.
- ``train``      — the training loop (single process, torchrun or accelerate launch; DDP or FSDP).
- ``predict``    — batched greedy generation over eval shards, and the terminal chat.
- ``merge``      — LoRA merged into the LLM, written next to the projector.
- ``tiny``       — a tiny random model directory (tokenizer trained on the fly) for tests and the demo.
- ``cli``        — ``skyeye train run|merge|import|export|make-tiny``, ``skyeye predict``, ``skyeye chat`` (imports torch lazily).

Importing this package imports nothing heavy; torch is imported by the modules that need it.
"""
