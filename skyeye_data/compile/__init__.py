"""The instruction compiler: recipe + converted records → instruction samples, images, eval shards.

Modules, one job each: :mod:`.recipe` (the YAML recipe model), :mod:`.templates` (instruction
pools), :mod:`.builders` (record → samples, registered by name), :mod:`.images` (content-addressed
images table), :mod:`.shards` (streaming sharded Parquet), :mod:`.evalsets` (val/test eval shards),
:mod:`.samples` (the samples table schema), :mod:`.mixes` (multi-source builders, one module
each), :mod:`.build` (the orchestration), :mod:`.card` (dataset card), :mod:`.export` (LLaVA,
MiniGPT-v2), :mod:`.stats` (counts and distributions), :mod:`.cli` (the commands).

Only train records become training samples (``OUT/samples``); the val/test records of the
benchmark sources become eval items (``OUT/eval``), those of other sources are held out, counted.
"""
