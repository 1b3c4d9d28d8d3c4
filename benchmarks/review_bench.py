"""Push and pull 20,000 review tasks (the size of a real Conversa set) against a real Label Studio.

    python benchmarks/review_bench.py                    # starts a loopback server (tests/review_server.py)
    python benchmarks/review_bench.py --tasks 2000       # smaller
    LABEL_STUDIO_URL=... LABEL_STUDIO_API_KEY=... python benchmarks/review_bench.py --use-env-server

One run, the same payloads:

1. **push** (``skyeye_data.review.labelstudio.push``, batches of ``--batch-size``, progress bar):
   first interrupted after half the batches (a simulated crash), then run again: it must import
   only the rest (resumable), and the project must hold every sample exactly once;
2. **baseline**: the same task payloads sent with the SDK's bare ``projects.import_tasks`` in the
   same batches, into another project (no existence check, no image upload, no resume);
3. **pull** (``skyeye_data.review.pull.pull``) of the pushed project, page by page into a ledger,
   after annotating ``--annotate`` tasks through the API;

and prints tasks/s for each. Conversa-like samples: 4 turns, 2 boxes, 50 distinct images.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from review_server import image_row, sample_row, start_server, write_build_output  # noqa: E402
from rich.progress import Progress  # noqa: E402

from skyeye_data.review import labelstudio  # noqa: E402
from skyeye_data.review import pull as review_pull  # noqa: E402
from skyeye_data.review.ledger import ReviewLedger  # noqa: E402
from skyeye_data.review.policy import ReviewPolicy  # noqa: E402
from skyeye_data.review.queue import read_images, read_samples, review_queue  # noqa: E402
from skyeye_data.review.tasks import task_payload  # noqa: E402


class Crash(RuntimeError):
    pass


def make_build(folder: Path, n: int) -> Path:
    images = [image_row(320 + i, 240, i % 250) for i in range(50)]
    samples = [
        sample_row(f"dior_conversa-{i:06d}", "dior_conversa", "conversation", images[i % 50]["image_id"], [
            (f"[refer] the bridge number {i}", "{<20><30><40><45>}"),
            ("[identify] this {<20><30><40><45>} is", f"the bridge {i}"),
            ("[detection] the ships", "<p>the ships</p> {<50><50><60><60>}"),
        ])
        for i in range(n)
    ]  # fmt: skip
    return write_build_output(folder, samples, images)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=20_000)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--annotate", type=int, default=200)
    parser.add_argument("--use-env-server", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="review-bench-"))
    server = None
    if not args.use_env_server:
        started = time.perf_counter()
        server = start_server()
        print(f"label studio started in {time.perf_counter() - started:.1f}s at {server.url}")
        import os

        os.environ.update(server.env())
    try:
        run(args, work)
    finally:
        if server is not None:
            server.stop()


def run(args, work: Path) -> None:
    client = labelstudio.connect(timeout_s=600)
    out = make_build(work / "out", args.tasks)
    queued = list(review_queue(read_samples(out), ReviewPolicy(), None))
    assert len(queued) == args.tasks
    name = f"bench {uuid.uuid4().hex[:6]}"

    with Progress() as progress:
        bar = progress.add_task("push (crashes half-way)", total=len(queued))
        batches = {"n": 0}
        real_import = labelstudio.import_batch

        def crashing_import(*a, **k):
            batches["n"] += 1
            if batches["n"] > (args.tasks // args.batch_size) // 2:
                raise Crash("simulated crash")
            return real_import(*a, **k)

        labelstudio.import_batch = crashing_import
        started = time.perf_counter()
        try:
            labelstudio.push(client, out, name, queued, batch_size=args.batch_size, advance=lambda n: progress.advance(bar, n))
        except Crash:
            pass
        first = time.perf_counter() - started
        labelstudio.import_batch = real_import
        bar2 = progress.add_task("push again (resumes)", total=len(queued))
        started = time.perf_counter()
        summary = labelstudio.push(client, out, name, queued, batch_size=args.batch_size, advance=lambda n: progress.advance(bar2, n))
        second = time.perf_counter() - started
    project_id = summary.projects[labelstudio.project_title(name, "conversa")]
    on_server = labelstudio.existing_task_keys(client, project_id)
    assert len(on_server) == args.tasks, len(on_server)
    resumed = summary.imported["conversa"]
    print(f"push: {args.tasks} tasks in {first + second:.1f}s = {args.tasks / (first + second):.0f} tasks/s "
          f"(crash after {args.tasks - resumed}, the resumed push imported the other {resumed}, "
          f"{summary.already_there['conversa']} found already there)")  # fmt: skip

    images = read_images(out, {q.sample["image_ids"][0] for q in queued})
    payloads = [task_payload(q, images[q.sample["image_ids"][0]], "/data/upload/0/x.png") for q in queued]
    baseline_project = client.projects.create(title=f"{name} baseline", label_config=labelstudio.label_config("conversa")).id
    started = time.perf_counter()
    for start in range(0, len(payloads), args.batch_size):
        client.projects.import_tasks(id=baseline_project, request=payloads[start : start + args.batch_size])
    bare = time.perf_counter() - started
    print(f"baseline (bare SDK import_tasks, same payloads and batches): {args.tasks / bare:.0f} tasks/s")

    tasks = [t for page in labelstudio.task_pages(client, project_id, 1000, fields="task_only") for t in page][: args.annotate]
    for task in tasks:
        choice = {"from_name": "verdict", "to_name": "image", "type": "choices", "value": {"choices": ["accept"]}}
        client.annotations.create(id=task.id, result=[choice])
    with ReviewLedger(work / "ledger.sqlite") as ledger, Progress() as progress:
        bar = progress.add_task("pull", total=args.tasks)
        started = time.perf_counter()
        pulled = review_pull.pull(client, name, ledger, page_size=args.batch_size, advance=lambda n: progress.advance(bar, n))
        took = time.perf_counter() - started
        assert ledger.count() == args.annotate
    print(f"pull: {pulled.tasks} tasks ({pulled.annotations} annotated) in {took:.1f}s = {pulled.tasks / took:.0f} tasks/s")


if __name__ == "__main__":
    main()
