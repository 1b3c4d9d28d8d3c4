"""Shared test fixtures.

``real_samples`` points at ``../shared/real-samples`` (real annotation files of the public
datasets). A user's clone has no ``../shared``: those tests skip with the reason; CI always has it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
REAL_SAMPLES = Path(os.environ.get("SKYEYE_REAL_SAMPLES", PROJECT_ROOT.parent / "shared" / "real-samples"))


@pytest.fixture(scope="session")
def real_samples() -> Path:
    if not REAL_SAMPLES.is_dir():
        pytest.skip(
            f"real annotation samples not found at {REAL_SAMPLES} (they live in ../shared/real-samples "
            "beside the project in CI; set SKYEYE_REAL_SAMPLES to point elsewhere)"
        )
    return REAL_SAMPLES


@pytest.fixture(scope="session")
def mini_raw_root(tmp_path_factory) -> Path:
    """The whole synthetic mini corpus, generated once per test session."""
    from skyeye_data.synth import synthesize_raw_root

    root = tmp_path_factory.mktemp("mini-raw")
    synthesize_raw_root(root, "mini", seed=0)
    return root
