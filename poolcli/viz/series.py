"""1-D series: panels of pooled series over the original, window centres, envelopes of long series."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from ..errors import PoolError
from .colors import special_legend, value_range
from .compose import TileSpec, compose
from .style import (
    BACKGROUND,
    GRID_LINE,
    LINE_WIDTH,
    MARGIN,
    MARKER_RADIUS,
    MARKER_SPACING,
    MARKERS,
    MAX_WIDTH,
    NAN_COLOR,
    NEGINF_COLOR,
    ORIGINAL_COLOR,
    PANEL_HEIGHT,
    PLOT_FONT,
    PLOT_SIZE,
    POOLED_WIDTH,
    POSINF_COLOR,
    RGB,
    SERIES_COLORS,
    SPECIAL_MARK,
    TEXT,
    Figure,
    Series,
)
from .text import builtin_font, fmt, line_height, text_width


def window_centres(
    count: int, window: int, stride: int | None = None, *, pad_lo: int = 0, dilation: int = 1
) -> np.ndarray:
    """Input position at the centre of each of ``count`` pooling windows (1-D).

    Window o covers o*stride - pad_lo + j*dilation for j = 0..window-1.

    >>> window_centres(3, 2).tolist(), window_centres(2, 3, 2, pad_lo=1).tolist()
    ([0.5, 2.5, 4.5], [0.0, 2.0])
    """
    stride = window if stride is None else stride
    return np.arange(count) * stride - pad_lo + dilation * (window - 1) / 2


@dataclass(frozen=True)
class _Line:
    """One series as drawn: x, y, colour, line width and marker ("o", "s", "^", "D", "v")."""

    x: np.ndarray
    y: np.ndarray
    colour: RGB
    width: int
    marker: str | None = None


def _checked_series(values, name: str) -> np.ndarray:
    values = np.asarray(values)
    if values.dtype.kind not in "biuf":
        raise PoolError(f"{name} of dtype {values.dtype} cannot be drawn; pass real numbers")
    values = values.astype(np.float64)
    if values.ndim != 1 or values.size < 1:
        raise PoolError(f"series of shape {values.shape} is not 1-D; pass a 1-D array")
    return values


def _positions(series: Series) -> np.ndarray:
    if series.positions is None:
        return np.arange(series.values.size, dtype=np.float64)
    positions = np.asarray(series.positions, dtype=np.float64).ravel()
    if positions.shape != series.values.shape:
        raise PoolError(
            f"series {series.label!r} has {series.values.size} values but "
            f"{positions.size} positions; pass one position per value"
        )
    return positions


def series_style(index: int) -> tuple[RGB, str]:
    """Colour and marker of pooled series ``index``: no two of the first 35 alike.

    >>> series_style(0), series_style(7)
    (((214, 39, 40), 'o'), ((214, 39, 40), 's'))
    """
    return SERIES_COLORS[index % len(SERIES_COLORS)], MARKERS[index // len(SERIES_COLORS) % len(MARKERS)]


SERIES_NOTES = (" (gap in the line, ticked on the x axis)", " (triangle at the top edge)",
                " (triangle at the bottom edge)")


def series_plot(original: np.ndarray, pooled: Sequence[Series], *, title: str = "") -> Figure:
    """A 1-D original and its pooled series: one panel per pooled series, stacked.

    Panel i is tile ("plot", i, 0), labelled with series i's label: the original as a
    thin light line (`ORIGINAL_COLOR`), series i over it thicker in its own colour and
    marker (`SERIES_COLORS`, `MARKERS`), drawn at its ``positions`` (e.g.
    `window_centres`). Every panel has the same x and y scale (finite values only), so
    no series can hide another and panels compare at a glance. NaN breaks a line and is
    ticked on the x axis; ±inf is a triangle at the top or bottom edge. Without pooled
    series the original gets one panel. At most `MAX_WIDTH` pixels wide however long the
    series; long series are drawn as their per-pixel min..max envelope.

    >>> x = np.sin(np.arange(40) / 4)
    >>> y = x.reshape(10, 4).max(axis=1)
    >>> figure = series_plot(x, [Series("max k=4 s=4 -> 10", y, window_centres(10, 4))])
    >>> figure.box("plot").size[0] >= PLOT_SIZE[0], figure.labels
    (True, ('max k=4 s=4 -> 10', 'original', 'max k=4 s=4 -> 10'))
    """
    original = _checked_series(original, "original")
    series = [Series(s.label, _checked_series(s.values, f"series {s.label!r}"), s.positions) for s in pooled]
    x0 = np.arange(original.size, dtype=np.float64)
    lines = [_Line(x0, original, ORIGINAL_COLOR, LINE_WIDTH)]
    panels = []
    for i, s in enumerate(series):
        colour, marker = series_style(i)
        panels.append((s.label, [lines[0], _Line(_positions(s), s.values, colour, POOLED_WIDTH, marker)]))
    if not panels:
        panels = [("original", lines)]
    legend = [(ORIGINAL_COLOR, "original")] + [(series_style(i)[0], s.label) for i, s in enumerate(series)]
    legend += special_legend(original, *(s.values for s in series), notes=SERIES_NOTES)
    return _panels(panels, title=title, legend=legend, shared_y=True)


def gradient_series(
    original: np.ndarray, grad: np.ndarray, *, label: str = "dL/dx", title: str = ""
) -> Figure:
    """A 1-D series ("plot", 0, 0) above its gradient ("plot", 1, 0), each on its own scale.

    ``grad`` is dL/dx for dL/dy = 1, one value per input sample; its panel is labelled
    ``label`` and has its own y axis, so a gradient of 0..1 is not flattened against data
    in the hundreds.

    >>> x = np.arange(12.0) * 100
    >>> figure = gradient_series(x, np.full(12, 0.25), label="avg k=4 s=4: dL/dx")
    >>> figure.plot(1).y_range != figure.plot(0).y_range, figure.labels[:2]
    (True, ('original values', 'avg k=4 s=4: dL/dx'))
    """
    original = _checked_series(original, "original")
    grad = _checked_series(grad, "gradient")
    if grad.shape != original.shape:
        raise PoolError(
            f"gradient of shape {grad.shape} does not match the series' shape {original.shape}; "
            "pass pool_backward's result for this series"
        )
    x = np.arange(original.size, dtype=np.float64)
    colour, marker = series_style(0)
    panels = [
        ("original values", [_Line(x, original, SERIES_COLORS[-1], LINE_WIDTH + 1)]),
        (label, [_Line(x, grad, colour, POOLED_WIDTH - 1, marker)]),
    ]
    legend = [(SERIES_COLORS[-1], "original"), (colour, "dL/dx (lower panel, its own scale)")]
    legend += special_legend(original, grad, notes=SERIES_NOTES)
    return _panels(panels, title=title, legend=legend, shared_y=False)


def _panels(panels, *, title: str, legend, shared_y: bool) -> Figure:
    """Series panels, one per row, sharing the x scale (and the y scale if ``shared_y``)."""
    font = builtin_font(PLOT_FONT)
    every = [line for _, lines in panels for line in lines]
    x_range = _span(*(line.x for line in every), pad=0.0)
    y_ranges = [_span(*(line.y for line in lines), pad=0.05) for _, lines in panels]
    if shared_y:
        y_ranges = [_span(*(line.y for line in every), pad=0.05)] * len(panels)
    y_ticks = [_nice_ticks(lo, hi, 5) for lo, hi in y_ranges]
    left = 8 + max(text_width(fmt(t), font) for ticks in y_ticks for t in ticks)
    right = 16
    longest = max(line.x.size for line in every)
    width = int(min(MAX_WIDTH - 2 * MARGIN - left - right, max(PLOT_SIZE[0], 8 * longest)))
    height = PLOT_SIZE[1] if len(panels) == 1 else PANEL_HEIGHT
    tiles = []
    for (label, lines), y_range, ticks in zip(panels, y_ranges, y_ticks, strict=True):
        image, axes = _draw_plot(lines, (width, height), font, left, x_range, y_range, ticks)
        tiles.append([TileSpec("plot", label, image, axes)])
    return compose(tiles, scale=1, font_size=PLOT_FONT, legend=legend, title=title)


def _span(*arrays: np.ndarray, pad: float) -> tuple[float, float]:
    """Finite (lo, hi) of ``arrays`` widened by ``pad`` of the span (±0.5 when constant)."""
    lo, hi = value_range(*arrays)
    if not math.isfinite(hi - lo):  # beyond float64: the ticks cannot be spaced
        lo, hi = lo / 2, hi / 2
    if hi == lo:
        return lo - 0.5, hi + 0.5
    return lo - pad * (hi - lo), hi + pad * (hi - lo)


def _nice_ticks(lo: float, hi: float, count: int, *, integer: bool = False) -> np.ndarray:
    """About ``count`` round tick values inside [lo, hi], spaced 1, 2, 2.5 or 5 x 10^k.

    >>> _nice_ticks(-1.48, 1.58, 5).tolist()
    [-1.0, -0.5, 0.0, 0.5, 1.0, 1.5]
    >>> _nice_ticks(0, 119, 8, integer=True).tolist()
    [0.0, 20.0, 40.0, 60.0, 80.0, 100.0]
    """
    magnitude = 10.0 ** math.floor(math.log10((hi - lo) / count))
    steps = [m * magnitude for m in (1, 2, 2.5, 5, 10)]
    step = min(steps, key=lambda step: abs((hi - lo) / step - count))
    if integer:
        step = max(1.0, round(step))
    first, last = math.ceil(lo / step - 1e-9), math.floor(hi / step + 1e-9)
    return np.arange(first, last + 1) * step + 0.0


def _runs(finite: np.ndarray) -> list[np.ndarray]:
    """Index runs of consecutive True in ``finite``."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], finite.astype(np.int8), [0]])))
    return [np.arange(a, b) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def _envelope(px: np.ndarray, py: np.ndarray) -> np.ndarray:
    """A polyline through ``(px, py)`` (px ascending) with at most two points per pixel
    column: each column's lowest and highest value, so that long series keep their peaks."""
    column = np.floor(px).astype(np.int64)
    starts = np.flatnonzero(np.concatenate([[True], column[1:] != column[:-1]]))
    if len(starts) * 2 >= len(px):
        return np.stack([px, py], axis=1)
    low = np.minimum.reduceat(py, starts)
    high = np.maximum.reduceat(py, starts)
    first_is_low = py[starts] <= (low + high) / 2  # enter each column from the nearer end
    xs = np.repeat(column[starts].astype(np.float64), 2)
    ys = np.where(np.repeat(first_is_low, 2), np.stack([low, high], 1).ravel(), np.stack([high, low], 1).ravel())
    return np.stack([xs, ys], axis=1)


def _marker(draw, x: float, y: float, shape: str, colour: RGB, radius: int = MARKER_RADIUS) -> None:
    r = radius
    if shape == "s":
        draw.rectangle([x - r + 1, y - r + 1, x + r - 1, y + r - 1], fill=colour)
    elif shape == "^":
        draw.polygon([(x, y - r - 1), (x - r - 1, y + r), (x + r + 1, y + r)], fill=colour)
    elif shape == "v":
        draw.polygon([(x, y + r + 1), (x - r - 1, y - r), (x + r + 1, y - r)], fill=colour)
    elif shape == "D":
        draw.polygon([(x, y - r - 1), (x + r + 1, y), (x, y + r + 1), (x - r - 1, y)], fill=colour)
    else:
        draw.ellipse([x - r, y - r, x + r, y + r], fill=colour)


def _draw_plot(lines: Sequence[_Line], size, font, left: int, x_range, y_range, y_ticks):
    """Axes with tick labels, faint grid lines and each line; NaN ticked, ±inf as triangles.

    Returns the panel and its data area (left, top, width, height, x_range, y_range).
    """
    (x_lo, x_hi), (y_lo, y_hi) = x_range, y_range
    x_ticks = _nice_ticks(x_lo, x_hi, 8, integer=True)
    line_h = line_height(font)
    right, top, bottom = 16, line_h // 2, line_h + 8
    width, height = size
    plot = Image.new("RGB", (width + left + right, height + top + bottom), BACKGROUND)
    draw = ImageDraw.Draw(plot)
    axes = (left, top, width, height, (float(x_lo), float(x_hi)), (float(y_lo), float(y_hi)))

    def to_px(x, y):
        with np.errstate(all="ignore"):
            px = left + (np.asarray(x, np.float64) - x_lo) / (x_hi - x_lo) * (width - 1)
            py = top + (y_hi - np.asarray(y, np.float64)) / (y_hi - y_lo) * (height - 1)
        return px, py

    for tick in y_ticks:
        y = float(to_px(x_lo, tick)[1])
        draw.line([(left, y), (left + width - 1, y)], fill=GRID_LINE)
        draw.text((left - 6, y), fmt(tick), fill=TEXT, font=font, anchor="rm")
    for tick in x_ticks:
        x = float(to_px(tick, y_lo)[0])
        draw.line([(x, top + height), (x, top + height + 4)], fill=TEXT)
        text = str(int(tick)) if abs(tick) < 1e9 else fmt(tick)  # sample positions: whole numbers
        draw.text((x, top + height + 6), text, fill=TEXT, font=font, anchor="mt")
    draw.line([(left, top), (left, top + height), (left + width, top + height)], fill=TEXT)
    base = top + height - 1
    for line in lines:
        px, py = to_px(line.x, line.y)
        finite = np.isfinite(line.y) & np.isfinite(px)
        for run in _runs(finite):
            if len(run) > 1:
                points = _envelope(px[run], py[run])
                draw.line([tuple(p) for p in points], fill=line.colour, width=line.width, joint="curve")
            elif line.marker is None:  # a lone finite sample between gaps: a dot
                draw.ellipse([px[run[0]] - 1, py[run[0]] - 1, px[run[0]] + 1, py[run[0]] + 1], fill=line.colour)
        if line.marker is not None:
            points = np.flatnonzero(finite)
            if len(points) <= 1 or np.min(np.diff(px[points])) >= MARKER_SPACING:
                for i in points:
                    _marker(draw, px[i], py[i], line.marker, line.colour)
        # Values off the scale, at the edges: NaN ticks on the axis, +inf / -inf triangles.
        for mask, kind in ((np.isnan(line.y), "nan"), (np.isposinf(line.y), "+"), (np.isneginf(line.y), "-")):
            columns = np.unique(np.rint(px[mask & np.isfinite(px)]).astype(np.int64))
            for x in columns:
                if kind == "nan":
                    draw.line([(x, base - SPECIAL_MARK + 1), (x, base)], fill=NAN_COLOR, width=2)
                elif kind == "+":
                    _marker(draw, x, top + SPECIAL_MARK // 2, "^", POSINF_COLOR, SPECIAL_MARK // 2)
                else:
                    _marker(draw, x, base - SPECIAL_MARK // 2, "v", NEGINF_COLOR, SPECIAL_MARK // 2)
    return plot, axes

