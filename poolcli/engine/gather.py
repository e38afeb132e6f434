"""Windows gathered in blocks of bounded size, for the reducers that need every tap at once."""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np

from ..core.geometry import (
    AxisGeometry,
    PoolPlan,
)
from .divisors import window_taps
from .layout import pooled_last, restore_pooled_axes, row_major_strides
from .shortcuts import BUDGETS, FAST_PATHS


def row_major_blocks(shape, item_bytes: int, budget: int):
    """Row-major blocks of an array of `shape` (tuples of slices), each of at most
    budget // item_bytes items (one at least): single indices on the leading axes, a range
    on one axis, the trailing axes whole."""
    limit = max(1, budget // max(item_bytes, 1))
    split = next(i for i in range(len(shape)) if math.prod(shape[i + 1:]) <= limit)
    step = max(1, limit // max(math.prod(shape[split + 1:]), 1))
    rest = (slice(None),) * (len(shape) - split - 1)
    for prefix in itertools.product(*(range(n) for n in shape[:split])):
        for start in range(0, shape[split], step):
            yield tuple(slice(i, i + 1) for i in prefix) + (slice(start, start + step),) + rest


def gather_windows(xp, a, plan: PoolPlan, ranges, original_pooled_shape=None, missing=None):
    """The taps of windows `ranges` (one range of outputs per pooled axis) side by side:
    (batch..., out..., taps) from `a` with its pooled axes last.

    Also returns which taps are real (not padding, and not `missing`: a mask laid out as `a`,
    engine/missing.py), shaped (out..., taps) or, with a mask, as the values; and, given
    `original_pooled_shape`, each tap's flat input index (else None).
    """
    m = len(plan.axes)
    index_arrays: list = []
    valid: Any = None
    sources: Any = None
    flat_strides = row_major_strides(original_pooled_shape or plan.pooled_shape)
    for i, (geometry, rows, flat_stride) in enumerate(zip(plan.axes, ranges, flat_strides)):
        positions, present = geometry.window_table(rows.start, rows.stop)
        shape = [1] * (2 * m)
        shape[i], shape[m + i] = positions.shape
        index_arrays.append(xp.asarray(positions.reshape(shape)))
        if not present.all():  # every tap real on every axis: `valid` stays one True, broadcast
            term_valid = xp.asarray(present.reshape(shape))
            valid = term_valid if valid is None else valid & term_valid
        if original_pooled_shape is not None:
            term_source = xp.asarray(geometry.original_positions(positions).reshape(shape) * flat_stride)
            sources = term_source if sources is None else sources + term_source
    out_shape = tuple(len(rows) for rows in ranges)
    view = _inner_windows(xp, a, plan, ranges) if FAST_PATHS.window_views else None
    values = a[(Ellipsis, *index_arrays)] if view is None else view
    tap_shape = values.shape[-m:]
    taps = math.prod(tap_shape)
    values = values.reshape(values.shape[: values.ndim - 2 * m] + out_shape + (taps,))
    if valid is None:
        valid = xp.broadcast_to(xp.asarray(True), out_shape + (taps,))
    else:
        valid = xp.broadcast_to(valid, out_shape + tap_shape).reshape(out_shape + (taps,))
    if missing is not None:
        valid = valid & ~missing[(Ellipsis, *index_arrays)].reshape(values.shape)
    if sources is not None:
        sources = xp.broadcast_to(sources, out_shape + sources.shape[m:]).reshape(out_shape + (taps,))
    return values, valid, sources



def _inner_windows(xp, a, plan: PoolPlan, ranges):
    """Windows `ranges` as one strided view (batch..., out..., window...) of `a` where every tap of
    every one of them lies inside the input (a copy is then a plain strided copy, not a gather by
    index arrays); None where some window reaches into padding or bins are uneven."""
    starts, axes = [], []
    for geometry, rows in zip(plan.axes, ranges):
        if not isinstance(geometry, AxisGeometry) or len(rows) == 0:
            return None
        axes.append(geometry)
        first = rows.start * geometry.stride - geometry.pad_lo
        if first < 0 or (rows.stop - 1) * geometry.stride - geometry.pad_lo + geometry.span > geometry.size:
            return None
        starts.append(first)
    base = a[(Ellipsis, *(slice(start, None) for start in starts))]
    batch = a.ndim - len(axes)
    pooled_strides = base.strides[batch:]
    shape = base.shape[:batch] + tuple(len(rows) for rows in ranges) + tuple(g.window for g in axes)
    strides = (base.strides[:batch] + tuple(st * g.stride for st, g in zip(pooled_strides, axes))
               + tuple(st * g.dilation for st, g in zip(pooled_strides, axes)))
    return xp.lib.stride_tricks.as_strided(base, shape, strides)


def pick_in_windows(xp, a, plan: PoolPlan, pick, original_pooled_shape=None, block_taps: int | None = None,
                    missing=None):
    """The value of one chosen cell per window, and with `original_pooled_shape` its flat input
    index (else None): `pick(values, valid)` names the chosen tap of each gathered window (the
    last axis). Windows are gathered a block at a time, each block's taps (`block_taps` a window,
    default the most a window reads) under BUDGETS.median_block_bytes, so memory stays
    O(input + output) however many windows overlap. `missing` cells (a mask laid out as `a`) are
    not real for `pick`; a window of them alone gives its first real cell."""
    pooled = plan.pooled_axes
    moved = pooled_last(xp, a, pooled)
    gone = None if missing is None else pooled_last(xp, missing, pooled)
    batch = moved.ndim - len(pooled)
    out_shape = moved.shape[:batch] + tuple(g.out for g in plan.axes)
    chosen = xp.empty(out_shape, dtype=a.dtype)
    indices = None if original_pooled_shape is None else xp.empty(out_shape, dtype=np.int64)
    taps = max(block_taps or 0, window_taps(plan))
    for block in row_major_blocks(out_shape, 8 * taps, BUDGETS.median_block_bytes):
        ranges = [range(*rows.indices(g.out)) for rows, g in zip(block[batch:], plan.axes)]
        values, valid, sources = gather_windows(xp, moved[block[:batch]], plan, ranges, original_pooled_shape)
        tap = (pick(values, valid) if gone is None else _pick_present(xp, pick, values, valid, gone[block[:batch]],
                                                                      plan, ranges))[..., None]
        chosen[block] = xp.take_along_axis(values, tap, axis=-1)[..., 0]
        if indices is not None:
            indices[block] = xp.take_along_axis(xp.broadcast_to(sources, values.shape), tap, axis=-1)[..., 0]
    restored = restore_pooled_axes(xp, chosen, pooled)
    return restored, None if indices is None else restore_pooled_axes(xp, indices, pooled)


def _pick_present(xp, pick, values, valid, gone, plan: PoolPlan, ranges):
    """`pick` among the taps that are real and not missing (`gone`: the mask of the block's input);
    where none is, the first real tap."""
    absent = gather_windows(xp, gone, plan, ranges)[0]
    real = xp.broadcast_to(valid, values.shape)
    present = real & ~absent
    return xp.where(present.any(axis=-1), pick(values, present), xp.argmax(real, axis=-1))
