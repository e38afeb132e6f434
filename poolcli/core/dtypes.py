"""Output dtypes: each mode's natural dtype and the one cast every result goes through
(integers round half up and clip, NaN becomes 0), shared by the NumPy engine and the CuPy
kernels so both give the same values.
"""

from __future__ import annotations

import numpy as np

from .modes import MODES


def natural_dtype(dtype: np.dtype, mode: str) -> np.dtype:
    """The output dtype of each mode when `dtype=` is not set (docs/semantics.md, Dtypes).

    >>> natural_dtype(np.dtype(np.uint8), "avg"), natural_dtype(np.dtype(np.int16), "sum")
    (dtype('float64'), dtype('int64'))
    """
    rule = MODES[mode].output
    if rule == "same":
        return dtype
    if rule == "sum":
        if dtype.kind == "f":
            return dtype
        return np.dtype(np.uint64) if dtype.kind == "u" else np.dtype(np.int64)
    return dtype if dtype.kind == "f" else np.dtype(np.float64)


def cast_value(value: int | float, source: np.dtype, target: np.dtype) -> int | float:
    """One value that `source` holds, as an array of `target` holds it after the one cast
    (a nodata carried to a pooled output).

    >>> u16, i16, f64, u8 = (np.dtype(t) for t in (np.uint16, np.int16, np.float64, np.uint8))
    >>> cast_value(65535, u16, f64), cast_value(-9999, i16, u8)
    (65535.0, 0)
    """
    return finalize(np, np.asarray([value], dtype=source), target, None)[0].item()


def finalize(xp, y, natural: np.dtype, requested: np.dtype | None):
    """Cast to the output dtype: integers round half up (floor(v + 0.5)) and clip to the
    dtype's range, whatever the source (float or a wider integer); NaN -> 0."""
    target = requested if requested is not None else natural
    if target.kind == "b":
        if y.dtype.kind == "f":
            y = _round_half_up(xp, y)
        return y != 0
    if target.kind in "iu":
        return _float_to_int(xp, y, target) if y.dtype.kind == "f" else _int_to_int(xp, y, target)
    return y.astype(target, copy=False)


def _round_half_up(xp, y):
    """floor(y + 0.5), exactly: adding 0.5 first would round up odd integers near 2**53
    (2**24 in float32), where the float cannot hold the half."""
    rounded = xp.floor(y)
    with np.errstate(invalid="ignore"):  # inf - inf: NaN, which adds nothing to an infinity
        rounded += (y - rounded) >= 0.5
    return rounded


def _float_to_int(xp, y, target: np.dtype):
    """Floats rounded half up and clipped to `target` (NaN -> 0).

    Where the float cannot hold the range's limits (int64/uint64: 2**63 - 1 rounds up to
    2**63), overflow is found against a power of two, exact in every float, and the clip
    stops at the largest float inside the range, so nothing wraps around.
    """
    info = np.iinfo(target)
    rounded = _round_half_up(xp, y)
    finite = np.finfo(rounded.dtype)
    upper = 2.0 ** (info.bits - (info.min < 0))  # the first value past the range
    exact_limits = upper <= 2.0 ** finite.nmant  # every limit is a float of y's type
    if not exact_limits:
        over, under = rounded >= np.float64(upper), rounded < np.float64(info.min)
    xp.nan_to_num(rounded, copy=False, nan=0.0)
    top = np.nextafter(finite.dtype.type(upper), 0) if upper <= finite.max else finite.max
    xp.clip(rounded, max(finite.dtype.type(info.min), finite.min), top, out=rounded)
    result = rounded.astype(target)
    if not exact_limits:
        result[over] = info.max
        result[under] = info.min
    return result


def _int_to_int(xp, y, target: np.dtype):
    """Integers (or bools) cast to `target`, clipped to its range where it is narrower."""
    if np.can_cast(y.dtype, target, casting="safe") or not y.size:
        return y.astype(target, copy=False)
    info, source = np.iinfo(target), np.iinfo(y.dtype)
    low, high = max(int(info.min), int(source.min)), min(int(info.max), int(source.max))
    if int(y.min()) < low or int(y.max()) > high:
        y = xp.clip(y, y.dtype.type(low), y.dtype.type(high))
    return y.astype(target, copy=False)


# ================================================================== backward


def sixteen_to_eight_bits(xp, y):
    """16-bit values (any real dtype, 0..65535) on the 8-bit scale: v * 255 / 65535 = v / 257,
    rounded half up once and clipped to 0..255 (NaN becomes 0), as ImageMagick scales 16 to 8
    bits; a plain cast would clip every value above 255.

    >>> sixteen_to_eight_bits(np, np.array([0, 128, 129, 32896.0, 65535])).tolist()
    [0, 0, 1, 128, 255]
    """
    return finalize(xp, xp.asarray(y, dtype=np.float64) / 257.0, np.dtype(np.float64), np.dtype(np.uint8))
