"""majority: the most frequent value of each window's real cells, the smallest on a tie, and the
first cell in window order that holds it (its index, where the backward pass routes).

Windows are gathered a block at a time (`gather.pick_in_windows`) and each block is counted
along its taps, in one of three ways that give the same cell (`FAST_PATHS`, twin-tested):

- pairs (few taps, any dtype): each tap's count is its equality with every tap, T(T-1)/2
  whole-block comparisons, with no sort;
- a histogram (one-byte values, many taps): counts of the 256 values per window by one
  `bincount`;
- sorting (the general path): a stable sort of each window's taps, its runs of equal values
  counted by one `bincount`, the first longest run (the smallest value) kept.

Floats compare exactly (-0.0 equals 0.0; the value returned is the chosen cell's own). NaN is
never counted: with nan_policy="propagate" a window holding one gives NaN (its first NaN cell),
with "omit" NaN cells are skipped and a window of NaN only gives NaN (its first cell).
Everything is array code on `xp`: NumPy or CuPy alike.
"""

from __future__ import annotations

import math

import numpy as np

from ..core.geometry import PoolPlan
from .divisors import window_taps
from .gather import pick_in_windows
from .shortcuts import BUDGETS, FAST_PATHS

HISTOGRAM_BINS = 256  # one-byte values (bool, int8, uint8)


def majority_pool(xp, a, plan: PoolPlan, original_pooled_shape=None):
    """(values, indices) of each window's majority; indices only given `original_pooled_shape`."""
    taps = window_taps(plan)
    histogram = _histogram_pays(a.dtype, taps)
    return pick_in_windows(xp, a, plan, lambda values, valid: majority_taps(xp, values, valid, plan.nan_policy),
                           original_pooled_shape, HISTOGRAM_BINS if histogram else taps)


def majority_taps(xp, values, valid, nan_policy: str):
    """The chosen tap of each gathered window (last axis) of `values`; `valid` marks real cells."""
    valid = xp.broadcast_to(valid, values.shape)
    nans = xp.isnan(values) & valid if values.dtype.kind == "f" else None
    counted = valid if nans is None else valid & ~nans
    if values.dtype.kind == "b":
        values = values.view(np.uint8)
    taps = values.shape[-1]
    if FAST_PATHS.majority_pairs and taps <= BUDGETS.majority_pair_taps:
        tap = _by_pairs(xp, values, counted)
    elif _histogram_pays(values.dtype, taps):
        tap = _by_histogram(xp, values, counted)
    else:
        tap = _by_sorting(xp, values, counted)
    if nans is None:
        return tap
    if nan_policy == "propagate":
        return xp.where(nans.any(axis=-1), xp.argmax(nans, axis=-1), tap)
    return xp.where(counted.any(axis=-1), tap, xp.argmax(valid, axis=-1))


def _histogram_pays(dtype: np.dtype, taps: int) -> bool:
    return FAST_PATHS.majority_histogram and dtype.itemsize == 1 and taps >= BUDGETS.majority_histogram_taps


def _by_pairs(xp, values, counted):
    """Each tap's count (-1 for a tap not counted) by comparing it with every tap, then the tap
    of the largest count, the smaller value on a tie, the earlier tap on equal values."""
    taps = values.shape[-1]
    counts = [counted[..., j].astype(np.int32) for j in range(taps)]
    for i in range(taps):
        for j in range(i + 1, taps):
            same = (values[..., i] == values[..., j]) & counted[..., i] & counted[..., j]
            counts[i] += same
            counts[j] += same
    best_count = xp.where(counted[..., 0], counts[0], -1)
    best_value, best = values[..., 0], xp.zeros(values.shape[:-1], dtype=np.int64)
    for j in range(1, taps):
        count = xp.where(counted[..., j], counts[j], -1)
        wins = (count > best_count) | ((count == best_count) & (values[..., j] < best_value))
        best_count = xp.where(wins, count, best_count)
        best_value = xp.where(wins, values[..., j], best_value)
        best = xp.where(wins, j, best)
    return best


def _by_histogram(xp, values, counted):
    """Counts of the 256 one-byte values of each window (one bincount), the first largest (the
    smallest value), then the first counted tap holding it."""
    rows = math.prod(values.shape[:-1])
    keys = values.astype(np.int64) + (128 if values.dtype.kind == "i" else 0)  # int8: -128 is bin 0
    slots = (xp.arange(rows, dtype=np.int64).reshape(values.shape[:-1] + (1,)) * HISTOGRAM_BINS + keys)[counted]
    counts = xp.bincount(slots, minlength=rows * HISTOGRAM_BINS).reshape(values.shape[:-1] + (HISTOGRAM_BINS,))
    best = xp.argmax(counts, axis=-1)[..., None]
    return xp.argmax((keys == best) & counted, axis=-1)


def _by_sorting(xp, values, counted):
    """A stable sort of each window's taps (counted ones first, in value order, equal values in
    window order), its runs of equal values counted by one bincount; the first longest run
    (the smallest value) gives its first tap."""
    order = xp.argsort(values, axis=-1, kind="stable")
    if not bool(counted.all()):  # a second stable sort puts the taps not counted last
        skipped = ~xp.take_along_axis(counted, order, axis=-1)
        order = xp.take_along_axis(order, xp.argsort(skipped.view(np.uint8), axis=-1, kind="stable"), axis=-1)
    ordered = xp.take_along_axis(values, order, axis=-1)
    weights = xp.take_along_axis(counted, order, axis=-1)
    starts = xp.ones(ordered.shape, dtype=bool)
    starts[..., 1:] = ordered[..., 1:] != ordered[..., :-1]
    runs = xp.cumsum(starts, axis=-1) - 1  # each sorted tap's run, 0..taps-1
    taps, rows = values.shape[-1], math.prod(values.shape[:-1])
    slots = xp.arange(rows, dtype=np.int64).reshape(values.shape[:-1] + (1,)) * taps + runs
    counts = xp.bincount(slots[weights], minlength=rows * taps).reshape(values.shape)
    best_run = xp.argmax(counts, axis=-1)[..., None]
    first = xp.argmax(runs == best_run, axis=-1)[..., None]
    return xp.take_along_axis(order, first, axis=-1)[..., 0]
