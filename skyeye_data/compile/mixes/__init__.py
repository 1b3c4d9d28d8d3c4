"""Multi-source builders, one module each (Conversa dialogs, RSPG, ERA-VQA, ...).

A module here defines a function decorated with
:func:`skyeye_data.compile.builders.mix_builder`; :func:`load_mix_builders` imports every module
of this package, so adding a builder is adding a file -- the recipe names it under ``mixes:``.
"""

from __future__ import annotations

import importlib
import pkgutil

_loaded = False


def load_mix_builders() -> None:
    global _loaded
    if _loaded:
        return
    for module in pkgutil.iter_modules(__path__):
        if not module.name.startswith("_"):
            importlib.import_module(f"{__name__}.{module.name}")
    _loaded = True
