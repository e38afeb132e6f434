"""Colour weighted by alpha: how the averaging modes pool images with transparency.

A pixel's colour counts in proportion to its alpha, as Pillow, ImageMagick and every
compositor do (premultiplied alpha): colour under a fully transparent pixel is no colour at
all, so averaging it in would darken every edge. `pool_premultiplied` multiplies colour by
alpha, pools every channel with the mode, then divides the pooled colour by the pooled
alpha; the alpha channel itself is pooled as it is. For avg this is the alpha-weighted mean
colour sum(c*a)/sum(a). max, min and median pick values rather than mix them, and pool
each channel as it is.
"""

from __future__ import annotations

import numpy as np

from ..core.modes import names
from ..core.spec import PoolSpec
from .api import pool_with

MIXING_MODES = names(mixes=True)


def weights_by_alpha(mode: str, channels: int, source_mode: str | None, alpha: str) -> bool:
    """Whether an image of `channels` channels (its last one alpha, as `source_mode` says:
    LA, RGBA, LA;16, RGBA;16) is pooled with premultiplied alpha."""
    has_alpha = source_mode is not None and source_mode.split(";")[0] in ("LA", "RGBA") and channels in (2, 4)
    return alpha == "premultiplied" and mode in MIXING_MODES and has_alpha


def pool_premultiplied(image: np.ndarray, dtype: np.dtype | None, spec: PoolSpec) -> tuple[np.ndarray, np.ndarray]:
    """(result in `dtype`, the natural result) of pooling an H x W x C image whose last
    channel is alpha, colour weighted by alpha. The alpha channel is pooled as any channel
    is; the colour of avg and sum is the exact ratio sum(c*a) / sum(a) (one rounding), that
    of l2 and lp the mode of c*a over the mode of a. An integer `dtype` is rounded half up
    and clipped, as every integer output is (docs/semantics.md); colour where the window's
    alpha is all 0 is 0.

    >>> edge = np.array([[[255, 255], [0, 0]]], np.uint8)  # gray + alpha: white, then transparent
    >>> pool_premultiplied(edge, np.dtype(np.uint8), PoolSpec((1, 2), axes=(0, 1), mode="avg"))[0].tolist()
    [[[255, 128]]]
    """
    alpha = image[..., -1:]
    weights = alpha.astype(np.float64)
    colour_spec = spec
    if spec.mode in names(reducer="sum", power=None):  # avg, sum: the divisor cancels, a ratio of exact sums
        colour_spec = spec.but(mode="sum", divisor_override=None, count_include_pad=True)
    numerator = pool_with(colour_spec, image[..., :-1] * weights)
    denominator = pool_with(colour_spec, weights)
    with np.errstate(invalid="ignore", divide="ignore"):
        colour = np.where(denominator > 0, numerator / denominator, 0.0)
    natural = np.concatenate([colour, pool_with(spec, alpha)], axis=-1)
    if dtype is None or dtype.kind == "f":
        return natural.astype(dtype or np.float64, copy=False), natural
    info = np.iinfo(dtype)
    rounded = np.clip(np.floor(colour + 0.5), info.min, info.max).astype(dtype)
    return np.concatenate([rounded, pool_with(spec.but(dtype=dtype), alpha)], axis=-1), natural
