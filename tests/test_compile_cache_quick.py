"""The no-change shortcut of ``skyeye build`` (skyeye_data/compile/quick.py): the stamp decides
"nothing changed" without parsing the recipe, and anything the build key depends on defeats it.

Every case runs the real command twice or more on a private copy of the mini corpus: the second
run must take the shortcut (``run_build`` is not called, no output file is rewritten) only when
nothing changed, and otherwise run the build, whose outputs must match a clean build's.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from test_compile_cache import DEMO, PROJECT
from test_compile_cache import output_checksums as checksums
from typer.testing import CliRunner

from skyeye_data import cli as skyeye_cli
from skyeye_data.cli import app
from skyeye_data.compile import cli as compile_cli
from skyeye_data.compile import quick


CODE = quick.toolkit_version()


@pytest.fixture(autouse=True)
def same_code(monkeypatch):
    """The command key's code version as this session found it: an edit of the shared working tree
    while a test runs would otherwise (rightly) defeat the shortcut; a changed version is tested below."""
    monkeypatch.setattr(quick, "toolkit_version", lambda: CODE)


@pytest.fixture
def raw(mini_raw_root, tmp_path) -> Path:
    copy = tmp_path / "raw"
    shutil.copytree(mini_raw_root, copy)
    return copy


@pytest.fixture
def builds(monkeypatch):
    """Calls of the full build path (``run_build``), counted; the shortcut does not call it."""
    calls: list[Path] = []
    real = compile_cli.run_build

    def counted(recipe, raw_root, out, stamp, **options):
        calls.append(Path(out))
        return real(recipe, raw_root, out, stamp, **options)

    monkeypatch.setattr(compile_cli, "run_build", counted)
    return calls


def skyeye_build(recipe: Path, raw: Path, out: Path, *extra: str) -> str:
    result = CliRunner().invoke(app, ["build", str(recipe), "--raw-root", str(raw), "--out", str(out), "--jobs", "1", *extra])
    assert result.exit_code == 0, result.output
    return " ".join(result.output.split())  # rich wraps lines at the terminal width


def output_mtimes(out: Path) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file() and "cache" not in p.relative_to(out).parts}


def test_nothing_changed_takes_the_shortcut_and_writes_nothing(raw, tmp_path, builds):
    out = tmp_path / "out"
    skyeye_build(DEMO, raw, out)
    assert builds == [out] and (out / "cache" / "stamp.json").is_file()
    before = output_mtimes(out)
    said = skyeye_build(DEMO, raw, out)
    assert builds == [out]  # the second run never reached the recipe model or the build
    assert "decided from its stamp" in said and "balanced for 14 of 14 sources" in said
    assert output_mtimes(out) == before
    # --no-cache never takes it
    skyeye_build(DEMO, raw, out, "--no-cache")
    assert builds == [out, out]


@pytest.mark.parametrize("change", ["edit", "touch", "add", "remove", "folder_appears"])
def test_a_changed_added_or_removed_raw_file_defeats_it(raw, tmp_path, builds, change):
    out = tmp_path / "out"
    if change == "folder_appears":
        shutil.move(raw / "rsvg", tmp_path / "rsvg-aside")
    skyeye_build(DEMO, raw, out)
    captions = next((raw / "rsicd").rglob("dataset_rsicd.json"))
    if change == "edit":  # in place: the folder's own mtime stays, only the file's stat says so
        data = json.loads(captions.read_text())
        data["images"][0]["sentences"][0]["raw"] = "a changed caption of a runway"
        captions.write_text(json.dumps(data))
    elif change == "touch":
        os.utime(captions, ns=(captions.stat().st_atime_ns, captions.stat().st_mtime_ns + 10**9))
    elif change == "add":
        (captions.parent / "notes.txt").write_text("a file the converter does not read")
    elif change == "remove":
        victim = next(p for p in sorted((raw / "ucm_captions").rglob("*")) if p.is_file() and p.suffix != ".json")
        victim.unlink()
    else:
        shutil.move(tmp_path / "rsvg-aside", raw / "rsvg")
    skyeye_build(DEMO, raw, out)
    assert len(builds) == 2
    fresh = tmp_path / "fresh"
    skyeye_build(DEMO, raw, fresh, "--no-cache")
    assert checksums(out) == checksums(fresh)
    skyeye_build(DEMO, raw, out)  # and once rebuilt, the shortcut holds again
    assert len(builds) == 3


def test_recipe_ledger_code_options_and_outputs_defeat_it(raw, tmp_path, builds, monkeypatch):
    out = tmp_path / "out"
    recipe = tmp_path / "demo.yaml"
    recipe.write_text(DEMO.read_text())
    skyeye_build(recipe, raw, out)
    # the recipe's bytes: a comment changes no recipe, so the build then only verifies (and stamps again)
    recipe.write_text(DEMO.read_text() + "\n# a comment\n")
    said = skyeye_build(recipe, raw, out)
    assert "nothing changed" in said and "decided from its stamp" not in said and len(builds) == 2
    skyeye_build(recipe, raw, out)
    assert len(builds) == 2
    # a command option the output depends on
    skyeye_build(recipe, raw, out, "--include-unreviewed")
    assert len(builds) == 3
    skyeye_build(recipe, raw, out, "--include-unreviewed")
    assert len(builds) == 3
    # a review ledger where none was: its verdicts may hold samples back
    ledger = tmp_path / "ledger.sqlite"
    skyeye_build(recipe, raw, out, "--include-unreviewed", "--ledger", str(ledger))
    assert len(builds) == 4
    from skyeye_data.review.ledger import ReviewLedger

    with ReviewLedger(ledger):
        pass
    skyeye_build(recipe, raw, out, "--include-unreviewed", "--ledger", str(ledger))
    assert len(builds) == 5
    skyeye_build(recipe, raw, out, "--include-unreviewed", "--ledger", str(ledger))
    assert len(builds) == 5
    # the toolkit's code
    monkeypatch.setattr(quick, "toolkit_version", lambda: "other code")
    skyeye_build(recipe, raw, out, "--include-unreviewed", "--ledger", str(ledger))
    assert len(builds) == 6
    # an output file changed behind the build's back: rebuilt, and the bytes of a clean build again
    sample = next((out / "samples").glob("*.parquet"))
    sample.write_bytes(sample.read_bytes() + b"x")
    skyeye_build(recipe, raw, out, "--include-unreviewed", "--ledger", str(ledger))
    assert len(builds) == 7
    skyeye_build(recipe, raw, tmp_path / "fresh", "--include-unreviewed", "--ledger", str(ledger), "--no-cache")
    assert checksums(out) == checksums(tmp_path / "fresh")


def test_a_build_by_another_command_is_not_taken_for_this_one(raw, tmp_path, builds):
    """The stamp names the build.json key it was written with: a later build by other means (the
    API, another recipe) leaves a stamp that no longer matches."""
    from skyeye_data.compile.build import build
    from skyeye_data.compile.recipe import load_recipe, parse_recipe

    out = tmp_path / "out"
    skyeye_build(DEMO, raw, out)
    other = parse_recipe(DEMO.read_text().replace("seed: 0", "seed: 1"))
    assert other.seed == 1
    build(other, raw, out, jobs=1)
    skyeye_build(DEMO, raw, out)
    assert len(builds) == 2
    fresh = tmp_path / "fresh"
    build(load_recipe(DEMO), raw, fresh, use_cache=False, jobs=1)
    assert checksums(out) == checksums(fresh)


def test_command_table_names_what_each_module_registers():
    for module_name, names in skyeye_cli.COMMAND_MODULES.items():
        app_ = typer.Typer()
        importlib.import_module(module_name).register(app_)
        registered = [c.name for c in app_.registered_commands] + [g.name or g.typer_instance.info.name for g in app_.registered_groups]
        assert sorted(registered) == sorted(names), module_name


def test_own_commands_names_what_the_cli_module_defines():
    own = [c.name for c in app.registered_commands if c.callback.__module__ == skyeye_cli.__name__]
    assert sorted(own) == sorted(skyeye_cli.OWN_COMMANDS)


def test_skyeye_convert_registers_no_other_command_module(mini_raw_root, tmp_path):
    """`skyeye convert` imports none of the command modules (the review package, the trainer's CLI, the
    build's): they were half a second of every conversion's startup."""
    probe = (
        "import sys\nfrom skyeye_data import cli\n"
        f"sys.argv = ['skyeye', 'convert', 'rsvqa_lr', {str(mini_raw_root / 'rsvqa_lr')!r}, '--out', {str(tmp_path / 'out')!r}]\n"
        "try:\n    cli.main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
        f"print('COMMAND MODULES', sorted(m for m in {sorted(skyeye_cli.COMMAND_MODULES)!r} if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=PROJECT, timeout=120)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out" / "rsvqa_lr.parquet").is_file()
    assert "COMMAND MODULES []" in " ".join(done.stdout.split()), done.stdout[-2000:]


def test_a_no_change_build_imports_neither_converters_nor_stages(raw, tmp_path, monkeypatch):
    """`skyeye build` registers only its own command module, and the shortcut needs no converter,
    recipe model, Arrow or image library (their imports were most of a no-change rebuild's time)."""
    monkeypatch.undo()  # the code version of now, as the second process will compute it
    out = tmp_path / "out"
    skyeye_build(DEMO, raw, out)
    probe = (
        "import sys\nfrom skyeye_data import cli\n"
        f"sys.argv = ['skyeye', 'build', {str(DEMO)!r}, '--raw-root', {str(raw)!r}, '--out', {str(out)!r}]\n"
        "try:\n    cli.main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
        "heavy = ('pyarrow', 'PIL', 'av', 'numpy', 'skyeye_data.sources', 'skyeye_data.compile.recipe', 'skyeye_data.compile.build',"
        " 'skyeye_data.review', 'skyeye_model.cli')\n"
        "print('HEAVY', sorted(m for m in heavy if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=PROJECT, timeout=120)
    assert done.returncode == 0, done.stderr
    said = " ".join(done.stdout.split())
    assert "decided from its stamp" in said and "HEAVY []" in said, said[-2000:]


def test_an_upgraded_output_library_changes_the_code_versions(monkeypatch):
    """A pyarrow (or Pillow, ...) upgrade writes other bytes (Parquet's created_by, decoding): every key built
    on the code version (records, build, stamp) must change with it, without importing the library."""
    from skyeye_data.compile import fingerprint

    before = fingerprint.toolkit_version(), fingerprint.converter_version()
    real = importlib.metadata.version

    def upgraded(name: str) -> str:
        return "999.0" if name == "pyarrow" else real(name)

    monkeypatch.setattr(importlib.metadata, "version", upgraded)
    assert fingerprint.library_versions()["pyarrow"] == "999.0"
    after = fingerprint.toolkit_version(), fingerprint.converter_version()
    assert after[0] != before[0] and after[1] != before[1]


def test_every_runtime_dependency_is_keyed_or_named_console_only():
    import tomllib

    from skyeye_data.compile import fingerprint

    project = tomllib.loads((PROJECT / "pyproject.toml").read_text())["project"]
    names = {re.split(r"[<>=!~\[; ]", spec, maxsplit=1)[0].lower() for spec in project["dependencies"]}
    assert names <= set(fingerprint.OUTPUT_LIBRARIES) | set(fingerprint.CONSOLE_ONLY), names
    assert set(fingerprint.library_versions()) == set(fingerprint.OUTPUT_LIBRARIES)
    assert fingerprint.library_versions()["pyarrow"] is not None  # found by its metadata in this environment
