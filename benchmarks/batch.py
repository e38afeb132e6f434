"""`poolcli batch` against a plain Pillow script on a folder of real photos, side by side.

    python benchmarks/batch.py [--kind mixed|jpeg|small|tiny] [--count N] [--repeats 3] [--jobs 2]
                                [--corpus DIR] [--pillow-only]

Builds a corpus (`--kind mixed`: 120 photos, 1200-2400 px on the long side, a third of them
PNG, some grayscale; `jpeg`: 80 JPEG photos, 1300-2300 px, `--count 1000` for the issue's
thousand; `small`: 120 small files, 48-320 px, JPEG and PNG; `tiny`: 2,000 PNGs of 48-320 px, an
ML dataset's shape) in nested folders, from the real photos in samples/ and, when
scikit-image is installed, its bundled photos: each is scaled up, cropped, maybe flipped
and given mild sensor-like noise, so that no file is trivially compressible. Then it
times, alternating, in the same run and each as a subprocess:

- poolcli:  poolcli batch SRC -d OUT -m avg -k 2 --jobs 2 --quiet
- pillow:   Image.open(p).reduce(2).save(out, quality=90) over a 2-process pool, and in one process
- libvips (`vips shrink`) and ImageMagick (`mogrify -scale 50%`), when on PATH

and prints each tool's best and median wall time, files/s and output bytes, and
poolcli's ratios against the Pillow script (the numbers that matter are ratios,
measured in one run on one machine).
"""

from __future__ import annotations

import argparse
import functools
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"

PILLOW_SCRIPT = '''
import sys
from multiprocessing import Pool
from pathlib import Path

from PIL import Image


def one(pair):
    source, target = pair
    Image.open(source).reduce(2).save(target, quality=90)


if __name__ == "__main__":
    src, out, jobs = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
    pairs = [(p, out / p.relative_to(src)) for p in sorted(src.rglob("*")) if p.is_file()]
    for _, target in pairs:
        target.parent.mkdir(parents=True, exist_ok=True)
    if jobs == 1:
        for pair in pairs:
            one(pair)
    else:
        with Pool(jobs) as pool:
            pool.map(one, pairs, chunksize=1)
'''

KINDS = {  # count, long side range, every how many a PNG
    "mixed": (120, (1200, 2400), 3),
    "jpeg": (80, (1300, 2300), 0),
    "small": (120, (48, 320), 2),
    "tiny": (2000, (48, 320), 1),  # an ML dataset's shape: small PNGs only
}


# ------------------------------------------------------------------ the corpus


@functools.cache
def base_photos() -> list[np.ndarray]:
    """Real photos, as uint8 H x W x 3 (colour) or H x W (gray) arrays."""
    photos = [np.asarray(Image.open(SAMPLES / "astronaut.jpg").convert("RGB")),
              np.asarray(Image.open(SAMPLES / "camera.png").convert("L"))]
    try:
        from skimage import data
    except ImportError:
        return photos
    for name in ("coffee", "chelsea", "rocket", "immunohistochemistry", "hubble_deep_field",
                 "retina", "moon", "coins", "clock", "gravel"):
        try:
            photos.append(np.asarray(getattr(data, name)(), dtype=np.uint8))
        except Exception:  # a photo that needs pooch (a download) is simply left out
            continue
    return photos


def make_photo(base: np.ndarray, long_side: int, rng: np.random.Generator) -> np.ndarray:
    """`base` scaled to cover a random 4:3, 3:2 or 1:1 frame with `long_side`, cropped, noised."""
    aspect = rng.choice([4 / 3, 3 / 2, 1.0])
    short = int(round(long_side / aspect))
    width, height = (long_side, short) if rng.random() < 0.6 else (short, long_side)
    scale = max(width / base.shape[1], height / base.shape[0]) * rng.uniform(1.0, 1.25)
    size = (int(np.ceil(base.shape[1] * scale)), int(np.ceil(base.shape[0] * scale)))
    big = cv2.resize(base, size, interpolation=cv2.INTER_CUBIC)
    top = rng.integers(0, big.shape[0] - height + 1)
    left = rng.integers(0, big.shape[1] - width + 1)
    crop = big[top:top + height, left:left + width]
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    noise = rng.standard_normal(crop.shape, dtype=np.float32) * np.float32(rng.uniform(1.5, 3.5))
    noise += crop
    return np.clip(noise, 0, 255, out=noise).astype(np.uint8)


def _write_photo(task: tuple[Path, int, int, bool, tuple[int, int]]) -> Path:
    path, index, seed, gray, sides = task
    rng = np.random.default_rng([seed, index])
    photos = base_photos()
    base = photos[index % len(photos)]
    if gray and base.ndim == 3:
        base = cv2.cvtColor(base, cv2.COLOR_RGB2GRAY)
    pixels = make_photo(base, int(sides[0] + (sides[1] - sides[0]) * rng.random()), rng)
    if path.suffix == ".png":
        Image.fromarray(pixels).save(path)  # Pillow's default compression, as most tools write PNG
    else:
        Image.fromarray(pixels).save(path, quality=int(rng.integers(88, 96)))
    return path


def build_corpus(folder: Path, kind: str = "mixed", count: int | None = None, seed: int = 0,
                 jobs: int = 2) -> list[Path]:
    """Photos of `kind` (see KINDS) in `folder`, nested two levels."""
    default_count, sides, png_every = KINDS[kind]
    tasks = []
    for i in range(count or default_count):
        sub = folder / f"roll{i % 4}" / ("raw" if (i // 4) % 2 else "edited")
        sub.mkdir(parents=True, exist_ok=True)
        png = bool(png_every) and i % png_every == png_every - 1
        tasks.append((sub / f"img{i:04d}{'.png' if png else '.jpg'}", i, seed, png and i % 9 == 2, sides))
    with ProcessPoolExecutor(jobs) as pool:
        return list(pool.map(_write_photo, tasks))


# ------------------------------------------------------------------ the runs


def tree_bytes(folder: Path) -> tuple[int, int]:
    files = [p for p in folder.rglob("*") if p.is_file()]
    return len(files), sum(p.stat().st_size for p in files)


def mirror_folders(source: Path, target: Path) -> None:
    for folder in sorted(p for p in source.rglob("*") if p.is_dir()):
        (target / folder.relative_to(source)).mkdir(parents=True, exist_ok=True)


def commands(source: Path, jobs: int, work: Path, others: bool = True) -> dict[str, object]:
    script = work / "pillow_reduce.py"
    script.write_text(PILLOW_SCRIPT)
    runs: dict[str, object] = {
        "poolcli": lambda out: [sys.executable, "-m", "poolcli", "batch", str(source), "-d", str(out),
                                "-m", "avg", "-k", "2", "--jobs", str(jobs), "--quiet"],
        "pillow": lambda out: [sys.executable, str(script), str(source), str(out), str(jobs)],
        "pillow 1 proc": lambda out: [sys.executable, str(script), str(source), str(out), "1"],
    }
    if not others:
        return runs
    if shutil.which("vips"):
        runs["libvips"] = "vips"
    if shutil.which("mogrify") and _real_imagemagick():
        runs["imagemagick"] = "mogrify"
    return runs


def _real_imagemagick() -> bool:
    try:
        version = subprocess.run(["mogrify", "-version"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return False
    return version.returncode == 0 and "ImageMagick" in version.stdout


def run_once(name: str, runner, source: Path, out: Path, jobs: int) -> float:
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    if name in ("libvips", "imagemagick"):
        return _run_external(name, source, out, jobs)
    started = time.perf_counter()
    done = subprocess.run(runner(out), capture_output=True, text=True, env=_bytecode_cached(out.parent))
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{name} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return seconds


def _bytecode_cached(work: Path) -> dict[str, str]:
    """The environment with Python's bytecode cache on, in `work`: an installed poolcli (and
    Pillow) runs from .pyc files; under PYTHONDONTWRITEBYTECODE=1 every run would compile its
    ~150 modules again (about 0.2 s of CPU, unlike the Pillow script, whose modules are few)."""
    env = dict(os.environ, PYTHONPYCACHEPREFIX=str(work / "pycache"))
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def _run_external(name: str, source: Path, out: Path, jobs: int) -> float:
    """One process per file over `jobs` workers, as xargs -P would run them."""
    mirror_folders(source, out)
    files = sorted(p for p in source.rglob("*") if p.is_file())
    if name == "libvips":
        calls = [["vips", "shrink", str(p), f"{out / p.relative_to(source)}[Q=90]", "2", "2"]
                 if p.suffix == ".jpg" else ["vips", "shrink", str(p), str(out / p.relative_to(source)), "2", "2"]
                 for p in files]
    else:
        calls = [["convert", str(p), "-scale", "50%", "-quality", "90", str(out / p.relative_to(source))]
                 for p in files]
    started = time.perf_counter()
    running: list[subprocess.Popen] = []
    for call in calls:
        while len(running) >= jobs:
            running.pop(0).wait()
        running.append(subprocess.Popen(call, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    for process in running:
        process.wait()
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", choices=tuple(KINDS), default="mixed", help="which corpus")
    parser.add_argument("--count", type=int, help="photos in the corpus (default: the kind's)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per tool")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes for every tool")
    parser.add_argument("--corpus", type=Path, help="reuse (or build once into) this folder")
    parser.add_argument("--pillow-only", action="store_true",
                        help="leave out libvips and ImageMagick (one process per file: slow on many small files)")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="poolcli-bench-") as temporary:
        work = Path(temporary)
        source = args.corpus or work / "corpus"
        if not source.is_dir() or not any(source.rglob("*.*")):
            started = time.perf_counter()
            build_corpus(source, args.kind, args.count, jobs=args.jobs)
            print(f"built corpus in {time.perf_counter() - started:.1f} s")
        count, size = tree_bytes(source)
        pngs = sum(1 for _ in source.rglob("*.png"))
        print(f"corpus: {count} files ({pngs} PNG), {size / 1e6:.1f} MB, in {source}")
        runs = commands(source, args.jobs, work, others=not args.pillow_only)
        times: dict[str, list[float]] = {name: [] for name in runs}
        sizes: dict[str, int] = {}
        for name, runner in runs.items():  # one untimed warm-up each: imports, page cache
            run_once(name, runner, source, work / f"out-{name}", args.jobs)
        for _ in range(args.repeats):
            for name, runner in runs.items():
                times[name].append(run_once(name, runner, source, work / f"out-{name}", args.jobs))
                written, sizes[name] = tree_bytes(work / f"out-{name}")
                if written != count:
                    raise SystemExit(f"{name} wrote {written} files for {count} inputs")

        print(f"\n{'tool':<12} {'best s':>8} {'median s':>9} {'files/s':>8} {'output MB':>10}   every run, s")
        for name in runs:
            best, median = min(times[name]), statistics.median(times[name])
            every = " ".join(f"{t:.2f}" for t in times[name])
            print(f"{name:<12} {best:8.2f} {median:9.2f} {count / best:8.1f} {sizes[name] / 1e6:10.1f}   {every}")
        speedup = min(times["pillow"]) / min(times["poolcli"])
        median_speedup = statistics.median(times["pillow"]) / statistics.median(times["poolcli"])
        bytes_ratio = sizes["poolcli"] / sizes["pillow"]
        single = statistics.median(times["pillow 1 proc"]) / statistics.median(times["poolcli"])
        print(f"\npoolcli vs Pillow script: {speedup:.2f}x faster (best), {median_speedup:.2f}x (median);"
              f" bytes {bytes_ratio:.2f}x; vs the script in one process {single:.2f}x (median)"
              "   [target: >= 1x, never slower]")
        print(f"kind: {args.kind}, cores: {os.cpu_count()}, jobs: {args.jobs}, repeats: {args.repeats}")
        return 0 if median_speedup >= 1.0 and single >= 1.0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
