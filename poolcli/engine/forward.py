"""The forward pass: padding materialised once, the fused backend offered first, then the NumPy reducers."""

from __future__ import annotations

import functools
import math

import numpy as np

from ..backends import fused_forward, opencv
from ..core.dtypes import finalize, natural_dtype
from ..core.geometry import AxisGeometry, PoolPlan, materialise_padding
from ..core.modes import MODES
from . import progress
from .extreme import arg_extreme, extreme_pool
from .majority import majority_pool
from .median import median_pool
from .missing import empty_windows, fill_empty, missing_cells
from .nearest import nearest_pool
from .shortcuts import BUDGETS, FAST_PATHS, ieee_quiet
from .slabs import even_ranges, executor, run_chunked, worker_threads
from .sums import integer_sums_fit, lp_overflows, scaled_lp, sum_family


def forward_pass(xp, x, plan: PoolPlan, dtype, return_indices: bool):
    scaled = lp_overflows(xp, x, plan)  # the fused kernels would overflow
    sums_fit = functools.partial(integer_sums_fit, requested=dtype)
    fusable = not scaled and plan.nodata is None  # the kernels know no missing cells
    if fusable and (fused := fused_forward(xp, x, plan, dtype, return_indices, sums_fit)) is not None:
        return fused  # a CuPy array and a fused GPU kernel for this call
    progress.begin(math.prod(plan.out_shape))
    source, padded_plan = materialise_padding(xp, x, plan)
    natural = natural_dtype(x.dtype, plan.mode)
    if MODES[plan.mode].indices and return_indices:
        missing = missing_cells(xp, source, padded_plan)
        y, indices = chosen_cells(xp, source, padded_plan, plan.pooled_shape, missing)
        y = finalize(xp, y, natural, dtype)
        if missing is None:
            return y, indices
        return fill_empty(xp, y, empty_windows(xp, missing, padded_plan), plan, x.dtype, natural, dtype), indices
    if plan.nodata is None and _is_opencv_area_mean(xp, x, plan, dtype):
        return _opencv_area_mean(x, plan)
    return run_chunked(xp, source, padded_plan, lambda a, p: _values(xp, a, p, natural, dtype, scaled),
                       dtype if dtype is not None else natural)


def chosen_cells(xp, a, plan: PoolPlan, original_pooled_shape, missing=None):
    """(values, flat indices) of the modes that choose one cell of each window (`MODES[...].indices`),
    `missing` cells never chosen (a window of them alone: its first real cell)."""
    reducer = MODES[plan.mode].reducer
    if reducer == "majority":
        return majority_pool(xp, a, plan, original_pooled_shape, missing=missing)
    if reducer == "nearest":
        return nearest_pool(xp, a, plan, original_pooled_shape, missing=missing)
    values, indices, _ = arg_extreme(xp, a, plan, original_pooled_shape, missing)
    return values, indices


OPENCV_AREA_CHANNELS = (1, 3, 4)  # INTER_AREA's 2x2 rounding is (a+b+c+d+2)>>2 here; not for 2 channels


def _is_mean(plan: PoolPlan) -> bool:
    """avg: a plain sum divided by a count of taps."""
    return MODES[plan.mode].divisor and MODES[plan.mode].power is None


def _is_opencv_area_mean(xp, x, plan: PoolPlan, dtype) -> bool:
    """uint8 images averaged 2x2 to uint8: OpenCV's INTER_AREA is bit-identical and faster.

    It computes floor(sum/4 + 0.5) exactly for 1, 3 and 4 channels (tested against the
    brute force), which is the rounding of docs/semantics.md; anything else takes the general path.
    """
    channels = x.shape[2] if x.ndim == 3 else 1
    return (FAST_PATHS.opencv_area and xp is np and x.dtype == np.uint8 and dtype == np.uint8 and _is_mean(plan)
            and opencv.pays(x.shape[0] * x.shape[1] if x.ndim >= 2 else 0)
            and plan.divisor_override is None and x.ndim in (2, 3) and channels in OPENCV_AREA_CHANNELS
            and plan.pooled_axes == (0, 1) and min(x.shape[:2]) >= 2
            and all(isinstance(g, AxisGeometry) and (g.window, g.stride, g.dilation, g.pad_lo, g.pad_hi)
                    == (2, 2, 1, 0, 0) for g in plan.axes)
            and all(2 * g.out <= g.size for g in plan.axes))  # ceil mode's overhanging last window: not 2x2


def _opencv_area_mean(x, plan: PoolPlan):
    """INTER_AREA by bands of output rows on poolcli's threads (each row reads two input rows)."""
    cv2 = opencv.cv2()
    out_h, out_w = (g.out for g in plan.axes)
    out = np.empty(plan.out_shape, dtype=np.uint8)
    rows = out.reshape(out_h, out_w, -1)

    def band(bounds):
        top, bottom = bounds
        part = cv2.resize(x[2 * top : 2 * bottom, : 2 * out_w], (out_w, bottom - top), interpolation=cv2.INTER_AREA)
        rows[top:bottom] = part.reshape(bottom - top, out_w, -1)

    bands = even_ranges(out_h, worker_threads() if x.nbytes >= BUDGETS.min_parallel_bytes else 1)
    if len(bands) == 1:
        band(bands[0])
    else:
        for done in executor(worker_threads()).map(band, bands):
            del done
    return out


@ieee_quiet
def _values(xp, a, plan: PoolPlan, natural: np.dtype, dtype: np.dtype | None, scaled: bool):
    """The pooled values of one mode (its reducer in the table of modes), in the output dtype;
    `scaled`: lp with the scaled p-norm, decided once for the whole input (never per slab).
    Every reducer skips the missing cells (engine/missing.py) it is given, and a window
    left with none gives the nodata, here, for every mode."""
    reducer = MODES[plan.mode].reducer
    missing = missing_cells(xp, a, plan)
    if reducer == "extreme":
        y = extreme_pool(xp, a, plan, missing)
    elif reducer == "median":
        y = median_pool(xp, a, plan, plan.pooled_shape, dtype, missing=missing)[0]
    elif reducer == "majority":
        y = majority_pool(xp, a, plan, missing=missing)[0]
    elif reducer == "nearest":
        y = nearest_pool(xp, a, plan, missing=missing)[0]
    elif scaled:
        y = scaled_lp(xp, a, plan, missing)
    else:
        y = sum_family(xp, a, plan, dtype, missing)
    if reducer != "median":  # the median reports its blocks itself
        progress.advance(math.prod(plan.out_shape))
    y = finalize(xp, y, natural, dtype)
    if missing is None:
        return y
    return fill_empty(xp, y, empty_windows(xp, missing, plan), plan, a.dtype, natural, dtype)


