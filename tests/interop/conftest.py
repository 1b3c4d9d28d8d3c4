"""Fixtures of the interop tests: the mini build, its exports, and the consumers' venv.

TRL runs in the project's venv (its pins agree with ours). LLaMA-Factory pins versions that fight
the project's, so it lives in ``.venv-interop`` (made by ``make install``) and runs via subprocess:
absent outside CI, those tests skip and say so; in CI (CI=true) its absence is a failure.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from interop_helpers import INTEROP_PYTHON, PROJECT, invoke


@pytest.fixture(scope="session")
def mini_build(mini_raw_root, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("interop-build")
    invoke("build", PROJECT / "recipes" / "demo.yaml", "--raw-root", mini_raw_root, "--out", out)
    return out


@pytest.fixture(scope="session")
def export_of(mini_build, tmp_path_factory):
    """``export_of("hf")`` -> the folder of that export of the mini build (made once per session)."""
    made: dict[str, Path] = {}

    def export(layout: str, *options: str) -> Path:
        key = " ".join((layout, *options))
        if key not in made:
            made[key] = tmp_path_factory.mktemp(f"export-{layout}")
            invoke("export", layout, mini_build, "--to", made[key], *options)
        return made[key]

    return export


@pytest.fixture(scope="session")
def interop_python() -> Path:
    if not INTEROP_PYTHON.is_file():
        message = f"{INTEROP_PYTHON} is absent: `make install` makes it (LLaMA-Factory and its pins)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return INTEROP_PYTHON
