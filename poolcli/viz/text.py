"""Text in figures: the font size for a tile, wrapping, number formats and cell labels."""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import cache

import numpy as np
from PIL import ImageFont

from .style import MAX_FONT, MIN_FONT, TILE_PER_FONT_PX


@cache
def builtin_font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """Pillow's built-in scalable font at ``size`` pixels (no font file needed)."""
    return ImageFont.load_default(size=size)


def label_font_size(tile_width: int) -> int:
    """Label text size for tiles ``tile_width`` pixels wide."""
    return int(min(MAX_FONT, max(MIN_FONT, round(tile_width / TILE_PER_FONT_PX))))


def line_height(font) -> int:
    return math.ceil(font.size * 1.25)


def text_width(text: str, font) -> int:
    return math.ceil(font.getlength(text))


def wrap(text: str, font, width: int) -> list[str]:
    """``text`` broken at its newlines, then at spaces (or inside long words) to fit ``width``."""
    lines: list[str] = []
    for paragraph in text.split("\n"):
        line = ""
        for word in paragraph.split():
            candidate = f"{line} {word}" if line else word
            if text_width(candidate, font) <= width:
                line = candidate
                continue
            if line:
                lines.append(line)
            while len(word) > 1 and text_width(word, font) > width:
                cut = len(word) - 1
                while cut > 1 and text_width(word[:cut], font) > width:
                    cut -= 1
                lines.append(word[:cut])
                word = word[cut:]
            line = word
        lines.append(line)
    return lines


def fmt(value: float) -> str:
    """A number for a tick or a range, in at most 4 significant digits."""
    text = f"{value:.4g}"
    return "0" if text == "-0" else text


def dims(value) -> str:
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
    return f"{mode} k={dims(window)} s={dims(stride)}{extra} -> {dims(tuple(shape))}"

