"""What the hostile-input guards cost, next to the unguarded reads they replaced (same run, same files).

    python benchmarks/hostile_bench.py                 # 200 JPEGs + 200 PNGs of 800x800 in a temp folder
    python benchmarks/hostile_bench.py --count 50 --side 2000

Rows, per image (median of ``--repeat`` passes over all files, after one warm-up pass):
- ``read``: ``Path.read_bytes`` (before) vs ``rawfs.read_bytes`` (lstat, realpath, fstat, capped read);
- ``probe``: the header + sha256 probe, Pillow ``Image.open`` on the path (before) vs ``probe_image``
  through the guarded reader with the pixel cap;
- ``store``: header only (before: what the image store checked) vs ``imagecheck.verified_image``
  (every body decoded once; PNGs also streamed through zlib).
The ``store`` row is the real new cost: one full decode per distinct image at build time.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from skyeye_data import imagecheck, rawfs  # noqa: E402
from skyeye_data.sources.base import probe_image  # noqa: E402


def make_images(folder: Path, count: int, side: int) -> list[Path]:
    paths = []
    for i in range(count):
        image = Image.effect_noise((side, side), 30 + i % 20).convert("RGB")
        for fmt, suffix in (("JPEG", ".jpg"), ("PNG", ".png")):
            path = folder / f"{i:05d}{suffix}"
            image.save(path, format=fmt)
            paths.append(path)
    return paths


def timed(fn, paths: list[Path], repeat: int) -> float:
    for path in paths:  # warm the page cache
        fn(path)
    runs = []
    for _ in range(repeat):
        start = time.perf_counter()
        for path in paths:
            fn(path)
        runs.append((time.perf_counter() - start) / len(paths))
    return statistics.median(runs)


def old_probe(path: Path) -> tuple:
    with Image.open(path) as image:
        size = image.size
    return size, hashlib.sha256(path.read_bytes()).hexdigest()


def old_store(path: Path) -> tuple:
    with Image.open(io.BytesIO(path.read_bytes())) as image:
        return image.format, image.size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=200, help="images per format")
    parser.add_argument("--side", type=int, default=800, help="pixels a side (DIOR: 800)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        paths = make_images(root, args.count, args.side)
        with rawfs.scope(root):
            rows = [
                ("read", timed(Path.read_bytes, paths, args.repeat), timed(lambda p: rawfs.read_bytes(p, "image"), paths, args.repeat)),
                ("probe", timed(old_probe, paths, args.repeat), timed(lambda p: (probe_image.cache_clear(), probe_image(p)), paths, args.repeat)),
                ("store", timed(old_store, paths, args.repeat),
                 timed(lambda p: imagecheck.verified_image(p.read_bytes()), paths, args.repeat)),
            ]  # fmt: skip
    print(f"{len(paths)} images ({args.count} JPEG + {args.count} PNG, {args.side}x{args.side}); ms per image, median of {args.repeat}")
    print(f"{'step':<8}{'before':>10}{'guarded':>10}{'ratio':>8}")
    for name, before, after in rows:
        print(f"{name:<8}{before * 1e3:>10.3f}{after * 1e3:>10.3f}{after / before:>8.1f}")


if __name__ == "__main__":
    main()
