"""The sum family (sum, avg, l2, lp): powers, divisors, exact integer accumulation, the scaled p-norm."""

from __future__ import annotations

import contextlib
import contextvars
import math

import numpy as np

from ..core.dtypes import natural_dtype
from ..core.geometry import (
    PoolPlan,
)
from ..core.modes import MODES
from .divisors import (
    broadcast_counts,
    divisor_counts,
    flips_sign,
    largest_divisor,
    less_absent,
    window_divisor,
    window_taps,
    work_dtype,
)
from .gather import gather_windows, row_major_blocks
from .layout import pooled_last, restore_pooled_axes
from .missing import absent_cells, omit_nans
from .shortcuts import BUDGETS, FAST_PATHS
from .taps import reduce_windows
from .wide import wide_sums

_WHOLE_MAGNITUDES: contextvars.ContextVar[tuple[float, float] | None] = contextvars.ContextVar(
    "whole_magnitudes", default=None)


@contextlib.contextmanager
def magnitudes_of_whole(magnitudes: tuple[float, float] | None):
    """Pool a part of an array as the whole is pooled: lp decides whether it scales its
    p-norm from `magnitudes` (the whole array's smallest and largest finite non-zero |x|,
    None where it has none), not from the part's (the streaming engine's bands)."""
    token = _WHOLE_MAGNITUDES.set(magnitudes or (0.0, 0.0))
    try:
        yield
    finally:
        _WHOLE_MAGNITUDES.reset(token)


def finite_magnitudes(xp, a, work: np.dtype) -> tuple[float, float] | None:
    """The smallest and largest finite non-zero |x| of `a` in `work`, or None for none."""
    magnitudes = xp.abs(a.astype(work, copy=False))
    finite = magnitudes[xp.isfinite(magnitudes) & (magnitudes > 0)]
    return None if finite.size == 0 else (float(finite.min()), float(finite.max()))


def lp_overflows(xp, a, plan: PoolPlan) -> bool:
    """Whether some |x|^p of an lp-like mode (power p) leaves the work dtype's finite normal
    range (a huge or tiny p). Decided once per call, for the whole input."""
    if MODES[plan.mode].power != "p" or plan.p <= 2 or a.size == 0:
        return False
    work = work_dtype(a.dtype, plan.mode)
    whole = _WHOLE_MAGNITUDES.get()
    found = finite_magnitudes(xp, a, work) if whole is None else (whole if whole[1] > 0 else None)
    if found is None:
        return False
    info = np.finfo(work)
    taps = math.log2(max(window_taps(plan), 1))
    smallest, largest = math.log2(found[0]), math.log2(found[1])
    return plan.p * largest + taps >= math.log2(float(info.max)) or plan.p * smallest <= math.log2(float(info.tiny))


def scaled_lp(xp, a, plan: PoolPlan, missing=None):
    """lp as m * (sum (|x|/m)^p)^(1/p), m each window's largest |x|: the same p-norm without
    overflow or underflow, for a p so large that |x|^p leaves the float range (for p -> inf
    it is the largest |x|). Windows are gathered a block at a time, as for the median;
    `missing` cells (engine/missing.py) are left out as padding is."""
    work = work_dtype(a.dtype, plan.mode)
    pooled = plan.pooled_axes
    moved = pooled_last(xp, a, pooled)
    gone = None if missing is None else pooled_last(xp, missing, pooled)
    batch = moved.ndim - len(pooled)
    out_shape = moved.shape[:batch] + tuple(g.out for g in plan.axes)
    result = xp.empty(out_shape, dtype=work)
    omit = omit_nans(plan, a.dtype)
    for block in row_major_blocks(out_shape, 8 * window_taps(plan), BUDGETS.median_block_bytes):
        ranges = [range(*rows.indices(g.out)) for rows, g in zip(block[batch:], plan.axes)]
        values, valid, _ = gather_windows(xp, moved[block[:batch]], plan, ranges, None,
                                          None if gone is None else gone[block[:batch]])
        magnitudes = xp.where(valid, xp.abs(values.astype(work, copy=False)), 0)
        nans = xp.isnan(magnitudes)
        if omit:
            magnitudes = xp.where(nans, 0, magnitudes)
        largest = magnitudes.max(axis=-1, keepdims=True)
        scale = xp.where((largest > 0) & xp.isfinite(largest), largest, 1)
        norm = largest[..., 0] * ((magnitudes / scale) ** work.type(plan.p)).sum(axis=-1) ** work.type(1 / plan.p)
        norm = xp.where(largest[..., 0] > 0, norm, largest[..., 0])  # all zeros (or inf, NaN) stay
        if omit:
            norm = xp.where(nans.all(axis=-1), np.nan, norm)
        result[block] = norm
    return restore_pooled_axes(xp, result, pooled)


def sum_family(xp, a, plan: PoolPlan, dtype: np.dtype | None = None, missing=None):
    """sum / avg / l2 / lp: a separable sum of x, x^2 or |x|^p, then the divisor and root.

    Integer sums and means are exact: they accumulate in an integer type that holds any
    window's sum, or, where 64 bits do not, take the wide path (`wide_sums`). Absent cells
    (`missing` ones, or NaNs under 'omit') add nothing and leave the divisor.
    """
    work = work_dtype(a.dtype, plan.mode)
    empty = None
    absent = absent_cells(xp, a, plan, missing)
    if absent is not None:
        a, nan_counts, empty = drop_absent(xp, a, plan, absent)
    else:
        nan_counts = None
    rounded = _rounds(plan, dtype)
    bound = None
    plain = summed_power(plan) is None  # sum and avg: sums of x itself
    if plain and a.dtype.kind in "biu":
        bound = _exact_bound(xp, a, plan, rounded)
        if bound is None:
            return wide_sums(xp, a, plan, dtype if dtype is not None else natural_dtype(a.dtype, plan.mode),
                             nan_counts)
        accumulator = _accumulator_dtype(a.dtype, bound)
    elif plain:
        accumulator = work
    else:
        accumulator = _power_accumulator(a.dtype, plan, work)
    total = reduce_windows(xp, a, plan, xp.add, 0, accumulator, power_transform(xp, plan, accumulator))
    if rounded and bound is not None:
        return _rounded_integer_mean(xp, total, plan, bound, nan_counts)
    y = sum_finish(xp, total, plan, work, nan_counts)
    if empty is not None and plan.nodata is None and empty.any():  # with a nodata: forward.fill_empty
        y = y.astype(work, copy=False)
        y[empty] = np.nan
    return y


def summed_power(plan: PoolPlan) -> float | None:
    """The power the sum family sums (modes.Mode.power): None for x itself, 2 or p."""
    kind = MODES[plan.mode].power
    return None if kind is None else 2.0 if kind == "2" else plan.p


def _rounds(plan: PoolPlan, dtype: np.dtype | None) -> bool:
    """A mean of x (avg) asked for as integers: rounded half up exactly, in integer arithmetic."""
    return MODES[plan.mode].divisor and summed_power(plan) is None and dtype is not None and dtype.kind in "iu"


def _rounded_integer_mean(xp, total, plan: PoolPlan, bound: int, absent=None):
    """floor(total / divisor + 0.5) in exact integer arithmetic: (2 total + d) // (2 d).

    `bound` is the largest |total|; the arithmetic runs in the total's own type when
    2 * bound + d fits it, else in the narrowest type that holds it (`_exact_bound`
    has checked that one does). `absent`: per window, the cells that leave the divisor.
    """
    per_axis = None if plan.divisor_override is not None else divisor_counts(plan)
    need = 2 * bound + largest_divisor(plan)
    flip = flips_sign(plan)  # a negative override: -total over |divisor|, in a signed type
    unsigned = [total.dtype] if total.dtype.kind == "u" and not flip else []
    room = next(np.dtype(t) for t in unsigned + [np.int16, np.int32, np.int64, np.uint64]
                if np.iinfo(t).max >= need)
    if per_axis is None:
        divisor = room.type(largest_divisor(plan))
    else:
        divisor = less_absent(xp, broadcast_counts(xp, plan, per_axis, room), absent)
    total = total.astype(room, copy=False)
    if flip:
        total = xp.negative(total, out=total)
    doubled = xp.add(total, total, out=total)
    doubled += divisor
    return xp.floor_divide(doubled, 2 * divisor, out=doubled)


def power_transform(xp, plan: PoolPlan, work):
    """x^2 for l2 (and lp with p = 2), |x|^p for lp, computed in `work`; None for sum and avg."""
    power = summed_power(plan)
    if power == 2.0:
        return lambda v: xp.square(v, dtype=work)
    if power is not None:
        if work.kind in "iu":  # |x|^p of integers with an integral p, exactly
            return lambda v: xp.power(xp.abs(v.astype(np.int64)) if v.dtype.kind == "i" else v, int(power),
                                      dtype=work)
        return lambda v: xp.power(xp.abs(v.astype(work, copy=False)), work.type(power))
    return None


MAX_EXACT_POWER = 64  # lp with a larger integral p computes |x|^p in floats (2^64 > 2^53 anyway)


def _power_accumulator(dtype: np.dtype, plan: PoolPlan, work: np.dtype) -> np.dtype:
    """Integer sums of x^2 (l2) or |x|^p (lp, integral p <= 64) when they stay exact in a
    float64; a larger p (1e308, say) takes the float path without building huge integers."""
    power = summed_power(plan) or 1.0
    if dtype.kind not in "biu" or not float(power).is_integer():
        return work
    if power > MAX_EXACT_POWER or not FAST_PATHS.exact_powers:
        return work
    bound = _sum_bound(dtype, plan) ** int(power)  # >= taps * max|x|^p
    if bound >= 2**53:
        return work
    if dtype.kind == "i":
        return np.dtype(np.int64)
    return np.dtype(np.uint32 if bound <= np.iinfo(np.uint32).max else np.uint64)


def sum_finish(xp, total, plan: PoolPlan, work, nan_counts):
    """Divide and take roots in place where the total is already a float of the work dtype:
    sum keeps its total, lp takes the p-th root, avg divides, l2 divides and takes the root."""
    power, divides = summed_power(plan), MODES[plan.mode].divisor
    if not divides:
        if power is None:
            return total
        total = total.astype(work, copy=False)
        if power == 2.0:
            return xp.sqrt(total, out=total)
        return xp.power(total, work.type(1.0 / power), out=total)
    total = total.astype(work, copy=False)
    mean = xp.divide(total, window_divisor(xp, plan, work, nan_counts), out=total)
    return mean if power is None else xp.sqrt(mean, out=mean)


def drop_absent(xp, a, plan: PoolPlan, absent):
    """Absent cells (engine/missing.py: missing ones, NaNs under 'omit') become zeros in the sum,
    not in the divisor: (a with them zeroed, their count per window, the windows left empty)."""
    present = reduce_windows(xp, ~absent, plan, xp.add, 0, np.int64)
    real = broadcast_counts(xp, plan, [g.count_real() for g in plan.axes], np.int64)
    return xp.where(absent, a.dtype.type(0), a), real - present, present == 0


def _sum_bound(dtype: np.dtype, plan: PoolPlan, magnitude: int | None = None) -> int:
    """The largest |sum| of one window of an integer or bool dtype: taps times the largest
    |value| of the dtype, or `magnitude` (the data's own largest |value|) when given."""
    if magnitude is None:
        magnitude = 1 if dtype.kind == "b" else max(-int(np.iinfo(dtype).min), int(np.iinfo(dtype).max))
    return magnitude * window_taps(plan)


def _exact_bound(xp, a, plan: PoolPlan, rounded: bool) -> int | None:
    """The bound on |window sum| that lets a 64-bit accumulator hold sums exactly (and a
    rounded mean's 2 * sum + divisor), or None: then only the wide path is exact.

    The dtype's range decides where it can (all but 64-bit inputs, a cost-free check);
    else the data's own largest |value| (one pass), so int64 arrays of ordinary values
    keep the fast path.
    """
    signed = a.dtype.kind not in "ub" or (rounded and flips_sign(plan))  # a flipped rounded mean negates sums
    limit = int(np.iinfo(np.int64 if signed else np.uint64).max)
    margin = largest_divisor(plan) if rounded else 0
    bound = _sum_bound(a.dtype, plan)
    if (2 * bound + margin if rounded else bound) <= limit:
        return bound
    magnitude = 0 if a.size == 0 else max(-int(a.min()), int(a.max()))
    bound = _sum_bound(a.dtype, plan, magnitude)
    return bound if (2 * bound + margin if rounded else bound) <= limit else None


def integer_sums_fit(xp, x, plan: PoolPlan, requested: np.dtype | None) -> bool:
    """Whether sum/avg of `x` stays exact in 64-bit accumulators (the CUDA backend's fused
    kernels accumulate in 64 bits, so they leave the other calls to this engine)."""
    record = MODES[plan.mode]
    if record.reducer != "sum" or record.power is not None or x.dtype.kind not in "biu":  # sum and avg only
        return True
    return _exact_bound(xp, x, plan, _rounds(plan, requested)) is not None


def _accumulator_dtype(dtype: np.dtype, bound: int) -> np.dtype:
    """The narrowest integer type that holds any window's sum (|sum| <= bound) exactly."""
    unsigned = dtype.kind in "ub"
    widths = (np.uint16, np.uint32, np.uint64) if unsigned else (np.int16, np.int32, np.int64)
    for candidate in widths if FAST_PATHS.narrow_integers else widths[-1:]:
        if np.iinfo(candidate).max >= bound:
            return np.dtype(candidate)
    return np.dtype(np.uint64 if unsigned else np.int64)

