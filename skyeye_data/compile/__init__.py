"""The instruction compiler: recipe + converted records → instruction samples, images, eval shards.

Modules, one job each: :mod:`.recipe` (the YAML recipe model) and :mod:`.options` (builder options),
:mod:`.templates` (instruction pools), :mod:`.builders` (record → sample drafts, registered by
name), :mod:`.mixes` (multi-source builders, one module each), :mod:`.evalsets` (val/test eval
items), :mod:`.images` (content-addressed images table), :mod:`.shards` (streaming sharded Parquet),
:mod:`.stages` (convert, leak guard, compile sources, mixes, dedupe, review gate, write),
:mod:`.build` (composes the stages), :mod:`.cache` (incremental builds: records, build key),
:mod:`.fingerprint` (code and raw-folder fingerprints), :mod:`.quick` (the no-change shortcut of
``skyeye build``: its stamp), :mod:`.result` (what a build hands back),
:mod:`.segments` (compiled samples per source and mix, and their cache), :mod:`.batch_shards`
(sharded Parquet from Arrow tables), :mod:`.tally` (counts),
:mod:`.manifest` and :mod:`.card` (manifest, dataset card), :mod:`.stats` (counts and
distributions), :mod:`.cli` (the commands). The output tables' schemas are in :mod:`skyeye_data.tables`.

Only train records become training samples (``OUT/samples``); the val/test records of the
benchmark sources become eval items (``OUT/eval``), those of other sources are held out, counted.
"""
