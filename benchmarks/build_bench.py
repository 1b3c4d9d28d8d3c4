"""Build SkyEye-968k on the paper-scale synthetic corpus: time, memory, and the counts against the paper.

    python benchmarks/build_bench.py                      # synthesizes the corpus into a temporary folder
    python benchmarks/build_bench.py --raw /tmp/paper-raw  # reuses (or first writes) a corpus there
    python benchmarks/build_bench.py --skip-baseline       # only the build
    python benchmarks/build_bench.py --unguarded           # also the paper's construction (leak guard off)

Steps, each in its own subprocess so that its peak memory is its own (``os.wait4`` rusage):

1. ``skyeye synth RAW --scale paper`` (unless RAW already holds a corpus): the real datasets' image
   and record counts, tiny images;
2. ``skyeye build recipes/skyeye-968k.yaml --include-unreviewed`` (the generated sets count, reviewed or not): wall time, samples/s, peak RSS;
3. the baseline on the same input: every source converted, the recipe's record builders run on the
   train records, the rows handed to ``datasets.Dataset.from_generator`` and written with
   ``to_parquet`` -- no image table, eval shards, leak guard, mixes or manifest, so it does less
   work than the build; the ratio is baseline time / build time;

then the per-source sample counts of the build next to the paper's table, with ``built + kept out
by the leak guard`` for the sources the guard touches (the paper's table has no guard; see the
recipe's header).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
RECIPE = PROJECT / "recipes" / "skyeye-968k.yaml"
SKYEYE = [sys.executable, "-m", "skyeye_data.cli"]

# recipe entry (source or mix) -> (the paper's name, the paper's count)
PAPER_TABLE: dict[str, tuple[str, int]] = {
    "rsicd": ("RSICD", 43_700),
    "rsitmd": ("RSITMD", 21_500),
    "ucm_captions": ("UCM-Captions", 8_400),
    "sydney_captions": ("Sydney-Captions", 2_500),
    "nwpu_captions": ("NWPU-Captions", 126_000),
    "capera": ("CapERA", 7_400),
    "era_vqa": ("ERA-VQA", 1_500),
    "rsivqa": ("RSIVQA", 17_700),
    "rsvqa_lr": ("RSVQA-LR", 57_200),
    "rsvqa_hr": ("RSVQA-HR", 625_300),
    "rsvg": ("RSVG", 5_500),
    "dior_rsvg": ("DIOR-RSVG", 27_000),
    "rspg": ("RSPG", 6_800),
    "dota_conversa": ("DOTA-Conversa", 1_400),
    "dior_conversa": ("DIOR-Conversa", 14_700),
    "ucm_conversa": ("UCM-Conversa", 1_700),
    "sydney_conversa": ("Sydney-Conversa", 500),
}
PAPER_TOTAL = 968_000
# the paper's counts are rounded to 0.1k: a count within half a unit of that rounding matches it
ROUNDING = 50


def run_measured(command: list[str], log: Path) -> tuple[float, int, int]:
    """Run a command; (wall seconds, peak RSS in MiB of it and the children it waited for, exit code)."""
    start = time.perf_counter()
    with open(log, "w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=PROJECT)
        _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    return wall, usage.ru_maxrss // 1024, os.waitstatus_to_exitcode(status)


def ensure_corpus(raw: Path, work: Path) -> None:
    if (raw / "rsvqa_hr").is_dir():
        print(f"reusing the corpus at {raw}")
        return
    wall, rss, code = run_measured([*SKYEYE, "synth", str(raw), "--scale", "paper"], work / "synth.log")
    if code:
        sys.exit(f"synth failed (exit {code}); see {work / 'synth.log'}")
    print(f"synthesized the paper-scale corpus in {wall:.0f} s (peak RSS {rss} MiB) at {raw}")


BASELINE = r'''
import sys, tempfile
from pathlib import Path
import datasets
from skyeye_data.compile.builders import RECORD_BUILDERS, BuilderContext, SampleDraft
from skyeye_data.compile.recipe import load_recipe
from skyeye_data.compile.templates import TemplatePools
from skyeye_data.sources import get_source
from skyeye_data.sources.base import Rejected

recipe, raw, out = load_recipe(Path(sys.argv[1])), Path(sys.argv[2]), Path(sys.argv[3])
pools = TemplatePools(recipe.templates, recipe.seed)

def rows():
    for name, spec in recipe.sources.items():
        raw_dir = raw / recipe.raw_folder(name)
        builders = [(RECORD_BUILDERS[b], BuilderContext(name, b, raw_dir, o, pools, recipe.box_style)) for b, o in spec.builders.items()]
        for record in get_source(name).records(raw_dir):
            if isinstance(record, Rejected) or record.split != "train":
                continue
            if spec.subsets is not None and record.subset not in spec.subsets:
                continue
            for builder, ctx in builders:
                for draft in builder.fn(record, ctx):
                    if isinstance(draft, SampleDraft):
                        yield {"id": draft.id, "source": name, "task": draft.task, "image": str(draft.media.path),
                               "conversation": draft.conversation}

with tempfile.TemporaryDirectory() as cache:
    dataset = datasets.Dataset.from_generator(rows, cache_dir=cache)
    dataset.to_parquet(str(out))
    print(len(dataset))
'''


def within(count: int, paper: int) -> bool:
    return abs(count - paper) <= max(0.01 * paper, ROUNDING)


def samples_by_set(manifest: dict) -> dict[str, int]:
    return {name: entry.get("samples_total", 0) for name, entry in {**manifest["sources"], **manifest["mixes"]}.items()}


def report_counts(manifest: dict, unguarded: dict | None) -> None:
    """The built counts next to the paper's table (and, when given, those of the build without the guard)."""
    built, plain = samples_by_set(manifest), samples_by_set(unguarded) if unguarded else {}
    kept_out = {name: s.get("leak_guard_excluded_total", 0) for name, s in manifest["sources"].items()}
    head = f"\n{'set':<16} {'paper':>8} {'built':>8} {'diff':>7} {'match':>5}  {'kept out':>8}"
    print(head + (f"  {'no guard':>8} {'diff':>7} {'match':>5}" if unguarded else ""))
    totals = [0, 0]
    for name, (label, paper) in PAPER_TABLE.items():
        count, guard = built.get(name, 0), kept_out.get(name, 0)
        totals[0] += count
        line = f"{label:<16} {paper:>8} {count:>8} {100 * (count - paper) / paper:>+6.1f}% {'yes' if within(count, paper) else 'NO':>5}  {guard or '':>8}"
        if unguarded:
            other = plain.get(name, 0)
            totals[1] += other
            line += f"  {other:>8} {100 * (other - paper) / paper:>+6.1f}% {'yes' if within(other, paper) else 'NO':>5}"
        print(line)
    line = f"{'total':<16} {PAPER_TOTAL:>8} {totals[0]:>8} {100 * (totals[0] - PAPER_TOTAL) / PAPER_TOTAL:>+6.1f}% {'':>5}  {'':>8}"
    print(line + (f"  {totals[1]:>8} {100 * (totals[1] - PAPER_TOTAL) / PAPER_TOTAL:>+6.1f}%" if unguarded else ""))
    print("match: within 1% of the paper's count, or within its rounding to 0.1k (+-50)")
    print("kept out: train records the leak guard kept out (their image is in a val/test split of some source)")
    print(f"manifest samples_total {manifest['counts']['samples_total']}; leak guard kept out: {manifest['counts']['leak_guard_excluded']}")


def unguarded_recipe(recipe: Path, work: Path) -> Path:
    """The recipe with the leak guard off: the paper's own construction, for comparison only."""
    import yaml

    from skyeye_data.compile.recipe import load_recipe

    body = load_recipe(recipe).model_dump(mode="json") | {"leak_guard": False}
    body["name"] += "-unguarded"
    path = work / "unguarded.yaml"
    path.write_text(yaml.safe_dump(body, sort_keys=False))
    return path


def timed_build(recipe: Path, raw: Path, out: Path, log: Path) -> tuple[float, int, dict]:
    wall, rss, code = run_measured([*SKYEYE, "build", str(recipe), "--raw-root", str(raw), "--out", str(out), "--include-unreviewed"], log)
    if code:
        print(log.read_text()[-3000:])
        sys.exit(f"build of {recipe} failed (exit {code})")
    return wall, rss, json.loads((out / "manifest.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--raw", type=Path, help="paper-scale raw root (written there when absent)")
    parser.add_argument("--out", type=Path, help="build output folder (default: a temporary folder)")
    parser.add_argument("--recipe", type=Path, default=RECIPE)
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument("--unguarded", action="store_true", help="also build with leak_guard off (the paper's construction)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="skyeye-bench-") as tmp:
        work = Path(tmp)
        raw = args.raw or work / "raw"
        out = args.out or work / "build"
        ensure_corpus(raw, work)
        wall, rss, manifest = timed_build(args.recipe, raw, out, work / "build.log")
        samples = manifest["counts"]["samples_total"]
        print(f"build: {wall:.1f} s wall, {samples / wall:,.0f} samples/s, peak RSS {rss} MiB, "
              f"{samples} samples, {manifest['counts']['images']} images, "
              f"{sum(sum(v.values()) for v in manifest['counts']['eval'].values())} eval items")  # fmt: skip
        if not args.skip_baseline:
            script = work / "baseline.py"
            script.write_text(BASELINE)
            b_wall, b_rss, b_code = run_measured([sys.executable, str(script), str(args.recipe), str(raw), str(work / "baseline.parquet")], work / "baseline.log")
            b_log = (work / "baseline.log").read_text().strip().splitlines()
            if b_code:
                print("\n".join(b_log[-20:]))
                sys.exit(f"baseline failed (exit {b_code})")
            b_samples = int(b_log[-1])
            print(f"baseline (records -> Dataset.from_generator -> to_parquet, record builders only): {b_wall:.1f} s wall, "
                  f"{b_samples / b_wall:,.0f} samples/s, peak RSS {b_rss} MiB, {b_samples} samples")  # fmt: skip
            print(f"ratio baseline time / build time: {b_wall / wall:.2f}")
        unguarded = None
        if args.unguarded:
            u_wall, u_rss, unguarded = timed_build(unguarded_recipe(args.recipe, work), raw, work / "unguarded", work / "unguarded.log")
            print(f"build without the leak guard: {u_wall:.1f} s wall, peak RSS {u_rss} MiB, {unguarded['counts']['samples_total']} samples")
        report_counts(manifest, unguarded)


if __name__ == "__main__":
    main()
