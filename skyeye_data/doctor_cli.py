"""``skyeye doctor RAW_ROOT [--recipe R]``: the raw root checked against the published layouts and counts."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
import yaml

from skyeye_data import safeyaml
from skyeye_data.console import fail, stdout
from skyeye_data.doctor import SourceCheck, diagnose, unknown_folders


def recipe_sources(recipe: Path) -> list[str]:
    """The source names a recipe builds from (its ``sources:`` and every mix's ``sources:``), read as
    plain safe YAML so the doctor needs nothing of the compiler."""
    try:  # limited safe YAML: an alias bomb is refused before the walk over the mixes
        data = safeyaml.load_limited(recipe.read_text(encoding="utf-8"))[1] or {}
    except (OSError, yaml.YAMLError, safeyaml.YamlLimitError) as error:
        raise fail(f"{recipe}: cannot be read as a recipe ({error})") from None
    if not isinstance(data, dict):
        raise fail(f"{recipe}: not a recipe (expected a mapping with sources:)")
    names = [str(n) for n in (data.get("sources") or {})]
    mixes = data.get("mixes") or {}
    for mix in mixes.values() if isinstance(mixes, dict) else []:
        listed = mix.get("sources") if isinstance(mix, dict) else None
        names += [str(n) for n in listed or [] if str(n) not in names]
    return names


def render(check: SourceCheck) -> list[str]:
    head = f"{check.name:<16} "
    if not check.present:
        return [head + f"absent ({check.folder} is not a folder): skipped"]
    if check.problem:
        return [head + "CANNOT BE BUILT", f"    {check.problem}"]
    lines = [head + f"ok  {check.layout}  [{check.seconds:.2f} s]"]
    if check.evidence:
        lines.append(f"    layout from: {check.evidence}")
    if check.counts is not None:
        counted = ", ".join(f"{part} {n:,}" for part, n in check.counts.items())
        lines.append(f"    {check.unit}: {counted}" + ("" if check.published else " (no published count to compare)"))
    lines += [f"    {line}" for line in check.differences()]
    return lines


def register(app: typer.Typer) -> None:
    @app.command("doctor")
    def doctor_command(
        raw_root: Annotated[Path, typer.Argument(help="raw root: one folder per source, named after its converter")],
        recipe: Annotated[Optional[Path], typer.Option("--recipe", "-r", help="check only this recipe's sources")] = None,
    ) -> None:
        """Which published layout each source folder holds, its records counted against the published counts
        (per split or file), what is missing or extra and how to fix it; nothing is converted. Exits 1 when a
        source folder that is present (or, with --recipe, a recipe source) cannot be built."""
        if not raw_root.is_dir():
            raise fail(f"{raw_root} is not a folder")
        names = recipe_sources(recipe) if recipe else None
        checks = diagnose(raw_root, names)
        for check in checks:
            stdout.print("\n".join(render(check)), markup=False, highlight=False, soft_wrap=True)
        for folder in unknown_folders(raw_root) if recipe is None else []:
            stdout.print(f"{folder:<16} no converter is named after this folder (see `skyeye sources`)", markup=False, soft_wrap=True)
        broken = [c.name for c in checks if c.present and c.problem]
        absent = [c.name for c in checks if not c.present]
        if recipe and absent:
            stdout.print(f"recipe sources absent (skipped by `skyeye build`, an error with --require-all): {', '.join(absent)}",
                         markup=False)  # fmt: skip
        if broken:
            raise typer.Exit(1)
