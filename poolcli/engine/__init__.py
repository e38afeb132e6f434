"""Pure array functions: pooling, adaptive pooling, the backward pass and unpooling.

One window path serves every mode. A validated plan (core/geometry.py) lists, per pooled
axis, the taps of the windows as strided slices; a reduction walks those taps, so the
Python loops run over window taps and axes only, never over outputs (but for an axis of
few, huge windows, more than BUDGETS.window_wise_ratio taps a window: one reduction per window
there is the shorter loop). Separable modes
(max, min, sum, avg, l2, lp) reduce one axis at a time, so no temporary is ever
k^2 times the output; median gathers its windows, which it cannot avoid, block by block
so that the gathered taps stay under BUDGETS.median_block_bytes.

Integer sums are exact: they accumulate in the narrowest integer type that holds any
window's sum, and where not even 64 bits do (64-bit inputs with large values), in two
32-bit limbs that are recombined exactly (clipped, or rounded once to a float).

`xp` is the array namespace of the input (NumPy or CuPy), taken on entry.
"""

from __future__ import annotations

from .api import adaptive_pool, backward_with, output_shape, pool, pool_backward, pool_with, unpool
from .forward import OPENCV_AREA_CHANNELS
from .shortcuts import BUDGETS, FAST_PATHS, Budgets, FastPaths, fast_paths, ieee_quiet
from .slabs import run_chunked, worker_threads
from .sums import MAX_EXACT_POWER, integer_sums_fit
from .wide import LIMB_BITS, LIMB_MASK, MAX_WIDE_TAPS

__all__ = [
    "BUDGETS",
    "Budgets",
    "FAST_PATHS",
    "FastPaths",
    "LIMB_BITS",
    "LIMB_MASK",
    "MAX_EXACT_POWER",
    "MAX_WIDE_TAPS",
    "OPENCV_AREA_CHANNELS",
    "adaptive_pool",
    "backward_with",
    "fast_paths",
    "ieee_quiet",
    "integer_sums_fit",
    "output_shape",
    "pool",
    "pool_backward",
    "pool_with",
    "run_chunked",
    "unpool",
    "worker_threads",
]
