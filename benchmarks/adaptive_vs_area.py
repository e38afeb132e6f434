"""poolcli's adaptive average (`--size`, `--max-side`, `adaptive_pool`) against OpenCV's INTER_AREA
on a real photo: how far apart the two are, and how fast each is, in one run.

    python benchmarks/adaptive_vs_area.py [--photo samples/astronaut.jpg] [--repeats 5]

The two agree exactly where the factor is an integer (both average k x k blocks). For other
factors they differ by design: adaptive bin i takes the whole pixels [floor(i*n/out),
ceil((i+1)*n/out)) with equal weights, so a pixel on a bin's border counts fully in both
neighbours; INTER_AREA weights each pixel by the fraction of it the output pixel covers.
Both are computed on float64 pixels (no rounding), then compared in grey levels (0..255),
over every channel: the largest and the mean absolute difference; then both are timed on
the uint8 photo, as a user runs them (uint8 out, rounded).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from poolcli import adaptive_pool

ROOT = Path(__file__).resolve().parent.parent
SIDES = (256, 384, 300, 200, 100, 77)  # from a 512-pixel side: factors 2, 1.33, 1.71, 2.56, 5.12, 6.65


def best_seconds(run, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photo", type=Path, default=ROOT / "samples" / "astronaut.jpg")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    photo = np.asarray(Image.open(args.photo).convert("RGB"))
    pixels = photo.astype(np.float64)
    height, width = photo.shape[:2]
    print(f"{args.photo.name}: {width}x{height} RGB; adaptive avg (poolcli) vs INTER_AREA (OpenCV {cv2.__version__})")
    print(f"{'output':>9} {'factor':>7} {'max diff':>9} {'mean diff':>10} {'>= 1 level':>11} "
          f"{'poolcli ms':>11} {'opencv ms':>10} {'ratio':>6}")
    for side in SIDES:
        out_h, out_w = side, max(1, (2 * width * side + height) // (2 * height))
        ours = adaptive_pool(pixels, (out_h, out_w), axes=(0, 1))
        area = cv2.resize(pixels, (out_w, out_h), interpolation=cv2.INTER_AREA)
        difference = np.abs(ours - area)
        poolcli_s = best_seconds(lambda: adaptive_pool(photo, (out_h, out_w), axes=(0, 1), dtype=np.uint8),
                                 args.repeats)
        opencv_s = best_seconds(lambda: cv2.resize(photo, (out_w, out_h), interpolation=cv2.INTER_AREA),
                                args.repeats)
        print(f"{out_w:>4}x{out_h:<4} {height / out_h:>7.3f} {difference.max():>9.3f} {difference.mean():>10.3f} "
              f"{np.mean(difference >= 1):>10.1%} {poolcli_s * 1e3:>11.2f} {opencv_s * 1e3:>10.2f} "
              f"{poolcli_s / opencv_s:>6.1f}")


if __name__ == "__main__":
    main()
