"""Time one source's conversion (``skyeye convert``) with this checkout and with a baseline checkout.

Each conversion runs in its own child process; its CPU seconds (user + sys), wall seconds and peak
RSS come from that child's rusage (``os.wait4``), so a busy machine shows in wall time but not in
CPU time. Records/s is records written per CPU second. The two outputs are compared by sha256 of
their content: the records' rows read back, in order, as one Arrow IPC stream, and the quarantine's
entries, in order, each as canonical JSON; so a speed-up must not change a row or an entry. The
files' own bytes are compared too and reported apart (the writers' settings change them: Parquet
row groups and encodings, the JSON lines' spacing), and must be the same for every run of one checkout.

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
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
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
        **digests_in_child(out_dir, records),
    }


def digests_in_child(out_dir: Path, records: Path) -> dict:
    """:func:`digests`, computed in a child process: reading the records back grows a process by
    their size, and a child forked later would report that as its own peak RSS (ru_maxrss counts the
    parent's pages a fork copies)."""
    code = f"import json, sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); from convert_bench import digests; " \
           f"print(json.dumps(digests(sys.argv[1], sys.argv[2])))"  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code, str(out_dir), str(records)], capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def digests(out_dir: str, records: str) -> dict:
    out_dir, records = Path(out_dir), Path(records)
    return {
        "sha256": {f"{records.name} (rows)": rows_digest(records)}
        | {f"{p.name} (entries)": entries_digest(p) for p in sorted(out_dir.glob("*.jsonl"))},
        "file_sha256": {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out_dir.iterdir())},
    }


def entries_digest(path: Path) -> str:
    """sha256 of a JSON-lines file's entries, in order, each as canonical JSON (any spacing)."""
    digest = hashlib.sha256()
    with open(path, "rb") as lines:
        for line in lines:
            digest.update(json.dumps(json.loads(line), sort_keys=True, ensure_ascii=False).encode() + b"\n")
    return digest.hexdigest()


def rows_digest(path: Path) -> str:
    """sha256 of a records file's rows (its table as one Arrow IPC stream): the same for any encoding."""
    table = pq.read_table(path).combine_chunks()
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return hashlib.sha256(sink.getvalue()).hexdigest()


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
        if any((r["sha256"], r["file_sha256"]) != (done[0]["sha256"], done[0]["file_sha256"]) for r in done):
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
        print(f"{source}: outputs identical (sha256 of the records' rows + the quarantine's entries):", "yes" if same else "NO", flush=True)
        for name in sorted(set(first["sha256"]) | set(second["sha256"])):
            if first["sha256"].get(name) != second["sha256"].get(name):
                print(f"  differs: {name}")
        if first["file_sha256"] != second["file_sha256"]:
            print("  the files' bytes differ (the writers' settings: Parquet row groups and encodings, JSON spacing)")
    against = f", baseline {second['cpu_s']:.1f} s CPU ({second['cpu_s'] / max(first['cpu_s'], 1e-9):.1f}x)" if len(results) == 2 else ""
    print(f"{source}: this checkout converts {first['records']:,} records in {first['cpu_s']:.1f} s CPU "
          f"({first['wall_s']:.1f} s wall, peak RSS {first['peak_rss_mb']:.0f} MB){against}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
