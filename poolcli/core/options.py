"""The pooling options checked one by one, each refusal naming the parameter and the fix.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any, TypeGuard

import numpy as np

from ..errors import PoolError, param
from .modes import MODES, names, spoken

PAD_MODES = ("zeros", "edge", "reflect")

NAN_POLICIES = ("propagate", "omit")

ACCEPTED_KINDS = "biuf"  # bool, signed, unsigned, float

INT64_MAX = 2**63 - 1  # every size, position and count of a plan is an int64 in the engine


def check_mode(mode: object, allowed: Sequence[str] | None = None) -> str:
    allowed = names() if allowed is None else allowed
    if not isinstance(mode, str) or mode.lower() not in allowed:
        raise PoolError(f"{param('mode')} {mode!r} is not known; use one of {', '.join(allowed)}")
    return mode.lower()


def quoted(modes: tuple[str, ...]) -> str:
    """'avg' or 'l2': mode names as a message quotes them."""
    return spoken(tuple(repr(mode) for mode in modes))


def check_choice(name: str, value: object, allowed: Sequence[str]) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise PoolError(f"{param(name)} {value!r} is not known; use one of {', '.join(allowed)}")
    return value


def check_flag(name: str, value: object) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise PoolError(f"{param(name)} {value!r} must be True or False; use {name}=True or {name}=False")
    return bool(value)


def check_int(name: str, value: object, minimum: int, maximum: int = INT64_MAX) -> int:
    """An integer in [minimum, maximum] (bools and non-integral floats are refused).

    Python and NumPy integers alike; the default maximum is 2**63 - 1, the largest value
    the engine's int64 arithmetic holds, so a larger one is a PoolError, not an OverflowError.
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise PoolError(f"{param(name)} {value!r} must be an integer; use an int >= {minimum}")
    value = int(value)
    if value < minimum:
        raise PoolError(f"{param(name)} {value} must be >= {minimum}; use {param(name)} >= {minimum}")
    if value > maximum:
        raise PoolError(f"{param(name)} {value} exceeds {maximum}, the largest the engine can represent; "
                        f"use {param(name)} <= {maximum}")
    return value


def check_divisor(divisor_override: object, mode: str) -> int:
    """PyTorch's rule: any non-zero integer divides (a negative one flips the sign of the mean);
    0 is refused, and so is a negative one where a root follows (l2: the root of a negative mean).

    >>> check_divisor(-2, "avg")
    -2
    """
    value = check_int("divisor_override", divisor_override, -INT64_MAX)
    if value == 0:
        raise PoolError(f"{param('divisor_override')} 0 cannot divide; use a non-zero integer (as PyTorch), "
                        "or None to divide by the window's cell count")
    if value < 0 and MODES[mode].power is not None:
        raise PoolError(f"{param('divisor_override')} {value} makes {mode!r}'s mean of squares negative and its root"
                        f" NaN; use {param('divisor_override')} >= 1 with mode {mode!r}")
    return value


def check_p(p: object) -> float:
    """A finite p > 0 as a float (an int too large for a float is refused, not an OverflowError)."""
    try:
        value = None if isinstance(p, (bool, np.bool_)) or not isinstance(p, numbers.Real) else float(p)
    except OverflowError:
        value = math.inf
    if value is None or not math.isfinite(value) or value <= 0:
        raise PoolError(f"{param('p')} {_short(p)} must be a finite number > 0; use e.g. p=2 for an L2 norm")
    return value


def check_dtype(dtype: Any) -> np.dtype | None:
    """The requested output dtype: None, or a bool/int/uint/float dtype."""
    if dtype is None:
        return None
    try:
        resolved = np.dtype(dtype)
    except TypeError as error:
        raise PoolError(f"{param('dtype')} {dtype!r} is not a NumPy dtype; use e.g. 'uint8' or 'float32'") from error
    if resolved.kind not in "iuf":
        raise PoolError(f"{param('dtype')} {resolved} cannot hold pooled values; use an int, uint or float dtype")
    return resolved


def check_input_dtype(dtype: np.dtype) -> None:
    if dtype.kind not in ACCEPTED_KINDS:
        raise PoolError(
            f"input dtype {dtype} cannot be pooled; convert it to a real numeric dtype "
            "(bool, int, uint or float) first"
        )


def check_options(
    *,
    mode: str = "max",
    count_include_pad: bool = True,
    divisor_override: int | None = None,
    p: float = 2.0,
    pad_mode: str = "zeros",
    nan_policy: str = "propagate",
    ceil_mode: bool = False,
    return_indices: bool = False,
    dtype: object = None,
    nodata: object = None,
) -> dict:
    """Check every keyword that does not depend on the input's shape; return them resolved."""
    mode = check_mode(mode)
    if divisor_override is not None:
        if not MODES[mode].divisor:
            raise PoolError(
                f"{param('divisor_override')} applies to mode {quoted(names(divisor=True))}, not {mode!r}; drop it"
            )
        divisor_override = check_divisor(divisor_override, mode)
    if return_indices and not MODES[mode].indices:
        raise PoolError(
            f"return_indices=True needs mode {quoted(names(indices=True))}, not {mode!r}; "
            "drop return_indices or change the mode"
        )
    return dict(
        mode=mode,
        count_include_pad=check_flag("count_include_pad", count_include_pad),
        divisor_override=divisor_override,
        p=check_p(p) if MODES[mode].power == "p" else 2.0,  # only lp reads p
        pad_mode=check_choice("pad_mode", pad_mode, PAD_MODES),
        nan_policy=check_choice("nan_policy", nan_policy, NAN_POLICIES),
        ceil_mode=check_flag("ceil_mode", ceil_mode),
        return_indices=check_flag("return_indices", return_indices),
        dtype=check_dtype(dtype),
        nodata=check_nodata(nodata),
    )


def check_nodata(nodata: object) -> int | float | None:
    """The value that marks missing cells: None, an int, or a float (NaN and infinities too);
    whether the input's dtype holds it is `nodata_fits`'s question, asked with the input."""
    if nodata is None:
        return None
    if isinstance(nodata, np.generic):
        nodata = nodata.item()
    if isinstance(nodata, (bool, np.bool_)) or not isinstance(nodata, numbers.Real):
        raise PoolError(f"{param('nodata')} {_short(nodata)} must be a number; use e.g. nodata=-9999 or nodata=0")
    return int(nodata) if isinstance(nodata, numbers.Integral) else float(nodata)


def nodata_fits(nodata: int | float, dtype: np.dtype) -> bool:
    """Whether `dtype` holds `nodata` exactly (NaN: float dtypes only; bool: 0 and 1).

    >>> nodata_fits(-9999, np.dtype(np.uint8)), nodata_fits(255, np.dtype(np.uint8)), nodata_fits(0.5, np.dtype("f2"))
    (False, True, True)
    >>> nodata_fits(10**400, np.dtype(np.int64)), nodata_fits(float("inf"), np.dtype(np.int8))
    (False, False)
    """
    if dtype.kind == "b":
        return nodata in (0, 1)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        whole = isinstance(nodata, int) or nodata.is_integer()  # NaN and the infinities are not
        return whole and info.min <= nodata <= info.max
    if isinstance(nodata, float) and math.isnan(nodata):
        return True
    try:
        with np.errstate(over="ignore"):
            held = float(dtype.type(nodata))
    except OverflowError:  # an int beyond every float
        return False
    if isinstance(nodata, float) or not math.isfinite(held):
        return held == nodata
    return int(held) == nodata


def nodata_text(nodata: int | float) -> str:
    """A nodata as GDAL writes its GDAL_NODATA tag (ASCII): "-9999", "0.5", "nan", "inf".

    >>> nodata_text(-9999), nodata_text(-9999.0), nodata_text(0.25), nodata_text(float("nan"))
    ('-9999', '-9999', '0.25', 'nan')
    """
    if isinstance(nodata, float) and nodata.is_integer():
        return str(int(nodata))
    return str(nodata) if isinstance(nodata, int) or not math.isfinite(nodata) else repr(nodata)


def nodata_from_text(text: str) -> int | float | None:
    """The number a GDAL_NODATA tag (or a command line) holds, None for text that is none.

    >>> nodata_from_text("-9999"), nodata_from_text(" 1e+20 "), nodata_from_text("nan"), nodata_from_text("x")
    (-9999, 1e+20, nan, None)
    """
    text = text.strip().rstrip("\x00").strip()
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return None


def check_nodata_fits(nodata: int | float | None, dtype: np.dtype) -> None:
    """Refuse a `nodata` that `dtype` cannot hold (no cell could ever equal it)."""
    if nodata is not None and not nodata_fits(nodata, dtype):
        raise PoolError(f"{param('nodata')} {nodata!r} cannot be held by the input's dtype {dtype}; "
                        f"use a value {dtype} holds, or drop {param('nodata')}")


def resolve_axes(ndim: int, window: object, axes: object, name: str = "window") -> tuple[int, ...]:
    """The pooled axes, in the order the per-axis values are given (not sorted).

    `window` is whatever gives one value per pooled axis; `name` is what the user called it.
    """
    if ndim < 1:
        raise PoolError("input is a 0-d scalar; pool an array with at least one axis")
    count = len(window) if is_sequence(window) else None
    if count == 0:
        raise PoolError(f"{param(name)} () is empty; give one value per pooled axis")
    if axes is None:
        count = count if count is not None else min(2, ndim)
        if count > ndim:
            raise PoolError(
                f"{param(name)} has {count} values but the input has only {ndim} axes; "
                f"give at most {ndim} {name} values or pass axes="
            )
        return tuple(range(ndim - count, ndim))
    raw = tuple(axes) if is_sequence(axes) else (axes,)
    resolved = []
    for axis in raw:
        axis = check_int("axes", axis, -ndim)
        if axis >= ndim:
            raise PoolError(f"{param('axes')} value {axis} is out of range for a {ndim}-d input;"
                            f" use -{ndim}..{ndim - 1}")
        resolved.append(axis % ndim)
    if len(set(resolved)) != len(resolved):
        raise PoolError(f"{param('axes')} {raw} repeats an axis; name each pooled axis once")
    if not resolved:
        raise PoolError(f"{param('axes')} is empty; name at least one axis to pool")
    if count is not None and count != len(resolved):
        raise PoolError(
            f"{param(name)} has {count} values but axes has {len(resolved)}; give one {name} value per pooled axis"
        )
    return tuple(resolved)


def per_axis(name: str, value: object, count: int, minimum: int) -> tuple[int, ...]:
    """An int (same on every axis) or one int per pooled axis."""
    if is_sequence(value):
        if len(value) != count:
            raise PoolError(
                f"{param(name)} {tuple(value)} has {len(value)} values for {count} pooled axes; "
                f"give one value or {count}"
            )
        return tuple(check_int(name, v, minimum) for v in value)
    return (check_int(name, value, minimum),) * count


def resolve_padding(padding: object, count: int) -> tuple[tuple[int, int] | str, ...]:
    """Per axis (lo, hi) pairs, or the string 'same' per axis (resolved with the sizes)."""
    if isinstance(padding, str):
        key = padding.lower()
        if key == "valid":
            return ((0, 0),) * count
        if key == "same":
            return ("same",) * count
        raise PoolError(f"{param('padding')} {padding!r} is not known; use an int, pairs, 'same' or 'valid'")
    if not is_sequence(padding):
        p = check_int("padding", padding, 0)
        return ((p, p),) * count
    if len(padding) != count:
        raise PoolError(
            f"{param('padding')} {tuple(padding)} has {len(padding)} values for {count} pooled axes; "
            f"give one value, {count} values or {count} (lo, hi) pairs"
        )
    pairs = []
    for item in padding:
        if is_sequence(item):
            if len(item) != 2:
                raise PoolError(f"{param('padding')} pair {tuple(item)} must be (lo, hi); give two ints per axis")
            pairs.append((check_int("padding", item[0], 0), check_int("padding", item[1], 0)))
        else:
            p = check_int("padding", item, 0)
            pairs.append((p, p))
    return tuple(pairs)


def same_padding(size: int, span: int, stride: int) -> tuple[int, int]:
    """TensorFlow's 'same': out = ceil(n/s), the extra pad on the end."""
    out = ceil_div(size, stride)
    total = max((out - 1) * stride + span - size, 0)
    return total // 2, total - total // 2


def ceil_div(a: int, b: int) -> int:
    return -((-a) // b)


def _short(value: object, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def is_sequence(value: object) -> TypeGuard[Sequence[Any]]:
    return isinstance(value, Sequence) and not isinstance(value, str) or isinstance(value, np.ndarray)

