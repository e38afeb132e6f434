"""Gradient maps: where the backward pass sends gradient, and the routing overlay for max and min."""

from __future__ import annotations

import numpy as np
from PIL import Image

from ..errors import PoolError
from .colors import (
    colormap_unit,
    composite,
    drawable,
    image_range,
    image_rgba,
    special_legend,
    unit_interval,
    value_range,
)
from .compose import Bar, TileSpec, compose, heat_tile, render, resize_to, tile_scale
from .style import (
    DIM,
    GRADIENT_MIN_CELL,
    NAN_COLOR,
    NEGINF_COLOR,
    POSINF_COLOR,
    RGB,
    ROUTE_COLORS,
    ROUTING_MODES,
    Figure,
)
from .text import dims


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
    image = drawable(image, kind, "image")
    routed = mode in ROUTING_MODES
    grad, combined = _one_plane(np.asarray(grad, dtype=np.float64), image, routed)
    if grad.shape != image.shape[:2]:
        raise PoolError(
            f"gradient of shape {grad.shape} does not match the image's height and width "
            f"{image.shape[:2]}; pass pool_backward's result for this image"
        )
    shape = image.shape[:2]
    lo, hi = image_range(image) if kind == "image" else value_range(image)
    bars: dict[int, list[Bar]] = {0: [Bar("value", lo, hi, after=0)]} if kind == "map" else {}
    if not routed:
        bars.setdefault(0, []).append(Bar("dL/dx", *value_range(grad), after=1))
    scale, size = tile_scale(shape, 2, bars, GRADIENT_MIN_CELL)
    shown = render(image, shape, size, kind, lo, hi)
    left = TileSpec("original", original_label or f"original {dims(image.shape)}", shown)
    legend: list[tuple[RGB | None, str]] = []
    if routed:
        right = Image.fromarray(resize_to(_routing_overlay(image, grad, kind, lo, hi), size))
        text = (label or f"{mode}: pixels that receive gradient") + combined
        legend += _ROUTING_LEGEND
    else:
        right = heat_tile(grad, size, *value_range(grad))
        text = (label or f"{mode}: gradient weight per input pixel") + combined
    legend += special_legend(image, grad)
    tiles = [[left, TileSpec("gradient", text, right)]]
    return compose(tiles, scale=scale, bars=bars, legend=legend)


_ROUTING_LEGEND: list[tuple[RGB | None, str]] = [
    (None, "windows routing gradient here:"),
    *zip(ROUTE_COLORS, ("1", "2", "3 or more"), strict=True),
    (None, "dimmed: no window routes gradient to the pixel (dL/dx = 0)"),
]


def _one_plane(grad: np.ndarray, image: np.ndarray, routed: bool) -> tuple[np.ndarray, str]:
    """An HWC gradient combined over its channels (max of |dL/dx| where routed, else the mean),
    and the words that say so in the label (none for a single channel)."""
    if grad.ndim != 3:
        return grad, ""
    with np.errstate(all="ignore"):
        grad = np.abs(grad).max(axis=2) if routed else grad.mean(axis=2)
    if image.ndim == 3 and image.shape[2] > 1:
        how = "max of |dL/dx|" if routed else "mean of dL/dx"
        return grad, f" ({how} over the {image.shape[2]} channels)"
    return grad, ""


def _routing_overlay(image, grad, kind: str, lo: float, hi: float) -> np.ndarray:
    """RGB uint8: the image dimmed to grey (its NaN and ±inf dimmed in their colours),
    pixels with gradient in their count's colour, a NaN or infinite gradient in its own."""
    values = np.asarray(image)
    bad = ~np.isfinite(values) if values.dtype.kind == "f" else None
    if kind == "map":
        unit = unit_interval(values, lo, hi)
        rgb = colormap_unit(unit)
        grey = np.clip(np.where(np.isfinite(unit), unit, 0.0), 0.0, 1.0) * 255.0
        special = bad
    else:
        rgb = composite(image_rgba(values, lo, hi))
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

