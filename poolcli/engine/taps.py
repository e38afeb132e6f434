"""The tap loops: one strided view per window tap, combined along one axis at a time."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from ..backends import opencv
from ..core.geometry import (
    AxisGeometry,
    PoolPlan,
)
from .layout import index_along, take_along
from .shortcuts import BUDGETS, FAST_PATHS


def _reduce_axis(xp, a, geometry, combine, fill, dtype=None, transform=None):
    """Combine the taps of every window along one axis into a new C-ordered array.

    The first two taps that cover every window are combined straight into the result
    (one pass instead of a fill and two); the others update it in place.
    """
    dtype = dtype or a.dtype
    if _window_wise(xp, geometry):
        return _reduce_axis_by_window(xp, a, geometry, combine, dtype, transform)
    if _planar(xp, a, geometry.axis):
        return _reduce_axis_planar(xp, a, geometry, combine, fill, dtype, transform)
    shape = list(a.shape)
    shape[geometry.axis] = geometry.out

    def read(tap):
        values = take_along(xp, a, geometry.axis, tap.src)
        return values if transform is None else transform(values)

    taps = list(geometry.taps)
    covering = _covering(xp, taps, geometry.out, combine, dtype)
    out = xp.empty(shape, dtype=dtype)
    if len(covering) == 2:
        combine(read(covering[0]), read(covering[1]), out=out, dtype=dtype)
    elif covering:
        out[...] = read(covering[0])
    else:
        out.fill(fill)
    for tap in taps:
        if any(tap is used for used in covering):
            continue
        values = read(tap)
        key = index_along(geometry.axis, tap.out if tap.is_slice else xp.asarray(tap.out))
        if tap.is_slice:
            view = out[key]
            combine(view, values, out=view)
        else:
            out[key] = combine(out[key], values)
    return out




def _covering(xp, taps: list, out: int, combine, dtype) -> list:
    """The (at most two) taps that cover every window and so start the result. Float sums take
    only leading taps: each window then adds its taps in tap order whatever the slice of the
    array (a band of the streaming engine sums as the whole array does); max, min and integer
    sums are exact in any order, so any covering taps do."""
    def covers(tap) -> bool:
        return tap.is_slice and tap.out == slice(0, out)

    if combine is xp.add and np.dtype(dtype).kind in "fc":
        leading = []
        for tap in taps[:2]:
            if not covers(tap):
                break
            leading.append(tap)
        return leading
    return [tap for tap in taps if covers(tap)][:2]


def _window_wise(xp, geometry) -> bool:
    """Few, huge windows (window 2_100_000 over 3_000_000 cells): a loop over the windows,
    each one reduction, instead of a Python loop over millions of taps."""
    return (FAST_PATHS.window_wise and xp is np and isinstance(geometry, AxisGeometry)
            and geometry.window > BUDGETS.window_wise_ratio * geometry.out)


def _reduce_axis_by_window(xp, a, geometry: AxisGeometry, combine, dtype, transform):
    """`combine.reduce` over each window's input cells (a float sum may round in another
    order than tap by tap: NumPy's pairwise summation)."""
    shape = list(a.shape)
    shape[geometry.axis] = geometry.out
    out = xp.empty(shape, dtype=dtype)
    for o in range(geometry.out):
        values = a[index_along(geometry.axis, geometry.window_cells(o))]
        values = values if transform is None else transform(values)
        out[index_along(geometry.axis, slice(o, o + 1))] = combine.reduce(values, axis=geometry.axis, dtype=dtype,
                                                                     keepdims=True)
    return out




def _planar(xp, a, axis: int) -> bool:
    """A small trailing block (HWC's C) makes strided loops short: go plane by plane instead."""
    trailing = math.prod(a.shape[axis + 1:])
    return (FAST_PATHS.planar and xp is np and 1 < trailing <= BUDGETS.planar_max_trailing and a.flags.c_contiguous
            and a.shape[axis] > 1 and a.size > 0)


def _reduce_axis_planar(xp, a, geometry, combine, fill, dtype, transform):
    """Reduce each trailing channel as a (batch, n) plane, then interleave the planes again."""
    batch = math.prod(a.shape[: geometry.axis])
    trailing = math.prod(a.shape[geometry.axis + 1:])
    planes3 = a.reshape(batch, a.shape[geometry.axis], trailing)
    along_planes = replace(geometry, axis=1)
    planes = [_reduce_axis(xp, planes3[:, :, t], along_planes, combine, fill, dtype, transform)
              for t in range(trailing)]
    merged = _interleave(planes)
    return merged.reshape(a.shape[: geometry.axis] + (geometry.out,) + a.shape[geometry.axis + 1:])


_SAME_BITS = {1: np.uint8, 2: np.uint16, 4: np.int32, 8: np.float64}  # types OpenCV's merge takes, by size


def _interleave(planes: list) -> np.ndarray:
    """(batch, out) planes -> (batch, out, planes) with OpenCV's merge, which only copies
    bits: every dtype goes through as the OpenCV type of its size and comes back as itself.
    NumPy stacks them where OpenCV does not pay for its import (small planes, not loaded)."""
    dtype = planes[0].dtype
    carrier = _SAME_BITS.get(dtype.itemsize)
    size = planes[0].size * len(planes)
    if carrier is None or len(planes) > 512 or not FAST_PATHS.opencv_merge or not opencv.pays(size):
        return np.stack(planes, axis=-1)
    cv2 = opencv.cv2()
    merged = cv2.merge([plane.view(carrier) for plane in planes])
    return merged.reshape(planes[0].shape + (len(planes),)).view(dtype)


def reduce_windows(xp, a, plan: PoolPlan, combine, fill, dtype=None, transform=None):
    """Reduce every pooled axis in turn, outermost first, so the big first pass reads long
    contiguous runs; `transform` maps the raw values (applied in the first pass only)."""
    for i, geometry in enumerate(plan.axes):
        a = _reduce_axis(xp, a, geometry, combine, fill, dtype, transform if i == 0 else None)
    return a

