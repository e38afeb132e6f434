"""Pure array functions: pooling, adaptive pooling, the backward pass and unpooling.

One window path serves every mode. A validated plan (geometry.py) lists, per pooled
axis, the taps of the windows as strided slices; a reduction walks those taps, so the
Python loops run over window taps and axes only, never over outputs. Separable modes
(max, min, sum, avg, l2, lp) reduce one axis at a time, so no temporary is ever
k^2 times the output; median gathers its windows, which it cannot avoid.

`xp` is the array namespace of the input (NumPy or CuPy), taken on entry.
"""

from __future__ import annotations

import functools
import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

import numpy as np

from .backend import as_array, fused_backward, fused_forward, scatter_add
from .errors import PoolError
from .geometry import (
    EXTREME_MODES,
    AxisGeometry,
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
    plan = replace(plan, nan_policy=check_choice("nan_policy", nan_policy, ("propagate", "omit")))
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


def ieee_quiet(function):
    """Run without NumPy's floating-point warnings: NaN and inf results are the answer
    (as in PyTorch), not a problem to report. Per call, so it holds on worker threads too."""

    @functools.wraps(function)
    def quiet(*args, **kwargs):
        with np.errstate(all="ignore"):
            return function(*args, **kwargs)

    return quiet


@ieee_quiet
def _forward(xp, x, plan: PoolPlan, dtype, return_indices: bool):
    if (fused := fused_forward(xp, x, plan, dtype, return_indices)) is not None:
        return fused  # a CuPy array and a fused GPU kernel for this call
    source, padded_plan = _materialise_padding(xp, x, plan)
    natural = natural_dtype(x.dtype, plan.mode)
    if plan.mode in EXTREME_MODES and return_indices:
        y, indices = _arg_extreme(xp, source, padded_plan, plan.pooled_shape)
        return _finalize(xp, y, natural, dtype), indices
    if _is_opencv_area_mean(xp, x, plan, dtype):
        return _opencv_area_mean(x, plan)
    return run_chunked(xp, source, padded_plan, lambda a, p: _values(xp, a, p, natural, dtype),
                       dtype if dtype is not None else natural)


OPENCV_AREA_CHANNELS = (1, 3, 4)  # INTER_AREA's 2x2 rounding is (a+b+c+d+2)>>2 here; not for 2 channels


def _is_opencv_area_mean(xp, x, plan: PoolPlan, dtype) -> bool:
    """uint8 images averaged 2x2 to uint8: OpenCV's INTER_AREA is bit-identical and faster.

    It computes floor(sum/4 + 0.5) exactly for 1, 3 and 4 channels (tested against the
    brute force), which is SPEC's rounding; anything else takes the general path.
    """
    channels = x.shape[2] if x.ndim == 3 else 1
    return (xp is np and x.dtype == np.uint8 and dtype == np.uint8 and plan.mode == "avg"
            and plan.divisor_override is None and x.ndim in (2, 3) and channels in OPENCV_AREA_CHANNELS
            and plan.pooled_axes == (0, 1) and min(x.shape[:2]) >= 2
            and all((g.window, g.stride, g.dilation, g.pad_lo, g.pad_hi) == (2, 2, 1, 0, 0) for g in plan.axes))


def _opencv_area_mean(x, plan: PoolPlan):
    """INTER_AREA by bands of output rows on poolcli's threads (each row reads two input rows)."""
    from .opencv import cv2 as load_cv2
    cv2 = load_cv2()

    out_h, out_w = (g.out for g in plan.axes)
    out = np.empty(plan.out_shape, dtype=np.uint8)
    rows = out.reshape(out_h, out_w, -1)

    def band(bounds):
        top, bottom = bounds
        part = cv2.resize(x[2 * top : 2 * bottom, : 2 * out_w], (out_w, bottom - top), interpolation=cv2.INTER_AREA)
        rows[top:bottom] = part.reshape(bottom - top, out_w, -1)

    bands = _split(out_h, worker_threads() if x.nbytes >= MIN_PARALLEL_BYTES else 1)
    if len(bands) == 1:
        band(bands[0])
    else:
        for done in _executor(worker_threads()).map(band, bands):
            del done
    return out


@ieee_quiet
def _values(xp, a, plan: PoolPlan, natural: np.dtype, dtype: np.dtype | None):
    """The pooled values of one mode, in the output dtype."""
    if plan.mode in EXTREME_MODES:
        y = _extreme(xp, a, plan)
    elif plan.mode == "median":
        y = _median(xp, a, plan, plan.pooled_shape)[0]
    else:
        y = _sum_family(xp, a, plan, dtype)
    return _finalize(xp, y, natural, dtype)


def _materialise_padding(xp, x, plan: PoolPlan):
    """Edge/reflect padding is real data: pad once, then pool the padded array with zero pads."""
    if plan.pad_mode == "zeros" or all(g.pad_lo == g.pad_hi == 0 for g in plan.axes):
        return x, plan
    widths = [(0, 0)] * x.ndim
    for g in plan.axes:
        widths[g.axis] = (g.pad_lo, g.pad_hi)
    return xp.pad(x, widths, mode=plan.pad_mode), \
        with_materialised_padding(plan)


def _along(axis: int, selection) -> tuple:
    return (slice(None),) * axis + (selection,)


def _take(xp, a, axis: int, selection):
    if isinstance(selection, slice):
        return a[_along(axis, selection)]
    return xp.take(a, xp.asarray(selection), axis=axis)


def _reduce_axis(xp, a, geometry, combine, fill, dtype=None, transform=None):
    """Combine the taps of every window along one axis into a new C-ordered array.

    The first two taps that cover every window are combined straight into the result
    (one pass instead of a fill and two); the others update it in place.
    """
    dtype = dtype or a.dtype
    if _planar(xp, a, geometry.axis):
        return _reduce_axis_planar(xp, a, geometry, combine, fill, dtype, transform)
    shape = list(a.shape)
    shape[geometry.axis] = geometry.out

    def read(tap):
        values = _take(xp, a, geometry.axis, tap.src)
        return values if transform is None else transform(values)

    taps = list(geometry.taps)
    covering = [tap for tap in taps if tap.is_slice and tap.out == slice(0, geometry.out)][:2]
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
        key = _along(geometry.axis, tap.out if tap.is_slice else xp.asarray(tap.out))
        if tap.is_slice:
            view = out[key]
            combine(view, values, out=view)
        else:
            out[key] = combine(out[key], values)
    return out


PLANAR_MAX_TRAILING = 16  # channels-last blocks up to this size are reduced one channel at a time


def _planar(xp, a, axis: int) -> bool:
    """A small trailing block (HWC's C) makes strided loops short: go plane by plane instead."""
    trailing = math.prod(a.shape[axis + 1:])
    return (xp is np and 1 < trailing <= PLANAR_MAX_TRAILING and a.flags.c_contiguous and a.shape[axis] > 1
            and a.size > 0)


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
    bits: every dtype goes through as the OpenCV type of its size and comes back as itself."""
    from .opencv import cv2 as load_cv2
    cv2 = load_cv2()

    dtype = planes[0].dtype
    carrier = _SAME_BITS.get(dtype.itemsize)
    if carrier is None or len(planes) > 512:
        return np.stack(planes, axis=-1)
    merged = cv2.merge([plane.view(carrier) for plane in planes])
    return merged.reshape(planes[0].shape + (len(planes),)).view(dtype)


def _reduce(xp, a, plan: PoolPlan, combine, fill, dtype=None, transform=None):
    """Reduce every pooled axis in turn, outermost first, so the big first pass reads long
    contiguous runs; `transform` maps the raw values (applied in the first pass only)."""
    for i, geometry in enumerate(plan.axes):
        a = _reduce_axis(xp, a, geometry, combine, fill, dtype, transform if i == 0 else None)
    return a


# ------------------------------------------------------------------ parallel chunks

CHUNK_BYTES = 8 << 20  # input bytes per slab: measured best of 1-16 MB on float32 NCHW
MIN_PARALLEL_BYTES = 2 << 20  # smaller inputs run in the calling thread
_executor_state: dict = {}


def worker_threads() -> int:
    """Threads for one pooling call: POOLCLI_THREADS, else the cores this process may use."""
    configured = os.environ.get("POOLCLI_THREADS", "")
    if configured.isdigit() and int(configured) > 0:
        return int(configured)
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _executor(threads: int) -> ThreadPoolExecutor:
    """One pool of threads per process (a forked child makes its own)."""
    key = (os.getpid(), threads)
    if _executor_state.get("key") != key:
        _executor_state.update(key=key, pool=ThreadPoolExecutor(threads, thread_name_prefix="poolcli"))
    return _executor_state["pool"]


def run_chunked(xp, a, plan: PoolPlan, compute, dtype: np.dtype):
    """compute(a, plan), split into slabs of output rows that run on several threads.

    Each slab reads only the input rows its windows need; the results are written
    into one output, so no slab's intermediate arrays outlive it.
    """
    pieces = _chunks(xp, a, plan)
    if len(pieces) == 1:
        return compute(a, plan)
    out = xp.empty(plan.out_shape, dtype=dtype)

    def run(piece):
        source_key, out_key, sub_plan = piece
        out[out_key] = compute(a[source_key], sub_plan)

    for done in _executor(worker_threads()).map(run, pieces):
        del done
    return out


def _chunks(xp, a, plan: PoolPlan) -> list:
    """(input slice, output slice, plan) per slab: along the outermost batch axis when there is
    one (contiguous slabs), else along the outermost pooled axis's outputs."""
    first = plan.axes[0]
    threads = worker_threads()
    if xp is not np or threads < 2 or a.nbytes < MIN_PARALLEL_BYTES:
        return [((Ellipsis,), (Ellipsis,), plan)]
    wanted = max(threads, -(-a.nbytes // CHUNK_BYTES))
    batch_axis = next((axis for axis in range(first.axis) if a.shape[axis] >= 2), None)
    if batch_axis is not None:
        return [_batch_slab(plan, batch_axis, lo, hi) for lo, hi in _split(a.shape[batch_axis], wanted)]
    if not isinstance(first, AxisGeometry):
        return [((Ellipsis,), (Ellipsis,), plan)]
    return [_slab(a, plan, first, lo, hi) for lo, hi in _split(first.out, wanted)]


def _split(length: int, count: int) -> list[tuple[int, int]]:
    """`length` items in at most `count` nearly equal, non-empty ranges."""
    count = min(count, length)
    bounds = [length * i // count for i in range(count + 1)]
    return [(lo, hi) for lo, hi in zip(bounds[:-1], bounds[1:]) if hi > lo]


def _batch_slab(plan: PoolPlan, axis: int, lo: int, hi: int):
    """Items [lo, hi) of a batch axis: the same windows on fewer items."""
    shape = list(plan.shape)
    shape[axis] = hi - lo
    key = _along(axis, slice(lo, hi))
    return key, key, replace(plan, shape=tuple(shape))


def _slab(a, plan: PoolPlan, g: AxisGeometry, first_out: int, stop_out: int):
    """The input rows and the sub-plan for outputs [first_out, stop_out) of axis g."""
    start = first_out * g.stride - g.pad_lo
    stop = (stop_out - 1) * g.stride - g.pad_lo + g.span
    read_start, read_stop = max(start, 0), min(stop, g.size)
    sub_axis = replace(g, size=read_stop - read_start, pad_lo=read_start - start,
                       pad_hi=g.size + g.pad_hi - read_stop, out=stop_out - first_out, source_map=None)
    shape = list(plan.shape)
    shape[g.axis] = sub_axis.size
    sub_plan = replace(plan, shape=tuple(shape), axes=(sub_axis,) + plan.axes[1:])
    return _along(g.axis, slice(read_start, read_stop)), _along(g.axis, slice(first_out, stop_out)), sub_plan


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


def _sum_family(xp, a, plan: PoolPlan, dtype: np.dtype | None = None):
    """sum / avg / l2 / lp: a separable sum of x, x^2 or |x|^p, then the divisor and root."""
    work = _work_dtype(a.dtype, plan.mode)
    empty = None
    if _omit_nans(plan, a.dtype):
        a, nan_counts, empty = _drop_nans(xp, a, plan)
    else:
        nan_counts = None
    if plan.mode in ("sum", "avg"):
        accumulator = _accumulator_dtype(a.dtype, plan)
    else:
        accumulator = _power_accumulator(a.dtype, plan, work)
    total = _reduce(xp, a, plan, xp.add, 0, accumulator, _power_transform(xp, plan, accumulator))
    if plan.mode == "avg" and total.dtype.kind in "iu" and dtype is not None and dtype.kind in "iu":
        return _rounded_integer_mean(xp, total, plan, _sum_bound(a.dtype, plan))
    y = _sum_finish(xp, total, plan, work, nan_counts)
    if empty is not None and empty.any():
        y = y.astype(work, copy=False)
        y[empty] = np.nan
    return y


def _rounded_integer_mean(xp, total, plan: PoolPlan, bound: int):
    """floor(total / divisor + 0.5) in exact integer arithmetic: (2 total + d) // (2 d).

    `bound` is the largest |total|; the arithmetic runs in the total's own type when
    2 * bound + d fits it, else in the narrowest signed type that holds it.
    """
    if plan.divisor_override is not None:
        per_axis, largest = None, plan.divisor_override
    else:
        per_axis = [g.count_padded() if plan.count_include_pad else g.count_real() for g in plan.axes]
        largest = math.prod(int(count.max()) for count in per_axis)
    need = 2 * bound + largest
    if total.dtype.kind == "u" and np.iinfo(total.dtype).max >= need:
        room = total.dtype
    else:
        room = next((np.dtype(t) for t in (np.int16, np.int32, np.int64) if np.iinfo(t).max >= need),
                    np.dtype(np.int64))
    divisor = room.type(largest) if per_axis is None else _broadcast_counts(xp, plan, per_axis, room)
    total = total.astype(room, copy=False)
    doubled = xp.add(total, total, out=total)
    doubled += divisor
    return xp.floor_divide(doubled, 2 * divisor, out=doubled)


def _power_transform(xp, plan: PoolPlan, work):
    """x^2 for l2 (and lp with p = 2), |x|^p for lp, computed in `work`."""
    if plan.mode == "l2" or (plan.mode == "lp" and plan.p == 2.0):
        return lambda v: xp.square(v, dtype=work)
    if plan.mode == "lp":
        if work.kind in "iu":  # |x|^p of integers with an integral p, exactly
            return lambda v: xp.power(xp.abs(v.astype(np.int64)) if v.dtype.kind == "i" else v, int(plan.p),
                                      dtype=work)
        return lambda v: xp.power(xp.abs(v.astype(work, copy=False)), work.type(plan.p))
    return None


def _power_accumulator(dtype: np.dtype, plan: PoolPlan, work: np.dtype) -> np.dtype:
    """Integer sums of x^2 (l2) or |x|^p (lp, integral p) when they stay exact in a float64."""
    if dtype.kind not in "biu" or (plan.mode == "lp" and not float(plan.p).is_integer()):
        return work
    power = 2 if plan.mode == "l2" else int(plan.p)
    bound = _sum_bound(dtype, plan) ** power  # >= taps * max|x|^p
    if bound >= 2**53:
        return work
    if dtype.kind == "i":
        return np.dtype(np.int64)
    return np.dtype(np.uint32 if bound <= np.iinfo(np.uint32).max else np.uint64)


def _sum_finish(xp, total, plan: PoolPlan, work, nan_counts):
    """Divide and take roots in place where the total is already a float of the work dtype."""
    if plan.mode == "sum":
        return total
    total = total.astype(work, copy=False)
    if plan.mode == "lp":
        if plan.p == 2.0:
            return xp.sqrt(total, out=total)
        return xp.power(total, work.type(1.0 / plan.p), out=total)
    mean = xp.divide(total, _divisor(xp, plan, work, nan_counts), out=total)
    return xp.sqrt(mean, out=mean) if plan.mode == "l2" else mean


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


def _work_dtype(dtype: np.dtype, mode: str) -> np.dtype:
    """Floats stay (float16 computes in float32); integers and bools compute in float64."""
    if dtype.kind == "f":
        return np.dtype(np.float32) if dtype.itemsize < 4 else dtype
    if mode == "sum":
        return np.dtype(np.uint64) if dtype.kind == "u" else np.dtype(np.int64)
    return np.dtype(np.float64)


def _sum_bound(dtype: np.dtype, plan: PoolPlan) -> int:
    """The largest |sum| of one window of an integer or bool dtype."""
    taps = math.prod(max(len(g.taps), 1) for g in plan.axes)
    if dtype.kind == "b":
        return taps
    info = np.iinfo(dtype)
    return max(abs(int(info.min)), int(info.max)) * taps


def _accumulator_dtype(dtype: np.dtype, plan: PoolPlan) -> np.dtype:
    """The narrowest integer type that holds any window's sum exactly (fast and exact)."""
    if dtype.kind == "f":
        return _work_dtype(dtype, plan.mode)
    bound = _sum_bound(dtype, plan)
    unsigned = dtype.kind in "ub"
    for candidate in ((np.uint16, np.uint32, np.uint64) if unsigned else (np.int16, np.int32, np.int64)):
        if np.iinfo(candidate).max >= bound:
            return np.dtype(candidate)
    return np.dtype(np.uint64 if unsigned else np.int64)


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
            y = xp.add(y, 0.5)
            xp.floor(y, out=y)
            xp.nan_to_num(y, copy=False, nan=0.0)
            return xp.clip(y, float(info.min), float(info.max), out=y).astype(target)
        if y.dtype != target and y.dtype.kind != "b" and _needs_clip(y.dtype, target) and y.size \
                and (int(y.min()) < info.min or int(y.max()) > info.max):
            y = xp.clip(y, info.min, info.max)
        return y.astype(target, copy=False)
    return y.astype(target, copy=False)


def _needs_clip(source: np.dtype, target: np.dtype) -> bool:
    return not np.can_cast(source, target, casting="safe")


# ================================================================== backward


@ieee_quiet
def _backward(xp, grad, x, plan: PoolPlan):
    if (fused := fused_backward(xp, grad, x, plan)) is not None:
        return fused
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
