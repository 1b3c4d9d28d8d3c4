"""Time one source's conversion (``skyeye convert``) with this checkout and with a baseline checkout.

Each conversion runs in its own child process; its CPU seconds (user + sys), wall seconds and peak
RSS come from that child's rusage (``os.wait4``), so a busy machine shows in wall time but not in
CPU time. Records/s is records written per CPU second. The two outputs (records Parquet and
quarantine JSONL) are compared by sha256: a speed-up must not change a byte.

    python benchmarks/convert_bench.py rsvqa_hr /tmp/raw/rsvqa_hr
    python benchmarks/convert_bench.py rsvqa_hr RAW_HR rsvqa_lr RAW_LR --baseline /tmp/convert-wt
    python benchmarks/convert_bench.py rsvqa_hr RAW_HR --repeat 5   # the median of 5 alternating runs each

Several ``SOURCE RAW_DIR`` pairs are timed in one run, each with both checkouts. The baseline is a
checkout whose ``skyeye_data`` package is put first on PYTHONPATH: by default the code before the
RSVQA bulk row path (commit ``BASELINE_COMMIT``), made with ``git worktree add --detach
/tmp/convert-wt BASELINE_COMMIT`` when it does not exist yet. The last line per source is the figure
to quote (issue 17's acceptance: RSVQA-HR conversion within 20 s on the 2-core machine).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parent.parent
BASELINE_COMMIT = "48ab5fc"  # the converters before the RSVQA bulk row path (the README quotes both figures)


def run_convert(code_dir: Path, source: str, raw_dir: Path, out_dir: Path) -> dict:
    """One conversion in a child process with ``code_dir``'s skyeye_data; its rusage and outputs."""
    env = {**os.environ, "PYTHONPATH": str(code_dir)}
    command = [sys.executable, "-c", "from skyeye_data.cli import main; main()", "convert", source, str(raw_dir), "--out", str(out_dir)]
    start = time.perf_counter()
    # cwd: `python -c` puts the working folder first on sys.path, before PYTHONPATH
    child = subprocess.Popen(command, env=env, cwd=code_dir, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    stderr = child.stderr.read()
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - start
    if child.returncode != 0:
        raise SystemExit(f"conversion with {code_dir} failed ({child.returncode}):\n{stderr.decode()[-2000:]}")
    records = out_dir / f"{source}.parquet"
    return {
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "wall_s": wall,
        "peak_rss_mb": usage.ru_maxrss / 1024,  # KiB on Linux
        "records": pq.ParquetFile(records).metadata.num_rows,
        "sha256": {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out_dir.iterdir())},
    }


def ensure_baseline(path: Path, commit: str) -> Path:
    if not (path / "skyeye_data").is_dir():
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(path), commit], check=True)
    return path


def commit_of(path: Path) -> str:
    done = subprocess.run(["git", "-C", str(path), "log", "-1", "--format=%h"], capture_output=True, text=True)
    return done.stdout.strip() or "?"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("pairs", nargs="+", metavar="SOURCE RAW_DIR", help="one or more source name / raw folder pairs")
    parser.add_argument("--baseline", type=Path, default=Path("/tmp/convert-wt"),
                        help="baseline checkout (made from --baseline-commit when missing)")
    parser.add_argument("--baseline-commit", default=BASELINE_COMMIT, help="commit of a baseline made here (default: %(default)s)")
    parser.add_argument("--no-baseline", action="store_true", help="time this checkout only")
    parser.add_argument("--repeat", type=int, default=1,
                        help="conversions per checkout, alternating between them (a shared machine's speed drifts "
                             "by tens of percent over minutes): the median and the range are printed")  # fmt: skip
    args = parser.parse_args()
    if len(args.pairs) % 2:
        parser.error("give SOURCE RAW_DIR pairs")
    runs = {"this checkout": REPO}
    if not args.no_baseline:
        baseline = ensure_baseline(args.baseline, args.baseline_commit)
        runs[f"baseline {commit_of(baseline)} {args.baseline}"] = baseline
    for source, raw_dir in zip(args.pairs[::2], args.pairs[1::2]):
        bench_source(source, Path(raw_dir), runs, max(1, args.repeat))


def bench_source(source: str, raw_dir: Path, runs: dict[str, Path], repeat: int = 1) -> None:
    """Each checkout's conversion ``repeat`` times, alternating; each one's median run by CPU time is reported
    (with the range when repeated), and every run's outputs must have the same sha256."""
    timings: dict[str, list[dict]] = {label: [] for label in runs}
    with tempfile.TemporaryDirectory(prefix="convert-bench-") as tmp:
        for attempt in range(repeat):
            for index, (label, code_dir) in enumerate(runs.items()):
                out_dir = Path(tmp) / f"{index}-{attempt}"
                timings[label].append(run_convert(code_dir, source, raw_dir.resolve(), out_dir))
                shutil.rmtree(out_dir)
    for label, done in timings.items():
        if any(r["sha256"] != done[0]["sha256"] for r in done):
            raise SystemExit(f"{label}: the outputs differ between runs of the same code")
    results = {label: sorted(done, key=lambda r: r["cpu_s"])[(len(done) - 1) // 2] for label, done in timings.items()}
    print(f"\n{source} from {raw_dir}" + (f" (median of {repeat} runs each, alternating)" if repeat > 1 else ""))
    print(f"{'run':<40} {'records':>9} {'CPU s':>8} {'wall s':>8} {'rec/CPU s':>10} {'peak RSS MB':>12}" + ("  CPU s range" if repeat > 1 else ""))
    for label, r in results.items():
        spread = f"  {min(x['cpu_s'] for x in timings[label]):.1f}-{max(x['cpu_s'] for x in timings[label]):.1f}" if repeat > 1 else ""
        print(f"{label:<40} {r['records']:>9,} {r['cpu_s']:>8.1f} {r['wall_s']:>8.1f} "
              f"{r['records'] / max(r['cpu_s'], 1e-9):>10,.0f} {r['peak_rss_mb']:>12.0f}{spread}")  # fmt: skip
    first = next(iter(results.values()))
    if len(results) == 2:
        second = list(results.values())[1]
        same = first["sha256"] == second["sha256"]
        print(f"{source}: outputs byte-identical (sha256 of records + quarantine):", "yes" if same else "NO", flush=True)
        for name in sorted(set(first["sha256"]) | set(second["sha256"])):
            if first["sha256"].get(name) != second["sha256"].get(name):
                print(f"  differs: {name}")
    against = f", baseline {second['cpu_s']:.1f} s CPU ({second['cpu_s'] / max(first['cpu_s'], 1e-9):.1f}x)" if len(results) == 2 else ""
    print(f"{source}: this checkout converts {first['records']:,} records in {first['cpu_s']:.1f} s CPU "
          f"({first['wall_s']:.1f} s wall, peak RSS {first['peak_rss_mb']:.0f} MB){against}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
