"""`mode="majority"` against scipy.stats.mode over the same windows and against GDAL's `-r mode`,
on the same label raster, in one run.

    python benchmarks/majority.py [--side 2048] [--labels 24] [--repeats 3] [--windows 2,4,8]

The raster: `--labels` blobs of uint8 labels on a background of 0, with 20 % salt noise (so
windows hold several labels and ties happen). For each window k (stride k, no padding):

- poolcli:  poolcli.pool(x, k, mode="majority") (2x2: every pair compared; 4x4: sorted runs;
            8x8 and up: a histogram of the 256 values), in memory;
- scipy:    scipy.stats.mode(sliding_window_view(x, (k, k))[::k, ::k].reshape(h, w, k * k), axis=-1),
            the same windows (scipy also takes the smallest value on a tie: the results must agree);
- GDAL:     `gdal_translate -r mode -outsize W/k H/k` of the raster as an uncompressed GeoTIFF, a
            subprocess (its start and the file's read and write included: a `-outsize 100%` copy
            is timed too, and subtracted for the "GDAL net" column), and `gdaladdo -r mode` of
            the overview k on a copy.

It prints the best wall time of each, the ratios to poolcli and how many outputs GDAL's mode
shares with poolcli's (GDAL's choice among tied labels is its own). Ratios matter, measured in
one run on one machine.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import scipy.stats
import tifffile
from numpy.lib.stride_tricks import sliding_window_view

from poolcli import pool


def label_raster(side: int, labels: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = np.zeros((side, side), np.uint8)
    for label in range(1, labels + 1):
        y0, x0 = rng.integers(0, side, 2)
        h, w = rng.integers(side // 16, side // 4, 2)
        x[y0:y0 + h, x0:x0 + w] = label
    noise = rng.random(x.shape) < 0.2
    x[noise] = rng.integers(0, labels + 1, int(noise.sum()))
    return x


def best(function, repeats: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - started)
    return min(times), result


def scipy_mode(x: np.ndarray, k: int) -> np.ndarray:
    h, w = x.shape[0] // k, x.shape[1] // k
    windows = sliding_window_view(x, (k, k))[::k, ::k][:h, :w].reshape(h, w, k * k)
    return scipy.stats.mode(windows, axis=-1, keepdims=False).mode.astype(x.dtype)


def run(command: list[str]) -> None:
    subprocess.run(command, check=True, capture_output=True)


def gdal_times(x: np.ndarray, k: int, folder: Path, repeats: int) -> tuple[float, float, float, np.ndarray]:
    source = folder / "labels.tif"
    tifffile.imwrite(source, x)  # uncompressed, one strip per row block: GDAL reads it as a raster
    h, w = x.shape[0] // k, x.shape[1] // k
    target = folder / f"mode_{k}.tif"
    translate, _ = best(lambda: run(["gdal_translate", "-q", "-r", "mode", "-outsize", str(w), str(h),
                                     str(source), str(target)]), repeats)
    copy, _ = best(lambda: run(["gdal_translate", "-q", "-outsize", "100%", "100%", str(source),
                                str(folder / "copy.tif")]), repeats)

    def overview() -> None:
        shutil.copy(source, folder / "addo.tif")
        run(["gdaladdo", "-q", "-r", "mode", str(folder / "addo.tif"), str(k)])

    addo, _ = best(overview, repeats)
    return translate, copy, addo, tifffile.imread(target)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--side", type=int, default=2048)
    parser.add_argument("--labels", type=int, default=24)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--windows", default="2,4,8")
    options = parser.parse_args()
    x = label_raster(options.side, options.labels)
    print(f"uint8 labels {x.shape[0]}x{x.shape[1]}, {options.labels} labels + background, 20 % noise;"
          f" best of {options.repeats}")
    print(f"{'window':>6} {'poolcli':>9} {'scipy':>9} {'GDAL':>9} {'GDAL net':>9} {'gdaladdo':>9}"
          f" {'scipy/poolcli':>14} {'GDAL/poolcli':>13} {'net/poolcli':>12} {'GDAL agrees':>12}")
    with tempfile.TemporaryDirectory() as scratch:
        for k in (int(v) for v in options.windows.split(",")):
            ours, y = best(lambda: pool(x, k, mode="majority"), options.repeats)
            theirs, z = best(lambda: scipy_mode(x, k), options.repeats)
            assert np.array_equal(y, z), f"scipy.stats.mode differs from majority at k={k}"
            translate, copy, addo, g = gdal_times(x, k, Path(scratch), options.repeats)
            agrees = float(np.mean(g[: y.shape[0], : y.shape[1]] == y)) if g.shape == y.shape else float("nan")
            net = max(translate - copy, 1e-9)
            print(f"{k:>4}x{k:<1} {ours:9.4f} {theirs:9.4f} {translate:9.4f} {net:9.4f} {addo:9.4f}"
                  f" {theirs / ours:14.1f} {translate / ours:13.2f} {net / ours:12.2f} {agrees:12.1%}")


if __name__ == "__main__":
    main()
