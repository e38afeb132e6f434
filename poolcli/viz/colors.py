"""Values to pixels: ranges from finite values, the colour map, NaN and infinities in their own colours."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..core.values import finite_range
from ..errors import PoolError, param
from .colormaps import VIRIDIS
from .style import CHECKER, CHECKER_PX, CHUNK_ROWS, KINDS, NAN_COLOR, NEGINF_COLOR, POSINF_COLOR, Cell


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


finite_value_range = value_range  # for functions whose keyword argument `value_range` hides it


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


def special_legend(*arrays: np.ndarray, notes: tuple[str, str, str] = ("", "", "")):
    """Legend entries for the NaN, +inf and -inf that occur in ``arrays``."""
    names = ("NaN", "+inf", "-inf")
    colours = (NAN_COLOR, POSINF_COLOR, NEGINF_COLOR)
    return [
        (colour, name + note)
        for found, colour, name, note in zip(specials(*arrays), colours, names, notes, strict=True)
        if found
    ]


def unit_interval(values: np.ndarray, vmin: float, vmax: float) -> np.ndarray:
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


def colormap_unit(unit: np.ndarray) -> np.ndarray:
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
    return colormap_unit(unit_interval(values, vmin, vmax))


def image_rgba(image: np.ndarray, lo: float, hi: float) -> np.ndarray:
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
        unit = unit_interval(image, lo, hi)
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


def composite(rgba: np.ndarray) -> np.ndarray:
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
    array = drawable(array, kind, "array")
    if kind == "map":
        lo, hi = value_range or finite_value_range(array)
        return apply_colormap(array, lo, hi)
    lo, hi = value_range or image_range(array)
    return composite(image_rgba(array, lo, hi))


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
        for start in range(0, height, CHUNK_ROWS):
            stop = min(height, start + CHUNK_ROWS)
            shown = pooled[rows[start:stop, None], cols[None, :]].astype(np.float64)
            diff = np.abs(original[start:stop].astype(np.float64) - shown)
            out[start:stop] = diff.mean(axis=2) if diff.ndim == 3 else diff
    return out


def drawable(array: np.ndarray, kind: str, name: str) -> np.ndarray:
    """``array`` as an ndarray that can be drawn as ``kind``, or a PoolError naming the fix."""
    if kind not in KINDS:
        raise PoolError(f"kind {kind!r} is not one of {KINDS}; use 'image' or 'map'")
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


def checked_cell(cell: Cell, original: np.ndarray, kind: str) -> np.ndarray:
    """The cell's pooled array, checked to be drawable beside ``original``."""
    pooled = drawable(cell.pooled, kind, f"cell {cell.label!r}")
    if pooled.shape[2:] != original.shape[2:] or pooled.ndim != original.ndim:
        raise PoolError(
            f"cell {cell.label!r} has shape {pooled.shape} but the original has "
            f"{original.shape}; pool only the height and width axes (axes=(0, 1))"
        )
    return pooled

