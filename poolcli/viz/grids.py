"""Grids of images: comparison grids, side by side, feature-map montages, a stand-alone colour bar."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
from PIL import Image, ImageDraw

from ..errors import PoolError
from .colors import abs_difference, checked_cell, drawable, finite_value_range, image_range, special_legend, value_range
from .compose import Bar, TileSpec, compose, heat_tile, render, tile_scale
from .style import (
    BACKGROUND,
    DEFAULT_CHANNELS,
    LABEL_PAD,
    MARGIN,
    MAX_FONT,
    PLOT_FONT,
    RGB,
    SCALES,
    TEXT,
    Box,
    Cell,
    Figure,
    PlotAxes,
)
from .text import builtin_font, dims, fmt


def stack(parts: Sequence[tuple[str, Figure]]) -> Figure:
    """Figures one under another, each under a title band ("title", k, 0).

    The boxes and plots of part k keep their roles and columns; their rows follow those of
    the parts above (part k's row r is row r + the rows of parts 0..k-1). ``labels``:
    each part's title, then its labels.

    >>> one = comparison_grid(np.zeros((2, 2)), [[Cell("a", np.zeros((1, 1)))]])
    >>> both = stack([("first", one), ("second", one)])
    >>> both.box("cell", 1, 1).top > both.box("cell", 0, 1).top, both.labels[:2]
    (True, ('first', 'original 2x2'))
    """
    font = builtin_font(MAX_FONT)
    band = MAX_FONT + 2 * LABEL_PAD
    width = max(figure.image.width for _, figure in parts)
    height = sum(figure.image.height + band for _, figure in parts)
    canvas = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    boxes: list[Box] = []
    texts: list[str] = []
    plots: list[PlotAxes] = []
    top, rows = 0, 0
    for k, (title, figure) in enumerate(parts):
        draw.text((MARGIN, top + LABEL_PAD), title, fill=TEXT, font=font)
        boxes.append(Box("title", k, 0, MARGIN, top, width - MARGIN, top + band))
        texts += [title, *figure.labels]
        canvas.paste(figure.image, (0, top + band))
        dy = top + band
        boxes += [
            replace(b, row=b.row + rows, top=b.top + dy, bottom=b.bottom + dy) for b in figure.boxes
        ]
        plots += [replace(p, row=p.row + rows, top=p.top + dy) for p in figure.plots]
        rows += 1 + max((b.row for b in figure.boxes if b.role != "legend"), default=0)
        top += band + figure.image.height
    return Figure(canvas, tuple(boxes), parts[0][1].scale, tuple(texts), tuple(plots))


def comparison_grid(
    original: np.ndarray,
    rows: Sequence[Sequence[Cell]],
    *,
    kind: str = "image",
    diff: bool = False,
    original_label: str | None = None,
) -> Figure:
    """The original, then each pooled result stretched back to the original's size.

    ``rows`` is one list of cells per row (e.g. one row per mode, one cell per window).
    Tile (row 0, col 0) is the original ("original"); cell j of row i is tile
    ("cell", i', j + 1) where i' = i, or 2 i with ``diff``, which puts under each row a
    row of |original - result| heat maps ("diff", 2 i + 1, j + 1) on one shared scale,
    with its colour bar beside every diff row. kind="map" draws 2-D feature maps through
    viridis on the finite range of the original and every cell, with a colour bar beside
    every row of them. NaN and ±inf anywhere are drawn in their own colours and named in
    the legend.

    >>> image = np.arange(16, dtype=np.uint8).reshape(4, 4)
    >>> pooled = image.reshape(2, 2, 2, 2).max(axis=(1, 3))
    >>> figure = comparison_grid(image, [[Cell("max", pooled)]], diff=True)
    >>> [box.role for box in figure.boxes if not box.role.startswith(("label", "colorbar-"))]
    ['original', 'cell', 'diff', 'colorbar']
    >>> figure.labels
    ('original 4x4', 'max', '|diff| vs original', '|diff|')
    """
    original = drawable(original, kind, "original")
    pooled = [[checked_cell(cell, original, kind) for cell in row] for row in rows]
    every_cell = [p for row in pooled for p in row]
    lo, hi = image_range(original) if kind == "image" else value_range(original, *every_cell)
    diffs = [[abs_difference(original, p) for p in row] for row in pooled] if diff else []
    every_diff = [d for row in diffs for d in row]
    dmax = value_range(*every_diff)[1] if diff else None
    bars = _comparison_bars(max(1, len(pooled)), (lo, hi) if kind == "map" else None, dmax)
    columns = 1 + max((len(row) for row in pooled), default=0)
    scale, size = tile_scale(original.shape[:2], columns, bars)

    def tile(role: str, label: str, values: np.ndarray) -> TileSpec:
        return TileSpec(role, label, render(values, original.shape[:2], size, kind, lo, hi))

    grid: list[list[TileSpec | None]] = []
    for i, row in enumerate(rows):
        cells: list[TileSpec | None] = [tile("cell", cell.label, values)
                                        for cell, values in zip(row, pooled[i], strict=True)]
        grid.append([None, *cells])
        if diffs:
            grid.append([None, *_diff_tiles(diffs[i], size, dmax)])
    grid = grid or [[None]]
    grid[0][0] = tile("original", original_label or f"original {dims(original.shape)}", original)
    legend = special_legend(original, *every_cell, *every_diff)
    return compose([row + [None] * (columns - len(row)) for row in grid], scale=scale, bars=bars, legend=legend)


def _diff_tiles(diffs: list[np.ndarray], size: tuple[int, int], dmax: float | None) -> list[TileSpec | None]:
    return [TileSpec("diff", "|diff| vs original", heat_tile(d, size, 0.0, dmax or 0.0)) for d in diffs]


def _comparison_bars(rows: int, values: tuple[float, float] | None,
                     dmax: float | None) -> dict[int, list[Bar]]:
    """Each row's scale beside it: the values' (feature maps), the |diff|'s (the diff row under
    each row of cells, when there are diffs)."""
    stride = 1 if dmax is None else 2
    bars: dict[int, list[Bar]] = {}
    for i in range(rows):
        if values is not None:
            bars[stride * i] = [Bar("value", *values)]
        if dmax is not None:
            bars[stride * i + 1] = [Bar("|diff|", 0.0, dmax)]
    return bars


def side_by_side(
    before: np.ndarray,
    after: np.ndarray,
    *,
    labels: tuple[str, str] = ("input", "output"),
    kind: str = "image",
) -> Figure:
    """The input ("original", col 0) and its pooled output ("cell", col 1), labelled.

    The output is stretched to the input's size (nearest neighbour), as in
    `comparison_grid`.

    >>> figure = side_by_side(np.zeros((8, 8)), np.ones((4, 4)))
    >>> figure.box("cell", 0, 1).size == figure.box("original").size
    True
    """
    return comparison_grid(before, [[Cell(labels[1], after)]], kind=kind, original_label=labels[0])


def montage(
    maps: np.ndarray,
    *,
    channels: int | Sequence[int] = DEFAULT_CHANNELS,
    value_range: tuple[float, float] | None = None,
    scale: str = "shared",
    channel_ranges: Sequence[tuple[float, float]] | None = None,
    shape: tuple[int, int] | None = None,
) -> Figure:
    """Channels of a (C, H, W) feature map, tiled in a square-ish grid through viridis.

    ``channels``: the first N channels, or a list of channel indices. Tile k is
    ("channel", k // columns, k % columns), labelled with its channel index. ``shape``
    (H, W) stretches every channel to that size (nearest neighbour), e.g. a pooled map to
    its input's size. A 2-D map is one channel.

    ``scale="shared"``: one range for all channels (``value_range``, default their finite
    min..max) and one colour bar right of the grid; the legend prints the range.
    ``scale="channel"``: each channel on its own range (``channel_ranges``, one per
    chosen channel, default each channel's finite min..max), with its own colour bar
    right beside its tile (colour-bar col = tile col + 1).

    >>> figure = montage(np.arange(5 * 4 * 4.0).reshape(5, 4, 4), channels=4)
    >>> len(figure.roles("channel")), figure.box("channel", 1, 1).size
    (4, (256, 256))
    >>> figure.labels
    ('channel 0', 'channel 1', 'value', 'channel 2', 'channel 3', '4 of 5 channels, values 0 .. 63')
    >>> each = montage(np.arange(5 * 4 * 4.0).reshape(5, 4, 4), channels=2, scale="channel")
    >>> each.box("colorbar", 0, 1).left < each.box("channel", 0, 1).left
    True
    """
    maps = np.asarray(maps)
    if maps.ndim == 2:
        maps = maps[None]
    if maps.ndim != 3:
        raise PoolError(f"feature maps of shape {maps.shape} are not (C, H, W); pass CHW")
    if scale not in SCALES:
        raise PoolError(f"montage scale {scale!r} is not one of {SCALES}; use 'shared' or 'channel'")
    count = maps.shape[0]
    chosen = _chosen_channels(channels, count)
    first = drawable(maps[chosen[0]], "map", "feature map")
    shape = (int(shape[0]), int(shape[1])) if shape is not None else (first.shape[0], first.shape[1])
    columns = math.ceil(math.sqrt(len(chosen)))
    if scale == "shared":
        ranges = [value_range or finite_value_range(*(maps[c] for c in chosen))] * len(chosen)
        bars = {0: [Bar("value", *ranges[0])]}
        note = f"values {fmt(ranges[0][0])} .. {fmt(ranges[0][1])}"
    else:
        ranges = _channel_ranges(maps, chosen, channel_ranges)
        bars = {}
        for k, limits in enumerate(ranges):
            bars.setdefault(k // columns, []).append(Bar("", *limits, after=k % columns))
        note = "each channel on its own colour scale (the bar beside it)"
    layout_scale, size = tile_scale(shape, columns, bars)
    tiles = [
        TileSpec("channel", f"channel {c}", render(maps[c], shape, size, "map", *limits))
        for c, limits in zip(chosen, ranges, strict=True)
    ]
    grid = [tiles[i : i + columns] for i in range(0, len(tiles), columns)]
    legend: list[tuple[RGB | None, str]] = [(None, f"{len(chosen)} of {count} channels, {note}")]
    legend += special_legend(*(maps[c] for c in chosen))
    return compose(grid, scale=layout_scale, bars=bars, legend=legend)


def _chosen_channels(channels: int | Sequence[int], count: int) -> list[int]:
    """The first `channels` channels, or the listed ones; a PoolError for none or one out of range."""
    if isinstance(channels, int | np.integer):
        chosen = list(range(min(int(channels), count)))
    else:
        chosen = [int(c) for c in channels]
    if not chosen or any(not 0 <= c < count for c in chosen):
        raise PoolError(
            f"channels {channels!r} do not select channels of a map with {count}; "
            f"use indices in 0..{count - 1} or a count >= 1"
        )
    return chosen


def _channel_ranges(maps: np.ndarray, chosen: list[int], given: Sequence[tuple[float, float]] | None) -> list:
    """One (lo, hi) per chosen channel: the given ones, or each channel's finite min..max."""
    ranges = list(given) if given is not None else [finite_value_range(maps[c]) for c in chosen]
    if len(ranges) != len(chosen):
        raise PoolError(f"{len(ranges)} channel ranges for {len(chosen)} channels; pass one (lo, hi) per channel")
    return ranges


def colorbar(vmin: float, vmax: float, height: int = 256, *, title: str = "value") -> Figure:
    """A stand-alone colour bar: viridis from ``vmin`` (bottom) to ``vmax`` (top), ticked.

    ``height`` is the ramp's height in pixels (at least BAR_MIN_LINES lines of text).

    >>> bar = colorbar(0.0, 2.5, 100).box("colorbar")
    >>> bar.size
    (20, 100)
    """
    if height < 1:
        raise PoolError(f"colour bar height {height} must be >= 1; use a height >= 1")
    blank = TileSpec("blank", "", Image.new("RGB", (1, height), BACKGROUND))
    figure = compose([[blank]], scale=1, font_size=PLOT_FONT, bars={0: [Bar(title, vmin, vmax)]})
    boxes = tuple(
        Box(box.role, 0, 0, box.left, box.top, box.right, box.bottom)
        for box in figure.boxes
        if box.role.startswith("colorbar")
    )
    return Figure(figure.image, boxes, 1, figure.labels)

