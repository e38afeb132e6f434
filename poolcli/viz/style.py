"""Sizes, colours and the records every figure returns (`Figure`, `Box`, `Cell`, `Series`, `PlotAxes`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from ..core.modes import names

MAX_WIDTH = 2048  # widest figure; wider layouts are shrunk. Also the tallest single tile.

MIN_CELL = 256  # a tile's shorter side is enlarged (integer factor) to at least this

MIN_FONT = 12  # smallest text; the size grows with the tile width ...

MAX_FONT = 24  # ... up to this

TILE_PER_FONT_PX = 20  # font size = tile width / TILE_PER_FONT_PX, clamped to the above

MARGIN = 12  # blank border around the figure

GAP = 10  # blank space between tiles, and between the tiles and the colour bars

LABEL_PAD = 6  # space above and below the label text in a label band

BAR_WIDTH = 20  # width of a colour bar's ramp

TICK_LENGTH = 5  # colour-bar tick marks

BAR_MIN_LINES = 4  # a colour bar is as tall as its row's tiles, and at least 4 text lines

GRADIENT_MIN_CELL = 512  # gradient maps enlarge further, so routed pixels are visible

CHECKER_PX = 8  # squares of the checkerboard that shows through transparent pixels

PLOT_SIZE = (960, 400)  # series plot area, before axes labels; width grows with the series

PANEL_HEIGHT = 240  # plot area height of each panel when a figure has several

PLOT_FONT = 14  # text size in series plots

LINE_WIDTH = 1  # the original series: thin and light, under ...

POOLED_WIDTH = 3  # ... each pooled series, drawn thicker, with markers when sparse

MARKER_RADIUS = 4  # pooled-value markers

MARKER_SPACING = 8  # markers only where points lie at least this many pixels apart

SPECIAL_MARK = 8  # size of the NaN ticks and ±inf triangles at a plot's edges

BACKGROUND = (255, 255, 255)

TEXT = (20, 20, 20)

# Values off every scale, in colours that neither viridis nor a grey image produces:
NAN_COLOR = (255, 0, 255)  # NaN: magenta

POSINF_COLOR = (255, 128, 0)  # +inf: orange

NEGINF_COLOR = (0, 90, 255)  # -inf: vivid blue

CHECKER = (255, 204)  # the two greys of the transparency checkerboard

GRID_LINE = (225, 225, 225)  # faint horizontal lines in series plots

ROUTE_COLORS = ((0, 200, 255), (255, 200, 0), (255, 40, 40))  # gradient from 1, 2, 3+ windows

DIM = 0.45  # gradient maps darken the image to this fraction of its brightness

ORIGINAL_COLOR = (140, 160, 185)  # the original series: a light grey-blue under the pooled ones

# Series plots: one colour per pooled series, in order, then again (from matplotlib's tab10,
# leaving out its orange, blue and pink, which +inf, -inf and NaN would be mistaken for).
SERIES_COLORS = (
    (214, 39, 40),
    (44, 160, 44),
    (148, 103, 189),
    (140, 86, 75),
    (23, 190, 207),
    (188, 189, 34),
    (80, 80, 80),
)

MARKERS = ("o", "s", "^", "D", "v")  # pooled-value markers, in turn with the colours

DEFAULT_CHANNELS = 16  # montage: how many leading channels are shown when not told

SCALES = ("shared", "channel")  # montage colour scales: one for all channels, or one each

ROUTING_MODES = frozenset(names(routes=True))  # modes whose gradient is routed

KINDS = ("image", "map")

CHUNK_ROWS = 512  # abs_difference works on this many rows at a time (bounded memory)

RGB = tuple[int, int, int]


@dataclass(frozen=True)
class Box:
    """Where one part of a figure was drawn: pixels [top:bottom, left:right].

    ``role`` names the part ("original", "cell", "diff", "label", "colorbar", ...);
    ``row`` and ``col`` its place in the figure's grid. A colour bar's ``col`` is the
    tile column it follows plus one (so a bar right of the whole grid has col = the
    number of tile columns).

    >>> box = Box("cell", 0, 1, left=10, top=20, right=14, bottom=22)
    >>> box.size, box.crop(np.zeros((30, 30))).shape
    ((4, 2), (2, 4))
    """

    role: str
    row: int
    col: int
    left: int
    top: int
    right: int
    bottom: int

    @property
    def size(self) -> tuple[int, int]:
        """(width, height), as Pillow orders them."""
        return self.right - self.left, self.bottom - self.top

    def crop(self, pixels: np.ndarray) -> np.ndarray:
        """This box's part of an (H, W, ...) array of the figure's pixels."""
        return pixels[self.top : self.bottom, self.left : self.right]


@dataclass(frozen=True)
class PlotAxes:
    """The data area of one series panel, ("plot", row, col): where a value is drawn.

    ``left``/``top`` is the pixel of (x_range[0], y_range[1]); the area is ``width`` x
    ``height`` pixels.

    >>> axes = PlotAxes(0, 0, 10, 20, 101, 51, (0.0, 100.0), (-1.0, 1.0))
    >>> axes.to_pixel(50.0, 0.0)
    (60.0, 45.0)
    """

    row: int
    col: int
    left: int
    top: int
    width: int
    height: int
    x_range: tuple[float, float]
    y_range: tuple[float, float]

    def to_pixel(self, x, y):
        """(column, row) in figure pixels of the point (x, y); arrays work too."""
        (x_lo, x_hi), (y_lo, y_hi) = self.x_range, self.y_range
        column = self.left + (np.asarray(x, np.float64) - x_lo) / (x_hi - x_lo) * (self.width - 1)
        row = self.top + (y_hi - np.asarray(y, np.float64)) / (y_hi - y_lo) * (self.height - 1)
        if np.ndim(column) == 0:
            return float(column), float(row)
        return column, row


@dataclass(frozen=True)
class Figure:
    """A picture (8-bit RGB), the boxes of its parts, and every text it shows.

    ``scale`` is the number of figure pixels per input pixel in the tiles (an integer
    when enlarged, a fraction when shrunk). ``labels`` holds every text drawn, exactly
    as given (before wrapping), in drawing order: the title; row by row, each tile's
    label then the titles of the row's colour bars; the legend's entries. Tick numbers
    are not included. ``plots`` maps
    the values of each series panel to its pixels.
    """

    image: Image.Image
    boxes: tuple[Box, ...]
    scale: float
    labels: tuple[str, ...] = ()
    plots: tuple[PlotAxes, ...] = ()

    def box(self, role: str, row: int = 0, col: int = 0) -> Box:
        """The box drawn for ``role`` at grid position (row, col)."""
        for box in self.boxes:
            if (box.role, box.row, box.col) == (role, row, col):
                return box
        raise KeyError(f"no {role!r} box at row {row}, column {col}")

    def roles(self, role: str) -> list[Box]:
        """Every box drawn for ``role``, in drawing order."""
        return [box for box in self.boxes if box.role == role]

    def plot(self, row: int = 0, col: int = 0) -> PlotAxes:
        """The axes of the series panel at (row, col)."""
        for axes in self.plots:
            if (axes.row, axes.col) == (row, col):
                return axes
        raise KeyError(f"no plot at row {row}, column {col}")

    def pixels(self) -> np.ndarray:
        """The picture as an (H, W, 3) uint8 array."""
        return np.asarray(self.image)


@dataclass(frozen=True)
class Cell:
    """One pooled result of a comparison grid and its label (see `cell_label`)."""

    label: str
    pooled: np.ndarray


@dataclass(frozen=True)
class Series:
    """A 1-D series to plot; ``positions`` are its x coordinates (default 0, 1, 2, ...)."""

    label: str
    values: np.ndarray
    positions: np.ndarray | None = None

