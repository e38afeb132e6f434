"""The engine's shortcuts (`FastPaths`, each twin-tested on and off in tests/test_fast_paths.py) and
the sizes its passes are cut to (`Budgets`, which tests shrink so every cut is exercised)."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
from dataclasses import replace

import numpy as np

from ..errors import PoolError


def ieee_quiet(function):
    """Run without NumPy's floating-point warnings: NaN and inf results are the answer
    (as in PyTorch), not a problem to report. Per call, so it holds on worker threads too."""

    @functools.wraps(function)
    def quiet(*args, **kwargs):
        with np.errstate(all="ignore"):
            return function(*args, **kwargs)

    return quiet


@dataclasses.dataclass
class FastPaths:
    """The engine's shortcuts, each switchable. Every one gives the general path's result
    (bit for bit, or for float sums up to the order of additions), and tests/test_fast_paths.py
    runs the same random cases with each on and off to prove it."""

    opencv_area: bool = True  # uint8 2x2 means through OpenCV's INTER_AREA
    opencv_merge: bool = True  # channel planes interleaved by OpenCV's merge (a bit copy)
    planar: bool = True  # channels-last blocks reduced one channel plane at a time
    slabs: bool = True  # slabs of output rows on several threads
    narrow_integers: bool = True  # the narrowest exact integer accumulator, not 64 bits
    exact_powers: bool = True  # x^2 and |x|^p of integers summed as integers
    window_wise: bool = True  # few huge windows reduced one window at a time
    pairwise_levels: bool = True  # integer pyramid levels by sums/extremes of neighbour pairs, not `pool`
    median_values: bool = True  # median windows' values sorted in their own dtype, not argsorted in float64
    median_counts: bool = True  # medians of large overlapping windows by counting ranks (engine/ranks.py)
    median_opencv: bool = True  # 8-bit medians of odd square windows through OpenCV's medianBlur
    chunk_files: bool = True  # local Zarr inputs read chunk file by chunk file, not through zarr's reads
    majority_pairs: bool = True  # majority of few taps by comparing every pair, not by sorting
    majority_run_starts: bool = True  # majority's sorted runs measured by NumPy's maximum.accumulate, not bincount
    majority_histogram: bool = True  # majority of one-byte values over many taps by a histogram, not by sorting
    window_views: bool = True  # windows inside the input gathered through one strided view, not index arrays
    nearest_slices: bool = True  # nearest as one index (a slice where it can) per axis, not gathered windows


FAST_PATHS = FastPaths()


@dataclasses.dataclass
class Budgets:
    """The sizes the engine's passes are cut to; one place, so tests can shrink them."""

    chunk_bytes: int = 8 << 20  # input bytes per slab: measured best of 1-16 MB on float32 NCHW
    min_parallel_bytes: int = 2 << 20  # smaller inputs run in the calling thread
    window_wise_ratio: int = 4  # an axis with this many times more taps than windows is reduced window by window
    planar_max_trailing: int = 16  # channels-last blocks up to this size are reduced one channel at a time
    median_block_bytes: int = 64 << 20  # gathered taps of one block of windows (8 bytes a tap)
    median_count_taps: int = 256  # median windows of this many taps or more (x4 for 8/16 bits) are counted, not sorted
    majority_pair_taps: int = 16  # majority compares every pair of taps up to this many taps a window (4 x 4)
    majority_histogram_taps: int = 128  # and counts one-byte values in a histogram from this many (16 x 16)


BUDGETS = Budgets()


@contextlib.contextmanager
def fast_paths(**switches: bool):
    """Switch shortcuts on or off for the block (tests): ``with fast_paths(planar=False): ...``."""
    saved = replace(FAST_PATHS)
    for name, value in switches.items():
        if not hasattr(FAST_PATHS, name):
            raise PoolError(f"fast path {name!r} is unknown; use one of {', '.join(vars(FAST_PATHS))}")
        setattr(FAST_PATHS, name, bool(value))
    try:
        yield FAST_PATHS
    finally:
        for name, value in vars(saved).items():
            setattr(FAST_PATHS, name, value)

