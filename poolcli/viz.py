"""Pictures of pooling: comparison grids, feature-map montages, series plots, gradient maps.

Pure NumPy + Pillow. Every function takes arrays that are already pooled (or already
back-propagated) plus plain metadata, and returns a `Figure`: an 8-bit RGB
`PIL.Image.Image`, the `Box` of every part it drew (tiles, labels, colour bars,
legend), every text it wrote (``labels``) and, for series, the `PlotAxes` of each panel,
so that the caller and the tests can find each part. Nothing here pools, reads or
writes files; the caller saves ``figure.image`` as PNG.

The decisions, one place each:

- Tile size: `_layout_scale`. Inputs whose shorter side is under `MIN_CELL` pixels are
  enlarged by an integer factor (nearest neighbour, so every input pixel is a sharp
  square); layouts wider than `MAX_WIDTH` are shrunk by box averaging; a tile's height
  is held under `MAX_WIDTH` too.
- Pooled results are stretched back to the input's height and width by `upsample_nearest`
  (row ``r`` shows pooled row ``floor(r * out_h / H)``), so every tile has the same scale.
- Image values are shown on the original's scale (`image_range`): the dtype's range for
  bool, uint8 and uint16, [0, 1] for data inside it, else the data's finite min..max.
  Pooled cells use the original's scale; values beyond it (``sum``, ``lp``) clip.
- Feature maps, differences and gradient weights go through viridis (`apply_colormap`) on
  a range shared by the whole figure and drawn as a colour bar beside the tiles it
  belongs to (`montage` can give each channel its own range and bar).
- Values that have no place on a scale are never drawn as its ends: NaN is `NAN_COLOR`,
  +inf `POSINF_COLOR`, -inf `NEGINF_COLOR` (none of them viridis or grey), each named in
  the legend when it occurs. Every range is computed from finite values only. In series
  plots NaN breaks the line (and is ticked on the x axis), ±inf is a triangle at the top
  or bottom edge.
- Gradient maps enlarge small inputs further, to `GRADIENT_MIN_CELL`, so that single
  routed pixels show.
- Series: one panel per pooled series, each over the original (thin, light), all on one
  scale, so no series can hide another; the gradient of a series gets its own panel and
  scale. Long series are drawn as their per-pixel min..max envelope.
- Text uses Pillow's built-in scalable font; its size grows with the tile
  (`_font_size`), never below `MIN_FONT` pixels. The font has no glyphs beyond ASCII
  (``×``, ``÷`` and ``→`` draw as boxes), so labels are ASCII.

>>> from PIL import Image
>>> pooled = np.zeros((2, 2), dtype=np.uint8)
>>> figure = comparison_grid(np.zeros((4, 4), dtype=np.uint8), [[Cell("max k=2", pooled)]])
>>> isinstance(figure.image, Image.Image), figure.image.mode
(True, 'RGB')
>>> figure.box("cell", 0, 1).size   # a 4x4 input is enlarged 64x to reach MIN_CELL
(256, 256)
>>> figure.labels
('original 4x4', 'max k=2')
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import cache
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ._colormaps import VIRIDIS
from .errors import PoolError, param
from .modes import names
from .values import finite_range

__all__ = [
    "BACKGROUND",
    "DEFAULT_CHANNELS",
    "MAX_WIDTH",
    "MIN_CELL",
    "NAN_COLOR",
    "NEGINF_COLOR",
    "ORIGINAL_COLOR",
    "POSINF_COLOR",
    "ROUTE_COLORS",
    "ROUTING_MODES",
    "SCALES",
    "SERIES_COLORS",
    "Box",
    "Cell",
    "Figure",
    "PlotAxes",
    "MARKERS",
    "Series",
    "abs_difference",
    "apply_colormap",
    "cell_label",
    "colorbar",
    "comparison_grid",
    "gradient_map",
    "gradient_series",
    "image_range",
    "montage",
    "series_plot",
    "series_style",
    "side_by_side",
    "specials",
    "stack",
    "to_display",
    "upsample_nearest",
    "value_range",
    "window_centres",
]

# --- Layout constants (pixels) -----------------------------------------------------------

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

# --- Colours (RGB) --------------------------------------------------------------------------

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
_KINDS = ("image", "map")
_CHUNK_ROWS = 512  # abs_difference works on this many rows at a time (bounded memory)

RGB = tuple[int, int, int]


# --- Results --------------------------------------------------------------------------------


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


# --- Arrays to colours --------------------------------------------------------------------


def upsample_nearest(pooled: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Stretch the first two axes of ``pooled`` to ``size`` = (H, W), nearest neighbour.

    Row r takes pooled row floor(r * out_h / H), column c likewise, so an H that is a
    multiple of out_h repeats each row exactly H / out_h times. Trailing axes (channels)
    are kept.

    >>> upsample_nearest(np.array([[1, 2], [3, 4]]), (4, 4)).tolist()
    [[1, 1, 2, 2], [1, 1, 2, 2], [3, 3, 4, 4], [3, 3, 4, 4]]
    >>> upsample_nearest(np.array([[1, 2]]), (1, 5)).tolist()
    [[1, 1, 1, 2, 2]]
    """
    pooled = np.asarray(pooled)
    if pooled.ndim < 2:
        raise PoolError(
            f"pooled array of shape {pooled.shape} has no height and width; pass HW or HWC"
        )
    height, width = size
    rows = _nearest_index(height, pooled.shape[0])
    cols = _nearest_index(width, pooled.shape[1])
    return pooled[rows[:, None], cols[None, :]]


def _nearest_index(length: int, source: int) -> np.ndarray:
    """Source index shown at each of ``length`` positions: floor(i * source / length)."""
    return np.arange(length, dtype=np.int64) * source // length


def value_range(*arrays: np.ndarray) -> tuple[float, float]:
    """Finite (min, max) over ``arrays``; (0, 1) when nothing is finite.

    >>> value_range(np.array([3.0, np.nan, -1.0, np.inf]))
    (-1.0, 3.0)
    >>> value_range(np.array([np.nan]))
    (0.0, 1.0)
    >>> value_range(np.array([2.0]), np.array([-np.inf, 5.0]))
    (2.0, 5.0)
    """
    span = finite_range(*arrays)
    return (0.0, 1.0) if span is None else span


_value_range = value_range  # for functions whose keyword argument `value_range` hides it


def image_range(original: np.ndarray) -> tuple[float, float]:
    """The values shown as black and white for an image (and for every cell pooled from it).

    bool, uint8 and uint16: the dtype's range; data inside [0, 1]: (0, 1); else the
    data's finite min and max.

    >>> image_range(np.zeros(3, np.uint16)), image_range(np.array([0.2, 0.9]))
    ((0.0, 65535.0), (0.0, 1.0))
    >>> image_range(np.array([-3, 40]))
    (-3.0, 40.0)
    """
    original = np.asarray(original)
    if original.dtype == np.bool_:
        return 0.0, 1.0
    if original.dtype in (np.uint8, np.uint16):
        return 0.0, float(np.iinfo(original.dtype).max)
    lo, hi = value_range(original)
    if lo >= 0.0 and hi <= 1.0:
        return 0.0, 1.0
    return lo, hi


def specials(*arrays: np.ndarray) -> tuple[bool, bool, bool]:
    """(any NaN, any +inf, any -inf) in ``arrays``.

    >>> specials(np.array([1.0, -np.inf]), np.arange(3))
    (False, False, True)
    """
    found = [False, False, False]
    for array in arrays:
        array = np.asarray(array)
        if array.dtype.kind != "f" or np.isfinite(array).all():
            continue
        found[0] = found[0] or bool(np.isnan(array).any())
        found[1] = found[1] or bool(np.isposinf(array).any())
        found[2] = found[2] or bool(np.isneginf(array).any())
    return found[0], found[1], found[2]


def _special_legend(*arrays: np.ndarray, notes: tuple[str, str, str] = ("", "", "")):
    """Legend entries for the NaN, +inf and -inf that occur in ``arrays``."""
    names = ("NaN", "+inf", "-inf")
    colours = (NAN_COLOR, POSINF_COLOR, NEGINF_COLOR)
    return [
        (colour, name + note)
        for found, colour, name, note in zip(specials(*arrays), colours, names, notes, strict=True)
        if found
    ]


def _unit(values: np.ndarray, vmin: float, vmax: float) -> np.ndarray:
    """(values - vmin) / (vmax - vmin) as float32; NaN, +inf and -inf kept as they are.

    Finite values are not clipped to [0, 1] but held in [-1, 2] (so that none overflows
    into an infinity); 0 where vmax == vmin.
    """
    values = np.asarray(values)
    span = vmax - vmin
    floating = values.dtype.kind == "f"
    unit: Any
    with np.errstate(all="ignore"):
        if span == 0 or not math.isfinite(span):
            unit = np.zeros(values.shape, dtype=np.float32)
        else:
            exact = values.dtype.itemsize <= 2 or values.dtype == np.float32  # float32 holds these
            unit = (values.astype(np.float32 if exact else np.float64) - vmin) / span  # type: ignore[operator]
            unit = np.clip(unit, -1.0, 2.0).astype(np.float32, copy=False)
        if floating and not np.isfinite(values).all():
            unit = np.where(np.isfinite(values), unit, values.astype(np.float32))
    return unit


def _special_masks(unit: np.ndarray):
    """The NaN, +inf and -inf masks of a unit array (None when all are finite)."""
    if np.isfinite(unit).all():
        return None
    return np.isnan(unit), np.isposinf(unit), np.isneginf(unit)


def _colormap_unit(unit: np.ndarray) -> np.ndarray:
    """Viridis colours (..., 3) uint8 of values in [0, 1] (clipped); NaN, ±inf in theirs."""
    unit = np.asarray(unit, dtype=np.float32)
    masks = _special_masks(unit)
    safe = unit if masks is None else np.where(np.isfinite(unit), unit, 0.0)
    index = np.rint(np.clip(safe, 0.0, 1.0) * 255.0).astype(np.intp)
    rgb = VIRIDIS[index]
    if masks is not None:
        for mask, colour in zip(masks, (NAN_COLOR, POSINF_COLOR, NEGINF_COLOR), strict=True):
            rgb[mask] = colour
    return rgb


def apply_colormap(values: np.ndarray, vmin: float, vmax: float) -> np.ndarray:
    """Viridis colours (..., 3) uint8 of ``values`` on [vmin, vmax].

    Finite values outside clip to the ends; NaN is `NAN_COLOR`, +inf `POSINF_COLOR`,
    -inf `NEGINF_COLOR` (never an end of the scale); a constant range (vmin == vmax)
    gives the low end.

    >>> apply_colormap(np.array([0.0, 10.0, np.nan, np.inf, -np.inf]), 0.0, 10.0).tolist()
    [[68, 1, 84], [253, 231, 37], [255, 0, 255], [255, 128, 0], [0, 90, 255]]
    """
    return _colormap_unit(_unit(values, vmin, vmax))


def _image_rgba(image: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """An HW or HWC (C = 1..4) image as uint8 (H, W, 3), or (H, W, 4) when it has alpha.

    One channel is grey, two are grey + alpha. A pixel with a NaN in any channel becomes
    NAN_COLOR, else one with +inf POSINF_COLOR, else one with -inf NEGINF_COLOR (opaque).
    """
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[..., None]
    masks = None
    if image.dtype == np.uint8 and (lo, hi) == (0.0, 255.0):
        levels = image
    else:
        unit = _unit(image, lo, hi)
        masks = _special_masks(unit)
        if masks is not None:
            unit = np.where(np.isfinite(unit), unit, 0.0)
        levels = np.rint(np.clip(unit, 0.0, 1.0) * 255).astype(np.uint8)
    channels = levels.shape[2]
    colour = levels[..., :3] if channels >= 3 else np.repeat(levels[..., :1], 3, axis=2)
    if masks is not None:
        colour = colour.copy()
        pixel_masks = [mask.any(axis=2) for mask in masks]
        order = ((2, NEGINF_COLOR), (1, POSINF_COLOR), (0, NAN_COLOR))  # NaN drawn last: wins
        for index, special in order:
            colour[pixel_masks[index]] = special
    if channels in (2, 4):
        alpha = levels[..., -1:].copy()
        if masks is not None:
            alpha[pixel_masks[0] | pixel_masks[1] | pixel_masks[2]] = 255
        return np.concatenate([colour, alpha], axis=2)
    return np.ascontiguousarray(colour)


def _composite(rgba: np.ndarray) -> np.ndarray:
    """RGBA uint8 over the grey checkerboard → RGB uint8; RGB passes through."""
    if rgba.shape[2] == 3:
        return rgba
    height, width = rgba.shape[:2]
    rows, cols = np.ogrid[:height, :width]
    squares = (rows // CHECKER_PX + cols // CHECKER_PX) % 2
    behind = np.asarray(CHECKER, dtype=np.uint16)[squares][..., None]
    alpha = rgba[..., 3:].astype(np.uint16)
    mixed = (rgba[..., :3] * alpha + behind * (255 - alpha) + 127) // 255
    return mixed.astype(np.uint8)


def to_display(
    array: np.ndarray, *, kind: str = "image", value_range: tuple[float, float] | None = None
) -> np.ndarray:
    """RGB uint8 (H, W, 3) of an image or a 2-D feature map, at its own size.

    kind="image": HW or HWC with 1-4 channels on ``value_range`` (default `image_range`;
    16-bit shows as value / 257); alpha is composited over a grey checkerboard.
    kind="map": a 2-D array through viridis on ``value_range`` (default its finite
    min..max).

    >>> to_display(np.array([[0, 65535]], dtype=np.uint16)).tolist()
    [[[0, 0, 0], [255, 255, 255]]]
    >>> to_display(np.array([[1.0, 2.0]]), kind="map").tolist()
    [[[68, 1, 84], [253, 231, 37]]]
    """
    array = _checked(array, kind, "array")
    if kind == "map":
        lo, hi = value_range or _value_range(array)
        return apply_colormap(array, lo, hi)
    lo, hi = value_range or image_range(array)
    return _composite(_image_rgba(array, lo, hi))


def abs_difference(original: np.ndarray, pooled: np.ndarray) -> np.ndarray:
    """|original - upsample_nearest(pooled)| per pixel as float32 (H, W), mean over channels.

    Computed a few hundred rows at a time, so huge images need little extra memory.
    A NaN or an infinity on either side gives NaN or +inf (inf - inf is NaN), silently.

    >>> abs_difference(np.array([[1, 3], [5, 7]]), np.array([[4]])).tolist()
    [[3.0, 1.0], [1.0, 3.0]]
    """
    original = np.asarray(original)
    pooled = np.asarray(pooled)
    if original.ndim < 2 or pooled.ndim != original.ndim or pooled.shape[2:] != original.shape[2:]:
        raise PoolError(
            f"pooled shape {pooled.shape} cannot be compared with original shape "
            f"{original.shape}; pool only the height and width axes (axes=(0, 1))"
        )
    height, width = original.shape[:2]
    rows = _nearest_index(height, pooled.shape[0])
    cols = _nearest_index(width, pooled.shape[1])
    out = np.empty((height, width), dtype=np.float32)
    with np.errstate(all="ignore"):
        for start in range(0, height, _CHUNK_ROWS):
            stop = min(height, start + _CHUNK_ROWS)
            shown = pooled[rows[start:stop, None], cols[None, :]].astype(np.float64)
            diff = np.abs(original[start:stop].astype(np.float64) - shown)
            out[start:stop] = diff.mean(axis=2) if diff.ndim == 3 else diff
    return out


# --- Checks -------------------------------------------------------------------------------


def _checked(array: np.ndarray, kind: str, name: str) -> np.ndarray:
    """``array`` as an ndarray that can be drawn as ``kind``, or a PoolError naming the fix."""
    if kind not in _KINDS:
        raise PoolError(f"kind {kind!r} is not one of {_KINDS}; use 'image' or 'map'")
    array = np.asarray(array)
    if array.dtype.kind not in "biuf":
        raise PoolError(f"{name} of dtype {array.dtype} cannot be drawn; pass real numbers")
    if kind == "map" and array.ndim != 2:
        raise PoolError(
            f"{name} of shape {array.shape} is not a 2-D feature map; "
            f"choose one channel ({param('channel')}) or draw the channels as a montage"
        )
    if kind == "image" and not (array.ndim == 2 or (array.ndim == 3 and 1 <= array.shape[2] <= 4)):
        raise PoolError(
            f"{name} of shape {array.shape} is not an HW or HWC image with 1-4 channels; "
            "pass it as a feature map (one channel at a time) or move channels last"
        )
    if min(array.shape[:2]) < 1:
        raise PoolError(f"{name} of shape {array.shape} is empty; pass at least one pixel")
    return array


def _checked_cell(cell: Cell, original: np.ndarray, kind: str) -> np.ndarray:
    """The cell's pooled array, checked to be drawable beside ``original``."""
    pooled = _checked(cell.pooled, kind, f"cell {cell.label!r}")
    if pooled.shape[2:] != original.shape[2:] or pooled.ndim != original.ndim:
        raise PoolError(
            f"cell {cell.label!r} has shape {pooled.shape} but the original has "
            f"{original.shape}; pool only the height and width axes (axes=(0, 1))"
        )
    return pooled


# --- Text ---------------------------------------------------------------------------------


@cache
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """Pillow's built-in scalable font at ``size`` pixels (no font file needed)."""
    return ImageFont.load_default(size=size)


def _font_size(tile_width: int) -> int:
    """Label text size for tiles ``tile_width`` pixels wide."""
    return int(min(MAX_FONT, max(MIN_FONT, round(tile_width / TILE_PER_FONT_PX))))


def _line_height(font) -> int:
    return math.ceil(font.size * 1.25)


def _text_width(text: str, font) -> int:
    return math.ceil(font.getlength(text))


def _wrap(text: str, font, width: int) -> list[str]:
    """``text`` broken at its newlines, then at spaces (or inside long words) to fit ``width``."""
    lines: list[str] = []
    for paragraph in text.split("\n"):
        line = ""
        for word in paragraph.split():
            candidate = f"{line} {word}" if line else word
            if _text_width(candidate, font) <= width:
                line = candidate
                continue
            if line:
                lines.append(line)
            while len(word) > 1 and _text_width(word, font) > width:
                cut = len(word) - 1
                while cut > 1 and _text_width(word[:cut], font) > width:
                    cut -= 1
                lines.append(word[:cut])
                word = word[cut:]
            line = word
        lines.append(line)
    return lines


def _fmt(value: float) -> str:
    """A number for a tick or a range, in at most 4 significant digits."""
    text = f"{value:.4g}"
    return "0" if text == "-0" else text


def _dims(value) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, int | np.integer):
        return str(int(value))
    return "x".join(str(int(v)) for v in value)


def cell_label(mode: str, window, stride, shape: Sequence[int], **geometry) -> str:
    """The label of one pooled result: mode, window, stride, more geometry, output shape.

    The mode and the window are separate words; ``shape`` is the pooled output's shape.

    >>> cell_label("max", 2, 2, (256, 256, 3))
    'max k=2 s=2 -> 256x256x3'
    >>> cell_label("avg", (3, 2), (1, 1), (9, 10), p=1, ceil=True)
    'avg k=3x2 s=1x1 p=1 ceil=True -> 9x10'
    """
    extra = "".join(f" {name}={value}" for name, value in geometry.items())
    return f"{mode} k={_dims(window)} s={_dims(stride)}{extra} -> {_dims(tuple(shape))}"


# --- Layout -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Tile:
    role: str
    label: str
    image: Image.Image  # RGB, the figure's tile size
    axes: tuple | None = None  # series panels: (left, top, width, height, x_range, y_range) in the tile


@dataclass(frozen=True)
class _Bar:
    """A colour bar of its row, drawn right after tile column ``after`` (None: the last)."""

    title: str
    vmin: float
    vmax: float
    after: int | None = None


def _bar_width(bar: _Bar, font) -> int:
    """Width of one colour bar with its tick labels and title."""
    ticks = max(_text_width(_fmt(bar.vmin), font), _text_width(_fmt(bar.vmax), font))
    return max(BAR_WIDTH + TICK_LENGTH + 3 + ticks, _text_width(bar.title, font)) + GAP


def _gutters(bars: dict[int, list[_Bar]], columns: int, font) -> list[int]:
    """Width of the colour-bar gutter after each tile column (0 where no bar follows it)."""
    widths = [0] * columns
    for row in bars.values():
        per_column = [0] * columns
        for bar in row:
            column = columns - 1 if bar.after is None else bar.after
            per_column[column] += _bar_width(bar, font)
        widths = [max(w, GAP + p if p else 0) for w, p in zip(widths, per_column, strict=True)]
    return widths


def _layout_scale(
    shape: tuple[int, int],
    columns: int,
    bars: dict[int, list[_Bar]],
    min_cell: int = MIN_CELL,
) -> tuple[float, tuple[int, int]]:
    """Display pixels per input pixel, and the tile size (width, height).

    Enlarge by the smallest integer that brings the shorter side to ``min_cell``, unless
    the figure would then be wider than MAX_WIDTH (or a tile taller); shrink when even
    1:1 does not fit.
    """
    height, width = shape
    reserved = 2 * MARGIN + (columns - 1) * GAP + sum(_gutters(bars, columns, _font(MAX_FONT)))
    fit = min((MAX_WIDTH - reserved) / (columns * width), MAX_WIDTH / height)
    if fit >= 1:
        scale = min(max(1, math.ceil(min_cell / min(height, width))), math.floor(fit))
        return scale, (width * scale, height * scale)
    return fit, (max(1, math.floor(width * fit)), max(1, math.floor(height * fit)))


def _fit(array: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize uint8 RGB/RGBA or float32 2-D ``array`` to ``size`` = (width, height).

    Nearest neighbour when enlarging (exact repetition for integer factors), box
    averaging when shrinking.
    """
    height, width = array.shape[:2]
    if (width, height) == size:
        return array
    resample = Image.Resampling.NEAREST if size[0] >= width else Image.Resampling.BOX
    return np.asarray(Image.fromarray(array).resize(size, resample))


def _render(data: np.ndarray, shape: tuple[int, int], size, kind: str, lo: float, hi: float):
    """One tile of ``data`` (an original or a pooled result) at tile ``size``."""
    if kind == "map":
        unit = _fit(upsample_nearest(_unit(data, lo, hi), shape), size)
        return Image.fromarray(_colormap_unit(unit))
    rgba = _fit(upsample_nearest(_image_rgba(data, lo, hi), shape), size)
    return Image.fromarray(_composite(rgba))


def _heat_tile(values: np.ndarray, size, vmin: float, vmax: float) -> Image.Image:
    """A tile of 2-D ``values`` (already the input's height and width) through viridis."""
    return Image.fromarray(_colormap_unit(_fit(_unit(values, vmin, vmax), size)))


def _legend_lines(items: Sequence[tuple[RGB | None, str]], font, width: int):
    """Legend items (swatch colour or None, text) flowed into lines no wider than ``width``.

    Returns lines of (x offset, colour or None, text).
    """
    swatch = _line_height(font)
    lines: list[list[tuple[int, RGB | None, str]]] = [[]]
    x = 0
    for colour, text in items:
        indent = swatch if colour is not None else 0
        first, *rest = _wrap(text, font, max(1, width - indent))
        needed = indent + _text_width(first, font)
        if x > 0 and x + needed > width:
            lines.append([])
            x = 0
        lines[-1].append((x, colour, first))
        x += needed + 2 * GAP
        for part in rest:
            lines.append([(indent, None, part)])
            x = indent + _text_width(part, font) + 2 * GAP
    return [line for line in lines if line]


def _compose(
    grid: Sequence[Sequence[_Tile | None]],
    *,
    scale: float,
    font_size: int | None = None,
    bars: dict[int, list[_Bar]] | None = None,
    legend: Sequence[tuple[RGB | None, str]] = (),
    title: str = "",
) -> Figure:
    """Lay out equal tiles in rows, each under its label band; each colour bar right after
    the tile column it belongs to; the title above, the legend below. The single place
    that places anything, and so the one that records every text drawn."""
    bars = bars or {}
    tiles = [tile for row in grid for tile in row if tile is not None]
    tile_w, tile_h = tiles[0].image.size
    font = _font(font_size or _font_size(tile_w))
    line = _line_height(font)
    columns = max(len(row) for row in grid)
    labels = {
        (r, c): _wrap(tile.label, font, tile_w)
        for r, row in enumerate(grid)
        for c, tile in enumerate(row)
        if tile is not None
    }
    label_lines = max([len(lines) for lines in labels.values()] + [1 if bars else 0])
    band = label_lines * line + 2 * LABEL_PAD if label_lines else 0
    gutters = _gutters(bars, columns, font)
    lefts = [MARGIN + c * (tile_w + GAP) + sum(gutters[:c]) for c in range(columns)]
    content_w = columns * tile_w + (columns - 1) * GAP + sum(gutters)
    title_lines = _wrap(title, font, content_w) if title else []
    title_h = len(title_lines) * line + GAP if title_lines else 0
    legend_lines = _legend_lines(legend, font, content_w)
    legend_h = GAP + len(legend_lines) * line if legend_lines else 0
    body_h = max(tile_h, BAR_MIN_LINES * line) if bars else tile_h  # room for the ticks
    row_h = band + body_h
    width = 2 * MARGIN + content_w
    height = 2 * MARGIN + title_h + len(grid) * row_h + (len(grid) - 1) * GAP + legend_h
    canvas = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    boxes: list[Box] = []
    texts: list[str] = []
    plots: list[PlotAxes] = []
    if title_lines:
        for i, text in enumerate(title_lines):
            draw.text((MARGIN, MARGIN + i * line), text, fill=TEXT, font=font)
        boxes.append(Box("title", 0, 0, MARGIN, MARGIN, MARGIN + content_w, MARGIN + title_h - GAP))
        texts.append(title)
    for r, row in enumerate(grid):
        top = MARGIN + title_h + r * (row_h + GAP)
        for c, tile in enumerate(row):
            if tile is None:
                continue
            left = lefts[c]
            first = top + band - LABEL_PAD - len(labels[r, c]) * line  # text sits on its tile
            for i, text in enumerate(labels[r, c]):
                draw.text((left, first + i * line), text, fill=TEXT, font=font)
            if tile.label:
                texts.append(tile.label)
            boxes.append(Box("label", r, c, left, top, left + tile_w, top + band))
            canvas.paste(tile.image, (left, top + band))
            boxes.append(Box(tile.role, r, c, left, top + band, left + tile_w, top + band + tile_h))
            if tile.axes is not None:
                x0, y0, w, h, x_range, y_range = tile.axes
                plots.append(PlotAxes(r, c, left + x0, top + band + y0, w, h, x_range, y_range))
        x_after = {c: lefts[c] + tile_w + GAP for c in range(columns)}
        for bar in bars.get(r, []):
            column = columns - 1 if bar.after is None else bar.after
            x = x_after[column]
            boxes += _draw_bar(canvas, draw, bar, font, (x, top, band, body_h), (r, column + 1))
            x_after[column] += _bar_width(bar, font)
            if bar.title:
                texts.append(bar.title)
    if legend_lines:
        boxes.append(_draw_legend(canvas, draw, legend_lines, font, height - MARGIN - legend_h))
        texts += [text for _, text in legend]
    return Figure(canvas, tuple(boxes), scale, tuple(texts), tuple(plots))


def _ramp(height: int) -> np.ndarray:
    """Viridis ramp (height, BAR_WIDTH, 3): the high end on top."""
    unit = np.linspace(1.0, 0.0, height) if height > 1 else np.ones(1)
    return np.repeat(_colormap_unit(unit)[:, None, :], BAR_WIDTH, axis=1)


def _draw_bar(canvas, draw, bar: _Bar, font, where, place) -> list[Box]:
    """A colour bar: its title in the label band, the ramp beside the tiles, min/max ticks."""
    x, top, band, height = where
    row, col = place
    ramp_top = top + band
    line = _line_height(font)
    if band and bar.title:
        draw.text((x, top + band - LABEL_PAD - line), bar.title, fill=TEXT, font=font)
    canvas.paste(Image.fromarray(_ramp(height)), (x, ramp_top))
    tick_x = x + BAR_WIDTH
    text_x = tick_x + TICK_LENGTH + 3
    bottom = ramp_top + height - 1
    for y, text, anchor in ((ramp_top, bar.vmax, "lt"), (bottom, bar.vmin, "lb")):
        draw.line([(tick_x, y), (tick_x + TICK_LENGTH - 1, y)], fill=TEXT)
        draw.text((text_x, y), _fmt(text), fill=TEXT, font=font, anchor=anchor)
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
    line = _line_height(font)
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
    font = _font(MAX_FONT)
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


# --- Figures ------------------------------------------------------------------------------


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
    original = _checked(original, kind, "original")
    rows = [list(row) for row in rows]
    pooled = [[_checked_cell(cell, original, kind) for cell in row] for row in rows]
    every_cell = [p for row in pooled for p in row]
    shape = original.shape[:2]
    lo, hi = image_range(original) if kind == "image" else value_range(original, *every_cell)
    stride = 2 if diff else 1
    columns = 1 + max((len(row) for row in rows), default=0)
    diffs = [[abs_difference(original, p) for p in row] for row in pooled] if diff else []
    dmax = value_range(*[d for row in diffs for d in row])[1] if diffs else 0.0
    bars: dict[int, list[_Bar]] = {}  # each row's scale beside it: values (maps), |diff| (diff rows)
    for i in range(max(1, len(rows))):
        if kind == "map":
            bars[stride * i] = [_Bar("value", lo, hi)]
        if diffs:
            bars[stride * i + 1] = [_Bar("|diff|", 0.0, dmax)]
    scale, size = _layout_scale(shape, columns, bars)
    label = original_label or f"original {_dims(original.shape)}"
    grid: list[list[_Tile | None]] = [[None] * columns for _ in range(max(1, stride * len(rows)))]
    grid[0][0] = _Tile("original", label, _render(original, shape, size, kind, lo, hi))
    for i, row in enumerate(rows):
        for j, cell in enumerate(row):
            tile = _render(pooled[i][j], shape, size, kind, lo, hi)
            grid[stride * i][j + 1] = _Tile("cell", cell.label, tile)
            if diff:
                heat = _heat_tile(diffs[i][j], size, 0.0, dmax)
                grid[stride * i + 1][j + 1] = _Tile("diff", "|diff| vs original", heat)
    legend = _special_legend(original, *every_cell, *[d for row in diffs for d in row])
    return _compose(grid, scale=scale, bars=bars, legend=legend)


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
    if isinstance(channels, int | np.integer):
        chosen = list(range(min(int(channels), count)))
    else:
        chosen = [int(c) for c in channels]
    bad = [c for c in chosen if not 0 <= c < count]
    if not chosen or bad:
        raise PoolError(
            f"channels {channels!r} do not select channels of a map with {count}; "
            f"use indices in 0..{count - 1} or a count >= 1"
        )
    first = _checked(maps[chosen[0]], "map", "feature map")
    shape = (int(shape[0]), int(shape[1])) if shape is not None else (first.shape[0], first.shape[1])
    columns = math.ceil(math.sqrt(len(chosen)))
    if scale == "shared":
        ranges = [value_range or _value_range(*(maps[c] for c in chosen))] * len(chosen)
        bars = {0: [_Bar("value", *ranges[0])]}
        note = f"values {_fmt(ranges[0][0])} .. {_fmt(ranges[0][1])}"
    else:
        ranges = list(channel_ranges) if channel_ranges is not None else [_value_range(maps[c]) for c in chosen]
        if len(ranges) != len(chosen):
            raise PoolError(
                f"{len(ranges)} channel ranges for {len(chosen)} channels; pass one (lo, hi) per channel"
            )
        bars = {}
        for k, limits in enumerate(ranges):
            bars.setdefault(k // columns, []).append(_Bar("", *limits, after=k % columns))
        note = "each channel on its own colour scale (the bar beside it)"
    layout_scale, size = _layout_scale(shape, columns, bars)
    tiles = [
        _Tile("channel", f"channel {c}", _render(maps[c], shape, size, "map", *limits))
        for c, limits in zip(chosen, ranges, strict=True)
    ]
    grid = [tiles[i : i + columns] for i in range(0, len(tiles), columns)]
    legend: list[tuple[RGB | None, str]] = [(None, f"{len(chosen)} of {count} channels, {note}")]
    legend += _special_legend(*(maps[c] for c in chosen))
    return _compose(grid, scale=layout_scale, bars=bars, legend=legend)


def colorbar(vmin: float, vmax: float, height: int = 256, *, title: str = "value") -> Figure:
    """A stand-alone colour bar: viridis from ``vmin`` (bottom) to ``vmax`` (top), ticked.

    ``height`` is the ramp's height in pixels (at least BAR_MIN_LINES lines of text).

    >>> bar = colorbar(0.0, 2.5, 100).box("colorbar")
    >>> bar.size
    (20, 100)
    """
    if height < 1:
        raise PoolError(f"colour bar height {height} must be >= 1; use a height >= 1")
    blank = _Tile("blank", "", Image.new("RGB", (1, height), BACKGROUND))
    figure = _compose([[blank]], scale=1, font_size=PLOT_FONT, bars={0: [_Bar(title, vmin, vmax)]})
    boxes = tuple(
        Box(box.role, 0, 0, box.left, box.top, box.right, box.bottom)
        for box in figure.boxes
        if box.role.startswith("colorbar")
    )
    return Figure(figure.image, boxes, 1, figure.labels)


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


# --- Series -------------------------------------------------------------------------------


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
    legend += _special_legend(original, *(s.values for s in series), notes=SERIES_NOTES)
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
    legend += _special_legend(original, grad, notes=SERIES_NOTES)
    return _panels(panels, title=title, legend=legend, shared_y=False)


def _panels(panels, *, title: str, legend, shared_y: bool) -> Figure:
    """Series panels, one per row, sharing the x scale (and the y scale if ``shared_y``)."""
    font = _font(PLOT_FONT)
    every = [line for _, lines in panels for line in lines]
    x_range = _span(*(line.x for line in every), pad=0.0)
    y_ranges = [_span(*(line.y for line in lines), pad=0.05) for _, lines in panels]
    if shared_y:
        y_ranges = [_span(*(line.y for line in every), pad=0.05)] * len(panels)
    y_ticks = [_nice_ticks(lo, hi, 5) for lo, hi in y_ranges]
    left = 8 + max(_text_width(_fmt(t), font) for ticks in y_ticks for t in ticks)
    right = 16
    longest = max(line.x.size for line in every)
    width = int(min(MAX_WIDTH - 2 * MARGIN - left - right, max(PLOT_SIZE[0], 8 * longest)))
    height = PLOT_SIZE[1] if len(panels) == 1 else PANEL_HEIGHT
    tiles = []
    for (label, lines), y_range, ticks in zip(panels, y_ranges, y_ticks, strict=True):
        image, axes = _draw_plot(lines, (width, height), font, left, x_range, y_range, ticks)
        tiles.append([_Tile("plot", label, image, axes)])
    return _compose(tiles, scale=1, font_size=PLOT_FONT, legend=legend, title=title)


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
    line_h = _line_height(font)
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
        draw.text((left - 6, y), _fmt(tick), fill=TEXT, font=font, anchor="rm")
    for tick in x_ticks:
        x = float(to_px(tick, y_lo)[0])
        draw.line([(x, top + height), (x, top + height + 4)], fill=TEXT)
        text = str(int(tick)) if abs(tick) < 1e9 else _fmt(tick)  # sample positions: whole numbers
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


# --- Gradients ----------------------------------------------------------------------------


def gradient_map(
    image: np.ndarray,
    grad: np.ndarray,
    *,
    mode: str,
    kind: str = "image",
    label: str | None = None,
    original_label: str | None = None,
) -> Figure:
    """The backward pass made visible: the image ("original", col 0) and its gradient
    ("gradient", col 1).

    ``grad`` is dL/dx for dL/dy = 1 (`pool_backward` of ones), with the image's height
    and width; an HWC ``grad`` with several channels is combined over them, and the
    gradient's label says how: max of |dL/dx| for routed modes (the busiest channel's
    count), mean otherwise.

    - max, min, median (``ROUTING_MODES``): the image dimmed to grey, each pixel that
      receives gradient painted ``ROUTE_COLORS[n - 1]`` for n = 1, 2 or 3+ windows
      (n = round(|grad|), at least 1 where grad != 0), with a legend that says so and
      that dimmed pixels receive none.
    - other modes: the gradient weight per pixel through viridis, with its colour bar
      beside it.

    A feature map (kind="map") has its own value colour bar beside it.

    >>> image = np.array([[1, 2, 0], [0, 9, 0], [3, 0, 4]], dtype=np.uint8)
    >>> grad = np.array([[0, 0, 0], [0, 4, 0], [0, 0, 0]])   # max k=2 s=1: all to the 9
    >>> figure = gradient_map(image, grad, mode="max")
    >>> f = figure.scale
    >>> figure.box("gradient", 0, 1).crop(figure.pixels())[f + 1, f + 1].tolist()
    [255, 40, 40]
    """
    image = _checked(image, kind, "image")
    grad = np.asarray(grad, dtype=np.float64)
    routed = mode in ROUTING_MODES
    combined = ""
    if grad.ndim == 3:
        with np.errstate(all="ignore"):
            grad = np.abs(grad).max(axis=2) if routed else grad.mean(axis=2)
        if image.ndim == 3 and image.shape[2] > 1:
            how = "max of |dL/dx|" if routed else "mean of dL/dx"
            combined = f" ({how} over the {image.shape[2]} channels)"
    if grad.shape != image.shape[:2]:
        raise PoolError(
            f"gradient of shape {grad.shape} does not match the image's height and width "
            f"{image.shape[:2]}; pass pool_backward's result for this image"
        )
    shape = image.shape[:2]
    lo, hi = image_range(image) if kind == "image" else value_range(image)
    bars: dict[int, list[_Bar]] = {0: [_Bar("value", lo, hi, after=0)]} if kind == "map" else {}
    if not routed:
        bars.setdefault(0, []).append(_Bar("dL/dx", *value_range(grad), after=1))
    scale, size = _layout_scale(shape, 2, bars, GRADIENT_MIN_CELL)
    shown = _render(image, shape, size, kind, lo, hi)
    left = _Tile("original", original_label or f"original {_dims(image.shape)}", shown)
    if routed:
        overlay = _routing_overlay(image, grad, kind, lo, hi)
        right = Image.fromarray(_fit(overlay, size))
        text = (label or f"{mode}: pixels that receive gradient") + combined
        names = ("1", "2", "3 or more")
        legend: list[tuple[RGB | None, str]] = [(None, "windows routing gradient here:")]
        legend += [(colour, name) for colour, name in zip(ROUTE_COLORS, names, strict=True)]
        legend.append((None, "dimmed: no window routes gradient to the pixel (dL/dx = 0)"))
    else:
        right = _heat_tile(grad, size, *value_range(grad))
        text = (label or f"{mode}: gradient weight per input pixel") + combined
        legend = []
    legend += _special_legend(image, grad)
    tiles = [[left, _Tile("gradient", text, right)]]
    return _compose(tiles, scale=scale, bars=bars, legend=legend)


def _routing_overlay(image, grad, kind: str, lo: float, hi: float) -> np.ndarray:
    """RGB uint8: the image dimmed to grey (its NaN and ±inf dimmed in their colours),
    pixels with gradient in their count's colour, a NaN or infinite gradient in its own."""
    values = np.asarray(image)
    bad = ~np.isfinite(values) if values.dtype.kind == "f" else None
    if kind == "map":
        unit = _unit(values, lo, hi)
        rgb = _colormap_unit(unit)
        grey = np.clip(np.where(np.isfinite(unit), unit, 0.0), 0.0, 1.0) * 255.0
        special = bad
    else:
        rgb = _composite(_image_rgba(values, lo, hi))
        grey = (rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)).astype(np.float64)
        special = bad.any(axis=2) if bad is not None and bad.ndim == 3 else bad
    out = np.repeat(np.rint(grey * DIM).astype(np.uint8)[..., None], 3, axis=2)
    if special is not None and special.any():
        out[special] = np.rint(rgb[special] * DIM).astype(np.uint8)
    finite = np.isfinite(grad)
    with np.errstate(all="ignore"):
        counts = np.where(finite, np.rint(np.abs(np.where(finite, grad, 0.0))), 0.0)
    counts[finite & (grad != 0) & (counts == 0)] = 1
    for n, colour in enumerate(ROUTE_COLORS, start=1):  # the last colour keeps n and more
        out[counts >= n] = colour
    out[np.isposinf(grad)] = POSINF_COLOR
    out[np.isneginf(grad)] = NEGINF_COLOR
    out[np.isnan(grad)] = NAN_COLOR
    return out
