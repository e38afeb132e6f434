"""Window sizes and divisors: how many taps and which of them count, per output position."""

from __future__ import annotations

import math

import numpy as np

from ..core.geometry import (
    PoolPlan,
)
from ..core.modes import MODES


def divisor_counts(plan: PoolPlan) -> list[np.ndarray]:
    """Per pooled axis, each window's divisor count (the count_include_pad rule of docs/semantics.md)."""
    return [g.count_padded() if plan.count_include_pad else g.count_real() for g in plan.axes]


def largest_divisor(plan: PoolPlan) -> int:
    """The largest |divisor| of any window (a negative override counts by its size)."""
    if plan.divisor_override is not None:
        return abs(plan.divisor_override)
    return math.prod(int(count.max(initial=1)) for count in divisor_counts(plan))


def window_divisor(xp, plan: PoolPlan, work, nan_counts=None):
    if plan.divisor_override is not None:
        return work.type(plan.divisor_override)
    return less_absent(xp, broadcast_counts(xp, plan, divisor_counts(plan), work), nan_counts)


def less_absent(xp, divisor, absent):
    """Each window's divisor less its absent cells (NaNs under 'omit', missing cells); at least
    1: it is 0 only in windows of absent cells alone, whose value is NaN or the nodata."""
    if absent is None:
        return divisor
    dtype = xp.asarray(divisor).dtype
    return xp.maximum(divisor - absent.astype(dtype, copy=False), dtype.type(1)).astype(dtype, copy=False)


def flips_sign(plan: PoolPlan) -> bool:
    """Whether a negative divisor_override (PyTorch allows any non-zero one) flips the mean's sign:
    exact integer paths then divide the negated sum by |divisor|, as floor(S / d + 1/2) =
    floor(-S / |d| + 1/2)."""
    return plan.divisor_override is not None and plan.divisor_override < 0


def broadcast_counts(xp, plan: PoolPlan, per_axis, dtype):
    """The product of per-axis counts, shaped to broadcast against the output
    (a scalar when every window has the same count, the common case)."""
    if all(int(count.min()) == int(count.max()) for count in per_axis):
        return np.dtype(dtype).type(math.prod(int(count[0]) for count in per_axis))
    counts = None
    for geometry, count in zip(plan.axes, per_axis):
        shape = [1] * len(plan.shape)
        shape[geometry.axis] = geometry.out
        term = xp.asarray(count, dtype=dtype).reshape(shape)
        counts = term if counts is None else counts * term
    return counts


def work_dtype(dtype: np.dtype, mode: str) -> np.dtype:
    """Floats stay (float16 computes in float32); integers and bools compute in float64."""
    if dtype.kind == "f":
        return np.dtype(np.float32) if dtype.itemsize < 4 else dtype
    if MODES[mode].output == "sum":  # sum: integers stay integers
        return np.dtype(np.uint64) if dtype.kind == "u" else np.dtype(np.int64)
    return np.dtype(np.float64)


def window_taps(plan: PoolPlan) -> int:
    """The most cells one window can read (in closed form: no tap is listed)."""
    return math.prod(g.most_taps for g in plan.axes)

