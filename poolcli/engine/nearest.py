"""nearest: one cell of each window, its first real cell in window order (docs/semantics.md,
section 3), and that cell's index.

The first real cell of a multi-axis window is the first real tap of each axis together, so
the pick is separable: one index per output along each pooled axis, taken axis by axis (a
strided slice where the indices step evenly, as `x[c::s]`: stride-k subsampling is a view and
a copy). With nan_policy="omit" a float window skips its NaN cells, which is not separable:
the windows are then gathered and the first real cell that is not NaN is kept (a window of NaN
only gives its first cell, NaN). `FAST_PATHS.nearest_slices` off takes the gathered path always
(the twin). Everything is array code on `xp`: NumPy or CuPy alike.
"""

from __future__ import annotations

import numpy as np

from ..core.geometry import AxisGeometry, PoolPlan
from .gather import pick_in_windows
from .layout import row_major_strides, take_along
from .shortcuts import FAST_PATHS


def nearest_pool(xp, a, plan: PoolPlan, original_pooled_shape=None, missing=None):
    """(values, indices) of each window's first real cell that is not `missing`; indices only given
    `original_pooled_shape`."""
    omit = plan.nan_policy == "omit" and a.dtype.kind == "f"
    if omit or missing is not None or not FAST_PATHS.nearest_slices:  # the slices know no skipped cells
        return pick_in_windows(xp, a, plan, lambda values, valid: _first_counted(xp, values, valid, omit),
                               original_pooled_shape, missing=missing)
    values = a
    for geometry in plan.axes:
        values = take_along(xp, values, geometry.axis, _as_slice(first_cells(geometry)))
    values = xp.ascontiguousarray(values)
    if original_pooled_shape is None:
        return values, None
    return values, _flat_indices(xp, plan, original_pooled_shape)


def first_cells(geometry) -> np.ndarray:
    """The input position of each window's first real tap along one axis (a bin's first cell)."""
    if not isinstance(geometry, AxisGeometry):
        return geometry.bounds[0]
    starts = np.arange(geometry.out, dtype=np.int64) * geometry.stride - geometry.pad_lo
    skipped = np.maximum(-(starts // geometry.dilation), 0)  # taps in the low padding
    return starts + skipped * geometry.dilation


def _as_slice(positions: np.ndarray) -> slice | np.ndarray:
    """Evenly stepping positions as a slice (a view), others as they are."""
    steps = np.diff(positions)
    if len(positions) and (len(steps) == 0 or (steps[0] > 0 and bool((steps == steps[0]).all()))):
        step = int(steps[0]) if len(steps) else 1
        return slice(int(positions[0]), int(positions[-1]) + 1, step)
    return positions


def _flat_indices(xp, plan: PoolPlan, original_pooled_shape):
    """The flat index (row-major over the pooled axes) of every output's chosen cell."""
    flat = np.zeros((), dtype=np.int64)
    count = len(plan.axes)
    for i, (geometry, stride) in enumerate(zip(plan.axes, row_major_strides(original_pooled_shape))):
        shape = [1] * count
        shape[i] = geometry.out
        flat = flat + (geometry.original_positions(first_cells(geometry)) * stride).reshape(shape)
    full = [1] * len(plan.shape)
    for geometry in plan.axes:
        full[geometry.axis] = geometry.out
    return xp.ascontiguousarray(xp.broadcast_to(xp.asarray(flat.reshape(full)), plan.out_shape))


def _first_counted(xp, values, valid, omit: bool):
    """The first real tap of each gathered window (with `omit`, the first that is not NaN, else
    the first real one)."""
    valid = xp.broadcast_to(valid, values.shape)
    if not omit:
        return xp.argmax(valid, axis=-1)
    counted = valid & ~xp.isnan(values)
    return xp.where(counted.any(axis=-1), xp.argmax(counted, axis=-1), xp.argmax(valid, axis=-1))
