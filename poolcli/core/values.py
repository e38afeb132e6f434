"""What an array holds, as `info` and the figures report it: the range of its finite values and
how many NaN and infinite values it has. One place for both, with no NumPy warning on
all-NaN or empty arrays."""

from __future__ import annotations

import numpy as np


def finite_range(*arrays: np.ndarray) -> tuple[float, float] | None:
    """Smallest and largest finite value over ``arrays``; None when there is none.

    >>> finite_range(np.array([3.0, np.nan, -1.5, np.inf]))
    (-1.5, 3.0)
    >>> finite_range(np.array([2]), np.array([-np.inf, 5.0]))
    (2.0, 5.0)
    >>> finite_range(np.array([np.nan, -np.inf])) is None
    True
    """
    lows, highs = [], []
    for array in arrays:
        values = np.asarray(array)
        if values.dtype.kind == "f":
            values = values[np.isfinite(values)]
        if values.size:
            lows.append(float(values.min()))
            highs.append(float(values.max()))
    return (min(lows), max(highs)) if lows else None


def special_counts(array: np.ndarray) -> dict[str, int]:
    """How many NaN, +inf and -inf values ``array`` holds (all 0 for integers).

    >>> special_counts(np.array([np.nan, np.inf, -np.inf, np.inf, 1.0]))
    {'nan': 1, 'posinf': 2, 'neginf': 1}
    """
    values = np.asarray(array)
    if values.dtype.kind != "f":
        return {"nan": 0, "posinf": 0, "neginf": 0}
    return {"nan": int(np.count_nonzero(np.isnan(values))), "posinf": int(np.count_nonzero(values == np.inf)),
            "neginf": int(np.count_nonzero(values == -np.inf))}


def special_text(counts: dict[str, int]) -> str:
    """', 1 NaN, 2 +inf' for the nonzero counts; '' when there are none.

    >>> special_text({'nan': 1, 'posinf': 2, 'neginf': 0})
    ', 1 NaN, 2 +inf'
    """
    names = {"nan": "NaN", "posinf": "+inf", "neginf": "-inf"}
    return "".join(f", {count:,} {names[key]}" for key, count in counts.items() if count)
