"""`poolcli batch --html-report --inspect` on small images, timed, old code against new in one run.

    python benchmarks/gallery.py [--count 40] [--repeats 3] [--jobs 2] [TREE ...]

Each TREE is a checkout of poolcli (default: this one); the runs alternate between them, each a
fresh `python -m poolcli` with PYTHONPATH=TREE, so the times compare on one machine at one time.
Prints each tree's best and median wall time.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent


def corpus(folder: Path, count: int) -> Path:
    """`count` small noisy photos-like PNG and JPEG images, 96-256 px, in two folders."""
    rng = np.random.default_rng(40)
    for index in range(count):
        height, width = (int(n) for n in rng.integers(96, 257, 2))
        ramp = np.linspace(0, 200, width)[None, :, None] + np.linspace(0, 50, height)[:, None, None]
        pixels = np.clip(ramp + rng.normal(0, 12, (height, width, 3)), 0, 255).astype(np.uint8)
        target = folder / f"set{index % 2}" / f"image{index:03d}{'.png' if index % 3 else '.jpg'}"
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(target)
    return folder


def timed(tree: Path, source: Path, scratch: Path, jobs: int) -> float:
    out = scratch / "out"
    shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(scratch / "gallery_files", ignore_errors=True)
    command = [sys.executable, "-m", "poolcli", "batch", str(source), "-d", str(out), "-m", "avg", "-k", "2",
               "--jobs", str(jobs), "--quiet", "--html-report", str(scratch / "gallery.html"), "--inspect",
               "--overwrite"]
    started = time.perf_counter()
    subprocess.run(command, check=True, env=dict(os.environ, PYTHONPATH=str(tree)), cwd=scratch)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trees", nargs="*", type=Path, default=[ROOT])
    parser.add_argument("--count", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        source = corpus(Path(folder, "src"), args.count)
        times: dict[Path, list[float]] = {tree: [] for tree in args.trees}
        for _ in range(args.repeats):
            for tree in args.trees:
                scratch = Path(folder, f"run{args.trees.index(tree)}")
                scratch.mkdir(exist_ok=True)
                times[tree].append(timed(tree.resolve(), source, scratch, args.jobs))
    for tree, seconds in times.items():
        print(f"{str(tree):40}  best {min(seconds):6.2f} s  median {statistics.median(seconds):6.2f} s"
              f"  ({args.count} files, --jobs {args.jobs})")


if __name__ == "__main__":
    main()
