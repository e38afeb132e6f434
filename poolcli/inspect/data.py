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
"""

from __future__ import annotations

import base64
import math
import zlib
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from .. import io
from ..core.geometry import AxisGeometry, PoolPlan, plan_pool, with_materialised_padding
from ..core.modes import MODES
from ..engine import output_shape, pool, pool_backward
from ..engine.divisors import divisor_counts
from ..engine.lazy import region_backward
from ..errors import PoolError, param, printable
from ..pipeline import PoolSettings, keywords_for
from ..viz import NAN_COLOR, NEGINF_COLOR, POSINF_COLOR, VIRIDIS, image_range, value_range

EXACT_PIXELS = 1024 * 1024  # inputs larger than this (per plane) show an overview and one exact region
REGION_SIDE = 512  # the default exact region of a large input: this square at the centre
PREVIEW_SIDE = 512  # the longest side of a large input's (or result's) preview
PREVIEW_CODES = 250  # a preview holds 0..250 on its display range; 251 NaN, 252 +inf, 253 -inf
MAX_CHANNELS = 16  # feature maps: the planes embedded unless channels are named
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
                  exact_pixels: int = EXACT_PIXELS) -> dict:
    """The page's data for `source` pooled with `settings` once per (mode, window)."""
    loaded, array = _one_array(source, settings)
    variants = [replace(settings, mode=mode, window=window) for mode in modes for window in windows]
    keywords = [keywords_for(v, loaded, array) for v in variants]
    plans = [plan_pool(array.shape, **k) for k in keywords]
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
    lo, hi = _scale(array, cut, axes, chosen, is_image, whole)
    panels = [_panel(array, axes, chosen, variant, kw, plan, span, (rows, cols), None if whole else (lo, hi))
              for variant, kw, plan, span in zip(variants, keywords, plans, spans)]
    payload = dict(
        title=printable(source.name), kind="series" if len(axes) == 1 else ("image" if is_image else "map"),
        shape=list(array.shape), dtype=array.dtype.name, pooledAxes=list(axes), size=list(size),
        channels=[_channel_name(c, count, loaded) for c in chosen], channelIndex=chosen, channelCount=count,
        colour=bool(is_image and len(chosen) in (3, 4) and chosen[:3] == [0, 1, 2]),
        range=[lo, hi], exact=_region_json(exact), requested=_region_json(shown), input=encode(cut),
        overview=None if whole else _preview(_cut(array, axes, chosen, None, None), size, (lo, hi)),
        panels=panels, palette=_palette(),
    )
    return payload


def _exact_region(shown: Region, spans: list, size: tuple[int, int]) -> Region:
    """The cells the page holds exactly: the region shown and every cell its windows read."""
    return _union(shown, [Region(sy0, sx0, sy1 - sy0, sx1 - sx0) for (_, _, sy0, sy1), (_, _, sx0, sx1) in spans],
                  size)


def _scale(array: np.ndarray, cut: np.ndarray, axes, chosen, is_image: bool, whole: bool) -> tuple[float, float]:
    """The range colours are drawn on: an image's, else the finite range of the channels shown."""
    if is_image:
        return image_range(array)
    return value_range(cut if whole else _cut(array, axes, chosen, None, None))


def _one_array(source: Path, settings: PoolSettings) -> tuple[io.Loaded, np.ndarray]:
    """The input's one array of real numbers (a PoolError for several, or for other dtypes)."""
    loaded = io.load(source, **settings.load_options())
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
        return Region(y, x, min(rh, h - y), min(rw, w - x))
    if h * w <= exact_pixels:
        return Region(0, 0, h, w)
    rh, rw = min(h, REGION_SIDE), min(w, REGION_SIDE if h > 1 else REGION_SIDE * REGION_SIDE)
    return Region((h - rh) // 2, (w - rw) // 2, rh, rw)


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


def _routing(array: np.ndarray, plan: PoolPlan, keywords: dict, axes: tuple[int, ...], chosen: list[int],
             exact: tuple) -> np.ndarray:
    """What `pool_backward` of ones routes to each cell of the exact region, computed from the
    windows that reach the region only (memory of the region, not of a large input)."""
    rows, cols = exact
    ranges = {axes[-1]: cols} if len(axes) == 1 else {axes[0]: rows, axes[1]: cols}
    grad = region_backward(array, plan, bool(keywords.get("ceil_mode")), ranges, pool_backward, output_shape)
    return _cut(grad, axes, chosen, None, None)


def _spans(plan: PoolPlan, shown: Region) -> list[tuple[int, int, int, int]]:
    """Per axis (rows, columns) the outputs drawn over the region shown and the input span they read."""
    geometries = plan.sliding
    spans = [(0, 1, 0, 1)] if len(geometries) == 1 else []
    ranges = [(shown.y, shown.h), (shown.x, shown.w)][-len(geometries):]
    return spans + [_outputs_over(g, lo, length) for g, (lo, length) in zip(geometries, ranges)]


def _panel(array, axes, chosen, settings: PoolSettings, keywords: dict, plan: PoolPlan, spans, exact,
           preview_range: tuple[float, float] | None) -> dict:
    """One pooled result: its geometry, and its values, winners and routing over the exact region (with
    a preview of the whole, on `preview_range` or its own for a mode whose results grow, when one is asked)."""
    record = MODES[plan.mode]
    (oy0, oy1, _, _), (ox0, ox1, _, _) = spans
    out_rows, out_cols = (oy0, oy1), (ox0, ox1)
    with np.errstate(all="ignore"):
        if record.indices:
            pooled, winners = pool(array, return_indices=True, **keywords)
            indices = _cut(winners, axes, chosen, out_rows, out_cols)
            plane = math.prod(array.shape[a] for a in axes)
            indices = indices.astype(np.int32) if plane <= 2**31 else indices  # flat in the plane: exact at any size
            del winners
        else:
            pooled, indices = pool(array, **keywords), None
        values = _cut(pooled, axes, chosen, out_rows, out_cols)
        out_size = (plan.out_shape[axes[0]] if len(axes) == 2 else 1, plan.out_shape[axes[-1]])
        overview = None
        if preview_range is not None:
            shown_range = value_range(values) if record.grows else preview_range
            overview = _preview(_cut(pooled, axes, chosen, None, None), out_size, shown_range)
        grad = None
        if record.routes:
            grad = _narrow(_routing(array, plan, keywords, axes, chosen, exact))
    axis_data = _axis_data(plan, record.divisor, [(lo, hi) for lo, hi, _, _ in spans][-len(plan.sliding):])
    return dict(
        mode=plan.mode, window=list(settings.window), label=_label(plan), dtype=pooled.dtype.name,
        reducer=record.reducer, keeps=record.keeps, power=record.power, routes=record.routes, formula=record.formula,
        divisor=record.divisor, divisorOverride=plan.divisor_override, countIncludePad=plan.count_include_pad,
        padMode=plan.pad_mode, nanPolicy=plan.nan_policy, p=plan.p, grows=record.grows, axes=axis_data,
        region=dict(y=oy0, x=ox0, h=oy1 - oy0, w=ox1 - ox0), range=list(value_range(values)),
        values=encode(values), indices=None if indices is None else encode(indices),
        grad=None if grad is None else encode(grad), overview=overview,
    )


def _axis_data(plan: PoolPlan, divides: bool, outputs: list[tuple[int, int]]) -> list[dict]:
    """Per pooled axis its geometry, the divisors of outputs [first, stop) (`divisorFrom`: the first),
    and for edge/reflect padding the input cell each pad cell copies (`padBefore`, `padAfter`):
    what the page looks up over its region, never a list as long as the axis.

    >>> plan = plan_pool((10,), 3, 2, padding=1, pad_mode="edge", count_include_pad=False)
    >>> [(a["divisors"], a["divisorFrom"], a["padBefore"], a["padAfter"]) for a in _axis_data(plan, True, [(3, 5)])]
    [([3, 3], 3, [0], [9])]
    """
    padded = with_materialised_padding(plan) if plan.pad_mode != "zeros" else plan
    counts = divisor_counts(padded) if divides else [None] * len(plan.axes)
    axis_data = []
    for g, padded_g, count, (first, stop) in zip(plan.sliding, padded.sliding, counts, outputs):
        source = padded_g.source_map
        axis_data.append(dict(
            size=g.size, window=g.window, stride=g.stride, dilation=g.dilation, padLo=g.pad_lo, padHi=g.pad_hi,
            out=g.out, span=g.span, divisorFrom=first,
            divisors=None if count is None else np.asarray(count[first:stop]).astype(int).tolist(),
            padBefore=None if source is None else source[:g.pad_lo].astype(int).tolist(),
            padAfter=None if source is None else source[g.pad_lo + g.size:].astype(int).tolist()))
    return axis_data


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


def _preview(grid: np.ndarray, size: tuple[int, int], shown: tuple[float, float]) -> dict:
    """A display-only picture of a whole plane (of a page that holds only a region exactly): block means
    of at most PREVIEW_SIDE a side, as codes 0..PREVIEW_CODES on the range `shown` (specials apart)."""
    step = max(1, math.ceil(max(size) / PREVIEW_SIDE))
    steps = (step, step) if size[0] > 1 else (1, step)
    with np.errstate(all="ignore"):
        small = pool(grid, steps, axes=(1, 2), mode="avg", ceil_mode=True, count_include_pad=False)
        lo, hi = shown
        unit = np.clip((small - lo) / ((hi - lo) or 1.0), 0.0, 1.0)
        codes = np.round(np.nan_to_num(unit) * PREVIEW_CODES).astype(np.uint8)
    codes[np.isnan(small)] = PREVIEW_CODES + 1
    codes[small == np.inf] = PREVIEW_CODES + 2
    codes[small == -np.inf] = PREVIEW_CODES + 3
    return dict(step=list(steps), range=[lo, hi], data=encode(codes))


def _palette() -> dict:
    return dict(viridis=VIRIDIS.astype(int).tolist(), nan=list(NAN_COLOR), posinf=list(POSINF_COLOR),
                neginf=list(NEGINF_COLOR))
