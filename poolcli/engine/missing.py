"""Missing cells: the one notion of a cell that holds no data, shared by every reducer.

A cell is missing when it equals the plan's `nodata` (NaN as nodata: every NaN), and, once a
`nodata` is set, also when it is NaN under nan_policy='omit'. A window skips its missing cells as
it skips padding: they never win an extreme nor count in a median, they add nothing to a sum and
leave the divisor of avg and l2; a window with no cell left gives `nodata` (in the output dtype,
by the one cast of `core/dtypes.finalize`). The reducers take the mask `missing_cells` gives:
the tap-loop reducers (`extreme`, the sum family) replace missing cells by their neutral value
and count them; the ones that gather windows (`median`, the scaled p-norm, and any reducer built
on `gather.gather_windows`) pass the mask to the gather, which marks them absent like padding;
`forward._values` then gives every window without data `nodata` (`fill_empty`).

Without a `nodata`, NaN under nan_policy='omit' stays the reducers' own business (NaN in,
NaN for a window of only NaNs): `omit_nans` says when it applies.
"""

from __future__ import annotations

import math

import numpy as np

from ..core.dtypes import finalize
from ..core.geometry import PoolPlan
from .taps import reduce_windows


def omit_nans(plan: PoolPlan, dtype: np.dtype) -> bool:
    """NaNs are skipped (nan_policy='omit' on a float input)."""
    return plan.nan_policy == "omit" and dtype.kind == "f"


def missing_cells(xp, a, plan: PoolPlan):
    """The cells of `a` a window skips because of `plan.nodata` (a bool array like `a`), or None
    where no nodata is set or no cell is missing (then every reducer runs as without nodata,
    and gives the same bits: skipping nothing changes nothing)."""
    nodata = plan.nodata
    if nodata is None:
        return None
    floats = a.dtype.kind == "f"
    if isinstance(nodata, float) and math.isnan(nodata):
        cells = xp.isnan(a) if floats else None
    else:
        cells = a == a.dtype.type(nodata)
        if omit_nans(plan, a.dtype):
            cells |= xp.isnan(a)
    return cells if cells is not None and bool(cells.any()) else None


def absent_cells(xp, a, plan: PoolPlan, missing):
    """What the sum family leaves out: the missing cells, or without them the NaNs under 'omit'."""
    if missing is not None:
        return missing
    return xp.isnan(a) if omit_nans(plan, a.dtype) else None


def empty_windows(xp, missing, plan: PoolPlan):
    """The windows whose every real cell is missing (padding is never read)."""
    return reduce_windows(xp, missing, plan, xp.logical_and, True, np.dtype(bool))


def fill_empty(xp, y, empty, plan: PoolPlan, source: np.dtype, natural: np.dtype, requested: np.dtype | None):
    """`y` with `plan.nodata` where `empty`: the value cast from the input's dtype (`source`,
    which holds it) to the output dtype as every result is."""
    value = finalize(xp, xp.asarray([plan.nodata], dtype=source), natural, requested)
    return xp.where(empty, value[0], y)
