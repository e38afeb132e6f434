"""One record per pooling mode: what the engine, the kernels, the dtypes, the figures and the
command line need to know of it, in one table (no NumPy: the command line's start-up reads it).

>>> MODES["l2"].divisor, MODES["max"].routes, MODES["sum"].output
(True, True, 'sum')
>>> NAMES
('max', 'min', 'avg', 'sum', 'l2', 'lp', 'median')
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Mode:
    """How one mode pools (docs/semantics.md, section 3)."""

    name: str
    reducer: str  # "extreme" (max/min), "sum" (a sum of x, x^2 or |x|^p, then a divisor or root), "median"
    padding: str  # "ignored" (never wins nor counts) or "zeros"
    divisor: bool  # divides by a count of taps (count_include_pad, divisor_override apply)
    output: str  # natural dtype: "same" as the input, "sum" (NumPy's sum rule), "float"
    routes: bool  # the backward pass routes the gradient to chosen cells (indices)
    indices: bool  # return_indices is offered
    mixes: bool  # mixes values, so an image's colour is weighted by its alpha
    grows: bool  # a result can exceed the input's range (an integer output may clip)
    fused: bool  # the CUDA kernels fuse it
    power: str | None = None  # the sum family: None sums x, "2" sums x^2, "p" sums |x|^p (then a root)
    keeps: str | None = None  # the extremes: the "largest" or the "smallest" value wins


MODES = {mode.name: mode for mode in (
    Mode("max", "extreme", "ignored", False, "same", True, True, False, False, True, keeps="largest"),
    Mode("min", "extreme", "ignored", False, "same", True, True, False, False, True, keeps="smallest"),
    Mode("avg", "sum", "zeros", True, "float", False, False, True, False, True),
    Mode("sum", "sum", "zeros", False, "sum", False, False, True, True, True),
    Mode("l2", "sum", "zeros", True, "float", False, False, True, False, True, power="2"),
    Mode("lp", "sum", "zeros", False, "float", False, False, True, True, True, power="p"),
    Mode("median", "median", "ignored", False, "same", True, False, False, False, False),
)}
NAMES = tuple(MODES)


def names(**wanted: object) -> tuple[str, ...]:
    """The modes whose records have every field `wanted` says, in table order.

    >>> names(indices=True), names(divisor=True)
    (('max', 'min'), ('avg', 'l2'))
    """
    return tuple(name for name, mode in MODES.items() if all(getattr(mode, k) == v for k, v in wanted.items()))
