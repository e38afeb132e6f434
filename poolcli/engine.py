"""Pure array functions: pooling, adaptive pooling, the backward pass and unpooling.

One window path serves every mode. A validated plan (geometry.py) lists, per pooled
axis, the taps of the windows as strided slices; a reduction walks those taps, so the
Python loops run over window taps and axes only, never over outputs (but for an axis of
few, huge windows, more than WINDOW_WISE_RATIO taps a window: one reduction per window
there is the shorter loop). Separable modes
(max, min, sum, avg, l2, lp) reduce one axis at a time, so no temporary is ever
k^2 times the output; median gathers its windows, which it cannot avoid, block by block
so that the gathered taps stay under MEDIAN_BLOCK_BYTES.

Integer sums are exact: they accumulate in the narrowest integer type that holds any
window's sum, and where not even 64 bits do (64-bit inputs with large values), in two
32-bit limbs that are recombined exactly (clipped, or rounded once to a float).

`xp` is the array namespace of the input (NumPy or CuPy), taken on entry.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import itertools
import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

import numpy as np

from . import opencv
from .backend import as_array, fused_backward, fused_forward, scatter_add
from .dtypes import finalize, natural_dtype
from .errors import PoolError
from .geometry import (
    EXTREME_MODES,
    AxisGeometry,
    PoolPlan,
    check_input_dtype,
    plan_adaptive,
    plan_pool,
    resolve_axes,
    with_materialised_padding,
)
from .modes import MODES

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

    Integer results are exact whatever the width: a sum of int64/uint64 values that does
    not fit 64 bits is clipped to the output dtype's range (as every integer output is);
    avg is the exact sum rounded once to a float64, then divided by the divisor, or with
    an integer `dtype=` exactly floor(sum/divisor + 1/2), clipped; the median of integers
    is computed in integers (the two middle values' mean rounded half up, or rounded once
    to a float for a float `dtype=`). lp with an integral p <= 64 sums |x|^p of integers
    exactly where a float64 holds it; any other p uses the float formula (p=1e308 gives
    inf where some |x| > 1). median gathers its windows in blocks of at most
    MEDIAN_BLOCK_BYTES of taps, so its memory does not grow with the window's overlap.
    Inputs in non-native byte order ('>f8') pool like native ones and give native results.
    Integer parameters must fit an int64 (as must sizes plus padding and the window span),
    else a PoolError.

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
    plan = plan_pool(
        x.shape, window, stride, padding=padding, dilation=dilation, axes=axes, mode=mode,
        count_include_pad=count_include_pad, divisor_override=divisor_override, p=p,
        pad_mode=pad_mode, nan_policy=nan_policy, ceil_mode=ceil_mode,
        return_indices=return_indices, dtype=dtype,
    )
    return _forward(xp, x, plan, plan.dtype, plan.return_indices)


def adaptive_pool(x, output_size, *, mode="avg", axes=None, dtype=None, p=2.0,
                  nan_policy="propagate", return_indices=False):
    """Pool `x` to a fixed output size; bin i covers [floor(i*n/out), ceil((i+1)*n/out)).

    `output_size` is an int or one value per pooled axis (None keeps that axis);
    `output_size=1` is global pooling. Dtypes, exactness and byte order as in `pool`.

    >>> import numpy as np
    >>> adaptive_pool(np.arange(5.0), 3, mode="max")
    array([1., 3., 4.])
    >>> adaptive_pool(np.arange(16.0).reshape(4, 4), 1).tolist()
    [[7.5]]
    """
    xp, x = _checked_input(x)
    plan = plan_adaptive(x.shape, output_size, axes, mode=mode, p=p, nan_policy=nan_policy, dtype=dtype,
                         return_indices=return_indices)
    return _forward(xp, x, plan, plan.dtype, plan.return_indices)


def pool_backward(grad_output, x, window, stride=None, **keywords):
    """dL/dx given dL/dy = `grad_output` for `y = pool(x, window, stride, **keywords)`.

    `x` and `grad_output` may be in either byte order; median routes in bounded blocks.

    >>> import numpy as np
    >>> pool_backward(np.ones(5), np.array([1., 3, 2, 3, 5, 5]), 2, 1).tolist()
    [0.0, 2.0, 0.0, 1.0, 2.0, 0.0]
    >>> pool_backward(np.ones((1, 1)), np.ones((2, 2)), 2, mode="avg").tolist()
    [[0.25, 0.25], [0.25, 0.25]]
    """
    xp, x = _checked_input(x)
    keywords.pop("return_indices", None)
    keywords.pop("dtype", None)
    plan = plan_pool(x.shape, window, stride, **keywords)
    grad = _native(xp.asarray(grad_output))
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
    y, indices = _native(y), _native(xp.asarray(indices))
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
    return plan_pool(tuple(int(n) for n in shape), window, stride, **keywords).out_shape


# ================================================================== forward


def _checked_input(x) -> tuple[Any, Any]:
    try:
        xp, x = as_array(x)
    except (TypeError, ValueError) as error:  # ragged nested lists
        raise PoolError(f"input {_short(x)} is not a rectangular array ({error}); "
                        "pass a NumPy or CuPy array") from error
    check_input_dtype(x.dtype)
    return xp, _native(x)


def _native(a):
    """`a` in native byte order: a '>f8' array on a little-endian machine (from a file, say)
    is converted once here, since NumPy's ufuncs refuse explicit non-native dtypes."""
    return a if a.dtype.isnative else a.astype(a.dtype.newbyteorder("="))


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
@dataclasses.dataclass
class FastPaths:
    """The engine's shortcuts, each switchable. Every one gives the general path's result
    (bit for bit, or for float sums up to the order of additions), and tests/test_fast_paths.py
    runs the same random cases with each on and off to prove it."""

    opencv_area: bool = True  # uint8 2x2 means through OpenCV's INTER_AREA
    opencv_merge: bool = True  # channel planes interleaved by OpenCV's merge (a bit copy)
    planar: bool = True  # channels-last blocks reduced one channel plane at a time
    slabs: bool = True  # slabs of output rows on several threads
    narrow_integers: bool = True  # the narrowest exact integer accumulator, not 64 bits
    exact_powers: bool = True  # x^2 and |x|^p of integers summed as integers
    window_wise: bool = True  # few huge windows reduced one window at a time


FAST_PATHS = FastPaths()


@contextlib.contextmanager
def fast_paths(**switches: bool):
    """Switch shortcuts on or off for the block (tests): ``with fast_paths(planar=False): ...``."""
    saved = replace(FAST_PATHS)
    for name, value in switches.items():
        if not hasattr(FAST_PATHS, name):
            raise PoolError(f"fast path {name!r} is unknown; use one of {', '.join(vars(FAST_PATHS))}")
        setattr(FAST_PATHS, name, bool(value))
    try:
        yield FAST_PATHS
    finally:
        for name, value in vars(saved).items():
            setattr(FAST_PATHS, name, value)


def _forward(xp, x, plan: PoolPlan, dtype, return_indices: bool):
    scaled = _lp_overflows(xp, x, plan)  # the fused kernels would overflow
    sums_fit = functools.partial(integer_sums_fit, requested=dtype)
    if not scaled and (fused := fused_forward(xp, x, plan, dtype, return_indices, sums_fit)) is not None:
        return fused  # a CuPy array and a fused GPU kernel for this call
    source, padded_plan = _materialise_padding(xp, x, plan)
    natural = natural_dtype(x.dtype, plan.mode)
    if plan.mode in EXTREME_MODES and return_indices:
        y, indices = _arg_extreme(xp, source, padded_plan, plan.pooled_shape)
        return finalize(xp, y, natural, dtype), indices
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
    return (FAST_PATHS.opencv_area and xp is np and x.dtype == np.uint8 and dtype == np.uint8 and plan.mode == "avg"
            and opencv.pays(x.shape[0] * x.shape[1] if x.ndim >= 2 else 0)
            and plan.divisor_override is None and x.ndim in (2, 3) and channels in OPENCV_AREA_CHANNELS
            and plan.pooled_axes == (0, 1) and min(x.shape[:2]) >= 2
            and all(isinstance(g, AxisGeometry) and (g.window, g.stride, g.dilation, g.pad_lo, g.pad_hi)
                    == (2, 2, 1, 0, 0) for g in plan.axes)
            and all(2 * g.out <= g.size for g in plan.axes))  # ceil mode's overhanging last window: not 2x2


def _opencv_area_mean(x, plan: PoolPlan):
    """INTER_AREA by bands of output rows on poolcli's threads (each row reads two input rows)."""
    cv2 = opencv.cv2()
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
    """The pooled values of one mode (its reducer in the table of modes), in the output dtype."""
    reducer = MODES[plan.mode].reducer
    if reducer == "extreme":
        y = _extreme(xp, a, plan)
    elif reducer == "median":
        y = _median(xp, a, plan, plan.pooled_shape, dtype)[0]
    elif _lp_overflows(xp, a, plan):
        y = _scaled_lp(xp, a, plan)
    else:
        y = _sum_family(xp, a, plan, dtype)
    return finalize(xp, y, natural, dtype)


def _lp_overflows(xp, a, plan: PoolPlan) -> bool:
    """Whether some |x|^p of an lp-like mode (power p) leaves the work dtype's finite normal
    range (a huge or tiny p)."""
    if MODES[plan.mode].power != "p" or plan.p <= 2 or a.size == 0:
        return False
    work = _work_dtype(a.dtype, plan.mode)
    magnitudes = xp.abs(a.astype(work, copy=False))
    finite = magnitudes[xp.isfinite(magnitudes) & (magnitudes > 0)]
    if finite.size == 0:
        return False
    info = np.finfo(work)
    taps = math.log2(max(_window_taps(plan), 1))
    largest, smallest = math.log2(float(finite.max())), math.log2(float(finite.min()))
    return plan.p * largest + taps >= math.log2(float(info.max)) or plan.p * smallest <= math.log2(float(info.tiny))


def _scaled_lp(xp, a, plan: PoolPlan):
    """lp as m * (sum (|x|/m)^p)^(1/p), m each window's largest |x|: the same p-norm without
    overflow or underflow, for a p so large that |x|^p leaves the float range (for p -> inf
    it is the largest |x|). Windows are gathered a block at a time, as for the median."""
    work = _work_dtype(a.dtype, plan.mode)
    pooled = plan.pooled_axes
    moved = _pooled_last(xp, a, pooled)
    batch = moved.ndim - len(pooled)
    out_shape = moved.shape[:batch] + tuple(g.out for g in plan.axes)
    result = xp.empty(out_shape, dtype=work)
    omit = _omit_nans(plan, a.dtype)
    for block in _blocks(out_shape, 8 * _window_taps(plan), MEDIAN_BLOCK_BYTES):
        ranges = [range(*rows.indices(g.out)) for rows, g in zip(block[batch:], plan.axes)]
        values, valid, _ = _gather_windows(xp, moved[block[:batch]], plan, ranges)
        magnitudes = xp.where(valid, xp.abs(values.astype(work, copy=False)), 0)
        nans = xp.isnan(magnitudes)
        if omit:
            magnitudes = xp.where(nans, 0, magnitudes)
        largest = magnitudes.max(axis=-1, keepdims=True)
        scale = xp.where((largest > 0) & xp.isfinite(largest), largest, 1)
        norm = largest[..., 0] * ((magnitudes / scale) ** work.type(plan.p)).sum(axis=-1) ** work.type(1 / plan.p)
        norm = xp.where(largest[..., 0] > 0, norm, largest[..., 0])  # all zeros (or inf, NaN) stay
        if omit:
            norm = xp.where(nans.all(axis=-1), np.nan, norm)
        result[block] = norm
    return _restore_pooled_axes(xp, result, pooled)


def _materialise_padding(xp, x, plan: PoolPlan):
    """Edge/reflect padding is real data: pad once, then pool the padded array with zero pads."""
    if plan.pad_mode == "zeros" or all(g.pad_lo == g.pad_hi == 0 for g in plan.sliding):
        return x, plan
    padded_plan = with_materialised_padding(plan, x.dtype.itemsize)  # checks the padded size first
    widths = [(0, 0)] * x.ndim
    for g in plan.sliding:
        widths[g.axis] = (g.pad_lo, g.pad_hi)
    return xp.pad(x, widths, mode=plan.pad_mode), padded_plan


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
    if _window_wise(xp, geometry):
        return _reduce_axis_by_window(xp, a, geometry, combine, dtype, transform)
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


WINDOW_WISE_RATIO = 4  # an axis with this many times more taps than windows is reduced window by window


def _window_wise(xp, geometry) -> bool:
    """Few, huge windows (window 2_100_000 over 3_000_000 cells): a loop over the windows,
    each one reduction, instead of a Python loop over millions of taps."""
    return (FAST_PATHS.window_wise and xp is np and isinstance(geometry, AxisGeometry)
            and geometry.window > WINDOW_WISE_RATIO * geometry.out)


def _reduce_axis_by_window(xp, a, geometry: AxisGeometry, combine, dtype, transform):
    """`combine.reduce` over each window's input cells (a float sum may round in another
    order than tap by tap: NumPy's pairwise summation)."""
    shape = list(a.shape)
    shape[geometry.axis] = geometry.out
    out = xp.empty(shape, dtype=dtype)
    for o in range(geometry.out):
        values = a[_along(geometry.axis, geometry.window_cells(o))]
        values = values if transform is None else transform(values)
        out[_along(geometry.axis, slice(o, o + 1))] = combine.reduce(values, axis=geometry.axis, dtype=dtype,
                                                                     keepdims=True)
    return out


PLANAR_MAX_TRAILING = 16  # channels-last blocks up to this size are reduced one channel at a time


def _planar(xp, a, axis: int) -> bool:
    """A small trailing block (HWC's C) makes strided loops short: go plane by plane instead."""
    trailing = math.prod(a.shape[axis + 1:])
    return (FAST_PATHS.planar and xp is np and 1 < trailing <= PLANAR_MAX_TRAILING and a.flags.c_contiguous
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
    if not FAST_PATHS.slabs or xp is not np or threads < 2 or a.nbytes < MIN_PARALLEL_BYTES:
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
    """sum / avg / l2 / lp: a separable sum of x, x^2 or |x|^p, then the divisor and root.

    Integer sums and means are exact: they accumulate in an integer type that holds any
    window's sum, or, where 64 bits do not, take the wide path (`_wide_sums`).
    """
    work = _work_dtype(a.dtype, plan.mode)
    empty = None
    if _omit_nans(plan, a.dtype):
        a, nan_counts, empty = _drop_nans(xp, a, plan)
    else:
        nan_counts = None
    rounded = _rounds(plan, dtype)
    bound = None
    plain = _power(plan) is None  # sum and avg: sums of x itself
    if plain and a.dtype.kind in "biu":
        bound = _exact_bound(xp, a, plan, rounded)
        if bound is None:
            return _wide_sums(xp, a, plan, dtype if dtype is not None else natural_dtype(a.dtype, plan.mode))
        accumulator = _accumulator_dtype(a.dtype, bound)
    elif plain:
        accumulator = work
    else:
        accumulator = _power_accumulator(a.dtype, plan, work)
    total = _reduce(xp, a, plan, xp.add, 0, accumulator, _power_transform(xp, plan, accumulator))
    if rounded and bound is not None:
        return _rounded_integer_mean(xp, total, plan, bound)
    y = _sum_finish(xp, total, plan, work, nan_counts)
    if empty is not None and empty.any():
        y = y.astype(work, copy=False)
        y[empty] = np.nan
    return y


def _power(plan: PoolPlan) -> float | None:
    """The power the sum family sums (modes.Mode.power): None for x itself, 2 or p."""
    kind = MODES[plan.mode].power
    return None if kind is None else 2.0 if kind == "2" else plan.p


def _rounds(plan: PoolPlan, dtype: np.dtype | None) -> bool:
    """A mean of x (avg) asked for as integers: rounded half up exactly, in integer arithmetic."""
    return MODES[plan.mode].divisor and _power(plan) is None and dtype is not None and dtype.kind in "iu"


def _rounded_integer_mean(xp, total, plan: PoolPlan, bound: int):
    """floor(total / divisor + 0.5) in exact integer arithmetic: (2 total + d) // (2 d).

    `bound` is the largest |total|; the arithmetic runs in the total's own type when
    2 * bound + d fits it, else in the narrowest type that holds it (`_exact_bound`
    has checked that one does).
    """
    per_axis = None if plan.divisor_override is not None else _divisor_counts(plan)
    need = 2 * bound + _largest_divisor(plan)
    unsigned = [total.dtype] if total.dtype.kind == "u" else []
    room = next(np.dtype(t) for t in unsigned + [np.int16, np.int32, np.int64, np.uint64]
                if np.iinfo(t).max >= need)
    if per_axis is None:
        divisor = room.type(plan.divisor_override)
    else:
        divisor = _broadcast_counts(xp, plan, per_axis, room)
    total = total.astype(room, copy=False)
    doubled = xp.add(total, total, out=total)
    doubled += divisor
    return xp.floor_divide(doubled, 2 * divisor, out=doubled)


def _power_transform(xp, plan: PoolPlan, work):
    """x^2 for l2 (and lp with p = 2), |x|^p for lp, computed in `work`; None for sum and avg."""
    power = _power(plan)
    if power == 2.0:
        return lambda v: xp.square(v, dtype=work)
    if power is not None:
        if work.kind in "iu":  # |x|^p of integers with an integral p, exactly
            return lambda v: xp.power(xp.abs(v.astype(np.int64)) if v.dtype.kind == "i" else v, int(power),
                                      dtype=work)
        return lambda v: xp.power(xp.abs(v.astype(work, copy=False)), work.type(power))
    return None


MAX_EXACT_POWER = 64  # lp with a larger integral p computes |x|^p in floats (2^64 > 2^53 anyway)


def _power_accumulator(dtype: np.dtype, plan: PoolPlan, work: np.dtype) -> np.dtype:
    """Integer sums of x^2 (l2) or |x|^p (lp, integral p <= 64) when they stay exact in a
    float64; a larger p (1e308, say) takes the float path without building huge integers."""
    power = _power(plan) or 1.0
    if dtype.kind not in "biu" or not float(power).is_integer():
        return work
    if power > MAX_EXACT_POWER or not FAST_PATHS.exact_powers:
        return work
    bound = _sum_bound(dtype, plan) ** int(power)  # >= taps * max|x|^p
    if bound >= 2**53:
        return work
    if dtype.kind == "i":
        return np.dtype(np.int64)
    return np.dtype(np.uint32 if bound <= np.iinfo(np.uint32).max else np.uint64)


def _sum_finish(xp, total, plan: PoolPlan, work, nan_counts):
    """Divide and take roots in place where the total is already a float of the work dtype:
    sum keeps its total, lp takes the p-th root, avg divides, l2 divides and takes the root."""
    power, divides = _power(plan), MODES[plan.mode].divisor
    if not divides:
        if power is None:
            return total
        total = total.astype(work, copy=False)
        if power == 2.0:
            return xp.sqrt(total, out=total)
        return xp.power(total, work.type(1.0 / power), out=total)
    total = total.astype(work, copy=False)
    mean = xp.divide(total, _divisor(xp, plan, work, nan_counts), out=total)
    return mean if power is None else xp.sqrt(mean, out=mean)


def _drop_nans(xp, a, plan: PoolPlan):
    """nan_policy='omit': NaNs become absent cells (zeros in the sum, not in the divisor)."""
    nans = xp.isnan(a)
    present = _reduce(xp, ~nans, plan, xp.add, 0, np.int64)
    real = _broadcast_counts(xp, plan, [g.count_real() for g in plan.axes], np.int64)
    return xp.where(nans, 0, a), real - present, present == 0


def _divisor_counts(plan: PoolPlan) -> list[np.ndarray]:
    """Per pooled axis, each window's divisor count (SPEC's count_include_pad rule)."""
    return [g.count_padded() if plan.count_include_pad else g.count_real() for g in plan.axes]


def _largest_divisor(plan: PoolPlan) -> int:
    if plan.divisor_override is not None:
        return plan.divisor_override
    return math.prod(int(count.max(initial=1)) for count in _divisor_counts(plan))


def _divisor(xp, plan: PoolPlan, work, nan_counts=None):
    if plan.divisor_override is not None:
        return work.type(plan.divisor_override)
    divisor = _broadcast_counts(xp, plan, _divisor_counts(plan), work)
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


def _window_taps(plan: PoolPlan) -> int:
    """The most cells one window can read (in closed form: no tap is listed)."""
    return math.prod(g.most_taps for g in plan.axes)


def _sum_bound(dtype: np.dtype, plan: PoolPlan, magnitude: int | None = None) -> int:
    """The largest |sum| of one window of an integer or bool dtype: taps times the largest
    |value| of the dtype, or `magnitude` (the data's own largest |value|) when given."""
    if magnitude is None:
        magnitude = 1 if dtype.kind == "b" else max(-int(np.iinfo(dtype).min), int(np.iinfo(dtype).max))
    return magnitude * _window_taps(plan)


def _exact_bound(xp, a, plan: PoolPlan, rounded: bool) -> int | None:
    """The bound on |window sum| that lets a 64-bit accumulator hold sums exactly (and a
    rounded mean's 2 * sum + divisor), or None: then only the wide path is exact.

    The dtype's range decides where it can (all but 64-bit inputs, a cost-free check);
    else the data's own largest |value| (one pass), so int64 arrays of ordinary values
    keep the fast path.
    """
    limit = int(np.iinfo(np.uint64 if a.dtype.kind in "ub" else np.int64).max)
    margin = _largest_divisor(plan) if rounded else 0
    bound = _sum_bound(a.dtype, plan)
    if (2 * bound + margin if rounded else bound) <= limit:
        return bound
    magnitude = 0 if a.size == 0 else max(-int(a.min()), int(a.max()))
    bound = _sum_bound(a.dtype, plan, magnitude)
    return bound if (2 * bound + margin if rounded else bound) <= limit else None


def integer_sums_fit(xp, x, plan: PoolPlan, requested: np.dtype | None) -> bool:
    """Whether sum/avg of `x` stays exact in 64-bit accumulators (backend_cuda's fused
    kernels accumulate in 64 bits, so they leave the other calls to this engine)."""
    if plan.mode not in ("sum", "avg") or x.dtype.kind not in "biu":
        return True
    return _exact_bound(xp, x, plan, _rounds(plan, requested)) is not None


def _accumulator_dtype(dtype: np.dtype, bound: int) -> np.dtype:
    """The narrowest integer type that holds any window's sum (|sum| <= bound) exactly."""
    unsigned = dtype.kind in "ub"
    widths = (np.uint16, np.uint32, np.uint64) if unsigned else (np.int16, np.int32, np.int64)
    for candidate in widths if FAST_PATHS.narrow_integers else widths[-1:]:
        if np.iinfo(candidate).max >= bound:
            return np.dtype(candidate)
    return np.dtype(np.uint64 if unsigned else np.int64)


# ------------------------------------------------------------------ wide integer sums

LIMB_BITS = 32
LIMB_MASK = (1 << LIMB_BITS) - 1
MAX_WIDE_TAPS = 2**31 - 1  # each limb's window sum (< taps * 2**32) must fit an int64


def _wide_sums(xp, a, plan: PoolPlan, target: np.dtype):
    """sum or avg of integer windows whose sums overflow 64 bits, exactly, as `target`.

    Each value splits into a high and a low 32-bit limb; each limb's window sum is exact in
    int64, and the limbs recombine exactly: a sum clipped to an integer target's range, or
    rounded once to a float64 (avg: that float divided by the divisor), or for avg to an
    integer target floor(sum / divisor + 1/2) by long division, then clipped.
    """
    if _window_taps(plan) > MAX_WIDE_TAPS:
        raise PoolError(f"a window of {_window_taps(plan)} taps over {a.dtype} values near its limits "
                        f"needs more than 64-bit sums; use windows of at most {MAX_WIDE_TAPS} taps "
                        "or convert x to float64")
    high, low = _split_limbs(xp, a)
    int64 = np.dtype(np.int64)
    high, low = _carry(xp, _reduce(xp, high, plan, xp.add, 0, int64), _reduce(xp, low, plan, xp.add, 0, int64))
    if plan.mode == "sum":
        if target.kind == "f":
            return _limbs_to_float(xp, high, low).astype(target, copy=False)
        return _limbs_to_int(xp, high, low, target)
    if target.kind == "f":
        mean = _limbs_to_float(xp, high, low) / _divisor(xp, plan, np.dtype(np.float64))
        return mean.astype(target, copy=False)
    if plan.divisor_override is not None:
        divisor = plan.divisor_override
    else:
        divisor = _broadcast_counts(xp, plan, _divisor_counts(plan), int64)
    high, low = _rounded_quotient(xp, high, low, divisor)
    return _limbs_to_int(xp, high, low, target)


def _split_limbs(xp, a):
    """Integers as int64 limbs (high, low): a = high * 2**32 + low, 0 <= low < 2**32."""
    wide = a.astype(np.uint64 if a.dtype.kind in "ub" else np.int64, copy=False)
    return (wide >> LIMB_BITS).astype(np.int64), (wide & LIMB_MASK).astype(np.int64)


def _carry(xp, high, low):
    """Normalise limbs in place so that 0 <= low < 2**32 (low >= 0 on entry)."""
    high += low >> LIMB_BITS
    low &= LIMB_MASK
    return high, low


def _limbs_to_float(xp, high, low):
    """The float64 nearest high * 2**32 + low (0 <= low < 2**32, |high| < 2**62), rounded once.

    Up to |high| = 2**53 the high part is exact as a float, so one addition rounds; above,
    round to odd at 55 bits (2 * high + the next bit, the rest as a sticky bit), whose
    conversion to a float64 then rounds correctly.
    """
    near = high.astype(np.float64) * float(2**LIMB_BITS) + low.astype(np.float64)
    odd = (high * 2 + (low >> (LIMB_BITS - 1))) | ((low & (LIMB_MASK >> 1)) != 0)
    far = odd.astype(np.float64) * float(2 ** (LIMB_BITS - 1))
    return xp.where(xp.abs(high) <= 2**53, near, far)


def _limbs_to_int(xp, high, low, target: np.dtype):
    """high * 2**32 + low clipped to `target`'s range, as `target`."""
    info = np.iinfo(target)
    top, bottom = divmod(int(info.max), 2**LIMB_BITS), divmod(int(info.min), 2**LIMB_BITS)
    over = (high > top[0]) | ((high == top[0]) & (low > top[1]))
    under = (high < bottom[0]) | ((high == bottom[0]) & (low < bottom[1]))
    high = xp.where(over, np.int64(top[0]), xp.where(under, np.int64(bottom[0]), high))
    low = xp.where(over, np.int64(top[1]), xp.where(under, np.int64(bottom[1]), low))
    container = np.dtype(np.uint64 if target == np.uint64 else np.int64)
    value = high.astype(container) * container.type(2**LIMB_BITS) + low.astype(container)
    return value.astype(target, copy=False)


def _rounded_quotient(xp, high, low, divisor):
    """floor(S / divisor + 1/2) for S = high * 2**32 + low, as limbs, by long division.

    `divisor` is a positive int64 (a scalar or an array that broadcasts) below 2**63. The
    high limb divides in one step; the low limb's bits come down in chunks small enough
    that the running remainder, shifted, stays below 2**64.
    """
    quotient_high = xp.floor_divide(high, divisor)
    rest = xp.remainder(high, divisor).astype(np.uint64)
    d = xp.asarray(divisor).astype(np.uint64)
    step = 64 - int(d.max()).bit_length()
    quotient_low = xp.zeros_like(rest)
    remaining = LIMB_BITS
    while remaining:
        take = min(step, remaining)
        remaining -= take
        rest = (rest << np.uint64(take)) | ((low >> remaining) & ((1 << take) - 1)).astype(np.uint64)
        quotient_low = (quotient_low << np.uint64(take)) | (rest // d)
        rest %= d
    up = rest >= d - rest  # the remainder is at least half the divisor: round up
    return _carry(xp, quotient_high, quotient_low.astype(np.int64) + up)


# ------------------------------------------------------------------ median

MEDIAN_BLOCK_BYTES = 64 << 20  # gathered taps of one block of windows (8 bytes a tap)


def _median(xp, a, plan: PoolPlan, original_pooled_shape, requested: np.dtype | None = None,
            routes: bool = False):
    """Median of the real cells of each window, and, with `routes`, what the backward pass needs.

    Windows are gathered (taps side by side) a block at a time, each block's taps under
    MEDIAN_BLOCK_BYTES (one window at least), so memory stays O(input + output) plus a
    constant however many windows overlap; the blocks give the same values as one pass.
    Floats compute in float64; integers stay integers (the mean of the two middle values
    rounded half up, or, for a float `requested`, their exact mean rounded once).

    Returns (median, routes): routes are None, or (low, high, count) with the pooled axes
    last: the flat input indices of each window's two middle cells in stable sorted
    order (absent taps last) and how many cells it has.
    """
    pooled = plan.pooled_axes
    moved = _pooled_last(xp, a, pooled)
    batch = moved.ndim - len(pooled)
    out_shape = moved.shape[:batch] + tuple(g.out for g in plan.axes)
    float_out = a.dtype.kind == "f" or (requested is not None and requested.kind == "f")
    result_dtype = np.float64 if float_out else np.uint8 if a.dtype.kind == "b" else a.dtype
    median = xp.empty(out_shape, dtype=result_dtype)
    found = tuple(xp.empty(out_shape, dtype=np.int64) for _ in range(3)) if routes else None
    for block in _blocks(out_shape, 8 * _window_taps(plan), MEDIAN_BLOCK_BYTES):
        ranges = [range(*rows.indices(g.out)) for rows, g in zip(block[batch:], plan.axes)]
        values, valid, sources = _gather_windows(xp, moved[block[:batch]], plan, ranges,
                                                 original_pooled_shape if routes else None)
        median[block], order, count = _median_block(xp, values, valid, plan.nan_policy, float_out)
        if routes:
            for target, chosen in zip(found or (), (*_middle_sources(xp, order, count, sources), count)):
                target[block] = chosen
    return _restore_pooled_axes(xp, median, pooled), found


def _blocks(shape, item_bytes: int, budget: int):
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


def _median_block(xp, values, valid, nan_policy: str, float_out: bool):
    """(median, order, count) over the last axis of gathered windows: the stable sort order
    of the taps with absent ones last, and how many are present."""
    if values.dtype.kind == "f":
        return _float_median(xp, values, valid, nan_policy)
    if values.dtype.kind == "b":
        values = values.view(np.uint8)
    order = xp.argsort(values, axis=-1, kind="stable")
    valid = xp.broadcast_to(valid, values.shape)
    if not bool(valid.all()):  # padding: a second stable sort puts absent taps last
        absent = ~xp.take_along_axis(valid, order, axis=-1)
        order = xp.take_along_axis(order, xp.argsort(absent.view(np.uint8), axis=-1, kind="stable"), axis=-1)
    count = valid.sum(axis=-1)
    low, high = (_middle_value(xp, values, order, position) for position in _middle_positions(xp, count))
    median = _exact_midpoint(xp, low, high) if float_out else _midpoint_half_up(low, high)
    return median, order, count


def _float_median(xp, values, valid, nan_policy: str):
    cells = values.astype(np.float64)
    has_nan = (xp.isnan(cells) & valid).any(axis=-1) if nan_policy == "propagate" else None
    cells = xp.where(valid, cells, np.nan)
    order = xp.argsort(cells, axis=-1, kind="stable")
    count = (~xp.isnan(cells)).sum(axis=-1)
    low, high = (_middle_value(xp, cells, order, position) for position in _middle_positions(xp, count))
    mean = (low + high) / 2
    mean = xp.where(xp.isinf(mean) & xp.isfinite(low) & xp.isfinite(high), low / 2 + high / 2, mean)
    median = xp.where(low == high, low, mean)
    median = xp.where(count == 0, np.nan, median)
    if has_nan is not None:
        median = xp.where(has_nan, np.nan, median)
    return median, order, count


def _middle_positions(xp, count):
    return xp.maximum((count - 1) // 2, 0), count // 2


def _middle_value(xp, values, order, position):
    tap = xp.take_along_axis(order, position[..., None], axis=-1)
    return xp.take_along_axis(values, tap, axis=-1)[..., 0]


def _midpoint_half_up(a, b):
    """floor((a + b) / 2 + 1/2) of two integers, without overflow at any width."""
    return (a >> 1) + (b >> 1) + (((a & 1) + (b & 1) + 1) >> 1)


def _exact_midpoint(xp, a, b):
    """(a + b) / 2 of two integers as the nearest float64 (64-bit values too)."""
    a_high, a_low = _split_limbs(xp, a)
    b_high, b_low = _split_limbs(xp, b)
    return _limbs_to_float(xp, *_carry(xp, a_high + b_high, a_low + b_low)) / 2


def _middle_sources(xp, order, count, sources):
    """Flat input indices of each window's two middle cells."""
    sources = xp.broadcast_to(sources, order.shape)
    return tuple(_middle_value(xp, sources, order, position) for position in _middle_positions(xp, count))


def _gather_windows(xp, a, plan: PoolPlan, ranges, original_pooled_shape=None):
    """The taps of windows `ranges` (one range of outputs per pooled axis) side by side:
    (batch..., out..., taps) from `a` with its pooled axes last.

    Also returns which taps are real (not padding), shaped (out..., taps), and, given
    `original_pooled_shape`, each tap's flat input index (else None).
    """
    m = len(plan.axes)
    index_arrays: list = []
    valid: Any = None
    sources: Any = None
    flat_strides = _row_major_strides(original_pooled_shape or plan.pooled_shape)
    for i, (geometry, rows, flat_stride) in enumerate(zip(plan.axes, ranges, flat_strides)):
        positions, present = geometry.window_table(rows.start, rows.stop)
        shape = [1] * (2 * m)
        shape[i], shape[m + i] = positions.shape
        index_arrays.append(xp.asarray(positions.reshape(shape)))
        term_valid = xp.asarray(present.reshape(shape))
        valid = term_valid if valid is None else valid & term_valid
        if original_pooled_shape is not None:
            term_source = xp.asarray(geometry.original_positions(positions).reshape(shape) * flat_stride)
            sources = term_source if sources is None else sources + term_source
    out_shape = tuple(len(rows) for rows in ranges)
    values = a[(Ellipsis, *index_arrays)]
    taps = math.prod(values.shape[-m:])
    values = values.reshape(values.shape[: values.ndim - 2 * m] + out_shape + (taps,))
    valid = xp.broadcast_to(valid, out_shape + valid.shape[m:]).reshape(out_shape + (taps,))
    if sources is not None:
        sources = xp.broadcast_to(sources, out_shape + sources.shape[m:]).reshape(out_shape + (taps,))
    return values, valid, sources


# ------------------------------------------------------------------ output dtypes


@ieee_quiet
def _backward(xp, grad, x, plan: PoolPlan):
    if (fused := fused_backward(xp, grad, x, plan)) is not None:
        return fused
    grad_dtype = x.dtype if x.dtype.kind == "f" else np.dtype(np.float64)
    work = np.dtype(np.float32) if grad_dtype.itemsize < 4 else grad_dtype
    grad = grad.astype(work, copy=False)
    source, padded_plan = _materialise_padding(xp, x, plan)
    reducer = MODES[plan.mode].reducer
    if reducer == "extreme":
        _, indices = _arg_extreme(xp, source, padded_plan, plan.pooled_shape)
        return _scatter(xp, grad, indices, plan).astype(grad_dtype)
    if reducer == "median":
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
    power, divides = _power(plan), MODES[plan.mode].divisor
    if power is None:  # sum, avg: every tap gets the output's gradient (over the divisor)
        weight = grad / _divisor(xp, plan, work, nan_counts) if divides else grad
    else:
        y = _sum_finish(xp, _reduce(xp, a, plan, xp.add, 0, work, _power_transform(xp, plan, work)),
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
        weight = grad / (_divisor(xp, plan, work, nan_counts) * safe)
    else:
        weight = grad / safe ** work.type((_power(plan) or 1.0) - 1)
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
    _, (low, high, count) = _median(xp, a, padded_plan, plan.pooled_shape, routes=True)
    share = xp.where(count > 0, _pooled_last(xp, grad, plan.pooled_axes) / 2, 0)
    return _scatter_last(xp, share, low, plan) + _scatter_last(xp, share, high, plan)


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
