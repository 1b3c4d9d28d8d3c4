"""Scoring of generated answers on the paper's benchmarks (``skyeye eval``).

One module per job: :mod:`.predictions` reads and validates the predictions Parquet,
:mod:`.captions` (COCO caption metrics), :mod:`.vqa` (RSVQA accuracies), :mod:`.grounding`
(Acc@IoU), :mod:`.evaluate` groups rows by benchmark and runs them, :mod:`.report` writes the
Markdown/JSON/plots, :mod:`.published` reads the cited published figures, :mod:`.cli` adds the
command. Nothing here imports torch; pycocoevalcap and matplotlib are imported when used.
"""
