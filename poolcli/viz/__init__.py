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

import numpy as np  # noqa: F401 (the examples above use it)

from .colormaps import VIRIDIS
from .colors import abs_difference, apply_colormap, image_range, specials, to_display, upsample_nearest, value_range
from .gradient import gradient_map
from .grids import colorbar, comparison_grid, montage, side_by_side, stack
from .series import SERIES_NOTES, gradient_series, series_plot, series_style, window_centres
from .style import (
    BACKGROUND,
    BAR_MIN_LINES,
    BAR_WIDTH,
    CHECKER,
    CHECKER_PX,
    DEFAULT_CHANNELS,
    DIM,
    GAP,
    GRADIENT_MIN_CELL,
    GRID_LINE,
    LABEL_PAD,
    LINE_WIDTH,
    MARGIN,
    MARKER_RADIUS,
    MARKER_SPACING,
    MARKERS,
    MAX_FONT,
    MAX_WIDTH,
    MIN_CELL,
    MIN_FONT,
    NAN_COLOR,
    NEGINF_COLOR,
    ORIGINAL_COLOR,
    PANEL_HEIGHT,
    PLOT_FONT,
    PLOT_SIZE,
    POOLED_WIDTH,
    POSINF_COLOR,
    RGB,
    ROUTE_COLORS,
    ROUTING_MODES,
    SCALES,
    SERIES_COLORS,
    SPECIAL_MARK,
    TEXT,
    TICK_LENGTH,
    TILE_PER_FONT_PX,
    Box,
    Cell,
    Figure,
    PlotAxes,
    Series,
)
from .text import cell_label

__all__ = [
    "VIRIDIS",
    "BACKGROUND",
    "BAR_MIN_LINES",
    "BAR_WIDTH",
    "Box",
    "CHECKER",
    "CHECKER_PX",
    "Cell",
    "DEFAULT_CHANNELS",
    "DIM",
    "Figure",
    "GAP",
    "GRADIENT_MIN_CELL",
    "GRID_LINE",
    "LABEL_PAD",
    "LINE_WIDTH",
    "MARGIN",
    "MARKERS",
    "MARKER_RADIUS",
    "MARKER_SPACING",
    "MAX_FONT",
    "MAX_WIDTH",
    "MIN_CELL",
    "MIN_FONT",
    "NAN_COLOR",
    "NEGINF_COLOR",
    "ORIGINAL_COLOR",
    "PANEL_HEIGHT",
    "PLOT_FONT",
    "PLOT_SIZE",
    "POOLED_WIDTH",
    "POSINF_COLOR",
    "PlotAxes",
    "RGB",
    "ROUTE_COLORS",
    "ROUTING_MODES",
    "SCALES",
    "SERIES_COLORS",
    "SERIES_NOTES",
    "SPECIAL_MARK",
    "Series",
    "TEXT",
    "TICK_LENGTH",
    "TILE_PER_FONT_PX",
    "abs_difference",
    "apply_colormap",
    "cell_label",
    "colorbar",
    "comparison_grid",
    "gradient_map",
    "gradient_series",
    "image_range",
    "montage",
    "numpy as np  # noqa: F401 (the examples above use it)",
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
