"""Build SkyEye-968k on the paper-scale synthetic corpus: time, memory, rebuilds, and the counts against the paper.

    python benchmarks/build_bench.py                      # synthesizes the corpus into a temporary folder
    python benchmarks/build_bench.py --raw /tmp/paper-raw  # reuses (or first writes) a corpus there
    python benchmarks/build_bench.py --skip-baseline       # only the builds
    python benchmarks/build_bench.py --other-scope all     # also the recipe with another leak-guard scope

Steps, each in its own subprocess so that its peak memory is its own (``os.wait4`` rusage), all on
the same corpus in one run:

1. ``skyeye synth RAW --scale paper`` (unless RAW already holds a corpus): the real datasets' image
   and record counts, tiny images;
2. the **clean build**: ``skyeye build recipes/skyeye-968k.yaml --include-unreviewed`` into an empty
   folder (the generated sets count, reviewed or not): wall time, samples/s, peak RSS;
3. the **no-change rebuild**: the same command again (it only verifies, decided from the stamp:
   skyeye_data/compile/quick.py);
4. a **template-change rebuild**: the recipe with another caption pool (records come from the cache);
5. the **baseline** on the same input, in one process: every source of the recipe converted by the
   same converters (their ``records()``, with the recipe's converter options), the recipe's record
   builders run on the train records of the selected subsets (through the build's own per-source
   entry, ``SourcePlan``), the recipe's mixes run by the same mix builders over the same train
   records (held in memory) with their caps, and the rows (id, source, task, image path,
   conversation) handed to ``datasets.Dataset.from_generator`` and written with ``to_parquet``.
   It writes no image table (no image is read, verified or hashed), no eval shards, records tables,
   quarantine, review routing, leak-guard notes or manifest: the same samples with less work per
   sample, so "clean build / baseline <= 1" means the build does all of that and is still faster;
6. a **pyarrow text-only writer** of as many rows as the build wrote samples (id, source, task and
   two text turns of the samples' mean length): the floor of writing that much text;
7. **RSVQA-HR's conversion alone**: ``skyeye convert rsvqa_hr RAW/rsvqa_hr`` (its million questions
   are the build's longest conversion; ``benchmarks/convert_bench.py`` times it against older code);

then the per-source sample counts of the build next to the paper's table (``skyeye_data.sources.paper_table``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq
import yaml

from skyeye_data.sources import paper_table

PROJECT = Path(__file__).resolve().parents[1]
RECIPE = PROJECT / "recipes" / "skyeye-968k.yaml"
SKYEYE = [sys.executable, "-m", "skyeye_data.cli"]

PAPER_TOTAL = 968_000
# the paper's counts are rounded to 0.1k: a count within half a unit of that rounding matches it
ROUNDING = 50


CPU_SECONDS: list[float] = []  # user + system CPU of each measured command (its worker processes included)


def cpu() -> str:
    """The last measured command's CPU time: on a shared machine it says more than the wall time."""
    return f"{CPU_SECONDS[-1]:.0f} s CPU"


def run_measured(command: list[str], log: Path) -> tuple[float, int, int]:
    """Run a command; (wall seconds, peak RSS in MiB of it and the children it waited for, exit code)."""
    start = time.perf_counter()
    before = os.times()
    with open(log, "w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=PROJECT)
        _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    after = os.times()  # children's times: the command and every worker process it waited for
    CPU_SECONDS.append(after.children_user - before.children_user + after.children_system - before.children_system)
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
from skyeye_data.compile.builders import MIX_BUILDERS, BuildRejection, MixContext
from skyeye_data.compile.mixes import load_mix_builders
from skyeye_data.compile.recipe import load_recipe
from skyeye_data.compile.stages.compile_sources import SourcePlan
from skyeye_data.compile.templates import TemplatePools
from skyeye_data.sources import get_source
from skyeye_data.sources.base import Rejected

recipe, raw, out = load_recipe(Path(sys.argv[1])), Path(sys.argv[2]), Path(sys.argv[3])
pools = TemplatePools(recipe.templates, recipe.seed)
load_mix_builders()
mixed = {s for mix in recipe.mixes.values() for s in mix.sources}
kept = {}  # records of the sources the mixes read, in memory (the build streams them from its records tables)

def row(name, draft):
    return {"id": draft.id, "source": name, "task": draft.task, "image": str(draft.media.path), "conversation": draft.conversation}

def rows():
    for name, spec in recipe.sources.items():
        raw_dir = raw / recipe.raw_folder(name)
        plan = SourcePlan.from_recipe(recipe, name, raw_dir, pools)  # the build's own per-source entry
        for record in get_source(name).configured(**spec.converter_options()).records(raw_dir):
            if isinstance(record, Rejected):
                continue
            if name in mixed:
                kept.setdefault(name, []).append(record)
            if record.split != "train":
                continue
            if spec.subsets is not None and record.subset not in spec.subsets:
                continue
            for draft in plan.train_drafts(record)[0]:
                yield row(name, draft)
    for name, mix in recipe.mixes.items():  # the same multi-source builders over the same train records
        raw_dirs = {s: raw / recipe.raw_folder(s) for s in mix.sources}
        any_split = getattr(mix.options, "join_split", "train") == "any"  # as the build's mix_records
        stream = lambda source, first=mix.sources[0], any_split=any_split: (
            r for r in kept.get(source, []) if r.split == "train" or (any_split and source != first))
        context = MixContext(name, mix.builder, list(mix.sources), mix.options, pools, recipe.box_style, raw_dirs, stream)
        written = 0
        for item in MIX_BUILDERS[mix.builder](context):
            if mix.max_samples is not None and written >= mix.max_samples:
                break
            if not isinstance(item, BuildRejection):
                written += 1
                yield row(name, item)

with tempfile.TemporaryDirectory() as cache:
    dataset = datasets.Dataset.from_generator(rows, cache_dir=cache)
    dataset.to_parquet(str(out))
    print(len(dataset))
'''

TEXT_WRITER = r'''
import sys
import pyarrow as pa, pyarrow.parquet as pq
n, text_bytes, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
turn = pa.struct([pa.field("role", pa.string()), pa.field("content", pa.string())])
schema = pa.schema([("id", pa.string()), ("source", pa.string()), ("task", pa.string()), ("conversation", pa.list_(turn))])
user, answer = "[vqa] " + "q" * max(1, text_bytes // 2), "a" * max(1, text_bytes // 2)
with pq.ParquetWriter(out, schema, compression="zstd") as writer:
    for start in range(0, n, 10_000):
        k = min(10_000, n - start)
        conversation = [[{"role": "user", "content": user}, {"role": "assistant", "content": answer}]] * k
        ids = [f"{i:032x}" for i in range(start, start + k)]
        writer.write_table(pa.table({"id": ids, "source": ["rsvqa_hr"] * k, "task": ["vqa"] * k, "conversation": conversation}, schema=schema))
print(n)
'''


def within(count: int, paper: int) -> bool:
    return abs(count - paper) <= max(0.01 * paper, ROUNDING)


def samples_by_set(manifest: dict) -> dict[str, int]:
    return {name: entry.get("samples_total", 0) for name, entry in {**manifest["sources"], **manifest["mixes"]}.items()}


def report_counts(manifest: dict, other: dict | None) -> None:
    """The built counts next to the paper's table (and, when given, those of a build with another leak-guard scope)."""
    built, plain = samples_by_set(manifest), samples_by_set(other) if other else {}
    kept_out = {name: s.get("leak_guard_excluded_total", 0) for name, s in manifest["sources"].items()}
    head = f"\n{'set':<16} {'paper':>8} {'built':>8} {'diff':>7} {'match':>5}  {'kept out':>8}"
    print(head + (f"  {other.get('leak_guard', 'other'):>13} {'diff':>7} {'match':>5}" if other else ""))
    totals = [0, 0]
    for name, (label, paper) in paper_table().items():
        count, guard = built.get(name, 0), kept_out.get(name, 0)
        totals[0] += count
        line = f"{label:<16} {paper:>8} {count:>8} {100 * (count - paper) / paper:>+6.1f}% {'yes' if within(count, paper) else 'NO':>5}  {guard or '':>8}"
        if other:
            n = plain.get(name, 0)
            totals[1] += n
            line += f"  {n:>13} {100 * (n - paper) / paper:>+6.1f}% {'yes' if within(n, paper) else 'NO':>5}"
        print(line)
    line = f"{'total':<16} {PAPER_TOTAL:>8} {totals[0]:>8} {100 * (totals[0] - PAPER_TOTAL) / PAPER_TOTAL:>+6.1f}% {'':>5}  {'':>8}"
    print(line + (f"  {totals[1]:>13} {100 * (totals[1] - PAPER_TOTAL) / PAPER_TOTAL:>+6.1f}%" if other else ""))
    print("match: within 1% of the paper's count, or within its rounding to 0.1k (+-50)")
    print(f"kept out: train records the leak guard (scope {manifest.get('leak_guard')}) kept out of training")
    for source, splits in (manifest["counts"].get("eval_overlap") or {}).items():
        print(f"  {source}: training images also in " + ", ".join(f"{where} ({n})" for where, n in splits.items()))
    print(f"manifest samples_total {manifest['counts']['samples_total']}; leak guard kept out: {manifest['counts']['leak_guard_excluded']}")


def recipe_variant(recipe: Path, work: Path, suffix: str, **changes) -> Path:
    """The recipe with some top-level keys changed, written next to the other scratch files."""
    body = yaml.safe_load(recipe.read_text()) | changes
    body["name"] += f"-{suffix}"
    path = work / f"{suffix}.yaml"
    path.write_text(yaml.safe_dump(body, sort_keys=False))
    return path


def timed_build(recipe: Path, raw: Path, out: Path, log: Path) -> tuple[float, int, dict]:
    command = [*SKYEYE, "build", str(recipe), "--raw-root", str(raw), "--out", str(out), "--include-unreviewed"]
    wall, rss, code = run_measured(command, log)
    if code:
        print(log.read_text()[-3000:])
        sys.exit(f"build of {recipe} failed (exit {code})")
    return wall, rss, json.loads((out / "manifest.json").read_text())


def run_script(work: Path, name: str, text: str, *args: str) -> tuple[float, int, int]:
    """Run a scratch script; (wall seconds, peak RSS MiB, the number it prints last)."""
    script = work / f"{name}.py"
    script.write_text(text)
    wall, rss, code = run_measured([sys.executable, str(script), *args], work / f"{name}.log")
    lines = (work / f"{name}.log").read_text().strip().splitlines()
    if code:
        print("\n".join(lines[-20:]))
        sys.exit(f"{name} failed (exit {code})")
    return wall, rss, int(lines[-1])


def mean_text_bytes(out: Path) -> int:
    """The mean conversation text length of the built samples (first shard), for the text-only writer."""
    shard = next((out / "samples").glob("*.parquet"))
    rows = pq.read_table(shard, columns=["conversation"]).to_pylist()
    return max(1, sum(len(t["content"].encode()) for r in rows for t in r["conversation"]) // max(1, len(rows)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--raw", type=Path, help="paper-scale raw root (written there when absent)")
    parser.add_argument("--out", type=Path, help="build output folder (default: a temporary folder; emptied first)")
    parser.add_argument("--recipe", type=Path, default=RECIPE)
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument("--other-scope", choices=["within_source", "benchmarks", "all"], help="also build with this leak_guard scope")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="skyeye-bench-") as tmp:
        work = Path(tmp)
        raw = args.raw or work / "raw"
        out = args.out or work / "build"
        shutil.rmtree(out, ignore_errors=True)  # the clean build starts from nothing, its cache included
        ensure_corpus(raw, work)
        wall, rss, manifest = timed_build(args.recipe, raw, out, work / "build.log")
        samples = manifest["counts"]["samples_total"]
        print(f"clean build: {wall:.1f} s wall ({cpu()}), {samples / wall:,.0f} samples/s, peak RSS {rss} MiB, "
              f"{samples} samples, {manifest['counts']['images']} images, "
              f"{sum(sum(v.values()) for v in manifest['counts']['eval'].values())} eval items")  # fmt: skip
        written = (out / "manifest.json").stat().st_mtime_ns
        n_wall, n_rss, _ = timed_build(args.recipe, raw, out, work / "nochange.log")
        verified = (out / "manifest.json").stat().st_mtime_ns == written  # a rebuild that only verifies writes nothing
        how = "only verified" + (", from the stamp" if "decided from its stamp" in " ".join((work / "nochange.log").read_text().split()) else "")
        print(f"no-change rebuild: {n_wall:.1f} s wall ({cpu()}), peak RSS {n_rss} MiB ({how if verified else 'REBUILT'})")
        templates = yaml.safe_load(args.recipe.read_text()).get("templates") or {}
        pool = ["Say what this image shows.", "Describe the image in a few words."]
        changed = recipe_variant(args.recipe, work, "templates", templates={**templates, "caption": pool})
        t_wall, t_rss, _ = timed_build(changed, raw, out, work / "templates.log")
        print(f"template-change rebuild: {t_wall:.1f} s wall ({cpu()}; {100 * t_wall / wall:.0f}% of the clean build), peak RSS {t_rss} MiB")
        if not args.skip_baseline:
            b_wall, b_rss, b_samples = run_script(work, "baseline", BASELINE, str(args.recipe), str(raw), str(work / "baseline.parquet"))
            print(f"baseline (records -> record and mix builders -> Dataset.from_generator -> to_parquet): {b_wall:.1f} s wall ({cpu()}), "
                  f"{b_samples / b_wall:,.0f} samples/s, peak RSS {b_rss} MiB, {b_samples} samples")  # fmt: skip
            print(f"clean build time / baseline time: {wall / b_wall:.2f}")
        text_bytes = mean_text_bytes(out)
        w_wall, w_rss, w_rows = run_script(work, "text_writer", TEXT_WRITER, str(samples), str(text_bytes), str(work / "text.parquet"))
        print(f"pyarrow text-only writer: {w_rows} rows of ~{text_bytes} text bytes in {w_wall:.1f} s wall, peak RSS {w_rss} MiB")
        hr = raw / "rsvqa_hr"
        if hr.is_dir():
            c_wall, c_rss, code = run_measured([*SKYEYE, "convert", "rsvqa_hr", str(hr), "--out", str(work / "convert")], work / "convert.log")
            if code:
                print((work / "convert.log").read_text()[-3000:])
                sys.exit(f"skyeye convert rsvqa_hr failed (exit {code})")
            print(f"RSVQA-HR conversion alone (skyeye convert rsvqa_hr): {CPU_SECONDS[-1]:.1f} s CPU, {c_wall:.1f} s wall, peak RSS {c_rss} MiB")
        other = None
        if args.other_scope:
            variant = recipe_variant(args.recipe, work, args.other_scope, leak_guard=args.other_scope)
            o_wall, o_rss, other = timed_build(variant, raw, work / "other", work / "other.log")
            print(f"build with leak_guard {args.other_scope}: {o_wall:.1f} s wall, peak RSS {o_rss} MiB, {other['counts']['samples_total']} samples")
        report_counts(manifest, other)


if __name__ == "__main__":
    main()
