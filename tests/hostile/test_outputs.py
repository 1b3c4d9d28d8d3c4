"""What a build leaves in OUT (issue 18, 'Outputs' 14-15, and kill -9 / tokens, which held)."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from _hostile import CANARY, DEMO_RECIPE, SKYEYE

pytestmark = pytest.mark.timeout(900)


def snapshot(folder: Path) -> dict[str, str]:
    """Every entry under ``folder`` (hidden ones too) → sha256 of its bytes ("dir" for folders)."""
    if not folder.exists():
        return {}
    return {
        p.relative_to(folder).as_posix(): ("dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest())
        for p in sorted(folder.rglob("*"))
    }


def _break_one_line(case) -> None:
    with open(case.find("rsivqa", "ucm_vqa.txt"), "a", encoding="utf-8") as handle:
        handle.write("no separator on this line\n")


def test_strict_on_a_fresh_output_writes_nothing(case):
    _break_one_line(case)
    outcome = case.build("--strict")
    assert outcome.rc == 2
    assert "ucm_vqa.txt" in outcome.output and "malformed line" in outcome.output
    assert not case.out.exists()


def test_strict_over_an_existing_build_leaves_it_exactly_as_it_was(case):
    first = case.build()
    assert first.rc == 0
    before = snapshot(case.out)
    _break_one_line(case)
    outcome = case.build("--strict")
    assert outcome.rc == 2 and "malformed line" in outcome.output
    assert snapshot(case.out) == before


def test_strict_passes_on_good_input_and_writes_the_same_build(case, clean_build):
    """The mini corpus holds only deliberate exclusions: --strict validates it and writes what a build writes."""
    outcome = case.build("--strict")
    assert outcome.rc == 0, outcome.output[-3000:]
    assert outcome.manifest["files"] == clean_build.manifest["files"]


HOLDER = """
import sys, time
from pathlib import Path
from skyeye_data.io import output_lock
with output_lock(Path(sys.argv[1])):
    print("held", flush=True)
    time.sleep(120)
"""


def test_second_build_into_the_same_output_exits_2_naming_the_pid(case):
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(case.out)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        theirs = case.out / "samples" / f".train-00000-of-00001.parquet.{holder.pid}.tmp"
        theirs.parent.mkdir(parents=True)
        theirs.write_bytes(b"another build's half-written shard")
        outcome = case.build()
        assert outcome.rc == 2
        assert f"is being built by PID {holder.pid}" in outcome.output
        assert theirs.read_bytes() == b"another build's half-written shard"  # never deleted
    finally:
        holder.kill()
        holder.wait()
    # the holder is dead now: its temporary is stale and the next build cleans it up
    outcome = case.build()
    assert outcome.rc == 0
    assert not theirs.exists()


def test_kill_9_at_any_point_then_rerun_is_byte_identical(case, clean_build):
    delays = (0.5, 1.5, 3.0, 5.0, 8.0)
    for delay in delays:
        process = subprocess.Popen(
            [*SKYEYE, "build", str(DEMO_RECIPE), "--raw-root", str(case.raw), "--out", str(case.out), "--include-unreviewed"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        time.sleep(delay)
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    outcome = case.build()
    assert outcome.rc == 0
    assert outcome.manifest["files"] == clean_build.manifest["files"]
    assert not [p for p in case.out.rglob("*.tmp")]


def test_label_studio_token_from_the_environment_is_never_written(case):
    outcome = case.build(env={"LABEL_STUDIO_API_KEY": CANARY, "LABEL_STUDIO_URL": "http://127.0.0.1:9"})
    assert outcome.rc == 0  # and the canary invariant of Case.build found the token in no output file
