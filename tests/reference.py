"""Brute-force pooling, written straight from SPEC.md: plain loops over outputs and taps.

Nothing here imports poolcli, so the engine is never checked against itself. Every
function walks each output position, lists its window's taps one by one and reduces
them with Python arithmetic; it is slow on purpose, so give it small arrays.

A tap of a window is one of:

- a real cell (inside the input, or inside edge/reflect padding, which is made of real
  values taken from the position `np.pad` copies them from);
- a zero cell (inside zero padding: a 0 for sum/avg/l2/lp, ignored by max/min/median,
  counted by the avg/l2 divisor only with count_include_pad=True);
- nothing (the ceil-mode overhang past the padding: never used, never counted).

Values come back as float64 arrays (exact for the small integers the tests use);
`expected_dtype` and `round_half_up` turn them into what SPEC.md says the output is.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

# ---------------------------------------------------------------- geometry (SPEC "per axis")


def axis_pads(n: int, k: int, s: int, d: int, padding) -> tuple[int, int]:
    """(lo, hi) for one axis: an int, a (lo, hi) pair, 'valid' or TensorFlow's 'same'."""
    span = d * (k - 1) + 1
    if padding == "valid":
        return 0, 0
    if padding == "same":
        out = -(-n // s)
        total = max((out - 1) * s + span - n, 0)
        return total // 2, total - total // 2
    if isinstance(padding, int):
        return padding, padding
    lo, hi = padding
    return lo, hi


def axis_length(n: int, k: int, s: int, d: int, lo: int, hi: int, ceil_mode: bool) -> int:
    """Windows along one axis; the last one must start inside the input or the left pad."""
    span = d * (k - 1) + 1
    room = n + lo + hi - span
    if not ceil_mode:
        return room // s + 1
    out = -(-room // s) + 1
    if (out - 1) * s >= n + lo:
        out -= 1
    return out


def _per_axis(value, count: int) -> list:
    return list(value) if isinstance(value, (tuple, list)) else [value] * count


def pooled_axes(ndim: int, window, axes) -> list[int]:
    """The pooled axes in the order the per-axis values are given."""
    if axes is None:
        count = len(window) if isinstance(window, (tuple, list)) else min(2, ndim)
        return list(range(ndim - count, ndim))
    axes = axes if isinstance(axes, (tuple, list)) else (axes,)
    return [a % ndim for a in axes]


def plan(shape, window, stride=None, *, padding=0, dilation=1, ceil_mode=False, axes=None):
    """Per pooled axis, sorted by array axis: dict(axis, n, k, s, d, lo, hi, out)."""
    pooled = pooled_axes(len(shape), window, axes)
    m = len(pooled)
    windows = _per_axis(window, m)
    strides = windows if stride is None else _per_axis(stride, m)
    dilations = _per_axis(dilation, m)
    pads = [padding] * m if isinstance(padding, (str, int)) else list(padding)
    rows = []
    for axis, k, s, d, pad in zip(pooled, windows, strides, dilations, pads, strict=True):
        n = shape[axis]
        lo, hi = axis_pads(n, k, s, d, pad)
        out = axis_length(n, k, s, d, lo, hi, ceil_mode)
        rows.append(dict(axis=axis, n=n, k=k, s=s, d=d, lo=lo, hi=hi, out=out))
    return sorted(rows, key=lambda row: row["axis"])


def output_shape_ref(shape, window, stride=None, **geometry) -> tuple[int, ...]:
    shape = list(shape)
    for row in plan(shape, window, stride, **geometry):
        shape[row["axis"]] = row["out"]
    return tuple(shape)


def padding_only_windows(row: dict) -> list[int]:
    """Windows on one axis whose taps all miss the input (dilation can step over it)."""
    n, k, s, d, lo = row["n"], row["k"], row["s"], row["d"], row["lo"]
    return [o for o in range(row["out"]) if not any(0 <= o * s - lo + j * d < n for j in range(k))]


def _axis_taps(row: dict, o: int, pad_mode: str) -> list:
    """Taps of window o on one axis: ('real', source), ('zero', None) or ('none', None)."""
    n, lo, hi = row["n"], row["lo"], row["hi"]
    source = np.pad(np.arange(n), (lo, hi), mode="edge" if pad_mode == "edge" else "reflect") \
        if pad_mode != "zeros" else None
    taps = []
    for j in range(row["k"]):
        position = o * row["s"] - lo + j * row["d"]
        if 0 <= position < n:
            taps.append(("real", position))
        elif -lo <= position < n + hi:
            taps.append(("zero", None) if source is None else ("real", int(source[position + lo])))
        else:
            taps.append(("none", None))
    return taps


def _bin_taps(n: int, out: int, i: int) -> list:
    start, stop = (i * n) // out, -(-((i + 1) * n) // out)
    return [("real", position) for position in range(start, stop)]


def _windows(shape, rows, axis_taps):
    """Yield (output index, cells): cells in row-major window order, each (kind, input index)."""
    out_shape = list(shape)
    for row in rows:
        out_shape[row["axis"]] = row["out"]
    for index in np.ndindex(*out_shape):
        per_axis = [axis_taps(row, index[row["axis"]]) for row in rows]
        cells = []
        for combo in itertools.product(*per_axis):
            kinds = {kind for kind, _ in combo}
            if "none" in kinds:
                continue
            if "zero" in kinds:
                cells.append(("zero", None))
                continue
            source = list(index)
            for row, (_, position) in zip(rows, combo, strict=True):
                source[row["axis"]] = position
            cells.append(("real", tuple(source)))
        yield index, cells


def _flat(rows, source) -> int:
    """Row-major flat index of `source` over the pooled axes (h*W + w for NCHW)."""
    flat = 0
    for row in rows:
        flat = flat * row["n"] + source[row["axis"]]
    return flat


# ---------------------------------------------------------------- one window's value


def is_missing(value: float, nodata, nan_policy: str) -> bool:
    """A cell that holds no data: equal to `nodata` (every NaN for a NaN nodata), or, once a
    nodata is set, NaN under nan_policy='omit'."""
    if nodata is None:
        return False
    if math.isnan(value):
        return math.isnan(float(nodata)) or nan_policy == "omit"
    return value == nodata


def _window_value(x, cells, mode, *, count_include_pad, divisor_override, p, nan_policy, nodata=None):
    """(value, chosen cells) of one window; chosen are the cells a gradient is routed to.

    With `nodata`, missing cells are dropped first, as if they were not in the window; a
    window left with none gives `nodata` (max/min/majority/nearest: index of its first cell, no
    gradient)."""
    if mode in ("majority", "nearest"):
        return _chosen_among_present(x, cells, mode, nan_policy, nodata)
    real = [(float(x[source]), source) for kind, source in cells if kind == "real"]
    if nodata is not None:
        kept = [(v, source) for v, source in real if not is_missing(v, nodata, nan_policy)]
        if not kept:
            return float(nodata), [source for _, source in real[:1]]
        real = kept
    zeros = sum(kind == "zero" for kind, _ in cells)
    nan_count = sum(math.isnan(v) for v, _ in real)
    if nan_policy == "omit":
        kept = [(v, source) for v, source in real if not math.isnan(v)]
        if not kept:  # an all-NaN window: NaN; max/min point at its first cell
            return math.nan, [source for _, source in real[:1]] if mode in ("max", "min") else []
        real = kept
    elif nan_count:
        nan_sources = [source for v, source in real if math.isnan(v)]
        return math.nan, nan_sources[-1:]  # PyTorch's max_pool: the last NaN wins
    values = [v for v, _ in real]
    if mode in ("max", "min"):
        best = max(values) if mode == "max" else min(values)
        return best, [next(source for v, source in real if v == best)]
    if mode == "sum":
        return math.fsum(values), []
    if mode == "lp":
        return math.fsum(abs(v) ** p for v in values) ** (1.0 / p), []
    if mode in ("avg", "l2"):
        divisor = divisor_override or (len(real) + (zeros if count_include_pad else 0))
        if mode == "avg":
            return math.fsum(values) / divisor, []
        return math.sqrt(math.fsum(v * v for v in values) / divisor), []
    if mode == "median":
        ordered = sorted(range(len(real)), key=lambda i: real[i][0])  # stable: window order
        low, high = ordered[(len(real) - 1) // 2], ordered[len(real) // 2]
        return (real[low][0] + real[high][0]) / 2, [real[low][1], real[high][1]]
    raise ValueError(mode)


def _chosen_among_present(x, cells, mode, nan_policy, nodata):
    """majority and nearest over the cells that are not missing (`nodata`); a window of missing
    cells alone gives `nodata` and its first real cell."""
    if nodata is not None:
        first = [source for kind, source in cells if kind == "real"][:1]
        cells = [(kind, source) for kind, source in cells
                 if kind != "real" or not is_missing(float(x[source]), nodata, nan_policy)]
        if not any(kind == "real" for kind, _ in cells):
            return float(nodata), first
    return _chosen_cell(x, cells, mode, nan_policy)


def _chosen_cell(x, cells, mode, nan_policy):
    """majority and nearest, on the cells' own values (exact for 64-bit integers): (value, [cell]).

    nearest: the first real cell in window order (with "omit", the first that is not NaN).
    majority: the value most real cells hold (Python's ==, so -0.0 counts as 0.0), the smallest
    on a tie, at the first cell in window order holding it; NaN is never counted: "propagate"
    gives the first NaN cell of a window holding one, "omit" skips NaN cells.
    Where no cell is left (NaN only, with "omit"), the first real cell (a NaN).
    """
    real = [(x[source].item(), source) for kind, source in cells if kind == "real"]
    is_nan = [isinstance(v, float) and math.isnan(v) for v, _ in real]
    kept = [cell for cell, nan in zip(real, is_nan, strict=True) if not nan]
    if mode == "nearest":
        value, source = (kept or real)[0] if nan_policy == "omit" else real[0]
        return float(value), [source]
    if nan_policy == "propagate" and any(is_nan):
        return math.nan, [real[is_nan.index(True)][1]]
    if not kept:
        return math.nan, [real[0][1]]
    counts: dict = {}
    for value, _ in kept:
        counts[value] = counts.get(value, 0) + 1
    most = max(counts.values())
    winner = min(value for value, count in counts.items() if count == most)
    source = next(source for value, source in kept if value == winner)
    return float(x[source]), [source]


# ---------------------------------------------------------------- public reference functions


def pool_ref(x, window, stride=None, *, mode="max", padding=0, dilation=1, ceil_mode=False,
             count_include_pad=True, divisor_override=None, p=2.0, pad_mode="zeros",
             nan_policy="propagate", axes=None, return_indices=False, nodata=None):
    """SPEC.md's pool(), one output at a time: float64 values (and int64 indices)."""
    x = np.asarray(x)
    rows = plan(x.shape, window, stride, padding=padding, dilation=dilation,
                ceil_mode=ceil_mode, axes=axes)
    return _pool_rows(x, rows, lambda row, o: _axis_taps(row, o, pad_mode), mode, return_indices,
                      count_include_pad=count_include_pad, divisor_override=divisor_override,
                      p=float(p), nan_policy=nan_policy, nodata=nodata)


def adaptive_ref(x, output_size, *, mode="avg", axes=None, return_indices=False, p=2.0,
                 nan_policy="propagate", nodata=None):
    """Adaptive pooling: bin i covers [floor(i*n/out), ceil((i+1)*n/out)) on each axis."""
    x = np.asarray(x)
    pooled = pooled_axes(x.ndim, output_size, axes)
    sizes = _per_axis(output_size, len(pooled))
    rows = sorted(
        (dict(axis=a, n=x.shape[a], out=x.shape[a] if size is None else size)
         for a, size in zip(pooled, sizes, strict=True)),
        key=lambda row: row["axis"],
    )
    return _pool_rows(x, rows, lambda row, i: _bin_taps(row["n"], row["out"], i), mode,
                      return_indices, count_include_pad=True, divisor_override=None,
                      p=float(p), nan_policy=nan_policy, nodata=nodata)


def _pool_rows(x, rows, axis_taps, mode, return_indices, **options):
    out_shape = list(x.shape)
    for row in rows:
        out_shape[row["axis"]] = row["out"]
    y = np.zeros(out_shape, dtype=np.float64)
    indices = np.zeros(out_shape, dtype=np.int64)
    for index, cells in _windows(x.shape, rows, axis_taps):
        y[index], chosen = _window_value(x, cells, mode, **options)
        if return_indices:
            indices[index] = _flat(rows, chosen[0])
    return (y, indices) if return_indices else y


def pool_backward_ref(grad, x, window, stride=None, *, mode="max", padding=0, dilation=1,
                      ceil_mode=False, count_include_pad=True, divisor_override=None, p=2.0,
                      pad_mode="zeros", nan_policy="propagate", axes=None, nodata=None):
    """dL/dx from SPEC.md's formulas, one window at a time (float64); missing cells and
    windows of missing cells alone take no part."""
    x = np.asarray(x)
    grad = np.asarray(grad, dtype=np.float64)
    rows = plan(x.shape, window, stride, padding=padding, dilation=dilation,
                ceil_mode=ceil_mode, axes=axes)
    result = np.zeros(x.shape, dtype=np.float64)
    options = dict(count_include_pad=count_include_pad, divisor_override=divisor_override,
                   p=float(p), nan_policy=nan_policy, nodata=nodata)
    for index, cells in _windows(x.shape, rows, lambda row, o: _axis_taps(row, o, pad_mode)):
        g = grad[index]
        y, chosen = _window_value(x, cells, mode, **options)
        real = [source for kind, source in cells
                if kind == "real" and not (nan_policy == "omit" and math.isnan(float(x[source])))
                and not is_missing(float(x[source]), nodata, nan_policy)]
        if nodata is not None and not real:  # a window without data: it gets the nodata, routes nothing
            continue
        if mode in ("max", "min", "majority", "nearest"):
            for source in chosen:
                result[source] += g
        elif mode == "median":
            for source in chosen:
                result[source] += g / 2
        elif mode == "sum":
            for source in real:
                result[source] += g
        elif mode == "avg":
            zeros = sum(kind == "zero" for kind, _ in cells)
            divisor = divisor_override or (len(real) + (zeros if count_include_pad else 0))
            for source in real:
                result[source] += g / divisor
        elif mode == "l2":
            zeros = sum(kind == "zero" for kind, _ in cells)
            divisor = divisor_override or (len(real) + (zeros if count_include_pad else 0))
            for source in real:
                if y > 0:
                    result[source] += g * float(x[source]) / (divisor * y)
        elif mode == "lp":
            for source in real:
                v = float(x[source])
                if y > 0 and v != 0:
                    result[source] += g * math.copysign(abs(v) ** (p - 1), v) / y ** (p - 1)
        else:
            raise ValueError(mode)
    return result


# ---------------------------------------------------------------- SPEC's dtype rules


def expected_dtype(dtype, mode: str, requested=None) -> np.dtype:
    """The output dtype SPEC.md gives `mode` for an input of `dtype` (or `requested`)."""
    dtype = np.dtype(dtype)
    if requested is not None:
        return np.dtype(requested)
    if mode in ("max", "min", "median", "majority", "nearest"):
        return dtype
    if mode == "sum":
        return np.sum(np.zeros(1, dtype)).dtype  # NumPy's own rule
    return dtype if dtype.kind == "f" else np.dtype(np.float64)


def round_half_up(values, dtype) -> np.ndarray:
    """SPEC's integer output: floor(v + 0.5), clipped to the dtype's range."""
    dtype = np.dtype(dtype)
    values = np.asarray(values, dtype=np.float64)
    if dtype.kind == "b":
        return np.floor(values + 0.5) != 0
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return np.clip(np.floor(values + 0.5), info.min, info.max).astype(dtype)
    return values.astype(dtype)


def assert_array(actual, expected, dtype, *, rtol=1e-12, atol=1e-12, equal_nan=True):
    """Type, dtype and shape first, then values (SciPy's xp_assert_close discipline)."""
    expected = np.asarray(expected)
    assert type(actual) is np.ndarray, type(actual)
    assert actual.dtype == np.dtype(dtype), (actual.dtype, np.dtype(dtype))
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    if actual.dtype.kind in "biu":
        np.testing.assert_array_equal(actual, expected)
    else:
        np.testing.assert_allclose(actual.astype(np.float64), expected.astype(np.float64),
                                   rtol=rtol, atol=atol, equal_nan=equal_nan)
