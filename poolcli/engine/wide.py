"""Exact sums of 64-bit integers in 32-bit limbs, and their exact rounding."""

from __future__ import annotations

import numpy as np

from ..core.geometry import (
    PoolPlan,
)
from ..core.modes import MODES
from ..errors import PoolError
from .divisors import (
    broadcast_counts,
    divisor_counts,
    flips_sign,
    largest_divisor,
    less_absent,
    window_divisor,
    window_taps,
)
from .taps import reduce_windows

LIMB_BITS = 32

LIMB_MASK = (1 << LIMB_BITS) - 1

MAX_WIDE_TAPS = 2**31 - 1  # each limb's window sum (< taps * 2**32) must fit an int64


def wide_sums(xp, a, plan: PoolPlan, target: np.dtype, absent=None):
    """sum or avg of integer windows whose sums overflow 64 bits, exactly, as `target`.

    Each value splits into a high and a low 32-bit limb; each limb's window sum is exact in
    int64, and the limbs recombine exactly: a sum clipped to an integer target's range, or
    rounded once to a float64 (avg: that float divided by the divisor), or for avg to an
    integer target floor(sum / divisor + 1/2) by long division, then clipped. `absent`: per
    window, the cells that leave the divisor (engine/missing.py).
    """
    if window_taps(plan) > MAX_WIDE_TAPS:
        raise PoolError(f"a window of {window_taps(plan)} taps over {a.dtype} values near its limits "
                        f"needs more than 64-bit sums; use windows of at most {MAX_WIDE_TAPS} taps "
                        "or convert x to float64")
    high, low = split_limbs(xp, a)
    int64 = np.dtype(np.int64)
    high, low = (reduce_windows(xp, limbs, plan, xp.add, 0, int64) for limbs in (high, low))
    high, low = carry(xp, high, low)
    if not MODES[plan.mode].divisor:  # sum
        if target.kind == "f":
            return limbs_to_float(xp, high, low).astype(target, copy=False)
        return _limbs_to_int(xp, high, low, target)
    if target.kind == "f":
        mean = limbs_to_float(xp, high, low) / window_divisor(xp, plan, np.dtype(np.float64), absent)
        return mean.astype(target, copy=False)
    if flips_sign(plan):  # floor(S / d + 1/2) = floor(-S / |d| + 1/2)
        high, low = carry(xp, -high, -low)
    if plan.divisor_override is not None:
        divisor = largest_divisor(plan)
    else:
        divisor = less_absent(xp, broadcast_counts(xp, plan, divisor_counts(plan), int64), absent)
    high, low = _rounded_quotient(xp, high, low, divisor)
    return _limbs_to_int(xp, high, low, target)


def split_limbs(xp, a):
    """Integers as int64 limbs (high, low): a = high * 2**32 + low, 0 <= low < 2**32."""
    wide = a.astype(np.uint64 if a.dtype.kind in "ub" else np.int64, copy=False)
    return (wide >> LIMB_BITS).astype(np.int64), (wide & LIMB_MASK).astype(np.int64)


def carry(xp, high, low):
    """Normalise limbs in place so that 0 <= low < 2**32 (low > -2**32 on entry: the shift is arithmetic)."""
    high += low >> LIMB_BITS
    low &= LIMB_MASK
    return high, low


def limbs_to_float(xp, high, low):
    """The float64 nearest high * 2**32 + low (0 <= low < 2**32, |high| < 2**62), rounded once.

    Up to |high| = 2**53 the high part is exact as a float, so one addition rounds; above,
    round to odd at 55 bits (2 * high + the next bit, the rest as a sticky bit), whose
    conversion to a float64 then rounds correctly.
    """
    near = high.astype(np.float64) * float(2**LIMB_BITS) + low.astype(np.float64)
    odd = (high * 2 + (low >> (LIMB_BITS - 1))) | ((low & (LIMB_MASK >> 1)) != 0)
    far = odd.astype(np.float64) * float(2 ** (LIMB_BITS - 1))
    return xp.where(xp.abs(high) <= 2**53, near, far)


def _limbs_to_int(xp, high, low, target: np.dtype):
    """high * 2**32 + low clipped to `target`'s range, as `target`."""
    info = np.iinfo(target)
    top, bottom = divmod(int(info.max), 2**LIMB_BITS), divmod(int(info.min), 2**LIMB_BITS)
    over = (high > top[0]) | ((high == top[0]) & (low > top[1]))
    under = (high < bottom[0]) | ((high == bottom[0]) & (low < bottom[1]))
    high = xp.where(over, np.int64(top[0]), xp.where(under, np.int64(bottom[0]), high))
    low = xp.where(over, np.int64(top[1]), xp.where(under, np.int64(bottom[1]), low))
    container = np.dtype(np.uint64 if target == np.uint64 else np.int64)
    value = high.astype(container) * container.type(2**LIMB_BITS) + low.astype(container)
    return value.astype(target, copy=False)


def _rounded_quotient(xp, high, low, divisor):
    """floor(S / divisor + 1/2) for S = high * 2**32 + low, as limbs, by long division.

    `divisor` is a positive int64 (a scalar or an array that broadcasts) below 2**63. The
    high limb divides in one step; the low limb's bits come down in chunks small enough
    that the running remainder, shifted, stays below 2**64.
    """
    quotient_high = xp.floor_divide(high, divisor)
    rest = xp.remainder(high, divisor).astype(np.uint64)
    d = xp.asarray(divisor).astype(np.uint64)
    step = 64 - int(d.max()).bit_length()
    quotient_low = xp.zeros_like(rest)
    remaining = LIMB_BITS
    while remaining:
        take = min(step, remaining)
        remaining -= take
        rest = (rest << np.uint64(take)) | ((low >> remaining) & ((1 << take) - 1)).astype(np.uint64)
        quotient_low = (quotient_low << np.uint64(take)) | (rest // d)
        rest %= d
    up = rest >= d - rest  # the remainder is at least half the divisor: round up
    return carry(xp, quotient_high, quotient_low.astype(np.int64) + up)

