"""poolcli's median against scipy.ndimage.median_filter and OpenCV's medianBlur, in one run.

    python benchmarks/median.py [--repeat 3] [--big 600] [--quick]

Every case runs here, now, on the same data: the ratios are the result (peer seconds / poolcli
seconds, above 1 where poolcli is faster). Stride-1 cases pool with padding="same" and
pad_mode="edge", so poolcli computes as many outputs as the peers (scipy's mode="nearest"); for odd
windows the results are compared too. Strided cases compare the fast paths with poolcli's general
path (every window's stable sort order), which is what a median cost before them.

`--big` sets the side of the k=100 case (the issue measured 600: scipy takes about 40 s there;
300 takes a quarter of that). `--quick` runs smaller sizes (a smoke test).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from timing import median_seconds

from poolcli import engine, pool

GENERAL = dict(median_values=False, median_counts=False, median_opencv=False)


def once(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def timed(function, repeat: int) -> float:
    """One call for slow cases (over 5 s), else the median of `repeat` after a warm-up."""
    first = once(function)
    return first if first > 5 or repeat <= 1 else median_seconds(function, repeat)


def general(function):
    def run():
        with engine.fast_paths(**GENERAL):
            return function()
    return run


def filter_cases(big: int, side: int):
    rng = np.random.default_rng(0)
    floats = rng.random((side, side), dtype=np.float32)
    large = rng.random((big, big), dtype=np.float32)
    photo = rng.integers(0, 256, (side, side), dtype=np.uint8)
    colour = rng.integers(0, 256, (side // 2, side // 2, 3), dtype=np.uint8)
    return [
        (f"float32 {big}x{big} k=100 s=1", large, 100),
        (f"float32 {side}x{side} k=5 s=1", floats, 5),
        (f"uint8 {side}x{side} k=5 s=1", photo, 5),
        (f"uint8 {side}x{side} k=31 s=1", photo, 31),
        (f"uint8 {side // 2}x{side // 2}x3 k=5 s=1", colour, 5),
    ]


def strided_cases(side: int):
    rng = np.random.default_rng(1)
    floats = rng.random((side, side), dtype=np.float32)
    photo = rng.integers(0, 256, (side, side, 3), dtype=np.uint8)
    return [
        (f"float32 {side}x{side} k=2 s=2", floats, 2, 2),
        (f"float32 {side}x{side} k=3 s=2 pad 1", floats, 3, 2),
        (f"uint8 {side}x{side}x3 k=2 s=2", photo, 2, 2),
        (f"uint8 {side}x{side}x3 k=4 s=4", photo, 4, 4),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--big", type=int, default=600)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    import cv2
    from scipy import ndimage

    cv2.setNumThreads(1)  # poolcli runs OpenCV on one thread too
    side = 200 if args.quick else 1000
    big = 150 if args.quick else args.big
    print("| case | poolcli s | scipy s | scipy/poolcli | medianBlur s | medianBlur/poolcli | same values |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | --- |")
    for name, x, k in filter_cases(big, side):
        axes = (0, 1)
        ours = pool(x, k, 1, mode="median", padding="same", pad_mode="edge", axes=axes)
        mine = timed(lambda: pool(x, k, 1, mode="median", padding="same", pad_mode="edge", axes=axes), args.repeat)
        size = (k, k, 1) if x.ndim == 3 else k
        theirs = ndimage.median_filter(x, size=size, mode="nearest")
        peer = timed(lambda: ndimage.median_filter(x, size=size, mode="nearest"), args.repeat)
        blur = ""
        if x.dtype == np.uint8 and k % 2:
            seconds = timed(lambda: cv2.medianBlur(x, k), args.repeat)
            blur = f"{seconds:.3f} | {seconds / mine:.2f}x"
        same = "yes" if np.array_equal(ours, theirs) else "no" if k % 2 else "(even k: centred one cell apart)"
        print(f"| {name} | {mine:.3f} | {peer:.3f} | {peer / mine:.2f}x | {blur or ' | '} | {same} |")
    print()
    print("| strided case | fast paths s | general path s | general/fast |")
    print("| --- | ---: | ---: | ---: |")
    for name, x, k, s in strided_cases(side * 2):
        padding = 1 if "pad" in name else 0

        def run(x=x, k=k, s=s, padding=padding):
            return pool(x, k, s, mode="median", padding=padding, axes=(0, 1))
        fast, slow = timed(run, args.repeat), timed(general(run), args.repeat)
        print(f"| {name} | {fast:.3f} | {slow:.3f} | {slow / fast:.2f}x |")


if __name__ == "__main__":
    main()
