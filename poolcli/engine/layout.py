"""Moving the pooled axes last and back, strides and flat targets: the array bookkeeping of the passes."""

from __future__ import annotations

import math

import numpy as np


def index_along(axis: int, selection) -> tuple:
    return (slice(None),) * axis + (selection,)


def take_along(xp, a, axis: int, selection):
    if isinstance(selection, slice):
        return a[index_along(axis, selection)]
    return xp.take(a, xp.asarray(selection), axis=axis)


def row_major_strides(shape) -> list[int]:
    strides, step = [], 1
    for n in reversed(shape):
        strides.append(step)
        step *= n
    return strides[::-1]


def batch_size(shape, pooled) -> int:
    return math.prod(n for a, n in enumerate(shape) if a not in pooled)


def pooled_last(xp, a, pooled):
    m = len(pooled)
    return xp.moveaxis(a, pooled, tuple(range(a.ndim - m, a.ndim)))


def restore_pooled_axes(xp, a, pooled):
    """Undo pooled_last on an array whose pooled axes sit last."""
    m = len(pooled)
    return xp.moveaxis(a, tuple(range(a.ndim - m, a.ndim)), pooled)


def flat_targets(xp, indices, pooled, size: int, already_last: bool = False):
    """Global flat positions (batch * size + index) for pooled-last arrays of indices."""
    last = indices if already_last else pooled_last(xp, indices, pooled)
    m = len(pooled)
    batch_shape = last.shape[: last.ndim - m]
    batch = xp.arange(math.prod(batch_shape), dtype=np.int64).reshape(batch_shape + (1,) * m)
    return (batch * size + last).ravel()


def restore_layout(xp, flat, shape, pooled):
    """A flat (batch, pooled...) buffer back to `shape` with the pooled axes in place."""
    batch_shape = [n for a, n in enumerate(shape) if a not in pooled]
    pooled_shape = [shape[a] for a in pooled]
    return restore_pooled_axes(xp, flat.reshape(batch_shape + pooled_shape), pooled)

