"""Laying out tiles, colour bars and legends on one canvas (`compose`), at one scale for the whole figure."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from .colors import colormap_unit, composite, image_rgba, unit_interval, upsample_nearest
from .style import (
    BACKGROUND,
    BAR_MIN_LINES,
    BAR_WIDTH,
    GAP,
    LABEL_PAD,
    MARGIN,
    MAX_FONT,
    MAX_WIDTH,
    MIN_CELL,
    RGB,
    TEXT,
    TICK_LENGTH,
    Box,
    Figure,
    PlotAxes,
)
from .text import builtin_font, fmt, label_font_size, line_height, text_width, wrap


@dataclass(frozen=True)
class TileSpec:
    role: str
    label: str
    image: Image.Image  # RGB, the figure's tile size
    axes: tuple | None = None  # series panels: (left, top, width, height, x_range, y_range) in the tile


@dataclass(frozen=True)
class Bar:
    """A colour bar of its row, drawn right after tile column ``after`` (None: the last)."""

    title: str
    vmin: float
    vmax: float
    after: int | None = None


def _bar_width(bar: Bar, font) -> int:
    """Width of one colour bar with its tick labels and title."""
    ticks = max(text_width(fmt(bar.vmin), font), text_width(fmt(bar.vmax), font))
    return max(BAR_WIDTH + TICK_LENGTH + 3 + ticks, text_width(bar.title, font)) + GAP


def _gutters(bars: dict[int, list[Bar]], columns: int, font) -> list[int]:
    """Width of the colour-bar gutter after each tile column (0 where no bar follows it)."""
    widths = [0] * columns
    for row in bars.values():
        per_column = [0] * columns
        for bar in row:
            column = columns - 1 if bar.after is None else bar.after
            per_column[column] += _bar_width(bar, font)
        widths = [max(w, GAP + p if p else 0) for w, p in zip(widths, per_column, strict=True)]
    return widths


def tile_scale(
    shape: tuple[int, int],
    columns: int,
    bars: dict[int, list[Bar]],
    min_cell: int = MIN_CELL,
) -> tuple[float, tuple[int, int]]:
    """Display pixels per input pixel, and the tile size (width, height).

    Enlarge by the smallest integer that brings the shorter side to ``min_cell``, unless
    the figure would then be wider than MAX_WIDTH (or a tile taller); shrink when even
    1:1 does not fit.
    """
    height, width = shape
    reserved = 2 * MARGIN + (columns - 1) * GAP + sum(_gutters(bars, columns, builtin_font(MAX_FONT)))
    fit = min((MAX_WIDTH - reserved) / (columns * width), MAX_WIDTH / height)
    if fit >= 1:
        scale = min(max(1, math.ceil(min_cell / min(height, width))), math.floor(fit))
        return scale, (width * scale, height * scale)
    return fit, (max(1, math.floor(width * fit)), max(1, math.floor(height * fit)))


def resize_to(array: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize uint8 RGB/RGBA or float32 2-D ``array`` to ``size`` = (width, height).

    Nearest neighbour when enlarging (exact repetition for integer factors), box
    averaging when shrinking.
    """
    height, width = array.shape[:2]
    if (width, height) == size:
        return array
    resample = Image.Resampling.NEAREST if size[0] >= width else Image.Resampling.BOX
    return np.asarray(Image.fromarray(array).resize(size, resample))


def render(data: np.ndarray, shape: tuple[int, int], size, kind: str, lo: float, hi: float):
    """One tile of ``data`` (an original or a pooled result) at tile ``size``."""
    if kind == "map":
        unit = resize_to(upsample_nearest(unit_interval(data, lo, hi), shape), size)
        return Image.fromarray(colormap_unit(unit))
    rgba = resize_to(upsample_nearest(image_rgba(data, lo, hi), shape), size)
    return Image.fromarray(composite(rgba))


def heat_tile(values: np.ndarray, size, vmin: float, vmax: float) -> Image.Image:
    """A tile of 2-D ``values`` (already the input's height and width) through viridis."""
    return Image.fromarray(colormap_unit(resize_to(unit_interval(values, vmin, vmax), size)))


def _legend_lines(items: Sequence[tuple[RGB | None, str]], font, width: int):
    """Legend items (swatch colour or None, text) flowed into lines no wider than ``width``.

    Returns lines of (x offset, colour or None, text).
    """
    swatch = line_height(font)
    lines: list[list[tuple[int, RGB | None, str]]] = [[]]
    x = 0
    for colour, text in items:
        indent = swatch if colour is not None else 0
        first, *rest = wrap(text, font, max(1, width - indent))
        needed = indent + text_width(first, font)
        if x > 0 and x + needed > width:
            lines.append([])
            x = 0
        lines[-1].append((x, colour, first))
        x += needed + 2 * GAP
        for part in rest:
            lines.append([(indent, None, part)])
            x = indent + text_width(part, font) + 2 * GAP
    return [line for line in lines if line]


@dataclass(frozen=True)
class _Frame:
    """Where everything of a composed figure goes: tile and band sizes, column lefts, title,
    legend and canvas size, all from the tiles, their labels and the bars."""

    tile_w: int
    tile_h: int
    line: int
    columns: int
    labels: dict[tuple[int, int], list[str]]
    band: int  # the label band above each row of tiles
    lefts: list[int]
    content_w: int
    title_lines: list[str]
    title_h: int
    legend_lines: list
    legend_h: int
    body_h: int  # tiles, or the colour bars' ticks where taller
    width: int
    height: int

    @property
    def row_h(self) -> int:
        return self.band + self.body_h

    def row_top(self, r: int) -> int:
        return MARGIN + self.title_h + r * (self.row_h + GAP)


def _frame(grid, font, bars: dict[int, list[Bar]], legend, title: str) -> _Frame:
    tile_w, tile_h = next(tile for row in grid for tile in row if tile is not None).image.size
    line = line_height(font)
    columns = max(len(row) for row in grid)
    labels = {(r, c): wrap(tile.label, font, tile_w)
              for r, row in enumerate(grid) for c, tile in enumerate(row) if tile is not None}
    label_lines = max([len(lines) for lines in labels.values()] + [1 if bars else 0])
    band = label_lines * line + 2 * LABEL_PAD if label_lines else 0
    gutters = _gutters(bars, columns, font)
    content_w = columns * tile_w + (columns - 1) * GAP + sum(gutters)
    title_lines = wrap(title, font, content_w) if title else []
    title_h = len(title_lines) * line + GAP if title_lines else 0
    legend_lines = _legend_lines(legend, font, content_w)
    legend_h = GAP + len(legend_lines) * line if legend_lines else 0
    body_h = max(tile_h, BAR_MIN_LINES * line) if bars else tile_h  # room for the ticks
    height = 2 * MARGIN + title_h + len(grid) * (band + body_h) + (len(grid) - 1) * GAP + legend_h
    return _Frame(tile_w, tile_h, line, columns, labels, band,
                  [MARGIN + c * (tile_w + GAP) + sum(gutters[:c]) for c in range(columns)], content_w,
                  title_lines, title_h, legend_lines, legend_h, body_h, 2 * MARGIN + content_w, height)


class _Sheet:
    """The canvas being drawn, and every box, text and plot drawn on it, recorded as drawn."""

    def __init__(self, frame: _Frame, font) -> None:
        self.frame, self.font = frame, font
        self.canvas = Image.new("RGB", (frame.width, frame.height), BACKGROUND)
        self.draw = ImageDraw.Draw(self.canvas)
        self.boxes: list[Box] = []
        self.texts: list[str] = []
        self.plots: list[PlotAxes] = []

    def title(self, title: str) -> None:
        frame = self.frame
        for i, text in enumerate(frame.title_lines):
            self.draw.text((MARGIN, MARGIN + i * frame.line), text, fill=TEXT, font=self.font)
        self.boxes.append(Box("title", 0, 0, MARGIN, MARGIN, MARGIN + frame.content_w, MARGIN + frame.title_h - GAP))
        self.texts.append(title)

    def tile(self, r: int, c: int, tile: TileSpec) -> None:
        """The tile under its label (the text sits on the tile), and its plot axes if any."""
        frame, top, left = self.frame, self.frame.row_top(r), self.frame.lefts[c]
        first = top + frame.band - LABEL_PAD - len(frame.labels[r, c]) * frame.line
        for i, text in enumerate(frame.labels[r, c]):
            self.draw.text((left, first + i * frame.line), text, fill=TEXT, font=self.font)
        if tile.label:
            self.texts.append(tile.label)
        body = top + frame.band
        self.boxes.append(Box("label", r, c, left, top, left + frame.tile_w, body))
        self.canvas.paste(tile.image, (left, body))
        self.boxes.append(Box(tile.role, r, c, left, body, left + frame.tile_w, body + frame.tile_h))
        if tile.axes is not None:
            x0, y0, w, h, x_range, y_range = tile.axes
            self.plots.append(PlotAxes(r, c, left + x0, body + y0, w, h, x_range, y_range))

    def bars(self, r: int, bars: list[Bar]) -> None:
        """Row r's colour bars, each right after its tile column (and after the bars before it)."""
        frame, top = self.frame, self.frame.row_top(r)
        x_after = {c: frame.lefts[c] + frame.tile_w + GAP for c in range(frame.columns)}
        for bar in bars:
            column = frame.columns - 1 if bar.after is None else bar.after
            where = (x_after[column], top, frame.band, frame.body_h)
            self.boxes += _draw_bar(self.canvas, self.draw, bar, self.font, where, (r, column + 1))
            x_after[column] += _bar_width(bar, self.font)
            if bar.title:
                self.texts.append(bar.title)

    def legend(self, legend: Sequence[tuple[RGB | None, str]]) -> None:
        frame = self.frame
        top = frame.height - MARGIN - frame.legend_h
        self.boxes.append(_draw_legend(self.canvas, self.draw, frame.legend_lines, self.font, top))
        self.texts += [text for _, text in legend]

    def figure(self, scale: float) -> Figure:
        return Figure(self.canvas, tuple(self.boxes), scale, tuple(self.texts), tuple(self.plots))


def compose(
    grid: Sequence[Sequence[TileSpec | None]],
    *,
    scale: float,
    font_size: int | None = None,
    bars: dict[int, list[Bar]] | None = None,
    legend: Sequence[tuple[RGB | None, str]] = (),
    title: str = "",
) -> Figure:
    """Lay out equal tiles in rows, each under its label band; each colour bar right after
    the tile column it belongs to; the title above, the legend below. The single place
    that places anything, and so the one that records every text drawn."""
    bars = bars or {}
    tile_w = next(tile for row in grid for tile in row if tile is not None).image.size[0]
    font = builtin_font(font_size or label_font_size(tile_w))
    frame = _frame(grid, font, bars, legend, title)
    sheet = _Sheet(frame, font)
    if frame.title_lines:
        sheet.title(title)
    for r, row in enumerate(grid):
        for c, tile in enumerate(row):
            if tile is not None:
                sheet.tile(r, c, tile)
        sheet.bars(r, bars.get(r, []))
    if frame.legend_lines:
        sheet.legend(legend)
    return sheet.figure(scale)


def _ramp(height: int) -> np.ndarray:
    """Viridis ramp (height, BAR_WIDTH, 3): the high end on top."""
    unit = np.linspace(1.0, 0.0, height) if height > 1 else np.ones(1)
    return np.repeat(colormap_unit(unit)[:, None, :], BAR_WIDTH, axis=1)


def _draw_bar(canvas, draw, bar: Bar, font, where, place) -> list[Box]:
    """A colour bar: its title in the label band, the ramp beside the tiles, min/max ticks."""
    x, top, band, height = where
    row, col = place
    ramp_top = top + band
    line = line_height(font)
    if band and bar.title:
        draw.text((x, top + band - LABEL_PAD - line), bar.title, fill=TEXT, font=font)
    canvas.paste(Image.fromarray(_ramp(height)), (x, ramp_top))
    tick_x = x + BAR_WIDTH
    text_x = tick_x + TICK_LENGTH + 3
    bottom = ramp_top + height - 1
    for y, text, anchor in ((ramp_top, bar.vmax, "lt"), (bottom, bar.vmin, "lb")):
        draw.line([(tick_x, y), (tick_x + TICK_LENGTH - 1, y)], fill=TEXT)
        draw.text((text_x, y), fmt(text), fill=TEXT, font=font, anchor=anchor)
    right = x + _bar_width(bar, font) - GAP
    return [
        Box("colorbar-title", row, col, x, top, right, ramp_top),
        Box("colorbar", row, col, x, ramp_top, x + BAR_WIDTH, ramp_top + height),
        Box(
            "colorbar-ticks", row, col, tick_x, ramp_top, max(right, tick_x + 1), ramp_top + height
        ),
    ]


def _draw_legend(canvas, draw, lines, font, top: int) -> Box:
    """Legend lines: a colour swatch before each item that has one, then its text."""
    line = line_height(font)
    side = font.size
    y = top + GAP
    for items in lines:
        for x, colour, text in items:
            left = MARGIN + x
            if colour is not None:
                draw.rectangle([left, y + 2, left + side - 1, y + 1 + side], fill=colour)
                left += line
            draw.text((left, y), text, fill=TEXT, font=font)
        y += line
    return Box("legend", 0, 0, MARGIN, top + GAP, canvas.width - MARGIN, y)

