"""One record per pooling mode: what the engine, the kernels, the dtypes, the figures, the
pyramids, the inspector and the command line need to know of it, in one table (no NumPy: the
command line's start-up reads it). Every other layer derives its per-mode knowledge from here.

>>> MODES["l2"].divisor, MODES["max"].routes, MODES["sum"].output, MODES["avg"].ngff
(True, True, 'sum', 'mean')
>>> names()
('max', 'min', 'avg', 'sum', 'l2', 'lp', 'median', 'majority', 'nearest')
"""

from __future__ import annotations

from dataclasses import KW_ONLY, dataclass


@dataclass(frozen=True)
class Mode:
    """How one mode pools (docs/semantics.md, section 3), and how the other layers name it."""

    name: str
    reducer: str  # "extreme" (max/min), "sum" (a sum of x, x^2 or |x|^p, then a divisor or root), "median",
    # "majority" (the most frequent value) or "nearest" (one chosen cell)
    padding: str  # "ignored" (never wins nor counts) or "zeros"
    divisor: bool  # divides by a count of taps (count_include_pad, divisor_override apply)
    output: str  # natural dtype: "same" as the input, "sum" (NumPy's sum rule), "float"
    routes: bool  # the backward pass routes the gradient to chosen cells (indices)
    indices: bool  # return_indices is offered
    mixes: bool  # mixes values, so an image's colour is weighted by its alpha
    grows: bool  # a result can exceed the input's range (an integer output may clip)
    fused: bool  # the CUDA kernels fuse it
    _: KW_ONLY
    summary: str  # a short phrase for the command line's help: "max (summary)"
    formula: str  # the inspector's readout: how a window's result follows from its taps ("{p}": the p used)
    ngff: str  # the "type" an OME-Zarr pyramid's multiscales metadata records
    power: str | None = None  # the sum family: None sums x, "2" sums x^2, "p" sums |x|^p (then a root)
    keeps: str | None = None  # the extremes: the "largest" or the "smallest" value wins
    picks: bool = False  # every result is one of its window's cells: a label pyramid may use it
    labels: bool = False  # made for labels: a pyramid in this mode is a label pyramid


MODES = {mode.name: mode for mode in (
    Mode("max", "extreme", "ignored", False, "same", True, True, False, False, True, keeps="largest", picks=True,
         summary="the largest value", formula="largest tap", ngff="max"),
    Mode("min", "extreme", "ignored", False, "same", True, True, False, False, True, keeps="smallest", picks=True,
         summary="the smallest value", formula="smallest tap", ngff="min"),
    Mode("avg", "sum", "zeros", True, "float", False, False, True, False, True,
         summary="the mean", formula="sum / divisor", ngff="mean"),
    Mode("sum", "sum", "zeros", False, "sum", False, False, True, True, True,
         summary="the total", formula="sum", ngff="sum"),
    Mode("l2", "sum", "zeros", True, "float", False, False, True, False, True, power="2",
         summary="the root mean square", formula="sqrt(sum of squares / divisor)", ngff="l2"),
    Mode("lp", "sum", "zeros", False, "float", False, False, True, True, True, power="p",
         summary="the p-norm", formula="(sum of |x|^p)^(1/p), p = {p}", ngff="lp"),
    Mode("median", "median", "ignored", False, "same", True, False, False, False, False,
         summary="the middle value", formula="middle tap (mean of two for an even count)", ngff="median"),
    Mode("majority", "majority", "ignored", False, "same", True, True, False, False, False, picks=True, labels=True,
         summary="the most frequent value, for labels", formula="most frequent tap (the smallest on a tie)",
         ngff="mode"),
    Mode("nearest", "nearest", "ignored", False, "same", True, True, False, False, False, picks=True,
         summary="the window's first cell: a subsampling", formula="first real tap", ngff="nearest"),
)}


def names(**wanted: object) -> tuple[str, ...]:
    """The modes whose records have every field `wanted` says, in table order (all without `wanted`);
    read when asked, so a record added to MODES is among them.

    >>> names(indices=True), names(divisor=True)
    (('max', 'min', 'majority', 'nearest'), ('avg', 'l2'))
    """
    return tuple(name for name, mode in MODES.items() if all(getattr(mode, k) == v for k, v in wanted.items()))


def spoken(modes: tuple[str, ...], last: str = "or") -> str:
    """Mode names in a sentence.

    >>> spoken(names(mixes=False)), spoken(names(grows=True), "and"), spoken(("avg",))
    ('max, min, median, majority or nearest', 'sum and lp', 'avg')
    """
    return modes[0] if len(modes) == 1 else f"{', '.join(modes[:-1])} {last} {modes[-1]}"


def described() -> str:
    """Every mode with its summary, for the command line's help.

    >>> described().split(", ")[:2]
    ['max (the largest value)', 'min (the smallest value)']
    """
    return ", ".join(f"{name} ({mode.summary})" for name, mode in MODES.items())
