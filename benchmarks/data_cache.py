"""First load vs cached load of an image folder (`[data] name = "folder"`).

Writes IMAGES small PNGs (32x32 RGB, 10 classes, random noise over a per-class tint) into a
temporary folder, then loads them as a worker does (hpo.training.userdata.read_user_data
with the artifacts folder as cache): the first load decodes every file with Pillow and
writes the cache, each later load lists the folder (paths, sizes, mtimes: the cache key)
and reads one array. Reported: seconds of the first load, median seconds of REPEATS cached
loads, and the cache file's size.

    python3 benchmarks/data_cache.py            # 10,000 images, ~1 min on 2 cores
    python3 benchmarks/data_cache.py --quick    # 1,000 images, a few seconds
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import _machine  # noqa: F401  (puts the project on sys.path)
import numpy as np
from _machine import banner, figure, median

from hpo.training.imagefolder import CACHE_FOLDER
from hpo.training.userdata import UserSource, read_user_data

CLASSES = 10
SIDE = 32


def write_images(root: Path, count: int) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(count):
        label = i % CLASSES
        folder = root / f"class_{label}"
        folder.mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 128, (SIDE, SIDE, 3), dtype=np.uint8) + np.uint8(label * 12)
        Image.fromarray(pixels).save(folder / f"{i:06d}.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="1,000 images, 3 repeats")
    args = parser.parse_args()
    if args.quick:
        args.images, args.repeats = 1_000, 3
    print(banner("image folder: first load vs cached load"))
    with tempfile.TemporaryDirectory() as tmp:
        root, cache = Path(tmp) / "images", Path(tmp) / "artifacts"
        started = time.perf_counter()
        write_images(root, args.images)
        wrote = time.perf_counter() - started
        print(f"wrote {args.images} PNGs of {SIDE}x{SIDE} RGB in {wrote:.1f} s")
        source = UserSource("folder", str(root), cache_dir=str(cache))
        started = time.perf_counter()
        first = read_user_data(source)
        first_s = time.perf_counter() - started
        cached_s = []
        for _ in range(args.repeats):
            started = time.perf_counter()
            again = read_user_data(source)
            cached_s.append(time.perf_counter() - started)
        assert np.array_equal(first.x, again.x) and np.array_equal(first.y, again.y)
        [cache_file] = (cache / CACHE_FOLDER).glob("*.npz")
        size_mb = cache_file.stat().st_size / 2**20
    print(f"images: {args.images} ({CLASSES} classes), array {first.x.shape} {first.x.dtype}")
    print(f"first load (decode {args.images} files + write cache): {first_s:.2f} s")
    print(
        f"cached load (list + stat + read {size_mb:.1f} MB), median of {args.repeats}: "
        f"{median(cached_s):.3f} s"
    )
    print(f"speed-up: {first_s / median(cached_s):.1f}x")
    figure("image cache: first load / cached load", [first_s / s for s in cached_s], "x")


if __name__ == "__main__":
    main()
