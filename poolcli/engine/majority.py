"""majority: the most frequent value of each window's real cells, the smallest on a tie, and the
first cell in window order that holds it (its index, where the backward pass routes).

Windows are gathered a block at a time (`gather.pick_in_windows`) and each block is counted
along its taps, in one of three ways that give the same cell (`FAST_PATHS`, twin-tested):

- pairs (few taps, any dtype): each tap's count is its equality with every tap, T(T-1)/2
  whole-block comparisons, with no sort;
- a histogram (one-byte values, many taps): counts of the 256 values per window by one
  `bincount`;
- sorting (the general path): each window's taps sorted, the first longest run of equal values
  (the smallest value) found by NumPy's `maximum.accumulate` of the run starts, or by one
  `bincount` of the runs (the generic code, CuPy's); where some taps do not count (padding,
  NaN), a stable sort of the taps' order puts them last.

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


def majority_pool(xp, a, plan: PoolPlan, original_pooled_shape=None, missing=None):
    """(values, indices) of each window's majority, `missing` cells not counted; indices only given
    `original_pooled_shape`."""
    taps = window_taps(plan)
    histogram = _histogram_pays(a.dtype, taps)
    return pick_in_windows(xp, a, plan, lambda values, valid: majority_taps(xp, values, valid, plan.nan_policy),
                           original_pooled_shape, HISTOGRAM_BINS if histogram else taps, missing)


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
    of the largest count, the smaller value on a tie, the earlier tap on equal values. The taps
    are taken apart first (one contiguous array each), so every comparison runs on plain arrays."""
    taps = values.shape[-1]
    column = [xp.ascontiguousarray(values[..., j]) for j in range(taps)]
    every = bool(counted.all())
    real = [counted[..., j] for j in range(taps)]
    counts = [xp.ones(values.shape[:-1], dtype=np.int16) if every else real[j].astype(np.int16)
              for j in range(taps)]
    for i in range(taps):
        for j in range(i + 1, taps):
            same = column[i] == column[j]
            if not every:
                same &= real[i] & real[j]
            counts[i] += same
            counts[j] += same
    if not every:
        counts = [xp.where(real[j], counts[j], -1) for j in range(taps)]
    best_count, best_value = counts[0], column[0]
    best = xp.zeros(values.shape[:-1], dtype=np.int64)
    for j in range(1, taps):
        wins = (counts[j] > best_count) | ((counts[j] == best_count) & (column[j] < best_value))
        best_count = xp.where(wins, counts[j], best_count)
        best_value = xp.where(wins, column[j], best_value)
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
    """The tap of the first longest run of equal values in each window's sorted taps (the
    smallest value) that comes first in window order. Where every tap counts (no padding, no
    NaN), a sort of the values alone; else the sort of their order (`_by_sorting_order`)."""
    if not bool(counted.all()):
        return _by_sorting_order(xp, values, counted)
    ordered = xp.sort(values, axis=-1)
    if FAST_PATHS.majority_run_starts and xp is np:  # NumPy's accumulate: each tap's run start, in place
        taps = np.arange(values.shape[-1], dtype=np.int32)
        starts = np.where(_run_starts(xp, ordered), taps, 0)
        np.maximum.accumulate(starts, axis=-1, out=starts)
        at = np.argmax(taps - starts, axis=-1)[..., None]  # the end of the first longest run
    else:
        runs = _runs(xp, ordered)
        counts = _run_counts(xp, runs, None)
        at = xp.argmax(runs == xp.argmax(counts, axis=-1)[..., None], axis=-1)[..., None]
    winner = xp.take_along_axis(ordered, at, axis=-1)
    return xp.argmax(values == winner, axis=-1)


def _run_starts(xp, ordered):
    """Where a run of equal values starts in each window's sorted taps."""
    starts = xp.ones(ordered.shape, dtype=bool)
    starts[..., 1:] = ordered[..., 1:] != ordered[..., :-1]
    return starts


def _runs(xp, ordered):
    """Each sorted tap's run of equal values, numbered 0, 1, ... along the last axis."""
    return xp.cumsum(_run_starts(xp, ordered), axis=-1) - 1


def _run_counts(xp, runs, weights):
    """How many (counted) taps each run holds, by one bincount over every window of the block."""
    taps, rows = runs.shape[-1], math.prod(runs.shape[:-1])
    slots = xp.arange(rows, dtype=np.int64).reshape(runs.shape[:-1] + (1,)) * taps + runs
    chosen = slots.ravel() if weights is None else slots[weights]
    return xp.bincount(chosen, minlength=rows * taps).reshape(runs.shape)


def _by_sorting_order(xp, values, counted):
    """A stable sort of each window's taps (counted ones first, in value order, equal values in
    window order), its runs of equal values counted by one bincount; the first longest run
    (the smallest value) gives its first tap."""
    order = xp.argsort(values, axis=-1, kind="stable")
    if not bool(counted.all()):  # a second stable sort puts the taps not counted last
        skipped = ~xp.take_along_axis(counted, order, axis=-1)
        order = xp.take_along_axis(order, xp.argsort(skipped.view(np.uint8), axis=-1, kind="stable"), axis=-1)
    runs = _runs(xp, xp.take_along_axis(values, order, axis=-1))
    counts = _run_counts(xp, runs, xp.take_along_axis(counted, order, axis=-1))
    best_run = xp.argmax(counts, axis=-1)[..., None]
    first = xp.argmax(runs == best_run, axis=-1)[..., None]
    return xp.take_along_axis(order, first, axis=-1)[..., 0]
