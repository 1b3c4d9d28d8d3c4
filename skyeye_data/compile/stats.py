"""``skyeye stats OUT``: what a build holds, against what its recipe expects.

Streams the sample shards (bounded memory: distributions are kept as counters of small integers)
and reports samples per source/task/split next to the recipe's ``expected`` counts, the
distribution of instruction and answer lengths (words), and of box sizes (area as a percentage of
the image, from the box tokens in the conversation).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from skyeye_data.boxes import parse_boxes
from skyeye_data.compile.manifest import read_manifest
from skyeye_data.compile.result import expected_counts
from skyeye_data.io import atomic_path

BATCH_ROWS = 4096


def summarize(counter: Counter) -> dict[str, float | int | None]:
    """n, min, quartiles, p90, max and mean of a counter of integer values."""
    n = sum(counter.values())
    if n == 0:
        return {"n": 0, "min": None, "p25": None, "median": None, "p75": None, "p90": None, "max": None, "mean": None}
    values = sorted(counter)

    def quantile(q: float) -> int:
        rank, seen = q * (n - 1), 0
        for value in values:
            seen += counter[value]
            if seen > rank:
                return value
        return values[-1]

    mean = sum(v * c for v, c in counter.items()) / n
    return {"n": n, "min": values[0], "p25": quantile(0.25), "median": quantile(0.5), "p75": quantile(0.75),
            "p90": quantile(0.9), "max": values[-1], "mean": round(mean, 2)}  # fmt: skip


def scan_samples(out: Path) -> tuple[Counter, dict[str, Counter], dict[str, Counter]]:
    """Counts per (source, task, split), the length / box-size counters and the review status of the
    samples per source, streamed from the shards."""
    counts: Counter = Counter()
    dists = {"instruction_words": Counter(), "answer_words": Counter(), "box_area_pct": Counter(), "boxes_per_sample": Counter()}
    review_status: dict[str, Counter] = {}
    columns = ["source", "task", "split", "conversation", "review_status"]
    for path in sorted((out / "samples").glob("*.parquet")):
        for batch in pq.ParquetFile(path).iter_batches(batch_size=BATCH_ROWS, columns=columns):
            for row in batch.to_pylist():
                counts[(row["source"], row["task"], row["split"])] += 1
                review_status.setdefault(row["source"], Counter())[row["review_status"]] += 1
                _measure(row["conversation"], dists)
    return counts, dists, review_status


def review_coverage(review_status: dict[str, Counter], manifest: dict[str, Any]) -> dict[str, Any]:
    """Review status of the training samples per source, and the build's review outcomes (manifest)."""
    return {
        "samples_by_status": {source: dict(sorted(c.items())) for source, c in sorted(review_status.items())},
        "outcomes": manifest.get("review"),  # None: the recipe has no review section
    }


def _measure(conversation: list[dict[str, str]], dists: dict[str, Counter]) -> None:
    boxes = 0
    for turn in conversation:
        key = "instruction_words" if turn["role"] == "user" else "answer_words"
        dists[key][len(turn["content"].split())] += 1
        for box in parse_boxes(turn["content"]):
            boxes += 1
            # 0..100 coordinates: width*height/100 is the box's share of the image in percent
            dists["box_area_pct"][round(max(0.0, box.x2 - box.x1) * max(0.0, box.y2 - box.y1) / 100)] += 1
    dists["boxes_per_sample"][boxes] += 1


def compute_stats(out: Path) -> dict[str, Any]:
    out = Path(out)
    manifest = read_manifest(out)
    counts, dists, review_status = scan_samples(out)
    expected = expected_counts(manifest)
    by_source_task: Counter = Counter()
    for (source, task, _split), n in counts.items():
        by_source_task[(source, task)] += n
    rows = []
    for source, task in sorted(set(by_source_task) | set(expected)):
        actual, want = by_source_task.get((source, task), 0), expected.get((source, task))
        splits = {split: n for (s, t, split), n in sorted(counts.items()) if (s, t) == (source, task)}
        rows.append({"source": source, "task": task, "samples": actual, "splits": splits, "expected": want,
                     "matches": None if want is None else actual == want})  # fmt: skip
    return {
        "recipe": manifest["recipe"]["name"],
        "fingerprint": manifest["recipe"]["fingerprint"],
        "samples_total": sum(counts.values()),
        "images": manifest["counts"]["images"],
        "eval": manifest["counts"]["eval"],
        "rows": rows,
        "mismatches": [r for r in rows if r["matches"] is False],
        "distributions": {name: summarize(counter) for name, counter in dists.items()},
        "histograms": {name: {str(k): v for k, v in sorted(counter.items())} for name, counter in dists.items()},
        "balanced": manifest["balanced"],
        "review": review_coverage(review_status, manifest),
    }


def plot_stats(stats: dict[str, Any], path: Path) -> Path:
    """Samples per source/task, answer lengths and box sizes, one PNG (matplotlib imported here only)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(16, 5))
    labels = [f"{r['source']}/{r['task']}" for r in stats["rows"]]
    axes[0].barh(labels, [r["samples"] for r in stats["rows"]], color="tab:blue", label="built")
    with_expected = [(r["expected"], label) for r, label in zip(stats["rows"], labels) if r["expected"] is not None]
    if with_expected:
        axes[0].scatter(*zip(*with_expected), color="tab:red", marker="|", s=200, label="expected")
    axes[0].set_title("samples per source/task (red: expected)")
    for ax, name, title in ((axes[1], "answer_words", "answer length (words)"), (axes[2], "box_area_pct", "box area (% of image)")):
        hist = {int(k): v for k, v in stats["histograms"][name].items()}
        ax.bar(list(hist), list(hist.values()), width=1.0, color="tab:green")
        ax.set_title(title)
        ax.set_ylabel("count")
    fig.subplots_adjust(left=0.17, right=0.98, wspace=0.3)
    with atomic_path(Path(path)) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    return path
