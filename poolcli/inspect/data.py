"""What the inspector page shows, computed by the engine: the payload embedded in the page.

Every number the page prints comes from here: the input's values, each pooled value
(`engine.pool`), each winner (`return_indices=True` for max/min), the gradient each input
cell receives for dL/dy = 1 (`engine.pool_backward`, for the modes that route), and per
axis the plan's window, stride, dilation, pads, the divisor counts (`engine.divisors`) and,
for edge/reflect padding, which input cell each pad cell copies (the plan's source map).
The page's script only draws, looks values up and walks the plan's geometry; each mode's words
(its formula) come from its record in `core.modes`.

Arrays travel as zlib-compressed little-endian bytes in base64, in their own dtype (so a
float32 result is shown as the float32 the engine returned, an int64 as the exact int64): `encode`.
The payload holds what the exact region needs and no more: per axis the divisors of the outputs
drawn over it and the source cells of the pad cells only, so its size (and the memory spent on it)
is bounded by the region, whatever the input's size.

A large input is never pooled (or copied) whole: each panel pools it band by band along its first
pooled axis (`engine.bands`, the bits of pooling it at once), keeping the outputs over the region and
the block means of the preview, and the range and the input's preview are read band by band too; so
the memory spent beyond the input's own is about one band's work (`BAND_BYTES` of input), whatever
its size.
"""

from __future__ import annotations

import base64
import contextlib
import math
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from .. import io
from ..app.settings import PoolSettings, spec_for
from ..app.streamed import load_input
from ..core.geometry import AxisGeometry, PoolPlan, plan_pool, with_materialised_padding
from ..core.modes import MODES
from ..core.spec import PoolSpec, spec_of_plan
from ..engine import backward_with, pool, pool_with
from ..engine.bands import band, bands, fewest_rows
from ..engine.divisors import divisor_counts, work_dtype
from ..engine.lazy import region_backward
from ..engine.sums import finite_magnitudes, magnitudes_of_whole
from ..errors import PoolError, param, printable
from ..viz import NAN_COLOR, NEGINF_COLOR, POSINF_COLOR, VIRIDIS, image_range, value_range

EXACT_PIXELS = 1024 * 1024  # inputs larger than this (per plane) show an overview and one exact region
REGION_SIDE = 512  # the default exact region of a large input: this square at the centre
PREVIEW_SIDE = 512  # the longest side of a large input's (or result's) preview
PREVIEW_CODES = 250  # a preview holds 0..250 on its display range; 251 NaN, 252 +inf, 253 -inf
MAX_CHANNELS = 16  # feature maps: the planes embedded unless channels are named
BAND_BYTES = 4 * 2**20  # about the input bytes one step of a pass over the input reads
JS_DTYPES = {"uint8", "int8", "uint16", "int16", "uint32", "int32", "int64", "uint64", "float32", "float64"}


@dataclass(frozen=True)
class Region:
    """The part of the pooled plane whose exact values the page holds: rows [y, y+h), columns [x, x+w)
    (1-D: y = 0, h = 1)."""

    y: int
    x: int
    h: int
    w: int


def encode(array: np.ndarray) -> dict:
    """An array as the page reads it: dtype, shape and its little-endian bytes, byte k of every value
    together (plane k), zlib-compressed, in base64.

    Integers (64-bit ones too: the page reads them as BigInt, exactly) and float32/float64 keep
    their dtype; bool becomes uint8 and float16 float32 (both exact); anything else float64.

    >>> encode(np.array([[1, 2]], np.uint8))["shape"], encode(np.array([True]))["dtype"]
    ([1, 2], 'uint8')
    """
    array = np.asarray(array)
    if array.dtype == np.bool_:
        array = array.astype(np.uint8)
    elif array.dtype == np.float16:
        array = array.astype(np.float32)
    elif array.dtype.name not in JS_DTYPES:
        array = array.astype(np.float64)
    raw = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).view(np.uint8)
    planes = raw.reshape(-1, array.dtype.itemsize).T.tobytes()  # byte planes: the high bytes compress well
    return dict(dtype=array.dtype.name, shape=list(array.shape),
                data=base64.b64encode(zlib.compress(planes, 6)).decode("ascii"))


def planes(array: np.ndarray, pooled_axes: tuple[int, ...]) -> np.ndarray:
    """`array` as (planes, *pooled axes): every axis that is not pooled flattened into the first.

    >>> planes(np.zeros((4, 5, 3)), (0, 1)).shape, planes(np.zeros((2, 3, 7)), (2,)).shape
    ((3, 4, 5), (6, 7))
    """
    others = tuple(a for a in range(array.ndim) if a not in pooled_axes)
    moved = np.transpose(array, others + tuple(pooled_axes))
    return moved.reshape((-1,) + tuple(array.shape[a] for a in pooled_axes))


def build_payload(source: Path, settings: PoolSettings, modes: list[str], windows: list[tuple[int, ...]], *,
                  channels: list[int] | None = None, region: tuple[int, int, int, int] | None = None,
                  exact_pixels: int = EXACT_PIXELS, band_bytes: int = BAND_BYTES,
                  loaded: io.Loaded | None = None) -> dict:
    """The page's data for `source` pooled with `settings` once per (mode, window); a large input is
    read in bands of about `band_bytes`. `loaded`: the input as decoded already (RGB order), if it is."""
    loaded, array = _one_array(source, settings, loaded)
    variants = [replace(settings, mode=mode, window=window) for mode in modes for window in windows]
    specs = [spec_for(v, loaded, array) for v in variants]
    plans = [spec.plan(array.shape) for spec in specs]
    axes = _shown_axes(source, plans)
    count = int(math.prod(n for a, n in enumerate(array.shape) if a not in axes))
    chosen = _chosen_channels(channels, count, loaded.kind)
    size = (int(array.shape[axes[0]]) if len(axes) == 2 else 1, int(array.shape[axes[-1]]))
    shown = _region(size, region, exact_pixels)
    spans = [_spans(plan, shown) for plan in plans]
    exact = _exact_region(shown, spans, size)
    rows, cols = (exact.y, exact.y + exact.h), (exact.x, exact.x + exact.w)
    whole = exact.h == size[0] and exact.w == size[1]
    cut = _cut(array, axes, chosen, rows, cols)
    is_image = loaded.kind == "image"
    extremes = _extremes(array, axes, list(range(count)) if is_image else chosen, band_bytes)
    lo, hi = image_range(extremes) if is_image else value_range(extremes)
    shown_range = None if whole else (lo, hi)
    panels = [_panel(array, axes, chosen, variant, spec, plan, span, (rows, cols), shown_range, band_bytes)
              for variant, spec, plan, span in zip(variants, specs, plans, spans)]
    payload = dict(
        title=printable(source.name), kind="series" if len(axes) == 1 else ("image" if is_image else "map"),
        shape=list(array.shape), dtype=array.dtype.name, pooledAxes=list(axes), size=list(size),
        channels=[_channel_name(c, count, loaded) for c in chosen], channelIndex=chosen, channelCount=count,
        colour=bool(is_image and len(chosen) in (3, 4) and chosen[:3] == [0, 1, 2]),
        range=[lo, hi], exact=_region_json(exact), requested=_region_json(shown), input=encode(cut),
        overview=None if whole else _input_preview(array, axes, chosen, size, (lo, hi), band_bytes),
        panels=panels, palette=_palette(),
    )
    return payload


def _exact_region(shown: Region, spans: list, size: tuple[int, int]) -> Region:
    """The cells the page holds exactly: the region shown and every cell its windows read."""
    return _union(shown, [Region(sy0, sx0, sy1 - sy0, sx1 - sx0) for (_, _, sy0, sy1), (_, _, sx0, sx1) in spans],
                  size)


def _extremes(array: np.ndarray, axes: tuple[int, ...], chosen: list[int], band_bytes: int) -> np.ndarray:
    """The smallest and largest finite value of each band of the chosen planes, in the array's dtype
    (none where no value is finite): what `value_range` and `image_range` read of the whole, read
    band by band."""
    found = []
    for start, stop in _runs(array, axes, 1, band_bytes):
        grid = _cut(array, axes, chosen, *_along(axes, (start, stop), None))
        if grid.dtype.kind == "f":
            grid = grid[np.isfinite(grid)]
        if grid.size:
            found += [grid.min(), grid.max()]
    return np.array(found, dtype=array.dtype)


def _runs(array: np.ndarray, axes: tuple[int, ...], multiple: int, band_bytes: int) -> Iterator[tuple[int, int]]:
    """[start, stop) runs along the first pooled axis, each about `band_bytes` of input and (but the
    last) a multiple of `multiple` long."""
    n = array.shape[axes[0]]
    rows = _multiple_of(band_bytes // max(1, array.nbytes // max(n, 1)), multiple)
    for start in range(0, n, rows):
        yield start, min(n, start + rows)


def _multiple_of(rows: int, multiple: int) -> int:
    """`rows` (at least 1) rounded up to a multiple of `multiple`.

    >>> _multiple_of(0, 1), _multiple_of(10, 4), _multiple_of(12, 4)
    (1, 12, 12)
    """
    return multiple * max(1, math.ceil(rows / multiple))


def _along(axes: tuple[int, ...], along: tuple[int, int] | None, across: tuple[int, int] | None) -> tuple:
    """`_cut`'s (rows, columns) for a range `along` the first pooled axis and `across` the other
    (a series has no other)."""
    return (along, across) if len(axes) == 2 else (None, along)


def _one_array(source: Path, settings: PoolSettings, loaded: io.Loaded | None) -> tuple[io.Loaded, np.ndarray]:
    """The input's one array of real numbers (a PoolError for several, or for other dtypes), decoded
    unless it is given."""
    if loaded is None:
        loaded = load_input(source, settings)
    if len(loaded.arrays) != 1:
        raise PoolError(f"{source}: holds {len(loaded.arrays)} arrays; the inspector shows one, save it as .npy")
    array = np.asarray(next(iter(loaded.arrays.values())))
    if array.dtype.kind not in "biuf":
        raise PoolError(f"{source}: dtype {array.dtype} cannot be pooled; save real numbers")
    return loaded, array


def _shown_axes(source: Path, plans: list[PoolPlan]) -> tuple[int, ...]:
    """The pooled axes every variant shares: one or two of them (a PoolError otherwise)."""
    axes = plans[0].pooled_axes
    if any(p.pooled_axes != axes for p in plans) or len(axes) not in (1, 2):
        raise PoolError(f"{source}: the inspector shows 1-D or 2-D pooling, not {len(axes)}-D;"
                        f" pool one or two axes ({param('axes')})")
    return axes


def _chosen_channels(channels: list[int] | None, count: int, kind: str) -> list[int]:
    if channels is None:
        return list(range(count if kind == "image" else min(count, MAX_CHANNELS)))
    for c in channels:
        if not 0 <= c < count:
            raise PoolError(f"{param('channel')} {c} is out of range: the input has {count} channels;"
                            f" use 0..{count - 1}")
    return list(dict.fromkeys(channels))


def _channel_name(c: int, count: int, loaded: io.Loaded) -> str:
    if loaded.kind == "image" and count in (3, 4):
        return "RGBA"[c]
    return f"channel {c}" if count > 1 else "value"


def _region(size: tuple[int, int], region: tuple[int, int, int, int] | None, exact_pixels: int) -> Region:
    """The exact region the user asked for, or the whole plane when it is small enough, else the centre."""
    h, w = size
    if region is not None:
        y, x, rh, rw = region
        if rh < 1 or rw < 1 or not (0 <= y < h and 0 <= x < w):
            raise PoolError(f"{param('region')} {y},{x},{rh},{rw} is outside the {h}x{w} input;"
                            " give Y,X,H,W with Y, X inside it")
        rh, rw = min(rh, h - y), min(rw, w - x)
        check_region((y, x, rh, rw), exact_pixels)
        return Region(y, x, rh, rw)
    if h * w <= exact_pixels:
        return Region(0, 0, h, w)
    rh, rw = min(h, REGION_SIDE), min(w, REGION_SIDE if h > 1 else REGION_SIDE * REGION_SIDE)
    return Region((h - rh) // 2, (w - rw) // 2, rh, rw)


def check_region(region: tuple[int, int, int, int], exact_pixels: int = EXACT_PIXELS) -> None:
    """A PoolError where the exact region Y, X, H, W holds more cells than a page holds exactly
    (`exact_pixels`: as many as the largest input shown whole).

    >>> check_region((0, 0, 1024, 1024))
    >>> check_region((5, 0, 1, 2_000_000))
    Traceback (most recent call last):
    ...
    poolcli.errors.PoolError: region 5,0,1,2000000 holds 2,000,000 cells; a page holds at most 1,048,576 \
exactly (e.g. 1024x1024): give a smaller H,W
    """
    y, x, h, w = region
    if h * w > exact_pixels:
        side = math.isqrt(exact_pixels)
        raise PoolError(f"{param('region')} {y},{x},{h},{w} holds {h * w:,} cells; a page holds at most"
                        f" {exact_pixels:,} exactly (e.g. {side}x{side}): give a smaller H,W")


def _region_json(region: Region) -> dict:
    return dict(y=region.y, x=region.x, h=region.h, w=region.w)


def _union(shown: Region, spans: list[Region], size: tuple[int, int]) -> Region:
    """The input cells the page must hold: the region shown and every cell its windows read."""
    y0 = min([shown.y] + [s.y for s in spans])
    x0 = min([shown.x] + [s.x for s in spans])
    y1 = max([shown.y + shown.h] + [s.y + s.h for s in spans])
    x1 = max([shown.x + shown.w] + [s.x + s.w for s in spans])
    y0, x0, y1, x1 = max(y0, 0), max(x0, 0), min(y1, size[0]), min(x1, size[1])
    return Region(y0, x0, y1 - y0, x1 - x0)


def _outputs_over(g: AxisGeometry, lo: int, length: int) -> tuple[int, int, int, int]:
    """(first, stop) of the outputs drawn over input cells [lo, lo + length) (output o is drawn on
    [o*s - pad_lo, (o+1)*s - pad_lo); a region at an edge of the axis takes the outputs drawn on the
    padding beyond it), and the input span [start, stop) their taps read.

    >>> g = plan_pool((10,), 3, 2, padding=1).axes[0]
    >>> _outputs_over(g, 0, 10), _outputs_over(g, 4, 2), _outputs_over(plan_pool((11,), 2).axes[0], 10, 1)
    ((0, 5, -1, 10), (2, 4, 3, 8), (4, 5, 8, 10))
    """
    first = 0 if lo <= 0 else max(0, (lo + g.pad_lo) // g.stride)  # at an edge: the outputs drawn on padding too
    last = g.out - 1 if lo + length >= g.size else min(g.out - 1, (lo + length - 1 + g.pad_lo) // g.stride)
    first = min(first, last)  # cells past the last output (a floor mode's rest): that output, the nearest
    return first, last + 1, first * g.stride - g.pad_lo, last * g.stride - g.pad_lo + g.span


def _cut(values: np.ndarray, axes: tuple[int, ...], chosen: list[int], rows: tuple[int, int] | None,
         cols: tuple[int, int] | None) -> np.ndarray:
    """(chosen planes, rows, columns) of `values` (a series has one row), sliced before it is copied."""
    index = [slice(None)] * values.ndim
    if len(axes) == 2 and rows is not None:
        index[axes[0]] = slice(*rows)
    if cols is not None:
        index[axes[-1]] = slice(*cols)
    grid = planes(values[tuple(index)], axes)[chosen]
    return grid if len(axes) == 2 else grid[:, None, :]


def _routing(array: np.ndarray, plan: PoolPlan, spec: PoolSpec, axes: tuple[int, ...], chosen: list[int],
             exact: tuple) -> np.ndarray:
    """What `pool_backward` of ones routes to each cell of the exact region, computed from the
    windows that reach the region only (memory of the region, not of a large input)."""
    rows, cols = exact
    ranges = {axes[-1]: cols} if len(axes) == 1 else {axes[0]: rows, axes[1]: cols}
    grad = region_backward(array, plan, spec, ranges, backward_with)
    return _cut(grad, axes, chosen, None, None)


def _spans(plan: PoolPlan, shown: Region) -> list[tuple[int, int, int, int]]:
    """Per axis (rows, columns) the outputs drawn over the region shown and the input span they read."""
    geometries = plan.sliding
    spans = [(0, 1, 0, 1)] if len(geometries) == 1 else []
    ranges = [(shown.y, shown.h), (shown.x, shown.w)][-len(geometries):]
    return spans + [_outputs_over(g, lo, length) for g, (lo, length) in zip(geometries, ranges)]


def _panel(array, axes, chosen, settings: PoolSettings, spec: PoolSpec, plan: PoolPlan, spans, exact,
           preview_range: tuple[float, float] | None, band_bytes: int) -> dict:
    """One pooled result: its geometry, and its values, winners and routing over the exact region (with
    a preview of the whole, on `preview_range` or its own for a mode whose results grow, when one is asked)."""
    record = MODES[plan.mode]
    (oy0, oy1, _, _), (ox0, ox1, _, _) = spans
    out_size = (plan.out_shape[axes[0]] if len(axes) == 2 else 1, plan.out_shape[axes[-1]])
    steps = None if preview_range is None else _preview_steps(out_size)
    pooled = _pooled(array, axes, chosen, plan, spec.ceil_mode, spans, steps, band_bytes)
    values = pooled.values
    overview = None
    if preview_range is not None and steps is not None and pooled.means is not None:
        overview = _preview(pooled.means, steps, value_range(values) if record.grows else preview_range)
    grad = None
    if record.routes:
        with np.errstate(all="ignore"):
            grad = _narrow(_routing(array, plan, spec, axes, chosen, exact))
    axis_data = _axis_data(plan, record.divisor, [(lo, hi) for lo, hi, _, _ in spans][-len(plan.sliding):],
                           spec.ceil_mode)
    return dict(
        mode=plan.mode, window=list(settings.window), label=_label(plan), dtype=values.dtype.name,
        reducer=record.reducer, keeps=record.keeps, power=record.power, routes=record.routes, formula=record.formula,
        divisor=record.divisor, divisorOverride=plan.divisor_override, countIncludePad=plan.count_include_pad,
        padMode=plan.pad_mode, nanPolicy=plan.nan_policy, p=plan.p, grows=record.grows, axes=axis_data,
        region=dict(y=oy0, x=ox0, h=oy1 - oy0, w=ox1 - ox0), range=list(value_range(values)),
        values=encode(values), indices=None if pooled.indices is None else encode(pooled.indices),
        grad=None if grad is None else encode(grad), overview=overview,
    )


@dataclass(frozen=True)
class _Pooled:
    """What the page shows of one pooled result: the values (and winners) over the region, the block
    means of the whole for its preview."""

    values: np.ndarray
    indices: np.ndarray | None
    means: np.ndarray | None


def _pooled(array, axes, chosen, plan: PoolPlan, ceil_mode: bool, spans, steps: tuple[int, int] | None,
            band_bytes: int) -> _Pooled:
    """Pool `array` band by band along its first pooled axis (`engine.bands`: the bits of pooling it
    at once, in the memory of one band), keeping the outputs `spans` draws (their winners as flat
    indices into the whole plane) and, given preview `steps`, the block means of every output."""
    geometry, record = plan.sliding[0], MODES[plan.mode]
    whole = spec_of_plan(plan, ceil_mode)
    (oy0, oy1, _, _), (ox0, ox1, _, _) = spans
    along, across = ((oy0, oy1), (ox0, ox1)) if len(axes) == 2 else ((ox0, ox1), None)
    grid_axis = 3 - len(axes)  # the first pooled axis in a (planes, rows, columns) grid
    multiple = 1 if steps is None else steps[grid_axis - 1]
    rows = _multiple_of(max(_band_outputs(array, plan, band_bytes), fewest_rows(geometry.window)), multiple)
    row_cells = math.prod(array.shape[a] for a in axes[1:])  # flat index of one step along the first axis
    values, indices, means = [], [], []
    with np.errstate(all="ignore"), _whole_magnitudes(array, axes, plan, band_bytes):
        for piece in bands(geometry, rows, plan.pad_mode):
            block = array[(slice(None),) * geometry.axis + (piece.read,)]
            result = pool_with(whole.but(padding=[piece.pads, *whole.padding[1:]], return_indices=record.indices),
                               block)
            pooled, winners = result if record.indices else (result, None)
            own = (slice(None),) * geometry.axis + (slice(piece.skip, piece.skip + piece.rows),)
            lo, hi = max(along[0], piece.out.start), min(along[1], piece.out.stop)
            if lo < hi:
                inside = _along(axes, (lo - piece.out.start, hi - piece.out.start), across)
                values.append(_cut(pooled[own], axes, chosen, *inside))
                if winners is not None:
                    found = _cut(winners[own], axes, chosen, *inside)
                    indices.append(np.where(found >= 0, found + piece.read.start * row_cells, found))
            if steps is not None:
                means.append(_block_means(_cut(pooled[own], axes, chosen, None, None), steps))
    plane = math.prod(array.shape[a] for a in axes)
    winners = np.concatenate(indices, axis=grid_axis) if indices else None
    if winners is not None and plane <= 2**31:
        winners = winners.astype(np.int32)  # flat in the plane: exact at any size
    return _Pooled(np.concatenate(values, axis=grid_axis), winners,
                   np.concatenate(means, axis=grid_axis) if means else None)


def _band_outputs(array: np.ndarray, plan: PoolPlan, band_bytes: int) -> int:
    """How many outputs along the first pooled axis a band of about `band_bytes` of input gives."""
    geometry = plan.sliding[0]
    row = array.nbytes // max(1, array.shape[geometry.axis])
    return (band_bytes // max(1, row) - geometry.span) // geometry.stride


def _whole_magnitudes(array: np.ndarray, axes: tuple[int, ...], plan: PoolPlan,
                      band_bytes: int) -> contextlib.AbstractContextManager:
    """lp with p > 2 scales its p-norm judged on the whole input (its smallest and largest finite
    non-zero |x|): found band by band, so each band pools as the whole does."""
    if MODES[plan.mode].power != "p" or plan.p <= 2:
        return contextlib.nullcontext()
    work = work_dtype(array.dtype, plan.mode)
    parts = (finite_magnitudes(np, array[(slice(None),) * axes[0] + (slice(start, stop),)], work)
             for start, stop in _runs(array, axes, 1, band_bytes))
    found = [part for part in parts if part is not None]
    return magnitudes_of_whole((min(f[0] for f in found), max(f[1] for f in found)) if found else None)


def _axis_data(plan: PoolPlan, divides: bool, outputs: list[tuple[int, int]], ceil_mode: bool = False) -> list[dict]:
    """Per pooled axis its geometry, the divisors of outputs [first, stop) (`divisorFrom`: the first),
    and for edge/reflect padding the input cell each pad cell copies (`padBefore`, `padAfter`):
    what the page looks up over its region, never a list as long as the axis (nor computed as one).

    >>> plan = plan_pool((10,), 3, 2, padding=1, pad_mode="edge", count_include_pad=False)
    >>> [(a["divisors"], a["divisorFrom"], a["padBefore"], a["padAfter"]) for a in _axis_data(plan, True, [(3, 5)])]
    [([3, 3], 3, [0], [9])]
    """
    axis_data = []
    for g, (first, stop) in zip(plan.sliding, outputs):
        before, after = _pad_sources(g, plan.pad_mode)
        axis_data.append(dict(
            size=g.size, window=g.window, stride=g.stride, dilation=g.dilation, padLo=g.pad_lo, padHi=g.pad_hi,
            out=g.out, span=g.span, divisorFrom=first,
            divisors=_divisors(plan, g, first, stop, ceil_mode) if divides else None,
            padBefore=before, padAfter=after))
    return axis_data


def _divisors(plan: PoolPlan, g: AxisGeometry, first: int, stop: int, ceil_mode: bool) -> list[int]:
    """The divisors of outputs [first, stop) along `g`: those of the band of them (`engine.bands`: a
    band pools and divides as the whole does), so the work is the band's, not the axis's."""
    last = stop == g.out or (stop - 1) * g.stride - g.pad_lo + g.span > g.size  # reads the high padding
    piece = band(g, first, g.out if last else stop, plan.pad_mode)
    part = plan_pool((piece.read.stop - piece.read.start,), g.window, g.stride, padding=[piece.pads],
                     dilation=g.dilation, ceil_mode=ceil_mode, count_include_pad=plan.count_include_pad,
                     pad_mode=plan.pad_mode)
    counts = divisor_counts(with_materialised_padding(part) if plan.pad_mode != "zeros" else part)[0]
    return np.asarray(counts[piece.skip:piece.skip + stop - first]).astype(int).tolist()


def _pad_sources(g: AxisGeometry, pad_mode: str) -> tuple[list[int] | None, list[int] | None]:
    """For edge/reflect padding, the input cell each pad cell copies, before and after the axis: the
    padding of the cells the pads copy only (the pad + 1 at each end, or all where a pad outgrows the axis).

    >>> g = plan_pool((6,), 5, padding=2).axes[0]
    >>> _pad_sources(g, "reflect"), _pad_sources(g, "edge"), _pad_sources(g, "zeros")
    (([2, 1], [4, 3]), ([0, 0], [5, 5]), (None, None))
    >>> _pad_sources(plan_pool((2,), 5, padding=2).axes[0], "reflect")  # pads longer than the axis
    ([0, 1], [0, 1])
    """
    if pad_mode == "zeros":
        return None, None
    head = g.size if g.pad_lo >= g.size else g.pad_lo + 1
    tail = g.size if g.pad_hi >= g.size else g.pad_hi + 1
    before = np.pad(np.arange(head), (g.pad_lo, 0), mode=pad_mode)[:g.pad_lo]  # type: ignore[call-overload]
    after = np.pad(np.arange(g.size - tail, g.size), (0, g.pad_hi), mode=pad_mode)[tail:]  # type: ignore[call-overload]
    return before.astype(int).tolist(), after.astype(int).tolist()


def _narrow(values: np.ndarray) -> np.ndarray:
    """The smallest of uint8, uint16 and float32 that holds every value exactly (routing counts are
    small integers), else the values as given."""
    for dtype in (np.uint8, np.uint16, np.float32):
        with np.errstate(invalid="ignore"):
            small = values.astype(dtype)
        if np.array_equal(small, values, equal_nan=dtype == np.float32):
            return small
    return values


def _label(plan: PoolPlan) -> str:
    """'max k=2 s=2 p=1 d=2 -> 256x256': the geometry the plan resolved."""
    def compact(values) -> str:
        values = [int(v) for v in values]
        return str(values[0]) if len(set(values)) == 1 else "x".join(map(str, values))

    g = plan.sliding
    text = f"{plan.mode} k={compact(a.window for a in g)} s={compact(a.stride for a in g)}"
    if any(a.pad_lo or a.pad_hi for a in g):
        text += " pad=" + "x".join(f"{a.pad_lo},{a.pad_hi}" for a in g)
        if plan.pad_mode != "zeros":
            text += f" ({plan.pad_mode})"
    if any(a.dilation != 1 for a in g):
        text += f" d={compact(a.dilation for a in g)}"
    if MODES[plan.mode].power == "p":
        text += f" p={plan.p:g}"
    return text + " -> " + "x".join(str(a.out) for a in g)


def _input_preview(array, axes, chosen, size: tuple[int, int], shown: tuple[float, float], band_bytes: int) -> dict:
    """The preview of the chosen planes of the input, read band by band."""
    steps, grid_axis = _preview_steps(size), 3 - len(axes)
    means = [_block_means(_cut(array, axes, chosen, *_along(axes, run, None)), steps)
             for run in _runs(array, axes, steps[grid_axis - 1], band_bytes)]
    return _preview(np.concatenate(means, axis=grid_axis), steps, shown)


def _preview_steps(size: tuple[int, int]) -> tuple[int, int]:
    """The (rows, columns) of the blocks of a preview of a plane of `size`: at most PREVIEW_SIDE a side.

    >>> _preview_steps((1300, 1400)), _preview_steps((1, 8_000_000))
    ((3, 3), (1, 15625))
    """
    step = max(1, math.ceil(max(size) / PREVIEW_SIDE))
    return (step, step) if size[0] > 1 else (1, step)


def _block_means(grid: np.ndarray, steps: tuple[int, int]) -> np.ndarray:
    """The means of `steps` blocks of (planes, rows, columns) `grid` (partial blocks at its ends)."""
    with np.errstate(all="ignore"):
        return pool(grid, steps, axes=(1, 2), mode="avg", ceil_mode=True, count_include_pad=False)


def _preview(small: np.ndarray, steps: tuple[int, int], shown: tuple[float, float]) -> dict:
    """A display-only picture of a whole plane (of a page that holds only a region exactly): its
    block means `small` as codes 0..PREVIEW_CODES on the range `shown` (specials apart)."""
    lo, hi = shown
    with np.errstate(all="ignore"):
        unit = np.clip((small - lo) / ((hi - lo) or 1.0), 0.0, 1.0)
        codes = np.round(np.nan_to_num(unit) * PREVIEW_CODES).astype(np.uint8)
    codes[np.isnan(small)] = PREVIEW_CODES + 1
    codes[small == np.inf] = PREVIEW_CODES + 2
    codes[small == -np.inf] = PREVIEW_CODES + 3
    return dict(step=list(steps), range=[lo, hi], data=encode(codes))


def _palette() -> dict:
    return dict(viridis=VIRIDIS.astype(int).tolist(), nan=list(NAN_COLOR), posinf=list(POSINF_COLOR),
                neginf=list(NEGINF_COLOR))
