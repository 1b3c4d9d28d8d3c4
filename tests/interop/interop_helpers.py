"""Helpers of the interop tests (a module of its own: two conftest.py files share the name "conftest")."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from skyeye_data.cli import app

PROJECT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
INTEROP_PYTHON = PROJECT / ".venv-interop" / "bin" / "python"
runner = CliRunner()


def invoke(*args: str) -> str:
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.output


def run_python(python: Path, script: str, *args: object, timeout: int = 600) -> str:
    """Run one of this folder's scripts with another venv's python; its stdout (stderr shown on failure)."""
    done = subprocess.run([str(python), str(HERE / script), *map(str, args)], capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{script} failed:\n{done.stderr[-6000:]}"
    return done.stdout


def tiny_processor(python: Path, texts: list[str], out: Path) -> Path:
    """A tiny Qwen2-VL processor saved to ``out`` by ``python`` (see tiny_processor.py)."""
    (out.parent / f"{out.name}-texts.json").write_text(json.dumps(texts))
    run_python(python, "tiny_processor.py", out, out.parent / f"{out.name}-texts.json")
    return out


def this_python() -> Path:
    return Path(sys.executable)
