"""Pictures of pooling: comparison grids, feature-map montages, series plots, gradient maps.

Pure NumPy + Pillow. Every function takes arrays that are already pooled (or already
back-propagated) plus plain metadata, and returns a `Figure`: an 8-bit RGB
`PIL.Image.Image` and the `Box` of every part it drew (tiles, labels, colour bars,
legend), so that the caller and the tests can find each part. Nothing here pools, reads
or writes files; the caller saves ``figure.image`` as PNG.

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
  a range shared by the whole figure and drawn as a colour bar; NaN is `NAN_COLOR`.
- Gradient maps enlarge small inputs further, to `GRADIENT_MIN_CELL`, so that single
  routed pixels show.
- Text uses Pillow's built-in scalable font; its size grows with the tile
  (`_font_size`), never below `MIN_FONT` pixels. The font has no glyphs beyond ASCII
  (``×`` and ``→`` draw as boxes), so labels are ASCII.

>>> from PIL import Image
>>> pooled = np.zeros((2, 2), dtype=np.uint8)
>>> figure = comparison_grid(np.zeros((4, 4), dtype=np.uint8), [[Cell("max k=2", pooled)]])
>>> isinstance(figure.image, Image.Image), figure.image.mode
(True, 'RGB')
>>> figure.box("cell", 0, 1).size   # a 4x4 input is enlarged 64x to reach MIN_CELL
(256, 256)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ._colormaps import VIRIDIS
from .errors import PoolError

__all__ = [
    "BACKGROUND",
    "DEFAULT_CHANNELS",
    "MAX_WIDTH",
    "MIN_CELL",
    "NAN_COLOR",
    "ROUTE_COLORS",
    "ROUTING_MODES",
    "SERIES_COLORS",
    "Box",
    "Cell",
    "Figure",
    "Series",
    "abs_difference",
    "apply_colormap",
    "cell_label",
    "colorbar",
    "comparison_grid",
    "gradient_map",
    "image_range",
    "montage",
    "series_plot",
    "side_by_side",
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
PLOT_FONT = 14  # text size in series plots
LINE_WIDTH = 2  # the original series; pooled series are one pixel wider, with dots

# --- Colours (RGB) --------------------------------------------------------------------------

BACKGROUND = (255, 255, 255)
TEXT = (20, 20, 20)
NAN_COLOR = (255, 0, 255)  # NaN in any picture: magenta, which viridis never produces
CHECKER = (255, 204)  # the two greys of the transparency checkerboard
GRID_LINE = (225, 225, 225)  # faint horizontal lines in series plots
ROUTE_COLORS = ((0, 200, 255), (255, 200, 0), (255, 40, 40))  # gradient from 1, 2, 3+ windows
DIM = 0.45  # gradient maps darken the image to this fraction of its brightness
# Series plots: the original first, then one colour per pooled series (matplotlib's tab10).
SERIES_COLORS = (
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (23, 190, 207),
)

DEFAULT_CHANNELS = 16  # montage: how many leading channels are shown when not told
ROUTING_MODES = frozenset({"max", "min", "median"})  # modes whose gradient is routed
_KINDS = ("image", "map")
_CHUNK_ROWS = 512  # abs_difference works on this many rows at a time (bounded memory)

RGB = tuple[int, int, int]


# --- Results --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Box:
    """Where one part of a figure was drawn: pixels [top:bottom, left:right].

    ``role`` names the part ("original", "cell", "diff", "label", "colorbar", ...);
    ``row`` and ``col`` its place in the figure's grid (colour bars take column = the
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
class Figure:
    """A picture (8-bit RGB) and the boxes of its parts.

    ``scale`` is the number of figure pixels per input pixel in the tiles (an integer
    when enlarged, a fraction when shrunk).
    """

    image: Image.Image
    boxes: tuple[Box, ...]
    scale: float

    def box(self, role: str, row: int = 0, col: int = 0) -> Box:
        """The box drawn for ``role`` at grid position (row, col)."""
        for box in self.boxes:
            if (box.role, box.row, box.col) == (role, row, col):
                return box
        raise KeyError(f"no {role!r} box at row {row}, column {col}")

    def roles(self, role: str) -> list[Box]:
        """Every box drawn for ``role``, in drawing order."""
        return [box for box in self.boxes if box.role == role]

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


def value_range(array: np.ndarray) -> tuple[float, float]:
    """Finite (min, max) of ``array``; (0, 1) when nothing is finite.

    >>> value_range(np.array([3.0, np.nan, -1.0, np.inf]))
    (-1.0, 3.0)
    >>> value_range(np.array([np.nan]))
    (0.0, 1.0)
    """
    array = np.asarray(array)
    finite = array[np.isfinite(array)] if array.dtype.kind == "f" else array.ravel()
    if finite.size == 0:
        return 0.0, 1.0
    return float(finite.min()), float(finite.max())


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


def _unit(values: np.ndarray, vmin: float, vmax: float) -> np.ndarray:
    """(values - vmin) / (vmax - vmin) as float32, NaN kept, not clipped; 0 where vmax == vmin."""
    values = np.asarray(values)
    span = vmax - vmin
    if span == 0 or not math.isfinite(span):
        unit = np.zeros(values.shape, dtype=np.float32)
        if values.dtype.kind == "f":
            unit[np.isnan(values)] = np.nan
        return unit
    exact = values.dtype.itemsize <= 2 or values.dtype == np.float32  # float32 holds these
    unit = (values.astype(np.float32 if exact else np.float64) - vmin) / span
    return unit.astype(np.float32, copy=False)


def _colormap_unit(unit: np.ndarray) -> np.ndarray:
    """Viridis colours (..., 3) uint8 of values in [0, 1] (clipped); NaN is NAN_COLOR."""
    unit = np.asarray(unit, dtype=np.float32)
    nan = np.isnan(unit)
    index = np.rint(np.clip(np.where(nan, 0.0, unit), 0.0, 1.0) * 255.0).astype(np.intp)
    rgb = VIRIDIS[index]
    rgb[nan] = NAN_COLOR
    return rgb


def apply_colormap(values: np.ndarray, vmin: float, vmax: float) -> np.ndarray:
    """Viridis colours (..., 3) uint8 of ``values`` on [vmin, vmax].

    Values outside clip to the ends; NaN is `NAN_COLOR`; a constant range (vmin == vmax)
    gives the low end.

    >>> apply_colormap(np.array([0.0, 10.0, np.nan]), 0.0, 10.0).tolist()
    [[68, 1, 84], [253, 231, 37], [255, 0, 255]]
    """
    return _colormap_unit(_unit(values, vmin, vmax))


def _image_rgba(image: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """An HW or HWC (C = 1..4) image as uint8 (H, W, 3), or (H, W, 4) when it has alpha.

    One channel is grey, two are grey + alpha. A pixel with a NaN becomes NAN_COLOR.
    """
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[..., None]
    if image.dtype == np.uint8 and (lo, hi) == (0.0, 255.0):
        levels = image
        nan = None
    else:
        unit = _unit(image, lo, hi)
        nan = np.isnan(unit).any(axis=2)
        levels = np.rint(np.clip(np.nan_to_num(unit, nan=0.0), 0.0, 1.0) * 255).astype(np.uint8)
    channels = levels.shape[2]
    colour = levels[..., :3] if channels >= 3 else np.repeat(levels[..., :1], 3, axis=2)
    if nan is not None and nan.any():
        colour = colour.copy()
        colour[nan] = NAN_COLOR
    if channels in (2, 4):
        alpha = levels[..., -1:].copy()
        if nan is not None:
            alpha[nan] = 255
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
            "choose one channel (--channel) or draw the channels as a montage"
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
    if isinstance(value, int | np.integer):
        return str(int(value))
    return "x".join(str(int(v)) for v in value)


def cell_label(mode: str, window, stride, shape: Sequence[int], **geometry) -> str:
    """The label of one pooled result: mode, window, stride, more geometry, output shape.

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


@dataclass(frozen=True)
class _Bar:
    title: str
    vmin: float
    vmax: float


def _bar_width(bar: _Bar, font) -> int:
    """Width of one colour bar with its tick labels and title."""
    ticks = max(_text_width(_fmt(bar.vmin), font), _text_width(_fmt(bar.vmax), font))
    return max(BAR_WIDTH + TICK_LENGTH + 3 + ticks, _text_width(bar.title, font)) + GAP


def _bars_width(bars: dict[int, list[_Bar]], font) -> int:
    """Width of the colour-bar column at the right of the tiles (0 without bars)."""
    rows = [sum(_bar_width(bar, font) for bar in row) for row in bars.values()]
    return GAP + max(rows) if rows else 0


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
    reserved = 2 * MARGIN + (columns - 1) * GAP + _bars_width(bars, _font(MAX_FONT))
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
) -> Figure:
    """Lay out equal tiles in rows, each under its label band; colour bars to the right of
    their rows; the legend below. The single place that places anything."""
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
    grid_w = columns * tile_w + (columns - 1) * GAP
    content_w = grid_w + _bars_width(bars, font)
    legend_lines = _legend_lines(legend, font, content_w)
    legend_h = GAP + len(legend_lines) * line if legend_lines else 0
    body_h = max(tile_h, BAR_MIN_LINES * line) if bars else tile_h  # room for the ticks
    row_h = band + body_h
    width = 2 * MARGIN + content_w
    height = 2 * MARGIN + len(grid) * row_h + (len(grid) - 1) * GAP + legend_h
    canvas = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    boxes: list[Box] = []
    for r, row in enumerate(grid):
        top = MARGIN + r * (row_h + GAP)
        for c, tile in enumerate(row):
            if tile is None:
                continue
            left = MARGIN + c * (tile_w + GAP)
            first = top + band - LABEL_PAD - len(labels[r, c]) * line  # text sits on its tile
            for i, text in enumerate(labels[r, c]):
                draw.text((left, first + i * line), text, fill=TEXT, font=font)
            boxes.append(Box("label", r, c, left, top, left + tile_w, top + band))
            canvas.paste(tile.image, (left, top + band))
            boxes.append(Box(tile.role, r, c, left, top + band, left + tile_w, top + band + tile_h))
        x = MARGIN + grid_w + GAP
        for bar in bars.get(r, []):
            boxes += _draw_bar(canvas, draw, bar, font, (x, top, band, body_h), (r, columns))
            x += _bar_width(bar, font)
    if legend_lines:
        boxes.append(_draw_legend(canvas, draw, legend_lines, font, height - MARGIN - legend_h))
    return Figure(canvas, tuple(boxes), scale)


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
    if band:
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
    with its colour bar. kind="map" draws 2-D feature maps through viridis on the
    original's range, with a colour bar.

    >>> image = np.arange(16, dtype=np.uint8).reshape(4, 4)
    >>> pooled = image.reshape(2, 2, 2, 2).max(axis=(1, 3))
    >>> figure = comparison_grid(image, [[Cell("max", pooled)]], diff=True)
    >>> [box.role for box in figure.boxes if not box.role.startswith(("label", "colorbar-"))]
    ['original', 'cell', 'diff', 'colorbar']
    """
    original = _checked(original, kind, "original")
    rows = [list(row) for row in rows]
    pooled = [[_checked_cell(cell, original, kind) for cell in row] for row in rows]
    shape = original.shape[:2]
    lo, hi = image_range(original) if kind == "image" else value_range(original)
    stride = 2 if diff else 1
    columns = 1 + max((len(row) for row in rows), default=0)
    diffs = [[abs_difference(original, p) for p in row] for row in pooled] if diff else []
    dmax = max((value_range(d)[1] for row in diffs for d in row), default=0.0)
    bars: dict[int, list[_Bar]] = {}
    if kind == "map":
        bars[0] = [_Bar("value", lo, hi)]
    if diffs:
        bars.setdefault(1, []).append(_Bar("|diff|", 0.0, dmax))
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
    return _compose(grid, scale=scale, bars=bars)


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
) -> Figure:
    """Channels of a (C, H, W) feature map, tiled in a square-ish grid on one viridis scale.

    ``channels``: the first N channels, or a list of channel indices. Tile k is
    ("channel", k // columns, k % columns), labelled with its channel index; one colour
    bar; the legend prints the shared value range. A 2-D map is one channel.

    >>> figure = montage(np.arange(5 * 4 * 4.0).reshape(5, 4, 4), channels=4)
    >>> len(figure.roles("channel")), figure.box("channel", 1, 1).size
    (4, (256, 256))
    """
    maps = np.asarray(maps)
    if maps.ndim == 2:
        maps = maps[None]
    if maps.ndim != 3:
        raise PoolError(f"feature maps of shape {maps.shape} are not (C, H, W); pass CHW")
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
    shown = _checked(maps[chosen[0]], "map", "feature map")
    lo, hi = value_range or _value_range(maps[chosen])
    columns = math.ceil(math.sqrt(len(chosen)))
    bars = {0: [_Bar("value", lo, hi)]}
    scale, size = _layout_scale(shown.shape, columns, bars)
    tiles = [
        _Tile("channel", f"channel {c}", _render(maps[c], shown.shape, size, "map", lo, hi))
        for c in chosen
    ]
    grid = [tiles[i : i + columns] for i in range(0, len(tiles), columns)]
    legend: list[tuple[RGB | None, str]] = [
        (None, f"{len(chosen)} of {count} channels, values {_fmt(lo)} .. {_fmt(hi)}")
    ]
    if np.isnan(maps[chosen]).any():
        legend.append((NAN_COLOR, "NaN"))
    return _compose(grid, scale=scale, bars=bars, legend=legend)


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
    return Figure(figure.image, boxes, 1)


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


def series_plot(original: np.ndarray, pooled: Sequence[Series], *, title: str = "") -> Figure:
    """Line plot of a 1-D original and pooled series on one axis, with a legend.

    Each pooled series is drawn at its ``positions`` (e.g. `window_centres`) with dots.
    The plot is tile ("plot", 0, 0); the legend names each line in its colour, the
    original first (``SERIES_COLORS[0]``).

    >>> x = np.sin(np.arange(40) / 4)
    >>> y = x.reshape(10, 4).max(axis=1)
    >>> figure = series_plot(x, [Series("max k=4", y, window_centres(10, 4))])
    >>> figure.box("plot").size[0] >= PLOT_SIZE[0]
    True
    """
    original = np.asarray(original, dtype=np.float64)
    if original.ndim != 1 or original.size < 1:
        raise PoolError(f"series of shape {original.shape} is not 1-D; pass a 1-D array")
    series = [Series("original", original)] + [
        Series(s.label, np.asarray(s.values, dtype=np.float64).ravel(), s.positions) for s in pooled
    ]
    if len(series) > len(SERIES_COLORS):
        raise PoolError(
            f"{len(series) - 1} pooled series on one plot; pass at most {len(SERIES_COLORS) - 1}"
        )
    points = [(_positions(s), s.values) for s in series]
    width = int(min(MAX_WIDTH - 2 * MARGIN, max(PLOT_SIZE[0], 8 * original.size)))
    plot = _draw_plot(points, (width, PLOT_SIZE[1]), _font(PLOT_FONT))
    tile = _Tile("plot", title or "original and pooled series", plot)
    legend = [(SERIES_COLORS[i], s.label) for i, s in enumerate(series)]
    return _compose([[tile]], scale=1, font_size=PLOT_FONT, legend=legend)


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


def _span(values: np.ndarray, pad: float) -> tuple[float, float]:
    """Finite (lo, hi) of ``values`` widened by ``pad`` of the span (±0.5 when constant)."""
    lo, hi = value_range(values)
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


def _draw_plot(points, size: tuple[int, int], font) -> Image.Image:
    """Axes with tick labels, faint grid lines, and each (x, y) series as a line."""
    x_lo, x_hi = _span(np.concatenate([x for x, _ in points]), 0.0)
    y_lo, y_hi = _span(np.concatenate([y for _, y in points]), 0.05)
    y_ticks = _nice_ticks(y_lo, y_hi, 5)
    x_ticks = _nice_ticks(x_lo, x_hi, 8, integer=True)
    line = _line_height(font)
    left = 8 + max(_text_width(_fmt(t), font) for t in y_ticks)
    right, top, bottom = 16, line // 2, line + 8
    width, height = size
    plot = Image.new("RGB", (width + left + right, height + top + bottom), BACKGROUND)
    draw = ImageDraw.Draw(plot)

    def to_px(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        px = left + (x - x_lo) / (x_hi - x_lo) * (width - 1)
        py = top + (y_hi - y) / (y_hi - y_lo) * (height - 1)
        return np.stack([px, py], axis=-1)

    for tick in y_ticks:
        y = to_px(np.array(x_lo), np.array(tick))[1]
        draw.line([(left, y), (left + width - 1, y)], fill=GRID_LINE)
        draw.text((left - 6, y), _fmt(tick), fill=TEXT, font=font, anchor="rm")
    for tick in x_ticks:
        x = to_px(np.array(tick), np.array(y_lo))[0]
        draw.line([(x, top + height), (x, top + height + 4)], fill=TEXT)
        draw.text((x, top + height + 6), _fmt(tick), fill=TEXT, font=font, anchor="mt")
    draw.line([(left, top), (left, top + height), (left + width, top + height)], fill=TEXT)
    for i, (x, y) in enumerate(points):
        colour = SERIES_COLORS[i]
        xy = to_px(x, y)
        finite = np.isfinite(xy).all(axis=1)
        for run in np.split(np.arange(len(xy)), np.flatnonzero(~finite)):
            run = run[finite[run]]
            if len(run) > 1:
                thickness = LINE_WIDTH if i == 0 else LINE_WIDTH + 1
                draw.line([tuple(p) for p in xy[run]], fill=colour, width=thickness, joint="curve")
        if i > 0 and len(x) <= width // 8:
            for px, py in xy[finite]:
                draw.ellipse([px - 3, py - 3, px + 3, py + 3], fill=colour)
    return plot


def gradient_map(
    image: np.ndarray,
    grad: np.ndarray,
    *,
    mode: str,
    kind: str = "image",
    label: str | None = None,
) -> Figure:
    """The backward pass made visible: the image ("original", col 0) and its gradient
    ("gradient", col 1).

    ``grad`` is dL/dx for dL/dy = 1 (`pool_backward` of ones), with the image's height
    and width; an HWC ``grad`` is combined over channels: max for routed modes (the
    busiest channel's count), mean otherwise.

    - max, min, median (``ROUTING_MODES``): the image dimmed to grey, each pixel that
      receives gradient painted ``ROUTE_COLORS[n - 1]`` for n = 1, 2 or 3+ windows
      (n = round(|grad|), at least 1 where grad != 0), with a legend.
    - other modes: the gradient weight per pixel through viridis, with a colour bar.

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
    if grad.ndim == 3:
        grad = np.abs(grad).max(axis=2) if routed else grad.mean(axis=2)
    if grad.shape != image.shape[:2]:
        raise PoolError(
            f"gradient of shape {grad.shape} does not match the image's height and width "
            f"{image.shape[:2]}; pass pool_backward's result for this image"
        )
    shape = image.shape[:2]
    lo, hi = image_range(image) if kind == "image" else value_range(image)
    bars: dict[int, list[_Bar]] = {0: [_Bar("value", lo, hi)]} if kind == "map" else {}
    if not routed:
        bars.setdefault(0, []).append(_Bar("dL/dx", *value_range(grad)))
    scale, size = _layout_scale(shape, 2, bars, GRADIENT_MIN_CELL)
    shown = _render(image, shape, size, kind, lo, hi)
    left = _Tile("original", f"original {_dims(image.shape)}", shown)
    if routed:
        overlay = _routing_overlay(image, grad, kind, lo, hi)
        right = Image.fromarray(_fit(overlay, size))
        text = label or f"{mode}: pixels that receive gradient"
        names = ("1", "2", "3 or more")
        legend = [(None, "windows routing gradient here:")]
        legend += [(colour, name) for colour, name in zip(ROUTE_COLORS, names, strict=True)]
        legend.append((None, "(dimmed: none)"))
        if np.isnan(grad).any():
            legend.append((NAN_COLOR, "NaN"))
    else:
        right = _heat_tile(grad, size, *value_range(grad))
        text = label or f"{mode}: gradient weight per input pixel"
        legend = []
    tiles = [[left, _Tile("gradient", text, right)]]
    return _compose(tiles, scale=scale, bars=bars, legend=legend)


def _routing_overlay(image, grad, kind: str, lo: float, hi: float) -> np.ndarray:
    """RGB uint8: the image dimmed to grey, pixels with gradient in their count's colour."""
    if kind == "map":
        grey = np.clip(np.nan_to_num(_unit(image, lo, hi)), 0.0, 1.0) * 255.0
    else:
        rgb = _composite(_image_rgba(image, lo, hi)).astype(np.float32)
        grey = rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    out = np.repeat(np.rint(grey * DIM).astype(np.uint8)[..., None], 3, axis=2)
    nan = np.isnan(grad)
    counts = np.rint(np.abs(np.nan_to_num(grad))).astype(np.int64)
    counts[(np.nan_to_num(grad) != 0) & (counts == 0)] = 1
    for n, colour in enumerate(ROUTE_COLORS, start=1):  # the last colour keeps n and more
        out[counts >= n] = colour
    out[nan] = NAN_COLOR
    return out
