"""The stages of ``skyeye build``, one job each (docs/ARCHITECTURE.md, "The build pipeline").

:mod:`.convert` (raw folders → records tables, rejections into the quarantine, the val/test images
noted on the way) → :mod:`.leak_guard` (which train records may not share an eval image, by the
recipe's scope) → :mod:`.compile_sources` (one source's records → sample drafts and eval items) →
:mod:`.mix` (multi-source builders over the admitted records), run per source and per mix by
:mod:`.compile_segments` (units, in worker processes or from the compiled-samples cache, each into a
segment) → :mod:`.merge` (the segments in the recipe's order) → :mod:`.sink` (each compiled sample:
:mod:`.dedupe`, then :mod:`.review_gate`, then the samples table) → :mod:`.write` (sharded tables
under temporary names, renamed together at the end; card and manifest last).

The per-record work (:func:`.compile_sources.compile_batch`) is a pure function of a picklable
plan, the leak guard and a batch of records, so any executor (the ``--jobs`` process pool, Ray Data
over batches) can run it unchanged; what touches shared state (images table, dedupe digests,
writers) runs where the segments are merged, in the recipe's order.
"""
