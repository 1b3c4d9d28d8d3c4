"""Fixtures of the hostile-input suite: the mini corpus (made once a session), a case, a clean build.

The helpers and the invariants every build is checked for are in ``_hostile.py``.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from _hostile import SKYEYE, Case, Outcome


@pytest.fixture(scope="session")
def mini_corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("hostile-corpus") / "raw"
    done = subprocess.run([*SKYEYE, "synth", str(root), "--scale", "mini"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return root


@pytest.fixture
def case(tmp_path, mini_corpus) -> Case:
    return Case(tmp_path, mini_corpus)


@pytest.fixture(scope="session")
def clean_build(tmp_path_factory, mini_corpus) -> Outcome:
    """The unmutated corpus built once: what reruns are compared against."""
    built = Case(tmp_path_factory.mktemp("hostile-clean"), mini_corpus)
    outcome = built.build()
    assert outcome.rc == 0, outcome.output[-3000:]
    return outcome
