"""Pure array functions: pooling, adaptive pooling, the backward pass and unpooling.

One window path serves every mode. A validated plan (geometry.py) lists, per pooled
axis, the taps of the windows as strided slices; a reduction walks those taps, so the
Python loops run over window taps and axes only, never over outputs. Separable modes
(max, min, sum, avg, l2, lp) reduce one axis at a time, so no temporary is ever
k^2 times the output; median gathers its windows, which it cannot avoid.

`xp` is the array namespace of the input (NumPy or CuPy), taken on entry.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .backend import as_array, scatter_add
from .errors import PoolError
from .geometry import (
    EXTREME_MODES,
    PoolPlan,
    check_choice,
    check_dtype,
    check_input_dtype,
    check_mode,
    check_p,
    plan_adaptive,
    plan_pool,
    resolve_axes,
    with_materialised_padding,
)

SUM_MODES = ("sum", "avg", "l2", "lp")


# ================================================================== public API


def pool(
    x,
    window,
    stride=None,
    *,
    mode="max",
    padding=0,
    dilation=1,
    ceil_mode=False,
    count_include_pad=True,
    divisor_override=None,
    p=2.0,
    pad_mode="zeros",
    nan_policy="propagate",
    axes=None,
    dtype=None,
    return_indices=False,
):
    """Pool `x` with a sliding window (see SPEC.md for the exact meaning of each keyword).

    >>> import numpy as np
    >>> pool(np.arange(25).reshape(5, 5), 2)
    array([[ 6,  8],
           [16, 18]])
    >>> pool(np.array([[2, 3], [2, 3]], np.uint8), 2, mode="avg", dtype=np.uint8)
    array([[3]], dtype=uint8)
    >>> y, idx = pool(np.array([1, 3, 2, 3, 5, 5]), 2, 1, return_indices=True)
    >>> y.tolist(), idx.tolist()
    ([3, 3, 3, 5, 5], [1, 1, 3, 4, 4])
    """
    xp, x = _checked_input(x)
    plan, options = plan_pool(
        x.shape, window, stride, padding=padding, dilation=dilation, axes=axes, mode=mode,
        count_include_pad=count_include_pad, divisor_override=divisor_override, p=p,
        pad_mode=pad_mode, nan_policy=nan_policy, ceil_mode=ceil_mode,
        return_indices=return_indices, dtype=dtype,
    )
    return _forward(xp, x, plan, options["dtype"], options["return_indices"])


def adaptive_pool(x, output_size, *, mode="avg", axes=None, dtype=None, p=2.0,
                  nan_policy="propagate", return_indices=False):
    """Pool `x` to a fixed output size; bin i covers [floor(i*n/out), ceil((i+1)*n/out)).

    `output_size` is an int or one value per pooled axis (None keeps that axis);
    `output_size=1` is global pooling.

    >>> import numpy as np
    >>> adaptive_pool(np.arange(5.0), 3, mode="max")
    array([1., 3., 4.])
    >>> adaptive_pool(np.arange(16.0).reshape(4, 4), 1).tolist()
    [[7.5]]
    """
    xp, x = _checked_input(x)
    mode = check_mode(mode)
    if return_indices and mode not in EXTREME_MODES:
        raise PoolError(f"return_indices=True needs mode 'max' or 'min', not {mode!r}; drop it")
    plan = plan_adaptive(x.shape, output_size, axes, mode, check_p(p) if mode == "lp" else 2.0)
    plan = _replace(plan, nan_policy=check_choice("nan_policy", nan_policy, ("propagate", "omit")))
    return _forward(xp, x, plan, check_dtype(dtype), return_indices)


def pool_backward(grad_output, x, window, stride=None, **keywords):
    """dL/dx given dL/dy = `grad_output` for `y = pool(x, window, stride, **keywords)`.

    >>> import numpy as np
    >>> pool_backward(np.ones(5), np.array([1., 3, 2, 3, 5, 5]), 2, 1).tolist()
    [0.0, 2.0, 0.0, 1.0, 2.0, 0.0]
    >>> pool_backward(np.ones((1, 1)), np.ones((2, 2)), 2, mode="avg").tolist()
    [[0.25, 0.25], [0.25, 0.25]]
    """
    xp, x = _checked_input(x)
    keywords.pop("return_indices", None)
    keywords.pop("dtype", None)
    plan, _ = plan_pool(x.shape, window, stride, **keywords)
    grad = xp.asarray(grad_output)
    if grad.dtype.kind not in "biuf":
        raise PoolError(f"grad_output dtype {grad.dtype} is not a real number type; "
                        "pass a float gradient of the pooled output")
    if tuple(grad.shape) != plan.out_shape:
        raise PoolError(
            f"grad_output has shape {tuple(grad.shape)} but pooling gives {plan.out_shape}; "
            "pass the gradient of the pooled output"
        )
    return _backward(xp, grad, x, plan)


def unpool(y, indices, input_shape, *, axes=None):
    """Put each value of `y` back at its max/min index: the inverse routing of `return_indices`.

    `input_shape` is the full input shape, or only the pooled axes' sizes.

    >>> import numpy as np
    >>> y, idx = pool(np.array([[1, 4], [3, 2]]), 2, return_indices=True)
    >>> unpool(y, idx, (2, 2)).tolist()
    [[0, 4], [0, 0]]
    """
    xp, y = as_array(y)
    indices = xp.asarray(indices)
    if tuple(indices.shape) != tuple(y.shape):
        raise PoolError(f"indices shape {tuple(indices.shape)} differs from y's {tuple(y.shape)}; "
                        "pass the indices returned with y")
    if indices.dtype.kind not in "iu":
        raise PoolError(f"indices dtype {indices.dtype} is not an integer; pass pool(..., return_indices=True)[1]")
    shape = tuple(int(n) for n in input_shape)
    if axes is None and len(shape) < y.ndim:
        axes = tuple(range(y.ndim - len(shape), y.ndim))
    pooled = tuple(sorted(resolve_axes(y.ndim, None, axes)))
    full = list(y.shape)
    if len(shape) == y.ndim:
        full = list(shape)
    elif len(shape) == len(pooled):
        for axis, n in zip(pooled, shape):
            full[axis] = n
    else:
        raise PoolError(f"input_shape {shape} fits neither y's {y.ndim} axes nor the {len(pooled)} pooled axes; "
                        "pass x.shape")
    size = math.prod(full[a] for a in pooled)
    if indices.size and (int(indices.min()) < 0 or int(indices.max()) >= size):
        raise PoolError(f"indices run outside 0..{size - 1} for input_shape {tuple(full)}; "
                        "pass the shape of the pooled input")
    out = xp.zeros(_batch_size(y.shape, pooled) * size, dtype=y.dtype)
    out[_flat_targets(xp, indices, pooled, size)] = _pooled_last(xp, y, pooled).ravel()
    return _restore_layout(xp, out, full, pooled)


def output_shape(shape, window, stride=None, **keywords):
    """The shape `pool` returns for an input of `shape`, without computing anything.

    >>> output_shape((1, 3, 224, 224), 3, 2, padding=1)
    (1, 3, 112, 112)
    >>> output_shape((5,), 2, ceil_mode=True)
    (3,)
    """
    keywords.pop("return_indices", None)
    keywords.pop("dtype", None)
    return plan_pool(tuple(int(n) for n in shape), window, stride, **keywords)[0].out_shape


# ================================================================== forward


def _checked_input(x) -> tuple[Any, Any]:
    try:
        xp, x = as_array(x)
    except (TypeError, ValueError) as error:  # ragged nested lists
        raise PoolError(f"input {_short(x)} is not a rectangular array ({error}); "
                        "pass a NumPy or CuPy array") from error
    check_input_dtype(x.dtype)
    return xp, x


def _short(value, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _forward(xp, x, plan: PoolPlan, dtype, return_indices: bool):
    source, padded_plan = _materialise_padding(xp, x, plan)
    if plan.mode in EXTREME_MODES and return_indices:
        y, indices = _arg_extreme(xp, source, padded_plan, plan.pooled_shape)
        return _finalize(xp, y, natural_dtype(x.dtype, plan.mode), dtype), indices
    if plan.mode in EXTREME_MODES:
        y = _extreme(xp, source, padded_plan)
    elif plan.mode == "median":
        y = _median(xp, source, padded_plan, plan.pooled_shape)[0]
    else:
        y = _sum_family(xp, source, padded_plan)
    return _finalize(xp, y, natural_dtype(x.dtype, plan.mode), dtype)


def _materialise_padding(xp, x, plan: PoolPlan):
    """Edge/reflect padding is real data: pad once, then pool the padded array with zero pads."""
    if plan.pad_mode == "zeros" or all(g.pad_lo == g.pad_hi == 0 for g in plan.axes):
        return x, plan
    widths = [(0, 0)] * x.ndim
    for g in plan.axes:
        widths[g.axis] = (g.pad_lo, g.pad_hi)
    return xp.pad(x, widths, mode="edge" if plan.pad_mode == "edge" else "reflect"), \
        with_materialised_padding(plan)


def _along(axis: int, selection) -> tuple:
    return (slice(None),) * axis + (selection,)


def _take(xp, a, axis: int, selection):
    if isinstance(selection, slice):
        return a[_along(axis, selection)]
    return xp.take(a, xp.asarray(selection), axis=axis)


def _reduce_axis(xp, a, geometry, combine, fill, dtype=None, transform=None):
    """Combine the taps of every window along one axis into a new array (one pass per tap)."""
    shape = list(a.shape)
    shape[geometry.axis] = geometry.out
    out = xp.full(shape, fill, dtype=dtype or a.dtype)
    for tap in geometry.taps:
        values = _take(xp, a, geometry.axis, tap.src)
        if transform is not None:
            values = transform(values)
        key = _along(geometry.axis, tap.out if tap.is_slice else xp.asarray(tap.out))
        if tap.is_slice:
            view = out[key]
            combine(view, values, out=view)
        else:
            out[key] = combine(out[key], values)
    return out


def _reduce(xp, a, plan: PoolPlan, combine, fill, dtype=None, transform=None):
    """Reduce every pooled axis in turn, the last one first; `transform` maps the raw values."""
    for i, geometry in enumerate(reversed(plan.axes)):
        a = _reduce_axis(xp, a, geometry, combine, fill, dtype, transform if i == 0 else None)
    return a


# ------------------------------------------------------------------ max and min


def _extreme_fill(dtype: np.dtype, mode: str, omit: bool):
    """The neutral element: padding and missing taps never win."""
    if dtype.kind == "b":
        return mode == "min"
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return info.min if mode == "max" else info.max
    if omit:
        return np.nan
    return -np.inf if mode == "max" else np.inf


def _omit_nans(plan: PoolPlan, dtype: np.dtype) -> bool:
    return plan.nan_policy == "omit" and dtype.kind == "f"


def _extreme(xp, a, plan: PoolPlan):
    omit = _omit_nans(plan, a.dtype)
    if plan.mode == "max":
        combine = xp.fmax if omit else xp.maximum
    else:
        combine = xp.fmin if omit else xp.minimum
    return _reduce(xp, a, plan, combine, _extreme_fill(a.dtype, plan.mode, omit))


def _better(xp, mode: str, dtype: np.dtype, omit: bool):
    """Whether a new value replaces the best so far (PyTorch: a NaN always replaces)."""
    strictly = xp.greater if mode == "max" else xp.less
    if dtype.kind != "f":
        return strictly
    if omit:
        return lambda new, best: strictly(new, best) | (xp.isnan(best) & ~xp.isnan(new))
    return lambda new, best: strictly(new, best) | xp.isnan(new)


def _arg_extreme(xp, a, plan: PoolPlan, original_pooled_shape):
    """Values and flat indices (row-major over the pooled axes) of each window's max/min.

    Reducing the last pooled axis first, then the earlier ones, each keeping the first
    strict winner, gives the first occurrence in row-major window order.
    """
    omit = _omit_nans(plan, a.dtype)
    better = _better(xp, plan.mode, a.dtype, omit)
    fill = _extreme_fill(a.dtype, plan.mode, omit)
    flat_strides = _row_major_strides(original_pooled_shape)
    values, indices = a, None
    for geometry, flat_stride in reversed(list(zip(plan.axes, flat_strides))):
        values, indices = _arg_reduce_axis(xp, values, indices, geometry, flat_stride, better, fill)
    return values, indices


def _arg_reduce_axis(xp, values, indices, geometry, flat_stride, better, fill):
    shape = list(values.shape)
    shape[geometry.axis] = geometry.out
    best = xp.full(shape, fill, dtype=values.dtype)
    best_index = xp.full(shape, -1, dtype=np.int64)
    broadcast = [1] * values.ndim
    for tap in geometry.taps:
        candidate = _take(xp, values, geometry.axis, tap.src)
        positions = geometry.original_positions(tap.src_positions()) * flat_stride
        broadcast[geometry.axis] = len(positions)
        index = xp.asarray(positions, dtype=np.int64).reshape(broadcast)
        if indices is not None:
            index = _take(xp, indices, geometry.axis, tap.src) + index
        index = xp.broadcast_to(index, candidate.shape)
        key = _along(geometry.axis, tap.out if tap.is_slice else xp.asarray(tap.out))
        current, current_index = best[key], best_index[key]
        wins = better(candidate, current) | (current_index < 0)
        if tap.is_slice:
            xp.copyto(current, candidate, where=wins)
            xp.copyto(current_index, index, where=wins)
        else:
            best[key] = xp.where(wins, candidate, current)
            best_index[key] = xp.where(wins, index, current_index)
    return best, best_index


# ------------------------------------------------------------------ sum, avg, l2, lp


def _sum_family(xp, a, plan: PoolPlan):
    """sum / avg / l2 / lp: a separable sum of x, x^2 or |x|^p, then the divisor and root."""
    work = _work_dtype(a.dtype, plan.mode)
    empty = None
    if _omit_nans(plan, a.dtype):
        a, nan_counts, empty = _drop_nans(xp, a, plan)
    else:
        nan_counts = None
    accumulator = _accumulator_dtype(a.dtype, plan) if plan.mode in ("sum", "avg") else work
    total = _reduce(xp, a, plan, xp.add, 0, accumulator, _power_transform(xp, plan, work))
    y = _sum_finish(xp, total, plan, work, nan_counts)
    if empty is not None and empty.any():
        y = y.astype(work, copy=False)
        y[empty] = np.nan
    return y


def _power_transform(xp, plan: PoolPlan, work):
    if plan.mode == "l2":
        return lambda v: xp.square(v.astype(work, copy=False))
    if plan.mode == "lp":
        return lambda v: xp.abs(v.astype(work, copy=False)) ** work.type(plan.p)
    return None


def _sum_finish(xp, total, plan: PoolPlan, work, nan_counts):
    if plan.mode == "sum":
        return total
    if plan.mode == "lp":
        return total ** work.type(1.0 / plan.p)
    mean = total.astype(work, copy=False) / _divisor(xp, plan, work, nan_counts)
    return xp.sqrt(mean) if plan.mode == "l2" else mean


def _drop_nans(xp, a, plan: PoolPlan):
    """nan_policy='omit': NaNs become absent cells (zeros in the sum, not in the divisor)."""
    nans = xp.isnan(a)
    present = _reduce(xp, ~nans, plan, xp.add, 0, np.int64)
    real = _broadcast_counts(xp, plan, [g.count_real() for g in plan.axes], np.int64)
    return xp.where(nans, 0, a), real - present, present == 0


def _divisor(xp, plan: PoolPlan, work, nan_counts=None):
    if plan.divisor_override is not None:
        return work.type(plan.divisor_override)
    per_axis = [g.count_padded() if plan.count_include_pad else g.count_real() for g in plan.axes]
    divisor = _broadcast_counts(xp, plan, per_axis, work)
    if nan_counts is None:
        return divisor
    return xp.maximum(divisor - nan_counts, 1)  # 0 only in all-NaN windows, which become NaN


def _broadcast_counts(xp, plan: PoolPlan, per_axis, dtype):
    """The product of per-axis counts, shaped to broadcast against the output."""
    counts = None
    for geometry, count in zip(plan.axes, per_axis):
        shape = [1] * len(plan.shape)
        shape[geometry.axis] = geometry.out
        term = xp.asarray(count, dtype=dtype).reshape(shape)
        counts = term if counts is None else counts * term
    return counts


def _work_dtype(dtype: np.dtype, mode: str) -> np.dtype:
    """Floats stay (float16 computes in float32); integers and bools compute in float64."""
    if dtype.kind == "f":
        return np.dtype(np.float32) if dtype.itemsize < 4 else dtype
    if mode == "sum":
        return np.dtype(np.uint64) if dtype.kind == "u" else np.dtype(np.int64)
    return np.dtype(np.float64)


def _accumulator_dtype(dtype: np.dtype, plan: PoolPlan) -> np.dtype:
    """The narrowest integer type that holds any window's sum exactly (fast and exact)."""
    if dtype.kind == "f":
        return _work_dtype(dtype, plan.mode)
    taps = math.prod(max(len(g.taps), 1) for g in plan.axes)
    if dtype.kind == "b":
        dtype = np.dtype(np.uint8)
    info = np.iinfo(dtype)
    bound = max(abs(int(info.min)), int(info.max)) * taps
    for candidate in ((np.uint16, np.uint32, np.uint64) if dtype.kind == "u" else (np.int16, np.int32, np.int64)):
        if np.iinfo(candidate).max >= bound:
            return np.dtype(candidate)
    return np.dtype(np.uint64 if dtype.kind == "u" else np.int64)


# ------------------------------------------------------------------ median


def _median(xp, a, plan: PoolPlan, original_pooled_shape):
    """Median of the real cells of each window, and what the backward pass needs to route.

    Returns (median, order, count, sources): the stable sort order of each window's
    taps (absent ones last), how many are present, and their flat input indices.
    """
    values, valid, sources = _gather_windows(xp, a, plan, original_pooled_shape)
    work = np.dtype(np.float64)
    cells = values.astype(work)
    has_nan = (xp.isnan(cells) & valid).any(axis=-1) if a.dtype.kind == "f" else None
    cells = xp.where(valid, cells, np.nan)
    order = xp.argsort(cells, axis=-1, kind="stable")
    ordered = xp.take_along_axis(cells, order, axis=-1)
    count = (~xp.isnan(cells)).sum(axis=-1)
    low, high = _middle_positions(xp, count)
    low_value = xp.take_along_axis(ordered, low[..., None], axis=-1)[..., 0]
    high_value = xp.take_along_axis(ordered, high[..., None], axis=-1)[..., 0]
    median = xp.where(low_value == high_value, low_value, (low_value + high_value) / 2)
    median = xp.where(count == 0, np.nan, median)
    if has_nan is not None and plan.nan_policy == "propagate":
        median = xp.where(has_nan, np.nan, median)
    pooled = plan.pooled_axes
    median = _restore_pooled_axes(xp, median, pooled)
    return median, order, count, sources


def _middle_positions(xp, count):
    return xp.maximum((count - 1) // 2, 0), count // 2


def _gather_windows(xp, a, plan: PoolPlan, original_pooled_shape):
    """Every window's taps side by side: (batch..., out..., taps), pooled axes moved last.

    Also returns which taps are real (not padding) and each tap's flat input index.
    """
    pooled = plan.pooled_axes
    m = len(pooled)
    moved = xp.moveaxis(a, pooled, tuple(range(a.ndim - m, a.ndim)))
    index_arrays, valid, sources = [], None, None
    flat_strides = _row_major_strides(original_pooled_shape)
    for i, (geometry, flat_stride) in enumerate(zip(plan.axes, flat_strides)):
        positions, present = _tap_table(geometry)
        shape = [1] * (2 * m)
        shape[i], shape[m + i] = positions.shape
        index_arrays.append(xp.asarray(positions.reshape(shape)))
        term_valid = xp.asarray(present.reshape(shape))
        term_source = xp.asarray(geometry.original_positions(positions).reshape(shape) * flat_stride)
        valid = term_valid if valid is None else valid & term_valid
        sources = term_source if sources is None else sources + term_source
    out_shape = tuple(g.out for g in plan.axes)
    values = moved[(Ellipsis, *index_arrays)]
    taps = math.prod(values.shape[-m:])
    values = values.reshape(values.shape[: values.ndim - 2 * m] + out_shape + (taps,))
    valid = xp.broadcast_to(valid, out_shape + valid.shape[m:]).reshape(out_shape + (taps,))
    sources = xp.broadcast_to(sources, out_shape + sources.shape[m:]).reshape(out_shape + (taps,))
    return values, valid, sources


def _tap_table(geometry) -> tuple[np.ndarray, np.ndarray]:
    """(out, taps) tables of input positions (0 where absent) and of which taps are real."""
    taps = geometry.taps
    positions = np.zeros((geometry.out, len(taps)), dtype=np.int64)
    present = np.zeros((geometry.out, len(taps)), dtype=bool)
    for t, tap in enumerate(taps):
        positions[tap.out, t] = tap.src_positions()
        present[tap.out, t] = True
    return positions, present


# ------------------------------------------------------------------ output dtypes


def natural_dtype(dtype: np.dtype, mode: str) -> np.dtype:
    """The output dtype SPEC.md gives each mode when `dtype=` is not set."""
    if mode in ("max", "min", "median"):
        return dtype
    if mode == "sum":
        if dtype.kind == "f":
            return dtype
        return np.dtype(np.uint64) if dtype.kind == "u" else np.dtype(np.int64)
    return dtype if dtype.kind == "f" else np.dtype(np.float64)


def _finalize(xp, y, natural: np.dtype, requested: np.dtype | None):
    """Cast to the output dtype: integers round half up (floor(v + 0.5)) and clip; NaN -> 0."""
    target = requested if requested is not None else natural
    if target.kind == "b":
        if y.dtype.kind == "f":
            y = xp.floor(y + 0.5)
        return y != 0
    if target.kind in "iu":
        info = np.iinfo(target)
        if y.dtype.kind == "f":
            y = xp.floor(y + 0.5)
            y = xp.where(xp.isnan(y), 0, y)
            return xp.clip(y, float(info.min), float(info.max)).astype(target)
        if y.dtype != target and (y.dtype.kind == "b" or _needs_clip(y.dtype, target)):
            y = xp.clip(y, info.min, info.max) if y.dtype.kind != "b" else y
        return y.astype(target, copy=False)
    return y.astype(target, copy=False)


def _needs_clip(source: np.dtype, target: np.dtype) -> bool:
    return not np.can_cast(source, target, casting="safe")


# ================================================================== backward


def _backward(xp, grad, x, plan: PoolPlan):
    grad_dtype = x.dtype if x.dtype.kind == "f" else np.dtype(np.float64)
    work = np.dtype(np.float32) if grad_dtype.itemsize < 4 else grad_dtype
    grad = grad.astype(work, copy=False)
    source, padded_plan = _materialise_padding(xp, x, plan)
    if plan.mode in EXTREME_MODES:
        _, indices = _arg_extreme(xp, source, padded_plan, plan.pooled_shape)
        return _scatter(xp, grad, indices, plan).astype(grad_dtype)
    if plan.mode == "median":
        result = _median_backward(xp, grad, source, padded_plan, plan)
        return result.astype(grad_dtype)
    result = _sum_backward(xp, grad, source, padded_plan, work)
    return _fold_padding(xp, result, padded_plan, plan).astype(grad_dtype)


def _sum_backward(xp, grad, a, plan: PoolPlan, work):
    """Transposed separable sum: each output's weight goes back to its window's real taps."""
    omit = _omit_nans(plan, a.dtype)
    nans = xp.isnan(a) if omit else None
    nan_counts = None
    if omit:
        a, nan_counts, _ = _drop_nans(xp, a, plan)
    a = a.astype(work, copy=False)
    if plan.mode == "sum":
        weight = grad
    elif plan.mode == "avg":
        weight = grad / _divisor(xp, plan, work, nan_counts)
    else:
        y = _sum_finish(xp, _reduce(xp, a, plan, xp.add, 0, work, _power_transform(xp, plan, work)),
                        plan, work, nan_counts)
        weight = _sum_weight(xp, grad, y, plan, work, nan_counts)
    spread = _spread(xp, weight, plan)
    if plan.mode == "l2":
        spread = spread * a
    elif plan.mode == "lp":
        spread = spread * _lp_local_factor(xp, a, plan.p, work)
    if nans is not None:
        spread = xp.where(nans, 0, spread)
    return spread


def _sum_weight(xp, grad, y, plan: PoolPlan, work, nan_counts):
    """Per output: l2 -> grad/(divisor*y), lp -> grad/y^(p-1); zero where y = 0."""
    positive = y > 0
    safe = xp.where(positive, y, 1)
    if plan.mode == "l2":
        weight = grad / (_divisor(xp, plan, work, nan_counts) * safe)
    else:
        weight = grad / safe ** work.type(plan.p - 1)
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
            values = _take(xp, weight, geometry.axis, tap.out)
            if tap.is_slice:
                view = out[_along(geometry.axis, tap.src)]
                xp.add(view, values, out=view)
            else:
                scatter_add(xp, out, _along(geometry.axis, xp.asarray(tap.src)), values)
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
        scatter_add(xp, out, _along(geometry.axis, xp.asarray(geometry.source_map)), grad)
        grad = out
    return grad


def _median_backward(xp, grad, a, padded_plan: PoolPlan, plan: PoolPlan):
    """Route each gradient to the median cell (half to each of the two middle cells)."""
    _, order, count, sources = _median(xp, a, padded_plan, plan.pooled_shape)
    pooled = plan.pooled_axes
    grad_last = _pooled_last(xp, grad, pooled)
    low, high = _middle_positions(xp, count)
    sources = xp.broadcast_to(sources, order.shape)
    result = None
    for position in (low, high):
        tap = xp.take_along_axis(order, position[..., None], axis=-1)
        index = xp.take_along_axis(sources, tap, axis=-1)[..., 0]
        share = xp.where(count > 0, grad_last / 2, 0)
        part = _scatter_last(xp, share, index, plan)
        result = part if result is None else result + part
    return result


def _scatter(xp, grad, indices, plan: PoolPlan):
    pooled = plan.pooled_axes
    return _scatter_last(xp, _pooled_last(xp, grad, pooled), _pooled_last(xp, indices, pooled), plan)


def _scatter_last(xp, values, indices, plan: PoolPlan):
    """Sum `values` (pooled axes last) into the input at flat pooled `indices`."""
    pooled = plan.pooled_axes
    size = math.prod(plan.pooled_shape)
    batch = _batch_size(plan.shape, pooled)
    targets = _flat_targets(xp, indices, pooled, size, already_last=True)
    sums = xp.bincount(targets, weights=values.ravel().astype(np.float64), minlength=batch * size)
    return _restore_layout(xp, sums.astype(values.dtype, copy=False), plan.shape, pooled)


# ================================================================== layout helpers


def _row_major_strides(shape) -> list[int]:
    strides, step = [], 1
    for n in reversed(shape):
        strides.append(step)
        step *= n
    return strides[::-1]


def _batch_size(shape, pooled) -> int:
    return math.prod(n for a, n in enumerate(shape) if a not in pooled)


def _pooled_last(xp, a, pooled):
    m = len(pooled)
    return xp.moveaxis(a, pooled, tuple(range(a.ndim - m, a.ndim)))


def _restore_pooled_axes(xp, a, pooled):
    """Undo _pooled_last on an array whose pooled axes sit last."""
    m = len(pooled)
    return xp.moveaxis(a, tuple(range(a.ndim - m, a.ndim)), pooled)


def _flat_targets(xp, indices, pooled, size: int, already_last: bool = False):
    """Global flat positions (batch * size + index) for pooled-last arrays of indices."""
    last = indices if already_last else _pooled_last(xp, indices, pooled)
    m = len(pooled)
    batch_shape = last.shape[: last.ndim - m]
    batch = xp.arange(math.prod(batch_shape), dtype=np.int64).reshape(batch_shape + (1,) * m)
    return (batch * size + last).ravel()


def _restore_layout(xp, flat, shape, pooled):
    """A flat (batch, pooled...) buffer back to `shape` with the pooled axes in place."""
    batch_shape = [n for a, n in enumerate(shape) if a not in pooled]
    pooled_shape = [shape[a] for a in pooled]
    return _restore_pooled_axes(xp, flat.reshape(batch_shape + pooled_shape), pooled)


def _replace(plan: PoolPlan, **changes) -> PoolPlan:
    from dataclasses import replace

    return replace(plan, **changes)
