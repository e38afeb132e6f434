"""The backward pass: gradient routed through indices or spread by each mode's weight."""

from __future__ import annotations

import math

import numpy as np

from ..backends import fused_backward, scatter_add
from ..core.geometry import (
    PoolPlan,
    materialise_padding,
)
from ..core.modes import MODES
from .divisors import window_divisor
from .forward import chosen_cells
from .layout import batch_size, flat_targets, index_along, pooled_last, restore_layout, take_along
from .median import median_pool
from .missing import absent_cells, empty_windows, missing_cells
from .shortcuts import ieee_quiet
from .sums import drop_absent, power_transform, sum_finish, summed_power
from .taps import reduce_windows


@ieee_quiet
def backward_pass(xp, grad, x, plan: PoolPlan):
    if plan.nodata is None and (fused := fused_backward(xp, grad, x, plan)) is not None:
        return fused
    grad_dtype = x.dtype if x.dtype.kind == "f" else np.dtype(np.float64)
    work = np.dtype(np.float32) if grad_dtype.itemsize < 4 else grad_dtype
    grad = grad.astype(work, copy=False)
    source, padded_plan = materialise_padding(xp, x, plan)
    reducer = MODES[plan.mode].reducer
    missing = missing_cells(xp, source, padded_plan)  # they get no gradient, nor do windows of them alone
    if MODES[plan.mode].indices:  # max, min, majority, nearest: to the chosen cell
        _, indices = chosen_cells(xp, source, padded_plan, plan.pooled_shape, missing)
        if missing is not None:
            grad = xp.where(empty_windows(xp, missing, padded_plan), 0, grad)
        return _scatter(xp, grad, indices, plan).astype(grad_dtype)
    if reducer == "median":
        result = _median_backward(xp, grad, source, padded_plan, plan, missing)
        return result.astype(grad_dtype)
    result = _sum_backward(xp, grad, source, padded_plan, work, missing)
    return _fold_padding(xp, result, padded_plan, plan).astype(grad_dtype)


def _sum_backward(xp, grad, a, plan: PoolPlan, work, missing=None):
    """Transposed separable sum: each output's weight goes back to its window's real taps
    (not to absent ones: missing cells, NaNs under 'omit')."""
    nans = absent_cells(xp, a, plan, missing)
    nan_counts = None
    if nans is not None:
        a, nan_counts, _ = drop_absent(xp, a, plan, nans)
    a = a.astype(work, copy=False)
    power, divides = summed_power(plan), MODES[plan.mode].divisor
    if power is None:  # sum, avg: every tap gets the output's gradient (over the divisor)
        weight = grad / window_divisor(xp, plan, work, nan_counts) if divides else grad
    else:
        y = sum_finish(xp, reduce_windows(xp, a, plan, xp.add, 0, work, power_transform(xp, plan, work)),
                        plan, work, nan_counts)
        weight = _sum_weight(xp, grad, y, plan, work, nan_counts)
    spread = _spread(xp, weight, plan)
    if power == 2.0 and divides:  # l2: x_i / (divisor * y)
        spread = spread * a
    elif power is not None:  # lp: sign(x_i) |x_i|^(p-1) / y^(p-1)
        spread = spread * _lp_local_factor(xp, a, power, work)
    if nans is not None:
        spread = xp.where(nans, 0, spread)
    return spread


def _sum_weight(xp, grad, y, plan: PoolPlan, work, nan_counts):
    """Per output: l2 -> grad/(divisor*y), lp -> grad/y^(p-1); zero where y = 0."""
    positive = y > 0
    safe = xp.where(positive, y, 1)
    if MODES[plan.mode].divisor:
        weight = grad / (window_divisor(xp, plan, work, nan_counts) * safe)
    else:
        weight = grad / safe ** work.type((summed_power(plan) or 1.0) - 1)
    return xp.where(positive, weight, 0)


def _lp_local_factor(xp, a, p: float, work):
    """sign(x) |x|^(p-1), 0 where x = 0 (also for p < 1)."""
    magnitude = xp.abs(a)
    factor = xp.sign(a) * xp.where(magnitude > 0, magnitude, 1) ** work.type(p - 1)
    return xp.where(magnitude > 0, factor, 0)


def _spread(xp, weight, plan: PoolPlan):
    """The transpose of the separable sum: output weights back onto every tap they read."""
    for geometry in plan.axes:
        shape = list(weight.shape)
        shape[geometry.axis] = geometry.size
        out = xp.zeros(shape, dtype=weight.dtype)
        for tap in geometry.taps:
            values = take_along(xp, weight, geometry.axis, tap.out)
            if tap.is_slice:
                view = out[index_along(geometry.axis, tap.src)]
                xp.add(view, values, out=view)
            else:
                scatter_add(xp, out, index_along(geometry.axis, xp.asarray(tap.src)), values)
        weight = out
    return weight


def _fold_padding(xp, grad, padded_plan: PoolPlan, plan: PoolPlan):
    """Send the gradient of materialised edge/reflect padding back to the cells it copies."""
    for geometry, original in zip(padded_plan.axes, plan.axes):
        if geometry.source_map is None:
            continue
        shape = list(grad.shape)
        shape[geometry.axis] = original.size
        out = xp.zeros(shape, dtype=grad.dtype)
        scatter_add(xp, out, index_along(geometry.axis, xp.asarray(geometry.source_map)), grad)
        grad = out
    return grad


def _median_backward(xp, grad, a, padded_plan: PoolPlan, plan: PoolPlan, missing=None):
    """Route each gradient to the median cell (half to each of the two middle cells)."""
    _, (low, high, count) = median_pool(xp, a, padded_plan, plan.pooled_shape, routes=True, missing=missing)
    share = xp.where(count > 0, pooled_last(xp, grad, plan.pooled_axes) / 2, 0)
    return _scatter_last(xp, share, low, plan) + _scatter_last(xp, share, high, plan)


def _scatter(xp, grad, indices, plan: PoolPlan):
    pooled = plan.pooled_axes
    return _scatter_last(xp, pooled_last(xp, grad, pooled), pooled_last(xp, indices, pooled), plan)


def _scatter_last(xp, values, indices, plan: PoolPlan):
    """Sum `values` (pooled axes last) into the input at flat pooled `indices`."""
    pooled = plan.pooled_axes
    size = math.prod(plan.pooled_shape)
    batch = batch_size(plan.shape, pooled)
    targets = flat_targets(xp, indices, pooled, size, already_last=True)
    sums = xp.bincount(targets, weights=values.ravel().astype(np.float64), minlength=batch * size)
    return restore_layout(xp, sums.astype(values.dtype, copy=False), plan.shape, pooled)

