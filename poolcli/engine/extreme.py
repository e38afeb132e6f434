"""max and min: NaN-propagating extremes and the first index of the winning tap."""

from __future__ import annotations

import numpy as np

from ..core.geometry import PoolPlan
from ..core.modes import MODES
from .layout import index_along, row_major_strides, take_along
from .missing import omit_nans
from .taps import reduce_windows

UNSET = np.iinfo(np.int64).min  # no tap seen yet; other negative indices: -(index + 1) of a missing cell


def _largest(mode: str) -> bool:
    return MODES[mode].keeps == "largest"


def _extreme_fill(dtype: np.dtype, mode: str, omit: bool):
    """The neutral element: padding and missing taps never win."""
    if dtype.kind == "b":
        return not _largest(mode)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return info.min if _largest(mode) else info.max
    if omit:
        return np.nan
    return -np.inf if _largest(mode) else np.inf


def extreme_pool(xp, a, plan: PoolPlan, missing=None):
    """Each window's max or min; `missing` cells (engine/missing.py) become the neutral element."""
    omit = omit_nans(plan, a.dtype)
    if _largest(plan.mode):
        combine = xp.fmax if omit else xp.maximum
    else:
        combine = xp.fmin if omit else xp.minimum
    fill = _extreme_fill(a.dtype, plan.mode, omit)
    if missing is not None:
        a = xp.where(missing, a.dtype.type(fill), a)
    return reduce_windows(xp, a, plan, combine, fill)


def _better(xp, mode: str, dtype: np.dtype, omit: bool):
    """Whether a new value replaces the best so far (PyTorch: a NaN always replaces)."""
    strictly = xp.greater if _largest(mode) else xp.less
    if dtype.kind != "f":
        return strictly
    if omit:
        return lambda new, best: strictly(new, best) | (xp.isnan(best) & ~xp.isnan(new))
    return lambda new, best: strictly(new, best) | xp.isnan(new)


def arg_extreme(xp, a, plan: PoolPlan, original_pooled_shape, missing=None):
    """Values and flat indices (row-major over the pooled axes) of each window's max/min, and
    the windows whose every cell is `missing` (None without a mask).

    Reducing the last pooled axis first, then the earlier ones, each keeping the first
    strict winner, gives the first occurrence in row-major window order. A missing cell
    carries its index as -(index + 1): it never wins over a real one, and a window of missing
    cells alone keeps its first (its value is then that cell's, the nodata).
    """
    omit = omit_nans(plan, a.dtype)
    better = _better(xp, plan.mode, a.dtype, omit)
    fill = _extreme_fill(a.dtype, plan.mode, omit)
    flat_strides = row_major_strides(original_pooled_shape)
    values, indices = a, None
    for geometry, flat_stride in reversed(list(zip(plan.axes, flat_strides))):
        values, indices = _arg_reduce_axis(xp, values, indices, geometry, flat_stride, better, fill, missing)
    assert indices is not None  # a plan pools one axis at least
    if missing is None:
        return values, indices, None
    empty = indices < 0
    return values, xp.where(empty, -1 - indices, indices), empty


def _arg_reduce_axis(xp, values, indices, geometry, flat_stride, better, fill, missing):
    """One pooled axis of `arg_extreme` (`missing`: the input's mask, read on the first axis
    reduced; later axes find missing cells by their negative indices)."""
    shape = list(values.shape)
    shape[geometry.axis] = geometry.out
    best = xp.full(shape, fill, dtype=values.dtype)
    best_index = xp.full(shape, UNSET, dtype=np.int64)
    broadcast = [1] * values.ndim
    for tap in geometry.taps:
        candidate = take_along(xp, values, geometry.axis, tap.src)
        positions = geometry.original_positions(tap.src_positions()) * flat_stride
        broadcast[geometry.axis] = len(positions)
        index = xp.asarray(positions, dtype=np.int64).reshape(broadcast)
        if indices is not None:
            carried = take_along(xp, indices, geometry.axis, tap.src)
            index = carried + index if missing is None else xp.where(carried < 0, carried - index, carried + index)
        elif missing is not None:
            index = xp.where(take_along(xp, missing, geometry.axis, tap.src), -1 - index, index)
        index = xp.broadcast_to(index, candidate.shape)
        key = index_along(geometry.axis, tap.out if tap.is_slice else xp.asarray(tap.out))
        current, current_index = best[key], best_index[key]
        if missing is None:
            wins = better(candidate, current) | (current_index == UNSET)
        else:  # a real cell beats a missing one; a missing one only fills an empty place
            wins = ((index >= 0) & (better(candidate, current) | (current_index < 0))) | (current_index == UNSET)
        if tap.is_slice:
            xp.copyto(current, candidate, where=wins)
            xp.copyto(current_index, index, where=wins)
        else:
            best[key] = xp.where(wins, candidate, current)
            best_index[key] = xp.where(wins, index, current_index)
    return best, best_index

