"""The stages of ``skyeye build``, one job each (docs/ARCHITECTURE.md, "The build pipeline").

:mod:`.convert` (raw folders → records tables, rejections into the quarantine, the val/test images
noted on the way) → :mod:`.leak_guard` (which train records may not share an eval image, by the
recipe's scope) → :mod:`.compile_sources` (one source's records → sample drafts and eval items) →
:mod:`.mix` (multi-source builders over the kept records) → :mod:`.sink` (each compiled sample:
:mod:`.dedupe`, then :mod:`.review_gate`, then the samples table) → :mod:`.write` (sharded tables
under temporary names, renamed together at the end; card and manifest last).

The per-record work (:func:`.compile_sources.compile_batch`) is a pure function of a picklable
plan, the leak guard and a batch of records, so an executor other than the local loop (a process
pool per source, Ray Data over batches) can run it unchanged; what touches shared state (image
table, dedupe, review gate, writers) runs where the results are merged, in the recipe's order.
"""
